"""Lanes: the actor-critic's independent game streams, played in fixed-length segments.

A lane's state at a segment boundary (its emulator, screen, previous frame,
generators and the episode in progress) travels with each segment task and
comes back with the result, so any worker can play any segment, a lost one is
replayed exactly, and a checkpoint holds everything a resume needs.
"""
import dataclasses

import numpy as np

LANE_SPAWN_KEY = 2**32 - 2  # the lanes' streams of the run's seed (REINFORCE episodes use keys 0, 1, ...)


@dataclasses.dataclass
class LaneState:
    """Where one lane is between segments. ``game`` is None before its first segment."""

    policy_rng: dict  # numpy bit-generator states
    env_rng: dict
    game: tuple = None  # AtariGame.save(): (emulator bytes, palette screen, sticky action)
    previous: np.ndarray = None  # the stepper's previous binary frame (None at an episode's start)
    episode_steps: int = 0  # of the episode in progress
    episode_reward: float = 0.0

    @classmethod
    def start(cls, run_seed, lane):
        policy_seq, env_seq = np.random.SeedSequence(run_seed, spawn_key=(LANE_SPAWN_KEY, lane)).spawn(2)
        return cls(np.random.PCG64(policy_seq).state, np.random.PCG64(env_seq).state)


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity: the scheduler keys results by task
class Segment:
    """A task: play ``steps`` steps of ``lane`` from ``state``, in batch ``batch``.

    With ``life_loss_terminal``, a step that loses a life is marked done
    (the advantages do not bootstrap past it) while the game plays on.
    ``weights``: which of the workers' two sets of weights plays it (0, or 1
    for the pool's ``early_params``), so that a batch can start while the
    one before it still plays with the other set.
    """

    lane: int
    batch: int
    steps: int
    state: LaneState
    life_loss_terminal: bool = False
    weights: int = 0

    def __str__(self):
        return f"lane {self.lane} of batch {self.batch + 1}"


def _generator(state):
    bit_generator = np.random.PCG64()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


def play_segment(game, stepper, segment):
    """Play one segment with the stepper's current policy; returns its result dict.

    ``record``: the stepper's record of steps + 1 rows (the last is the
    screen the segment ends on, peeked for its value); ``rewards`` float64
    and ``dones`` uint8 (steps,), done where an episode ended (or a life was
    lost, with ``segment.life_loss_terminal``); ``episodes``: (reward, length, step) of
    each episode that ended, ``step`` counting from the segment's start;
    ``state``: the lane's state after the segment.
    """
    state = segment.state
    policy_rng, env_rng = _generator(state.policy_rng), _generator(state.env_rng)
    stepper.reset()
    if state.game is None:
        screen = game.reset(env_rng)
    else:
        screen = game.restore(state.game, env_rng)
        stepper.previous = state.previous
    draws = policy_rng.random(segment.steps).tolist()
    rewards = np.zeros(segment.steps)
    dones = np.zeros(segment.steps, dtype=np.uint8)
    episodes = []
    episode_steps, episode_reward = state.episode_steps, state.episode_reward
    for t in range(segment.steps):
        action = stepper.step(screen, draws[t])
        screen, reward, done = game.step(action)
        rewards[t] = reward
        episode_steps += 1
        episode_reward += reward
        if done:
            dones[t] = 1
            episodes.append((episode_reward, episode_steps, t + 1))
            episode_steps, episode_reward = 0, 0.0
            screen = game.reset(env_rng)
            stepper.new_episode()
        elif segment.life_loss_terminal and game.lost_life:
            dones[t] = 1
    stepper.peek(screen)
    after = LaneState(policy_rng.bit_generator.state, env_rng.bit_generator.state, game.save(), stepper.previous,
                      episode_steps, episode_reward)
    return {"lane": segment.lane, "record": stepper.finish(), "rewards": rewards, "dones": dones,
            "episodes": episodes, "state": after}


class LanePlayer:
    """One emulator and an actor stepper per set of (shared) parameters, playing segments.

    ``early_parameters``: the second set, which segments with ``weights`` 1 play.
    """

    def __init__(self, settings, parameters, early_parameters=None):
        from .backends import get_backend
        from .env import AtariGame

        self.game = AtariGame(settings.env_id, screen=settings.spec.screen)
        backend = get_backend(settings.backend)
        self.steppers = [settings.spec.stepper(backend, params, self.game)
                         for params in (parameters, early_parameters) if params is not None]

    def play(self, segment):
        if segment.weights >= len(self.steppers):
            raise ValueError(f"{segment} asks for weight set {segment.weights}, and this player has "
                             f"{len(self.steppers)}")
        return play_segment(self.game, self.steppers[segment.weights], segment)
