"""`fastpg train --algo ppo` end to end, on real Pong, and its KL limit.

The arrays a run ends with depend only on its seed and settings: one or two workers, a killed
worker or a resume give the very same checkpoint (parameters, Adam's moments and the lanes'
emulators, screens and frames), the numpy backend the same to float rounding. An update never
moves the policy past --max-kl. Bad settings are one-line errors. A PPO checkpoint is read by
checkpoint.load, eval and video; its metrics.csv carries the update columns, and its updates.csv
every update's statistics.

The runs are tiny: 16 hidden units, 2 lanes of 128-step segments (a batch is 256 steps), 2,560
steps in all (10 updates, about a second), in which two episodes end after a few updates.
"""
import csv
import functools
import io
import json
import math
import multiprocessing as mp
import os
import re
import shutil
import signal
import threading
import time

import numpy as np
import pytest

from fastpg import checkpoint, metrics, reference, workers
from fastpg.backends import densify, get_backend
from fastpg.config import Config
from fastpg.lanes import LanePlayer, LaneState, Segment
from fastpg.metrics import COLUMNS, EPISODE_COLUMNS, UPDATE_COLUMNS, UPDATE_LOG_COLUMNS, MetricsLog, UpdateLog
from fastpg.ppo import PPO
from fastpg.rollout import PlayerSettings
from fastpg.scheduler import Scheduler
from fastpg.train import RunState, train

from helpers import (TIMEOUT, assert_clean_error, episodes_played, expanded, fastpg_command, file_hashes,
                     load_arrays, load_state, metric_rows, run_fastpg, train_killing_a_worker, update_rows)

needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="finds worker processes in Linux /proc")

HIDDEN, LANES, SEGMENT = 16, 2, 128
PPO_OPTIONS = ("--algo", "ppo", "--hidden", HIDDEN, "--lanes", LANES, "--segment-steps", SEGMENT)
BATCH_STEPS = LANES * SEGMENT
STEPS = 10 * BATCH_STEPS
LANE_ARRAYS = ("lane_emulators", "lane_screens", "lane_previous")
PARAMETERS = ("W1", "b1", "W_pi", "b_pi", "w_v", "b_v")
# What a run's rows say that does not depend on its speed: all but seconds and steps_per_second.
DETERMINED_COLUMNS = ("episode", "env_steps", "reward", "running_reward") + UPDATE_COLUMNS


def run_ppo(run_dir, *args, workers=1):
    """A `fastpg train` run (from run_dir's parent) that must succeed; returns the CompletedProcess."""
    result = run_fastpg("train", "--run-dir", run_dir, "--workers", workers, *args, cwd=os.path.dirname(run_dir))
    assert result.returncode == 0, f"fastpg train failed ({result.returncode}):\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result


def determined(rows):
    return [tuple(row[name] for name in DETERMINED_COLUMNS) for row in rows]


def assert_same_run(actual_dir, desired_dir):
    """Every checkpoint array bit for bit, the run's state, the metrics rows' determined columns and every
    update's row."""
    actual, desired = load_arrays(actual_dir), load_arrays(desired_dir)
    assert sorted(actual) == sorted(desired)
    for name in desired:
        if name == "state":
            continue
        assert actual[name].dtype == desired[name].dtype, name
        np.testing.assert_array_equal(actual[name], desired[name], err_msg=name)
    state, desired_state = load_state(actual_dir), load_state(desired_dir)
    for key in ("config", "episodes", "env_steps", "updates", "running_reward", "algorithm", "arrays", "dtypes"):
        assert state[key] == desired_state[key], key
    assert determined(metric_rows(actual_dir)) == determined(metric_rows(desired_dir))
    assert update_rows(actual_dir) == update_rows(desired_dir)


@pytest.fixture(scope="module")
def ppo_run(runs):
    """STEPS steps of the tiny PPO settings, one worker, cython: (run_dir, CompletedProcess)."""
    run_dir = str(runs / "ppo-reference")
    return run_dir, run_ppo(run_dir, *PPO_OPTIONS, "--max-steps", STEPS)


def test_the_reference_run_learned_and_ended_episodes_after_updates(ppo_run):
    """What the comparisons below rely on: the run moved every array, and logged episodes after updates."""
    run_dir = ppo_run[0]
    arrays, state = load_arrays(run_dir), load_state(run_dir)
    assert state["env_steps"] == STEPS and state["updates"] == STEPS // BATCH_STEPS
    initial = Config(algo="ppo", hidden=HIDDEN).policy().initial_parameters(0)
    for name in PARAMETERS:
        assert not np.allclose(arrays[name], initial[name], rtol=0, atol=1e-9), name
        assert np.any(arrays[f"adam_v_{name}"] > 0), name
    rows = metric_rows(run_dir)
    assert len(rows) >= 2 and state["episodes"] == len(rows)
    assert int(rows[0]["env_steps"]) > BATCH_STEPS  # the first episode ended after the first update


# ---------------------------------------------------------------- same seed and settings, same arrays


def test_two_workers_give_the_arrays_of_one(ppo_run, runs):
    run_dir = str(runs / "ppo-two-workers")
    run_ppo(run_dir, *PPO_OPTIONS, "--max-steps", STEPS, workers=2)
    assert_same_run(run_dir, ppo_run[0])


def test_learner_threads_give_the_arrays_of_one(ppo_run, runs):
    run_dir = str(runs / "ppo-learner-threads")
    run_ppo(run_dir, *PPO_OPTIONS, "--max-steps", STEPS, "--learner-threads", 3)
    assert_same_run(run_dir, ppo_run[0])


def test_numpy_backend_gives_the_weights_of_cython(ppo_run, runs):
    run_dir = str(runs / "ppo-numpy")
    run_ppo(run_dir, *PPO_OPTIONS, "--max-steps", STEPS, "--backend", "numpy")
    actual, desired = load_arrays(run_dir), load_arrays(ppo_run[0])
    for name in PARAMETERS:
        scale = np.abs(desired[name]).max()
        np.testing.assert_allclose(actual[name], desired[name], rtol=1e-9, atol=1e-12 * scale, err_msg=name)
    for name in LANE_ARRAYS:  # the same games, step for step
        np.testing.assert_array_equal(actual[name], desired[name], err_msg=name)
    algorithm, desired_algorithm = load_state(run_dir)["algorithm"], load_state(ppo_run[0])["algorithm"]
    for key in ("lanes", "adam_steps"):
        assert algorithm[key] == desired_algorithm[key], key
    assert algorithm["last_stats"] == pytest.approx(desired_algorithm["last_stats"], rel=1e-9, abs=1e-12)
    assert episodes_played(metric_rows(run_dir)) == episodes_played(metric_rows(ppo_run[0]))


