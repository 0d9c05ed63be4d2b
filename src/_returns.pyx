"""Discounted returns, reset at every point (non-zero reward)."""
import numpy as np

from fastpg import _validate


cdef void discount_kernel(const double[::1] rewards, double gamma, double[::1] out) noexcept nogil:
    cdef Py_ssize_t t
    cdef double running = 0.0
    for t in range(rewards.shape[0] - 1, -1, -1):
        if rewards[t] != 0.0:
            running = 0.0
        running = running * gamma + rewards[t]
        out[t] = running


def discount_rewards(rewards, gamma):
    """float64 (T,) with R_t = r_t + gamma * R_{t+1}, reset to 0 at every non-zero reward."""
    r = _validate.rewards(rewards)
    cdef double g = _validate.gamma(gamma)
    out = np.empty(r.shape[0], dtype=np.float64)
    cdef const double[::1] r_view = r
    cdef double[::1] out_view = out
    with nogil:
        discount_kernel(r_view, g, out_view)
    return out
