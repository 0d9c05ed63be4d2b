"""One scheduler for every way of playing episodes in parallel: local processes, Ray actors, eval.

The scheduler owns what must be the same everywhere: which worker gets which
task, handing results back in task order whatever order they finish in,
replaying a task whose worker died (with the same seed, so the result is the
same) at most :data:`MAX_TRIES` times, and stopping at once when asked. A
transport supplies only what differs: how to start a worker, send it a task,
wait for what it reports, and stop it.

A transport has:

- ``start()`` -> a handle for a new worker. With ``starts_ready = False``
  the worker takes tasks only after ``wait`` reports it :class:`Ready`.
- ``begin()``: called before each run of tasks (Ray puts the weights into its
  object store there).
- ``send(handle, task)``: hand the worker a task; raises :class:`WorkerLost`
  when the worker is already gone.
- ``wait(handles, timeout)`` -> a list of ``(handle, event)`` for the given
  workers, each event :class:`Ready`, :class:`Done`, :class:`Failed` or
  :class:`Lost`; empty after ``timeout`` seconds without news.
- ``name(handle)``: how a warning calls the worker ("worker 1234").
- ``stop(handles)``: end these workers (they may be dead already).
- ``close()``: release what the transport itself holds, after the last stop.
"""
import collections
import dataclasses

POLL_SECONDS = 0.2  # how often a waiting scheduler checks should_stop
MAX_TRIES = 3  # a task whose workers keep dying is a bug, not bad luck


class WorkerError(RuntimeError):
    """A worker raised, or kept dying on the same task, or workers keep failing to start."""


class StopRequested(Exception):
    """should_stop() turned true while the scheduler waited."""


class WorkerLost(Exception):
    """Raised by a transport's send when the worker is gone."""


@dataclasses.dataclass
class Ready:
    """The worker has started and can take tasks."""


@dataclasses.dataclass
class Done:
    """The worker finished its task with this result."""

    result: object


@dataclasses.dataclass
class Failed:
    """The worker raised while playing its task: a bug, reported, never retried."""

    message: str


@dataclasses.dataclass
class Lost:
    """The worker died (killed, out of memory, node lost), or could not start."""

    reason: str


@dataclasses.dataclass
class _Slot:
    handle: object
    ready: bool
    task: object = None  # the task it is playing, or None when idle
    current: bool = False  # its task belongs to the run in progress, not to an abandoned one


class Scheduler:
    """n_workers workers of a transport, playing tasks; see the module docstring.

    ``task_name`` names a task in messages ("episode", "game").
    ``on_warning(text)`` reports a replayed task or a replaced worker.
    """

    def __init__(self, transport, n_workers, on_warning=print, task_name="episode"):
        if n_workers < 1:
            raise ValueError(f"n_workers must be at least 1, got {n_workers}")
        self.transport = transport
        self._on_warning = on_warning
        self._task_name = task_name
        self.replays = 0
        self._start_failures = 0
        self._slots = []
        try:
            for _ in range(n_workers):
                self._slots.append(self._new_slot())
        except BaseException:
            self.close()
            raise

    def _new_slot(self):
        return _Slot(self.transport.start(), ready=self.transport.starts_ready)

    @property
    def n_workers(self):
        return len(self._slots)

    @property
    def handles(self):
        """The transport's worker handles, in start order; a dead worker's is replaced in place."""
        return [slot.handle for slot in self._slots]

    def run(self, tasks, should_stop=lambda: False):
        """Play the tasks; yield their results in task order.

        Raises StopRequested (at once, abandoning the rest) when should_stop()
        is true, and WorkerError when a worker fails. Results of tasks
        abandoned by an earlier run are dropped when they arrive.
        """
        order = list(tasks)
        pending = collections.deque(order)
        finished = {}
        attempts = collections.Counter()
        for slot in self._slots:
            slot.current = False
        self.transport.begin()
        position = 0
        while position < len(order):
            for slot in self._slots:
                if slot.ready and slot.task is None and pending:
                    self._send(slot, pending.popleft(), pending, attempts)
            waiting = [slot.handle for slot in self._slots if slot.task is not None or not slot.ready]
            for handle, event in self.transport.wait(waiting, POLL_SECONDS):
                self._receive(self._slot_of(handle), event, finished, pending, attempts)
            if should_stop():
                raise StopRequested
            while position < len(order) and order[position] in finished:
                yield finished.pop(order[position])
                position += 1

    def _slot_of(self, handle):
        return next(slot for slot in self._slots if slot.handle is handle)

    def _send(self, slot, task, pending, attempts):
        slot.task, slot.current = task, True
        attempts[task] += 1
        try:
            self.transport.send(slot.handle, task)
        except WorkerLost as exc:  # died while idle
            self._replace(slot, str(exc), pending, attempts)

    def _receive(self, slot, event, finished, pending, attempts):
        if isinstance(event, Ready):
            slot.ready = True
            self._start_failures = 0
        elif isinstance(event, Done):
            if slot.current:
                finished[slot.task] = event.result
            slot.task = None
        elif isinstance(event, Failed):
            raise WorkerError(f"a worker failed while playing {self._task_name} {slot.task}:\n{event.message}")
        elif isinstance(event, Lost):
            self._replace(slot, event.reason, pending, attempts)

    def _replace(self, slot, reason, pending, attempts):
        """The slot's worker died: start another in its place and put its task back in front."""
        task = slot.task if slot.current else None
        name = self.transport.name(slot.handle)
        if not slot.ready:
            self._start_failures += 1
            if self._start_failures > MAX_TRIES:
                raise WorkerError(f"workers keep failing to start ({self._start_failures} times); the last: "
                                  f"{reason}")
        elif task is not None and attempts[task] >= MAX_TRIES:
            raise WorkerError(f"{self._task_name} {task} killed its worker {attempts[task]} times ({reason})")
        self.transport.stop([slot.handle])
        position = self._slots.index(slot)
        self._slots[position] = self._new_slot()
        if task is None:
            self._on_warning(f"{name} died ({reason}); started a replacement")
            return
        self._on_warning(f"{name} died ({reason}) while playing {self._task_name} {task}; "
                         "replaying it with the same seed on a new worker")
        self.replays += 1
        pending.appendleft(task)

    def close(self):
        """Stop every worker. The scheduler cannot be used afterwards."""
        slots, self._slots = self._slots, []
        self.transport.stop([slot.handle for slot in slots])
        self.transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
