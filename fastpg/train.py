"""The training loop: batches of episodes played in parallel, an algorithm's update, checkpoints.

:func:`train` reads as its steps: check the options, open the run (new or
resumed), start the workers, then the loop, which is generic over the
algorithm interface (:mod:`fastpg.algorithm`).
"""
import contextlib
import dataclasses
import math
import os
import signal
import time
from typing import NamedTuple

from . import checkpoint
from .algorithm import get_algorithm
from .background import Background
from .backends import get_backend
from .config import Config, TrainingError, option_name
from .constants import MAX_THREADS
from .divergence import NonFiniteArrays
from .games import action_names, game_profile
from .metrics import MetricsLog, UpdateLog
from .progress import Progress
from .reference import linear_decay
from .rollout import PlayerSettings
from .scheduler import StopRequested
from .workers import WorkerPool

RUNNING_DECAY = 0.99  # running reward = 0.99 * running + 0.01 * episode reward
SEGMENT_LINE_SECONDS = 10.0  # plain progress lines of a segment-batched run, at most one per this


@dataclasses.dataclass
class RunState:
    """Where a run is, at a batch boundary."""

    episodes: int = 0
    env_steps: int = 0
    updates: int = 0
    running_reward: float = None
    seconds: float = 0.0


class TrainingOutcome(NamedTuple):
    """What :func:`train` returns: the run's state at its last batch boundary, and whether it was interrupted."""

    state: RunState
    interrupted: bool


class DivergedError(TrainingError):
    """An update made the parameters or the optimiser state non-finite; the run stopped before saving it."""


@dataclasses.dataclass(frozen=True)
class StopRule:
    """When a run stops: an episode total, or the first batch boundary past a step or time budget, or past the
    end of the learning rate's schedule (``schedule_end`` env steps, where it reaches 0)."""

    episodes: int = None
    max_steps: int = None
    max_minutes: float = None
    schedule_end: int = None

    def validate(self):
        for name, value in (("--episodes", self.episodes), ("--max-steps", self.max_steps)):
            if value is not None and value < 1:
                raise TrainingError(f"{name} must be at least 1, got {value}")
        if self.max_minutes is not None and not 0 < self.max_minutes < math.inf:
            raise TrainingError(f"--max-minutes must be positive, got {self.max_minutes}")

    def validate_for(self, config, state):
        per_batch = get_algorithm(config.algo).episodes_per_batch(config)
        if self.episodes is not None and per_batch is not None and self.episodes % per_batch:
            raise TrainingError(f"--episodes ({self.episodes}) must be a multiple of --batch-size "
                                f"({config.batch_size}): updates and checkpoints happen at batch boundaries")
        if self.episodes is not None and self.episodes <= state.episodes:
            raise TrainingError(f"the run already has {state.episodes} episodes (--episodes {self.episodes})")
        if self.schedule_end is not None and state.env_steps >= self.schedule_end:
            raise TrainingError(f"the run is complete: its learning rate reached 0 at {self.schedule_end:,} env steps "
                                "(--lr-decay-steps), so further training would leave its weights as they are")

    def steps_limit(self):
        """The env steps the run stops at (None: no such limit), for the progress line."""
        limits = [limit for limit in (self.max_steps, self.schedule_end) if limit is not None]
        return min(limits) if limits else None

    def reached(self, state):
        steps_limit = self.steps_limit()
        return ((self.episodes is not None and state.episodes >= self.episodes)
                or (steps_limit is not None and state.env_steps >= steps_limit)
                or (self.max_minutes is not None and state.seconds >= 60 * self.max_minutes))


