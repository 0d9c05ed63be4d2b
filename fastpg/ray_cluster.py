"""Joining or starting Ray for fastpg: the connection, the install hint, and the cluster's room.

Importing this module does not import Ray; :func:`connect` does.
"""
import os
import socket

INSTALL_COMMAND = 'pip install "fastpg[ray]"'
CONNECT_TIMEOUT_SECONDS = 10.0  # for a HOST:PORT that does not answer


class RaySetupError(ValueError):
    """Ray is missing, the cluster cannot be reached, or it cannot host the actors."""


def import_ray():
    try:
        import ray
    except ImportError:
        raise RaySetupError(f"--ray needs Ray, an optional extra of fastpg; install it with: {INSTALL_COMMAND}") from None
    return ray


def require_ray():
    """Raise RaySetupError, naming the install command, when Ray is not installed."""
    import_ray()


def init_ray(**options):
    """ray.init(**options), run from the directory that holds the imported fastpg.

    Ray puts the driver's working directory first on its workers' sys.path.
    From a source checkout after ``pip install .``, that would make local
    actors import ./fastpg (without compiled kernels) instead of the driver's
    fastpg; from the package's parent directory they import the same one.
    """
    ray = import_ray()
    cwd = os.getcwd()
    os.chdir(os.path.dirname(package_dir()))
    try:
        return ray.init(**options)
    finally:
        os.chdir(cwd)


def package_dir():
    from . import __file__ as package_file

    return os.path.dirname(os.path.abspath(package_file))


def connect(address="local", n_workers=None):
    """Start or join Ray; returns True when this call started it (the caller shuts it down).

    address: None or "local" starts a local instance (with n_workers CPUs when
    given, so that many actors fit); "auto" or "host:port" joins a cluster
    started with ``ray start``. If this process is already connected to Ray
    (a notebook, a test), that connection is used as it is.
    """
    ray = import_ray()
    if ray.is_initialized():
        check_room(n_workers)
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
        check_room(n_workers)
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


def check_room(n_workers):
    """Raise RaySetupError when the cluster has fewer CPUs than the n_workers actors need (one each)."""
    cpus = cluster_cpus()
    if n_workers is not None and n_workers > cpus:
        raise RaySetupError(f"--workers {n_workers}: the Ray cluster has {cpus} CPUs and each actor "
                            "needs one; add nodes or ask for fewer workers")


def cluster_cpus():
    """Whole CPUs in the connected Ray cluster."""
    ray = import_ray()
    return int(ray.cluster_resources().get("CPU", 0))
