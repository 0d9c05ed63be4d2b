"""Playing one episode: the per-step loop, and the seeds that make it reproducible."""
import numpy as np

DRAW_BLOCK = 4096  # action draws fetched from the generator at a time


def episode_rngs(run_seed, episode_index):
    """Independent (policy, environment) generators for one episode of a run.

    They depend only on the run's seed and the episode's global index, so an
    episode plays the same whichever worker plays it, and after a resume.
    """
    seq = np.random.SeedSequence(run_seed, spawn_key=(episode_index,))
    policy_seq, env_seq = seq.spawn(2)
    return np.random.default_rng(policy_seq), np.random.default_rng(env_seq)


def play_episode(game, stepper, run_seed, episode_index):
    """Play one episode with the stepper's current weights; returns the sparse record.

    The record is the stepper's (indices, signs, offsets, dlogp) plus
    ``rewards`` float64 (T,) and ``index``.
    """
    policy_rng, env_rng = episode_rngs(run_seed, episode_index)
    stepper.reset()
    frame = game.reset(env_rng)
    rewards = []
    draws, next_draw = [], 0
    done = False
    while not done:
        if next_draw == len(draws):
            draws, next_draw = policy_rng.random(DRAW_BLOCK).tolist(), 0
        action = stepper.step(frame, draws[next_draw])
        next_draw += 1
        frame, reward, done = game.step(action)
        rewards.append(reward)
    episode = stepper.finish()
    episode["rewards"] = np.array(rewards, dtype=np.float64)
    episode["index"] = episode_index
    return episode
