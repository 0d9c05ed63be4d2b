"""Frame preprocessing: Pong RGB frame -> 80 x 80 binary foreground, as float64."""
import numpy as np

from fastpg import _validate

from fastpg_common cimport N_PIXELS, pixel, uint8_t


cdef void preprocess_kernel(const uint8_t[:, :, ::1] frame, double[::1] out) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(N_PIXELS):
        out[i] = pixel(frame, i)


def preprocess(frame):
    """uint8 (210, 160, 3) Pong frame -> float64 (6400,) of 0/1 (see fastpg.reference)."""
    _validate.frame(frame)
    _validate.check_c_contiguous("frame", frame)
    out = np.empty(N_PIXELS, dtype=np.float64)
    cdef const uint8_t[:, :, ::1] frame_view = frame
    cdef double[::1] out_view = out
    with nogil:
        preprocess_kernel(frame_view, out_view)
    return out
