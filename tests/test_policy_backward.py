"""policy_backward: compiled vs reference, hand cases, and a finite-difference check."""
import numpy as np
import pytest

from fastpg import kernels, reference

from helpers import assert_vectors_close, make_weights

BACKENDS = [pytest.param(reference, id="reference"), pytest.param(kernels, id="compiled")]


def forward_episode(W1, W2, epx):
    """eph (T, H) from the reference forward, row by row as the trainer records it."""
    return np.array([reference.policy_forward(W1, W2, x)[1] for x in epx])


def check_against_reference(W2, eph, epdlogp, epx):
    dW1_ref, dW2_ref = reference.policy_backward(W2, eph, epdlogp, epx)
    dW1, dW2 = kernels.policy_backward(W2, eph, epdlogp, epx)
    assert dW1.shape == dW1_ref.shape and dW1.dtype == np.float64 and dW1.flags.f_contiguous
    assert dW2.shape == dW2_ref.shape and dW2.dtype == np.float64
    # Magnitudes of the summed terms, for entries that cancel to nearly zero.
    assert_vectors_close(dW2, dW2_ref, scale=np.max(np.abs(eph.T) @ np.abs(epdlogp)))
    dW1_scale = np.max(np.abs(W2)) * np.max(np.abs(epdlogp) @ np.abs(epx))
    assert_vectors_close(dW1, dW1_ref, scale=dW1_scale)
    return dW1_ref, dW2_ref


def test_compiled_matches_reference_on_real_episode(pong_diffs, rng):
    W1, W2 = make_weights(order="F")
    epx = pong_diffs
    eph = forward_episode(W1, W2, epx)
    epdlogp = rng.standard_normal(len(epx))
    dW1_ref, _ = check_against_reference(W2, eph, epdlogp, epx)
    touched = np.any(dW1_ref != 0, axis=0)
    assert 50 < touched.sum() < 6400  # sparse, but many pixels contributed


def test_compiled_matches_reference_on_random_dense_inputs(rng):
    n_hidden, T = 13, 25
    W2 = rng.standard_normal(n_hidden)
    eph = np.maximum(rng.standard_normal((T, n_hidden)), 0.0)  # about half exactly 0
    epdlogp = rng.standard_normal(T)
    epx = rng.standard_normal((T, 6400))
    epx[:, rng.random(6400) < 0.3] = 0.0  # some all-zero scan blocks too
    check_against_reference(W2, eph, epdlogp, epx)


@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_computed_with_relu_gate(backend):
    W2 = np.array([1.0, 2.0, 3.0])
    eph = np.array([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]])  # exact zeros: the ReLU was off
    epdlogp = np.array([0.5, -1.0])
    epx = np.zeros((2, 6400))
    epx[0, 5] = 1.0
    epx[1, 5] = 1.0
    epx[1, 7] = -1.0
    # dh = [[0.5, (gated), 1.5], [(gated), -2, (gated)]]
    dW1, dW2 = backend.policy_backward(W2, eph, epdlogp, epx)
    np.testing.assert_allclose(dW2, [0.5, -3.0, 1.0], rtol=1e-15)
    expected = np.zeros((3, 6400))
    expected[:, 5] = [0.5, -2.0, 1.5]
    expected[:, 7] = [0.0, 2.0, 0.0]
    np.testing.assert_allclose(dW1, expected, rtol=1e-15, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_single_step_episode(backend):
    # T = 1: dW2 = h * dlogp and dW1 = outer(dlogp * W2 * [h > 0], x).
    W2 = np.array([2.0, -1.0])
    eph = np.array([[0.5, 0.0]])
    x = np.zeros(6400)
    x[[0, 6399]] = [1.0, -1.0]
    dW1, dW2 = backend.policy_backward(W2, eph, np.array([0.25]), x[None, :])
    np.testing.assert_array_equal(dW2, [0.125, 0.0])
    np.testing.assert_array_equal(dW1, np.outer([0.5, 0.0], x))


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_episode_gives_zero_gradients(backend):
    dW1, dW2 = backend.policy_backward(np.ones(4), np.zeros((0, 4)), np.zeros(0), np.zeros((0, 6400)))
    np.testing.assert_array_equal(dW1, np.zeros((4, 6400)))
    np.testing.assert_array_equal(dW2, np.zeros(4))


def objective(W1, W2, epx, epdlogp):
    """sum_t epdlogp_t * logit_t, logit_t = W2 @ relu(W1 @ x_t): what policy_backward differentiates."""
    return float(epdlogp @ (np.maximum(epx @ W1.T, 0.0) @ W2))


@pytest.mark.parametrize("backend", BACKENDS)
def test_finite_differences(backend, rng):
    n_hidden, T = 3, 5
    pixels = [0, 17, 801, 3200, 6399]
    epx = np.zeros((T, 6400))
    epx[:, pixels] = rng.choice([-1.0, 0.0, 1.0, 0.37], size=(T, len(pixels)))
    epx[0, pixels[0]] = 1.0
    # Keep every pre-activation away from the ReLU's kink so the objective is smooth.
    for _ in range(100):
        W1 = rng.standard_normal((n_hidden, 6400))
        pre = epx @ W1.T
        if np.all((np.abs(pre) > 0.05) | (pre == 0.0)) and np.any(pre > 0) and np.any(pre < 0):
            break
    else:
        pytest.fail("no weights with pre-activations away from 0 were drawn")
    W2 = rng.standard_normal(n_hidden)
    epdlogp = rng.standard_normal(T)
    eph = np.maximum(pre, 0.0)
    dW1, dW2 = backend.policy_backward(W2, eph, epdlogp, epx)

    step = 1e-6
    numeric_dW2 = np.empty(n_hidden)
    for j in range(n_hidden):
        bump = np.zeros(n_hidden)
        bump[j] = step
        numeric_dW2[j] = (objective(W1, W2 + bump, epx, epdlogp) - objective(W1, W2 - bump, epx, epdlogp)) / (2 * step)
    np.testing.assert_allclose(dW2, numeric_dW2, rtol=1e-6, atol=1e-8)

    checked = [(j, i) for j in range(n_hidden) for i in pixels + [5, 4000]]  # 5, 4000: unused pixels
    for j, i in checked:
        plus, minus = W1.copy(), W1.copy()
        plus[j, i] += step
        minus[j, i] -= step
        numeric = (objective(plus, W2, epx, epdlogp) - objective(minus, W2, epx, epdlogp)) / (2 * step)
        assert dW1[j, i] == pytest.approx(numeric, rel=1e-6, abs=1e-8), (j, i)
    assert np.count_nonzero(dW1[:, pixels]) >= n_hidden  # the check saw non-zero gradients
    assert np.count_nonzero(dW1[:, [5, 4000]]) == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_inputs_not_mutated_and_read_only_accepted(backend, pong_diffs, rng):
    W1, W2 = make_weights(n_hidden=40)
    epx = pong_diffs[:60]  # read-only fixture
    eph = forward_episode(W1, W2, epx)
    epdlogp = rng.standard_normal(60)
    copies = [W2.copy(), eph.copy(), epdlogp.copy(), epx.copy()]
    for arr in (W2, eph, epdlogp):
        arr.setflags(write=False)
    dW1, dW2 = backend.policy_backward(W2, eph, epdlogp, epx)
    for arr, before in zip((W2, eph, epdlogp, epx), copies):
        np.testing.assert_array_equal(arr, before)
    assert dW1.flags.writeable and dW2.flags.writeable
    assert np.any(dW1 != 0) and np.any(dW2 != 0)
