"""Checkpoints: the run's named arrays in ``checkpoint.npz``, run state in ``state.json``.

Writes are atomic (temporary file, fsync, rename), so a crash at any moment
leaves the last good checkpoint readable. The npz also carries the state as
JSON text and is the single point of truth: it is renamed into place first,
and state.json is a readable copy written after it.
"""
import json
import math
import os

import numpy as np

from .constants import N_PIXELS

CHECKPOINT = "checkpoint.npz"
STATE = "state.json"
FORMAT = "fastpg-checkpoint-2"  # the state lists its arrays (name -> shape)
# Format 1 (fastpg 0.1): always W1, W2 and their RMSProp caches, shapes set by the hidden size.
FORMAT_1 = "fastpg-checkpoint-1"
ARRAY_DTYPES = ("float64", "uint8")  # arrays not listed in the state's "dtypes" are float64


class CheckpointError(Exception):
    """A checkpoint that is missing, unreadable or does not fit the run."""


def _write_atomically(path, write):
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)  # the previous file at path is untouched; leave no half-written copy
        except OSError:
            pass
        raise
    directory = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(directory)  # make the rename itself durable
    finally:
        os.close(directory)


def save(run_dir, arrays, state):
    """Write the named arrays (float64, or uint8 for byte data) and the state dict (JSON-ready) atomically."""
    state = dict(state, format=FORMAT, arrays={name: list(array.shape) for name, array in arrays.items()})
    dtypes = {name: array.dtype.name for name, array in arrays.items() if array.dtype != np.float64}
    if any(dtype not in ARRAY_DTYPES for dtype in dtypes.values()):
        raise ValueError(f"checkpoint arrays must be float64 or uint8, got {dtypes}")
    if dtypes:
        state["dtypes"] = dtypes
    text = json.dumps(state, indent=2, sort_keys=True)
    if "state" in arrays:
        raise ValueError("'state' is reserved for the run state; name the array otherwise")
    payload = dict(arrays, state=np.array(text))
    _write_atomically(os.path.join(run_dir, CHECKPOINT), lambda f: np.savez(f, **payload))
    _write_atomically(os.path.join(run_dir, STATE), lambda f: f.write((text + "\n").encode()))


def load(path):
    """Read a checkpoint (a run directory or a checkpoint.npz) -> (arrays, state).

    Reads both formats; a format-1 state comes back with the ``arrays`` entry
    that format 2 records. Never unpickles. Raises CheckpointError with a
    one-line reason.
    """
    if os.path.isdir(path):
        path = os.path.join(path, CHECKPOINT)
    if not os.path.isfile(path):
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "state" not in data.files:
                raise CheckpointError(f"{path} is not a fastpg checkpoint (missing state)")
            state = json.loads(str(data["state"]))
            names = _array_names(path, state)
            missing = [name for name in names if name not in data.files]
            if missing:
                raise CheckpointError(f"{path} is not a fastpg checkpoint (missing {', '.join(missing)})")
            arrays = {name: data[name] for name in names}
    except CheckpointError:
        raise
    except Exception as exc:  # a truncated or foreign file: zipfile, ValueError, JSON errors...
        raise CheckpointError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None
    _check(path, arrays, state)
    return arrays, state


def _array_names(path, state):
    """The arrays a state says its checkpoint holds; a format-1 state gains its ``arrays`` entry."""
    if not isinstance(state, dict) or state.get("format") not in (FORMAT, FORMAT_1):
        raise CheckpointError(f"{path} has an unknown format (expected {FORMAT} or {FORMAT_1})")
    try:
        if state["format"] == FORMAT_1:
            n_hidden = int(state["config"]["hidden"])
            shapes = {"W1": [n_hidden, N_PIXELS], "W2": [n_hidden]}
            state["arrays"] = {**shapes, **{f"cache_{name}": shape for name, shape in shapes.items()}}
        if not isinstance(state["arrays"], dict):
            raise TypeError
        return [str(name) for name in state["arrays"]]
    except (KeyError, TypeError, ValueError, AttributeError):
        raise CheckpointError(f"{path} has an incomplete state record") from None


def _check(path, arrays, state):
    try:
        for key in ("episodes", "env_steps", "seconds"):
            state[key] + 0
        state["config"]["hidden"] + 0
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{path} has an incomplete state record") from None
    dtypes = state.get("dtypes", {})
    for name, shape in state["arrays"].items():
        array = arrays[name]
        dtype = dtypes.get(name, "float64")
        if dtype not in ARRAY_DTYPES or array.dtype != dtype or list(array.shape) != list(shape):
            raise CheckpointError(
                f"{path}: {name} is {array.dtype} {array.shape}, expected {dtype} {tuple(shape)}")
        if dtype == "float64" and not np.all(np.isfinite(array)):
            raise CheckpointError(f"{path}: {name} holds NaN or infinite values")
    running = state.get("running_reward")
    if running is not None and not math.isfinite(running):
        raise CheckpointError(f"{path}: running_reward is not finite")


def check_fits(path, arrays, expected):
    """Raise CheckpointError unless arrays has exactly the expected names and shapes (name -> ArraySpec)."""
    if set(arrays) != set(expected):
        raise CheckpointError(f"{path}: holds arrays {', '.join(sorted(arrays))}; this run needs "
                              f"{', '.join(sorted(expected))}")
    for name, spec in expected.items():
        shape = arrays[name].shape
        if len(shape) != len(spec.shape) or any(n is not None and n != m for n, m in zip(spec.shape, shape)):
            raise CheckpointError(f"{path}: {name} is {shape}, this run needs {tuple(spec.shape)}")
        if arrays[name].dtype != spec.dtype:
            raise CheckpointError(f"{path}: {name} is {arrays[name].dtype}, this run needs {spec.dtype}")
