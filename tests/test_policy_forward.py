"""policy_forward: compiled vs reference (C and Fortran W1), hand cases on both."""
import numpy as np
import pytest

from fastpg import kernels, reference

from helpers import assert_vectors_close, make_weights

BACKENDS = [pytest.param(reference, id="reference"), pytest.param(kernels, id="compiled")]
ORDERS = ["C", "F"]


def check_against_reference(W1, W2, x, abs_W1=None):
    p_ref, h_ref = reference.policy_forward(W1, W2, x)
    p, h = kernels.policy_forward(W1, W2, x)
    abs_W1 = np.abs(W1) if abs_W1 is None else abs_W1
    h_scale = np.max(abs_W1 @ np.abs(x))  # size of the terms summed into h
    assert_vectors_close(h, h_ref, scale=h_scale)
    # p' = p (1 - p) <= 1/4, and the logit sums |W2| |h| terms.
    assert_vectors_close(p, p_ref, scale=np.abs(W2) @ np.abs(h_ref))
    assert isinstance(p, float) and h.dtype == np.float64 and h.shape == W2.shape
    return p_ref, h_ref


@pytest.mark.parametrize("order", ORDERS)
def test_compiled_matches_reference_on_real_difference_frames(order, pong_diffs):
    W1, W2 = make_weights(order=order)
    W2 *= 20.0  # spread p away from 0.5 so the comparison sees the output layer
    abs_W1 = np.abs(W1)
    ps = [check_against_reference(W1, W2, x, abs_W1)[0] for x in pong_diffs[::3]]
    assert np.ptp(ps) > 0.05  # the frames moved the policy


@pytest.mark.parametrize("order", ORDERS)
def test_compiled_matches_reference_on_random_inputs(order, rng):
    W1, W2 = make_weights(n_hidden=37, order=order, seed=3)
    dense = rng.standard_normal(6400)
    sparse = np.zeros(6400)
    sparse[rng.choice(6400, size=60, replace=False)] = rng.choice([-1.0, 1.0], size=60)
    edges = np.zeros(6400)
    edges[[0, 15, 16, 6383, 6384, 6399]] = [1.0, -2.0, 0.5, 3.0, -1.0, 1.0]  # scan-block borders
    for x in (dense, sparse, edges, rng.random(6400) * (rng.random(6400) < 0.01)):
        _, h_ref = check_against_reference(W1, W2, x)
        assert np.any(h_ref > 0) and np.any(h_ref == 0)  # both sides of the ReLU exercised


@pytest.mark.parametrize("layout", ["every-other-column", "reversed-rows-F", "reversed-columns-C"])
def test_any_strided_W1_accepted(layout, rng):
    W1, W2 = make_weights(n_hidden=20, order="C")
    if layout == "every-other-column":
        padded = np.zeros((20, 12800))
        padded[:, ::2] = W1
        strided = padded[:, ::2]  # neither C- nor Fortran-contiguous
    elif layout == "reversed-rows-F":
        strided = np.asfortranarray(W1[::-1])[::-1]  # negative row stride
    else:
        strided = np.ascontiguousarray(W1[:, ::-1])[:, ::-1]  # negative column stride
    assert not (strided.flags.c_contiguous or strided.flags.f_contiguous)
    np.testing.assert_array_equal(strided, W1)
    x = rng.standard_normal(6400)
    p, h = kernels.policy_forward(strided, W2, x)
    p_ref, h_ref = reference.policy_forward(W1, W2, x)
    assert_vectors_close(h, h_ref, scale=np.max(np.abs(W1) @ np.abs(x)))
    assert_vectors_close(p, p_ref, scale=np.abs(W2) @ np.abs(h_ref))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("order", ORDERS)
def test_all_zero_input_gives_one_half(backend, order):
    W1, W2 = make_weights(order=order)
    p, h = backend.policy_forward(W1, W2, np.zeros(6400))
    assert p == 0.5
    np.testing.assert_array_equal(h, np.zeros(200))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("order", ORDERS)
def test_hand_computed_with_relu_exactly_at_zero(backend, order):
    W1 = np.zeros((3, 6400), order=order)
    W1[:, 10] = [1.0, 2.0, -1.0]
    W1[:, 4000] = [-1.0, 0.5, -1.0]
    x = np.zeros(6400)
    x[10] = 1.0
    x[4000] = 1.0
    # Pre-activations: [0 (exactly), 2.5, -2]; after the ReLU: [0, 2.5, 0].
    W2 = np.array([5.0, 1.0, 7.0])
    p, h = backend.policy_forward(W1, W2, x)
    np.testing.assert_array_equal(h, [0.0, 2.5, 0.0])
    assert p == pytest.approx(1.0 / (1.0 + np.exp(-2.5)), rel=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_large_logits_saturate_without_overflow_errors(backend):
    W1 = np.zeros((1, 6400))
    W1[0, 0] = 1.0
    x = np.zeros(6400)
    x[0] = 1.0
    with np.errstate(over="raise"):
        p_up, _ = backend.policy_forward(W1, np.array([100.0]), x)
    with np.errstate(over="ignore"):  # exp(800) is inf in the reference; p is still 0
        p_down, _ = backend.policy_forward(W1, np.array([-800.0]), x)
    assert p_up == pytest.approx(1.0, abs=1e-40)
    assert p_down == 0.0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("order", ORDERS)
def test_inputs_not_mutated_and_read_only_accepted(backend, order, pong_diffs):
    W1, W2 = make_weights(n_hidden=50, order=order)
    x = pong_diffs[50]
    copies = [W1.copy(order="K"), W2.copy(), x.copy()]
    for arr in (W1, W2):
        arr.setflags(write=False)
    assert not x.flags.writeable
    p, h = backend.policy_forward(W1, W2, x)
    for arr, before in zip((W1, W2, x), copies):
        np.testing.assert_array_equal(arr, before)
    assert h.flags.writeable and not np.shares_memory(h, W1)
    _, h_again = backend.policy_forward(W1, W2, x)
    assert h_again is not h
    assert p == backend.policy_forward(W1, W2, x)[0]