def train(config_overrides, run_dir, resume=False, episodes=None, max_steps=None, max_minutes=None,
          workers=None, backend="cython", checkpoint_every=100, progress_stream=None, ray_address=None,
          learner_threads=1):
    """Train (or resume) the run in run_dir. Returns a :class:`TrainingOutcome` (state, interrupted).

    config_overrides: Config fields given by the user (None = default, or the
    checkpoint's value on resume). episodes: stop at this total episode count.
    max_steps: stop at the first batch boundary at or past this total of
    environment steps (an actor-critic run with --lr-decay-steps also stops
    where its learning rate reaches 0). max_minutes: likewise, past this much training time
    (state.seconds, which counts the time before a resume). ray_address:
    play on Ray actors instead of local processes ("local" starts Ray here,
    "auto" or "host:port" joins a cluster); workers=None then means one actor
    per CPU of the cluster. learner_threads: threads of the actor-critic
    learner's kernels (the same result for any count; REINFORCE's learner
    runs in one).

    Raises TrainingError (one line) for bad options or run directories, and
    DivergedError when an update turns any array non-finite; the run's last
    checkpoint then stays as it was.
    """
    stop_rule = StopRule(episodes, max_steps, max_minutes)
    workers = _check_options(stop_rule, workers, checkpoint_every, ray_address, learner_threads)
    backend_impl = get_backend(backend, threads=learner_threads)
    if resume:
        config, state, arrays, saved_json = _resume_run(run_dir, config_overrides)
    else:
        config, state, arrays, saved_json = _new_run(config_overrides)
    stop_rule = dataclasses.replace(stop_rule, schedule_end=config.lr_decay_steps or None)
    stop_rule.validate_for(config, state)
    if not resume:  # only now, when every argument is known to be good, touch the disk
        _prepare_run_dir(run_dir)
    make_pool = _pool_maker(ray_address, workers)  # joins Ray before any file of the run is written

    spec = config.policy()
    algorithm_class = get_algorithm(config.algo)
    with _stop_requests() as stop_requested:
        progress = Progress(state.episodes, state.env_steps, episodes, stop_rule.steps_limit(), stream=progress_stream)
        pool = metrics = updates = None
        try:
            pool = make_pool(PlayerSettings(spec, config.env, backend, config.seed, unit=algorithm_class.task_unit),
                             progress.message)
            for name in spec.parameters():
                pool.params[name][...] = arrays[name]
            algorithm = algorithm_class(config, spec, pool.params, arrays, backend_impl, saved_json,
                                        early_parameters=pool.early_params)
            _note_idle_workers(pool.n_workers, len(algorithm.next_tasks(state)), progress)
            progress.message(describe_game(config.env, spec.actions))
            _note_schedules(config, stop_rule.max_steps, progress)
            if algorithm_class.task_unit == "segment":
                progress.min_interval = SEGMENT_LINE_SECONDS  # batches take a fraction of a second

            last_written = None  # the run state of the latest checkpoint written

            def save(run_state=None):
                """Write the checkpoint of the run at state, or at run_state (a dict of an earlier state), unless
                the latest checkpoint holds that very state (a stop right after a pending checkpoint)."""
                nonlocal last_written
                run_state = dataclasses.asdict(state) if run_state is None else run_state
                if run_state == last_written:  # the arrays change only with the state's updates
                    return
                checkpoint.save(run_dir, algorithm.arrays(), {"config": dataclasses.asdict(config),
                                                              "backend": backend, **run_state,
                                                              "algorithm": algorithm.json_state()})
                last_written = run_state

            if not resume:
                save()  # before metrics.csv: a run with metrics always has a checkpoint to resume from
            metrics = MetricsLog(os.path.join(run_dir, "metrics.csv"), keep_episodes=state.episodes if resume else None)
            updates = _update_log(algorithm_class, run_dir, state, resume, saved_json)

            def log_updates():
                if updates is not None:
                    for row in algorithm.take_finished_updates():
                        updates.write(*row)

            clock = _Clock(state)
            interrupted = _loop(pool, algorithm, state, stop_rule, clock, metrics, progress, save,
                                checkpoint_every, stop_requested, run_dir, log_updates)
            log_updates()
            save()
        finally:
            for closeable in (pool, metrics, updates, progress):
                if closeable is not None:
                    closeable.close()
    _print_summary(state, interrupted, clock, pool.replays, algorithm_class.task_unit, run_dir, progress.stream)
    return TrainingOutcome(state, interrupted)


def _update_log(algorithm_class, run_dir, state, resume, saved_json):
    """The run's updates.csv log (None for an algorithm that does not report its updates); on resume,
    saved_json is the algorithm's state in the checkpoint."""
    if not algorithm_class.reports_updates:
        return None
    path = os.path.join(run_dir, "updates.csv")
    if not resume:
        return UpdateLog(path)
    return UpdateLog(path, keep_updates=state.updates, checkpoint_env_steps=state.env_steps,
                     checkpoint_stats=(saved_json or {}).get("learned_stats"))


