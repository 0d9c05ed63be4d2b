"""Argument checks shared by the numpy reference and the compiled kernels.

Each check names the offending argument and says what was expected, so a
wrong call fails with an actionable ValueError/TypeError instead of a crash
or a silently wrong answer.
"""
import numpy as np

from .constants import FRAME_SHAPE, N_PIXELS  # noqa: F401  (the kernels read them from here)


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
