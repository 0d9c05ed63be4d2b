"""Kernel benchmarks: numpy reference and compiled side by side, one group per kernel.

Run with `python -m pytest benchmarks/test_bench_kernels.py` (not collected by the
default test run), or `python benchmarks/kernel_table.py` for the speedup table.
Inputs are built outside the timed calls, and every case first checks that
both backends agree on them.
"""
import numpy as np
import pytest

from fastpg import kernels, reference
from fastpg.backends import get_backend
from fastpg.policy import ActorCriticSpec

BACKENDS = {"reference": reference, "compiled": kernels}
# The actor-critic's sparse entry points: the numpy twins (reference math on dense chunks) and the kernels.
ACTOR_BACKENDS = {"reference": get_backend("numpy"), "compiled": get_backend("cython")}
BACKEND_NAMES = list(BACKENDS)
DENSE_ROW_BYTES = 6400 * 8  # one float64 difference frame, as the seed records a step


def describe(benchmark, build_info, backend, **details):
    benchmark.extra_info.update(build_info)
    benchmark.extra_info["backend"] = backend
    benchmark.extra_info.update(details)


@pytest.mark.benchmark(group="preprocess")
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_preprocess(benchmark, backend, pong, build_info):
    frame = pong.frames[pong.typical_step]
    expected = reference.preprocess(frame)
    np.testing.assert_array_equal(kernels.preprocess(frame), expected)
    describe(benchmark, build_info, backend, input="one real Pong frame uint8 (210, 160, 3)")
    out = benchmark(BACKENDS[backend].preprocess, frame)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.benchmark(group="policy_forward")
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_policy_forward(benchmark, backend, pong, build_info):
    x = pong.epx[pong.typical_step]
    p_ref, h_ref = reference.policy_forward(pong.W1, pong.W2, x)
    scale = np.max(np.abs(pong.W1) @ np.abs(x))
    np.testing.assert_allclose(kernels.policy_forward(pong.W1, pong.W2, x)[1], h_ref, rtol=1e-9, atol=1e-12 * scale)
    describe(benchmark, build_info, backend, W1_order="F", hidden=pong.W1.shape[0],
             input=f"one real difference frame, {int(pong.nnz[pong.typical_step])} non-zero pixels")
    p, h = benchmark(BACKENDS[backend].policy_forward, pong.W1, pong.W2, x)
    assert p == pytest.approx(p_ref, rel=1e-9)
    np.testing.assert_allclose(h, h_ref, rtol=1e-9, atol=1e-12 * scale)


@pytest.mark.benchmark(group="policy_backward")
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_policy_backward(benchmark, backend, pong, build_info):
    args = (pong.W2, pong.eph, pong.epdlogp, pong.epx)
    dW1_ref, dW2_ref = reference.policy_backward(*args)
    scale = np.max(np.abs(pong.W2)) * np.max(np.abs(pong.epdlogp) @ np.abs(pong.epx))

    def agrees(dW1, dW2):
        np.testing.assert_allclose(dW1, dW1_ref, rtol=1e-9, atol=1e-12 * scale)
        np.testing.assert_allclose(dW2, dW2_ref, rtol=1e-9, atol=1e-12 * np.max(np.abs(dW2_ref)))

    agrees(*kernels.policy_backward(*args))
    describe(benchmark, build_info, backend, steps=len(pong.epx), hidden=len(pong.W2),
             input=f"{len(pong.epx)}-step episode of real difference frames, "
                   f"mean {pong.nnz.mean():.1f} non-zero pixels a step")
    agrees(*benchmark(BACKENDS[backend].policy_backward, *args))


@pytest.mark.benchmark(group="discount_rewards")
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_discount_rewards(benchmark, backend, build_info):
    rng = np.random.default_rng(0)
    rewards = np.zeros(2000)  # a 2,000-step episode of sparse +-1 points, as Pong gives
    points = rng.choice(2000, size=21, replace=False)
    rewards[points] = rng.choice([-1.0, 1.0], size=21)
    expected = reference.discount_rewards(rewards, 0.99)
    np.testing.assert_allclose(kernels.discount_rewards(rewards, 0.99), expected, rtol=1e-9)
    describe(benchmark, build_info, backend, steps=2000)
    out = benchmark(BACKENDS[backend].discount_rewards, rewards, 0.99)
    np.testing.assert_allclose(out, expected, rtol=1e-9)


