"""Rollout workers as Ray actors: the same training on one machine or a cluster.

:class:`RayPool` is the :mod:`fastpg.scheduler` over :class:`RayTransport`, so
it hands back the same results in the same order as
:class:`fastpg.workers.WorkerPool`. The learner stays in the driver and updates
``params`` in place between batches. The weights a task plays go into Ray's
object store once, on the first send that needs them (about 10 MB at 200
hidden units), and every actor fetches that copy once: an episode plays its
run's weights, a segment its batch's. Segments, like local workers', have two
sets of weights (``early_params`` is the second), so the actor-critic's next
batch can start while this one ends. Actors play episode indices seeded from
(run seed, episode index) exactly as local workers do, and send back the
sparse episode (about 100 bytes a step; a per-episode gradient would be 10
MB).

Connecting to Ray is :mod:`fastpg.ray_cluster`'s job.
"""
import os
import signal
import time

from .lanes import Segment
from .ray_cluster import check_room, cluster_cpus, import_ray, package_dir
from .scheduler import Done, Failed, Lost, Ready, Scheduler, WorkerError

START_WARNING_SECONDS = 60.0  # warn when no actor has been placed for this long
LOST_ERRORS = ("RayActorError", "WorkerCrashedError", "NodeDiedError", "ObjectLostError", "OutOfMemoryError")


class EpisodeActor:
    """Plays tasks (episode indices or segments) in a Ray worker: one emulator, and its own copy of each
    set of weights the tasks play (one for episodes, two for segments: ``Segment.weights`` picks one).

    The parameters arrive as a one-element list holding an ObjectRef, so Ray
    does not resolve it on every call: the actor fetches and copies a set's
    parameters only when its reference changes.
    """

    def __init__(self, settings):
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
        except ValueError:  # not the worker's main thread
            pass
        self.sets = [settings.spec.zero_parameters() for _ in range(settings.weight_sets)]
        self.params = self.sets[0]
        self.player = settings.player(*self.sets)
        self.loaded = [None] * len(self.sets)  # the hex of the ObjectRef each set was copied from

    def describe(self):
        """Where this actor runs and which fastpg it imported."""
        import ray

        from . import __version__

        return {"pid": os.getpid(), "node": ray.util.get_node_ip_address(), "version": __version__,
                "package": package_dir()}

    def load_params(self, params, weights=0):
        """Copy parameters from the object store into set ``weights``, unless that set holds them already."""
        import ray

        (ref,) = params
        if ref.hex() != self.loaded[weights]:
            for name, value in ray.get(ref).items():
                self.sets[weights][name][...] = value
            self.loaded[weights] = ref.hex()

    def play(self, params, task):
        """Play the task (an episode index or a segment) with the parameters it plays."""
        self.load_params(params, task.weights if isinstance(task, Segment) else 0)
        return self.player.play(task)


class _Actor:
    def __init__(self, handle):
        self.handle = handle
        self.probe = handle.describe.remote()  # resolves when the actor is up; None once it has
        self.info = None
        self.started = time.monotonic()


