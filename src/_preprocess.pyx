"""Frame preprocessing: RGB frame -> 80 x 80 binary foreground, as float64, by a game's frame rule."""
import numpy as np

from fastpg import _validate
from fastpg.constants import PONG_FIRST_ROW
from fastpg.reference import PONG_FOREGROUND, frame_rule

from fastpg_common cimport N_COLS, N_PIXELS, N_ROWS, uint8_t


# Red value -> 0.0 or 1.0. A table lookup per pixel is about twice as fast as
# comparing and converting, since the strided byte loads do not vectorise.
# Pong's is made once; another rule's is made per call (256 conversions).
cdef double PONG_VALUES[256]
for _red in range(256):
    PONG_VALUES[_red] = PONG_FOREGROUND[_red]


cdef void preprocess_kernel(const uint8_t[:, :, ::1] frame, Py_ssize_t first_row, const double* values,
                            double[::1] out) noexcept nogil:
    cdef Py_ssize_t row, col
    cdef const uint8_t* red
    cdef double* dst
    for row in range(N_ROWS):
        red = &frame[first_row + 2 * row, 0, 0]
        dst = &out[row * N_COLS]
        for col in range(N_COLS):
            dst[col] = values[red[6 * col]]  # every 2nd column, 3 channels


def preprocess(frame, first_row=PONG_FIRST_ROW, foreground=None):
    """uint8 (210, 160, 3) RGB frame -> float64 (6400,) of 0/1 (see fastpg.reference.preprocess)."""
    cdef const uint8_t[:, :, ::1] frame_view
    try:
        frame_view = frame
    except (TypeError, ValueError, BufferError):
        _validate.explain_frame_view(frame)  # raises a message naming the argument
        raise
    if frame_view.shape[0] != 210 or frame_view.shape[1] != 160 or frame_view.shape[2] != 3:
        _validate.frame(frame)
    cdef Py_ssize_t row0
    row0, table = frame_rule(first_row, foreground)
    cdef double custom[256]
    cdef const double* values = PONG_VALUES
    cdef const uint8_t[::1] table_view
    cdef int red
    if table is not PONG_FOREGROUND:
        table_view = table
        for red in range(256):
            custom[red] = table_view[red]
        values = custom
    out = np.empty(N_PIXELS, dtype=np.float64)
    cdef double[::1] out_view = out
    with nogil:
        preprocess_kernel(frame_view, row0, values, out_view)
    return out