def _check_options(stop_rule, workers, checkpoint_every, ray_address, learner_threads):
    """Check the options that are not settings of the run; returns the worker count (None: Ray decides)."""
    if workers is None and ray_address is None:
        workers = os.cpu_count() or 1
    for name, value in (("--workers", workers), ("--checkpoint-every", checkpoint_every),
                        ("--learner-threads", learner_threads)):
        if value is not None and value < 1:
            raise TrainingError(f"{name} must be at least 1, got {value}")
    if learner_threads is not None and learner_threads > MAX_THREADS:
        raise TrainingError(f"--learner-threads must be at most {MAX_THREADS}, got {learner_threads}")
    stop_rule.validate()
    if ray_address is not None:
        from .ray_cluster import require_ray

        require_ray()  # says which install command to run, before anything is done
    return workers


def _new_run(config_overrides):
    """(config, state, arrays, the algorithm's JSON state) of a run that starts now."""
    config = Config(**{k: v for k, v in config_overrides.items() if v is not None})
    config.validate()
    config = config.with_named_actions()  # so that a later default cannot change what a resume plays
    spec = config.policy()
    algorithm_class = get_algorithm(config.algo)
    try:
        arrays = {**spec.initial_parameters(config.seed), **algorithm_class.initial_state(spec, config)}
    except MemoryError:
        raise TrainingError(f"not enough memory for the arrays of --hidden {config.hidden}") from None
    return config, RunState(), arrays, algorithm_class.initial_json(config)


def _resume_run(run_dir, overrides):
    """(config, state, arrays, the algorithm's JSON state) of the run in run_dir; overrides are settings
    given on the command line."""
    if not os.path.isdir(run_dir):
        raise TrainingError(f"--resume: no run directory at {run_dir}")
    arrays, saved = checkpoint.load(run_dir)
    config = Config.of_checkpoint(saved["config"], run_dir)
    if overrides.get("actions") is not None:  # compared by name, as the run saved them
        overrides = {**overrides, "actions": dataclasses.replace(config, actions=overrides["actions"])
                     .with_named_actions().actions}
    conflicts = [f"{option_name(name)} {value} (run has {getattr(config, name)})"
                 for name, value in overrides.items() if value is not None and value != getattr(config, name)]
    if conflicts:
        raise TrainingError("cannot resume with different settings: " + "; ".join(conflicts))
    spec = config.policy()
    algorithm_class = get_algorithm(config.algo)
    checkpoint.check_fits(run_dir, arrays, {**spec.parameters(), **algorithm_class.state_arrays(spec, config)})
    state = RunState(episodes=saved["episodes"], env_steps=saved["env_steps"], updates=saved.get("updates", 0),
                     running_reward=saved.get("running_reward"), seconds=saved["seconds"])
    return config, state, arrays, saved.get("algorithm") or algorithm_class.initial_json(config)


def _prepare_run_dir(run_dir):
    """Create run_dir for a new run; refuse one that holds a checkpoint.

    A directory with metrics.csv but no checkpoint is a run killed before its
    first checkpoint (fastpg 0.1 wrote the first only after a batch):
    it holds nothing to resume, so the run starts again there.
    """
    if os.path.exists(os.path.join(run_dir, checkpoint.CHECKPOINT)):
        raise TrainingError(f"{run_dir} already holds a run; pass --resume to continue it, or choose another --run-dir")
    try:
        os.makedirs(run_dir, exist_ok=True)
        probe = os.path.join(run_dir, ".write-test")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as exc:
        raise TrainingError(f"cannot write to run directory {run_dir}: {exc.strerror}") from None


def _pool_maker(ray_address, workers):
    """A function (settings, on_warning) -> pool; with Ray, connects first.

    Segments, all of one length, are queued two to a worker, so that no
    worker waits for the learner's process between them."""
    def depth(settings):
        return 2 if settings.unit == "segment" else 1

    if ray_address is None:
        return lambda settings, on_warning: WorkerPool(workers, settings, on_warning=on_warning,
                                                        task_name=settings.unit, depth=depth(settings))
    from . import ray_cluster
    from .ray_pool import RayPool

    shutdown = ray_cluster.connect(ray_address, workers)
    return lambda settings, on_warning: RayPool(workers, settings, on_warning=on_warning, task_name=settings.unit,
                                                shutdown=shutdown, depth=depth(settings))


