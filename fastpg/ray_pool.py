"""Rollout workers as Ray actors: the same training on one machine or a cluster.

:class:`RayPool` has :class:`fastpg.workers.WorkerPool`'s interface and
results. The learner stays in the driver and updates ``W1``/``W2`` in place
between batches; each :meth:`RayPool.play` puts them into Ray's object store
once (about 10 MB at 200 hidden units) and every actor fetches that copy once
per batch. Actors play episode indices with :func:`fastpg.rollout.play_episode`,
seeded from (run seed, episode index) exactly as local workers do, and send
back the sparse episode (about 100 bytes a step; a per-episode gradient would
be 10 MB). An episode whose actor dies is replayed, with the same seed, on
another actor, and a replacement actor is started.

Importing this module does not import Ray; :func:`connect` does.
"""
import collections
import os
import signal
import socket
import time

import numpy as np

from .workers import MAX_REPLAYS, N_PIXELS, POLL_SECONDS, StopRequested, WorkerError

INSTALL_COMMAND = 'pip install "fastpg[ray]"'
START_WARNING_SECONDS = 60.0  # warn when no actor has been placed for this long
CONNECT_TIMEOUT_SECONDS = 10.0  # for a HOST:PORT that does not answer
LOST_ERRORS = ("RayActorError", "WorkerCrashedError", "NodeDiedError", "ObjectLostError", "OutOfMemoryError")


class RaySetupError(ValueError):
    """Ray is missing, the cluster cannot be reached, or it cannot host the actors."""


def _import_ray():
    try:
        import ray
    except ImportError:
        raise RaySetupError(f"--ray needs Ray, an optional extra of fastpg; install it with: {INSTALL_COMMAND}") from None
    return ray


def require_ray():
    """Raise RaySetupError, naming the install command, when Ray is not installed."""
    _import_ray()


def init_ray(**options):
    """ray.init(**options), run from the directory that holds the imported fastpg.

    Ray puts the driver's working directory first on its workers' sys.path.
    From a source checkout after ``pip install .``, that would make local
    actors import ./fastpg (without compiled kernels) instead of the driver's
    fastpg; from the package's parent directory they import the same one.
    """
    ray = _import_ray()
    cwd = os.getcwd()
    os.chdir(os.path.dirname(_package_dir()))
    try:
        return ray.init(**options)
    finally:
        os.chdir(cwd)


def _package_dir():
    from . import __file__ as package_file

    return os.path.dirname(os.path.abspath(package_file))


def connect(address="local", n_workers=None):
    """Start or join Ray; returns True when this call started it (the caller shuts it down).

    address: None or "local" starts a local instance (with n_workers CPUs when
    given, so that many actors fit); "auto" or "host:port" joins a cluster
    started with ``ray start``. If this process is already connected to Ray
    (a notebook, a test), that connection is used as it is.
    """
    ray = _import_ray()
    if ray.is_initialized():
        _check_room(n_workers)
        return False
    options = {"include_dashboard": False, "logging_level": "warning"}
    if address in (None, "local"):
        options.update(address="local", num_cpus=n_workers)
    else:
        _check_reachable(address)
        options["address"] = address
    try:
        init_ray(**options)
    except ConnectionError as exc:
        raise RaySetupError(f"cannot join the Ray cluster at {address!r}: {exc} (start one with "
                            "`ray start --head`, or use --ray local; a cluster with token authentication also "
                            "needs RAY_AUTH_MODE=token and its token, from `ray get-auth-token` on the head)") from None
    try:
        _check_room(n_workers)
    except RaySetupError:
        ray.shutdown()
        raise
    return True


def _check_reachable(address, timeout=CONNECT_TIMEOUT_SECONDS):
    """Raise RaySetupError when nothing answers at a HOST:PORT address (ray.init would retry for minutes)."""
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return  # "auto", or a form that Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise RaySetupError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc} (the head node's "
                            "`ray start --head` prints the address to use)") from None


def _check_room(n_workers):
    """Raise RaySetupError when the cluster has fewer CPUs than the n_workers actors need (one each)."""
    cpus = cluster_cpus()
    if n_workers is not None and n_workers > cpus:
        raise RaySetupError(f"--workers {n_workers}: the Ray cluster has {cpus} CPUs and each actor "
                            "needs one; add nodes or ask for fewer workers")


def cluster_cpus():
    """Whole CPUs in the connected Ray cluster."""
    ray = _import_ray()
    return int(ray.cluster_resources().get("CPU", 0))


