"""Training throughput against the number of workers: `python benchmarks/bench_scaling.py [--workers 1,2,4,8,16]`.

For each worker count W, interleaved over --repeats rounds (medians reported):
  train    fastpg train --workers W at the actor-critic's defaults, rated as
           bench_training.py rates it: env steps between the first and the last
           row of metrics.csv over the seconds between them
  bare     W bare loops at once, one process each (random actions, the palette
           screen, as the workers read it), their steps/s summed: what W
           workers could play if training cost nothing, so bare(W) / bare(1)
           is the machine's own bound on the speed-up at W
The table gives the speed-up train(W) / train(1), its share of the ideal W,
and train(W) / bare(W), the share of the machine's play that training keeps.
With more workers than cores (or than the learner leaves them) the speed-up
flattens; with --algo ppo's lag the learner's update of one batch must also
fit in the time the workers play the next, so one learner thread bounds the
rate at about 4,096 env steps per update time (README, "Learner threads").
--learner-threads T gives every run's learner T threads (the runs' results
are the same for any T; only their speed changes).

Each training measurement plays --steps-per-worker env steps per worker (at
least 120,000, so that its steady-state window holds some 95,000 steps after
the first episodes end near 25,000); each bare loop plays --bare-steps.
--plot FILE draws the speed-ups against W beside the ideal and the bare
loops' bound (needs matplotlib: `pip install .[viz]`).
"""
import argparse
import json
import os
import platform
import statistics

from bench_training import bare_together, train_rate
from fastpg.games import resolve_actions

MIN_TRAIN_STEPS = 120_000  # Pong's first episodes end near 25,000 env steps: leave a window of ~95,000 after them


def worker_counts(text):
    """'1,2,4' -> [1, 2, 4]: distinct positive counts in increasing order, starting at 1 (the speed-ups' base)."""
    try:
        counts = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected worker counts like 1,2,4,8, got {text!r}")
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError(f"worker counts must be at least 1, got {text!r}")
    if counts[0] != 1:
        raise argparse.ArgumentTypeError(f"the counts must include 1, the base of the speed-ups, got {text!r}")
    return counts


def default_counts():
    """1, 2, 4, ... up to this machine's CPU count, and the count itself."""
    cpus = os.cpu_count() or 1
    counts, n = [], 1
    while n < cpus:
        counts.append(n)
        n *= 2
    return counts + [cpus]


def train_steps(workers, per_worker):
    return max(MIN_TRAIN_STEPS, workers * per_worker)


def measure(args):
    """{'train': {W: [steps/s per round]}, 'bare': {...}, 'windows': {W: [env steps timed per round]}}, rounds
    interleaved over W."""
    actions = resolve_actions(args.env, None, "ppo")
    settings = ["--learner-threads", str(args.learner_threads)]
    rates = {"train": {w: [] for w in args.workers}, "bare": {w: [] for w in args.workers}}
    windows = {w: [] for w in args.workers}
    for round_ in range(args.repeats):
        for w in args.workers:
            rate, _, window = train_rate(args.env, train_steps(w, args.steps_per_worker), w, "cython", "ppo",
                                         *settings)
            rates["train"][w].append(rate)
            windows[w].append(window)
            rates["bare"][w].append(bare_together(args.env, args.bare_steps, actions, "palette", n=w)[0])
            print(f"round {round_ + 1}, {w} workers: train {rate:,.0f} env steps/s, "
                  f"{w} bare loops {rates['bare'][w][-1]:,.0f}", flush=True)
    return {**rates, "windows": windows}


def table(medians, counts):
    """Markdown rows: W, train, speed-up, of ideal, bare, bare's speed-up, train / bare."""
    base, bare_base = medians["train"][1], medians["bare"][1]
    lines = ["| workers | train env steps/s | speed-up | of ideal | W bare loops, steps/s | their speed-up "
             "| train / bare |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for w in counts:
        train, bare = medians["train"][w], medians["bare"][w]
        lines.append(f"| {w} | {train:,.0f} | {train / base:.2f}× | {train / base / w:.0%} | {bare:,.0f} "
                     f"| {bare / bare_base:.2f}× | {train / bare:.2f} |")
    return "\n".join(lines)


def plot(medians, counts, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(counts, counts, color="0.7", linestyle="--", label="ideal (W×)")
    ax.plot(counts, [medians["bare"][w] / medians["bare"][1] for w in counts], marker="s", color="0.4",
            label="W bare emulator loops")
    ax.plot(counts, [medians["train"][w] / medians["train"][1] for w in counts], marker="o",
            label="fastpg train --workers W")
    ax.set_xlabel("workers (W)")
    ax.set_ylabel("env steps/s, relative to 1 worker")
    ax.set_xticks(counts)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def windows_below_half(windows, steps_per_worker):
    """The worker counts (windows: W -> env steps timed per round) whose training measurements timed under half
    of the env steps they played."""
    return sorted(w for w, timed in windows.items() if min(timed) < train_steps(w, steps_per_worker) / 2)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="ALE/Pong-v5")
    parser.add_argument("--workers", type=worker_counts, default=None,
                        help="comma-separated worker counts, 1 among them (default: 1, 2, 4, ... up to the CPU count)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps-per-worker", type=int, default=60_000,
                        help=f"env steps each training measurement plays per worker (at least {MIN_TRAIN_STEPS:,} "
                             "in all; default 60,000)")
    parser.add_argument("--bare-steps", type=int, default=60_000, help="env steps each bare loop plays (default 60,000)")
    parser.add_argument("--learner-threads", type=int, default=1, help="the learner's threads in every run (default 1)")
    parser.add_argument("--json", help="also write the raw numbers here")
    parser.add_argument("--plot", help="draw the speed-ups into this image file")
    args = parser.parse_args()
    args.workers = args.workers or default_counts()
    for name in ("repeats", "steps_per_worker", "bare_steps", "learner_threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")

    rates = measure(args)
    medians = {kind: {w: statistics.median(rates[kind][w]) for w in args.workers} for kind in ("train", "bare")}
    machine = f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}"
    print(f"\n{args.env}, fastpg train at the actor-critic's defaults, --learner-threads {args.learner_threads}, "
          f"median of {args.repeats} interleaved rounds, {machine}\n")
    print(table(medians, args.workers))
    short = windows_below_half(rates["windows"], args.steps_per_worker)
    if short:
        print(f"\nSome training measurements timed under half their env steps (worker counts {short}): "
              "raise --steps-per-worker for steadier rates.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": vars(args), "machine": machine, "rates": rates, "medians": medians}, f, indent=2)
    if args.plot:
        plot(medians, args.workers, args.plot, f"{args.env}, {machine}, --learner-threads {args.learner_threads}")


if __name__ == "__main__":
    main()
