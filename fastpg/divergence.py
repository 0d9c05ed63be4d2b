"""Telling when an update has made the learner's arrays NaN or infinite.

Each algorithm checks its own arrays when an update finishes (in the
learner's thread of control, before the workers may play the weights); the
training loop turns the exception into a one-line error that names the run.
"""
import math

import numpy as np


class NonFiniteArrays(Exception):
    """The update that learned from batch ``batch`` (0-based) left ``names`` non-finite."""

    def __init__(self, names, batch):
        super().__init__(f"update from batch {batch + 1} made {', '.join(names)} non-finite")
        self.names, self.batch = names, batch


def nonfinite_names(arrays):
    """The names of the float arrays that hold a NaN or an infinity, in order."""
    # A sum is a fast test that almost never needs the exact one: NaN and inf propagate into it.
    suspects = [name for name, array in arrays.items()
                if array.dtype.kind == "f" and not math.isfinite(float(np.sum(array)))]
    return [name for name in suspects if not np.all(np.isfinite(arrays[name]))]


def check_finite(arrays, batch):
    """Raise NonFiniteArrays when any float array of ``arrays`` is not finite."""
    bad = nonfinite_names(arrays)
    if bad:
        raise NonFiniteArrays(bad, batch)
