"""The seed's algorithm: REINFORCE with returns discounted per point and standardised per episode,
gradients summed over a batch of episodes, then one RMSProp step.

With ``--preset seed`` this is the 2016 post exactly; the defaults change only
the learning rate and the batch size. Returns restart at every reward only in
games whose rewards end rallies (Pong); in other games a brick or a crossing
does not end anything, so their returns are discounted over the whole episode.
"""
import numpy as np

from .divergence import check_finite
from .games import game_profile
from .reference import standardize


class Reinforce:
    """The seed's learner behind the algorithm interface (see :mod:`fastpg.algorithm`).

    ``parameters`` (W1, W2) are updated in place: worker pools share them.
    ``caches`` (cache_W1, cache_W2) are RMSProp's running mean squares.
    """

    name = "reinforce"
    task_unit = "episode"
    reports_updates = False  # no statistics per update: no updates.csv
    last_stats = None

    def __init__(self, config, spec, parameters, caches, backend, saved=None, early_parameters=None):
        # early_parameters go unused: each batch needs the update of the batch before it.
        self.batch_size = config.batch_size
        self.gamma, self.learning_rate, self.decay_rate = config.gamma, config.learning_rate, config.decay_rate
        self.backend = backend
        self.rallies = game_profile(config.env).rallies
        self.W1, self.W2 = parameters["W1"], parameters["W2"]
        self.cache_W1 = np.asfortranarray(caches["cache_W1"])
        self.cache_W2 = np.ascontiguousarray(caches["cache_W2"])
        self.grad_W1 = np.zeros_like(self.W1, order="F")
        self.grad_W2 = np.zeros_like(self.W2)

    @staticmethod
    def episodes_per_batch(config):
        return config.batch_size

    @staticmethod
    def state_arrays(spec, config=None):
        """Name -> ArraySpec of what the algorithm checkpoints besides the policy's parameters."""
        return {f"cache_{name}": array for name, array in spec.parameters().items()}

    @classmethod
    def working_bytes(cls, spec):
        """Bytes of float64 arrays a learner holds: parameters, RMSProp caches, gradient."""
        return 3 * spec.parameter_bytes()

    @classmethod
    def initial_state(cls, spec, config=None):
        return {name: array.zeros() for name, array in cls.state_arrays(spec).items()}

    @staticmethod
    def initial_json(config):
        return {}

    def json_state(self):
        return {}

    def next_tasks(self, state):
        """Episode indices of the next batch: the batch_size episodes after those done."""
        return range(state.episodes, state.episodes + self.batch_size)

    def observe(self, episode):
        """Add one finished episode's gradient: returns discounted per point, standardised per episode."""
        self._add_gradient(episode)
        n_steps = len(episode["rewards"])
        return n_steps, [(float(episode["rewards"].sum()), n_steps, n_steps)]

    def _add_gradient(self, episode):
        rewards = episode["rewards"]
        if self.rallies:
            returns = self.backend.discount_rewards(rewards, self.gamma)
        else:  # GAE(gamma, 1) with a zero value: the plain discounted return
            zeros = np.zeros_like(rewards)
            returns, _ = self.backend.gae(rewards, zeros, zeros.astype(np.uint8), 0.0, self.gamma, 1.0)
        advantages = standardize(returns)
        self.backend.sparse_backward(
            self.W1, self.W2, episode["indices"], episode["signs"], episode["offsets"],
            episode["dlogp"] * advantages, self.grad_W1, self.grad_W2,
        )

    def update(self, state):
        """RMSProp ascent on the summed gradient, then zero it for the next batch.

        Raises NonFiniteArrays when the step leaves a weight or cache non-finite.
        """
        for w, g, cache in ((self.W1, self.grad_W1, self.cache_W1), (self.W2, self.grad_W2, self.cache_W2)):
            self.backend.rmsprop_update(w, g, cache, self.learning_rate, self.decay_rate)
            g[...] = 0.0
        check_finite(self.arrays(), state.updates)

    def batch_sent(self):
        """Nothing: every update finishes before update returns."""

    def flush(self):
        """Nothing: every update finishes before update returns."""

    def early_tasks(self):
        return []

    def discard(self):
        """Drop a partly observed batch (the run stops between batches)."""
        self.grad_W1[...] = 0.0
        self.grad_W2[...] = 0.0

    def arrays(self):
        """Everything a checkpoint needs: the parameters and the RMSProp caches, by name."""
        return {"W1": self.W1, "W2": self.W2, "cache_W1": self.cache_W1, "cache_W2": self.cache_W2}