def describe_game(env_id, actions):
    """One line: the game's screen rule and the actions the policy plays."""
    names = action_names(env_id)
    return (f"{env_id}: {game_profile(env_id).describe()}; "
            f"actions {', '.join(names[index] for index in actions)}")


def _note_idle_workers(n_workers, tasks_per_batch, progress):
    if n_workers > tasks_per_batch:
        progress.message(f"note: at most {tasks_per_batch} of the {n_workers} workers are busy at once, "
                         f"because a batch's {tasks_per_batch} tasks share one set of weights; "
                         f"--batch-size (reinforce) or --lanes (ppo) {n_workers} or more keeps them all busy "
                         "(it changes the algorithm: README, 'Solving Pong')")


def _note_schedules(config, max_steps, progress):
    """Say when the learning rate and the entropy weight fall to 0, and where --max-steps stops the run first."""
    if config.lr_decay_steps:
        rate = f"learning rate {config.learning_rate:g}, falling linearly to 0 at {config.lr_decay_steps:,} env steps"
        flag = "(--lr-decay-steps; 0 keeps it constant)"
        if max_steps is not None and max_steps < config.lr_decay_steps:
            at_stop = linear_decay(config.learning_rate, max_steps, config.lr_decay_steps)
            progress.message(f"{rate} {flag}; training stops before that, at about {max_steps:,} (--max-steps), "
                             f"with the rate at {at_stop:.3g}")
        else:
            progress.message(f"{rate}, where training stops {flag}")
    if config.ent_decay_steps:
        progress.message(f"entropy weight {config.ent_coef:g}, falling linearly to 0 at "
                         f"{config.ent_decay_steps:,} env steps (--ent-decay-steps)")


@contextlib.contextmanager
def _stop_requests():
    """Turn SIGINT and SIGTERM into a request to stop at the next chance; yields a list that fills when asked."""
    requested = []

    def request_stop(signum, frame):
        requested.append(signum)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield requested
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Clock:
    """This invocation's wall clock and env steps, on top of what the run had before (a resume)."""

    def __init__(self, state):
        self.start = time.perf_counter()
        self.start_steps = state.env_steps
        self.seconds_before = state.seconds

    def elapsed(self):
        return time.perf_counter() - self.start

    def rate(self, env_steps):
        elapsed = self.elapsed()
        return (env_steps - self.start_steps) / elapsed if elapsed > 0 else 0.0


def _loop(pool, algorithm, state, stop_rule, clock, metrics, progress, save, checkpoint_every, stop_requested,
          run_dir, log_updates):
    """Play and learn batch after batch until stop_rule or a stop request; returns True when interrupted.
    log_updates() logs the updates finished so far (the caller logs the last after the loop's final flush).

    A checkpoint due after a batch is written while the next batch plays (:class:`_PendingCheckpoint`), and
    waited for before the next update.
    """
    last_checkpoint = state.episodes
    pending = None  # the checkpoint being written beside the batch in play
    tasks = []

    def sent():
        algorithm.batch_sent()
        if pending is not None:
            pending.start()

    try:
        while not stop_rule.reached(state):
            tasks = algorithm.next_tasks(state)
            steps, running, episodes = state.env_steps, state.running_reward, state.episodes
            try:
                for result in pool.play(tasks, should_stop=lambda: bool(stop_requested), sent=sent):
                    n_steps, finished = algorithm.observe(result)
                    for task in algorithm.early_tasks():
                        pool.prefetch(task)
                    for reward, length, step in finished:
                        episodes += 1
                        running = reward if running is None else RUNNING_DECAY * running + (1 - RUNNING_DECAY) * reward
                        rate = clock.rate(steps + step)
                        metrics.write(episodes, steps + step, reward, running, clock.seconds_before + clock.elapsed(),
                                      rate, algorithm.last_stats)
                        progress.episode(episodes, steps + step, length, reward, running, rate)
                    steps += n_steps
            except StopRequested:
                pending, last_checkpoint = None, _finish(pending, tasks, run_dir, last_checkpoint)
                algorithm.discard()
                _flush(algorithm, tasks, run_dir, last_checkpoint)
                return True
            pending, last_checkpoint = None, _finish(pending, tasks, run_dir, last_checkpoint)
            with _reported_as_divergence(tasks, run_dir, last_checkpoint):
                algorithm.update(state)
            state.episodes = episodes
            state.env_steps, state.running_reward = steps, running
            state.updates += 1
            state.seconds = clock.seconds_before + clock.elapsed()
            log_updates()
            progress.batch(state.episodes, state.env_steps, running, clock.rate(steps), state.seconds)
            if stop_requested:
                _flush(algorithm, tasks, run_dir, last_checkpoint)
                return True
            if state.episodes - last_checkpoint >= checkpoint_every and not stop_rule.reached(state):
                pending = _PendingCheckpoint(algorithm, save, state)  # (the run's last checkpoint follows the loop)
        _flush(algorithm, tasks, run_dir, last_checkpoint)
        return False
    finally:
        if pending is not None:  # an error ends the loop: still write this checkpoint (of a good earlier state);
            # the error raised is the one that ended the loop
            with contextlib.suppress(BaseException):
                pending.wait()


