"""RMSProp ascent step, one fused pass with no temporaries."""
from libc.math cimport sqrt

from fastpg import _validate


cdef void rmsprop_kernel(
    double* w, const double* g, double* cache, Py_ssize_t n,
    double learning_rate, double decay_rate, double eps,
) noexcept nogil:
    # Raw pointers into checked memoryviews: plain indexing lets GCC vectorise.
    cdef Py_ssize_t i
    cdef double c
    for i in range(n):
        c = decay_rate * cache[i] + (1.0 - decay_rate) * (g[i] * g[i])
        cache[i] = c
        w[i] += learning_rate * g[i] / (sqrt(c) + eps)


def _flat_view(name, arr, order):
    """A 1-D view of a contiguous array in its own memory order (never a copy)."""
    if order == "F" and not arr.flags.f_contiguous or order == "C" and not arr.flags.c_contiguous:
        raise ValueError(
            f"{name} must be contiguous in the same memory order as w ({order}); "
            "w, g and cache must share one layout"
        )
    return arr.reshape(-1, order=order)


def _memory_order(w):
    if w.flags.c_contiguous:
        return "C"
    if w.flags.f_contiguous:
        return "F"
    raise ValueError("w must be C- or Fortran-contiguous")


def rmsprop_update(w, g, cache, learning_rate, decay_rate, eps=1e-5):
    """In place: cache = decay*cache + (1-decay)*g**2; w += lr*g/(sqrt(cache)+eps)."""
    lr, decay, eps_ = _validate.rmsprop_args(w, g, cache, learning_rate, decay_rate, eps)
    order = _memory_order(w)
    cdef double[::1] w_flat = _flat_view("w", w, order)
    cdef const double[::1] g_flat = _flat_view("g", g, order)
    cdef double[::1] cache_flat = _flat_view("cache", cache, order)
    cdef double lr_c = lr, decay_c = decay, eps_c = eps_
    if w_flat.shape[0] == 0:
        return
    with nogil:
        rmsprop_kernel(&w_flat[0], &g_flat[0], &cache_flat[0], w_flat.shape[0], lr_c, decay_c, eps_c)
