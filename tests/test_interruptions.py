"""`fastpg train` survives interruptions: a killed worker costs a replay and nothing else, a crash
(SIGKILL of the whole run) keeps the last checkpoint and resume recovers the uninterrupted run
exactly, Ctrl-C saves at a batch boundary and exits 130.

The runs are real subprocesses, watched through their metrics.csv and signalled mid-batch.
"""
import os
import signal
import subprocess

import pytest

from fastpg import checkpoint

from helpers import (BATCH, HIDDEN, assert_same_weights, cli_env, episodes_played, fastpg_command,
                     metric_rows, run_fastpg, run_train, stop, train_killing_a_worker, wait_for_rows)

needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="finds worker processes in Linux /proc")
needs_posix_signals = pytest.mark.skipif(not hasattr(os, "killpg"), reason="signals a process group")


@pytest.fixture(scope="module")
def batch4_run(runs):
    """8 episodes, batch 4, hidden 8, one worker, uninterrupted: the run directory."""
    run_dir = str(runs / "batch4-reference")
    run_train(run_dir, episodes=8, batch_size=4)
    return run_dir


@needs_proc
def test_a_killed_worker_does_not_lose_the_run(runs, batch4_run):
    killed_dir = str(runs / "killed-worker")
    stderr_path = os.path.join(runs, "killed-worker.stderr")
    command = fastpg_command("train", "--run-dir", killed_dir, "--workers", 2, "--batch-size", 4,
                             "--episodes", 8, "--hidden", HIDDEN)
    # Killed once the first batch is in flight: 3 of its episodes to go.
    killed, stderr = train_killing_a_worker(command, runs, stderr_path,
                                            lambda process: wait_for_rows(killed_dir, 1, process))
    assert f"worker {killed} died" in stderr and "replaying" in stderr, stderr
    assert " steps/s, 1 replayed episodes); " in stderr.strip().splitlines()[-1]  # not 11 or 21
    assert [int(row["episode"]) for row in metric_rows(killed_dir)] == list(range(1, 9))
    assert_same_weights(killed_dir, batch4_run)
    assert episodes_played(metric_rows(killed_dir)) == episodes_played(metric_rows(batch4_run))


@needs_posix_signals
def test_a_crash_keeps_the_last_checkpoint_and_resume_recovers(runs, batch4_run):
    """SIGKILL of the whole run mid-batch: the checkpoint of --checkpoint-every is readable and resumes exactly."""
    run_dir = str(runs / "crashed")
    command = fastpg_command("train", "--run-dir", run_dir, "--workers", 2, "--batch-size", 4, "--episodes", 8,
                             "--hidden", HIDDEN, "--checkpoint-every", 4)
    process = subprocess.Popen(command, cwd=runs, env=cli_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_rows(run_dir, 5, process)  # the first batch is checkpointed, the second in flight
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        stop(process)
    assert process.returncode == -signal.SIGKILL
    _, state = checkpoint.load(run_dir)
    assert state["episodes"] == 4
    # Rows of the lost second batch (which resume replaces) follow the checkpointed 4: at least the 5th,
    # seen before the kill, and at most that whole batch.
    logged = [int(row["episode"]) for row in metric_rows(run_dir)]
    assert logged == list(range(1, len(logged) + 1)) and 5 <= len(logged) <= 8, logged
    result = run_fastpg("train", "--run-dir", run_dir, "--resume", "--episodes", 8, "--workers", 2, cwd=runs)
    assert result.returncode == 0, result.stderr
    assert_same_weights(run_dir, batch4_run)
    assert episodes_played(metric_rows(run_dir)) == episodes_played(metric_rows(batch4_run))


@needs_posix_signals
def test_ctrl_c_saves_and_exits_130_then_resumes(runs):
    run_dir = str(runs / "ctrl-c")
    command = fastpg_command("train", "--run-dir", run_dir, "--workers", 2, "--batch-size", BATCH,
                             "--hidden", HIDDEN)  # no --episodes: runs until Ctrl-C
    # Its own process group, which Ctrl-C at a terminal signals as a whole: workers included.
    process = subprocess.Popen(command, cwd=runs, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        wait_for_rows(run_dir, 3, process)  # a batch learned, the next one in flight
        os.killpg(process.pid, signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        stop(process)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr + stdout, stderr
    assert stderr.strip().splitlines()[-1].startswith("interrupted: ")
    arrays, state = checkpoint.load(run_dir)
    episodes = state["episodes"]
    assert episodes >= BATCH and episodes % BATCH == 0
    assert state["updates"] == episodes // BATCH
    assert int(metric_rows(run_dir)[episodes - 1]["env_steps"]) == state["env_steps"]
    # Beyond the saved batches, metrics.csv holds at most the rows of the batch Ctrl-C abandoned.
    logged = [int(row["episode"]) for row in metric_rows(run_dir)]
    assert logged == list(range(1, len(logged) + 1)) and episodes <= len(logged) <= episodes + BATCH, logged
    assert not [name for name in os.listdir(run_dir) if name.endswith(".tmp")]

    result = run_fastpg("train", "--run-dir", run_dir, "--resume", "--episodes", episodes + BATCH,
                        "--workers", 1, cwd=runs)
    assert result.returncode == 0, result.stderr
    rows = metric_rows(run_dir)
    assert [int(row["episode"]) for row in rows] == list(range(1, episodes + BATCH + 1))
    assert checkpoint.load(run_dir)[1]["episodes"] == episodes + BATCH
