"""Worker processes on this machine that play episodes in parallel, for training and eval.

Every episode of a batch is played with the same weights, so the episodes can
run at once: this is the seed algorithm, not an approximation. The policy's
parameters live in shared memory that the learner updates in place between
batches; workers send back sparse episodes (about 100 bytes a step).
:class:`WorkerPool` is the :mod:`fastpg.scheduler` over
:class:`ProcessTransport`, so tasks come back in order and a task whose
worker dies is replayed with the same seed on a fresh worker.
"""
import contextlib
import math
import multiprocessing as mp
import os
import select
import signal
import traceback

import numpy as np

from .policy import CACHE_LINE
from .scheduler import Done, Failed, Lost, Scheduler, WorkerLost

SINGLE_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
STOP_SECONDS = 2.0  # how long a worker told to stop may take before it is killed


def shared_buffers(ctx, spec):
    """A shared buffer per parameter, a cache line longer than it: shared_arrays starts each array on a line."""
    return {name: ctx.RawArray("d", array.size + CACHE_LINE // 8) for name, array in spec.parameters().items()}


def shared_arrays(buffers, spec):
    """numpy views (name -> array) of shared_buffers laid out as spec's parameters declare, each starting a
    cache line (every process maps the buffers at page-aligned addresses, so all agree on the offset)."""
    arrays = {}
    for name, array in spec.parameters().items():
        flat = np.frombuffer(buffers[name], dtype=np.float64)
        start = (-flat.ctypes.data % CACHE_LINE) // 8
        arrays[name] = flat[start:start + array.size].reshape(array.shape, order=array.order)
    return arrays


def worker_main(conn, buffer_sets, settings):
    """Play the task indices received on conn until told to stop (None) or orphaned. buffer_sets: the
    shared_buffers of each set of weights (one, or two for segments)."""
    # Ctrl-C reaches the whole process group; the parent decides when to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # already inherited; kept explicit
    player = settings.player(*(shared_arrays(buffers, settings.spec) for buffers in buffer_sets))
    while True:
        try:
            index = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if index is None:
            return
        try:
            result = player.play(index)
        except Exception:
            conn.send(("failed", traceback.format_exc()))
            return
        conn.send(("done", result))


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


class _Process:
    def __init__(self, process, conn):
        self.process = process
        self.conn = conn


class ProcessTransport:
    """Spawned processes that share the parameters' memory; a pipe each carries tasks and results."""

    starts_ready = True

    def __init__(self, buffer_sets, settings):
        self._ctx = mp.get_context("spawn")
        self._args = (buffer_sets, settings)
        self._polled = ()  # the handles that self._poller watches, and the handle of each of its fds
        self._poller = self._handle_of_fd = None

    def start(self):
        parent_conn, child_conn = self._ctx.Pipe()
        process = self._ctx.Process(target=worker_main, args=(child_conn, *self._args), daemon=True)
        with single_threaded_blas_children(), _sigint_ignored_by_child():
            process.start()
        child_conn.close()
        return _Process(process, parent_conn)

    def begin(self):
        pass  # the parameters are already in shared memory

    def send(self, handle, task):
        try:
            handle.conn.send(task)
        except (BrokenPipeError, OSError):
            raise WorkerLost(self._exit(handle)) from None

    def wait(self, handles, timeout):
        ready = self._ready(handles, timeout)
        events = []
        for handle in handles:
            if handle in ready:
                try:
                    kind, payload = handle.conn.recv()
                except (EOFError, OSError):
                    events.append((handle, Lost(self._exit(handle))))
                    continue
                events.append((handle, Done(payload) if kind == "done" else Failed(payload)))
        return events

    def _ready(self, handles, timeout):
        """The handles whose pipe holds a message or whose process has ended, after waiting up to timeout
        seconds for one. One poll object serves every call with the same handles: building one per call, as
        multiprocessing.connection.wait does, cost more main-thread CPU than the wait itself."""
        if tuple(handles) != self._polled:
            self._poller, self._handle_of_fd = select.poll(), {}
            for handle in handles:
                for fd in (handle.conn.fileno(), handle.process.sentinel):
                    self._poller.register(fd, select.POLLIN)  # a closed pipe or ended process reports POLLHUP
                    self._handle_of_fd[fd] = handle
            self._polled = tuple(handles)
        return {self._handle_of_fd[fd] for fd, _ in self._poller.poll(math.ceil(timeout * 1000))}

    @staticmethod
    def _exit(handle):
        handle.process.join(timeout=1.0)
        return f"exit code {handle.process.exitcode}"

    def name(self, handle):
        return f"worker {handle.process.pid}"

    def stop(self, handles):
        for handle in handles:
            try:
                handle.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for handle in handles:
            handle.process.join(timeout=STOP_SECONDS)
            if handle.process.is_alive():
                handle.process.kill()
                handle.process.join()
            handle.conn.close()

    def close(self):
        pass


class WorkerPool(Scheduler):
    """n_workers local processes playing with shared parameters (the dict ``params``).

    settings: a :class:`fastpg.rollout.PlayerSettings`. ``play(indices,
    should_stop)`` yields the episodes (or, without ``settings.record``,
    their rewards) in index order. ``depth``: as the Scheduler's. Segment
    players also share a second set of weights, ``early_params`` (None for
    episodes), which lets a batch start before the one before it ends.
    """

    def __init__(self, n_workers, settings, on_warning=print, task_name="episode", depth=1):
        ctx = mp.get_context("spawn")
        buffer_sets = [shared_buffers(ctx, settings.spec) for _ in range(settings.weight_sets)]
        self.params = shared_arrays(buffer_sets[0], settings.spec)
        self.early_params = shared_arrays(buffer_sets[1], settings.spec) if len(buffer_sets) > 1 else None
        super().__init__(ProcessTransport(buffer_sets, settings), n_workers, on_warning, task_name, depth)

    play = Scheduler.run

    @property
    def pids(self):
        return [handle.process.pid for handle in self.handles]
