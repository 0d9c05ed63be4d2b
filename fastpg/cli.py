"""The ``fastpg`` command line."""
import argparse
import dataclasses
import datetime
import functools
import json
import os
import sys

from . import __version__
from .algorithm import ALGORITHMS
from .backends import BACKENDS
from .config import DEFAULTS, PRESETS, describe_preset, option_name, setting_help
from .saved_run import load_run


def default_workers():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows real defaults; options whose default is "unset" (None, False) say theirs in words."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _add_train_parser(subparsers):
    p = subparsers.add_parser(
        "train", help="learn an Atari game (Pong by default) from pixels with a policy gradient",
        description="Train the seed's 2-layer network on an Atari game: by default with a KL-limited "
                    "actor-critic (--algo ppo; README, 'Solving Pong'), or with the seed's REINFORCE and "
                    "RMSProp (--algo reinforce). Runs until --episodes, --max-steps or --max-minutes, or until "
                    "Ctrl-C, which saves a checkpoint and exits. --preset seed gives the seed's algorithm and "
                    "hyperparameters exactly.",
        formatter_class=_HelpFormatter)
    run = p.add_argument_group("run")
    run.add_argument("--run-dir", help="where checkpoint.npz, state.json and metrics.csv go "
                                       "(default: runs/<timestamp>)")
    run.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its checkpoint")
    run.add_argument("--episodes", type=int, help="stop when the run has played this many episodes in total, "
                                                   "counting those before a resume (a multiple of --batch-size)")
    run.add_argument("--max-steps", type=int, help="stop at the first batch boundary past this many environment "
                                                    "steps in total")
    run.add_argument("--max-minutes", type=float, help="stop at the first batch boundary past this many minutes "
                                                        "of training in total, counting those before a resume")
    run.add_argument("--workers", type=int, help="worker processes playing episodes (default: one per CPU; "
                                                  "with --ray, one actor per CPU of the Ray cluster)")
    run.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                     help="play on Ray actors: with no ADDRESS or 'local', start Ray on this machine; "
                          "'auto' or HOST:PORT joins a cluster started with `ray start` "
                          '(needs the extra: pip install "fastpg[ray]")')
    run.add_argument("--learner-threads", type=int, default=1, metavar="N",
                     help="threads (1 to 256) of the actor-critic learner's kernels; any count gives the same result. "
                          "Worth more than 1 only on cores the workers leave free (e.g. 16 cores: --workers 12 "
                          "--learner-threads 4); REINFORCE's learner runs in one")
    run.add_argument("--backend", choices=BACKENDS, default="cython",
                     help="compiled kernels, or the pure-numpy reference (same results, slower)")
    run.add_argument("--checkpoint-every", type=int, default=100,
                     help="episodes between checkpoints (taken at batch boundaries; also on exit)")
    algo = p.add_argument_group("algorithm (fixed for a run; options given explicitly override --preset)")
    algo.add_argument("--preset", choices=sorted(PRESETS),
                      help="; ".join(f"'{name}': {describe_preset(name)}" for name in sorted(PRESETS))
                           + " (default: fastpg's tuned defaults)")
    for field in dataclasses.fields(DEFAULTS):
        choices = sorted(ALGORITHMS) if field.name == "algo" else None
        algo.add_argument(option_name(field.name), type=field.type, choices=choices,
                          metavar=field.metadata["metavar"], help=setting_help(field))
    p.set_defaults(func=_run_train)


def _run_train(args):
    from .checkpoint import CheckpointError
    from .env import EnvError
    from .config import preset_overrides
    from .train import TrainingError, train

    if args.resume and not args.run_dir:
        raise TrainingError("--resume needs --run-dir")
    run_dir = args.run_dir or os.path.join("runs", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    overrides = preset_overrides(args.preset, {field.name: getattr(args, field.name)
                                               for field in dataclasses.fields(DEFAULTS)})
    workers = args.workers
    if workers is None and args.ray is None:
        workers = default_workers()
    try:
        _, interrupted = train(overrides, run_dir, resume=args.resume, episodes=args.episodes,
                               max_steps=args.max_steps, max_minutes=args.max_minutes, workers=workers,
                               backend=args.backend, checkpoint_every=args.checkpoint_every, ray_address=args.ray,
                               learner_threads=args.learner_threads)
    except (CheckpointError, EnvError) as exc:
        raise TrainingError(str(exc)) from None
    return 130 if interrupted else 0


class CommandError(Exception):
    """A user mistake in eval, video, plot or weights, reported as one line."""


def _one_line_errors(run):
    """Report the expected failures of a command (bad run, bad output path, missing extra) as CommandError."""
    @functools.wraps(run)
    def wrapper(args):
        from .checkpoint import CheckpointError
        from .viz import VizError

        try:
            return run(args)
        except (CheckpointError, VizError) as exc:
            raise CommandError(str(exc)) from None
    return wrapper


def _progress_bar(total, unit):
    """A tqdm bar on stderr when it is a terminal; a silent stand-in otherwise."""
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, file=sys.stderr, disable=not sys.stderr.isatty(), dynamic_ncols=True)