class EpisodeActor:
    """Plays episode indices in a Ray worker: one emulator, one stepper, its own weights.

    The weights arrive as a one-element list holding an ObjectRef, so Ray does
    not resolve it on every call: the actor fetches and copies a batch's
    weights only when the reference changes.
    """

    def __init__(self, n_hidden, env_id, backend_name, run_seed):
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
        except ValueError:  # not the worker's main thread
            pass
        from .backends import get_backend
        from .env import AtariGame

        self.W1 = np.zeros((n_hidden, N_PIXELS), order="F")
        self.W2 = np.zeros(n_hidden)
        self.stepper = get_backend(backend_name).stepper(self.W1, self.W2)
        self.game = AtariGame(env_id)
        self.run_seed = run_seed
        self.weights_id = None

    def describe(self):
        """Where this actor runs and which fastpg it imported."""
        import ray

        from . import __version__

        return {"pid": os.getpid(), "node": ray.util.get_node_ip_address(), "version": __version__,
                "package": _package_dir()}

    def load_weights(self, weights):
        """Copy the batch's (W1, W2) from the object store, unless they are already loaded."""
        import ray

        (ref,) = weights
        if ref.hex() != self.weights_id:
            W1, W2 = ray.get(ref)
            self.W1[...] = W1
            self.W2[...] = W2
            self.weights_id = ref.hex()

    def play(self, weights, index):
        """Play episode index with the batch's weights; returns the sparse episode."""
        from .rollout import play_episode

        self.load_weights(weights)
        return play_episode(self.game, self.stepper, self.run_seed, index)


class _Actor:
    def __init__(self, handle, probe):
        self.handle = handle
        self.probe = probe  # the describe() call that says it is up; None once it is
        self.info = None
        self.started = time.monotonic()


