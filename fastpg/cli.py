"""The ``fastpg`` command line."""
import argparse
import datetime
import os
import sys

from . import __version__


def default_workers():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _add_train_parser(subparsers):
    p = subparsers.add_parser(
        "train", help="learn Pong from pixels with the seed's policy gradient",
        description="Train a 2-layer policy on an Atari game with REINFORCE and RMSProp (the seed "
                    "algorithm). Runs until --episodes or --max-steps, or until Ctrl-C, which saves a "
                    "checkpoint and exits. Hyperparameters default to the seed's.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    run = p.add_argument_group("run")
    run.add_argument("--run-dir", help="where checkpoint.npz, state.json and metrics.csv go "
                                       "(default: runs/<timestamp>)")
    run.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its checkpoint")
    run.add_argument("--episodes", type=int, help="stop when the run has played this many episodes in total, "
                                                   "counting those before a resume (a multiple of --batch-size)")
    run.add_argument("--max-steps", type=int, help="stop at the first batch boundary past this many environment "
                                                    "steps in total")
    run.add_argument("--workers", type=int, default=default_workers(), help="worker processes playing episodes")
    run.add_argument("--backend", choices=("cython", "numpy"), default="cython",
                     help="compiled kernels, or the pure-numpy reference (same results, slower)")
    run.add_argument("--checkpoint-every", type=int, default=100,
                     help="episodes between checkpoints (taken at batch boundaries; also on exit)")
    algo = p.add_argument_group("algorithm (fixed for a run; defaults are the seed's)")
    algo.add_argument("--env", help="gymnasium Atari id (default ALE/Pong-v5; Pong-v0 is the seed's)")
    algo.add_argument("--seed", type=int, help="the run's seed (default 0)")
    algo.add_argument("--hidden", type=int, help="hidden units (default 200)")
    algo.add_argument("--batch-size", type=int, help="episodes per RMSProp update (default 10)")
    algo.add_argument("--learning-rate", type=float, help="RMSProp step size (default 1e-4)")
    algo.add_argument("--gamma", type=float, help="reward discount (default 0.99)")
    algo.add_argument("--decay-rate", type=float, help="RMSProp decay (default 0.99)")
    p.set_defaults(func=_run_train)


def _run_train(args):
    from .checkpoint import CheckpointError
    from .env import EnvError
    from .train import TrainingError, train

    if args.resume and not args.run_dir:
        raise TrainingError("--resume needs --run-dir")
    run_dir = args.run_dir or os.path.join("runs", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    overrides = {"env": args.env, "seed": args.seed, "hidden": args.hidden, "batch_size": args.batch_size,
                 "learning_rate": args.learning_rate, "gamma": args.gamma, "decay_rate": args.decay_rate}
    try:
        _, interrupted = train(overrides, run_dir, resume=args.resume, episodes=args.episodes,
                               max_steps=args.max_steps, workers=args.workers, backend=args.backend,
                               checkpoint_every=args.checkpoint_every)
    except (CheckpointError, EnvError) as exc:
        raise TrainingError(str(exc)) from None
    return 130 if interrupted else 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fastpg", description="Policy-gradient Atari Pong from pixels, at the emulator's speed.")
    parser.add_argument("--version", action="version", version=f"fastpg {__version__}")
    subparsers = parser.add_subparsers(title="commands", dest="command", required=True)
    _add_train_parser(subparsers)
    return parser


def main(argv=None):
    from .train import TrainingError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (TrainingError, ValueError) as exc:
        print(f"fastpg {args.command}: error: {exc}", file=sys.stderr)
        return 2
