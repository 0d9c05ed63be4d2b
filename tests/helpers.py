"""Plain helper functions and constants shared by the tests: `from helpers import ...`.

conftest.py puts tests/ on sys.path (the suite runs in importlib mode) and defines the fixtures;
everything here is an ordinary function, called directly.

- Real Pong data: play_pong, difference_frames, expanded, make_weights, assert_vectors_close.
- The `fastpg` command line in a subprocess: cli_env, fastpg_command, run_fastpg, run_train,
  assert_clean_error.
- Reading a run directory: load_arrays, load_state, metric_rows, episodes_played, file_hashes,
  assert_same_weights.
- Watching a running process: wait_for_rows, worker_pids, stop.
"""
import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fastpg import reference

N_PIXELS = 6400
N_HIDDEN = 200  # the kernels' default hidden layer

# The small `fastpg train` runs: they check the driver, not the kernels' speed.
HIDDEN = 8
BATCH = 2
EPISODES = 4
TIMEOUT = 180  # seconds; a run that takes longer is hung, not slow
ARRAYS = ("W1", "W2", "cache_W1", "cache_W2")


# ---------------------------------------------------------------- real Pong data


def play_pong(n_steps, seed=0):
    """Frames (uint8 (210, 160, 3), n_steps + 1 of them) and rewards (n_steps,) of random play.

    Actions are 2 (up) or 3 (down) drawn from a seeded generator, as the policy would.
    The episode is restarted if it ends, so the frames may span episodes.
    """
    import ale_py
    import gymnasium

    gymnasium.register_envs(ale_py)
    env = gymnasium.make("ALE/Pong-v5")
    try:
        observation, _ = env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        frames, rewards = [observation], []
        for _ in range(n_steps):
            observation, reward, terminated, truncated, _ = env.step(int(rng.choice([2, 3])))
            frames.append(observation)
            rewards.append(reward)
            if terminated or truncated:
                observation, _ = env.reset()
        return frames, np.asarray(rewards, dtype=np.float64)
    finally:
        env.close()


def difference_frames(frames):
    """float64 (T, 6400): reference preprocess of each frame minus the previous; row 0 is zeros."""
    processed = np.array([reference.preprocess(frame) for frame in frames])
    diffs = np.zeros_like(processed)
    diffs[1:] = processed[1:] - processed[:-1]
    return diffs


def play_steps(stepper, frames, uniforms):
    """Step a policy stepper through frames with the given uniforms: arrays of its actions, p and nnz."""
    actions, probs, nnz = [], [], []
    for frame, u in zip(frames, uniforms):
        actions.append(stepper.step(frame, u))
        probs.append(stepper.p)
        nnz.append(stepper.nnz)
    return np.array(actions), np.array(probs), np.array(nnz)


def expanded(record):
    """A frame-seeing network's compact record with its frame listed in every row (reference's rule);
    any other record as it is."""
    if "keyframes" not in record:
        return record
    indices, signs, offsets = reference.expand_frame_record(record["indices"], record["signs"], record["offsets"],
                                                            record["keyframes"])
    return {**record, "indices": indices, "signs": signs, "offsets": offsets}


def make_weights(n_hidden=N_HIDDEN, order="F", seed=0):
    """Xavier-initialised (W1 (n_hidden, 6400) in the given order, W2 (n_hidden,)), as the seed does."""
    rng = np.random.default_rng(seed)
    W1 = np.asarray(rng.standard_normal((n_hidden, N_PIXELS)) / np.sqrt(N_PIXELS), order=order)
    W2 = rng.standard_normal(n_hidden) / np.sqrt(n_hidden)
    return W1, W2


def assert_vectors_close(actual, desired, scale, rtol=1e-9):
    """float64 results equal up to rtol, with atol = 1e-12 * scale for entries near 0.

    scale is the size of the terms that were summed (for example |W1| @ |x|),
    since a sum can cancel to nearly zero and then its relative error is large.
    """
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=1e-12 * scale)


# ---------------------------------------------------------------- the command line


