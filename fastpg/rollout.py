"""Playing one episode: the per-step loop that training, eval and video share, and its seeds."""
import dataclasses

import numpy as np

DRAW_BLOCK = 4096  # action draws fetched from the generator at a time


def episode_rngs(run_seed, episode_index):
    """Independent (policy, environment) generators for one episode of a run.

    They depend only on the run's seed and the episode's global index, so an
    episode plays the same whichever worker plays it, and after a resume.
    """
    seq = np.random.SeedSequence(run_seed, spawn_key=(episode_index,))
    policy_seq, env_seq = seq.spawn(2)
    return np.random.default_rng(policy_seq), np.random.default_rng(env_seq)


def play_episode(game, stepper, run_seed, episode_index, greedy=None, record=True, max_steps=None,
                 on_step=None):
    """Play episode ``episode_index`` of seed ``run_seed`` with the stepper's current policy.

    Stochastic play (``greedy=None``) draws each action from the policy with
    one uniform draw; ``greedy`` is a function stepper -> action (the policy
    spec's ``greedy``) that takes the likeliest action instead. ``max_steps``
    ends the episode early. ``on_step(frame, stepper, action, rewards)`` is
    called after the policy has seen each frame (the uint8 (210, 160, 3)
    buffer, valid only during the call) and chosen its action, before the
    action is played; ``stepper.p`` and ``stepper.nnz`` then describe that
    step, and ``rewards`` is the list of the steps' rewards so far (read only).
    With a palette-screen game, ``frame`` is read as RGB for on_step only.

    Returns a dict: ``index``, ``rewards`` float64 (T,), ``finished`` (the game
    ended, not max_steps) and, with ``record``, the stepper's sparse record of
    the episode (see :class:`fastpg.kernels.PolicyStepper`); without it the
    record is dropped.
    """
    policy_rng, env_rng = episode_rngs(run_seed, episode_index)
    stepper.reset()
    frame = game.reset(env_rng)
    rewards = []
    draws, next_draw = [], 0
    done = False
    try:
        while not done and (max_steps is None or len(rewards) < max_steps):
            if greedy is None:
                if next_draw == len(draws):
                    draws, next_draw = policy_rng.random(DRAW_BLOCK).tolist(), 0
                action = stepper.step(frame, draws[next_draw])
                next_draw += 1
            else:
                stepper.step(frame, 0.5)
                action = greedy(stepper)
            if on_step is not None:
                on_step(frame if frame.ndim == 3 else game.rgb(), stepper, action, rewards)
            frame, reward, done = game.step(action)
            rewards.append(reward)
        episode = stepper.finish() if record else {}
    finally:
        if not record:
            stepper.reset()  # nothing learns from this episode
    episode["rewards"] = np.array(rewards, dtype=np.float64)
    episode["index"] = episode_index
    episode["finished"] = done
    return episode


@dataclasses.dataclass(frozen=True)
class PlayerSettings:
    """What a worker needs to play episodes of a run: picklable, sent once to each worker."""

    spec: object  # fastpg.policy.PolicySpec
    env_id: str
    backend: str = "cython"
    seed: int = 0
    greedy: bool = False
    record: bool = True  # training keeps the sparse record; eval only needs the rewards
    unit: str = "episode"  # or "segment": tasks are fastpg.lanes.Segment

    @property
    def weight_sets(self):
        """How many sets of weights a pool keeps for these players: two for segments (a batch can start
        while the one before it still plays the other set), one for episodes."""
        return 2 if self.unit == "segment" else 1

    def player(self, parameters, early_parameters=None):
        """The Player (episodes) or LanePlayer (segments) these settings ask for; a LanePlayer also plays
        ``early_parameters`` (a second set of weights) where given."""
        if self.unit == "segment":
            from .lanes import LanePlayer

            return LanePlayer(self, parameters, early_parameters)
        return Player(self, parameters)


class Player:
    """One emulator and one stepper playing episodes of a run with the given parameters.

    ``parameters`` are the policy's named arrays; the stepper reads them in
    place, so a pool that updates them changes the policy played.
    """

    def __init__(self, settings, parameters):
        from .backends import get_backend
        from .env import AtariGame

        self.settings = settings
        self.game = AtariGame(settings.env_id, screen=settings.spec.screen)
        self.stepper = settings.spec.stepper(get_backend(settings.backend), parameters, self.game)
        self._greedy = settings.spec.greedy if settings.greedy else None

    def play(self, index, max_steps=None, on_step=None):
        s = self.settings
        return play_episode(self.game, self.stepper, s.seed, index, greedy=self._greedy, record=s.record,
                            max_steps=max_steps, on_step=on_step)