def _add_eval_parser(subparsers):
    p = subparsers.add_parser(
        "eval", help="play full games with a checkpoint's policy and score them",
        description="Play --games full games with the policy of a run's checkpoint, in parallel, and print "
                    "the mean score (and in Pong the win rate and points for and against), the random "
                    "policy's mean score on the same games, and the mean game length. "
                    "Game i uses the seeds of episode i of a run with seed --seed, so results are "
                    "reproducible.",
        formatter_class=_HelpFormatter)
    p.add_argument("run", metavar="RUN", help="a run directory or a checkpoint.npz")
    p.add_argument("--games", type=int, default=10, help="games to play")
    p.add_argument("--greedy", action="store_true",
                   help="always take the likeliest action instead of sampling")
    p.add_argument("--seed", type=int, default=0, help="seed of the games' randomness")
    p.add_argument("--workers", type=int, default=default_workers(), help="worker processes playing games")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (mean_score, random_mean_score, win_rate, points_for, games, ...)")
    p.set_defaults(func=_run_eval)


@_one_line_errors
def _run_eval(args):
    from .evaluate import evaluate, evaluate_random, format_summary, summarize
    from .games import game_profile

    params, spec, state, config = load_run(args.run)
    env_id = config.env
    if not 0 <= args.seed < 2**63:
        raise ValueError(f"--seed must be a non-negative integer, got {args.seed}")
    bar = _progress_bar(args.games, "game")

    def on_result(result):
        bar.update(1)
        bar.set_postfix_str(f"last {result.score:+g}", refresh=False)


    def warn(text):
        bar.write(f"fastpg eval: {text}", file=sys.stderr)

    try:
        results = evaluate(params, spec, env_id, args.games, seed=args.seed, greedy=args.greedy,
                           workers=args.workers, on_result=on_result, on_warning=warn)
        random_results = evaluate_random(env_id, args.games, seed=args.seed, workers=args.workers, on_warning=warn)
    except KeyboardInterrupt:
        bar.close()
        print("fastpg eval: interrupted", file=sys.stderr)
        return 130
    bar.close()
    policy = "greedy" if args.greedy else "stochastic"
    summary = {"checkpoint": args.run, "checkpoint_episodes": state["episodes"], "env": env_id,
               "policy": policy, "seed": args.seed, **summarize(results, random_results)}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{args.run}: checkpoint after {state['episodes']:,} episodes, {env_id}, "
              f"{args.games} games, {policy} policy, seed {args.seed}")
        for line in format_summary(summary, rallies=game_profile(env_id).rallies):
            print(line)
    return 0


def _add_video_parser(subparsers):
    p = subparsers.add_parser(
        "video", help="record the agent playing one game as a GIF or MP4",
        description="Record a checkpoint's policy playing one game (or --max-frames frames): the real "
                    "RGB frames, what the policy saw (the 80x80 difference frame, and with --inputs "
                    "difference+frame the binary frame too), the action taken and its probability, and "
                    "the score. "
                    ".gif always works; .mp4 needs imageio-ffmpeg.",
        formatter_class=_HelpFormatter)
    p.add_argument("run", metavar="RUN", help="a run directory or a checkpoint.npz")
    p.add_argument("-o", "--output", required=True, help="the video file, ending in .gif or .mp4")
    p.add_argument("--max-frames", type=int, help="stop after this many video frames (default: the whole game)")
    p.add_argument("--greedy", action="store_true", help="take the likeliest action instead of sampling")
    p.add_argument("--seed", type=int, default=0, help="seed of the game's randomness (as eval's game 0)")
    p.add_argument("--every", type=int, default=2, help="agent steps per video frame")
    p.add_argument("--fps", type=float, help="frames per second (default: real time: 15 / --every for Pong-v5)")
    p.add_argument("--scale", type=int, default=2, help="zoom of the 210x160 game frame")
    p.set_defaults(func=_run_video)


@_one_line_errors
def _run_video(args):
    from .viz import check_video_output, record_video

    check_video_output(args.output)
    params, spec, state, config = load_run(args.run)
    env_id = config.env
    if not 0 <= args.seed < 2**63:
        raise ValueError(f"--seed must be a non-negative integer, got {args.seed}")
    bar = _progress_bar(args.max_frames, "frame")
    try:
        result, frames = record_video(params, spec, env_id, args.output, seed=args.seed,
                                      greedy=args.greedy, max_frames=args.max_frames, every=args.every,
                                      fps=args.fps, scale=args.scale, on_frame=lambda: bar.update(1))
    except KeyboardInterrupt:
        bar.close()
        print("fastpg video: interrupted; nothing written", file=sys.stderr)
        return 130
    bar.close()
    ending = "game over" if result.finished else "stopped at --max-frames"
    print(f"wrote {args.output}: {frames} frames, {result.steps} agent steps, "
          f"score {result.score:+g} ({ending})")
    return 0


