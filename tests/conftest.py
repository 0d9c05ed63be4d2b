"""Shared fixtures: real Pong frames from ALE, their difference frames, and seeded weights.

Frames are generated once per test session (about 0.3 s for 300 steps), so every
kernel is also checked on the sparse inputs it sees in training.
"""
import os
import sys

import numpy as np
import pytest

from fastpg import reference

sys.path.insert(0, os.path.dirname(__file__))  # for `from cli_helpers import ...` (importlib mode)
from cli_helpers import run_fastpg  # noqa: E402

N_PIXELS = 6400
N_HIDDEN = 200
N_PONG_STEPS = 300


def play_pong(n_steps, seed=0):
    """Frames (uint8 (210, 160, 3), n_steps + 1 of them) and rewards (n_steps,) of random play.

    Actions are 2 (up) or 3 (down) drawn from a seeded generator, as the policy would.
    The episode is restarted if it ends, so the frames may span episodes.
    """
    import ale_py
    import gymnasium

    gymnasium.register_envs(ale_py)
    env = gymnasium.make("ALE/Pong-v5")
    try:
        observation, _ = env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        frames, rewards = [observation], []
        for _ in range(n_steps):
            observation, reward, terminated, truncated, _ = env.step(int(rng.choice([2, 3])))
            frames.append(observation)
            rewards.append(reward)
            if terminated or truncated:
                observation, _ = env.reset()
        return frames, np.asarray(rewards, dtype=np.float64)
    finally:
        env.close()


def difference_frames(frames):
    """float64 (T, 6400): reference preprocess of each frame minus the previous; row 0 is zeros."""
    processed = np.array([reference.preprocess(frame) for frame in frames])
    diffs = np.zeros_like(processed)
    diffs[1:] = processed[1:] - processed[:-1]
    return diffs


def make_weights(n_hidden=N_HIDDEN, order="F", seed=0):
    """Xavier-initialised (W1 (n_hidden, 6400) in the given order, W2 (n_hidden,)), as the seed does."""
    rng = np.random.default_rng(seed)
    W1 = np.asarray(rng.standard_normal((n_hidden, N_PIXELS)) / np.sqrt(N_PIXELS), order=order)
    W2 = rng.standard_normal(n_hidden) / np.sqrt(n_hidden)
    return W1, W2


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


@pytest.fixture(scope="session")
def weights_factory():
    """make_weights(n_hidden=200, order="F", seed=0) -> fresh (W1, W2) arrays."""
    return make_weights


@pytest.fixture
def rng(request):
    """A generator seeded from the test's name, so each test's inputs are fixed."""
    return np.random.default_rng(sum(request.node.name.encode()))


def assert_vectors_close(actual, desired, scale, rtol=1e-9):
    """float64 results equal up to rtol, with atol = 1e-12 * scale for entries near 0.

    scale is the size of the terms that were summed (for example |W1| @ |x|),
    since a sum can cancel to nearly zero and then its relative error is large.
    """
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=1e-12 * scale)


@pytest.fixture(scope="session")
def assert_close():
    """The assert_vectors_close helper (rtol 1e-9, atol scaled to the summed magnitude)."""
    return assert_vectors_close


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A real two-episode `fastpg train` run with 8 hidden units (read-only for tests)."""
    path = tmp_path_factory.mktemp("tiny-run") / "tiny"
    done = run_fastpg("train", "--episodes", "2", "--batch-size", "2", "--hidden", "8", "--workers", "1",
                      "--run-dir", str(path), cwd=path.parent)
    assert done.returncode == 0, done.stderr
    return path
