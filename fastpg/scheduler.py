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

A caller that knows some tasks of its next run early (the actor-critic's next
batch, once its weights are published) may hand them to :meth:`Scheduler.prefetch`
during a run: they go to workers that would otherwise wait at the run's end,
and their results wait for the run that lists them. Only for a transport whose
workers can play a task before its run's ``begin()``.
"""
import collections
import dataclasses

POLL_SECONDS = 0.2  # how often a waiting scheduler checks should_stop
MAX_TRIES = 3  # a task whose workers keep dying is a bug, not bad luck
# What a task held by a worker is to the scheduler: one of the run in progress, one handed to prefetch (of the
# next run), or one of an abandoned run, whose result is dropped.
CURRENT, EARLY, DROPPED = "current", "early", "dropped"


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
    # The tasks sent to it and not yet reported, oldest (the one it plays) first, each as
    # (task, CURRENT, EARLY or DROPPED).
    tasks: collections.deque = dataclasses.field(default_factory=collections.deque)


class Scheduler:
    """n_workers workers of a transport, playing tasks; see the module docstring.

    ``task_name`` names a task in messages ("episode", "game").
    ``on_warning(text)`` reports a replayed task or a replaced worker.
    ``depth``: how many tasks a worker may hold at once. With 2, a worker
    starts its next task as soon as it reports one, instead of waiting for
    the scheduler's answer; a task is then committed to a worker before it
    starts, so only tasks of about equal length (segments) gain.
    """

    def __init__(self, transport, n_workers, on_warning=print, task_name="episode", depth=1):
        if n_workers < 1:
            raise ValueError(f"n_workers must be at least 1, got {n_workers}")
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self.depth = depth
        self.transport = transport
        self._on_warning = on_warning
        self._task_name = task_name
        self.replays = 0
        self.early_sent = 0  # tasks sent before their run began
        self._early = collections.deque()  # tasks given to prefetch and not sent yet
        self._early_results = {}  # task -> result of an early task that finished before its run
        self._early_attempts = collections.Counter()  # tries of early tasks, carried into their run
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

    def run(self, tasks, should_stop=lambda: False, sent=None):
        """Play the tasks; yield their results in task order.

        Raises StopRequested (at once, abandoning the rest) when should_stop()
        is true, and WorkerError when a worker fails. Results of tasks
        abandoned by an earlier run are dropped when they arrive. ``sent()``,
        when given, is called once the first tasks are out.
        """
        order = list(tasks)
        listed = set(order)
        # Early tasks this run lists are its own: finished, or in flight with the tries they took.
        finished = {task: result for task, result in self._early_results.items() if task in listed}
        attempts = collections.Counter({task: n for task, n in self._early_attempts.items() if task in listed})
        self._early.clear()  # the ones never sent go out below as this run's own
        self._early_results.clear()
        self._early_attempts.clear()
        in_flight = set()
        for slot in self._slots:
            slot.tasks = collections.deque((task, CURRENT if kind == EARLY and task in listed else DROPPED)
                                           for task, kind in slot.tasks)
            in_flight.update(task for task, kind in slot.tasks if kind == CURRENT)
        pending = collections.deque(task for task in order if task not in finished and task not in in_flight)
        self.transport.begin()
        position = 0
        while position < len(order):
            for held in range(self.depth):  # idle workers first, then a task queued behind each busy one
                for slot in self._slots:  # this run's tasks first, then the next run's early ones
                    if not slot.ready or len(slot.tasks) > held:
                        continue
                    if pending:
                        self._send(slot, pending.popleft(), CURRENT, pending, attempts)
                    elif self._early:
                        self._send(slot, self._early.popleft(), EARLY, pending, attempts)
            if sent is not None:
                sent, call = None, sent
                call()
            waiting = [slot.handle for slot in self._slots if slot.tasks or not slot.ready]
            for handle, event in self.transport.wait(waiting, POLL_SECONDS):
                self._receive(self._slot_of(handle), event, finished, pending, attempts)
            if should_stop():
                raise StopRequested
            while position < len(order) and order[position] in finished:
                yield finished.pop(order[position])
                position += 1

    def prefetch(self, task):
        """Queue a task of the next run (see the module docstring): it is sent once this run's tasks are all
        out and a worker has room, and a later run that does not list it drops its result."""
        self._early.append(task)

    def _slot_of(self, handle):
        return next(slot for slot in self._slots if slot.handle is handle)

    def _send(self, slot, task, kind, pending, attempts):
        """Send a task of this run (CURRENT) or of the next (EARLY, its tries counted apart)."""
        slot.tasks.append((task, kind))
        if kind == EARLY:
            self._early_attempts[task] += 1
            self.early_sent += 1
        else:
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
            task, kind = slot.tasks.popleft()
            if kind == CURRENT:
                finished[task] = event.result
            elif kind == EARLY:
                self._early_results[task] = event.result
        elif isinstance(event, Failed):
            raise WorkerError(f"a worker failed while playing {self._task_name} {slot.tasks[0][0]}:\n"
                              f"{event.message}")
        elif isinstance(event, Lost):
            self._replace(slot, event.reason, pending, attempts)

    def _replace(self, slot, reason, pending, attempts):
        """The slot's worker died: start another in its place and put its tasks back in front, in order (early
        ones in front of the early queue).

        Only the first was playing; the ones queued behind it are not counted as tries."""
        held = [task for task, kind in slot.tasks if kind == CURRENT]
        held_early = [task for task, kind in slot.tasks if kind == EARLY]
        for queued, kind in list(slot.tasks)[1:]:
            if kind == CURRENT:
                attempts[queued] -= 1
            elif kind == EARLY:
                self._early_attempts[queued] -= 1
        first, kind = slot.tasks[0] if slot.tasks else (None, DROPPED)
        task = None if kind == DROPPED else first
        tries = attempts if kind == CURRENT else self._early_attempts
        name = self.transport.name(slot.handle)
        if not slot.ready:
            self._start_failures += 1
            if self._start_failures > MAX_TRIES:
                raise WorkerError(f"workers keep failing to start ({self._start_failures} times); the last: "
                                  f"{reason}")
        elif task is not None and tries[task] >= MAX_TRIES:
            raise WorkerError(f"{self._task_name} {task} killed its worker {tries[task]} times ({reason})")
        self.transport.stop([slot.handle])
        position = self._slots.index(slot)
        self._slots[position] = self._new_slot()
        pending.extendleft(reversed(held))
        self._early.extendleft(reversed(held_early))
        if task is None:
            self._on_warning(f"{name} died ({reason}); started a replacement")
            return
        self._on_warning(f"{name} died ({reason}) while playing {self._task_name} {task}; "
                         "replaying it with the same seed on a new worker")
        self.replays += 1

    def close(self):
        """Stop every worker. The scheduler cannot be used afterwards."""
        slots, self._slots = self._slots, []
        self.transport.stop([slot.handle for slot in slots])
        self.transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
