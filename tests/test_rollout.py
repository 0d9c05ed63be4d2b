"""fastpg.rollout: each episode's random streams come from the run's seed and the episode's index
alone, which is what lets any worker (or a replay) play an episode identically."""
import numpy as np

from fastpg.rollout import episode_rngs


def test_episode_rngs_depend_only_on_seed_and_index():
    def draws(seed, index):
        policy, env = episode_rngs(seed, index)
        return policy.random(16), env.random(16)

    np.testing.assert_array_equal(draws(5, 7)[0], draws(5, 7)[0])
    np.testing.assert_array_equal(draws(5, 7)[1], draws(5, 7)[1])
    policy, env = draws(5, 7)
    assert not np.array_equal(policy, env)  # the two streams of one episode are independent
    for other in (draws(5, 8), draws(6, 7), draws(5, 0)):
        assert not np.array_equal(other[0], policy)
        assert not np.array_equal(other[1], env)
