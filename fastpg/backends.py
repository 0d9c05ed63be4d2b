"""The two interchangeable implementations the driver runs on.

``cython`` uses the compiled kernels: a fused per-step call and a sparse
backward. ``numpy`` plays and learns with :mod:`fastpg.reference`, through the
same driver, as the baseline. Both record episodes in the same sparse format
(see :class:`fastpg.kernels.PolicyStepper`), so a run's result does not depend
on the backend beyond float rounding.
"""
import numpy as np

from . import reference
from .constants import DOWN, N_PIXELS, UP

BACKWARD_CHUNK = 256  # steps densified at a time by the numpy backward


class NumpyStepper:
    """The reference twin of kernels.PolicyStepper: same interface, same episode format.

    ``p`` is P(up) and ``nnz`` the number of non-zero pixels of the last step's difference frame.
    """

    def __init__(self, W1, W2):
        self.W1, self.W2 = W1, W2
        self.p = 0.0
        self.nnz = 0
        self.reset()

    def reset(self):
        self._previous = None
        self._indices, self._signs, self._dlogp = [], [], []

    @property
    def n_steps(self):
        return len(self._dlogp)

    def step(self, frame, u):
        current = reference.preprocess(frame)
        x = np.zeros(N_PIXELS) if self._previous is None else current - self._previous
        self._previous = current
        p, _ = reference.policy_forward(self.W1, self.W2, x)
        action = UP if u < p else DOWN
        nonzero = np.flatnonzero(x)
        self.p, self.nnz = p, len(nonzero)
        self._indices.append(nonzero.astype(np.int16))
        self._signs.append(x[nonzero].astype(np.int8))
        self._dlogp.append((1.0 if action == UP else 0.0) - p)
        return action

    def finish(self):
        lengths = [len(i) for i in self._indices]
        episode = {
            "indices": np.concatenate(self._indices or [np.empty(0, np.int16)]),
            "signs": np.concatenate(self._signs or [np.empty(0, np.int8)]),
            "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32),
            "dlogp": np.array(self._dlogp, dtype=np.float64),
        }
        self.reset()
        return episode


def densify(episode, start, stop):
    """Steps start:stop of a sparse episode as a dense float64 (stop - start, 6400) array."""
    offsets = episode["offsets"]
    x = np.zeros((stop - start, N_PIXELS))
    for row, t in enumerate(range(start, stop)):
        entries = slice(offsets[t], offsets[t + 1])
        x[row, episode["indices"][entries]] = episode["signs"][entries]
    return x


def numpy_sparse_backward(W1, W2, indices, signs, offsets, weighted_dlogp, dW1, dW2):
    """kernels.sparse_backward's twin: reference.policy_backward on dense chunks, summed."""
    episode = {"indices": indices, "signs": signs, "offsets": offsets}
    n_steps = len(offsets) - 1
    for start in range(0, n_steps, BACKWARD_CHUNK):
        stop = min(start + BACKWARD_CHUNK, n_steps)
        epx = densify(episode, start, stop)
        eph = np.maximum(epx @ W1.T, 0.0)  # the reference forward's h, for all steps at once
        chunk_dW1, chunk_dW2 = reference.policy_backward(W2, eph, weighted_dlogp[start:stop], epx)
        dW1 += chunk_dW1
        dW2 += chunk_dW2


class Backend:
    """The kernels one run uses: a stepper class, the learner's three functions, and preprocess (for video)."""

    def __init__(self, name, stepper, discount_rewards, sparse_backward, rmsprop_update, preprocess):
        self.name = name
        self.stepper = stepper
        self.preprocess = preprocess
        self.discount_rewards = discount_rewards
        self.sparse_backward = sparse_backward
        self.rmsprop_update = rmsprop_update


BACKENDS = ("cython", "numpy")


def get_backend(name):
    if name == "cython":
        from . import kernels

        return Backend(name, kernels.PolicyStepper, kernels.discount_rewards,
                       kernels.sparse_backward, kernels.rmsprop_update, kernels.preprocess)
    if name == "numpy":
        return Backend(name, NumpyStepper, reference.discount_rewards,
                       numpy_sparse_backward, reference.rmsprop_update, reference.preprocess)
    raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
