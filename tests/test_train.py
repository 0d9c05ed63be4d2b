"""`fastpg train` end to end, on real Pong: determinism, resume, checkpoints, metrics, bad arguments,
a killed worker, Ctrl-C; plus the driver pieces those rest on (episode seeding, replayable games,
all-zero returns).

Runs are short (4 to 8 random-policy episodes of ALE/Pong-v5, about 0.2 s each) and use a tiny
hidden layer where the test does not need the default 200. The CLI runs in a subprocess, from a
scratch directory (so a source checkout in the current directory cannot shadow the package under
test), with this process's environment.
"""
import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fastpg import checkpoint, reference
from fastpg.backends import get_backend
from fastpg.env import DOWN, UP, AtariGame
from fastpg.learner import Learner, init_weights
from fastpg.metrics import COLUMNS
from fastpg.rollout import episode_rngs

from cli_helpers import cli_env, fastpg_command, run_fastpg  # tests/, put on sys.path by conftest

HIDDEN = 8  # small: these tests check the driver, not the kernels' speed
BATCH = 2
EPISODES = 4
TIMEOUT = 180  # seconds; a run that takes longer is hung, not slow
ARRAYS = ("W1", "W2", "cache_W1", "cache_W2")
TRAIN_OPTIONS = ("--run-dir", "--resume", "--episodes", "--max-steps", "--max-minutes", "--preset", "--seed",
                 "--backend", "--workers", "--checkpoint-every", "--env", "--hidden", "--batch-size",
                 "--learning-rate", "--gamma", "--decay-rate")


# ---------------------------------------------------------------- helpers


def train(run_dir, *args, episodes=EPISODES, batch_size=BATCH, hidden=HIDDEN, workers=1):
    """A `fastpg train` run that must succeed."""
    options = ["--run-dir", run_dir, "--batch-size", batch_size, "--hidden", hidden, "--workers", workers]
    if episodes is not None:
        options += ["--episodes", episodes]
    result = run_fastpg("train", *options, *args, cwd=os.path.dirname(run_dir))
    assert result.returncode == 0, f"fastpg train failed ({result.returncode}):\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result


