"""`fastpg train` end to end, on real Pong: what a run plays and writes.

Same seed and settings give the same weights (one or two workers, cython or numpy, resumed
or not); --max-steps and --max-minutes stop at a batch boundary; presets; the contents of
state.json and metrics.csv; the progress lines.

Runs are short (4 to 8 random-policy episodes of ALE/Pong-v5, about 0.2 s each) with a tiny
hidden layer. The CLI runs in a subprocess, from a scratch directory (so a source checkout in
the current directory cannot shadow the package under test), with this process's environment.
The reference run (conftest.py) is made once per session and read by several files.
"""
import csv
import os

import numpy as np
import pytest

from fastpg import checkpoint
from fastpg.config import ALGORITHM_DEFAULTS, SEED_SETTINGS
from fastpg.policy import PolicySpec
from fastpg.metrics import COLUMNS, UPDATE_COLUMNS

PPO_UNSET = {name: None for name in ALGORITHM_DEFAULTS["ppo"] if name != "learning_rate"}  # saved, unused

from helpers import (BATCH, EPISODES, HIDDEN, assert_same_weights, episodes_played, load_arrays, load_state,
                     metric_rows, run_fastpg, run_train)

# ---------------------------------------------------------------- same seed and settings, same weights


def test_two_workers_give_the_weights_of_one(reference_run, runs):
    run_dir = str(runs / "two-workers")
    run_train(run_dir, workers=2)
    assert_same_weights(run_dir, reference_run[0])
    assert episodes_played(metric_rows(run_dir)) == episodes_played(metric_rows(reference_run[0]))


def test_numpy_backend_gives_the_weights_of_cython(reference_run, runs):
    run_dir = str(runs / "numpy")
    run_train(run_dir, "--backend", "numpy")
    assert_same_weights(run_dir, reference_run[0])
    assert episodes_played(metric_rows(run_dir)) == episodes_played(metric_rows(reference_run[0]))


def test_weights_change_and_depend_on_the_seed(reference_run, runs):
    """The comparisons above mean something: training moves the weights, and the seed matters."""
    trained = load_arrays(reference_run[0])
    initial = PolicySpec(HIDDEN).initial_parameters(0)
    W1, W2 = initial["W1"], initial["W2"]
    assert not np.allclose(trained["W1"], W1, rtol=0, atol=1e-7)
    assert not np.allclose(trained["W2"], W2, rtol=0, atol=1e-7)
    run_dir = str(runs / "seed-1")
    run_train(run_dir, "--seed", 1, episodes=BATCH)
    assert not np.allclose(load_arrays(run_dir)["W2"], trained["W2"])


def test_resume_equals_an_uninterrupted_run(reference_run, runs):
    run_dir = str(runs / "resumed")
    run_train(run_dir, episodes=2)
    assert load_state(run_dir)["episodes"] == 2
    # Rows of a batch the checkpoint does not hold (an interrupted run leaves them): resume drops them.
    with open(os.path.join(run_dir, "metrics.csv"), "a", newline="") as f:
        csv.writer(f).writerows([(3, 99999, 99, 99.0, 1.0, 1.0), (4, 99999, 99, 99.0, 1.0, 1.0)])
    # Settings come from the checkpoint: only --episodes (and non-algorithm options) are given.
    result = run_fastpg("train", "--run-dir", run_dir, "--resume", "--episodes", EPISODES, "--workers", 1,
                        cwd=runs)
    assert result.returncode == 0, result.stderr
    assert_same_weights(run_dir, reference_run[0])
    assert episodes_played(metric_rows(run_dir)) == episodes_played(metric_rows(reference_run[0]))
    state, reference_state = load_state(run_dir), load_state(reference_run[0])
    for key in ("episodes", "env_steps", "running_reward", "updates", "config"):
        assert state[key] == reference_state[key], key


# ---------------------------------------------------------------- stopping rules


def test_max_steps_stops_at_the_first_batch_boundary_past_it(runs):
    run_dir = str(runs / "max-steps")
    run_train(run_dir, "--max-steps", 1, episodes=None)
    state = load_state(run_dir)
    assert state["episodes"] == BATCH
    assert state["updates"] == 1
    assert len(metric_rows(run_dir)) == BATCH


def test_max_minutes_stops_at_the_first_batch_boundary_past_it(runs):
    """The rule: before each batch, stop if the run's seconds are at or past the limit.

    So the run plays k >= 1 whole batches, ends with seconds at or past the limit, and was under
    the limit at every earlier boundary. Batches of one episode (0.2 to 0.4 s of tiny-policy Pong,
    the first one slower) and a 1.2 s limit make k about 3; the checks hold for any k.
    """
    max_minutes, batch_size = 0.02, 1
    limit = 60 * max_minutes
    run_dir = str(runs / "max-minutes")
    result = run_train(run_dir, "--max-minutes", max_minutes, episodes=None, batch_size=batch_size)
    state, rows = load_state(run_dir), metric_rows(run_dir)
    batches = state["updates"]
    assert batches >= 1
    assert state["episodes"] == batches * batch_size  # stopped at a batch boundary
    assert [int(row["episode"]) for row in rows] == list(range(1, state["episodes"] + 1))
    assert state["env_steps"] == int(rows[-1]["env_steps"])
    assert state["seconds"] >= limit  # past the limit at the last boundary ...
    for boundary in range(1, batches):  # ... and not at an earlier one (a boundary comes after its last row)
        assert float(rows[boundary * batch_size - 1]["seconds"]) < limit, (boundary, rows)
    assert result.stderr.strip().splitlines()[-1].startswith(f"done: {state['episodes']} episodes, ")


