"""Checkpoints: weights and RMSProp caches in ``checkpoint.npz``, run state in ``state.json``.

Writes are atomic (temporary file, fsync, rename), so a crash at any moment
leaves the last good checkpoint readable. The npz also carries the state as
JSON text and is the single point of truth: it is renamed into place first,
and state.json is a readable copy written after it.
"""
import json
import math
import os

import numpy as np

CHECKPOINT = "checkpoint.npz"
STATE = "state.json"
FORMAT = "fastpg-checkpoint-1"
ARRAYS = ("W1", "W2", "cache_W1", "cache_W2")
N_PIXELS = 80 * 80


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
    """Write arrays (W1, W2, cache_W1, cache_W2) and the state dict atomically."""
    state = dict(state, format=FORMAT)
    text = json.dumps(state, indent=2, sort_keys=True)
    payload = {name: arrays[name] for name in ARRAYS}
    payload["state"] = np.array(text)
    _write_atomically(os.path.join(run_dir, CHECKPOINT), lambda f: np.savez(f, **payload))
    _write_atomically(os.path.join(run_dir, STATE), lambda f: f.write((text + "\n").encode()))


def load(path):
    """Read a checkpoint (a run directory or a checkpoint.npz) -> (arrays, state).

    Never unpickles. Raises CheckpointError with a one-line reason.
    """
    if os.path.isdir(path):
        path = os.path.join(path, CHECKPOINT)
    if not os.path.isfile(path):
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [name for name in (*ARRAYS, "state") if name not in data.files]
            if missing:
                raise CheckpointError(f"{path} is not a fastpg checkpoint (missing {', '.join(missing)})")
            arrays = {name: data[name] for name in ARRAYS}
            state = json.loads(str(data["state"]))
    except CheckpointError:
        raise
    except Exception as exc:  # a truncated or foreign file: zipfile, ValueError, JSON errors...
        raise CheckpointError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None
    _check(path, arrays, state)
    return arrays, state


def _check(path, arrays, state):
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} has an unknown format (expected {FORMAT})")
    try:
        n_hidden = int(state["config"]["hidden"])
        for key in ("episodes", "env_steps", "seconds"):
            state[key] + 0
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{path} has an incomplete state record") from None
    expected = {"W1": (n_hidden, N_PIXELS), "W2": (n_hidden,),
                "cache_W1": (n_hidden, N_PIXELS), "cache_W2": (n_hidden,)}
    for name, shape in expected.items():
        array = arrays[name]
        if array.dtype != np.float64 or array.shape != shape:
            raise CheckpointError(
                f"{path}: {name} is {array.dtype} {array.shape}, expected float64 {shape}")
        if not np.all(np.isfinite(array)):
            raise CheckpointError(f"{path}: {name} holds NaN or infinite values")
    running = state.get("running_reward")
    if running is not None and not math.isfinite(running):
        raise CheckpointError(f"{path}: running_reward is not finite")
