"""PolicyStepper and sparse_backward: the trainer's fused entry points against the reference loop."""
import numpy as np
import pytest

from fastpg import kernels, reference

from helpers import assert_vectors_close, play_steps

DENSE_ROW_BYTES = 6400 * 8  # one float64 difference frame


def reference_episode(W1, W2, frames, uniforms):
    """The seed's loop: preprocess, difference (zeros first), forward, act, dlogp = y - p."""
    previous = None
    actions, probs, dlogp, epx, eph = [], [], [], [], []
    for frame, u in zip(frames, uniforms):
        current = reference.preprocess(frame)
        x = np.zeros(6400) if previous is None else current - previous
        previous = current
        p, h = reference.policy_forward(W1, W2, x)
        action = 2 if u < p else 3
        actions.append(action)
        probs.append(p)
        dlogp.append((1.0 if action == 2 else 0.0) - p)
        epx.append(x)
        eph.append(h)
    return np.array(actions), np.array(probs), np.array(dlogp), np.array(epx), np.array(eph)


def densify(episode):
    """(T, 6400) float64 difference frames from finish()'s sparse record."""
    offsets = episode["offsets"]
    epx = np.zeros((len(offsets) - 1, 6400))
    for t in range(len(offsets) - 1):
        entries = slice(offsets[t], offsets[t + 1])
        epx[t, episode["indices"][entries]] = episode["signs"][entries]
    return epx


@pytest.fixture(scope="module")
def weights():
    """W1 (200, 6400) Fortran-ordered and W2, scaled so that p varies over the episode."""
    rng = np.random.default_rng(7)
    W1 = np.asfortranarray(rng.standard_normal((200, 6400)) / np.sqrt(6400) * 4.0)
    W2 = rng.standard_normal(200) / np.sqrt(200) * 4.0
    return W1, W2


@pytest.fixture(scope="module")
def played(weights, pong_frames):
    """The real frames played by PolicyStepper and by the reference loop, with the same uniforms."""
    W1, W2 = weights
    uniforms = np.random.default_rng(11).random(len(pong_frames))
    stepper = kernels.PolicyStepper(W1, W2)
    actions, probs, nnz = play_steps(stepper, pong_frames, uniforms)
    n_steps = stepper.n_steps
    episode = stepper.finish()
    expected = reference_episode(W1, W2, pong_frames, uniforms)
    return dict(stepper=stepper, actions=actions, probs=probs, nnz=nnz, n_steps=n_steps,
                episode=episode, expected=expected, uniforms=uniforms)


def test_actions_and_probabilities_match_reference_loop(played):
    ref_actions, ref_probs, _, ref_epx, _ = played["expected"]
    np.testing.assert_array_equal(played["actions"], ref_actions)
    np.testing.assert_allclose(played["probs"], ref_probs, rtol=1e-9)
    assert set(ref_actions) == {2, 3} and np.ptp(ref_probs) > 0.1  # a non-trivial policy
    np.testing.assert_array_equal(played["nnz"], np.count_nonzero(ref_epx, axis=1))
    assert played["nnz"][0] == 0 and played["probs"][0] == 0.5  # first frame: zero difference


def test_finish_records_the_episode(played, pong_frames):
    episode = played["episode"]
    T = len(pong_frames)
    assert played["n_steps"] == T
    assert set(episode) == {"indices", "signs", "offsets", "dlogp"}
    assert episode["indices"].dtype == np.int16 and episode["signs"].dtype == np.int8
    assert episode["offsets"].dtype == np.int32 and episode["dlogp"].dtype == np.float64
    assert episode["offsets"].shape == (T + 1,) and episode["dlogp"].shape == (T,)
    assert episode["offsets"][0] == 0 and episode["offsets"][-1] == len(episode["indices"])
    assert np.all(np.diff(episode["offsets"]) == played["nnz"])
    assert set(np.unique(episode["signs"])) <= {-1, 1}
    _, _, ref_dlogp, ref_epx, _ = played["expected"]
    np.testing.assert_array_equal(densify(episode), ref_epx)  # the sparse record is exact
    np.testing.assert_allclose(episode["dlogp"], ref_dlogp, rtol=1e-9, atol=1e-15)


def test_recorded_step_costs_well_under_a_kilobyte(played):
    episode = played["episode"]
    bytes_per_step = sum(arr.nbytes for arr in episode.values()) / played["n_steps"]
    assert bytes_per_step < 1024
    assert bytes_per_step < DENSE_ROW_BYTES / 50