def test_more_workers_than_a_batch_has_episodes_is_noted(runs):
    result = run_train(str(runs / "idle-workers"), episodes=2, batch_size=1, workers=2)
    assert "at most 1 of the 2 workers are busy" in result.stderr
    assert "workers are busy" not in run_train(str(runs / "busy-workers"), episodes=2, batch_size=2,
                                               workers=2).stderr


# ---------------------------------------------------------------- presets


def test_preset_seed_is_the_seed_algorithm_and_explicit_options_win(runs):
    run_dir = str(runs / "preset-seed")
    result = run_fastpg("train", "--run-dir", run_dir, "--preset", "seed", "--hidden", HIDDEN, "--episodes", 10,
                        "--workers", 2, cwd=os.path.dirname(run_dir))
    assert result.returncode == 0, result.stderr
    config = load_state(run_dir)["config"]
    assert config == {**PPO_UNSET, **SEED_SETTINGS, "hidden": HIDDEN, "env": "ALE/Pong-v5", "seed": 0,
                      "actions": "RIGHT,LEFT"}  # the game's default for REINFORCE, saved by name
    assert SEED_SETTINGS == {"algo": "reinforce", "hidden": 200, "batch_size": 10, "learning_rate": 1e-4,
                             "gamma": 0.99, "decay_rate": 0.99}  # the seed post's values
    assert load_state(run_dir)["updates"] == 1  # one update per 10 episodes


def test_preset_overrides():
    from fastpg.config import Config, TrainingError, preset_overrides

    assert preset_overrides(None, {"seed": 3, "hidden": None}) == {"seed": 3}
    seed = Config(**preset_overrides("seed", {"learning_rate": 3e-4, "gamma": None}))
    assert (seed.batch_size, seed.learning_rate, seed.gamma) == (10, 3e-4, 0.99)
    assert Config() != Config(**preset_overrides("seed", {}))  # the defaults are not the seed's
    with pytest.raises(TrainingError, match="unknown --preset 'fast'; choose from seed"):
        preset_overrides("fast", {})


# ---------------------------------------------------------------- run directory contents


def test_state_json_records_the_run(reference_run):
    run_dir = reference_run[0]
    state = load_state(run_dir)
    rows = metric_rows(run_dir)
    assert state["config"] == {"env": "ALE/Pong-v5", "hidden": HIDDEN, "batch_size": BATCH,
                               "learning_rate": 1e-3, "gamma": 0.99, "decay_rate": 0.99, "seed": 0,
                               "algo": "reinforce", "actions": "RIGHT,LEFT", **PPO_UNSET}  # REINFORCE's defaults
    assert state["episodes"] == EPISODES
    assert state["updates"] == EPISODES // BATCH
    assert state["env_steps"] == int(rows[-1]["env_steps"])
    assert state["running_reward"] == pytest.approx(float(rows[-1]["running_reward"]), abs=1e-6)
    # The run's time at its last batch boundary: just after its last episode was logged (to 3 decimals),
    # by one RMSProp step of 8 hidden units.
    last_row_seconds = float(rows[-1]["seconds"])
    assert last_row_seconds - 5e-4 <= state["seconds"] < last_row_seconds + 1.0
    # state.json is a copy of the record inside checkpoint.npz, which resume reads.
    assert checkpoint.load(run_dir)[1] == state


def test_metrics_has_one_row_per_episode(reference_run):
    run_dir = reference_run[0]
    with open(os.path.join(run_dir, "metrics.csv"), newline="") as f:
        header = next(csv.reader(f))
    assert tuple(header) == COLUMNS == ("episode", "env_steps", "reward", "running_reward", "seconds",
                                        "steps_per_second", "kl", "entropy", "value_loss", "explained_variance",
                                        "clip_fraction", "step_fraction")
    assert all(row[name] == "" for row in metric_rows(run_dir) for name in UPDATE_COLUMNS)  # ppo's only
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
    # A fresh run's rate is its env steps over its seconds; seconds are written to 3 decimals, the rate to 1.
    for row in rows:
        env_steps, seconds, rate = int(row["env_steps"]), float(row["seconds"]), float(row["steps_per_second"])
        assert env_steps / (seconds + 5e-4) - 0.05 <= rate <= env_steps / (seconds - 5e-4) + 0.05, row


def test_plain_progress_lines_and_summary_when_not_a_tty(reference_run):
    stderr = reference_run[1].stderr
    state, rows = load_state(reference_run[0]), metric_rows(reference_run[0])
    lines = stderr.strip().splitlines()
    batch_lines = [line for line in lines if line.startswith("episode ")]
    assert [line.split()[1] for line in batch_lines] == [str(n) for n in range(BATCH, EPISODES + 1, BATCH)]
    for line in batch_lines:  # "episode N  env_steps S  running_reward R  ..." as logged for episode N
        fields = line.split()
        row = rows[int(fields[1]) - 1]
        assert fields[2:4] == ["env_steps", row["env_steps"]], line
        assert fields[4] == "running_reward" and float(fields[5]) == pytest.approx(float(row["running_reward"]),
                                                                                    abs=5e-4), line
    assert "\r" not in stderr  # no live bar when not on a terminal
    assert lines[-1].startswith(f"done: {EPISODES} episodes, {state['env_steps']:,} env steps, "
                                f"running reward {state['running_reward']:+.3f}; "), lines[-1]