@pytest.mark.benchmark(group="gae")
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_gae(benchmark, backend, build_info):
    rng = np.random.default_rng(0)
    rewards = np.zeros(2000)  # a 2,000-step segment: sparse +-1 points, two episode ends
    points = rng.choice(2000, size=21, replace=False)
    rewards[points] = rng.choice([-1.0, 1.0], size=21)
    values = rng.uniform(-1, 1, 2000)
    dones = np.zeros(2000, dtype=bool)
    dones[[700, 1500]] = True
    args = (rewards, values, dones, 0.3, 0.99, 0.95)
    expected = reference.gae(*args)
    for actual, wanted in zip(kernels.gae(*args), expected):
        np.testing.assert_allclose(actual, wanted, rtol=1e-12, atol=1e-14)
    describe(benchmark, build_info, backend, steps=2000)
    out = benchmark(BACKENDS[backend].gae, *args)
    np.testing.assert_allclose(out[0], expected[0], rtol=1e-12, atol=1e-14)


@pytest.mark.benchmark(group="rmsprop_update")
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_rmsprop_update(benchmark, backend, build_info):
    rng = np.random.default_rng(0)
    w0 = np.asfortranarray(rng.standard_normal((200, 6400)) / 80.0)  # 1.28 M parameters, like W1
    g = np.asfortranarray(rng.standard_normal((200, 6400)))
    cache0 = np.asfortranarray(rng.random((200, 6400)))
    results = {}
    for name, module in BACKENDS.items():
        w, cache = w0.copy(order="F"), cache0.copy(order="F")
        module.rmsprop_update(w, g, cache, 1e-4, 0.99)
        results[name] = (w, cache)
    for ref_arr, compiled_arr in zip(results["reference"], results["compiled"]):
        np.testing.assert_allclose(compiled_arr, ref_arr, rtol=1e-12)
    describe(benchmark, build_info, backend, parameters=w0.size, order="F")
    w, cache = w0.copy(order="F"), cache0.copy(order="F")
    # In place: each round updates the same buffers again; the work per call is the same.
    benchmark(BACKENDS[backend].rmsprop_update, w, g, cache, 1e-4, 0.99)
    assert np.all(np.isfinite(w)) and not np.array_equal(w, w0)


class ReferenceStepper:
    """The seed's step: preprocess, difference with the previous frame, dense forward, act."""

    def __init__(self, W1, W2):
        self.W1, self.W2, self.previous = W1, W2, None

    def step(self, frame, u):
        current = reference.preprocess(frame)
        x = np.zeros(6400) if self.previous is None else current - self.previous
        self.previous = current
        self.p, self.h = reference.policy_forward(self.W1, self.W2, x)
        return 2 if u < self.p else 3

    def reset(self):
        self.previous = None


def play(stepper, frames, uniforms):
    stepper.reset()
    return [stepper.step(frame, u) for frame, u in zip(frames, uniforms)]


@pytest.mark.benchmark(group="policy_step")
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_policy_step(benchmark, backend, pong, build_info):
    """Per environment step: frame -> difference -> forward -> action, 100 steps a round.

    Also records the bytes a recorded step costs: PolicyStepper's sparse record
    (finish() arrays over the 1,000-step episode) against a dense float64 row.
    """
    frames, uniforms = pong.frames[:100], pong.uniforms[:100]
    compiled = kernels.PolicyStepper(pong.W1, pong.W2)
    expected_actions = play(ReferenceStepper(pong.W1, pong.W2), frames, uniforms)
    assert play(compiled, frames, uniforms) == expected_actions

    compiled.reset()
    for frame, u in zip(pong.frames, pong.uniforms):
        compiled.step(frame, u)
    episode = compiled.finish()
    sparse_bytes = sum(arr.nbytes for arr in episode.values()) / len(pong.frames)
    assert sparse_bytes < 1024
    stepper = compiled if backend == "compiled" else ReferenceStepper(pong.W1, pong.W2)
    describe(benchmark, build_info, backend, steps_per_round=len(frames),
             bytes_per_recorded_step=sparse_bytes if backend == "compiled" else DENSE_ROW_BYTES,
             sparse_bytes_per_step=sparse_bytes, dense_row_bytes=DENSE_ROW_BYTES)
    actions = benchmark(play, stepper, frames, uniforms)
    assert actions == expected_actions


# ---------------------------------------------------------------- the actor-critic (--algo ppo)

ACTOR_ROWS = 4096  # record rows of a batch's forward
MINIBATCH = 1024  # rows of one ppo_backward call


def sparse_record(epx, n_rows):
    """A record of n_rows rows cycling through real difference frames (int16 indices, int8 signs, int32 offsets)."""
    rows = [np.flatnonzero(epx[t % len(epx)]) for t in range(n_rows)]
    return {
        "indices": np.concatenate(rows).astype(np.int16),
        "signs": np.concatenate([epx[t % len(epx), r] for t, r in enumerate(rows)]).astype(np.int8),
        "offsets": np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int32),
    }