def cli_env():
    """os.environ for the CLI, with relative PYTHONPATH entries made absolute (it runs elsewhere)."""
    env = dict(os.environ)
    if env.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p) for p in env["PYTHONPATH"].split(os.pathsep) if p)
    return env


def fastpg_command(*args):
    """argv of `python -m fastpg ARGS` with this interpreter.

    A new `train` run that names no algorithm gets ``--algo reinforce``: the
    suites written for REINFORCE say so now that ppo is the default (the
    default's own runs are in test_ppo_runs.py, which names ppo).
    """
    args = [str(arg) for arg in args]
    if args[:1] == ["train"] and not {"--algo", "--resume", "--preset", "--help"} & set(args):
        args += ["--algo", "reinforce"]
    return [sys.executable, "-m", "fastpg", *args]


def run_fastpg(*args, cwd, timeout=TIMEOUT):
    """Run `python -m fastpg ARGS` in a fresh interpreter in cwd; returns the CompletedProcess (text).

    Not in the repository root: `python -m` puts the cwd first on sys.path, and
    the child must import the fastpg that this suite imports (the installed one,
    or the source tree on an absolute PYTHONPATH), not the unbuilt ./fastpg.
    """
    return subprocess.run(fastpg_command(*args), cwd=cwd, env=cli_env(), capture_output=True, text=True,
                          timeout=timeout)


def run_train(run_dir, *args, episodes=EPISODES, batch_size=BATCH, hidden=HIDDEN, workers=1):
    """A `fastpg train` run (from run_dir's parent) that must succeed; returns the CompletedProcess."""
    options = ["--run-dir", run_dir, "--batch-size", batch_size, "--hidden", hidden, "--workers", workers]
    if episodes is not None:
        options += ["--episodes", episodes]
    result = run_fastpg("train", *options, *args, cwd=os.path.dirname(run_dir))
    assert result.returncode == 0, f"fastpg train failed ({result.returncode}):\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result


def assert_clean_error(result, *fragments, command="train"):
    """Exit status 2 and one line on stderr, 'fastpg COMMAND: error: ...' holding every fragment; no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"fastpg {command}: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# ---------------------------------------------------------------- a run directory


def load_arrays(run_dir):
    """The checkpoint's arrays, read without pickle."""
    with np.load(os.path.join(run_dir, "checkpoint.npz"), allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def load_state(run_dir):
    """state.json as a dict."""
    with open(os.path.join(run_dir, "state.json")) as f:
        return json.load(f)


def metric_rows(run_dir):
    """metrics.csv's rows as dicts of strings."""
    with open(os.path.join(run_dir, "metrics.csv"), newline="") as f:
        return list(csv.DictReader(f))


def update_rows(run_dir):
    """updates.csv's rows as dicts of strings."""
    with open(os.path.join(run_dir, "updates.csv"), newline="") as f:
        return list(csv.DictReader(f))


def episodes_played(rows):
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


def assert_same_weights(actual_dir, desired_dir, rtol=1e-9):
    """W1, W2 and the RMSProp caches agree to rtol; atol scales with each array's magnitude."""
    actual, desired = load_arrays(actual_dir), load_arrays(desired_dir)
    for name in ARRAYS:
        assert actual[name].shape == desired[name].shape, name
        scale = np.abs(desired[name]).max()
        np.testing.assert_allclose(actual[name], desired[name], rtol=rtol, atol=1e-12 * scale, err_msg=name)


# ---------------------------------------------------------------- a running process


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
    """PIDs of the multiprocessing workers of parent_pid (not its resource tracker); Linux /proc."""
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


def train_killing_a_worker(command, cwd, stderr_path, wait_until_playing):
    """Run a `fastpg train` command with 2 workers, SIGKILL one once ``wait_until_playing(process)``
    returns, and let the run finish. Returns (the killed pid, stderr); the run must succeed cleanly."""
    with open(stderr_path, "w") as stderr:
        process = subprocess.Popen(command, cwd=cwd, env=cli_env(), stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        wait_until_playing(process)
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
    return workers[0], stderr


def stop(process):
    """Kill a Popen that is still running, and reap it."""
    if process.poll() is None:
        process.kill()
        process.wait()
