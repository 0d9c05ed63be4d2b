"""Run the kernel benchmarks and print the speedup table in markdown.

    python benchmarks/kernel_table.py [--json out.json] [--blas-threads 1] [--check] [-- PYTEST_ARGS]

Runs benchmarks/test_bench_kernels.py under pytest-benchmark with
--benchmark-json, then prints, per kernel, the reference and compiled medians
of that one run and their ratio (reference / compiled) against the target.

numpy's BLAS is limited to --blas-threads threads (default 1): the compiled
kernels use one core, and on this shared 2-core machine a multi-threaded BLAS
contends with other work and times erratically (far slower, which would
flatter the ratios). Pass --blas-threads 0 to leave the BLAS alone.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS.parent

# group -> (label, target ratio or None); in table order.
KERNELS = {
    "preprocess": ("`preprocess`", 3),
    "policy_forward": ("`policy_forward`", 30),
    "policy_backward": ("`policy_backward` (1,000-step episode, dense API)", 5),
    "discount_rewards": ("`discount_rewards` (T = 2,000)", 50),
    "gae": ("`gae` (T = 2,000)", None),
    "rmsprop_update": ("`rmsprop_update` (1.28 M parameters)", 2),
    "policy_step": ("per env step, frame -> action (`PolicyStepper.step`, 100 steps)", None),
    "actor_critic_forward": ("`actor_critic_forward` (4,096-row record, H = 200, A = 2)", None),
    "ppo_backward": ("`ppo_backward` (1,024-row minibatch, H = 200, A = 2)", None),
    "adam_update": ("`adam_update` (1.28 M parameters)", None),
    "lazy_adam_update": ("`adam_update` with `columns` (1,400 of W1's 12,800 columns, H = 200)", None),
    "actor_step": ("one env step of the actor-critic, palette screen → action (`ActorStepper.step`, per 101 steps)",
                   None),
}

# Like the `pytest` script: drop the '' that `python -c` puts first on sys.path,
# so the package is imported as installed (or from PYTHONPATH), never from ./fastpg by accident.
PYTEST = "import sys; del sys.path[0]; import pytest; sys.exit(pytest.console_main())"


def format_time(seconds):
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:,.3g} {unit}" if seconds / scale < 100 else f"{seconds / scale:,.0f} {unit}"
    return f"{seconds / 1e-9:,.0f} ns"


def run_benchmarks(json_path, blas_threads, pytest_args):
    env = dict(os.environ)
    if blas_threads:
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(blas_threads)
    command = [sys.executable, "-c", PYTEST, str(BENCHMARKS / "test_bench_kernels.py"), "-q",
               "-p", "no:cacheprovider", "--benchmark-columns=median,iqr,rounds",
               f"--benchmark-json={json_path}", *pytest_args]
    subprocess.run(command, cwd=REPO_ROOT, env=env, check=True)


def table(results):
    """Markdown rows from pytest-benchmark's JSON; returns (lines, missed targets, extra info)."""
    medians, info = {}, {}
    for bench in results["benchmarks"]:
        backend = bench["extra_info"]["backend"]
        medians.setdefault(bench["group"], {})[backend] = bench["stats"]["median"]
        info[(bench["group"], backend)] = bench["extra_info"]
    lines = [
        "| kernel | reference median | compiled median | speedup | target |",
        "|---|---:|---:|---:|---:|",
    ]
    missed = []
    for group, (label, target) in KERNELS.items():
        if not {"reference", "compiled"} <= set(medians.get(group, {})):
            missed.append(f"{group}: not measured")
            continue
        reference, compiled = medians[group]["reference"], medians[group]["compiled"]
        ratio = reference / compiled
        if target is None:
            target_text = "—"
        else:
            met = ratio >= target
            target_text = f"≥ {target}× {'met' if met else 'MISSED'}"
            if not met:
                missed.append(f"{group}: {ratio:.1f}× < {target}×")
        lines.append(f"| {label} | {format_time(reference)} | {format_time(compiled)} | {ratio:,.1f}× | {target_text} |")
    return lines, missed, info


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="where to keep pytest-benchmark's JSON (default: a temporary file)")
    parser.add_argument("--blas-threads", type=int, default=1,
                        help="OPENBLAS/OMP/MKL_NUM_THREADS for numpy; 0 leaves them alone (default 1)")
    parser.add_argument("--check", action="store_true", help="exit with status 1 when a target is missed")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest after --")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        json_path = args.json or os.path.join(scratch, "kernels.json")
        run_benchmarks(json_path, args.blas_threads, args.pytest_args)
        with open(json_path) as f:
            results = json.load(f)

    lines, missed, info = table(results)
    build = next(iter(info.values()), {})  # the build details are the same in every case
    step = info.get(("policy_step", "compiled"), {})
    print()
    print(f"Kernel medians, reference and compiled side by side in one run "
          f"({results['machine_info'].get('cpu', {}).get('brand_raw', build.get('machine', '?'))}, "
          f"{build.get('cpu_count', '?')} cores; numpy {build.get('numpy')}, Cython {build.get('cython')}, "
          f"{build.get('cc')} {' '.join(build.get('setup_py_compile_args') or [])}; "
          f"BLAS threads: {args.blas_threads or 'default'}).")
    print()
    print("\n".join(lines))
    if step:
        sparse, dense = step["sparse_bytes_per_step"], step["dense_row_bytes"]
        print()
        print(f"Memory per recorded step: {sparse:,.0f} bytes in PolicyStepper's sparse episode buffer "
              f"against {dense:,} bytes for a dense float64 row ({dense / sparse:,.0f}× less).")
    if missed:
        print()
        print("Targets missed: " + "; ".join(missed))
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