def load_arrays(run_dir):
    """The checkpoint's arrays, read without pickle."""
    with np.load(os.path.join(run_dir, "checkpoint.npz"), allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def load_state(run_dir):
    with open(os.path.join(run_dir, "state.json")) as f:
        return json.load(f)


def assert_same_weights(actual_dir, desired_dir, rtol=1e-9):
    """W1, W2 and the RMSProp caches agree to rtol; atol scales with each array's magnitude."""
    actual, desired = load_arrays(actual_dir), load_arrays(desired_dir)
    for name in ARRAYS:
        assert actual[name].shape == desired[name].shape, name
        scale = np.abs(desired[name]).max()
        np.testing.assert_allclose(actual[name], desired[name], rtol=rtol, atol=1e-12 * scale, err_msg=name)


def metric_rows(run_dir):
    with open(os.path.join(run_dir, "metrics.csv"), newline="") as f:
        return list(csv.DictReader(f))


def played(rows):
    """What a run played, whatever its speed: (episode, env_steps, reward, running_reward) per row."""
    return [(row["episode"], row["env_steps"], row["reward"], row["running_reward"]) for row in rows]


def file_hashes(directory):
    """{relative path: sha256} of every file under directory (empty if it does not exist)."""
    hashes = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                hashes[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
    return hashes


def wait_for_rows(run_dir, n_rows, process, timeout=TIMEOUT):
    """Wait until metrics.csv has n_rows episode rows; fails if the process ends first."""
    path = os.path.join(run_dir, "metrics.csv")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"fastpg train exited ({process.returncode}) before writing {n_rows} metric rows")
        if os.path.exists(path) and len(metric_rows(run_dir)) >= n_rows:
            return
        time.sleep(0.05)
    pytest.fail(f"no {n_rows} metric rows after {timeout} s")


def worker_pids(parent_pid):
    """PIDs of the multiprocessing workers of parent_pid (not its resource tracker)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if ppid == parent_pid and "spawn_main" in cmdline and "resource_tracker" not in cmdline:
            pids.append(int(entry))
    return pids


needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="finds worker processes in Linux /proc")
needs_posix_signals = pytest.mark.skipif(not hasattr(os, "killpg"), reason="signals a process group")


def stop(process):
    if process.poll() is None:
        process.kill()
        process.wait()


# ---------------------------------------------------------------- shared runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def reference_run(runs):
    """4 episodes, batch 2, hidden 8, one worker, cython: (run_dir, CompletedProcess)."""
    run_dir = str(runs / "reference")
    return run_dir, train(run_dir)


@pytest.fixture(scope="module")
def batch4_run(runs):
    """8 episodes, batch 4, hidden 8, one worker, uninterrupted: the run directory."""
    run_dir = str(runs / "batch4-reference")
    train(run_dir, episodes=8, batch_size=4)
    return run_dir


@pytest.fixture
def existing_run(reference_run, tmp_path):
    """A private copy of the reference run, for tests that must leave it unchanged."""
    run_dir = str(tmp_path / "existing")
    shutil.copytree(reference_run[0], run_dir)
    return run_dir


# ---------------------------------------------------------------- the package under test


def test_cli_runs_the_package_under_test(tmp_path):
    import fastpg

    result = subprocess.run([sys.executable, "-c", "import fastpg; print(fastpg.__file__)"], cwd=tmp_path,
                            env=cli_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert os.path.realpath(result.stdout.strip()) == os.path.realpath(fastpg.__file__)


# ---------------------------------------------------------------- same seed and settings, same weights


def test_two_workers_give_the_weights_of_one(reference_run, runs):
    run_dir = str(runs / "two-workers")
    train(run_dir, workers=2)
    assert_same_weights(run_dir, reference_run[0])
    assert played(metric_rows(run_dir)) == played(metric_rows(reference_run[0]))


def test_numpy_backend_gives_the_weights_of_cython(reference_run, runs):
    run_dir = str(runs / "numpy")
    train(run_dir, "--backend", "numpy")
    assert_same_weights(run_dir, reference_run[0])
    assert played(metric_rows(run_dir)) == played(metric_rows(reference_run[0]))


def test_weights_change_and_depend_on_the_seed(reference_run, runs):
    """The comparisons above mean something: training moves the weights, and the seed matters."""
    trained = load_arrays(reference_run[0])
    W1, W2 = init_weights(HIDDEN, 0)
    assert not np.allclose(trained["W1"], W1, rtol=0, atol=1e-7)
    assert not np.allclose(trained["W2"], W2, rtol=0, atol=1e-7)
    run_dir = str(runs / "seed-1")
    train(run_dir, "--seed", 1, episodes=BATCH)
    assert not np.allclose(load_arrays(run_dir)["W2"], trained["W2"])


def test_resume_equals_an_uninterrupted_run(reference_run, runs):
    run_dir = str(runs / "resumed")
    train(run_dir, episodes=2)
    assert load_state(run_dir)["episodes"] == 2
    # Rows of a batch the checkpoint does not hold (an interrupted run leaves them): resume drops them.
    with open(os.path.join(run_dir, "metrics.csv"), "a", newline="") as f:
        csv.writer(f).writerows([(3, 99999, 99, 99.0, 1.0, 1.0), (4, 99999, 99, 99.0, 1.0, 1.0)])
    # Settings come from the checkpoint: only --episodes (and non-algorithm options) are given.
    result = run_fastpg("train", "--run-dir", run_dir, "--resume", "--episodes", EPISODES, "--workers", 1,
                        cwd=runs)
    assert result.returncode == 0, result.stderr
    assert_same_weights(run_dir, reference_run[0])
    assert played(metric_rows(run_dir)) == played(metric_rows(reference_run[0]))
    state, reference_state = load_state(run_dir), load_state(reference_run[0])
    for key in ("episodes", "env_steps", "running_reward", "updates", "config"):
        assert state[key] == reference_state[key], key


def test_max_steps_stops_at_the_first_batch_boundary_past_it(runs):
    run_dir = str(runs / "max-steps")
    train(run_dir, "--max-steps", 1, episodes=None)
    state = load_state(run_dir)
    assert state["episodes"] == BATCH
    assert len(metric_rows(run_dir)) == BATCH


def test_max_minutes_stops_at_the_first_batch_boundary_past_it(runs):
    run_dir = str(runs / "max-minutes")
    train(run_dir, "--max-minutes", 1e-6, episodes=None)  # 60 microseconds: over after one batch
    state = load_state(run_dir)
    assert state["episodes"] == BATCH
    assert state["seconds"] >= 60e-6


def test_more_workers_than_a_batch_has_episodes_is_noted(runs):
    result = train(str(runs / "idle-workers"), episodes=2, batch_size=1, workers=2)
    assert "at most 1 of the 2 workers are busy" in result.stderr
    assert "workers are busy" not in train(str(runs / "busy-workers"), episodes=2, batch_size=2, workers=2).stderr


# ---------------------------------------------------------------- presets


def test_preset_seed_is_the_seed_algorithm_and_explicit_options_win(runs):
    from fastpg.train import SEED_SETTINGS

    run_dir = str(runs / "preset-seed")
    result = run_fastpg("train", "--run-dir", run_dir, "--preset", "seed", "--hidden", HIDDEN, "--episodes", 10,
                        "--workers", 2, cwd=os.path.dirname(run_dir))
    assert result.returncode == 0, result.stderr
    config = load_state(run_dir)["config"]
    assert config == {**SEED_SETTINGS, "hidden": HIDDEN, "env": "ALE/Pong-v5", "seed": 0}
    assert SEED_SETTINGS == {"hidden": 200, "batch_size": 10, "learning_rate": 1e-4, "gamma": 0.99,
                             "decay_rate": 0.99}  # the seed post's values
    assert load_state(run_dir)["updates"] == 1  # one update per 10 episodes


def test_cli_offers_every_preset():
    """cli.py spells the --preset choices out (it must not import fastpg.train at start-up)."""
    from fastpg.cli import build_parser
    from fastpg.train import PRESETS

    train_parser = build_parser()._subparsers._group_actions[0].choices["train"]
    (preset,) = [action for action in train_parser._actions if "--preset" in action.option_strings]
    assert sorted(preset.choices) == sorted(PRESETS)


def test_preset_overrides():
    from fastpg.train import Config, TrainingError, preset_overrides

    assert preset_overrides(None, {"seed": 3, "hidden": None}) == {"seed": 3}
    seed = Config(**preset_overrides("seed", {"learning_rate": 3e-4, "gamma": None}))
    assert (seed.batch_size, seed.learning_rate, seed.gamma) == (10, 3e-4, 0.99)
    assert Config() != Config(**preset_overrides("seed", {}))  # the defaults are not the seed's
    with pytest.raises(TrainingError, match="unknown --preset 'fast'; choose from seed"):
        preset_overrides("fast", {})


# ---------------------------------------------------------------- run directory contents


def test_checkpoint_loads_without_pickle(reference_run):
    run_dir = reference_run[0]
    arrays = load_arrays(run_dir)  # allow_pickle=False
    assert arrays["W1"].shape == (HIDDEN, 6400) and arrays["cache_W1"].shape == (HIDDEN, 6400)
    assert arrays["W2"].shape == (HIDDEN,) and arrays["cache_W2"].shape == (HIDDEN,)
    for name in ARRAYS:
        assert arrays[name].dtype == np.float64
        assert np.all(np.isfinite(arrays[name])), name
    assert np.any(arrays["cache_W1"] > 0) and np.all(arrays["cache_W1"] >= 0)
    loaded, state = checkpoint.load(run_dir)
    for name in ARRAYS:
        np.testing.assert_array_equal(loaded[name], arrays[name])
    assert state["episodes"] == EPISODES


def test_state_json_records_the_run(reference_run):
    run_dir = reference_run[0]
    state = load_state(run_dir)
    rows = metric_rows(run_dir)
    assert state["config"] == {"env": "ALE/Pong-v5", "hidden": HIDDEN, "batch_size": BATCH,
                               "learning_rate": 1e-3, "gamma": 0.99, "decay_rate": 0.99, "seed": 0}  # the defaults
    assert state["episodes"] == EPISODES
    assert state["updates"] == EPISODES // BATCH
    assert state["env_steps"] == int(rows[-1]["env_steps"])
    assert state["running_reward"] == pytest.approx(float(rows[-1]["running_reward"]), abs=1e-6)
    assert state["seconds"] > 0
    # state.json is a copy of the record inside checkpoint.npz, which resume reads.
    assert checkpoint.load(run_dir)[1] == state


def test_metrics_has_one_row_per_episode(reference_run):
    run_dir = reference_run[0]
    with open(os.path.join(run_dir, "metrics.csv"), newline="") as f:
        header = next(csv.reader(f))
    assert tuple(header) == COLUMNS == ("episode", "env_steps", "reward", "running_reward", "seconds",
                                        "steps_per_second")
    rows = metric_rows(run_dir)
    assert [int(row["episode"]) for row in rows] == list(range(1, EPISODES + 1))
    steps = [int(row["env_steps"]) for row in rows]
    lengths = np.diff([0] + steps)
    assert np.all(lengths > 100), steps  # Pong episodes last hundreds of steps
    running = None
    for row in rows:
        reward = float(row["reward"])
        assert -21 <= reward <= 21 and reward == int(reward)
        running = reward if running is None else 0.99 * running + 0.01 * reward
        assert float(row["running_reward"]) == pytest.approx(running, abs=1e-6)
    seconds = [float(row["seconds"]) for row in rows]
    assert seconds == sorted(seconds) and seconds[0] > 0
    assert all(float(row["steps_per_second"]) > 0 for row in rows)


def test_plain_progress_lines_and_summary_when_not_a_tty(reference_run):
    stderr = reference_run[1].stderr
    lines = stderr.strip().splitlines()
    batch_lines = [line for line in lines if line.startswith("episode ")]
    assert [line.split()[1] for line in batch_lines] == [str(n) for n in range(BATCH, EPISODES + 1, BATCH)]
    assert "\r" not in stderr  # no live bar when not on a terminal
    assert lines[-1].startswith("done: 4 episodes")


# ---------------------------------------------------------------- checkpoint module


def small_arrays(n_hidden=3, seed=0):
    rng = np.random.default_rng(seed)
    return {"W1": np.asfortranarray(rng.standard_normal((n_hidden, 6400))), "W2": rng.standard_normal(n_hidden),
            "cache_W1": np.zeros((n_hidden, 6400), order="F"), "cache_W2": np.zeros(n_hidden)}


def small_state(n_hidden=3, episodes=10):
    return {"config": {"hidden": n_hidden}, "episodes": episodes, "env_steps": 12345, "seconds": 1.5,
            "running_reward": -20.5}


def test_checkpoint_round_trip_leaves_no_temporary_files(tmp_path):
    arrays = small_arrays()
    checkpoint.save(str(tmp_path), arrays, small_state())
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz", "state.json"]
    loaded, state = checkpoint.load(str(tmp_path))
    for name in ARRAYS:
        np.testing.assert_array_equal(loaded[name], arrays[name])
    assert state["episodes"] == 10 and state["running_reward"] == -20.5
    assert checkpoint.load(str(tmp_path / "checkpoint.npz"))[1] == state


def test_failed_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    old = small_arrays(seed=0)
    checkpoint.save(str(tmp_path), old, small_state(episodes=10))
    before = file_hashes(tmp_path)

    def failing_savez(file, **arrays):
        file.write(b"PK\x03\x04 half a zip")  # something reached the disk before the failure
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="No space left"):
        checkpoint.save(str(tmp_path), small_arrays(seed=1), small_state(episodes=20))
    monkeypatch.undo()
    assert file_hashes(tmp_path) == before  # no .tmp left behind, nothing replaced
    loaded, state = checkpoint.load(str(tmp_path))
    np.testing.assert_array_equal(loaded["W1"], old["W1"])
    assert state["episodes"] == 10


def test_load_rejects_a_missing_checkpoint(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint"):
        checkpoint.load(str(tmp_path))
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint"):
        checkpoint.load(str(tmp_path / "nothing-here" / "checkpoint.npz"))


@pytest.mark.parametrize("keep", [0, 100, 0.5, 0.99])
def test_load_rejects_a_truncated_checkpoint(tmp_path, keep):
    checkpoint.save(str(tmp_path), small_arrays(), small_state())
    path = tmp_path / "checkpoint.npz"
    data = path.read_bytes()
    path.write_bytes(data[: int(keep * len(data)) if isinstance(keep, float) else keep])
    with pytest.raises(checkpoint.CheckpointError) as info:
        checkpoint.load(str(tmp_path))
    assert "\n" not in str(info.value)


def test_load_rejects_garbage(tmp_path):
    (tmp_path / "checkpoint.npz").write_bytes(b"not a zip file at all" * 100)
    with pytest.raises(checkpoint.CheckpointError, match="cannot read"):
        checkpoint.load(str(tmp_path))


def test_load_rejects_wrong_shapes(tmp_path):
    arrays = small_arrays(n_hidden=3)
    checkpoint.save(str(tmp_path), arrays, small_state(n_hidden=4))  # config says 4 hidden units
    with pytest.raises(checkpoint.CheckpointError, match="W1"):
        checkpoint.load(str(tmp_path))
    arrays["W2"] = np.zeros(5)
    checkpoint.save(str(tmp_path), arrays, small_state(n_hidden=3))
    with pytest.raises(checkpoint.CheckpointError, match="W2"):
        checkpoint.load(str(tmp_path))


def test_load_rejects_non_finite_weights_and_incomplete_state(tmp_path):
    arrays = small_arrays()
    arrays["W2"][1] = np.nan
    checkpoint.save(str(tmp_path), arrays, small_state())
    with pytest.raises(checkpoint.CheckpointError, match="NaN"):
        checkpoint.load(str(tmp_path))
    state = small_state()
    del state["env_steps"]
    checkpoint.save(str(tmp_path), small_arrays(), state)
    with pytest.raises(checkpoint.CheckpointError, match="incomplete"):
        checkpoint.load(str(tmp_path))


def test_load_never_unpickles(tmp_path):
    """An npz holding an object array (pickled) is refused, not executed."""
    payload = {name: value for name, value in small_arrays().items()}
    payload["state"] = np.array([{"format": checkpoint.FORMAT}], dtype=object)
    np.savez(tmp_path / "checkpoint.npz", **payload)
    with pytest.raises(checkpoint.CheckpointError, match="cannot read"):
        checkpoint.load(str(tmp_path))


def test_load_rejects_a_foreign_npz(tmp_path):
    np.savez(tmp_path / "checkpoint.npz", W1=np.zeros((3, 6400)))
    with pytest.raises(checkpoint.CheckpointError, match="missing"):
        checkpoint.load(str(tmp_path))


# ---------------------------------------------------------------- bad arguments


def assert_clean_error(result, *fragments):
    """Non-zero exit, one line on stderr saying 'error', no traceback."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "error" in lines[0], lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


RESUME_ERRORS = {
    "different hidden": (["--hidden", 16, "--episodes", 6], ["--hidden 16", "8"]),
    "different batch size": (["--batch-size", 4, "--episodes", 8], ["--batch-size"]),
    "different env": (["--env", "Pong-v0", "--episodes", 6], ["--env"]),
    "different seed": (["--seed", 3, "--episodes", 6], ["--seed"]),
    "episodes already played": (["--episodes", EPISODES], ["already has 4 episodes"]),
    "episodes not a multiple of batch": (["--episodes", 7], ["multiple of --batch-size"]),
    "negative episodes": (["--episodes", -2], ["--episodes"]),
    "zero workers": (["--episodes", 6, "--workers", 0], ["--workers"]),
    "negative max steps": (["--max-steps", -1], ["--max-steps"]),
    "zero max minutes": (["--max-minutes", 0], ["--max-minutes"]),
    "preset seed on a run with other settings": (["--preset", "seed", "--episodes", 10],
                                                 ["--batch-size 10 (run has 2)"]),
    "zero checkpoint interval": (["--episodes", 6, "--checkpoint-every", 0], ["--checkpoint-every"]),
}


@pytest.mark.parametrize("case", RESUME_ERRORS)
def test_bad_resume_arguments_leave_the_run_untouched(existing_run, case):
    args, fragments = RESUME_ERRORS[case]
    before = file_hashes(existing_run)
    result = run_fastpg("train", "--run-dir", existing_run, "--resume", *args, cwd=os.path.dirname(existing_run))
    assert_clean_error(result, *fragments)
    assert file_hashes(existing_run) == before


def test_resume_with_a_corrupt_checkpoint_leaves_the_run_untouched(existing_run):
    path = os.path.join(existing_run, "checkpoint.npz")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    before = file_hashes(existing_run)
    result = run_fastpg("train", "--run-dir", existing_run, "--resume", "--episodes", 6,
                        cwd=os.path.dirname(existing_run))
    assert_clean_error(result, "checkpoint.npz")
    assert file_hashes(existing_run) == before


def test_resume_without_a_checkpoint_leaves_the_run_untouched(existing_run):
    os.remove(os.path.join(existing_run, "checkpoint.npz"))
    before = file_hashes(existing_run)
    assert "metrics.csv" in before
    result = run_fastpg("train", "--run-dir", existing_run, "--resume", "--episodes", 6,
                        cwd=os.path.dirname(existing_run))
    assert_clean_error(result, "no checkpoint")
    assert file_hashes(existing_run) == before


def test_resume_of_a_missing_directory(tmp_path):
    result = run_fastpg("train", "--run-dir", tmp_path / "nowhere", "--resume", "--episodes", 4, cwd=tmp_path)
    assert_clean_error(result, "nowhere")
    assert not (tmp_path / "nowhere").exists()
    result = run_fastpg("train", "--resume", "--episodes", 4, cwd=tmp_path)
    assert_clean_error(result, "--run-dir")
    assert os.listdir(tmp_path) == []


def test_an_existing_run_needs_resume(existing_run):
    before = file_hashes(existing_run)
    result = run_fastpg("train", "--run-dir", existing_run, "--episodes", 2, "--batch-size", 2, "--hidden", 8,
                        "--workers", 1, cwd=os.path.dirname(existing_run))
    assert_clean_error(result, "--resume")
    assert file_hashes(existing_run) == before


NEW_RUN_ERRORS = {
    "negative episodes": (["--episodes", -2], ["--episodes"]),
    "episodes not a multiple of batch": (["--episodes", 3, "--batch-size", 2], ["multiple of --batch-size"]),
    "zero workers": (["--episodes", 2, "--batch-size", 2, "--workers", 0], ["--workers"]),
    "zero hidden": (["--hidden", 0], ["--hidden"]),
    "negative batch size": (["--batch-size", -1], ["--batch-size"]),
    "gamma above 1": (["--gamma", 1.5], ["--gamma"]),
    "decay rate 1": (["--decay-rate", 1], ["--decay-rate"]),
    "zero learning rate": (["--learning-rate", 0], ["--learning-rate"]),
    "negative seed": (["--seed", -1], ["--seed"]),
    "not an Atari env": (["--env", "CartPole-v1"], ["CartPole-v1"]),
    "unknown env": (["--env", "NoSuchGame-v9"], ["NoSuchGame"]),
    "unknown env version": (["--env", "ALE/Pong-v99"], ["ALE/Pong-v99"]),
    "negative max minutes": (["--max-minutes", -5], ["--max-minutes"]),
}


@pytest.mark.parametrize("case", NEW_RUN_ERRORS)
def test_bad_arguments_for_a_new_run_create_nothing(tmp_path, case):
    args, fragments = NEW_RUN_ERRORS[case]
    result = run_fastpg("train", "--run-dir", tmp_path / "run", *args, cwd=tmp_path)
    assert_clean_error(result, *fragments)
    assert os.listdir(tmp_path) == []


def test_unwritable_run_dir(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me\n")
    result = run_fastpg("train", "--run-dir", blocker / "run", "--episodes", 2, "--batch-size", 2, "--hidden", 8,
                        "--workers", 1, cwd=tmp_path)
    assert_clean_error(result, "cannot write")
    assert blocker.read_text() == "keep me\n"
    assert os.listdir(tmp_path) == ["a-file"]


# ---------------------------------------------------------------- a killed worker, Ctrl-C


@needs_proc
def test_a_killed_worker_does_not_lose_the_run(runs, batch4_run):
    killed_dir = str(runs / "killed-worker")
    stderr_path = os.path.join(runs, "killed-worker.stderr")
    command = fastpg_command("train", "--run-dir", killed_dir, "--workers", 2, "--batch-size", 4,
                             "--episodes", 8, "--hidden", HIDDEN)
    with open(stderr_path, "w") as stderr:
        process = subprocess.Popen(command, cwd=runs, env=cli_env(), stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        wait_for_rows(killed_dir, 1, process)  # the first batch is in flight: 3 of its episodes to go
        workers = worker_pids(process.pid)
        assert len(workers) == 2, workers
        os.kill(workers[0], signal.SIGKILL)
        process.wait(timeout=TIMEOUT)
    finally:
        stop(process)
    with open(stderr_path) as f:
        stderr = f.read()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    assert f"worker {workers[0]} died" in stderr and "replaying" in stderr, stderr
    assert "1 replayed episodes" in stderr.strip().splitlines()[-1]
    assert [int(row["episode"]) for row in metric_rows(killed_dir)] == list(range(1, 9))
    assert_same_weights(killed_dir, batch4_run)
    assert played(metric_rows(killed_dir)) == played(metric_rows(batch4_run))


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
    assert len(metric_rows(run_dir)) > 4  # rows of the lost batch, which resume replaces
    result = run_fastpg("train", "--run-dir", run_dir, "--resume", "--episodes", 8, "--workers", 2, cwd=runs)
    assert result.returncode == 0, result.stderr
    assert_same_weights(run_dir, batch4_run)
    assert played(metric_rows(run_dir)) == played(metric_rows(batch4_run))


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
    assert not [name for name in os.listdir(run_dir) if name.endswith(".tmp")]

    result = run_fastpg("train", "--run-dir", run_dir, "--resume", "--episodes", episodes + BATCH,
                        "--workers", 1, cwd=runs)
    assert result.returncode == 0, result.stderr
    rows = metric_rows(run_dir)
    assert [int(row["episode"]) for row in rows] == list(range(1, episodes + BATCH + 1))
    assert checkpoint.load(run_dir)[1]["episodes"] == episodes + BATCH


# ---------------------------------------------------------------- help


def test_help_describes_every_option(tmp_path):
    top = run_fastpg("--help", cwd=tmp_path)
    assert top.returncode == 0 and "train" in top.stdout
    result = run_fastpg("train", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for option in TRAIN_OPTIONS:
        assert option in text, option
    for default in ("200", "1e-3", "1e-4", "0.99", "ALE/Pong-v5", "Pong-v0", "cython", "numpy"):
        assert default in text, default
    assert "(default: None)" not in text  # the unset options state their defaults in words


def test_console_script_help():
    """The installed `fastpg` script, when this interpreter has one (pip install . puts it there)."""
    script = os.path.join(os.path.dirname(sys.executable), "fastpg")
    if not os.path.exists(script):
        pytest.skip("no fastpg console script next to this interpreter (not installed)")
    result = subprocess.run([script, "train", "--help"], env=cli_env(), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and "--episodes" in result.stdout


def test_main_help_in_process(capsys):
    from fastpg.cli import main

    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "train" in capsys.readouterr().out


# ---------------------------------------------------------------- the pieces the determinism rests on


def test_episode_rngs_depend_only_on_seed_and_index():
    def draws(seed, index):
        policy, env = episode_rngs(seed, index)
        return policy.random(16), env.random(16)

    np.testing.assert_array_equal(draws(5, 7)[0], draws(5, 7)[0])
    np.testing.assert_array_equal(draws(5, 7)[1], draws(5, 7)[1])
    policy, env = draws(5, 7)
    assert not np.array_equal(policy, env)  # the two streams of one episode are independent
    for other in (draws(5, 8), draws(6, 7), draws(5, 0)):
        assert not np.array_equal(other[0], policy)
        assert not np.array_equal(other[1], env)


def play_fixed_actions(game, seed, n_steps=150):
    """Frames digest and rewards of n_steps with a fixed up/down sequence and env rng seed."""
    actions = np.random.default_rng(1234).choice([UP, DOWN], size=n_steps)
    digest = hashlib.sha256()
    frame = game.reset(np.random.default_rng(seed))
    digest.update(frame.tobytes())
    rewards = []
    for action in actions:
        frame, reward, done = game.step(int(action))
        digest.update(frame.tobytes())
        rewards.append(reward)
        if done:
            break
    return digest.hexdigest(), rewards


def test_atari_game_replays_an_episode_from_its_seed():
    game = AtariGame("ALE/Pong-v5")
    first = play_fixed_actions(game, seed=11)
    other = play_fixed_actions(game, seed=12)  # sticky actions drawn differently
    assert other[0] != first[0]
    assert play_fixed_actions(game, seed=11) == first
    assert play_fixed_actions(AtariGame("ALE/Pong-v5"), seed=11) == first


def test_standardize_of_equal_returns_is_zero():
    np.testing.assert_array_equal(reference.standardize(np.zeros(50)), np.zeros(50))
    for value in (-1.0, 0.1, 0.99 ** 7):
        result = reference.standardize(np.full(37, value))
        assert np.all(np.isfinite(result))
        np.testing.assert_allclose(result, 0.0, atol=1e-12)


def synthetic_episode(rewards, seed=0):
    """A sparse episode record (the steppers' format) with random difference pixels."""
    rng = np.random.default_rng(seed)
    n_steps = len(rewards)
    indices, signs, offsets = [], [], [0]
    for _ in range(n_steps):
        pixels = np.sort(rng.choice(6400, size=30, replace=False))
        indices.append(pixels.astype(np.int16))
        signs.append(rng.choice([-1, 1], size=30).astype(np.int8))
        offsets.append(offsets[-1] + 30)
    return {"indices": np.concatenate(indices), "signs": np.concatenate(signs),
            "offsets": np.array(offsets, dtype=np.int32), "dlogp": rng.uniform(-1, 1, n_steps),
            "rewards": np.asarray(rewards, dtype=np.float64), "index": 0}


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_an_all_zero_return_episode_gives_no_nan(backend):
    W1, W2 = init_weights(HIDDEN, 0)
    learner = Learner(W1.copy(order="F"), W2.copy(), np.zeros_like(W1, order="F"), np.zeros_like(W2),
                      get_backend(backend), gamma=0.99, learning_rate=1e-4, decay_rate=0.99)
    learner.accumulate(synthetic_episode(np.zeros(20)))
    np.testing.assert_array_equal(learner.grad_W1, 0.0)
    np.testing.assert_array_equal(learner.grad_W2, 0.0)
    learner.update()
    np.testing.assert_array_equal(learner.W1, W1)
    np.testing.assert_array_equal(learner.W2, W2)
    # The same steps with a point scored do move the weights: the check above can fail.
    learner.accumulate(synthetic_episode([0.0] * 19 + [1.0]))
    assert np.all(np.isfinite(learner.grad_W1)) and np.any(learner.grad_W1 != 0)
    learner.update()
    assert np.all(np.isfinite(learner.W1)) and not np.array_equal(learner.W1, W1)