class RayPool:
    """n_workers Ray actors (one CPU each) playing episodes; attributes ``W1``, ``W2`` as WorkerPool's.

    Needs a Ray connection (:func:`connect`); with shutdown=True, close()
    ends it. n_workers=None means one actor per CPU in the cluster.
    """

    def __init__(self, n_workers, n_hidden, env_id, backend_name, run_seed, on_warning=print, shutdown=False):
        self._ray = ray = _import_ray()
        self._shutdown = shutdown
        self._exceptions = ray.exceptions
        # What a lost actor, worker process or node looks like (names that this Ray version has).
        self._lost_errors = tuple(getattr(ray.exceptions, name) for name in LOST_ERRORS
                                  if hasattr(ray.exceptions, name))
        try:
            if n_workers is None:
                n_workers = max(cluster_cpus(), 1)
            if n_workers < 1:
                raise ValueError(f"n_workers must be at least 1, got {n_workers}")
            _check_room(n_workers)
            self.W1 = np.zeros((n_hidden, N_PIXELS), order="F")
            self.W2 = np.zeros(n_hidden)
            self._remote_class = ray.remote(num_cpus=1, max_restarts=0)(EpisodeActor)
            self._args = (n_hidden, env_id, backend_name, run_seed)
            self._on_warning = on_warning
            self.replays = 0
            self._start_failures = 0
            self._warned_waiting = False
            self._warned_package = False
            self._generation = 0
            self._in_flight = {}  # ObjectRef -> (actor, episode index, generation)
            self._idle = collections.deque()
            self._starting = {}  # probe ObjectRef -> actor
            self._actors = []
            for _ in range(n_workers):
                self._start_actor()
        except BaseException:
            self.close()
            raise

    @property
    def n_workers(self):
        return len(self._actors)

    @property
    def actors(self):
        """The actor handles (ActorHandle), in start order; dead ones are replaced."""
        return [actor.handle for actor in self._actors]

    def _start_actor(self):
        handle = self._remote_class.remote(*self._args)
        actor = _Actor(handle, handle.describe.remote())
        self._starting[actor.probe] = actor
        self._actors.append(actor)
        return actor

    def play(self, indices, should_stop=lambda: False):
        """Play the given episode indices with the current W1/W2; yield the episodes in index order.

        Raises StopRequested (at once, abandoning the batch) when should_stop()
        is true, and WorkerError when an actor raises or an episode keeps
        losing its actor.
        """
        ray = self._ray
        order = list(indices)
        pending = collections.deque(order)
        finished = {}
        attempts = collections.Counter()
        self._generation += 1
        # Put the weights into the object store once; a list keeps Ray from resolving the ref per call.
        weights = [ray.put((self.W1, self.W2))]
        next_position = 0
        while next_position < len(order):
            while pending and self._idle:
                self._submit(self._idle.popleft(), pending.popleft(), weights, attempts)
            refs = list(self._in_flight) + list(self._starting)
            ready = ray.wait(refs, num_returns=1, timeout=POLL_SECONDS)[0] if refs else []
            for ref in ready:
                if ref in self._starting:
                    self._started(ref)
                else:
                    self._collect(ref, finished, pending, attempts)
            if should_stop():
                raise StopRequested
            self._check_waiting()
            while next_position < len(order) and order[next_position] in finished:
                yield finished.pop(order[next_position])
                next_position += 1

    def _submit(self, actor, index, weights, attempts):
        attempts[index] += 1
        ref = actor.handle.play.remote(weights, index)
        self._in_flight[ref] = (actor, index, self._generation)

    def _started(self, probe):
        actor = self._starting.pop(probe)
        try:
            actor.info = self._ray.get(probe)
        except self._exceptions.RayError as exc:
            self._start_failures += 1
            self._forget(actor)
            if self._start_failures > MAX_REPLAYS:
                raise WorkerError(f"Ray actors keep failing to start ({self._start_failures} times); "
                                  f"the last error:\n{exc}") from None
            self._on_warning(f"a Ray actor failed to start ({type(exc).__name__}); starting another")
            self._start_actor()
            return
        from . import __version__

        info = actor.info
        if info["version"] != __version__:
            raise WorkerError(f"the Ray actor on {info['node']} imported fastpg {info['version']} from "
                              f"{info['package']}, but this driver runs fastpg {__version__}: "
                              "install the same fastpg on every node")
        if info["node"] == self._ray.util.get_node_ip_address() and info["package"] != _package_dir() \
                and not self._warned_package:
            self._warned_package = True
            self._on_warning(f"Ray actors on this machine imported fastpg from {info['package']}, this driver "
                             f"from {_package_dir()} (start Ray with fastpg.ray_pool.init_ray to match them)")
        self._start_failures = 0
        actor.probe = None
        self._idle.append(actor)

    def _collect(self, ref, finished, pending, attempts):
        actor, index, generation = self._in_flight.pop(ref)
        current = generation == self._generation
        try:
            episode = self._ray.get(ref)
        except self._exceptions.RayTaskError as exc:
            raise WorkerError(f"a Ray actor failed while playing episode {index}:\n{exc}") from None
        except self._lost_errors as exc:
            self._replace(actor, index if current else None, exc, pending, attempts)
            return
        self._idle.append(actor)
        if current:
            finished[index] = episode

    def _replace(self, actor, index, exc, pending, attempts):
        """actor died (with episode index in hand, or None): start another, put the episode back in front."""
        where = f"actor {actor.info['pid']} on {actor.info['node']}" if actor.info else "a Ray actor"
        cause = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if index is not None and attempts[index] >= MAX_REPLAYS:
            raise WorkerError(f"episode {index} lost its Ray actor {attempts[index]} times "
                              f"({type(exc).__name__}: {cause})") from None
        self._forget(actor)
        self._start_actor()
        if index is None:
            self._on_warning(f"{where} died ({type(exc).__name__}); started a replacement")
            return
        self._on_warning(f"{where} died ({type(exc).__name__}: {cause}) while playing episode {index}; "
                         "replaying it with the same seed on another actor, and starting a replacement")
        self.replays += 1
        pending.appendleft(index)

    def _forget(self, actor):
        self._actors.remove(actor)
        try:
            self._ray.kill(actor.handle, no_restart=True)
        except Exception:  # already gone
            pass

    def _check_waiting(self):
        """Say so, once, when actors wait for a place in the cluster and none is working."""
        if self._warned_waiting or not self._starting or self._idle or self._in_flight:
            return
        oldest = min(actor.started for actor in self._starting.values())
        if time.monotonic() - oldest > START_WARNING_SECONDS:
            self._warned_waiting = True
            self._on_warning(f"waiting for Ray to place {len(self._starting)} actor(s), one CPU each; "
                             f"the cluster has {cluster_cpus()} CPUs")

    def close(self):
        """Kill the actors; shut Ray down if this pool's caller started it."""
        ray = self._ray
        for actor in getattr(self, "_actors", []):
            try:
                ray.kill(actor.handle, no_restart=True)
            except Exception:
                pass
        self._actors = []
        self._in_flight = {}
        self._starting = {}
        self._idle = collections.deque()
        if self._shutdown and ray.is_initialized():
            ray.shutdown()
        self._shutdown = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
