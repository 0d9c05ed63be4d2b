"""fastpg.reinforce.Reinforce: an episode whose returns are all zero (no point scored) gives zero
gradients and leaves the weights unchanged, without NaN, on both backends."""
import numpy as np
import pytest

from fastpg.backends import get_backend
from fastpg.config import Config
from fastpg.policy import PolicySpec
from fastpg.reinforce import Reinforce
from fastpg.train import RunState

HIDDEN = 8  # small: the check is about the returns, not the layer


def synthetic_episode(rewards, seed=0):
    """A sparse episode record (the steppers' format) with random difference pixels."""
    rng = np.random.default_rng(seed)
    n_steps = len(rewards)
    indices, signs, offsets = [], [], [0]
    for _ in range(n_steps):
        pixels = np.sort(rng.choice(6400, size=30, replace=False))
        indices.append(pixels.astype(np.int16))
        signs.append(rng.choice([-1, 1], size=30).astype(np.int8))
        offsets.append(offsets[-1] + 30)
    return {"indices": np.concatenate(indices), "signs": np.concatenate(signs),
            "offsets": np.array(offsets, dtype=np.int32), "dlogp": rng.uniform(-1, 1, n_steps),
            "rewards": np.asarray(rewards, dtype=np.float64), "index": 0}


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_an_all_zero_return_episode_gives_no_nan(backend):
    spec = PolicySpec(HIDDEN)
    initial = spec.initial_parameters(0)
    W1, W2 = initial["W1"], initial["W2"]
    params = {name: array.copy(order="K") for name, array in initial.items()}
    config = Config(algo="reinforce", hidden=HIDDEN, learning_rate=1e-4)
    learner = Reinforce(config, spec, params, Reinforce.initial_state(spec), get_backend(backend))
    learner.observe(synthetic_episode(np.zeros(20)))
    np.testing.assert_array_equal(learner.grad_W1, 0.0)
    np.testing.assert_array_equal(learner.grad_W2, 0.0)
    learner.update(RunState())
    np.testing.assert_array_equal(learner.W1, W1)
    np.testing.assert_array_equal(learner.W2, W2)
    # The same steps with a point scored do move the weights: the check above can fail.
    learner.observe(synthetic_episode([0.0] * 19 + [1.0]))
    assert np.all(np.isfinite(learner.grad_W1)) and np.any(learner.grad_W1 != 0)
    learner.update(RunState())
    assert np.all(np.isfinite(learner.W1)) and not np.array_equal(learner.W1, W1)