@pytest.fixture(scope="module")
def actor(pong):
    """ActorCriticSpec(200) parameters (W_pi scaled up: a non-uniform policy) and a 4,096-row real record."""
    params = ActorCriticSpec(200, actions=(2, 3)).initial_parameters(0)
    rng = np.random.default_rng(0)
    params["W_pi"][...] = rng.standard_normal(params["W_pi"].shape)
    params["b1"][...] = 0.01 * rng.standard_normal(200)
    record = sparse_record(pong.epx, ACTOR_ROWS)
    nnz = np.diff(record["offsets"])
    return params, record, nnz


def record_args(record):
    return record["indices"], record["signs"], record["offsets"]


@pytest.mark.benchmark(group="actor_critic_forward")
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_actor_critic_forward(benchmark, backend, actor, build_info):
    params, record, nnz = actor
    results = {}
    for name, module in ACTOR_BACKENDS.items():
        logits, values = np.zeros((ACTOR_ROWS, 2)), np.zeros(ACTOR_ROWS)
        module.actor_critic_forward(params, *record_args(record), logits, values)
        results[name] = (logits, values)
    for ref_arr, compiled_arr in zip(results["reference"], results["compiled"]):
        np.testing.assert_allclose(compiled_arr, ref_arr, rtol=1e-9, atol=1e-12 * np.max(np.abs(ref_arr)))
    describe(benchmark, build_info, backend, rows=ACTOR_ROWS, hidden=200, actions=2, W1_order="F",
             input=f"{ACTOR_ROWS}-row record of real difference frames, mean {nnz.mean():.1f} non-zero pixels a row")
    logits, values = np.zeros((ACTOR_ROWS, 2)), np.zeros(ACTOR_ROWS)
    benchmark(ACTOR_BACKENDS[backend].actor_critic_forward, params, *record_args(record), logits, values)
    np.testing.assert_allclose(logits, results["reference"][0], rtol=1e-9, atol=1e-12 * np.max(np.abs(logits)))


@pytest.mark.benchmark(group="ppo_backward")
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_ppo_backward(benchmark, backend, actor, build_info):
    params, record, nnz = actor
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(ACTOR_ROWS, size=MINIBATCH, replace=False)).astype(np.int64)
    choices = rng.integers(0, 2, size=MINIBATCH).astype(np.uint8)
    logits, values = np.zeros((ACTOR_ROWS, 2)), np.zeros(ACTOR_ROWS)
    kernels.actor_critic_forward(params, *record_args(record), logits, values)
    logp = reference.log_softmax(logits[rows])[np.arange(MINIBATCH), choices]
    args = (params, *record_args(record), rows, choices, logp + rng.normal(0.0, 0.2, MINIBATCH),
            rng.standard_normal(MINIBATCH), rng.standard_normal(MINIBATCH), 0.2, 0.5, 0.01)
    results = {}
    for name, module in ACTOR_BACKENDS.items():
        grads = {key: np.zeros_like(arr, order="K") for key, arr in params.items()}
        loss, stats = module.ppo_backward(*args, grads)
        results[name] = (loss, stats, grads)
    assert results["compiled"][0] == pytest.approx(results["reference"][0], rel=1e-10)
    assert 0 < results["reference"][1]["clip_fraction"] < 1
    for key, ref_grad in results["reference"][2].items():
        np.testing.assert_allclose(results["compiled"][2][key], ref_grad, rtol=1e-9,
                                   atol=1e-12 * np.max(np.abs(ref_grad)), err_msg=key)
    describe(benchmark, build_info, backend, minibatch=MINIBATCH, hidden=200, actions=2,
             input=f"{MINIBATCH} rows of a {ACTOR_ROWS}-row record of real difference frames, "
                   f"mean {nnz[rows].mean():.1f} non-zero pixels a row; clip 0.2, vf 0.5, entropy 0.01")
    grads = {key: np.zeros_like(arr, order="K") for key, arr in params.items()}
    loss, _ = benchmark(ACTOR_BACKENDS[backend].ppo_backward, *args, grads)
    assert loss == pytest.approx(results["reference"][0], rel=1e-10)


@pytest.fixture(scope="module")
def palette_play(actor):
    """101 palette screens of real Pong played by the actor's policy, and the colour table they filled."""
    from fastpg.env import AtariGame

    params = actor[0]
    spec = ActorCriticSpec(200, actions=(2, 3))
    game = AtariGame("ALE/Pong-v5", screen="palette")
    lut = np.full(256, 2, dtype=np.uint8)  # 2: not seen yet; filled in place as colours appear
    stepper = kernels.ActorStepper(params, spec.actions, lut, lambda: game.fill_lut(lut, spec.frame.is_foreground),
                                   first_row=spec.frame.first_row)
    rng = np.random.default_rng(0)
    screen, screens = game.reset(rng), []
    for _ in range(300):  # past the serve, into play
        screens.append(screen.copy())
        screen, _, done = game.step(stepper.step(screen, rng.random()))
        if done:
            screen = game.reset(rng)
    assert 2 not in lut[np.unique(np.array(screens))]  # every colour shown has its entry: no refill while timed
    return params, spec, screens[-101:], lut