class _PendingCheckpoint:
    """The checkpoint after a batch, written in a thread while the next batch plays.

    It first waits for the update in flight (``flush``), then writes; neither needs the workers to wait, and
    nothing it reads changes until the next update (the algorithm interface's contract). The run state is
    copied when the checkpoint is due.
    """

    def __init__(self, algorithm, save, state):
        self.episodes = state.episodes
        run_state = dataclasses.asdict(state)
        self._write = Background(lambda: (algorithm.flush(), save(run_state)), name="fastpg-checkpoint")

    def start(self):
        self._write.start()

    def wait(self):
        """Wait for the checkpoint to be written (writing it now if it has not started); raises as flush and
        save do."""
        self._write.result()


def _finish(pending, tasks, run_dir, last_checkpoint):
    """Wait for a pending checkpoint, if any; returns the episodes of the run's latest checkpoint on disk.
    Divergence of the update it waited for becomes DivergedError, as in _flush."""
    if pending is None:
        return last_checkpoint
    with _reported_as_divergence(tasks, run_dir, last_checkpoint):
        pending.wait()
    return pending.episodes


def _flush(algorithm, tasks, run_dir, last_checkpoint):
    """Finish the algorithm's update in flight (an overlapped one), as every checkpoint needs; divergence
    becomes DivergedError."""
    with _reported_as_divergence(tasks, run_dir, last_checkpoint):
        algorithm.flush()


@contextlib.contextmanager
def _reported_as_divergence(tasks, run_dir, last_checkpoint):
    """Turn a NonFiniteArrays raised inside into the run's DivergedError (see _diverged)."""
    try:
        yield
    except NonFiniteArrays as exc:
        raise _diverged(exc, tasks, run_dir, last_checkpoint) from None


def _diverged(exc, tasks, run_dir, last_checkpoint):
    """The DivergedError for a NonFiniteArrays of the update from batch exc.batch, whose tasks (when it is the
    batch just played) are tasks."""
    if not isinstance(tasks[0], int):
        batch = f"segments of batch {exc.batch + 1}"
    elif len(tasks) == 1:
        batch = f"episode {tasks[0] + 1}"
    else:
        batch = f"episodes {tasks[0] + 1}-{tasks[-1] + 1}"
    return DivergedError(
        f"update {exc.batch + 1} ({batch}) made {', '.join(exc.names)} NaN or infinite; "
        f"training stopped, and {run_dir} keeps its checkpoint after episode {last_checkpoint} "
        "(a smaller --learning-rate may help)")


def _print_summary(state, interrupted, clock, replays, task_unit, run_dir, stream):
    elapsed = clock.elapsed()
    session_steps = state.env_steps - clock.start_steps
    running = "n/a" if state.running_reward is None else format(state.running_reward, "+.3f")
    print(f"{'interrupted' if interrupted else 'done'}: {state.episodes} episodes, {state.env_steps:,} env steps, "
          f"running reward {running}; this session {session_steps:,} steps in {elapsed:.1f} s "
          f"({session_steps / elapsed if elapsed > 0 else 0:,.0f} steps/s, {replays} replayed {task_unit}s); "
          f"checkpoint in {run_dir}", file=stream, flush=True)
