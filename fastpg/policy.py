"""The policy network a run trains, described by a spec that declares its named arrays.

Everything that stores, shares or checks a policy's parameters (worker pools,
checkpoints, eval) asks the spec for the arrays' names and shapes, so a new
network is declared here once.
"""
import dataclasses

import numpy as np

from .constants import DOWN, N_PIXELS, UP
from .games import KNOWN_GAMES

HEADS = ("sigmoid",)
# What the actor-critic's network sees, as the number of 80x80 blocks of W1's columns: the difference
# frame alone (the seed's input), or the difference and then the current binary frame, both sparse.
INPUTS = {"difference": 1, "difference+frame": 2}
INIT_SPAWN_KEY = 2**32 - 1  # the initial weights' stream of the run's seed; episodes use keys 0, 1, ...
PONG_FRAME = KNOWN_GAMES["pong"].frame
# The kernels load W1 and its gradient a column (H doubles) at a time in 64-byte vectors; on a matrix that
# starts on a cache line (and H a multiple of 8) no load straddles two lines.
CACHE_LINE = 64


def aligned_zeros(shape, order="C", dtype="float64"):
    """np.zeros(shape, dtype, order), its first element at the start of a 64-byte cache line."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.zeros(nbytes + CACHE_LINE, dtype=np.uint8)
    start = -raw.ctypes.data % CACHE_LINE
    return raw[start:start + nbytes].view(dtype).reshape(shape, order=order)


def aligned_copy(array, order="K"):
    """A copy of array, laid out as np.array(array, order=order) would be, starting a cache line."""
    array = np.asarray(array)
    layout = "F" if order == "F" or (order == "K" and array.flags.f_contiguous and not array.flags.c_contiguous) else "C"
    copy = aligned_zeros(array.shape, layout, array.dtype)
    copy[...] = array
    return copy


@dataclasses.dataclass(frozen=True)
class ArraySpec:
    """One named array: its shape (None: any length), memory order ("C" or "F") and dtype."""

    shape: tuple
    order: str = "C"
    dtype: str = "float64"

    @property
    def size(self):
        return int(np.prod(self.shape))

    def zeros(self):
        return aligned_zeros(self.shape, self.order, self.dtype)


class _NamedParameters:
    """What every spec derives from its ``parameters()`` declaration."""

    def zero_parameters(self):
        """Name -> zero array for each parameter, in its declared order (a buffer to copy weights into)."""
        return {name: array.zeros() for name, array in self.parameters().items()}

    def parameter_bytes(self):
        return 8 * sum(array.size for array in self.parameters().values())


@dataclasses.dataclass(frozen=True)
class PolicySpec(_NamedParameters):
    """The seed's network: 80x80 difference frame -> ``hidden`` ReLU units -> one logit, no biases.

    ``head="sigmoid"`` gives P(actions[0]) = sigmoid(W2 @ relu(W1 @ x)) over
    two actions (indices into the game's minimal action set; Pong's up and
    down). ``frame`` is the game's screen rule (:class:`fastpg.games.FrameRule`).
    W1 is Fortran-ordered, so the sparse forward reads a contiguous column
    per non-zero pixel.
    """

    hidden: int
    actions: tuple = (UP, DOWN)
    head: str = "sigmoid"
    frame: object = PONG_FRAME

    def __post_init__(self):
        if self.hidden < 1:
            raise ValueError(f"--hidden must be at least 1, got {self.hidden}")
        if self.head not in HEADS:
            raise ValueError(f"unknown policy head {self.head!r}; choose from {', '.join(HEADS)}")
        if len(self.actions) != 2 or self.actions[0] == self.actions[1]:
            raise ValueError(f"the sigmoid head plays two distinct actions, got {self.actions}")

    @property
    def n_actions(self):
        return len(self.actions)

    def parameters(self):
        """Name -> ArraySpec of the network's parameters."""
        return {"W1": ArraySpec((self.hidden, N_PIXELS), "F"), "W2": ArraySpec((self.hidden,))}

    def initial_parameters(self, seed):
        """Xavier-style W1 ~ N(0,1)/sqrt(6400) and W2 ~ N(0,1)/sqrt(H), from the run's seed."""
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(INIT_SPAWN_KEY,)))
        W1 = aligned_copy(rng.standard_normal((self.hidden, N_PIXELS)) / np.sqrt(N_PIXELS), "F")
        W2 = rng.standard_normal(self.hidden) / np.sqrt(self.hidden)
        return {"W1": W1, "W2": W2}

    screen = "rgb"  # the screen its stepper reads

    def stepper(self, backend, parameters, game):
        """backend's stepper playing with ``parameters`` (it reads them in place, so updates show)."""
        return backend.stepper(parameters["W1"], parameters["W2"], actions=self.actions,
                               foreground=self.frame.table(), first_row=self.frame.first_row)

    def greedy_action(self, p):
        """The likelier action when the head gives P(actions[0]) = p."""
        return self.actions[0] if p >= 0.5 else self.actions[1]

    def greedy(self, stepper):
        """The likelier action at the stepper's last step."""
        return self.greedy_action(stepper.p)


