"""Where an actor-critic update's CPU time goes: `python benchmarks/learner_profile.py [--updates N]`.

Plays one batch at the defaults (16 lanes x 128 steps of ALE/Pong-v5 with the
initial weights), then makes N updates from it with --policy-lag 0 (the same
kernels as the default lag 1, but in this thread) and prints the thread CPU
time per update of each kernel the learner calls, and of the rest (numpy and
Python between the kernels, and at lag 0 the copy of the weights the line
search may step back to). Thread CPU time leaves out other processes, but a
busy machine still slows the memory-bound kernels: run it alone.
"""
import argparse
import time

from fastpg.backends import get_backend
from fastpg.config import Config
from fastpg.lanes import LanePlayer
from fastpg.ppo import PPO
from fastpg.rollout import PlayerSettings
from fastpg.train import RunState


class TimedBackend:
    """A backend whose functions add their thread CPU time to ``seconds[name]``."""

    def __init__(self, backend):
        self._backend = backend
        self.seconds = {}

    def __getattr__(self, name):
        function = getattr(self._backend, name)

        def timed(*args, **kwargs):
            start = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.thread_time() - start

        return timed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=10, help="updates to time (default 10)")
    parser.add_argument("--epochs", type=int, help="passes over the batch (default: the training default)")
    parser.add_argument("--minibatches", type=int, help="Adam steps per pass (default: the training default)")
    args = parser.parse_args()
    overrides = {name: getattr(args, name) for name in ("epochs", "minibatches") if getattr(args, name) is not None}
    config = Config(algo="ppo", policy_lag=0, **overrides)
    config.validate()
    spec = config.policy()
    params = spec.initial_parameters(config.seed)
    backend = TimedBackend(get_backend("cython"))
    learner = PPO(config, spec, params, {**params, **PPO.initial_state(spec, config)}, backend)
    player = LanePlayer(PlayerSettings(spec, config.env, unit="segment"), params)
    batch = [player.play(task) for task in learner.next_tasks(RunState())]
    steps = sum(len(segment["rewards"]) for segment in batch)
    total = 0.0
    for _ in range(args.updates):
        for segment in batch:
            learner.observe(segment)
        start = time.thread_time()
        learner.update(RunState())
        total += time.thread_time() - start
    per_update = {name: 1e3 * seconds / args.updates for name, seconds in backend.seconds.items()}
    rest = 1e3 * total / args.updates - sum(per_update.values())
    print(f"thread CPU per update of a {steps:,}-step batch, mean of {args.updates}: "
          f"{1e3 * total / args.updates:.1f} ms ({1e6 * total / args.updates / steps:.1f} µs per env step)")
    for name, ms in sorted(per_update.items(), key=lambda item: -item[1]):
        print(f"  {name:22s} {ms:6.1f} ms")
    print(f"  {'the rest':22s} {rest:6.1f} ms")


if __name__ == "__main__":
    main()
