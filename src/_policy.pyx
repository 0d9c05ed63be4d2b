"""The 2-layer ReLU policy, dense contract: forward and backward.

Difference frames are sparse (about 22 of 6,400 pixels non-zero), so layer 1
visits only the non-zero inputs: each one adds a column of W1, contiguous when
W1 is Fortran-ordered. This does less work than a dense GEMV instead of
re-doing BLAS.
"""
import numpy as np

from fastpg import _validate

from fastpg_common cimport N_PIXELS, SCAN_BLOCK, accumulate_column, block_is_zero, add_scaled, gated_output_grad, relu_logit, sigmoid
from libc.stdlib cimport free, malloc


cdef double forward_kernel(
    const double[:, :] W1, const double[::1] W2, const double[::1] x, double[::1] h
) noexcept nogil:
    cdef Py_ssize_t i, j, block, start
    for j in range(h.shape[0]):
        h[j] = 0.0
    for block in range(N_PIXELS // SCAN_BLOCK):
        start = block * SCAN_BLOCK
        if not block_is_zero(&x[start]):
            for i in range(start, start + SCAN_BLOCK):
                if x[i] != 0.0:
                    accumulate_column(&h[0], W1, i, x[i])
    return sigmoid(relu_logit(&h[0], W2))


def _explain_forward_args(W1, W2, x):
    """Raise the error that names what is wrong with policy_forward's arguments."""
    _validate.weights(W1, W2)
    _validate.float_vector("x", x, W1.shape[1], "pixels, columns of W1")
    _validate.check_c_contiguous("W2", W2)
    _validate.check_c_contiguous("x", x)


def policy_forward(W1, W2, x):
    """p = sigmoid(W2 @ relu(W1 @ x)); returns (p, h). W1 (H, 6400) in C or Fortran order."""
    cdef const double[:, :] W1_view
    cdef const double[::1] W2_view
    cdef const double[::1] x_view
    try:
        W1_view = W1
        W2_view = W2
        x_view = x
    except (TypeError, ValueError, BufferError):
        _explain_forward_args(W1, W2, x)
        raise
    if (W1_view.shape[0] == 0 or W1_view.shape[1] != N_PIXELS
            or W2_view.shape[0] != W1_view.shape[0] or x_view.shape[0] != N_PIXELS):
        _explain_forward_args(W1, W2, x)
    h = np.empty(W1_view.shape[0], dtype=np.float64)
    cdef double[::1] h_view = h
    cdef double p
    with nogil:
        p = forward_kernel(W1_view, W2_view, x_view, h_view)
    return p, h


cdef void backward_kernel(
    const double[::1] W2, const double[:, ::1] eph, const double[::1] epdlogp,
    const double[:, ::1] epx, double[::1, :] dW1, double[::1] dW2, double* dh,
) noexcept nogil:
    cdef Py_ssize_t t, i, j, block, start, H = W2.shape[0]
    for j in range(H):
        dW2[j] = 0.0
    for t in range(eph.shape[0]):
        for j in range(H):
            dW2[j] += eph[t, j] * epdlogp[t]
        gated_output_grad(dh, &eph[t, 0], W2, epdlogp[t])
        for block in range(N_PIXELS // SCAN_BLOCK):
            start = block * SCAN_BLOCK
            if not block_is_zero(&epx[t, start]):
                for i in range(start, start + SCAN_BLOCK):
                    if epx[t, i] != 0.0:
                        add_scaled(&dW1[0, i], dh, epx[t, i], H)


def policy_backward(W2, eph, epdlogp, epx):
    """Returns (dW1 (H, 6400) Fortran-ordered, dW2 (H,)) for one episode (see fastpg.reference)."""
    n_hidden = _validate.float_vector("W2", W2).shape[0]
    _validate.float_matrix("eph", eph, {1: (n_hidden, "hidden units, length of W2")})
    T = eph.shape[0]
    _validate.float_vector("epdlogp", epdlogp, T, "steps, rows of eph")
    _validate.float_matrix("epx", epx, {0: (T, "steps, rows of eph"), 1: (_validate.N_PIXELS, "pixels")})
    for name, arr in (("W2", W2), ("eph", eph), ("epdlogp", epdlogp), ("epx", epx)):
        _validate.check_c_contiguous(name, arr)
    dW1 = np.zeros((n_hidden, _validate.N_PIXELS), dtype=np.float64, order="F")
    dW2 = np.empty(n_hidden, dtype=np.float64)
    if n_hidden == 0:
        return dW1, dW2
    cdef const double[::1] W2_view = W2
    cdef const double[:, ::1] eph_view = eph
    cdef const double[::1] dlogp_view = epdlogp
    cdef const double[:, ::1] epx_view = epx
    cdef double[::1, :] dW1_view = dW1
    cdef double[::1] dW2_view = dW2
    cdef double* dh = <double*>malloc(n_hidden * sizeof(double))
    if dh == NULL:
        raise MemoryError()
    with nogil:
        backward_kernel(W2_view, eph_view, dlogp_view, epx_view, dW1_view, dW2_view, dh)
    free(dh)
    return dW1, dW2
