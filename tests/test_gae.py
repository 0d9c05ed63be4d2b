"""gae (compiled vs reference, hand cases, the lambda limits, buffers and bad input)."""
import numpy as np
import pytest

from fastpg import kernels, reference

BACKENDS = [pytest.param(reference, id="reference"), pytest.param(kernels, id="compiled")]


def segment(rng, n_steps=500, episode_ends=(120, 333)):
    """A segment of sparse +-1 rewards, random values, two episode ends inside it."""
    rewards = np.zeros(n_steps)
    points = rng.choice(n_steps, size=12, replace=False)
    rewards[points] = rng.choice([-1.0, 1.0], size=12)
    dones = np.zeros(n_steps, dtype=bool)
    dones[list(episode_ends)] = True
    return rewards, rng.uniform(-1, 1, n_steps), dones


@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_computed(backend):
    # gamma 0.5, lambda 0.5; the segment is cut after step 2 (bootstrapped by 4.0); step 0 ends an episode.
    rewards = np.array([1.0, 0.0, 2.0])
    values = np.array([0.5, 1.0, 2.0])
    dones = np.array([1, 0, 0], dtype=np.uint8)
    advantages, returns = backend.gae(rewards, values, dones, 4.0, 0.5, 0.5)
    # delta_2 = 2 + 0.5 * 4 - 2 = 2;  A_2 = 2
    # delta_1 = 0 + 0.5 * 2 - 1 = 0;  A_1 = 0 + 0.25 * 2 = 0.5
    # delta_0 = 1 - 0.5 = 0.5 (episode ended: no bootstrap);  A_0 = 0.5
    np.testing.assert_allclose(advantages, [0.5, 0.5, 2.0], rtol=1e-15, atol=0)
    np.testing.assert_allclose(returns, [1.0, 1.5, 4.0], rtol=1e-15, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lambda_one_gives_discounted_returns_and_lambda_zero_the_td_error(backend, rng):
    rewards, values, dones = segment(rng)
    dones[-1] = True  # no bootstrap: returns are plain discounted sums within each episode
    _, returns = backend.gae(rewards, values, dones, 123.0, 0.9, 1.0)
    expected = np.zeros_like(rewards)
    running = 0.0
    for t in reversed(range(len(rewards))):
        running = rewards[t] + 0.9 * running * (not dones[t])
        expected[t] = running
    np.testing.assert_allclose(returns, expected, rtol=1e-9, atol=1e-12)
    advantages, _ = backend.gae(rewards, values, dones, 123.0, 0.9, 0.0)
    following = np.append(values[1:], 123.0) * ~dones
    np.testing.assert_allclose(advantages, rewards + 0.9 * following - values, rtol=1e-12, atol=1e-15)


def test_compiled_matches_reference(rng):
    rewards, values, dones = segment(rng)
    expected = reference.gae(rewards, values, dones, 0.7, 0.99, 0.95)
    assert np.count_nonzero(expected[0]) == len(rewards)
    for actual, wanted in zip(kernels.gae(rewards, values, dones, 0.7, 0.99, 0.95), expected):
        np.testing.assert_allclose(actual, wanted, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_edge_cases(backend):
    empty = backend.gae(np.zeros(0), np.zeros(0), np.zeros(0, bool), 1.0, 0.99, 0.95)
    assert [a.shape for a in empty] == [(0,), (0,)]
    advantages, returns = backend.gae(np.array([1.0]), np.array([0.25]), np.array([False]), 2.0, 0.5, 0.9)
    np.testing.assert_allclose(advantages, [1.0 + 0.5 * 2.0 - 0.25])  # T = 1, bootstrapped
    np.testing.assert_allclose(returns, [2.0])


def test_compiled_writes_the_given_buffers_and_leaves_inputs_alone(rng):
    rewards, values, dones = segment(rng, n_steps=50, episode_ends=(10,))
    copies = [a.copy() for a in (rewards, values, dones)]
    advantages, returns = np.full(50, np.nan), np.full(50, np.nan)
    out = kernels.gae(rewards, values, dones, 0.0, 0.99, 0.95, advantages=advantages, returns=returns)
    assert out[0] is advantages and out[1] is returns
    for actual, wanted in zip(out, reference.gae(rewards, values, dones, 0.0, 0.99, 0.95)):
        np.testing.assert_allclose(actual, wanted, rtol=1e-12, atol=1e-14)
    for before, after in zip(copies, (rewards, values, dones)):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("args, error, message", [
    ((np.zeros(3), np.zeros(2), np.zeros(3, bool), 0.0, 0.9, 0.9), ValueError, "values has length 2"),
    ((np.zeros(3), np.zeros(3), np.zeros(2, bool), 0.0, 0.9, 0.9), ValueError, "dones has length 2"),
    ((np.zeros(3), np.zeros(3), np.zeros(3), 0.0, 0.9, 0.9), TypeError, "dones must have dtype bool or uint8"),
    ((np.zeros(3), np.zeros(3, np.float32), np.zeros(3, bool), 0.0, 0.9, 0.9), TypeError, "values must have dtype"),
    ((np.zeros(3), np.zeros(3), np.zeros(3, bool), 0.0, 0.9, 1.5), ValueError, "lam must be in"),
    ((np.zeros(3), np.zeros(3), np.zeros(3, bool), 0.0, -0.1, 0.9), ValueError, "gamma must be in"),
])
def test_bad_input_names_the_argument(backend, args, error, message):
    with pytest.raises(error, match=message):
        backend.gae(*args)


def test_compiled_rejects_bad_buffers():
    args = (np.zeros(3), np.zeros(3), np.zeros(3, bool), 0.0, 0.9, 0.9)
    with pytest.raises(ValueError, match="advantages has length 4"):
        kernels.gae(*args, advantages=np.zeros(4))
    read_only = np.zeros(3)
    read_only.setflags(write=False)
    with pytest.raises(ValueError, match="returns is read-only"):
        kernels.gae(*args, returns=read_only)
