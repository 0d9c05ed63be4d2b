"""The policy network a run trains, described by a spec that declares its named arrays.

Everything that stores, shares or checks a policy's parameters (worker pools,
checkpoints, eval) asks the spec for the arrays' names and shapes, so a new
network is declared here once.
"""
import dataclasses

import numpy as np

from .constants import DOWN, N_PIXELS, UP

HEADS = ("sigmoid",)
INIT_SPAWN_KEY = 2**32 - 1  # the initial weights' stream of the run's seed; episodes use keys 0, 1, ...


@dataclasses.dataclass(frozen=True)
class ArraySpec:
    """One named float64 array: its shape and memory order ("C" or "F")."""

    shape: tuple
    order: str = "C"

    @property
    def size(self):
        return int(np.prod(self.shape))

    def zeros(self):
        return np.zeros(self.shape, order=self.order)


@dataclasses.dataclass(frozen=True)
class PolicySpec:
    """The seed's network: 80x80 difference frame -> ``hidden`` ReLU units -> one logit, no biases.

    ``head="sigmoid"`` gives P(actions[0]) = sigmoid(W2 @ relu(W1 @ x)) over
    two actions (indices into the game's minimal action set; Pong's up and
    down). W1 is Fortran-ordered, so the sparse forward reads a contiguous
    column per non-zero pixel.
    """

    hidden: int
    actions: tuple = (UP, DOWN)
    head: str = "sigmoid"

    def __post_init__(self):
        if self.hidden < 1:
            raise ValueError(f"--hidden must be at least 1, got {self.hidden}")
        if self.head not in HEADS:
            raise ValueError(f"unknown policy head {self.head!r}; choose from {', '.join(HEADS)}")
        if tuple(self.actions) != (UP, DOWN):
            raise ValueError(f"the sigmoid head plays actions {(UP, DOWN)} (up, down), got {self.actions}")

    @property
    def n_actions(self):
        return len(self.actions)

    def parameters(self):
        """Name -> ArraySpec of the network's parameters."""
        return {"W1": ArraySpec((self.hidden, N_PIXELS), "F"), "W2": ArraySpec((self.hidden,))}

    def zero_parameters(self):
        """Name -> zero array for each parameter, in its declared order (a buffer to copy weights into)."""
        return {name: array.zeros() for name, array in self.parameters().items()}

    def parameter_bytes(self):
        return 8 * sum(array.size for array in self.parameters().values())

    def initial_parameters(self, seed):
        """Xavier-style W1 ~ N(0,1)/sqrt(6400) and W2 ~ N(0,1)/sqrt(H), from the run's seed."""
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(INIT_SPAWN_KEY,)))
        W1 = np.asfortranarray(rng.standard_normal((self.hidden, N_PIXELS)) / np.sqrt(N_PIXELS))
        W2 = rng.standard_normal(self.hidden) / np.sqrt(self.hidden)
        return {"W1": W1, "W2": W2}

    def stepper(self, backend, parameters):
        """backend's stepper playing with ``parameters`` (it reads them in place, so updates show)."""
        return backend.stepper(parameters["W1"], parameters["W2"])

    def greedy_action(self, p):
        """The likelier action when the head gives P(actions[0]) = p."""
        return self.actions[0] if p >= 0.5 else self.actions[1]

