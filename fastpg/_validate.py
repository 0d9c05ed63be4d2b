"""Argument checks shared by the numpy reference and the compiled kernels.

Each check names the offending argument and says what was expected, so a
wrong call fails with an actionable ValueError/TypeError instead of a crash
or a silently wrong answer.
"""
import numbers

import numpy as np

from .constants import (FRAME_SHAPE, MAX_FIRST_ROW, MAX_THREADS,  # noqa: F401  (the kernels read them from here)
                        N_PIXELS)


def as_array(name, value):
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(value).__name__}")
    return value


def check_dtype(name, arr, dtype):
    if arr.dtype != dtype:
        raise TypeError(f"{name} must have dtype {np.dtype(dtype).name}, got {arr.dtype.name}")


def check_ndim(name, arr, ndim):
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")


def check_size(name, arr, axis, expected, what):
    if arr.shape[axis] != expected:
        raise ValueError(
            f"{name} has length {arr.shape[axis]} along axis {axis}, expected {expected} ({what})"
        )


def check_writeable(name, arr):
    if not arr.flags.writeable:
        raise ValueError(f"{name} is read-only, but it is updated in place")


def check_c_contiguous(name, arr):
    if not arr.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous; pass numpy.ascontiguousarray({name})")


def frame(value, name="frame"):
    arr = as_array(name, value)
    check_dtype(name, arr, np.uint8)
    if arr.shape != FRAME_SHAPE:
        raise ValueError(f"{name} must have shape {FRAME_SHAPE} (an Atari RGB frame), got {arr.shape}")
    return arr


def explain_frame_view(value, name="frame"):
    """Raise the error naming what keeps value from being a C-contiguous Pong frame view."""
    frame(value, name)
    check_c_contiguous(name, value)


def float_vector(name, value, length=None, what=""):
    arr = as_array(name, value)
    check_dtype(name, arr, np.float64)
    check_ndim(name, arr, 1)
    if length is not None:
        check_size(name, arr, 0, length, what)
    return arr


def float_matrix(name, value, shape_what):
    """A float64 2-D array; shape_what maps axis -> (expected length or None, description)."""
    arr = as_array(name, value)
    check_dtype(name, arr, np.float64)
    check_ndim(name, arr, 2)
    for axis, (expected, what) in shape_what.items():
        if expected is not None:
            check_size(name, arr, axis, expected, what)
    return arr


def weights(W1, W2):
    """Check a policy's (W1 (H, 6400), W2 (H,)) pair and return H."""
    W1 = float_matrix("W1", W1, {1: (N_PIXELS, "pixels of an 80x80 frame")})
    if W1.shape[0] == 0:
        raise ValueError("W1 must have at least one row (hidden unit)")
    float_vector("W2", W2, W1.shape[0], "hidden units, rows of W1")
    return W1.shape[0]


def rewards(value):
    """Rewards may be any real dtype (vector envs give int32); returned as float64."""
    arr = as_array("rewards", value)
    check_ndim("rewards", arr, 1)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"rewards must be a real numeric array, got dtype {arr.dtype.name}")
    return np.ascontiguousarray(arr, dtype=np.float64)


def gamma(value):
    return unit_interval("gamma", value)


def unit_interval(name, value):
    x = float(value)
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return x


def done_flags(value, length):
    """Episode-end flags (T,) as bool or uint8 -> a C-contiguous uint8 array of 0/1."""
    arr = as_array("dones", value)
    check_ndim("dones", arr, 1)
    if arr.dtype not in (np.bool_, np.uint8):
        raise TypeError(f"dones must have dtype bool or uint8, got {arr.dtype.name}")
    check_size("dones", arr, 0, length, "steps, length of rewards")
    return np.ascontiguousarray(arr != 0, dtype=np.uint8)


def rmsprop_args(w, g, cache, learning_rate, decay_rate, eps):
    for name, arr in (("w", w), ("g", g), ("cache", cache)):
        as_array(name, arr)
        check_dtype(name, arr, np.float64)
    for name, arr in (("g", g), ("cache", cache)):
        if arr.shape != w.shape:
            raise ValueError(f"{name} has shape {arr.shape}, expected the shape of w {w.shape}")
    check_writeable("w", w)
    check_writeable("cache", cache)
    if not 0.0 <= float(decay_rate) <= 1.0:
        raise ValueError(f"decay_rate must be in [0, 1], got {decay_rate!r}")
    if not float(eps) > 0.0:
        raise ValueError(f"eps must be positive, got {eps!r}")
    return float(learning_rate), float(decay_rate), float(eps)


def palette_screen(value, name="screen"):
    arr = as_array(name, value)
    check_dtype(name, arr, np.uint8)
    if arr.shape != FRAME_SHAPE[:2]:
        raise ValueError(f"{name} must have shape {FRAME_SHAPE[:2]} (an Atari palette-index screen), got {arr.shape}")
    return arr


def palette_lut(value, name="lut"):
    arr = as_array(name, value)
    check_dtype(name, arr, np.uint8)
    if arr.shape != (256,):
        raise ValueError(f"{name} must have shape (256,) (one entry per palette index), got {arr.shape}")
    return arr


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def thread_count(value, name="threads"):
    """A learner kernel's thread count as an int, in [1, MAX_THREADS]."""
    if not _is_int(value) or not 1 <= value <= MAX_THREADS:
        raise ValueError(f"{name} must be an integer in [1, {MAX_THREADS}], got {value!r}")
    return int(value)


def first_row(value, name="first_row"):
    """The first of the 160 screen rows a frame rule reads, as an int; the rows must fit on the screen."""
    if not (type(value) is int or _is_int(value)) or not 0 <= value <= MAX_FIRST_ROW:  # fast path: a plain int
        raise ValueError(f"{name} must be an int in [0, {MAX_FIRST_ROW}] (160 rows of the 210-row screen "
                         f"are read from it), got {value!r}")
    return int(value)


def foreground_table(value, name="foreground"):
    """A uint8 (256,) table of 0/1 indexed by red value (1 = foreground), returned C-contiguous.

    A wrong dtype is a ValueError here, like the other frame-rule arguments: a
    table of the wrong kind is a wrong rule, whatever its type.
    """
    if not isinstance(value, np.ndarray) or value.dtype != np.uint8 or value.shape != (256,):
        got = (f"{value.dtype.name} array of shape {value.shape}" if isinstance(value, np.ndarray)
               else type(value).__name__)
        raise ValueError(f"{name} must be a uint8 numpy array of shape (256,) (one entry per red value), got {got}")
    if value.max() > 1:
        bad = np.unique(value[value > 1])
        raise ValueError(f"{name} must hold only 0 (background) and 1 (foreground), got {bad[:5].tolist()}")
    return np.ascontiguousarray(value)


def background_reds(value, name="background_reds"):
    """Red values (ints in [0, 255]) as a tuple."""
    try:
        reds = tuple(value)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of ints in [0, 255], got {value!r}") from None
    if not all(_is_int(red) and 0 <= red <= 255 for red in reds):
        raise ValueError(f"{name} must be a sequence of ints in [0, 255], got {value!r}")
    return tuple(int(red) for red in reds)


def action_pair(value, name="actions"):
    """Two distinct non-negative game action indices, as a tuple of ints."""
    try:
        pair = tuple(value)
    except TypeError:
        pair = None
    if pair is None or len(pair) != 2 or not all(_is_int(a) and a >= 0 for a in pair) or pair[0] == pair[1]:
        raise ValueError(f"{name} must be two distinct non-negative ints (game action indices), got {value!r}")
    return int(pair[0]), int(pair[1])