class RayTransport:
    """Ray actors, one CPU each, playing with the parameters the driver puts in the object store."""

    starts_ready = False

    def __init__(self, parameter_sets, settings, on_warning=print):
        self._ray = ray = import_ray()
        self._exceptions = ray.exceptions
        # What a lost actor, worker process or node looks like (names that this Ray version has).
        self._lost_errors = tuple(getattr(ray.exceptions, name) for name in LOST_ERRORS
                                  if hasattr(ray.exceptions, name))
        self._sets = parameter_sets
        self._remote_class = ray.remote(num_cpus=1, max_restarts=0)(EpisodeActor)
        self._settings = settings
        self._on_warning = on_warning
        self._warned_waiting = False
        self._warned_package = False
        self._run = 0  # runs of tasks begun
        self._refs = {}  # ("run", run) or ("batch", batch) -> [ObjectRef of the weights its tasks play]
        self._in_flight = {}  # ObjectRef -> actor

    def start(self):
        return _Actor(self._remote_class.remote(self._settings))

    def begin(self):
        self._run += 1  # episodes play their run's weights: the learner changed them since the last run

    def send(self, actor, task):
        self._in_flight[actor.handle.play.remote(self._weights_of(task), task)] = actor

    def _weights_of(self, task):
        """[ObjectRef] (a list keeps Ray from resolving it on each call) of the weights the task plays, put
        into the object store by the first send that needs them. A segment plays its batch's weights, which
        the learner publishes into the segment's set before any segment of the batch goes out (early ones
        included) and leaves there until that batch and the next have ended; an episode plays its run's."""
        if isinstance(task, Segment):
            key, weights = ("batch", task.batch), task.weights
        else:
            key, weights = ("run", self._run), 0
        if key not in self._refs:
            # Keep the batch before this one's: its segments may still be in flight beside early ones.
            self._refs = {k: ref for k, ref in self._refs.items() if k[0] == key[0] and k[1] >= key[1] - 1}
            self._refs[key] = [self._ray.put(self._sets[weights])]
        return self._refs[key]

    def wait(self, actors, timeout):
        refs = [actor.probe for actor in actors if actor.probe is not None]
        refs += [ref for ref, actor in self._in_flight.items() if actor in actors]
        ready = self._ray.wait(refs, num_returns=1, timeout=timeout)[0] if refs else []
        events = []
        for ref in ready:
            if ref in self._in_flight:
                actor = self._in_flight.pop(ref)
                events.append((actor, self._outcome(ref)))
            else:
                actor = next(actor for actor in actors if actor.probe == ref)
                events.append((actor, self._started(actor)))
        self._check_waiting(actors)
        return events

    def _outcome(self, ref):
        try:
            return Done(self._ray.get(ref))
        except self._exceptions.RayTaskError as exc:
            return Failed(str(exc))
        except self._lost_errors as exc:
            cause = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return Lost(f"{type(exc).__name__}: {cause}" if cause else type(exc).__name__)

    def _started(self, actor):
        try:
            actor.info = self._ray.get(actor.probe)
        except self._exceptions.RayError as exc:
            return Lost(f"failed to start: {type(exc).__name__}: {exc}")
        actor.probe = None
        from . import __version__

        info = actor.info
        if info["version"] != __version__:
            raise WorkerError(f"the Ray actor on {info['node']} imported fastpg {info['version']} from "
                              f"{info['package']}, but this driver runs fastpg {__version__}: "
                              "install the same fastpg on every node")
        if info["node"] == self._ray.util.get_node_ip_address() and info["package"] != package_dir() \
                and not self._warned_package:
            self._warned_package = True
            self._on_warning(f"Ray actors on this machine imported fastpg from {info['package']}, this driver "
                             f"from {package_dir()} (start Ray with fastpg.ray_cluster.init_ray to match them)")
        return Ready()

    def _check_waiting(self, actors):
        """Say so, once, when actors wait for a place in the cluster and none is working."""
        starting = [actor for actor in actors if actor.probe is not None]
        if self._warned_waiting or not starting or len(starting) < len(actors):
            return
        if time.monotonic() - min(actor.started for actor in starting) > START_WARNING_SECONDS:
            self._warned_waiting = True
            self._on_warning(f"waiting for Ray to place {len(starting)} actor(s), one CPU each; "
                             f"the cluster has {cluster_cpus()} CPUs")

    def name(self, actor):
        return f"actor {actor.info['pid']} on {actor.info['node']}" if actor.info else "a Ray actor"

    def stop(self, actors):
        for actor in actors:
            self._in_flight = {ref: a for ref, a in self._in_flight.items() if a is not actor}
            try:
                self._ray.kill(actor.handle, no_restart=True)
            except Exception:  # already gone
                pass

    def close(self):
        self._in_flight = {}
        self._refs = {}


class RayPool(Scheduler):
    """n_workers Ray actors (one CPU each) playing tasks with the parameters ``params``, and segments also
    with a second set, ``early_params`` (None for episodes), as :class:`fastpg.workers.WorkerPool` does.

    Needs a Ray connection (:func:`fastpg.ray_cluster.connect`); with
    shutdown=True, close() ends it. n_workers=None means one actor per CPU in
    the cluster.
    """

    def __init__(self, n_workers, settings, on_warning=print, task_name="episode", shutdown=False, depth=1):
        self._shutdown = shutdown
        try:
            if n_workers is None:
                n_workers = max(cluster_cpus(), 1)
            check_room(n_workers)
            sets = [settings.spec.zero_parameters() for _ in range(settings.weight_sets)]
            self.params = sets[0]
            self.early_params = sets[1] if len(sets) > 1 else None
            super().__init__(RayTransport(sets, settings, on_warning), n_workers, on_warning, task_name, depth)
        except BaseException:
            self._end_ray()
            raise

    play = Scheduler.run

    @property
    def actors(self):
        """The actor handles (ActorHandle), in start order; dead ones are replaced."""
        return [actor.handle for actor in self.handles]

    def close(self):
        """Kill the actors; shut Ray down if this pool's caller started it."""
        try:
            super().close()
        finally:
            self._end_ray()

    def _end_ray(self):
        ray = import_ray()
        if self._shutdown and ray.is_initialized():
            ray.shutdown()
        self._shutdown = False
