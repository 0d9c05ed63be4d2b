"""rmsprop_update: in place on w and cache; compiled vs reference; hand case."""
import numpy as np
import pytest

from fastpg import kernels, reference

BACKENDS = [pytest.param(reference, id="reference"), pytest.param(kernels, id="compiled")]


def random_state(rng, shape, order="C"):
    w = np.asarray(rng.standard_normal(shape), order=order)
    g = np.asarray(rng.standard_normal(shape) * 10.0 ** rng.uniform(-6, 2, size=shape), order=order)
    cache = np.asarray(rng.random(shape) * 10.0 ** rng.uniform(-8, 1, size=shape), order=order)
    return w, g, cache


@pytest.mark.parametrize(
    "shape, order", [((200, 6400), "F"), ((200, 6400), "C"), ((200,), "C"), ((7, 3, 5), "F"), ((0,), "C")]
)
def test_compiled_matches_reference(shape, order, rng):
    w, g, cache = random_state(rng, shape, order)
    w_ref, cache_ref = w.copy(order="K"), cache.copy(order="K")
    w_initial, g_before = w.copy(order="K"), g.copy(order="K")
    for _ in range(2):  # twice: the second step reads the cache the first one wrote
        assert kernels.rmsprop_update(w, g, cache, 1e-3, 0.99) is None
        reference.rmsprop_update(w_ref, g, cache_ref, 1e-3, 0.99)
    np.testing.assert_allclose(cache, cache_ref, rtol=1e-12, atol=0)
    np.testing.assert_allclose(w, w_ref, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(g, g_before)
    assert np.count_nonzero(w != w_initial) >= 0.99 * w.size  # the steps moved w


@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_computed(backend):
    w = np.array([1.0, -2.0, 0.0])
    g = np.array([2.0, 0.0, -1.0])
    cache = np.array([0.0, 4.0, 1.0])
    backend.rmsprop_update(w, g, cache, learning_rate=0.1, decay_rate=0.99)
    # cache = 0.99 cache + 0.01 g^2;  w += 0.1 g / (sqrt(cache) + 1e-5)  (ascent)
    np.testing.assert_allclose(cache, [0.04, 3.96, 0.99 + 0.01], rtol=1e-14)
    np.testing.assert_allclose(w, [1.0 + 0.2 / (0.2 + 1e-5), -2.0, -0.1 / (1.0 + 1e-5)], rtol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_gradient_and_cache_leave_w_unchanged(backend):
    w = np.array([0.5, -0.25])
    cache = np.zeros(2)
    backend.rmsprop_update(w, np.zeros(2), cache, 1e-4, 0.99)
    np.testing.assert_array_equal(w, [0.5, -0.25])  # 0 / (0 + eps): no NaN
    np.testing.assert_array_equal(cache, [0.0, 0.0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_eps_defaults_to_1e_5_and_is_used(backend):
    shape = (4,)
    results = {}
    for eps in (None, 1e-5, 1.0):
        w, g, cache = np.ones(shape), np.full(shape, 1e-4), np.zeros(shape)
        args = (w, g, cache, 1e-2, 0.9) if eps is None else (w, g, cache, 1e-2, 0.9, eps)
        backend.rmsprop_update(*args)
        results[eps] = w
    np.testing.assert_array_equal(results[None], results[1e-5])
    assert not np.allclose(results[1e-5], results[1.0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_updates_the_callers_arrays_in_place(backend, rng):
    w, g, cache = random_state(rng, (50, 6400), order="F")
    w_id, cache_id = id(w), id(cache)
    w_before, cache_before = w.copy(order="K"), cache.copy(order="K")
    g.setflags(write=False)  # g is only read
    backend.rmsprop_update(w, g, cache, 1e-4, 0.99)
    assert id(w) == w_id and id(cache) == cache_id and w.flags.f_contiguous
    assert np.count_nonzero(w != w_before) > 0.99 * w.size
    assert np.count_nonzero(cache != cache_before) > 0.99 * cache.size
