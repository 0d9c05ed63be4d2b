"""Worker processes that play a batch's episodes in parallel.

Every episode of a batch is played with the same weights, so the episodes can
run at once: this is the seed algorithm, not an approximation. The weights
live in shared memory that the learner updates in place between batches;
workers send back sparse episodes (about 100 bytes a step). Episodes are
handed back in index order whatever order they finish in, and an episode
whose worker dies is replayed, with the same seed, on a fresh worker.
"""
import collections
import contextlib
import multiprocessing as mp
import os
import signal
import traceback
from multiprocessing.connection import wait

import numpy as np

N_PIXELS = 80 * 80
POLL_SECONDS = 0.2  # how often a waiting pool checks should_stop
MAX_REPLAYS = 3  # an episode whose workers keep dying is a bug, not bad luck
SINGLE_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class WorkerError(RuntimeError):
    """A worker raised, or kept dying on the same episode."""


class StopRequested(Exception):
    """should_stop() turned true while the pool waited."""


def shared_weights(W1_buffer, W2_buffer, n_hidden):
    """numpy views of the shared weights: W1 (H, 6400) Fortran-ordered, W2 (H,)."""
    W1 = np.frombuffer(W1_buffer, dtype=np.float64).reshape((n_hidden, N_PIXELS), order="F")
    W2 = np.frombuffer(W2_buffer, dtype=np.float64)
    return W1, W2


def worker_main(conn, W1_buffer, W2_buffer, n_hidden, env_id, backend_name, run_seed):
    """Play the episode indices received on conn until told to stop (None) or orphaned."""
    # Ctrl-C reaches the whole process group; the parent decides when to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # already inherited; kept explicit
    from .backends import get_backend
    from .env import AtariGame
    from .rollout import play_episode

    W1, W2 = shared_weights(W1_buffer, W2_buffer, n_hidden)
    stepper = get_backend(backend_name).stepper(W1, W2)
    game = AtariGame(env_id)
    while True:
        try:
            index = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if index is None:
            return
        try:
            episode = play_episode(game, stepper, run_seed, index)
        except Exception:
            conn.send(("error", index, traceback.format_exc()))
            return
        conn.send(("episode", index, episode))


@contextlib.contextmanager
def single_threaded_blas_children():
    """Processes started inside inherit a single-threaded BLAS setting.

    Each worker plays one game on one core; a multi-threaded BLAS there would
    only contend with the other workers.
    """
    saved = {name: os.environ.get(name) for name in SINGLE_THREAD_ENV}
    os.environ.update({name: "1" for name in SINGLE_THREAD_ENV})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _sigint_ignored_by_child():
    """Start a child that ignores SIGINT from its first instruction, losing no parent Ctrl-C.

    Ctrl-C signals the whole process group; a worker still importing would
    die with a traceback. An ignored disposition survives exec, so the parent
    ignores SIGINT while it starts the child. Meanwhile SIGINT is blocked
    (Linux keeps a blocked signal pending even when ignored) and one already
    pending is re-sent, so the parent still sees every Ctrl-C.
    """
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    was_pending = signal.SIGINT in signal.sigpending()  # SIG_IGN would discard it
    previous_handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous_handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)  # delivers any that came meanwhile
        if was_pending:
            os.kill(os.getpid(), signal.SIGINT)


class _Worker:
    def __init__(self, process, conn):
        self.process = process
        self.conn = conn
        self.task = None  # the episode index it is playing


class WorkerPool:
    """n_workers processes sharing W1/W2 (the attributes ``W1``, ``W2``)."""

    def __init__(self, n_workers, n_hidden, env_id, backend_name, run_seed, on_warning=print):
        if n_workers < 1:
            raise ValueError(f"n_workers must be at least 1, got {n_workers}")
        self._ctx = mp.get_context("spawn")
        self._W1_buffer = self._ctx.RawArray("d", n_hidden * N_PIXELS)
        self._W2_buffer = self._ctx.RawArray("d", n_hidden)
        self.W1, self.W2 = shared_weights(self._W1_buffer, self._W2_buffer, n_hidden)
        self._args = (self._W1_buffer, self._W2_buffer, n_hidden, env_id, backend_name, run_seed)
        self._on_warning = on_warning
        self.replays = 0
        self._workers = []
        for _ in range(n_workers):
            self._workers.append(self._start_worker())

    @property
    def n_workers(self):
        return len(self._workers)

    def _start_worker(self):
        parent_conn, child_conn = self._ctx.Pipe()
        process = self._ctx.Process(target=worker_main, args=(child_conn, *self._args), daemon=True)
        with single_threaded_blas_children(), _sigint_ignored_by_child():
            process.start()
        child_conn.close()
        return _Worker(process, parent_conn)

    @property
    def pids(self):
        return [worker.process.pid for worker in self._workers]

    def play(self, indices, should_stop=lambda: False):
        """Play the given episode indices; yield the episodes in index order.

        Raises StopRequested (at once, abandoning the batch) when should_stop()
        is true, and WorkerError when a worker fails.
        """
        pending = collections.deque(indices)
        order = list(indices)
        finished = {}
        attempts = collections.Counter()
        next_position = 0
        while next_position < len(order):
            for worker in self._workers:
                if worker.task is None and pending:
                    self._assign(worker, pending, attempts)
            busy = [w for w in self._workers if w.task is not None]
            ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=POLL_SECONDS)
            for worker in busy:
                if worker.conn in ready or worker.process.sentinel in ready:
                    self._collect(worker, finished, pending, attempts)
            if should_stop():
                raise StopRequested
            while next_position < len(order) and order[next_position] in finished:
                yield finished.pop(order[next_position])
                next_position += 1

    def _assign(self, worker, pending, attempts):
        worker.task = pending.popleft()
        attempts[worker.task] += 1
        try:
            worker.conn.send(worker.task)
        except (BrokenPipeError, OSError):
            self._replace(worker, pending, attempts)  # died while idle

    def _collect(self, worker, finished, pending, attempts):
        try:
            kind, index, payload = worker.conn.recv()
        except (EOFError, OSError):
            self._replace(worker, pending, attempts)
            return
        worker.task = None
        if kind == "error":
            raise WorkerError(f"a worker failed while playing episode {index}:\n{payload}")
        finished[index] = payload

    def _replace(self, worker, pending, attempts):
        """worker died mid-episode: start another and put its episode back in front."""
        index = worker.task
        worker.process.join(timeout=1.0)
        exit_code = worker.process.exitcode
        if attempts[index] >= MAX_REPLAYS:
            raise WorkerError(f"episode {index} killed its worker {attempts[index]} times (exit code {exit_code})")
        self._on_warning(
            f"worker {worker.process.pid} died (exit code {exit_code}) while playing episode {index}; "
            "replaying it with the same seed on a new worker"
        )
        self.replays += 1
        worker.conn.close()
        position = self._workers.index(worker)
        self._workers[position] = self._start_worker()
        pending.appendleft(index)

    def close(self):
        for worker in self._workers:
            try:
                worker.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for worker in self._workers:
            worker.process.join(timeout=2.0)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
        self._workers = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
