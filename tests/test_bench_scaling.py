"""benchmarks/bench_scaling.py's arithmetic and arguments (its timings need a quiet machine, not a test)."""
import argparse
import os
import subprocess
import sys

import pytest

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCHMARKS)  # bench_scaling imports bench_training beside it, as when run as a script
import bench_scaling  # noqa: E402


def test_worker_counts_are_sorted_distinct_and_start_at_one():
    assert bench_scaling.worker_counts("4,1,2,2,16") == [1, 2, 4, 16]
    for text, message in (("2,4", "must include 1"), ("0,1", "at least 1"), ("1,two", "like 1,2,4,8")):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            bench_scaling.worker_counts(text)


@pytest.mark.parametrize("cpus, counts", [(16, [1, 2, 4, 8, 16]), (12, [1, 2, 4, 8, 12]), (2, [1, 2]), (1, [1])])
def test_the_default_counts_double_up_to_the_cpu_count(monkeypatch, cpus, counts):
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    assert bench_scaling.default_counts() == counts


def test_a_measurement_plays_at_least_the_minimum_and_scales_with_workers():
    assert bench_scaling.train_steps(1, 60_000) == bench_scaling.MIN_TRAIN_STEPS
    assert bench_scaling.train_steps(16, 60_000) == 960_000


def test_the_table_divides_by_one_worker_and_by_the_bare_loops():
    medians = {"train": {1: 4_000.0, 2: 7_600.0, 4: 12_000.0}, "bare": {1: 4_500.0, 2: 9_000.0, 4: 16_000.0}}
    rows = bench_scaling.table(medians, [1, 2, 4]).splitlines()[2:]
    assert rows[0] == "| 1 | 4,000 | 1.00× | 100% | 4,500 | 1.00× | 0.89 |"
    assert rows[1] == "| 2 | 7,600 | 1.90× | 95% | 9,000 | 2.00× | 0.84 |"
    assert rows[2] == "| 4 | 12,000 | 3.00× | 75% | 16,000 | 3.56× | 0.75 |"


def test_short_windows_are_named_by_their_worker_count():
    # the second measurement of 2 workers timed too little of its 200,000 env steps
    windows = {1: [100_000, 100_000], 2: [150_000, 90_000]}
    assert bench_scaling.windows_below_half(windows, 100_000) == [2]
    assert bench_scaling.windows_below_half({1: [100_000, 100_000], 2: [150_000, 150_000]}, 100_000) == []


def test_bad_arguments_stop_the_script_with_one_line():
    for arguments, message in ((["--workers", "2,4"], "must include 1"), (["--repeats", "0"], "--repeats must be at least 1")):
        result = subprocess.run([sys.executable, os.path.join(BENCHMARKS, "bench_scaling.py"), *arguments],
                                capture_output=True, text=True, timeout=60, cwd=BENCHMARKS)
        assert result.returncode == 2
        assert message in result.stderr.strip().splitlines()[-1]