@pytest.mark.benchmark(group="actor_step")
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_actor_step(benchmark, backend, palette_play, build_info):
    """Per environment step of the actor-critic: palette screen -> binary frame -> difference -> forward ->
    sampled action, 101 steps a round (the first sees an all-zero difference)."""
    params, spec, screens, lut = palette_play
    uniforms = np.random.default_rng(1).random(len(screens)).tolist()

    def make(name):
        def refill():
            raise AssertionError("the benchmark's colour table is complete")
        return ACTOR_BACKENDS[name].actor_stepper(params, spec.actions, lut.copy(), refill, first_row=spec.frame.first_row)

    steppers = {name: make(name) for name in ACTOR_BACKENDS}
    records = {}
    for name, stepper in steppers.items():
        records[name] = (play(stepper, screens, uniforms), stepper.finish())
    assert records["compiled"][0] == records["reference"][0]
    for key in ("indices", "signs", "offsets", "choices"):
        np.testing.assert_array_equal(records["compiled"][1][key], records["reference"][1][key], err_msg=key)
    nnz = np.diff(records["compiled"][1]["offsets"])
    describe(benchmark, build_info, backend, steps_per_round=len(screens),
             input=f"{len(screens)} real Pong palette screens (210, 160), mean {nnz.mean():.1f} non-zero pixels "
                   "in a difference frame; H = 200, A = 2")
    actions = benchmark(play, steppers[backend], screens, uniforms)
    assert actions == records["reference"][0]


@pytest.mark.benchmark(group="adam_update")
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_adam_update(benchmark, backend, build_info):
    rng = np.random.default_rng(0)
    w0 = np.asfortranarray(rng.standard_normal((200, 6400)) / 80.0)  # 1.28 M parameters, like W1
    g = np.asfortranarray(rng.standard_normal((200, 6400)))
    m0 = np.asfortranarray(0.1 * rng.standard_normal((200, 6400)))
    v0 = np.asfortranarray(rng.random((200, 6400)))
    results = {}
    for name, module in BACKENDS.items():
        w, m, v = w0.copy(order="F"), m0.copy(order="F"), v0.copy(order="F")
        module.adam_update(w, g, m, v, 10, 1e-4)
        results[name] = (w, m, v)
    for ref_arr, compiled_arr in zip(results["reference"], results["compiled"]):
        np.testing.assert_allclose(compiled_arr, ref_arr, rtol=1e-12)
    describe(benchmark, build_info, backend, parameters=w0.size, order="F")
    w, m, v = w0.copy(order="F"), m0.copy(order="F"), v0.copy(order="F")
    # In place: each round updates the same buffers again (as step 10); the work per call is the same.
    benchmark(BACKENDS[backend].adam_update, w, g, m, v, 10, 1e-4)
    assert np.all(np.isfinite(w)) and not np.array_equal(w, w0)


@pytest.mark.benchmark(group="lazy_adam_update")
@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_lazy_adam_update(benchmark, backend, build_info):
    """--optimizer lazy-adam's step on W1 of the default network (200 x 12,800, the difference and the frame),
    on the 1,400 columns a 1,024-step minibatch of Pong typically lists."""
    rng = np.random.default_rng(0)
    shape = (200, 12800)
    w0 = np.asfortranarray(rng.standard_normal(shape) / 80.0)
    g = np.asfortranarray(rng.standard_normal(shape))
    m0 = np.asfortranarray(0.1 * rng.standard_normal(shape))
    v0 = np.asfortranarray(rng.random(shape))
    columns = np.sort(rng.choice(shape[1], 1400, replace=False)).astype(np.int64)
    results = {}
    for name, module in BACKENDS.items():
        w, m, v = w0.copy(order="F"), m0.copy(order="F"), v0.copy(order="F")
        module.adam_update(w, g, m, v, 10, 1e-4, columns=columns)
        results[name] = (w, m, v)
    for ref_arr, compiled_arr in zip(results["reference"], results["compiled"]):
        np.testing.assert_array_equal(compiled_arr, ref_arr)
    describe(benchmark, build_info, backend, parameters=w0.size, columns=len(columns), order="F")
    w, m, v = w0.copy(order="F"), m0.copy(order="F"), v0.copy(order="F")
    benchmark(BACKENDS[backend].adam_update, w, g, m, v, 10, 1e-4, columns=columns)
    assert np.all(np.isfinite(w)) and not np.array_equal(w, w0)
