"""The seed's update: advantage-weighted gradients summed over a batch, then RMSProp."""
import numpy as np

from .reference import standardize

N_PIXELS = 80 * 80


def init_weights(n_hidden, seed):
    """Xavier-style W1 (H, 6400) ~ N(0,1)/sqrt(6400), Fortran-ordered, and W2 (H,) ~ N(0,1)/sqrt(H)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2**32 - 1,)))
    W1 = np.asfortranarray(rng.standard_normal((n_hidden, N_PIXELS)) / np.sqrt(N_PIXELS))
    W2 = rng.standard_normal(n_hidden) / np.sqrt(n_hidden)
    return W1, W2


class Learner:
    """Accumulates episodes into a gradient and applies RMSProp at batch ends.

    W1 and W2 are updated in place (workers read them from shared memory);
    caches are RMSProp's running mean squares.
    """

    def __init__(self, W1, W2, cache_W1, cache_W2, backend, gamma, learning_rate, decay_rate):
        self.W1, self.W2 = W1, W2
        self.cache_W1, self.cache_W2 = cache_W1, cache_W2
        self.backend = backend
        self.gamma, self.learning_rate, self.decay_rate = gamma, learning_rate, decay_rate
        self.grad_W1 = np.zeros_like(W1, order="F")
        self.grad_W2 = np.zeros_like(W2)

    def accumulate(self, episode):
        """Add one episode's gradient: returns discounted per point, standardised per episode."""
        returns = self.backend.discount_rewards(episode["rewards"], self.gamma)
        advantages = standardize(returns)
        self.backend.sparse_backward(
            self.W1, self.W2, episode["indices"], episode["signs"], episode["offsets"],
            episode["dlogp"] * advantages, self.grad_W1, self.grad_W2,
        )

    def update(self):
        """RMSProp ascent on the summed gradient, then zero it for the next batch."""
        for w, g, cache in ((self.W1, self.grad_W1, self.cache_W1), (self.W2, self.grad_W2, self.cache_W2)):
            self.backend.rmsprop_update(w, g, cache, self.learning_rate, self.decay_rate)
            g[...] = 0.0

    def discard(self):
        """Drop a partly accumulated batch (the run stops between batches)."""
        self.grad_W1[...] = 0.0
        self.grad_W2[...] = 0.0