@dataclasses.dataclass(frozen=True)
class ActorCriticSpec(_NamedParameters):
    """The actor-critic's network: the seed's sparse hidden layer (with biases), a softmax over
    ``actions`` and a value.

    h = relu(W1 x + b1), logits = W_pi h + b_pi, value = w_v . h + b_v, with x
    the 80x80 difference frame, or with ``inputs="difference+frame"`` the
    difference followed by the current binary frame (12,800 inputs; the
    stepper records both sparsely). ``actions`` are indices into the game's
    minimal action set; ``frame`` is the game's screen rule. Its stepper reads
    palette screens.
    """

    hidden: int
    actions: tuple = (UP, DOWN)
    frame: object = PONG_FRAME
    inputs: str = "difference"
    head = "softmax"
    screen = "palette"

    def __post_init__(self):
        if self.hidden < 1:
            raise ValueError(f"--hidden must be at least 1, got {self.hidden}")
        if len(self.actions) < 2 or len(set(self.actions)) != len(self.actions):
            raise ValueError(f"the policy needs at least 2 distinct actions, got {self.actions}")
        if self.inputs not in INPUTS:
            raise ValueError(f"--inputs must be one of {', '.join(INPUTS)}, got {self.inputs!r}")

    @property
    def n_actions(self):
        return len(self.actions)

    @property
    def n_inputs(self):
        """Columns of W1: 6400 per 80x80 block the network sees."""
        return INPUTS[self.inputs] * N_PIXELS

    def parameters(self):
        H, A = self.hidden, self.n_actions
        return {"W1": ArraySpec((H, self.n_inputs), "F"), "b1": ArraySpec((H,)), "W_pi": ArraySpec((A, H)),
                "b_pi": ArraySpec((A,)), "w_v": ArraySpec((H,)), "b_v": ArraySpec((1,))}

    def initial_parameters(self, seed):
        """W1 as the seed's (N(0,1)/sqrt(6400), also on a frame block: a block's scale does not depend on
        what else the network sees), W_pi small (a near-uniform first policy), w_v ~ N(0,1)/sqrt(H),
        zero biases."""
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(INIT_SPAWN_KEY,)))
        params = self.zero_parameters()
        params["W1"][...] = rng.standard_normal((self.hidden, self.n_inputs)) / np.sqrt(N_PIXELS)
        params["W_pi"][...] = 0.01 * rng.standard_normal((self.n_actions, self.hidden)) / np.sqrt(self.hidden)
        params["w_v"][...] = rng.standard_normal(self.hidden) / np.sqrt(self.hidden)
        return params

    def stepper(self, backend, parameters, game):
        """backend's actor stepper on ``game``'s palette screens, with a colour table it fills as colours appear."""
        lut = np.full(256, 2, dtype=np.uint8)  # 2: not seen yet
        return backend.actor_stepper(parameters, self.actions, lut, lambda: game.fill_lut(lut, self.frame.is_foreground),
                                     first_row=self.frame.first_row)

    def greedy(self, stepper):
        """The likeliest action at the stepper's last step (recorded as its choice)."""
        return stepper.greedy()



@dataclasses.dataclass(frozen=True)
class UniformSpec(_NamedParameters):
    """The random policy eval compares with: each step, one of ``actions`` uniformly. No parameters."""

    actions: tuple
    screen = "palette"  # it never looks

    def parameters(self):
        return {}

    def stepper(self, backend, parameters, game):
        return UniformStepper(self.actions)

    def greedy(self, stepper):
        raise ValueError("the random policy has no likeliest action")


class UniformStepper:
    """The stepper interface of :class:`UniformSpec`: action = actions[floor(u * A)]."""

    nnz = 0

    def __init__(self, actions):
        self.actions = tuple(actions)
        self.n_steps = 0
        self.p = 1.0 / len(self.actions)

    def step(self, frame, u):
        self.n_steps += 1
        return self.actions[min(int(u * len(self.actions)), len(self.actions) - 1)]

    def reset(self):
        self.n_steps = 0

    def finish(self):
        self.n_steps = 0
        return {}
