"""Generalised advantage estimation over one segment (see fastpg.reference.gae)."""
import numpy as np

from fastpg import _validate

from fastpg_common cimport uint8_t


cdef void gae_kernel(const double[::1] rewards, const double[::1] values, const uint8_t[::1] dones,
                     double last_value, double gamma, double lam,
                     double[::1] advantages, double[::1] returns) noexcept nogil:
    cdef Py_ssize_t t
    cdef double carry, delta
    cdef double following_advantage = 0.0, following_value = last_value
    for t in range(rewards.shape[0] - 1, -1, -1):
        carry = 0.0 if dones[t] else 1.0
        delta = rewards[t] + gamma * following_value * carry - values[t]
        following_advantage = delta + gamma * lam * carry * following_advantage
        advantages[t] = following_advantage
        returns[t] = following_advantage + values[t]
        following_value = values[t]


def gae(rewards, values, dones, double last_value, gamma, lam, advantages=None, returns=None):
    """(advantages, returns), float64 (T,): fastpg.reference.gae, written into the given buffers if any."""
    r = _validate.rewards(rewards)
    n = r.shape[0]
    v = _validate.float_vector("values", values, n, "steps, length of rewards")
    _validate.check_c_contiguous("values", v)
    d = _validate.done_flags(dones, n)
    cdef double g = _validate.gamma(gamma)
    cdef double l = _validate.unit_interval("lam", lam)
    outputs = []
    for name, out in (("advantages", advantages), ("returns", returns)):
        if out is None:
            out = np.empty(n, dtype=np.float64)
        else:
            _validate.float_vector(name, out, n, "steps, length of rewards")
            _validate.check_c_contiguous(name, out)
            _validate.check_writeable(name, out)
        outputs.append(out)
    cdef const double[::1] r_view = r
    cdef const double[::1] v_view = v
    cdef const uint8_t[::1] d_view = d
    cdef double[::1] a_view = outputs[0]
    cdef double[::1] ret_view = outputs[1]
    with nogil:
        gae_kernel(r_view, v_view, d_view, last_value, g, l, a_view, ret_view)
    return outputs[0], outputs[1]
