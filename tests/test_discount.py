"""discount_rewards (compiled vs reference, hand cases) and reference.standardize."""
import numpy as np
import pytest

from fastpg import kernels, reference

BACKENDS = [pytest.param(reference, id="reference"), pytest.param(kernels, id="compiled")]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "rewards, gamma, expected",
    [
        ([1.0, 0.0, 0.0], 0.5, [1.0, 0.0, 0.0]),  # reward at t=0: nothing flows back past it
        ([-1.0, 0.0, 1.0], 0.5, [-1.0, 0.5, 1.0]),  # reward at t=0, then a point at the end
        ([0.0, 0.0, 1.0], 0.5, [0.25, 0.5, 1.0]),
        ([0.0, 1.0, 0.0, -1.0], 0.5, [0.5, 1.0, -0.5, -1.0]),  # the sum resets at each point
        ([0.0, 2.0, 0.0, 0.0], 0.5, [1.0, 2.0, 0.0, 0.0]),  # trailing zeros stay zero
        ([3.0], 0.99, [3.0]),  # T = 1
        ([0.0], 0.99, [0.0]),  # T = 1, no reward
        ([], 0.99, []),  # T = 0
        ([0.0, 0.0, 1.0], 0.0, [0.0, 0.0, 1.0]),  # gamma = 0: the rewards themselves
        ([0.0, 0.0, -1.0], 1.0, [-1.0, -1.0, -1.0]),  # gamma = 1: undiscounted
    ],
)
def test_hand_computed(backend, rewards, gamma, expected):
    out = backend.discount_rewards(np.array(rewards, dtype=np.float64), gamma)
    assert out.dtype == np.float64 and out.shape == (len(expected),)
    np.testing.assert_allclose(out, expected, rtol=1e-15, atol=0)


def test_compiled_matches_reference_on_pong_like_rewards(rng):
    # A 2,000-step episode of sparse +-1 points, as Pong gives.
    rewards = np.zeros(2000)
    points = rng.choice(2000, size=40, replace=False)
    rewards[points] = rng.choice([-1.0, 1.0], size=40)
    expected = reference.discount_rewards(rewards, 0.99)
    assert np.count_nonzero(expected) > 1000  # the discounting really spread the points
    np.testing.assert_allclose(kernels.discount_rewards(rewards, 0.99), expected, rtol=1e-9, atol=0)


def test_compiled_matches_reference_on_real_rewards(pong_episode):
    rewards = pong_episode[1]
    assert np.count_nonzero(rewards) > 0  # at least one point was played
    np.testing.assert_allclose(
        kernels.discount_rewards(rewards, 0.99), reference.discount_rewards(rewards, 0.99), rtol=1e-9
    )


def test_compiled_matches_reference_on_dense_random_rewards(rng):
    rewards = rng.standard_normal(500)
    rewards[::7] = 0.0
    np.testing.assert_allclose(
        kernels.discount_rewards(rewards, 0.9), reference.discount_rewards(rewards, 0.9), rtol=1e-9
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.int8, np.float32])
def test_integer_and_float32_rewards(backend, dtype):
    # Vector environments give int32 rewards; results are float64 either way.
    rewards = np.array([0, 0, 1, 0, -1, 0, 0, 1], dtype=dtype)
    out = backend.discount_rewards(rewards, 0.99)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, reference.discount_rewards(rewards.astype(np.float64), 0.99))


@pytest.mark.parametrize("backend", BACKENDS)
def test_input_not_mutated_read_only_and_strided_accepted(backend):
    base = np.array([0.0, 5.0, 0.0, 5.0, 1.0, 5.0, 0.0, 5.0, -1.0, 5.0])
    base.setflags(write=False)
    rewards = base[::2]  # [0, 0, 1, 0, -1], non-contiguous and read-only
    out = backend.discount_rewards(rewards, 0.5)
    np.testing.assert_array_equal(out, [0.25, 0.5, 1.0, -0.5, -1.0])
    np.testing.assert_array_equal(base, [0.0, 5.0, 0.0, 5.0, 1.0, 5.0, 0.0, 5.0, -1.0, 5.0])
    assert not np.shares_memory(out, base)


def test_standardize_all_equal_gives_zeros_not_nan():
    for returns in (np.full(5, 0.7), np.zeros(3), np.array([2.5])):
        out = reference.standardize(returns)
        assert np.all(np.isfinite(out))
        np.testing.assert_array_equal(out, np.zeros_like(returns))


def test_standardize_of_equal_returns_is_zero():
    np.testing.assert_array_equal(reference.standardize(np.zeros(50)), np.zeros(50))
    for value in (-1.0, 0.1, 0.99 ** 7):
        result = reference.standardize(np.full(37, value))
        assert np.all(np.isfinite(result))
        np.testing.assert_allclose(result, 0.0, atol=1e-12)


def test_standardize_has_zero_mean_unit_std(rng):
    returns = reference.discount_rewards(rng.choice([0.0, 0.0, 0.0, 1.0, -1.0], size=300), 0.99)
    before = returns.copy()
    out = reference.standardize(returns)
    assert abs(out.mean()) < 1e-12
    assert out.std() == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(out, (before - before.mean()) / before.std(), rtol=1e-12)
    np.testing.assert_array_equal(returns, before)  # not in place


def test_standardize_hand_computed():
    np.testing.assert_allclose(reference.standardize(np.array([1.0, 3.0])), [-1.0, 1.0], rtol=1e-15)
