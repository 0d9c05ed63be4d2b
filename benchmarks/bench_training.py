"""Training throughput, side by side in one run: `python benchmarks/bench_training.py`.

Compares, on the same environment and machine, interleaved over --repeats
rounds (medians reported):
  bare     a loop stepping fastpg's AtariGame with random actions, nothing else
  w1       fastpg train --workers 1            (compiled kernels)
  numpy    fastpg train --workers 1 --backend numpy
  w2       fastpg train --workers 2
Training throughput is steady state: env steps between the first and the last
row of metrics.csv over the seconds between them (worker start-up excluded).
CPU per step is the CPU time (user + system) of every process involved, per
env step: for training it covers the whole command, start-up included, and
all its processes (the learner and the workers).
Peak RSS is the largest of any process the benchmark started (ru_maxrss of
waited-for children, which includes the trainers' worker processes).
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
from fastpg.constants import DOWN, UP
from fastpg.env import AtariGame
from fastpg.rollout import episode_rngs


def bare_loop(env_id, n_steps, seed=0):
    """Steps/s of whole random-action episodes until n_steps are played."""
    game = AtariGame(env_id)
    steps, index = 0, 0
    start, cpu_start = time.perf_counter(), time.process_time()
    while steps < n_steps:
        policy_rng, env_rng = episode_rngs(seed, index)
        game.reset(env_rng)
        done = False
        while not done:
            _, _, done = game.step(UP if policy_rng.random() < 0.5 else DOWN)
            steps += 1
        index += 1
    return steps / (time.perf_counter() - start), (time.process_time() - cpu_start) / steps


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def train_rate(env_id, n_steps, workers, backend, extra=()):
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = os.path.join(tmp, "run")
        cmd = [sys.executable, "-m", "fastpg", "train", "--run-dir", run_dir, "--env", env_id,
               "--max-steps", str(n_steps), "--workers", str(workers), "--backend", backend,
               "--batch-size", "10", *extra]  # the seed's batch, as in the README's tables; 2 would idle cores
        cpu_before = children_cpu_seconds()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cpu = children_cpu_seconds() - cpu_before
        m = metrics.read(os.path.join(run_dir, "metrics.csv"))
    steps = m["env_steps"][-1] - m["env_steps"][0]
    return steps / (m["seconds"][-1] - m["seconds"][0]), cpu / m["env_steps"][-1]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="ALE/Pong-v5")
    parser.add_argument("--steps", type=int, default=20000, help="env steps per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the raw numbers here")
    args = parser.parse_args()

    configs = {"bare": None, "w1": (1, "cython"), "numpy": (1, "numpy"), "w2": (2, "cython")}
    rates = {key: [] for key in configs}
    cpu = {key: [] for key in configs}
    for _ in range(args.repeats):
        for key, setting in configs.items():
            rate, cpu_per_step = bare_loop(args.env, args.steps) if setting is None else train_rate(
                args.env, args.steps, *setting)
            rates[key].append(rate)
            cpu[key].append(cpu_per_step)
    med = {k: statistics.median(v) for k, v in rates.items()}
    med_cpu = {k: statistics.median(v) * 1e6 for k, v in cpu.items()}
    peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    rows = [
        ("`--workers 1` / bare emulator loop", med["w1"] / med["bare"], ">= 0.85"),
        ("`--workers 1` / `--backend numpy`", med["w1"] / med["numpy"], ">= 3"),
        ("`--workers 2` / `--workers 1`", med["w2"] / med["w1"], ">= 1.6"),
    ]
    print(f"{args.env}, {args.steps} steps per measurement, median of {args.repeats} interleaved rounds, "
          f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}\n")
    print("| configuration | env steps/s (median) | all rounds | CPU µs per step (median) |")
    print("|---|---|---|---|")
    names = {"bare": "bare loop (random actions)", "w1": "train --workers 1", "numpy": "train --workers 1 --backend numpy",
             "w2": "train --workers 2"}
    for key, label in names.items():
        print(f"| {label} | {med[key]:,.0f} | {', '.join(f'{r:,.0f}' for r in rates[key])} | {med_cpu[key]:.0f} |")
    print("\n| comparison | ratio | target |")
    print("|---|---|---|")
    for label, ratio, target in rows:
        print(f"| {label} | {ratio:.2f} | {target} |")
    print(f"| peak RSS of any process | {peak_rss_mb:.0f} MB | <= 300 MB |")
    print(f"\nCPU time per step, numpy backend / compiled (`--workers 1`): {med_cpu['numpy'] / med_cpu['w1']:.2f}; "
          f"bare loop / `--backend numpy` throughput, the ceiling of the second ratio: {med['bare'] / med['numpy']:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rates": rates, "medians": med, "cpu_seconds_per_step": cpu, "peak_rss_mb": peak_rss_mb,
                       "numpy": np.__version__}, f, indent=2)


if __name__ == "__main__":
    main()
