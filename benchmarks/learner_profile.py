"""Where an actor-critic update's time goes: `python benchmarks/learner_profile.py [--updates N] [--threads T]`.

Plays one batch at the defaults (32 lanes x 128 steps of ALE/Pong-v5 with the
initial weights), then makes N updates from it with --policy-lag 0 (the same
kernels as the default lag 1, but in this thread) and prints, per update, the
wall time and the CPU time of the whole process (every thread of the kernels),
the wall time of each kernel the learner calls, and of the rest (numpy and
Python between the kernels, and at lag 0 the copy of the weights the line
search may step back to). --threads splits the kernels' work between that
many threads (--learner-threads of `fastpg train`); --epochs, --minibatches,
--inputs and --optimizer change those settings. --checkpoint RUN plays the batch and starts the updates
from a run's saved weights and settings instead of the defaults' initial ones (its Adam moments start at
zero), so the cost of a trained policy's updates can be set beside an untrained one's. The kernels are memory bound and the clock
is the wall's: run it alone.
"""
import argparse
import dataclasses
import time

from fastpg.backends import get_backend
from fastpg.checkpoint import check_fits
from fastpg.config import Config
from fastpg.lanes import LanePlayer
from fastpg.ppo import PPO
from fastpg.rollout import PlayerSettings
from fastpg.saved_run import load_run
from fastpg.train import RunState


class TimedBackend:
    """A backend whose functions add their wall time to ``seconds[name]``."""

    def __init__(self, backend):
        self._backend = backend
        self.seconds = {}

    def __getattr__(self, name):
        function = getattr(self._backend, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

        return timed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=10, help="updates to time (default 10)")
    parser.add_argument("--threads", type=int, default=1, help="threads of the learner's kernels (default 1)")
    parser.add_argument("--epochs", type=int, help="passes over the batch (default: the training default)")
    parser.add_argument("--minibatches", type=int, help="Adam steps per pass (default: the training default)")
    parser.add_argument("--inputs", help="what the network sees (default: the training default)")
    parser.add_argument("--optimizer", help="adam or lazy-adam (default: the training default)")
    parser.add_argument("--checkpoint", metavar="RUN", help="start from this actor-critic run's weights and "
                                                            "settings (a run directory or checkpoint.npz)")
    args = parser.parse_args()
    overrides = {name: getattr(args, name) for name in ("epochs", "minibatches", "inputs", "optimizer")
                 if getattr(args, name) is not None}
    if args.checkpoint:
        # The weights, checked against the run's own settings, cache-line aligned as training holds them.
        params, _, _, config = load_run(args.checkpoint)
        if config.algo != "ppo":
            parser.error(f"--checkpoint: {args.checkpoint} is a {config.algo} run; this profiles the actor-critic")
        config = dataclasses.replace(config, policy_lag=0, **overrides)
    else:
        config = Config(algo="ppo", policy_lag=0, **overrides)
    config.validate()
    spec = config.policy()
    if args.checkpoint:
        check_fits(args.checkpoint, params, spec.parameters())  # an --inputs override may not fit them
    else:
        params = spec.initial_parameters(config.seed)
    backend = TimedBackend(get_backend("cython", threads=args.threads))
    learner = PPO(config, spec, params, {**params, **PPO.initial_state(spec, config)}, backend)
    player = LanePlayer(PlayerSettings(spec, config.env, unit="segment"), params)
    batch = [player.play(task) for task in learner.next_tasks(RunState())]
    steps = sum(len(segment["rewards"]) for segment in batch)
    wall = cpu = 0.0
    for _ in range(args.updates):
        for segment in batch:
            learner.observe(segment)
        start, start_cpu = time.perf_counter(), time.process_time()
        learner.update(RunState())
        wall += time.perf_counter() - start
        cpu += time.process_time() - start_cpu
    per_update = {name: 1e3 * seconds / args.updates for name, seconds in backend.seconds.items()}
    rest = 1e3 * wall / args.updates - sum(per_update.values())
    print(f"per update of a {steps:,}-step batch with {args.threads} thread(s), mean of {args.updates}: "
          f"wall {1e3 * wall / args.updates:.1f} ms ({1e6 * wall / args.updates / steps:.1f} µs per env step), "
          f"CPU {1e3 * cpu / args.updates:.1f} ms")
    for name, ms in sorted(per_update.items(), key=lambda item: -item[1]):
        print(f"  {name:22s} {ms:6.1f} ms")
    print(f"  {'the rest':22s} {rest:6.1f} ms")


if __name__ == "__main__":
    main()
