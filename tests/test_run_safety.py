"""Runs that go wrong: killed before their first checkpoint, diverging, too big, killed eval workers."""
import multiprocessing
import os
import signal
import subprocess

import numpy as np
import pytest

from fastpg import checkpoint
from fastpg.evaluate import evaluate
from fastpg.policy import PolicySpec

from helpers import (  # noqa: E402  (tests/ is on sys.path)
    assert_clean_error, cli_env, fastpg_command, load_arrays, load_state, run_fastpg, run_train, stop,
    wait_for_rows,
)

DATA = os.path.join(os.path.dirname(__file__), "data")
SMALL = ("--hidden", 3, "--batch-size", 2, "--seed", 5, "--workers", 1)


def test_a_run_killed_before_its_first_batch_carries_on_with_resume(tmp_path):
    """SIGKILL as soon as metrics.csv exists: the same command with --resume finishes the run exactly."""
    run_dir = str(tmp_path / "killed")
    command = fastpg_command("train", "--run-dir", run_dir, *SMALL, "--episodes", 6)
    process = subprocess.Popen(command, cwd=tmp_path, env=cli_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_rows(run_dir, 0, process)
        os.killpg(process.pid, signal.SIGKILL)  # the run and its workers, mid-batch
        process.wait()
    finally:
        stop(process)
    assert load_state(run_dir)["episodes"] == 0  # the checkpoint written before metrics.csv
    resumed = run_fastpg(*command[3:], "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    uninterrupted = str(tmp_path / "uninterrupted")
    run_train(uninterrupted, "--seed", 5, episodes=6, hidden=3)
    for name, array in load_arrays(uninterrupted).items():
        if name != "state":
            np.testing.assert_array_equal(load_arrays(run_dir)[name], array, err_msg=name)


def test_a_directory_with_metrics_but_no_checkpoint_is_started_again(tmp_path):
    """What older fastpg left when killed before its first checkpoint: the same command starts over."""
    run_dir = tmp_path / "old-kill"
    run_dir.mkdir()
    (run_dir / "metrics.csv").write_text("episode,env_steps,reward,running_reward,seconds,steps_per_second\n"
                                         "1,900,-21,-21.000000,0.500,1800.0\n")
    run_train(str(run_dir), "--seed", 5, episodes=2, hidden=3)
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and load_state(run_dir)["episodes"] == 2


def test_a_diverging_run_stops_at_the_first_non_finite_update_and_keeps_a_finite_checkpoint(tmp_path):
    run_dir = tmp_path / "diverged"
    result = run_fastpg("train", "--run-dir", run_dir, "--hidden", 4, "--batch-size", 1, "--episodes", 20,
                        "--learning-rate", "1e300", "--checkpoint-every", 1, "--workers", 1, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    arrays, state = checkpoint.load(str(run_dir))  # load() refuses NaN or infinite arrays
    assert state["episodes"] < 20
    assert last == (f"fastpg train: error: update {state['updates'] + 1} (episode {state['episodes'] + 1}) made "
                    f"{last.split(') made ')[1].split(' NaN')[0]} NaN or infinite; training stopped, and {run_dir} "
                    f"keeps its checkpoint after episode {state['episodes']} (a smaller --learning-rate may help)")
    assert "W1" in last.split(") made ")[1]
    assert all(np.all(np.isfinite(array)) for array in arrays.values())


@pytest.mark.parametrize("lag", ["0", "1"])
def test_a_diverging_actor_critic_stops_at_its_first_non_finite_update(tmp_path, lag):
    """Adam's finite flag stands in for a pass over the arrays: a run whose weights overflow still stops at
    the first update that made them non-finite, with a finite checkpoint, with or without the lag."""
    run_dir = tmp_path / "diverged"
    result = run_fastpg("train", "--run-dir", run_dir, "--algo", "ppo", "--hidden", 4, "--lanes", 2,
                        "--segment-steps", 16, "--max-steps", 3200, "--learning-rate", "1e300",
                        "--policy-lag", lag, "--checkpoint-every", 1, "--workers", 1, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr
    arrays, state = checkpoint.load(str(run_dir))  # load() refuses NaN or infinite arrays
    assert state["env_steps"] < 3200
    assert last.startswith(f"fastpg train: error: update {state['updates'] + 1} (segments of batch "), last
    assert "NaN or infinite; training stopped" in last and "W1" in last.split(") made ")[1]
    assert all(np.all(np.isfinite(array)) for array in arrays.values())


@pytest.mark.parametrize("option, value, fragment", [
    ("--hidden", "100000000", "--hidden 100000000 needs about"),
    ("--learning-rate", "inf", "--learning-rate must be positive and finite"),
    ("--learning-rate", "nan", "--learning-rate must be positive and finite"),
])
def test_impossible_settings_are_one_line_errors(tmp_path, option, value, fragment):
    result = run_fastpg("train", "--run-dir", tmp_path / "run", option, value, cwd=tmp_path)
    assert_clean_error(result, fragment)
    assert not (tmp_path / "run").exists()


def test_a_killed_eval_worker_is_replayed_with_the_same_numbers_and_a_warning():
    arrays, _ = checkpoint.load(os.path.join(DATA, "v1-run"))
    spec = PolicySpec(hidden=3)
    params = {name: arrays[name] for name in spec.parameters()}
    expected = evaluate(params, spec, "ALE/Pong-v5", 4, seed=1, workers=1)
    warnings, killed = [], []

    def kill_the_workers(result):
        if not killed:  # after the first game: one worker is mid-game, the other between games
            for child in multiprocessing.active_children():
                os.kill(child.pid, signal.SIGKILL)
                killed.append(child.pid)

    results = evaluate(params, spec, "ALE/Pong-v5", 4, seed=1, workers=2, on_result=kill_the_workers,
                       on_warning=warnings.append)
    assert len(killed) == 2
    assert results == expected
    assert len(warnings) == 2, warnings
    for text in warnings:  # each names a killed worker and the game it replays
        assert any(f"worker {pid} died" in text for pid in killed), text
        assert "while playing game" in text and "replaying it with the same seed on a new worker" in text, text