def test_finish_resets_and_next_frame_starts_an_episode(weights, pong_frames):
    W1, W2 = weights
    stepper = kernels.PolicyStepper(W1, W2)
    play_steps(stepper, pong_frames[:10], np.full(10, 0.5))
    stepper.finish()
    assert stepper.n_steps == 0
    stepper.step(pong_frames[50], 0.5)
    assert stepper.nnz == 0 and stepper.p == 0.5  # no difference against the old episode
    stepper.step(pong_frames[51], 0.5)
    assert stepper.nnz == np.count_nonzero(
        reference.preprocess(pong_frames[51]) - reference.preprocess(pong_frames[50]))
    episode = stepper.finish()
    assert episode["offsets"].shape == (3,) and episode["dlogp"].shape == (2,)
    empty = stepper.finish()
    assert stepper.n_steps == 0
    np.testing.assert_array_equal(empty["offsets"], [0])
    assert empty["indices"].size == empty["signs"].size == empty["dlogp"].size == 0


def test_reset_forgets_the_episode(weights, pong_frames):
    W1, W2 = weights
    stepper = kernels.PolicyStepper(W1, W2)
    play_steps(stepper, pong_frames[100:110], np.full(10, 0.5))
    stepper.reset()
    assert stepper.n_steps == 0
    stepper.step(pong_frames[200], 0.5)
    assert stepper.nnz == 0
    assert stepper.finish()["offsets"].shape == (2,)