@pytest.mark.parametrize("inputs", ["difference+frame", "difference"])
def test_either_input_learns_the_same_on_two_workers_and_on_numpy(runs, inputs):
    """--inputs difference+frame (the default since 0.13): W1 has a second 6400-column block, which learns
    (Pong's paddles are always on screen); --inputs difference, the seed's input, has the first alone. The
    run's guarantees hold for both."""
    options = (*PPO_OPTIONS, "--inputs", inputs, "--max-steps", 4 * BATCH_STEPS)
    one, two, twin = (str(runs / f"ppo-{inputs}-{name}") for name in ("one", "two", "numpy"))
    run_ppo(one, *options)
    run_ppo(two, *options, workers=2)
    run_ppo(twin, *options, "--backend", "numpy")
    assert_same_run(two, one)
    arrays = load_arrays(one)
    width = 12800 if inputs == "difference+frame" else 6400
    assert load_state(one)["config"]["inputs"] == inputs and arrays["W1"].shape == (HIDDEN, width)
    initial = Config(algo="ppo", hidden=HIDDEN, inputs=inputs).policy().initial_parameters(0)["W1"]
    changed = np.any(arrays["W1"] != initial, axis=0)
    assert all(changed[block:block + 6400].sum() > 100 for block in range(0, width, 6400))
    for name in PARAMETERS:
        desired = arrays[name]
        np.testing.assert_allclose(load_arrays(twin)[name], desired, rtol=1e-9, atol=1e-12 * np.abs(desired).max(),
                                   err_msg=name)


def test_lazy_adam_runs_the_same_on_two_workers_on_numpy_and_resumed(runs):
    """--optimizer lazy-adam keeps the run's guarantees (1 or 2 workers, resume, numpy), leaves W1's columns of
    inputs no minibatch saw at their initial weights and zero moments, and makes a different run from Adam's."""
    options = (*PPO_OPTIONS, "--optimizer", "lazy-adam")
    one, two, twin, resumed = (str(runs / f"ppo-lazy-{name}") for name in ("one", "two", "numpy", "resumed"))
    run_ppo(one, *options, "--max-steps", 4 * BATCH_STEPS)
    run_ppo(two, *options, "--max-steps", 4 * BATCH_STEPS, workers=2)
    run_ppo(twin, *options, "--max-steps", 4 * BATCH_STEPS, "--backend", "numpy")
    run_ppo(resumed, *options, "--max-steps", 2 * BATCH_STEPS)
    run_ppo(resumed, "--resume", "--max-steps", 4 * BATCH_STEPS, workers=2)
    assert_same_run(two, one)
    assert_same_run(resumed, one)
    arrays = load_arrays(one)
    assert load_state(one)["config"]["optimizer"] == "lazy-adam"
    for name in PARAMETERS:
        desired = arrays[name]
        np.testing.assert_allclose(load_arrays(twin)[name], desired, rtol=1e-9, atol=1e-12 * np.abs(desired).max(),
                                   err_msg=name)
    initial = Config(algo="ppo", hidden=HIDDEN).policy().initial_parameters(0)["W1"]
    unseen = np.all(arrays["adam_v_W1"] == 0, axis=0)
    assert 0 < unseen.sum() < unseen.size - 100
    np.testing.assert_array_equal(arrays["W1"][:, unseen], initial[:, unseen])
    np.testing.assert_array_equal(arrays["adam_m_W1"][:, unseen], 0.0)
    dense_run = str(runs / "ppo-lazy-dense")
    run_ppo(dense_run, *PPO_OPTIONS, "--optimizer", "adam", "--max-steps", 4 * BATCH_STEPS)
    assert not np.array_equal(load_arrays(dense_run)["W1"], arrays["W1"]), "Adam moves columns it did not see"
    assert Config(algo="ppo").optimizer == "lazy-adam"  # 0.15's default
    assert Config.of_checkpoint({"algo": "ppo"}, "run").optimizer == "adam"  # saved before 0.15


def test_the_default_input_and_old_checkpoints():
    assert Config().inputs == "difference+frame"
    assert Config.of_checkpoint({"algo": "ppo"}, "run").inputs == "difference"  # saved before 0.12
    assert Config.of_checkpoint({"algo": "ppo", "inputs": "difference+frame"}, "run").inputs == "difference+frame"
    assert Config.of_checkpoint({"algo": "reinforce"}, "run").inputs is None
    assert Config.of_checkpoint({"algo": "ppo"}, "run").ent_decay_steps == 0  # saved before 0.14: constant


def test_max_steps_stops_at_the_first_batch_boundary_past_it(runs):
    run_dir = str(runs / "ppo-max-steps")
    run_ppo(run_dir, *PPO_OPTIONS, "--max-steps", BATCH_STEPS + 1)
    state = load_state(run_dir)
    assert (state["env_steps"], state["updates"], state["episodes"]) == (2 * BATCH_STEPS, 2, 0)
    defaults = Config(algo="ppo")
    assert state["algorithm"]["adam_steps"] == 2 * defaults.epochs * defaults.minibatches


