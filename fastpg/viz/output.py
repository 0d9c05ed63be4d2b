"""Shared by every viz command: one-line errors, the viz extra's import check, safe output paths.

Outputs are written to a temporary file beside the target and renamed into
place, so a failed or interrupted command never leaves a half-written image.
"""
import contextlib
import importlib
import os

VIZ_INSTALL = 'pip install "fastpg[viz]"  (from a source checkout: pip install ".[viz]")'
DISTRIBUTIONS = {"matplotlib": "matplotlib", "imageio": "imageio", "PIL": "Pillow"}


class VizError(Exception):
    """A problem with an input or output path, reported as one line."""


class MissingDependency(VizError):
    """A package of the viz extra is not installed."""


def require(command, *modules):
    """Import the viz extra's modules that ``command`` needs, or raise MissingDependency."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            raise MissingDependency(
                f"{DISTRIBUTIONS.get(module, module)} is not installed; "
                f"fastpg {command} needs the viz extra: {VIZ_INSTALL}") from None


def check_output(path, extensions):
    """Fail early, with one line, on an output path that cannot be written; returns its extension."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in extensions:
        raise VizError(f"{path}: unsupported output type {extension or '(no extension)'}; "
                       f"use {' or '.join(extensions)}")
    if os.path.isdir(path):
        raise VizError(f"{path} is a directory; give a file name ending in {' or '.join(extensions)}")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise VizError(f"cannot write {path}: directory {os.path.dirname(path) or directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise VizError(f"cannot write {path}: directory {os.path.dirname(path) or directory} is not writable")
    return extension


@contextlib.contextmanager
def _atomic_output(path):
    """Yield a temporary path beside ``path`` (same extension); rename it into place on success."""
    directory, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f".{name}.tmp{os.path.splitext(name)[1]}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise VizError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)

