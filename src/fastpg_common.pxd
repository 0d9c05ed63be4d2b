# Header-only declarations shared by the kernels (cimported by plain name;
# setup.py puts src/ on Cython's include path).
from libc.math cimport exp
from libc.stdlib cimport realloc
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint64_t

# The preprocessed frame: 80 x 80 pixels, from the 160 screen rows starting at a
# game's first_row (at most fastpg.constants.MAX_FIRST_ROW), every second row and
# column of the 210 x 160 screen. A game's colours decide which pixels are
# foreground: a 256-entry table per red value (RGB frames) or per palette index
# (palette screens), made in Python, so any game costs one lookup per pixel.
cdef enum:
    N_ROWS = 80
    N_COLS = 80
    N_PIXELS = 6400
    SCAN_BLOCK = 16  # divides N_PIXELS


cdef inline double sigmoid(double z) noexcept nogil:
    return 1.0 / (1.0 + exp(-z))


cdef inline void accumulate_column(
    double* h, const double[:, :] W1, Py_ssize_t col, double value
) noexcept nogil:
    """h += value * W1[:, col]; contiguous fast path for Fortran-ordered W1."""
    cdef Py_ssize_t j, H = W1.shape[0]
    cdef const double* w
    if W1.strides[0] == sizeof(double):
        w = &W1[0, col]
        for j in range(H):
            h[j] += value * w[j]
    else:
        for j in range(H):
            h[j] += value * W1[j, col]


cdef inline double relu_logit(double* h, const double[::1] W2) noexcept nogil:
    """Apply ReLU to h in place and return W2 @ h."""
    cdef Py_ssize_t j, H = W2.shape[0]
    cdef double logit = 0.0
    for j in range(H):  # a select, not a branch the CPU mispredicts: this loop vectorises
        h[j] = 0.0 if h[j] < 0.0 else h[j]
    for j in range(H):  # the dot product, in order
        logit += W2[j] * h[j]
    return logit


cdef inline double sparse_logit(
    const double[:, :] W1, const double[::1] W2,
    const int16_t* indices, const int8_t* signs, Py_ssize_t nnz, double* h,
) noexcept nogil:
    """Layer 1 from a sparse +-1 input (pixel indices, signs), then ReLU and W2.

    Writes h (H,) and returns the logit. The trainer's forward and backward both
    call this, so the hidden activations they see are bit-identical.
    """
    cdef Py_ssize_t j, k
    for j in range(W1.shape[0]):
        h[j] = 0.0
    for k in range(nnz):
        accumulate_column(h, W1, indices[k], <double>signs[k])
    return relu_logit(h, W2)


cdef inline void add_scaled(double* out, const double* v, double scale, Py_ssize_t n) noexcept nogil:
    """out[:n] += scale * v[:n]."""
    cdef Py_ssize_t j
    for j in range(n):
        out[j] += v[j] * scale


cdef inline void gated_output_grad(
    double* dh, const double* h, const double[::1] W2, double dlogp
) noexcept nogil:
    """dh = dlogp * W2, zeroed where the ReLU was off (h <= 0)."""
    cdef Py_ssize_t j
    for j in range(W2.shape[0]):
        dh[j] = dlogp * W2[j] if h[j] > 0.0 else 0.0


cdef inline bint block_is_zero(const double* x) noexcept nogil:
    """True when x[0:SCAN_BLOCK] are all +-0.0.

    Reads the doubles' bits with the sign shifted out and ORs them: a
    vectorisable test, about 4x faster than comparing each value, which
    matters because almost every block of a difference frame is zero.
    (setup.py compiles with -fno-strict-aliasing, so the cast is well defined.)
    """
    cdef const uint64_t* bits = <const uint64_t*>x
    cdef uint64_t any_bits = 0
    cdef Py_ssize_t i
    for i in range(SCAN_BLOCK):
        any_bits |= bits[i] << 1
    return any_bits == 0


cdef inline int grow(void** buffer, Py_ssize_t* capacity, Py_ssize_t needed, size_t item) noexcept nogil:
    """Make room for `needed` items in a realloc'd buffer, doubling the capacity; -1 when out of memory."""
    if needed <= capacity[0]:
        return 0
    cdef Py_ssize_t new_capacity = max(2 * capacity[0], needed)
    cdef void* grown = realloc(buffer[0], new_capacity * item)
    if grown == NULL:
        return -1
    buffer[0] = grown
    capacity[0] = new_capacity
    return 0