def _add_plot_parser(subparsers):
    p = subparsers.add_parser(
        "plot", help="plot learning curves of one or more runs",
        description="Plot running reward and episode reward against episodes, wall-clock time and "
                    "environment steps. Several runs go on one figure, labelled by directory name.")
    p.add_argument("runs", metavar="RUN", nargs="+", help="run directories, or their metrics.csv")
    p.add_argument("-o", "--output", required=True, help="the image file (.png, .svg or .pdf)")
    p.add_argument("--updates", action="store_true",
                   help="add a row of the actor-critic's update statistics (KL, entropy, value loss, explained "
                        "variance) against environment steps, every update's from the run's updates.csv")
    p.set_defaults(func=_run_plot)


@_one_line_errors
def _run_plot(args):
    from .viz import plot_curves

    plot_curves(args.runs, args.output, updates=args.updates)
    print(f"wrote {args.output}")
    return 0


def _add_weights_parser(subparsers):
    p = subparsers.add_parser(
        "weights", help="draw the learned first-layer weights as 80x80 images",
        description="Draw rows of W1 as 80x80 images in a grid (white positive, black negative, each "
                    "neuron scaled to its own range), framed by the sign and size of the neuron's W2, "
                    "and all of W2 as a bar chart in a second image. W2 is the output weight: REINFORCE's W2; "
                    "the actor-critic's W_pi[A] - W_pi[B], what a neuron adds to action A's logit over B's, "
                    "for its two actions, or the game's pair among more (Pong: RIGHT,LEFT, up over down), "
                    "else the value head's w_v.",
        formatter_class=_HelpFormatter)
    p.add_argument("run", metavar="RUN", help="a run directory or a checkpoint.npz")
    p.add_argument("-o", "--output", required=True, help="the W1 grid image (.png, .svg or .pdf)")
    p.add_argument("--neurons", type=int, default=40, help="show hidden neurons 0..N-1")
    p.add_argument("--w2-output", help="the W2 bar chart (default: OUTPUT with -w2 before the extension)")
    p.add_argument("--contrast", metavar="A,B",
                   help="actor-critic: frame neurons by W_pi[A] - W_pi[B] for these two of the run's actions "
                        "(default: as above)")
    p.add_argument("--minus-init", action="store_true",
                   help="draw W1 minus its initial value (reproduced from the run's seed): what training "
                        "changed, which the initial noise hides early in a run")
    p.set_defaults(func=_run_weights)


@_one_line_errors
def _run_weights(args):
    from .games import chosen_actions, game_profile, parse_action_names
    from .viz import change_since_init, default_w2_output, output_weight, plot_weights

    if args.neurons < 1:
        raise ValueError(f"--neurons must be at least 1, got {args.neurons}")
    params, spec, state, config = load_run(args.run)
    actions = chosen_actions(config.env, config.actions, config.algo)
    contrast = None if args.contrast is None else parse_action_names(args.contrast)
    output = output_weight(params, actions, contrast, game_profile(config.env).pair)
    w2_output = args.w2_output or default_w2_output(args.output)
    title = f"{os.path.basename(os.path.normpath(args.run))} after {state['episodes']:,} episodes"
    W1, what = params["W1"], "W1"
    if args.minus_init:
        W1, what = change_since_init(W1, state["config"], spec), "W1 - initial W1"
    plot_weights(W1, output.values, args.output, w2_output, neurons=args.neurons, title=title, what=what,
                 towards=(output.towards, output.away), meaning=output.meaning)
    print(f"wrote {args.output} and {w2_output}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fastpg", description="Policy-gradient Atari from pixels (Pong by default), at the emulator's speed.")
    parser.add_argument("--version", action="version", version=f"fastpg {__version__}")
    subparsers = parser.add_subparsers(title="commands", dest="command", required=True)
    _add_train_parser(subparsers)
    _add_eval_parser(subparsers)
    _add_video_parser(subparsers)
    _add_plot_parser(subparsers)
    _add_weights_parser(subparsers)
    return parser


def main(argv=None):
    from .train import DivergedError, TrainingError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DivergedError as exc:  # not a usage mistake: the run itself went wrong
        print(f"fastpg {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except (TrainingError, CommandError, ValueError) as exc:
        print(f"fastpg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before train() handles Ctrl-C itself, or in other commands
        print(f"fastpg {args.command}: interrupted", file=sys.stderr)
        return 130
