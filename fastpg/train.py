"""The training loop: batches of parallel episodes, the seed's update, checkpoints."""
import dataclasses
import functools
import os
import signal
import time

import numpy as np

from . import checkpoint
from .backends import get_backend
from .env import _atari_spec
from .learner import Learner, init_weights
from .metrics import MetricsLog
from .progress import Progress
from .workers import StopRequested, WorkerPool

RUNNING_DECAY = 0.99  # running reward = 0.99 * running + 0.01 * episode reward

# The seed post's hyperparameters. With them the learner is the seed algorithm exactly: returns
# standardised per episode, gradients summed over 10 episodes, one RMSProp step per batch.
SEED_SETTINGS = {"hidden": 200, "batch_size": 10, "learning_rate": 1e-4, "gamma": 0.99, "decay_rate": 0.99}
PRESETS = {"seed": SEED_SETTINGS}


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything a run's result depends on (with the episode count).

    The defaults differ from the seed's in two settings, chosen by the learning runs in
    docs/runs/ (README, "Learning Pong in an hour"): a 10x larger learning rate, and an update every 2 episodes
    instead of every 10.
    """

    env: str = "ALE/Pong-v5"
    hidden: int = 200
    batch_size: int = 2
    learning_rate: float = 1e-3
    gamma: float = 0.99
    decay_rate: float = 0.99
    seed: int = 0

    def validate(self):
        if self.hidden < 1:
            raise ValueError(f"--hidden must be at least 1, got {self.hidden}")
        if self.batch_size < 1:
            raise ValueError(f"--batch-size must be at least 1, got {self.batch_size}")
        if not self.learning_rate > 0:
            raise ValueError(f"--learning-rate must be positive, got {self.learning_rate}")
        if not 0 <= self.gamma <= 1:
            raise ValueError(f"--gamma must be in [0, 1], got {self.gamma}")
        if not 0 <= self.decay_rate < 1:
            raise ValueError(f"--decay-rate must be in [0, 1), got {self.decay_rate}")
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"--seed must be a non-negative integer, got {self.seed}")
        _atari_spec(self.env)


@dataclasses.dataclass
class RunState:
    """Where a run is, at a batch boundary."""

    episodes: int = 0
    env_steps: int = 0
    updates: int = 0
    running_reward: float = None
    seconds: float = 0.0


class TrainingError(Exception):
    """A problem with the run directory or arguments, reported as one line."""


def preset_overrides(preset, given):
    """Config fields for a run: the preset's values (None: the defaults), then those given explicitly.

    given maps Config fields to values, None meaning "not given".
    """
    if preset is not None and preset not in PRESETS:
        raise TrainingError(f"unknown --preset {preset!r}; choose from {', '.join(sorted(PRESETS))}")
    overrides = dict(PRESETS.get(preset, {}))
    overrides.update({name: value for name, value in given.items() if value is not None})
    return overrides


def _prepare_run_dir(run_dir, resume):
    if resume:
        return
    if os.path.exists(os.path.join(run_dir, checkpoint.CHECKPOINT)) or os.path.exists(
            os.path.join(run_dir, "metrics.csv")):
        raise TrainingError(f"{run_dir} already holds a run; pass --resume to continue it, or choose another --run-dir")
    try:
        os.makedirs(run_dir, exist_ok=True)
        probe = os.path.join(run_dir, ".write-test")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as exc:
        raise TrainingError(f"cannot write to run directory {run_dir}: {exc.strerror}") from None


def _resume_state(run_dir, overrides):
    """Load the run in run_dir; overrides are hyperparameters given on the command line."""
    arrays, saved = checkpoint.load(run_dir)
    try:
        config = Config(**saved["config"])
    except TypeError as exc:
        raise checkpoint.CheckpointError(f"{run_dir}: checkpoint config does not match this fastpg ({exc})") from None
    conflicts = [f"--{name.replace('_', '-')} {value} (run has {getattr(config, name)})"
                 for name, value in overrides.items() if value is not None and value != getattr(config, name)]
    if conflicts:
        raise TrainingError("cannot resume with different settings: " + "; ".join(conflicts))
    state = RunState(episodes=saved["episodes"], env_steps=saved["env_steps"], updates=saved.get("updates", 0),
                     running_reward=saved.get("running_reward"), seconds=saved["seconds"])
    return config, state, arrays


def train(config_overrides, run_dir, resume=False, episodes=None, max_steps=None, max_minutes=None,
          workers=None, backend="cython", checkpoint_every=100, progress_stream=None, ray_address=None):
    """Train (or resume) the run in run_dir. Returns the final RunState.

    config_overrides: Config fields given by the user (None = default, or the
    checkpoint's value on resume). episodes: stop at this total episode count.
    max_steps: stop at the first batch boundary at or past this total of
    environment steps. max_minutes: likewise, past this much training time
    (state.seconds, which counts the time before a resume). ray_address:
    play on Ray actors instead of local processes ("local" starts Ray here,
    "auto" or "host:port" joins a cluster); workers=None then means one actor
    per CPU of the cluster.
    """
    if workers is None and ray_address is None:
        workers = os.cpu_count() or 1
    for name, value in (("--episodes", episodes), ("--max-steps", max_steps), ("--workers", workers),
                        ("--checkpoint-every", checkpoint_every)):
        if value is not None and value < 1:
            raise TrainingError(f"{name} must be at least 1, got {value}")
    if max_minutes is not None and not max_minutes > 0:
        raise TrainingError(f"--max-minutes must be positive, got {max_minutes}")
    backend_impl = get_backend(backend)
    if ray_address is not None:
        from . import ray_pool

        ray_pool.require_ray()  # says which install command to run, before anything is done

    if resume:
        if not os.path.isdir(run_dir):
            raise TrainingError(f"--resume: no run directory at {run_dir}")
        config, state, arrays = _resume_state(run_dir, config_overrides)
    else:
        given = {k: v for k, v in config_overrides.items() if v is not None}
        config = Config(**given)
        config.validate()
        state = RunState()
    if episodes is not None and episodes % config.batch_size:
        raise TrainingError(f"--episodes ({episodes}) must be a multiple of --batch-size ({config.batch_size}): "
                            "updates and checkpoints happen at batch boundaries")
    if episodes is not None and episodes <= state.episodes:
        raise TrainingError(f"the run already has {state.episodes} episodes (--episodes {episodes})")
    if not resume:  # only now, when every argument is known to be good, touch the disk
        _prepare_run_dir(run_dir, resume)
        W1, W2 = init_weights(config.hidden, config.seed)
        arrays = {"W1": W1, "W2": W2, "cache_W1": np.zeros_like(W1, order="F"), "cache_W2": np.zeros_like(W2)}
    make_pool = WorkerPool
    if ray_address is not None:  # join or start Ray before any file of the run is written
        make_pool = functools.partial(ray_pool.RayPool, shutdown=ray_pool.connect(ray_address, workers))

    stop_signal = []

    def request_stop(signum, frame):
        stop_signal.append(signum)

    previous_handlers = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    progress = Progress(state.episodes, state.env_steps, episodes, max_steps, stream=progress_stream)
    metrics = MetricsLog(os.path.join(run_dir, "metrics.csv"), keep_episodes=state.episodes if resume else None)
    pool = make_pool(workers, config.hidden, config.env, backend, config.seed, on_warning=progress.message)
    try:
        if pool.n_workers > config.batch_size:
            progress.message(f"note: at most {config.batch_size} of the {pool.n_workers} workers are busy at once, "
                             f"because a batch's {config.batch_size} episodes share one set of weights; "
                             f"--batch-size {pool.n_workers} or more keeps them all busy (it changes the "
                             "algorithm: README, 'Learning Pong in an hour')")
        pool.W1[...] = arrays["W1"]
        pool.W2[...] = arrays["W2"]
        cache_W1 = np.asfortranarray(arrays["cache_W1"])
        cache_W2 = np.ascontiguousarray(arrays["cache_W2"])
        learner = Learner(pool.W1, pool.W2, cache_W1, cache_W2, backend_impl,
                          config.gamma, config.learning_rate, config.decay_rate)

        def save():
            checkpoint.save(run_dir, {"W1": pool.W1, "W2": pool.W2, "cache_W1": cache_W1, "cache_W2": cache_W2},
                            {"config": dataclasses.asdict(config), "backend": backend,
                             **dataclasses.asdict(state)})

        session_start = time.perf_counter()
        session_start_steps = state.env_steps
        seconds_before = state.seconds
        last_checkpoint = state.episodes
        interrupted = False
        while True:
            if episodes is not None and state.episodes >= episodes:
                break
            if max_steps is not None and state.env_steps >= max_steps:
                break
            if max_minutes is not None and state.seconds >= 60 * max_minutes:
                break
            # Play one batch; fold its episodes in index order.
            steps, running = state.env_steps, state.running_reward
            indices = range(state.episodes, state.episodes + config.batch_size)
            try:
                for episode in pool.play(indices, should_stop=lambda: bool(stop_signal)):
                    reward = float(episode["rewards"].sum())
                    n_steps = len(episode["rewards"])
                    steps += n_steps
                    running = reward if running is None else RUNNING_DECAY * running + (1 - RUNNING_DECAY) * reward
                    learner.accumulate(episode)
                    elapsed = time.perf_counter() - session_start
                    rate = (steps - session_start_steps) / elapsed if elapsed > 0 else 0.0
                    metrics.write(episode["index"] + 1, steps, reward, running, seconds_before + elapsed, rate)
                    progress.episode(episode["index"] + 1, steps, n_steps, reward, running, rate)
            except StopRequested:
                learner.discard()
                interrupted = True
                break
            learner.update()
            state.episodes += config.batch_size
            state.env_steps, state.running_reward = steps, running
            state.updates += 1
            state.seconds = seconds_before + time.perf_counter() - session_start
            progress.batch(state.episodes, state.env_steps, running, rate, state.seconds)
            if state.episodes - last_checkpoint >= checkpoint_every:
                save()
                last_checkpoint = state.episodes
            if stop_signal:
                interrupted = True
                break
        save()
    finally:
        pool.close()
        metrics.close()
        progress.close()
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)
    elapsed = time.perf_counter() - session_start
    session_steps = state.env_steps - session_start_steps
    summary = (f"{'interrupted' if interrupted else 'done'}: {state.episodes} episodes, {state.env_steps:,} env steps, "
               f"running reward {'n/a' if state.running_reward is None else format(state.running_reward, '+.3f')}; "
               f"this session {session_steps:,} steps in {elapsed:.1f} s "
               f"({session_steps / elapsed if elapsed > 0 else 0:,.0f} steps/s, {pool.replays} replayed episodes); "
               f"checkpoint in {run_dir}")
    print(summary, file=progress.stream, flush=True)
    return state, interrupted
