"""Training throughput, side by side in one run: `python benchmarks/bench_training.py [--algo ppo] [--env ID]`.

Compares, on the same environment and machine, interleaved over --repeats
rounds (medians reported):
  bare     a loop stepping fastpg's AtariGame with random actions, nothing else:
           uniformly among the actions the trainer plays, the game's defaults
           for --algo (Pong's up and down); with --algo ppo it reads the
           palette screen, as ppo's workers do
  bare2    with --algo ppo, two bare loops at once in two processes (their
           steps/s summed): what two workers could play if training cost
           nothing, so bare2 / bare bounds `--workers 2` / `--workers 1`
           on this machine
  w1       fastpg train --workers 1            (compiled kernels)
  numpy    fastpg train --workers 1 --backend numpy   (reinforce only)
  w2       fastpg train --workers 2
  w1-lag0, w2-lag0   with --algo ppo, the same with --policy-lag 0 (each
           update waits for its batch), beside the default's overlap
With --algo ppo, two more in-process runs with 2 workers, of --steps and 3x
--steps, split the CPU time per env step between the learner (this process)
and the workers, in the steady state: over the steps the longer run adds.
--only-w1 measures the bare loop and --workers 1 alone. With --algo ppo,
--epochs, --minibatches, --inputs, --optimizer and --actions measure every
configuration at those settings instead of the defaults (to weigh a
candidate's speed; the bare loops play the --actions too).
Training throughput is steady state: env steps between the first and the last
row of metrics.csv over the seconds between them (worker start-up excluded).
With --algo ppo on Pong no episode ends before about 25,000 env steps (32
lanes of random play), so the default 120,000 steps times about 95,000 of them; the
30,000 of the benches before fastpg 0.19.1 timed about 8,000, one or two
seconds, and their ratios swung by several percent. The benchmark warns when
a window is under half of --steps.
CPU per step is the CPU time (user + system) of every process involved, per
env step: for training it covers the whole command, start-up included, and
all its processes (the learner and the workers).
Peak RSS is the largest of any process the benchmark started (ru_maxrss of
waited-for children, which includes the trainers' worker processes). The
learner split's runs each go in a spawned process of their own, so that
this process stays small: on Linux a child's peak RSS starts at the size of
the process that started it, so a grown benchmark process would set the
peak of every process it started after growing.
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from fastpg import metrics
from fastpg.env import AtariGame
from fastpg.games import resolve_actions
from fastpg.rollout import episode_rngs


def bare_loop(env_id, n_steps, actions, seed=0, screen="rgb"):
    """Steps/s of whole episodes of random ``actions`` (uniformly) until n_steps are played."""
    game = AtariGame(env_id, screen=screen)
    steps, index = 0, 0
    start, cpu_start = time.perf_counter(), time.process_time()
    while steps < n_steps:
        policy_rng, env_rng = episode_rngs(seed, index)
        game.reset(env_rng)
        done = False
        while not done:
            _, _, done = game.step(actions[int(policy_rng.random() * len(actions))])
            steps += 1
        index += 1
    return steps / (time.perf_counter() - start), (time.process_time() - cpu_start) / steps


def bare_together(env_id, n_steps, actions, screen, n=2):
    """n bare loops at once, one per process (seeds 0 ... n - 1): (summed steps/s, mean CPU seconds per step)."""
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(n) as pool:
        results = pool.starmap(bare_loop, [(env_id, n_steps, actions, seed, screen) for seed in range(n)])
    return sum(rate for rate, _ in results), statistics.mean(cpu for _, cpu in results)


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def train_rate(env_id, n_steps, workers, backend, algo="reinforce", *settings):
    # REINFORCE with the seed's batch, as in the README's tables (2 would idle cores); ppo at its defaults.
    extra = ["--algo", "reinforce", "--batch-size", "10"] if algo == "reinforce" else ["--algo", "ppo"]
    extra += list(settings)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = os.path.join(tmp, "run")
        cmd = [sys.executable, "-m", "fastpg", "train", "--run-dir", run_dir, "--env", env_id,
               "--max-steps", str(n_steps), "--workers", str(workers), "--backend", backend, *extra]
        cpu_before = children_cpu_seconds()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cpu = children_cpu_seconds() - cpu_before
        m = metrics.read(os.path.join(run_dir, "metrics.csv"))
    if len(m["env_steps"]) < 2 or m["seconds"][-1] <= m["seconds"][0]:
        sys.exit(f"{env_id}: too few episodes ended in {n_steps} steps to time the steady state; raise --steps")
    steps = m["env_steps"][-1] - m["env_steps"][0]
    return steps / (m["seconds"][-1] - m["seconds"][0]), cpu / m["env_steps"][-1], steps


def learner_share(env_id, n_steps, overrides, workers=2):
    """(learner, worker) CPU seconds per env step of an in-process ppo run in its steady state: this process vs
    its children, over the env steps that a run of 3 n_steps plays beyond one of n_steps (start-up, the
    workers' included, and the final checkpoint cost both runs the same and cancel)."""
    # Each run in a fresh process: run here, a learner would grow this process, and on Linux every child started
    # after that (a trainer, a bare loop) reports this process's size as its own peak RSS.
    short, long = (_in_fresh_process(_cpu_split, env_id, steps, overrides, workers) for steps in (n_steps, 3 * n_steps))
    steps = long[2] - short[2]
    return (long[0] - short[0]) / steps, (long[1] - short[1]) / steps


def _in_fresh_process(function, *args):
    """function(*args), called in a spawned process (not a daemon: it may start workers of its own)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_send_result, args=(sender, function, args))
    process.start()
    sender.close()
    result = receiver.recv()
    process.join()
    return result


def _send_result(connection, function, args):
    connection.send(function(*args))


def _cpu_split(env_id, n_steps, overrides, workers):
    """(learner CPU seconds, workers' CPU seconds, env steps) of one in-process ppo run with these Config
    overrides."""
    from fastpg.train import train

    with tempfile.TemporaryDirectory() as tmp:
        self_before = resource.getrusage(resource.RUSAGE_SELF)
        children_before = children_cpu_seconds()
        outcome = train({"algo": "ppo", "env": env_id, **overrides}, os.path.join(tmp, "run"), max_steps=n_steps,
                        workers=workers, progress_stream=open(os.devnull, "w"))
        self_after = resource.getrusage(resource.RUSAGE_SELF)
        learner = (self_after.ru_utime + self_after.ru_stime) - (self_before.ru_utime + self_before.ru_stime)
        worker = children_cpu_seconds() - children_before
    return learner, worker, outcome.state.env_steps


NOISY_PAIR = 2.05  # two bare loops at once / one above this: the one-process rounds were slowed by something else
PPO_SETTINGS = {"epochs": int, "minibatches": int, "inputs": str, "optimizer": str, "actions": str}  # it can change


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="ALE/Pong-v5")
    parser.add_argument("--steps", type=int, help="env steps per measurement (default 20,000; 120,000 with "
                                                   "--algo ppo, whose first Pong episodes end near 25,000)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--algo", choices=("reinforce", "ppo"), default="reinforce")
    parser.add_argument("--only-w1", action="store_true",
                        help="measure only the bare loop and --workers 1 (no --workers 2, numpy or learner split)")
    parser.add_argument("--json", help="also write the raw numbers here")
    for name, kind in PPO_SETTINGS.items():
        parser.add_argument(f"--{name}", type=kind, help=f"ppo: train with this --{name} (default: the default's)")
    args = parser.parse_args()
    overrides = {name: getattr(args, name) for name in PPO_SETTINGS if getattr(args, name) is not None}
    if overrides and args.algo != "ppo":
        parser.error(f"{', '.join('--' + name for name in overrides)}: ppo settings; add --algo ppo")
    setting_args = [arg for name, value in overrides.items() for arg in (f"--{name}", str(value))]

    ppo = args.algo == "ppo"
    if args.steps is None:
        args.steps = 120_000 if ppo else 20_000
    configs = {"bare": None, "w1": (1, "cython"), "numpy": (1, "numpy"), "w2": (2, "cython")}
    if ppo:
        del configs["numpy"]  # the numpy learner densifies every row of every epoch: minutes per batch
        configs.update({"w1-lag0": (1, "cython", "--policy-lag", "0"), "w2-lag0": (2, "cython", "--policy-lag", "0"),
                        "bare2": None})
    if args.only_w1:
        configs = {key: configs[key] for key in configs if key in ("bare", "w1", "w1-lag0")}
    actions = resolve_actions(args.env, overrides.get("actions"), args.algo)  # the bare loops play them too
    rates = {key: [] for key in configs}
    cpu = {key: [] for key in configs}
    shares = []
    windows = []  # env steps in each training measurement's steady-state window
    for _ in range(args.repeats):
        for key, setting in configs.items():
            if key == "bare2":
                rate, cpu_per_step = bare_together(args.env, args.steps, actions, screen="palette")
            elif setting is None:
                rate, cpu_per_step = bare_loop(args.env, args.steps, actions, screen="palette" if ppo else "rgb")
            else:
                workers, backend, *settings = setting
                rate, cpu_per_step, steps = train_rate(args.env, args.steps, workers, backend, args.algo,
                                                       *settings, *setting_args)
                windows.append(steps)
            rates[key].append(rate)
            cpu[key].append(cpu_per_step)
        if ppo and not args.only_w1:
            shares.append(learner_share(args.env, args.steps, overrides))
    med = {k: statistics.median(v) for k, v in rates.items()}
    med_cpu = {k: statistics.median(v) * 1e6 for k, v in cpu.items()}
    peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    if ppo:
        # Pong's target is the actor-critic issue's; every other game's is the games issue's.
        pong = args.env.split("/")[-1].startswith("Pong")
        rows = [("`--workers 1` / bare palette-screen loop", "w1", "bare", ">= 0.90" if pong else ">= 0.85"),
                ("`--workers 2` / `--workers 1`", "w2", "w1", ">= 1.8"),
                ("two bare loops at once / one (this machine's bound on the row above)", "bare2", "bare", ""),
                ("`--workers 1`, lag 0 / bare palette-screen loop", "w1-lag0", "bare", ""),
                ("`--workers 2`, lag 0 / `--workers 1`, lag 0", "w2-lag0", "w1-lag0", ""),
                ("`--workers 2` / `--workers 2`, lag 0", "w2", "w2-lag0", "")]
    else:
        rows = [
            ("`--workers 1` / bare emulator loop", "w1", "bare", ">= 0.85"),
            ("`--workers 1` / `--backend numpy`", "w1", "numpy", ">= 3"),
            ("`--workers 2` / `--workers 1`", "w2", "w1", ">= 1.6"),
        ]
    rows = [(label, med[a] / med[b], target) for label, a, b, target in rows if a in med and b in med]
    print(f"{args.env}, --algo {args.algo} {' '.join(setting_args)}, {args.steps} steps per measurement, median of {args.repeats} interleaved rounds, "
          f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}\n")
    print("| configuration | env steps/s (median) | all rounds | CPU µs per step (median) |")
    print("|---|---|---|---|")
    names = {"bare": "bare loop (random actions)", "w1": "train --workers 1", "numpy": "train --workers 1 --backend numpy",
             "w2": "train --workers 2", "w1-lag0": "train --workers 1 --policy-lag 0",
             "w2-lag0": "train --workers 2 --policy-lag 0", "bare2": "two bare loops at once (summed)"}
    for key, label in names.items():
        if key not in med:
            continue
        print(f"| {label} | {med[key]:,.0f} | {', '.join(f'{r:,.0f}' for r in rates[key])} | {med_cpu[key]:.0f} |")
    print("\n| comparison | ratio | target |")
    print("|---|---|---|")
    for label, ratio, target in rows:
        print(f"| {label} | {ratio:.2f} | {target} |")
    if shares:
        learner = statistics.median(s[0] for s in shares) * 1e6
        worker = statistics.median(s[1] for s in shares) * 1e6
        print(f"| learner CPU per env step / a worker's | {learner / worker:.2f} ({learner:.0f} µs / {worker:.0f} µs) "
              "| <= 0.15 |")
    print(f"| peak RSS of any process | {peak_rss_mb:.0f} MB | <= 300 MB |")
    if windows and min(windows) < args.steps / 2:
        print(f"\nThe shortest training measurement timed {min(windows):,} env steps between its first and last "
              f"episode (of {args.steps:,}): a short window is a noisy rate. Raise --steps for steadier ratios.")
    if "bare2" in med and med["bare2"] / med["bare"] > NOISY_PAIR:
        print(f"\nTwo bare loops at once played {med['bare2'] / med['bare']:.2f}x one, more than 2 cores can: the "
              "one-process rounds ran slow (another load on the machine?), which inflates the ratios over "
              "`--workers 1`. Rerun alone before quoting them.")
    if "numpy" in med:
        print(f"\nCPU time per step, numpy backend / compiled (`--workers 1`): {med_cpu['numpy'] / med_cpu['w1']:.2f}; "
              f"bare loop / `--backend numpy` throughput, the ceiling of the second ratio: {med['bare'] / med['numpy']:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": vars(args), "rates": rates, "medians": med, "cpu_seconds_per_step": cpu,
                       "window_steps": windows,
                       "peak_rss_mb": peak_rss_mb,
                       "learner_worker_cpu_seconds_per_step": shares,
                       "numpy": np.__version__}, f, indent=2)


if __name__ == "__main__":
    main()
