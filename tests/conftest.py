"""Fixtures shared by the test files; plain helper functions live in helpers.py.

The suite runs in importlib mode, so tests/ is not on sys.path by itself: it is put there
here, and test files import helpers by name (`from helpers import run_fastpg`).

Expensive data is made once per session: real Pong frames from ALE (about 0.3 s for 300 steps,
so every kernel is also checked on the sparse inputs it sees in training) and small real
`fastpg train` runs that several files read.
"""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))  # for `from helpers import ...` (importlib mode)
from helpers import difference_frames, play_pong, run_fastpg, run_train  # noqa: E402

N_PONG_STEPS = 300


# ---------------------------------------------------------------- real Pong frames


@pytest.fixture(scope="session")
def pong_episode():
    """(frames, rewards) of 300 steps of real Pong with random up/down actions."""
    frames, rewards = play_pong(N_PONG_STEPS, seed=0)
    for frame in frames:
        frame.setflags(write=False)  # shared across tests: nobody may change them
    rewards.setflags(write=False)
    return frames, rewards


@pytest.fixture(scope="session")
def pong_frames(pong_episode):
    """A list of 301 real uint8 (210, 160, 3) Pong frames (read-only)."""
    return pong_episode[0]


@pytest.fixture(scope="session")
def pong_diffs(pong_frames):
    """float64 (301, 6400) real difference frames (read-only); the first row is all zeros."""
    diffs = difference_frames(pong_frames)
    diffs.setflags(write=False)
    return diffs


@pytest.fixture
def rng(request):
    """A generator seeded from the test's name, so each test's inputs are fixed."""
    return np.random.default_rng(sum(request.node.name.encode()))


# ---------------------------------------------------------------- real training runs (read-only for tests)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A real two-episode `fastpg train` run with 8 hidden units: its run directory."""
    path = tmp_path_factory.mktemp("tiny-run") / "tiny"
    done = run_fastpg("train", "--episodes", "2", "--batch-size", "2", "--hidden", "8", "--workers", "1",
                      "--run-dir", str(path), cwd=path.parent)
    assert done.returncode == 0, done.stderr
    return path


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """A scratch directory for the training runs of the session; each test uses its own subdirectory."""
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="session")
def reference_run(runs):
    """4 episodes, batch 2, hidden 8, one worker, cython: (run_dir, CompletedProcess)."""
    run_dir = str(runs / "reference")
    return run_dir, run_train(run_dir)