def test_resume_equals_an_uninterrupted_run(ppo_run, runs):
    """Stopped at the batch boundary after the first episode, resumed (on two workers) to the end."""
    first_episode_steps = int(metric_rows(ppo_run[0])[0]["env_steps"])
    stop_at = math.ceil(first_episode_steps / BATCH_STEPS) * BATCH_STEPS
    assert stop_at < STEPS, "the first leg must end before the reference run does"
    run_dir = str(runs / "ppo-resumed")
    run_ppo(run_dir, *PPO_OPTIONS, "--max-steps", stop_at)
    state = load_state(run_dir)
    ended = sum(1 for row in metric_rows(ppo_run[0]) if int(row["env_steps"]) <= stop_at)  # both lanes may end one
    assert (state["env_steps"], state["updates"], state["episodes"]) == (stop_at, stop_at // BATCH_STEPS, ended)
    assert determined(metric_rows(run_dir)) == determined(metric_rows(ppo_run[0]))[:ended]
    # A row of a batch the checkpoint does not hold (a crash mid-batch leaves them): resume drops it.
    with open(os.path.join(run_dir, "metrics.csv"), "a", newline="") as f:
        csv.writer(f).writerow([ended + 1, 99999, 9, 9.0, 1.0, 1.0] + [1] * len(UPDATE_COLUMNS))
    # updates.csv as a crash right after the checkpoint can leave it: without the checkpoint's own update, and
    # with a row of an update it does not hold. Resume writes the first from the checkpoint and drops the second.
    rows = update_rows(run_dir)
    assert [int(row["update"]) for row in rows] == list(range(1, stop_at // BATCH_STEPS + 1))
    with open(os.path.join(run_dir, "updates.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(UPDATE_LOG_COLUMNS)
        writer.writerows([row[name] for name in UPDATE_LOG_COLUMNS] for row in rows[:-1])
        writer.writerow([len(rows) + 1, 99999] + [1] * (len(UPDATE_LOG_COLUMNS) - 2))
    # Settings come from the checkpoint: only where to stop (and non-algorithm options) are given.
    run_ppo(run_dir, "--resume", "--max-steps", STEPS, workers=2)
    assert_same_run(run_dir, ppo_run[0])


def test_segments_of_the_next_batch_go_out_early_and_the_run_is_the_barriers(ppo_run, runs, monkeypatch):
    """Training hands the next batch's segments to the workers before the batch begins (most batches: the
    tiny update ends long before a segment does); a run that waits at the barrier instead is the same run."""
    settings = {"algo": "ppo", "hidden": HIDDEN, "lanes": LANES, "segment_steps": SEGMENT}
    early = []
    prefetch = Scheduler.prefetch
    monkeypatch.setattr(Scheduler, "prefetch", lambda pool, task: (early.append(task), prefetch(pool, task))[1])
    train(settings, str(runs / "ppo-early"), max_steps=STEPS, workers=2, progress_stream=io.StringIO())
    assert len(early) >= LANES and all(isinstance(task, Segment) and task.batch >= 2 for task in early)
    assert_same_run(str(runs / "ppo-early"), ppo_run[0])
    monkeypatch.setattr(PPO, "early_tasks", lambda learner: [])
    train(settings, str(runs / "ppo-barrier"), max_steps=STEPS, workers=2, progress_stream=io.StringIO())
    assert_same_run(str(runs / "ppo-barrier"), ppo_run[0])


@needs_proc
def test_a_killed_worker_costs_a_replayed_segment_and_nothing_else(ppo_run, runs):
    run_dir = str(runs / "ppo-killed-worker")
    stderr_path = os.path.join(runs, "ppo-killed-worker.stderr")
    command = fastpg_command("train", "--run-dir", run_dir, "--workers", 2, *PPO_OPTIONS, "--max-steps", STEPS)
    def wait_for_metrics(process):
        # metrics.csv appears just before the first batch's segments go to the workers, which are still
        # starting up (importing, opening the emulator): each has a segment to play when it is killed.
        deadline = time.monotonic() + TIMEOUT
        while not os.path.exists(os.path.join(run_dir, "metrics.csv")):
            assert process.poll() is None, "fastpg train exited before starting its first batch"
            assert time.monotonic() < deadline, "no metrics.csv"
            time.sleep(0.01)

    killed, stderr = train_killing_a_worker(command, runs, stderr_path, wait_for_metrics)
    warnings = [line for line in stderr.splitlines() if "died" in line]
    assert len(warnings) == 1, stderr
    assert re.fullmatch(rf"worker {killed} died \(exit code -9\) while playing segment lane [01] of batch 1; "
                        "replaying it with the same seed on a new worker", warnings[0]), warnings[0]
    assert " steps/s, 1 replayed segments); " in stderr.strip().splitlines()[-1], stderr
    assert_same_run(run_dir, ppo_run[0])


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_a_lane_plays_the_same_on_any_player(backend):
    """What replays and resumes rest on: a segment's result depends only on the lane's state.

    A fresh player (a new worker, or a resumed run) restores a screen its emulator never drew, and
    a player that has played other lanes has run its emulator's counters on; neither may show.
    """
    spec = Config(algo="ppo", hidden=8).policy()
    params = spec.initial_parameters(0)

    def player():
        return LanePlayer(PlayerSettings(spec, "ALE/Pong-v5", backend=backend, unit="segment"), params)

    used = player()
    used.play(Segment(1, 0, 200, LaneState.start(0, 1)))  # another lane first
    first = used.play(Segment(0, 0, 150, LaneState.start(0, 0)))
    fresh_first = player().play(Segment(0, 0, 150, LaneState.start(0, 0)))
    second = used.play(Segment(0, 1, 100, first["state"]))
    fresh_second = player().play(Segment(0, 1, 100, first["state"]))
    for a, b in ((first, fresh_first), (second, fresh_second)):
        for name in ("indices", "signs", "offsets", "choices"):
            np.testing.assert_array_equal(a["record"][name], b["record"][name], err_msg=name)
        np.testing.assert_array_equal(a["rewards"], b["rewards"])
        assert a["state"].game[0] == b["state"].game[0]  # the emulator's bytes
        np.testing.assert_array_equal(a["state"].game[1], b["state"].game[1])
        np.testing.assert_array_equal(a["state"].previous, b["state"].previous)
        assert (a["state"].policy_rng, a["state"].env_rng) == (b["state"].policy_rng, b["state"].env_rng)


# ---------------------------------------------------------------- the KL limit


def _learner_and_batch(max_kl, learning_rate=1e-2, policy_lag=0, lr_decay_steps=0, backend=None, **settings):
    """A fresh PPO learner (2 lanes of 64 steps) that has observed its first batch: (learner, params, segments).
    params are the weights the workers play."""
    config = Config(algo="ppo", hidden=HIDDEN, lanes=2, segment_steps=64, learning_rate=learning_rate,
                    max_kl=max_kl, policy_lag=policy_lag, lr_decay_steps=lr_decay_steps, **settings)
    config.validate()
    spec = config.policy()
    params = spec.initial_parameters(config.seed)
    learner = PPO(config, spec, params, {**params, **PPO.initial_state(spec, config)},
                  backend or get_backend("cython"))
    player = LanePlayer(PlayerSettings(spec, config.env, unit="segment"), params)
    segments = [player.play(task) for task in learner.next_tasks(RunState())]
    for segment in segments:
        learner.observe(segment)
    return learner, params, segments


def _measured_kl(segments, before, after):
    """The reference's mean KL(before || after) over the batch's steps (not the screens peeked at its ends)."""
    kls = []
    for segment in segments:
        record = expanded(segment["record"])
        x = densify(record, 0, len(record["offsets"]) - 2, before["W1"].shape[1])
        old_logits, _, _ = reference.actor_critic_forward(before, x)
        new_logits, _, _ = reference.actor_critic_forward(after, x)
        kls.append(reference.softmax_kl(old_logits, new_logits))
    return float(np.mean(kls))  # the lanes' segments are of equal length


def test_an_update_keeps_the_kl_within_max_kl():
    max_kl = 0.0003  # well below what this batch's unlimited update reaches (about 0.005)
    learner, params, segments = _learner_and_batch(max_kl)
    before = {name: array.copy() for name, array in params.items()}
    learner.update(RunState())
    kl = _measured_kl(segments, before, params)
    assert 0 < kl <= max_kl  # within the limit, and not by undoing the update
    assert learner.last_stats["kl"] == pytest.approx(kl, rel=0, abs=1e-12)

    # The limit did something: the same batch and learning rate without it go past it.
    free, free_params, free_segments = _learner_and_batch(1e9)
    for segment, free_segment in zip(segments, free_segments):  # the very same batch
        for name in ("indices", "signs", "offsets", "choices"):
            np.testing.assert_array_equal(segment["record"][name], free_segment["record"][name])
        np.testing.assert_array_equal(segment["rewards"], free_segment["rewards"])
    free.update(RunState())
    free_kl = _measured_kl(free_segments, before, free_params)
    assert free_kl > 10 * max_kl
    assert free.last_stats["kl"] == pytest.approx(free_kl, rel=0, abs=1e-12)


def test_with_lag_the_line_search_starts_from_the_weights_the_workers_play():
    max_kl = 0.0003
    learner, params, segments = _learner_and_batch(max_kl, policy_lag=1)
    before = {name: array.copy() for name, array in params.items()}  # the workers' weights, the learner's too
    learner.update(RunState())  # publishes the learner's weights, then learns from the batch in a thread
    learner.flush()
    for name, array in params.items():  # the line search read the workers' copy and left it alone
        np.testing.assert_array_equal(array, before[name], err_msg=name)
    kl = _measured_kl(segments, before, learner.params)
    assert learner.learned_stats["step_fraction"] < 1  # the limit acted
    assert 0 < kl <= max_kl
    assert learner.learned_stats["kl"] == pytest.approx(kl, rel=0, abs=1e-12)


def _lagged_batches(two_sets, n_batches=3):
    """A lag-1 learner (2 lanes of 64 steps) through n_batches batches, played as a pool plays them: with a
    second set of weights, each lane's next segment is played as soon as the learner hands it out, before
    the batch it follows ends. Returns (learner, segments played early)."""
    config = Config(algo="ppo", hidden=HIDDEN, lanes=2, segment_steps=64, policy_lag=1)
    config.validate()
    spec = config.policy()
    params = spec.initial_parameters(config.seed)
    second = spec.zero_parameters() if two_sets else None
    learner = PPO(config, spec, params, {**params, **PPO.initial_state(spec, config)}, get_backend("cython"),
                  early_parameters=second)
    player = LanePlayer(PlayerSettings(spec, config.env, unit="segment"), params, second)
    state, played, early = RunState(), {}, 0
    for batch in range(n_batches):
        tasks = learner.next_tasks(state)
        learner.batch_sent()
        if two_sets and batch >= 1:  # a long batch: the update in flight ends before its first segment does
            assert learner.next_published.wait(TIMEOUT)
        for task in tasks:
            learner.observe(played.pop(task) if task in played else player.play(task))
            for task_early in learner.early_tasks():
                assert task_early.batch == batch + 1 and task_early.weights == 1 - learner.playing
                played[task_early] = player.play(task_early)
                early += 1
        learner.update(state)
        state.updates += 1
    learner.flush()
    return learner, early


def test_a_second_set_of_weights_starts_each_batch_early_and_changes_nothing():
    one, early_one = _lagged_batches(two_sets=False)
    two, early_two = _lagged_batches(two_sets=True)
    assert early_one == 0 and early_two == 4  # both lanes of batches 2 and 3
    for name in one.params:
        np.testing.assert_array_equal(two.params[name], one.params[name], err_msg=name)
        np.testing.assert_array_equal(two.play_params[name], one.play_params[name], err_msg=name)
        for a, b in zip(two.moments[name], one.moments[name]):
            np.testing.assert_array_equal(a, b, err_msg=name)
    assert two.learned_stats == one.learned_stats
    for a, b in zip(two.lanes, one.lanes):
        assert a.game[0] == b.game[0] and (a.policy_rng, a.env_rng) == (b.policy_rng, b.env_rng)


def test_the_learners_arrays_and_the_workers_shared_weights_start_on_cache_lines():
    # A speed matter only (the kernels' 64-byte loads of W1's columns then split no cache line): the
    # results are the same either way, which the worker-count and backend tests check.
    learner, params, _ = _learner_and_batch(0.02, policy_lag=1)
    arrays = {**{f"weights {n}": a for n, a in learner.params.items()},
              **{f"gradient {n}": a for n, a in learner.grads.items()},
              **{f"adam {k} {n}": a for n, pair in learner.moments.items() for k, a in zip("mv", pair)}}
    for name, array in arrays.items():
        assert array.ctypes.data % 64 == 0, name
    for name, array in learner.params.items():  # the learner's own copy of the weights, laid out as theirs
        np.testing.assert_array_equal(array, params[name], err_msg=name)
    assert learner.params["W1"].flags.f_contiguous and learner.grads["W1"].flags.f_contiguous
    spec = learner.spec
    shared = workers.shared_arrays(workers.shared_buffers(mp.get_context("spawn"), spec), spec)
    for name, declared in spec.parameters().items():
        assert shared[name].ctypes.data % 64 == 0 and shared[name].shape == declared.shape, name
        assert shared[name].flags.f_contiguous if declared.order == "F" else shared[name].flags.c_contiguous


def test_a_checkpoint_written_while_the_next_batch_plays_is_the_runs_state_after_its_batch(runs, monkeypatch):
    """A periodic checkpoint is written in a thread beside the next batch (so the workers need not wait for it):
    it still holds exactly what a run stopped after that batch holds, update in flight included."""
    saved = []

    def record(run_dir, arrays, state):
        saved.append((threading.current_thread().name, {name: np.array(a) for name, a in arrays.items()},
                      json.loads(json.dumps(state))))

    monkeypatch.setattr(checkpoint, "save", record)
    settings = {"algo": "ppo", "hidden": HIDDEN, "lanes": LANES, "segment_steps": SEGMENT}
    train(settings, str(runs / "ppo-background-checkpoint"), max_steps=STEPS, workers=1, checkpoint_every=1,
          progress_stream=io.StringIO())
    beside = [(arrays, state) for thread, arrays, state in saved if thread == "fastpg-checkpoint"]
    assert beside, "no checkpoint was written beside a batch"
    assert all(thread == "MainThread" for thread, _, _ in saved[:1] + saved[-1:])  # the first and the last
    arrays, state = beside[0]
    assert 0 < state["updates"] < STEPS // BATCH_STEPS
    monkeypatch.undo()
    stopped = str(runs / "ppo-stopped-there")
    run_ppo(stopped, *PPO_OPTIONS, "--max-steps", state["updates"] * BATCH_STEPS)
    expected = load_arrays(stopped)
    del expected["state"]  # the npz's copy of the state, compared below
    assert sorted(arrays) == sorted(expected) and arrays["lane_emulators"].size
    for name, array in expected.items():
        np.testing.assert_array_equal(arrays[name], array, err_msg=name)
    stopped_state = load_state(stopped)
    for key in ("episodes", "env_steps", "updates", "running_reward", "algorithm"):
        assert state[key] == stopped_state[key], key


def test_a_stop_right_after_a_checkpoint_written_beside_a_batch_does_not_write_it_again(runs, monkeypatch):
    """Ctrl-C while the batch after a periodic checkpoint plays discards that batch, so the run's state is the one
    the checkpoint holds: the stop writes nothing more (it used to write the same checkpoint again)."""
    saved = []

    def record(run_dir, arrays, state):
        saved.append((threading.current_thread().name, json.loads(json.dumps(state))))
        if threading.current_thread().name == "fastpg-checkpoint":
            signal.raise_signal(signal.SIGINT)  # the run's handler asks it to stop, as Ctrl-C does

    monkeypatch.setattr(checkpoint, "save", record)
    settings = {"algo": "ppo", "hidden": HIDDEN, "lanes": LANES, "segment_steps": SEGMENT}
    outcome = train(settings, str(runs / "ppo-stop-after-checkpoint"), max_steps=STEPS, workers=1,
                    checkpoint_every=1, progress_stream=io.StringIO())
    assert outcome.interrupted
    threads = [thread for thread, _ in saved]
    assert threads[:2] == ["MainThread", "fastpg-checkpoint"], threads  # the run's start, then one beside a batch
    updates = [state["updates"] for _, state in saved]
    assert len(set(updates)) == len(updates), updates  # no state written twice
    # (had the batch ended before the stop was seen, its update would have been saved as a third, new state)
    assert 0 < updates[-1] == outcome.state.updates < STEPS // BATCH_STEPS  # the run's last state is on disk


def test_kl_of_every_update_of_a_run_is_within_the_default_limit(ppo_run):
    max_kl = Config(algo="ppo").max_kl
    rows = update_rows(ppo_run[0])
    assert load_state(ppo_run[0])["config"]["max_kl"] == max_kl
    assert len(rows) == STEPS // BATCH_STEPS
    for row in rows:
        assert 0 <= float(row["kl"]) <= max_kl * (1 + 1e-5), row  # written to 6 significant digits


# ---------------------------------------------------------------- the policy lag


@pytest.mark.parametrize("actions", ["RIGHT,LEFT", "NOOP,RIGHT,LEFT"])
def test_with_lag_each_batch_is_played_with_the_weights_one_update_older(actions):
    """Batch 0 and batch 1 are played with the initial weights; batch 2 with those after the first
    update, which (its batch played by the proximal policy itself, every weight 1) is the update
    a lag-0 learner makes of the same batch: bit for bit with two actions; with three, to the
    rounding of the log-probabilities the workers record against the learner's own."""
    if actions == "RIGHT,LEFT":
        same, same_stats = np.testing.assert_array_equal, lambda stats: stats
    else:
        same = functools.partial(np.testing.assert_allclose, rtol=1e-9, atol=1e-15)
        same_stats = functools.partial(pytest.approx, rel=1e-9, abs=1e-15)
    lagged, play, segments = _learner_and_batch(0.02, policy_lag=1, actions=actions)
    initial = {name: array.copy() for name, array in play.items()}
    plain, plain_params, plain_segments = _learner_and_batch(0.02, policy_lag=0, actions=actions)
    plain.update(RunState())
    lagged.update(RunState())  # learns from batch 0 in the background; the workers keep the initial weights
    for name in initial:
        np.testing.assert_array_equal(play[name], initial[name], err_msg=name)
    lagged.flush()
    for name in initial:
        same(lagged.params[name], plain_params[name], err_msg=name)
        assert not np.array_equal(lagged.params[name], initial[name]), name
    assert lagged.last_stats is None and lagged.learned_stats == same_stats(plain.last_stats)  # no update played yet
    for segment in segments:  # batch 1 (its results are batch 0's again: only the schedule is tested)
        lagged.observe(segment)
    lagged.update(RunState(updates=1))
    for name in initial:
        same(play[name], plain_params[name], err_msg=name)
    assert lagged.last_stats == same_stats(plain.last_stats)
    lagged.flush()
    assert 0 < lagged.learned_stats["kl"] <= 0.02


def test_lagged_advantages_weigh_each_step_by_the_policies_ratio_capped():
    advantages = np.array([1.0, -2.0, 0.5, 3.0])
    logp_proximal = np.log([0.5, 0.2, 0.9, 0.6])
    logp_behaviour = np.log([0.5, 0.4, 0.3, 0.9])
    weighted = reference.lagged_advantages(advantages, logp_proximal, logp_behaviour, cap=2.0)
    np.testing.assert_allclose(weighted, [1.0, -1.0, 1.0, 2.0], rtol=1e-12)  # ratios 1, 1/2, 3 (capped), 2/3


def test_policy_lag_0_gives_the_same_run_on_two_workers_and_after_resuming_a_0_4_checkpoint(runs):
    options = (*PPO_OPTIONS, "--policy-lag", 0, "--inputs", "difference", "--actions", "RIGHT,LEFT")
    straight = str(runs / "ppo-lag0")
    run_ppo(straight, *options, "--max-steps", 4 * BATCH_STEPS)
    resumed = str(runs / "ppo-lag0-resumed")
    run_ppo(resumed, *options, "--max-steps", 2 * BATCH_STEPS, workers=2)
    assert "play_W1" not in load_arrays(resumed)  # the workers play the learner's own weights
    # As fastpg 0.4 wrote it, before the lag: a run without it resumes as one of lag 0.
    state_path = os.path.join(resumed, "state.json")
    with open(state_path) as f:
        state = json.load(f)
    for setting in ("policy_lag", "lr_decay_steps", "inputs", "ent_decay_steps"):  # added in 0.5, 0.7, 0.12, 0.14
        del state["config"][setting]
    del state["algorithm"]["learned_stats"]
    state["config"]["actions"] = None  # before 0.18 a run saved Pong's default, up and down, as None
    with open(state_path, "w") as f:
        json.dump(state, f)
    run_ppo(resumed, "--resume", "--max-steps", 4 * BATCH_STEPS)
    assert_same_run(resumed, straight)
    lagged = str(runs / "ppo-lag1-short")
    run_ppo(lagged, *PPO_OPTIONS, "--policy-lag", 1, "--max-steps", 4 * BATCH_STEPS)
    assert "play_W1" in load_arrays(lagged)
    assert not np.array_equal(load_arrays(lagged)["W1"], load_arrays(straight)["W1"]), "the lag changes the run"


# ---------------------------------------------------------------- the learning rate's decay


def test_a_linear_decay_falls_to_zero_and_stays():
    rates = [reference.linear_decay(1e-3, steps, 4000) for steps in (0, 1000, 3000, 4000, 9000)]
    np.testing.assert_allclose(rates, [1e-3, 7.5e-4, 2.5e-4, 0.0, 0.0], rtol=1e-15, atol=0)
    assert reference.linear_decay(1e-3, 10**9, 0) == 1e-3  # 0: no decay


def test_an_update_after_the_decay_leaves_the_weights_alone():
    """Decaying over one batch: the first update steps at the full rate, the second at rate 0."""
    batch_steps = 2 * 64
    decayed, params, segments = _learner_and_batch(1e9, lr_decay_steps=batch_steps)
    constant, constant_params, _ = _learner_and_batch(1e9)
    decayed.update(RunState())
    constant.update(RunState())
    for name in params:  # the first batch: the same full-rate update
        np.testing.assert_array_equal(params[name], constant_params[name], err_msg=name)
    after_first = {name: array.copy() for name, array in params.items()}
    for segment in segments:
        decayed.observe(segment)
        constant.observe(segment)
    decayed.update(RunState(updates=1))
    constant.update(RunState(updates=1))
    for name in params:
        np.testing.assert_array_equal(params[name], after_first[name], err_msg=name)
        assert not np.array_equal(constant_params[name], after_first[name]), name
    assert decayed.last_stats["kl"] == 0


class EntropyWeightSpy:
    """A backend that keeps the entropy weight of every ppo_backward call."""

    def __init__(self, backend):
        self._backend = backend
        self.ent_coefs = []

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def ppo_backward(self, *args, **kwargs):
        self.ent_coefs.append(args[11])  # after clip and vf_coef
        return self._backend.ppo_backward(*args, **kwargs)


def test_the_entropy_weight_decays_by_batch_and_only_when_asked():
    """Over two batches of play the weight falls from --ent-coef to half of it, in every Adam step of an update."""
    batch_steps = 2 * 64
    for decay_steps, second in ((2 * batch_steps, 0.02), (0, 0.04)):
        spy = EntropyWeightSpy(get_backend("cython"))
        learner, _, segments = _learner_and_batch(1e9, backend=spy, ent_coef=0.04, ent_decay_steps=decay_steps)
        learner.update(RunState())
        for segment in segments:
            learner.observe(segment)
        learner.update(RunState(updates=1))
        steps = learner.config.epochs * learner.config.minibatches
        assert spy.ent_coefs == [0.04] * steps + [second] * steps


def test_a_decaying_run_resumes_exactly_on_two_workers_and_stops_where_the_rate_reaches_0(runs):
    options = (*PPO_OPTIONS, "--lr-decay-steps", 3 * BATCH_STEPS, "--ent-decay-steps", 2 * BATCH_STEPS)
    straight = str(runs / "ppo-decay")
    started = run_ppo(straight, *options)  # no --max-steps: the schedule's end stops it
    assert load_state(straight)["env_steps"] == 3 * BATCH_STEPS
    assert f"falling linearly to 0 at {3 * BATCH_STEPS:,} env steps, where training stops" in started.stderr
    assert f"entropy weight 0.05, falling linearly to 0 at {2 * BATCH_STEPS:,} env steps" in started.stderr
    assert load_state(straight)["config"]["lr_decay_steps"] == 3 * BATCH_STEPS
    assert load_state(straight)["config"]["ent_decay_steps"] == 2 * BATCH_STEPS
    resumed = str(runs / "ppo-decay-resumed")
    cut_short = run_ppo(resumed, *options, "--max-steps", 2 * BATCH_STEPS)
    assert (f"falling linearly to 0 at {3 * BATCH_STEPS:,} env steps (--lr-decay-steps; 0 keeps it constant); "
            f"training stops before that, at about {2 * BATCH_STEPS:,} (--max-steps), with the rate at 0.000333"
            in cut_short.stderr)
    run_ppo(resumed, "--resume", "--max-steps", 4 * BATCH_STEPS, workers=2)  # stops at 3 batches all the same
    assert_same_run(resumed, straight)
    before = file_hashes(resumed)
    past_the_end = run_fastpg("train", "--run-dir", resumed, "--resume", cwd=runs)
    assert_clean_error(past_the_end, f"the run is complete: its learning rate reached 0 at {3 * BATCH_STEPS:,} "
                                     "env steps (--lr-decay-steps), so further training would leave its weights")
    assert file_hashes(resumed) == before
    constant = str(runs / "ppo-constant-short")
    kept = run_ppo(constant, *PPO_OPTIONS, "--lr-decay-steps", 0, "--max-steps", 4 * BATCH_STEPS)
    assert "learning rate" not in kept.stderr
    assert not np.array_equal(load_arrays(constant)["W1"], load_arrays(straight)["W1"]), "the decay changes the run"


# ---------------------------------------------------------------- bad settings


NEW_RUN_ERRORS = {
    "a reinforce setting": (["--algo", "ppo", "--batch-size", 4], ["--batch-size is a setting of --algo reinforce"]),
    "a ppo setting": (["--algo", "reinforce", "--lanes", 4], ["--lanes is a setting of --algo ppo"]),
    "a ppo setting, reinforce by default": (["--segment-steps", 64], ["--segment-steps is a setting of --algo ppo"]),
    "zero lanes": (["--algo", "ppo", "--lanes", 0], ["--lanes must be at least 1, got 0"]),
    "zero segment steps": (["--algo", "ppo", "--segment-steps", 0], ["--segment-steps must be at least 1"]),
    "zero epochs": (["--algo", "ppo", "--epochs", 0], ["--epochs must be at least 1"]),
    "zero max kl": (["--algo", "ppo", "--max-kl", 0], ["--max-kl must be positive"]),
    "infinite max kl": (["--algo", "ppo", "--max-kl", "inf"], ["--max-kl must be positive and finite"]),
    "negative clip": (["--algo", "ppo", "--clip", -0.2], ["--clip"]),
    "negative entropy weight": (["--algo", "ppo", "--ent-coef", -1], ["--ent-coef"]),
    "lambda 2": (["--algo", "ppo", "--lam", 2], ["--lam must be in [0, 1], got 2.0"]),
    "policy lag 2": (["--algo", "ppo", "--policy-lag", 2], ["--policy-lag must be one of 0, 1, got 2"]),
    "policy lag of reinforce": (["--algo", "reinforce", "--policy-lag", 1], ["--policy-lag"]),
    "negative lr decay": (["--algo", "ppo", "--lr-decay-steps", -1], ["--lr-decay-steps must be non-negative, got -1"]),
    "negative entropy decay": (["--algo", "ppo", "--ent-decay-steps", -5],
                               ["--ent-decay-steps must be non-negative, got -5"]),
    "entropy decay of reinforce": (["--algo", "reinforce", "--ent-decay-steps", 100],
                                   ["--ent-decay-steps is a setting of --algo ppo"]),
    "lr decay of reinforce": (["--algo", "reinforce", "--lr-decay-steps", 100],
                              ["--lr-decay-steps is a setting of --algo ppo"]),
    "more minibatches than steps": (["--algo", "ppo", "--lanes", 2, "--segment-steps", 8, "--minibatches", 17],
                                    ["--minibatches (17)", "= 16"]),
    "zero learner threads": (["--algo", "ppo", "--learner-threads", 0], ["--learner-threads must be at least 1, got 0"]),
    "a million learner threads": (["--algo", "ppo", "--learner-threads", 10**6],
                                  ["--learner-threads must be at most 256, got 1000000"]),
    "unknown inputs": (["--algo", "ppo", "--inputs", "frame"],
                       ["--inputs must be one of difference, difference+frame, got 'frame'"]),
    "inputs of reinforce": (["--algo", "reinforce", "--inputs", "difference+frame"],
                            ["--inputs is a setting of --algo ppo"]),
    "unknown optimizer": (["--algo", "ppo", "--optimizer", "sgd"],
                          ["--optimizer must be one of adam, lazy-adam, got 'sgd'"]),
    "optimizer of reinforce": (["--algo", "reinforce", "--optimizer", "adam"], ["--optimizer is a setting of --algo ppo"]),
    "unknown algo": (["--algo", "dqn"], []),  # argparse's choices
}


@pytest.mark.parametrize("case", NEW_RUN_ERRORS)
def test_bad_settings_for_a_new_run_create_nothing(tmp_path, case):
    args, fragments = NEW_RUN_ERRORS[case]
    result = run_fastpg("train", "--run-dir", tmp_path / "run", "--hidden", 8, "--max-steps", 64, "--workers", 1,
                        *args, cwd=tmp_path)
    if case == "unknown algo":  # argparse's usage message: exit 2, no traceback, nothing written
        assert result.returncode == 2 and "invalid choice: 'dqn'" in result.stderr and "Traceback" not in result.stderr
    else:
        assert_clean_error(result, *fragments)
    assert os.listdir(tmp_path) == []


def test_minibatches_as_many_as_steps_are_fine(tmp_path):
    run_dir = str(tmp_path / "run")
    run_ppo(run_dir, "--algo", "ppo", "--hidden", 8, "--lanes", 2, "--segment-steps", 8, "--minibatches", 16,
            "--max-steps", 16)
    assert load_state(run_dir)["algorithm"]["adam_steps"] == 16 * Config(algo="ppo").epochs


RESUME_ERRORS = {
    "different lanes": (["--lanes", 4], ["cannot resume with different settings", f"--lanes 4 (run has {LANES})"]),
    "different max kl": (["--max-kl", 0.5], ["--max-kl 0.5 (run has 0.02)"]),
    "a reinforce setting": (["--batch-size", 2], ["--batch-size 2"]),
    "different algo": (["--algo", "reinforce"], ["--algo reinforce (run has ppo)"]),
    "different actions": (["--actions", "RIGHT,LEFT"], ["--actions RIGHT,LEFT (run has NOOP,RIGHT,LEFT)"]),
    "unknown actions": (["--actions", "UP,DOWN"], ["--actions: UP, DOWN not among ALE/Pong-v5's actions"]),
}


@pytest.mark.parametrize("case", RESUME_ERRORS)
def test_bad_resume_settings_leave_the_run_untouched(ppo_run, tmp_path, case):
    args, fragments = RESUME_ERRORS[case]
    run_dir = str(tmp_path / "existing")
    shutil.copytree(ppo_run[0], run_dir)
    before = file_hashes(run_dir)
    result = run_fastpg("train", "--run-dir", run_dir, "--resume", "--max-steps", 2 * STEPS, *args, cwd=tmp_path)
    assert_clean_error(result, *fragments)
    assert file_hashes(run_dir) == before


# ---------------------------------------------------------------- the checkpoint, eval and video


def test_checkpoint_holds_the_lanes_as_bytes(ppo_run):
    arrays, state = checkpoint.load(ppo_run[0])
    spec = Config(algo="ppo", hidden=HIDDEN).policy()
    expected = {**spec.parameters(), **PPO.state_arrays(spec, Config(algo="ppo", hidden=HIDDEN, lanes=LANES))}
    assert sorted(arrays) == sorted(expected)
    checkpoint.check_fits(ppo_run[0], arrays, expected)
    assert state["dtypes"] == {name: "uint8" for name in LANE_ARRAYS}
    for name in PARAMETERS:
        assert arrays[name].dtype == np.float64 and arrays[f"adam_m_{name}"].dtype == np.float64
    lanes = state["algorithm"]["lanes"]
    assert len(lanes) == LANES
    emulator_bytes = [lane["emulator_bytes"] for lane in lanes]
    assert arrays["lane_emulators"].shape == (LANES, max(emulator_bytes)) and min(emulator_bytes) > 0
    assert arrays["lane_screens"].shape == (LANES, 210, 160)
    assert arrays["lane_previous"].shape == (LANES, 6400)
    for i, lane in enumerate(lanes):
        assert lane["has_previous"]  # mid-episode at the run's end
        assert set(np.unique(arrays["lane_previous"][i])) <= {0, 1}
        assert np.any(arrays["lane_emulators"][i]) and np.any(arrays["lane_screens"][i])
        assert not np.any(arrays["lane_emulators"][i, lane["emulator_bytes"]:])  # padding
    defaults = Config(algo="ppo")
    assert state["algorithm"]["adam_steps"] == state["updates"] * defaults.epochs * defaults.minibatches
    assert load_state(ppo_run[0]) == state


def test_eval_and_video_of_a_ppo_run(ppo_run, tmp_path):
    run_dir = ppo_run[0]
    result = run_fastpg("eval", run_dir, "--games", 1, "--workers", 1, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["games"] == 1 and summary["checkpoint_episodes"] == load_state(run_dir)["episodes"]
    assert max(summary["points_for"], summary["points_against"]) == 21  # a whole game of Pong
    assert summary["mean_length"] > 100

    out = tmp_path / "play.gif"
    result = run_fastpg("video", run_dir, "-o", out, "--max-frames", 20, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote {out}: 20 frames, 40 agent steps, "), result.stdout
    from PIL import Image

    with Image.open(out) as gif:
        assert gif.n_frames == 20


def test_plot_updates_draws_every_update_from_updates_csv_or_else_the_metrics_rows(ppo_run, reference_run, tmp_path):
    pytest.importorskip("matplotlib")
    from fastpg.viz import VizError, plot_curves

    def update_panel_x(run_dir):
        fig = plot_curves([run_dir], str(tmp_path / "updates.png"), updates=True)
        kl_axes = [ax for ax in fig.axes if ax.get_title().startswith("mean KL")]
        assert len(kl_axes) == 1
        return [line.get_xdata().tolist() for line in kl_axes[0].get_lines()]

    run_dir = ppo_run[0]
    assert update_panel_x(run_dir) == [[float(row["env_steps"]) for row in update_rows(run_dir)]]
    older = str(tmp_path / "before-updates-csv")  # a run from before updates.csv: metrics.csv's update columns
    shutil.copytree(run_dir, older)
    os.remove(os.path.join(older, "updates.csv"))
    assert update_panel_x(older) == [[float(row["env_steps"]) for row in metric_rows(run_dir)]]
    with pytest.raises(VizError, match="none of these runs has update statistics"):
        plot_curves([reference_run[0]], str(tmp_path / "reinforce.png"), updates=True)


def test_weights_of_a_ppo_run_of_two_or_three_actions(ppo_run, runs, tmp_path):
    pytest.importorskip("matplotlib")
    two_actions = str(runs / "ppo-two-actions")
    run_ppo(two_actions, *PPO_OPTIONS, "--actions", "RIGHT,LEFT", "--max-steps", BATCH_STEPS)
    for name, run_dir in (("two", two_actions), ("three", ppo_run[0])):
        result = run_fastpg("weights", run_dir, "-o", tmp_path / f"{name}.png", "--neurons", 4, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path)) == ["three-w2.png", "three.png", "two-w2.png", "two.png"]
    result = run_fastpg("weights", ppo_run[0], "-o", tmp_path / "noop.png", "--neurons", 4, "--contrast", "noop, left",
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    result = run_fastpg("weights", ppo_run[0], "-o", tmp_path / "fire.png", "--contrast", "RIGHT,FIRE", cwd=tmp_path)
    assert result.returncode == 2 and "--contrast must name two distinct actions" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "fire.png").exists()


def test_pong_plays_noop_up_and_down_by_default_and_older_runs_keep_up_and_down(ppo_run, runs):
    assert load_state(ppo_run[0])["config"]["actions"] == "NOOP,RIGHT,LEFT"  # a new run saves them by name
    assert load_arrays(ppo_run[0])["W_pi"].shape == (3, HIDDEN)
    saved_before_0_18 = Config.of_checkpoint({"algo": "ppo", "actions": None}, "run")
    assert saved_before_0_18.actions == "RIGHT,LEFT" and saved_before_0_18.policy().actions == (2, 3)
    assert Config.of_checkpoint({"algo": "ppo", "env": "ALE/Breakout-v5", "actions": None}, "run").actions is None
    assert Config.of_checkpoint({"algo": "reinforce", "actions": None}, "run").policy().actions == (2, 3)
    assert Config.of_checkpoint({"algo": "ppo", "actions": "RIGHT,LEFT"}, "run").actions == "RIGHT,LEFT"
    resumed = str(runs / "ppo-actions-resumed")  # the run's own actions, spelled otherwise, are no conflict
    shutil.copytree(ppo_run[0], resumed)
    run_ppo(resumed, "--resume", "--actions", " noop,right , LEFT", "--max-steps", STEPS + BATCH_STEPS)
    assert load_state(resumed)["env_steps"] == STEPS + BATCH_STEPS


# ---------------------------------------------------------------- metrics.csv


def test_update_columns_are_empty_before_the_first_update_then_filled(runs):
    """One lane of 1,280-step segments: the first episode ends in the first batch, played (as the
    second is with --policy-lag 1) with the initial weights, which no update made.

    The run is stopped after the first batch, its metrics.csv rewritten with only the 6 columns of
    fastpg 0.2, and resumed: the old rows are kept (their update columns empty), those of batches
    played with updated weights are full, and the result is the run played straight through.
    """
    options = ("--algo", "ppo", "--hidden", HIDDEN, "--lanes", 1, "--segment-steps", 1280)
    initial_batches = 1 + Config(algo="ppo").policy_lag
    straight = str(runs / "ppo-one-lane")
    run_ppo(straight, *options, "--max-steps", 1280 * (initial_batches + 1))
    rows = metric_rows(straight)
    first_batch = [row for row in rows if int(row["env_steps"]) <= 1280 * initial_batches]
    assert len(first_batch) >= 1 and len(rows) > len(first_batch), rows  # the test's premise
    for row in rows:
        filled = [row[name] != "" for name in UPDATE_COLUMNS]
        assert filled == [row not in first_batch] * len(UPDATE_COLUMNS), row
    for row in rows[len(first_batch):]:
        assert 0 < float(row["entropy"]) <= math.log(3) + 1e-6, row  # Pong's three actions
        assert 0 <= float(row["clip_fraction"]) <= 1, row
        assert float(row["value_loss"]) >= 0, row

    resumed = str(runs / "ppo-one-lane-resumed")
    run_ppo(resumed, *options, "--max-steps", 1280)
    path = os.path.join(resumed, "metrics.csv")
    old_rows = [[row[name] for name in EPISODE_COLUMNS] for row in metric_rows(resumed)]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(EPISODE_COLUMNS)
        writer.writerows(old_rows)
    run_ppo(resumed, "--resume", "--max-steps", 1280 * (initial_batches + 1))
    with open(path, newline="") as f:
        assert tuple(next(csv.reader(f))) == COLUMNS
    resumed_rows = metric_rows(resumed)
    assert [[row[name] for name in EPISODE_COLUMNS] for row in resumed_rows[:len(old_rows)]] == old_rows
    assert determined(resumed_rows) == determined(rows)
    assert_same_run(resumed, straight)


def test_updates_csv_has_every_update_with_its_batch_schedule_and_statistics(ppo_run):
    """One row per update, numbered from 1, at the env steps its batch ended, with the learning rate and
    entropy weight of the schedule at that batch's start; each metrics row's update columns are one of them."""
    run_dir = ppo_run[0]
    config = Config(**load_state(run_dir)["config"])
    rows = update_rows(run_dir)
    assert tuple(rows[0]) == UPDATE_LOG_COLUMNS
    assert [int(row["update"]) for row in rows] == list(range(1, STEPS // BATCH_STEPS + 1))
    assert [int(row["env_steps"]) for row in rows] == list(range(BATCH_STEPS, STEPS + 1, BATCH_STEPS))
    for k, row in enumerate(rows):
        before = k * BATCH_STEPS
        assert float(row["learning_rate"]) == pytest.approx(
            reference.linear_decay(config.learning_rate, before, config.lr_decay_steps), rel=1e-5)
        assert float(row["ent_coef"]) == pytest.approx(
            reference.linear_decay(config.ent_coef, before, config.ent_decay_steps), rel=1e-5)
        assert float(row["step_fraction"]) == 1.0 and 0 < float(row["entropy"]) <= math.log(3) + 1e-6, row
    assert len({row["kl"] for row in rows}) == len(rows)  # each update's own
    logged = {tuple(row[name] for name in UPDATE_COLUMNS) for row in rows}
    for row in metric_rows(run_dir):
        assert tuple(row[name] for name in UPDATE_COLUMNS) in logged, row


def test_reinforce_runs_write_no_updates_csv(reference_run):
    assert os.path.exists(os.path.join(reference_run[0], "metrics.csv"))
    assert not os.path.exists(os.path.join(reference_run[0], "updates.csv"))


def test_update_log_of_a_run_from_before_it_starts_with_the_checkpoints_update(tmp_path):
    """A checkpoint of fastpg 0.22.2 or older: no updates.csv, and statistics without the schedule's values."""
    path = str(tmp_path / "updates.csv")
    old_stats = {name: 0.25 for name in UPDATE_COLUMNS}
    log = UpdateLog(path, keep_updates=7, checkpoint_env_steps=28672, checkpoint_stats=old_stats)
    log.write(8, 32768, {**old_stats, "learning_rate": 1e-3, "ent_coef": 0.05})
    log.close()
    with open(path, newline="") as f:
        lines = list(csv.reader(f))
    assert lines == [list(UPDATE_LOG_COLUMNS), ["7", "28672", "", ""] + ["0.25"] * len(UPDATE_COLUMNS),
                     ["8", "32768", "0.001", "0.05"] + ["0.25"] * len(UPDATE_COLUMNS)]
    columns = metrics.read(path, UPDATE_LOG_COLUMNS)
    assert columns["update"] == [7.0, 8.0] and math.isnan(columns["learning_rate"][0])
    assert columns["learning_rate"][1] == 1e-3
    # A run at its first batch has no update yet to log; a new run's log starts empty.
    UpdateLog(path, keep_updates=0, checkpoint_env_steps=0, checkpoint_stats=None).close()
    assert metrics.read(path, UPDATE_LOG_COLUMNS)["update"] == []


def test_metrics_log_keeps_old_six_column_rows_on_resume(tmp_path):
    path = str(tmp_path / "metrics.csv")
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(EPISODE_COLUMNS)
        writer.writerows([(1, 900, -21, "-21.000000", "1.000", "900.0"), (2, 1800, -20, "-20.990000", "2.000", "900.0"),
                          (3, 2700, -21, "-20.990100", "3.000", "900.0")])  # 3: after the checkpoint
    log = MetricsLog(path, keep_episodes=2)
    stats = {name: 0.5 for name in UPDATE_COLUMNS}
    log.write(3, 2600, -19.0, -20.97, 4.0, 650.0, stats)
    log.close()
    with open(path, newline="") as f:
        lines = list(csv.reader(f))
    assert lines == [list(COLUMNS),
                     ["1", "900", "-21", "-21.000000", "1.000", "900.0"] + [""] * len(UPDATE_COLUMNS),
                     ["2", "1800", "-20", "-20.990000", "2.000", "900.0"] + [""] * len(UPDATE_COLUMNS),
                     ["3", "2600", "-19", "-20.970000", "4.000", "650.0"] + ["0.5"] * len(UPDATE_COLUMNS)]
    columns = metrics.read(path)
    assert columns["episode"] == [1.0, 2.0, 3.0]
    for name in UPDATE_COLUMNS:
        assert math.isnan(columns[name][0]) and math.isnan(columns[name][1]) and columns[name][2] == 0.5