def test_second_episode_matches_reference(weights, pong_frames, played):
    # The stepper that recorded `played` was finished; reused, it must start cleanly.
    stepper = played["stepper"]
    frames = pong_frames[150:220]
    uniforms = played["uniforms"][:70]
    actions, probs, _ = play_steps(stepper, frames, uniforms)
    ref_actions, ref_probs, ref_dlogp, _, _ = reference_episode(*weights, frames, uniforms)
    np.testing.assert_array_equal(actions, ref_actions)
    np.testing.assert_allclose(probs, ref_probs, rtol=1e-9)
    np.testing.assert_allclose(stepper.finish()["dlogp"], ref_dlogp, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("order", ["C", "F"])
def test_sparse_backward_matches_reference_backward(order, weights, played, pong_episode):
    W1, W2 = weights
    W1 = np.asarray(W1, order=order)
    episode = played["episode"]
    _, _, _, ref_epx, ref_eph = played["expected"]
    # Advantage as the trainer computes it: standardised discounted returns of the real rewards.
    rewards = np.append(pong_episode[1], 0.0)  # the action on frame t earned rewards[t]; the last none
    advantage = reference.standardize(reference.discount_rewards(rewards, 0.99))
    weighted = episode["dlogp"] * advantage
    dW1 = np.zeros((200, 6400), order=order)
    dW2 = np.zeros(200)

    assert kernels.sparse_backward(W1, W2, episode["indices"], episode["signs"],
                                   episode["offsets"], weighted, dW1, dW2) is None

    dW1_ref, dW2_ref = reference.policy_backward(W2, ref_eph, weighted, ref_epx)
    assert_vectors_close(dW2, dW2_ref, scale=np.max(np.abs(ref_eph.T) @ np.abs(weighted)))
    assert_vectors_close(dW1, dW1_ref, scale=np.max(np.abs(W2)) * np.max(np.abs(weighted) @ np.abs(ref_epx)))
    assert np.count_nonzero(dW1_ref) > 1000


def test_sparse_backward_accumulates(weights, played, rng):
    W1, W2 = weights
    episode = played["episode"]
    weighted = rng.standard_normal(len(episode["dlogp"]))
    args = (W1, W2, episode["indices"], episode["signs"], episode["offsets"], weighted)
    once_W1, once_W2 = np.zeros((200, 6400), order="F"), np.zeros(200)
    kernels.sparse_backward(*args, once_W1, once_W2)
    start_W1 = np.asfortranarray(rng.standard_normal((200, 6400)))
    start_W2 = rng.standard_normal(200)
    dW1, dW2 = start_W1.copy(order="F"), start_W2.copy()
    kernels.sparse_backward(*args, dW1, dW2)
    kernels.sparse_backward(*args, dW1, dW2)
    np.testing.assert_allclose(dW1, start_W1 + 2 * once_W1, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dW2, start_W2 + 2 * once_W2, rtol=1e-12, atol=1e-12)
    assert np.any(once_W1 != 0) and np.any(once_W2 != 0)


@pytest.mark.parametrize("layout", ["C", "reversed-rows", "every-other-column"])
def test_sparse_backward_writes_any_dW1_layout(layout, weights, played, rng):
    W1, W2 = weights
    episode = played["episode"]
    weighted = rng.standard_normal(len(episode["dlogp"]))
    args = (W1, W2, episode["indices"], episode["signs"], episode["offsets"], weighted)
    expected = np.zeros((200, 6400), order="F")
    kernels.sparse_backward(*args, expected, np.zeros(200))
    if layout == "C":
        dW1 = np.zeros((200, 6400))
    elif layout == "reversed-rows":
        dW1 = np.zeros((200, 6400), order="F")[::-1]
    else:
        dW1 = np.zeros((200, 12800), order="F")[:, ::2]
    kernels.sparse_backward(*args, dW1, np.zeros(200))
    np.testing.assert_allclose(dW1, expected, rtol=1e-12, atol=1e-15)
    assert np.count_nonzero(expected) > 1000


def test_sparse_backward_leaves_inputs_alone_and_accepts_read_only(weights, played, rng):
    W1, W2 = (arr.copy(order="K") for arr in weights)
    episode = {key: arr.copy() for key, arr in played["episode"].items()}
    weighted = rng.standard_normal(len(episode["dlogp"]))
    inputs = [W1, W2, episode["indices"], episode["signs"], episode["offsets"], weighted]
    copies = [arr.copy(order="K") for arr in inputs]
    for arr in inputs:
        arr.setflags(write=False)
    dW1, dW2 = np.zeros((200, 6400), order="F"), np.zeros(200)
    kernels.sparse_backward(*inputs, dW1, dW2)
    for arr, before in zip(inputs, copies):
        np.testing.assert_array_equal(arr, before)
    assert np.any(dW1 != 0)


def test_stepper_plays_the_callers_weights_in_place(pong_frames):
    rng = np.random.default_rng(5)
    W1 = np.asfortranarray(rng.standard_normal((20, 6400)))
    W2 = rng.standard_normal(20)
    stepper = kernels.PolicyStepper(W1, W2)
    stepper.step(pong_frames[10], 0.5)
    stepper.step(pong_frames[11], 0.5)
    x = reference.preprocess(pong_frames[11]) - reference.preprocess(pong_frames[10])
    assert stepper.nnz == np.count_nonzero(x) > 0
    assert stepper.p == pytest.approx(reference.policy_forward(W1, W2, x)[0], rel=1e-9)
    assert stepper.p != 0.5  # so the 0.5 below is the zeroed W2's doing
    W2[:] = 0.0  # an in-place update of the caller's arrays changes the policy played
    stepper.step(pong_frames[12], 0.5)
    assert stepper.p == 0.5


def test_c_ordered_W1_plays_the_same(weights, pong_frames):
    W1, W2 = weights
    uniforms = np.random.default_rng(3).random(40)
    fortran = play_steps(kernels.PolicyStepper(W1, W2), pong_frames[:40], uniforms)
    c_order = play_steps(kernels.PolicyStepper(np.ascontiguousarray(W1), W2), pong_frames[:40], uniforms)
    np.testing.assert_array_equal(c_order[0], fortran[0])
    np.testing.assert_allclose(c_order[1], fortran[1], rtol=1e-12)


def test_numpy_stepper_plays_and_records_as_the_compiled_one(weights, played, pong_frames):
    """backends.NumpyStepper exposes the same p and nnz and records the same episode."""
    from fastpg.backends import NumpyStepper

    stepper = NumpyStepper(*weights)
    actions, probs, nnz = play_steps(stepper, pong_frames, played["uniforms"])
    np.testing.assert_array_equal(actions, played["actions"])
    np.testing.assert_allclose(probs, played["probs"], rtol=1e-9)
    np.testing.assert_array_equal(nnz, played["nnz"])
    episode = stepper.finish()
    for key in ("indices", "signs", "offsets"):
        np.testing.assert_array_equal(episode[key], played["episode"][key], err_msg=key)
    np.testing.assert_allclose(episode["dlogp"], played["episode"]["dlogp"], rtol=1e-9, atol=1e-12)
