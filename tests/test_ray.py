"""fastpg train --ray: Ray actors give the same run as local workers, a killed actor costs a
replay and nothing else, Ray stays optional (local training never imports it; without it
--ray names the install command), and benchmarks/bench_ray.py runs.

Runs are tiny (hidden 8, 2 or 4 random-policy episodes of ALE/Pong-v5). One local Ray
instance with 2 CPUs serves the in-process tests; the CLI tests and the benchmark start
their own before that one exists, so two never run at once. CI installs Ray (the test extra); elsewhere the tests
that need it are skipped.
"""
import io
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import fastpg
from fastpg import checkpoint, ray_pool
from fastpg.ray_cluster import init_ray
from fastpg.policy import PolicySpec
from fastpg.rollout import Player, PlayerSettings
from fastpg.lanes import Segment
from fastpg.scheduler import Scheduler, StopRequested, WorkerError
from fastpg.train import train

from helpers import cli_env, load_arrays, run_fastpg

ENV = "ALE/Pong-v5"
HIDDEN = 8
BATCH = 2
EPISODES = 4
TIMEOUT = 240  # seconds; a run that takes longer is hung, not slow
ARRAYS = ("W1", "W2", "cache_W1", "cache_W2")
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastpg.__file__)))


def run_python(code, cwd=PACKAGE_ROOT):
    """Run `python -c code`; from the package's parent by default, so it imports the suite's fastpg."""
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=cli_env(), capture_output=True, text=True,
                          timeout=TIMEOUT)


def train_in_process(run_dir, **options):
    """fastpg.train.train with the module's tiny settings; returns (progress text, final state)."""
    stream = io.StringIO()
    state, interrupted = train({"algo": "reinforce", "hidden": HIDDEN, "batch_size": BATCH, "env": ENV}, str(run_dir),
                               episodes=EPISODES, progress_stream=stream, **options)
    assert not interrupted
    return stream.getvalue(), state


def assert_same_weights(run_dir, reference_dir):
    arrays, state = checkpoint.load(str(run_dir))
    reference, reference_state = checkpoint.load(str(reference_dir))
    for name in ARRAYS:
        np.testing.assert_allclose(arrays[name], reference[name], rtol=1e-9, atol=0, err_msg=name)
    for key in ("episodes", "env_steps", "updates", "running_reward"):
        assert state[key] == reference_state[key], key


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory):
    """A run directory: the module's run played by one local worker process."""
    run_dir = tmp_path_factory.mktemp("local") / "run"
    train_in_process(run_dir, workers=1)
    return run_dir


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray instance with 2 CPUs for the module, as CI has; shut down after."""
    ray = pytest.importorskip("ray")
    init_ray(num_cpus=2, include_dashboard=False, logging_level="warning")
    yield ray
    ray.shutdown()


# ---------------------------------------------------------------- Ray optional


def test_local_training_does_not_import_ray(tmp_path):
    code = (
        "import sys\n"
        "from fastpg.cli import main\n"
        f"rc = main(['train', '--run-dir', {str(tmp_path / 'run')!r}, '--workers', '1', '--episodes', '2',\n"
        "           '--algo', 'reinforce', '--batch-size', '2', '--hidden', '8'])\n"
        "print('exit', rc)\n"
        "print('ray imported:', sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert "exit 0" in result.stdout
    assert "ray imported: []" in result.stdout


def test_ray_option_without_ray_names_the_install_command(tmp_path):
    code = (
        "import sys\n"
        "sys.modules['ray'] = None  # as if Ray were not installed: `import ray` raises ImportError\n"
        "from fastpg.cli import main\n"
        f"sys.exit(main(['train', '--run-dir', {str(tmp_path / 'run')!r}, '--ray', '--episodes', '2',\n"
        "                '--algo', 'reinforce', '--batch-size', '2', '--hidden', '8']))\n"
    )
    result = run_python(code)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("fastpg train: error: ") and 'pip install "fastpg[ray]"' in line, line
    assert not (tmp_path / "run").exists()  # nothing was started


def test_an_address_where_nothing_answers_is_a_one_line_error(tmp_path):
    pytest.importorskip("ray")
    result = run_fastpg("train", "--run-dir", tmp_path / "run", "--ray", "127.0.0.1:1", "--episodes", 2,
                        "--batch-size", 2, "--hidden", 8, cwd=tmp_path, timeout=TIMEOUT)
    assert result.returncode == 2
    assert "fastpg train: error: cannot reach the Ray cluster at 127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------- same results as local workers


def test_cli_ray_run_equals_a_local_one_worker_run(tmp_path, local_reference):
    """`fastpg train --ray` (its own local Ray, 2 actors) gives the local --workers 1 weights."""
    pytest.importorskip("ray")
    run_dir = tmp_path / "ray-run"
    result = run_fastpg("train", "--run-dir", run_dir, "--ray", "--workers", 2, "--episodes", EPISODES,
                        "--batch-size", BATCH, "--hidden", HIDDEN, "--env", ENV,
                        cwd=tmp_path, timeout=TIMEOUT)  # a scratch cwd: the child imports the suite's fastpg
    assert result.returncode == 0, result.stderr
    assert " steps/s, 0 replayed episodes); " in result.stderr.strip().splitlines()[-1]  # not 10 or 20
    assert_same_weights(run_dir, local_reference)


def test_actor_critic_on_ray_equals_a_local_one_worker_run(tmp_path):
    """--algo ppo's segments on 2 Ray actors give exactly the local --workers 1 checkpoint, lanes included."""
    pytest.importorskip("ray")
    options = ("--algo", "ppo", "--hidden", HIDDEN, "--lanes", 4, "--segment-steps", 64, "--max-steps", 768,
               "--env", ENV)
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    for run_dir, where in ((local, ("--workers", 1)), (on_ray, ("--ray", "--workers", 2))):
        result = run_fastpg("train", "--run-dir", run_dir, *where, *options, cwd=tmp_path, timeout=TIMEOUT)
        assert result.returncode == 0, result.stderr
    expected, got = load_arrays(local), load_arrays(on_ray)
    assert sorted(got) == sorted(expected) and "lane_emulators" in got
    for name in expected:
        if name != "state":  # the run record: wall-clock seconds differ
            np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


def test_the_ray_benchmark_runs_end_to_end(tmp_path):
    """benchmarks/bench_ray.py, tiny: its local and Ray runs and its cost measurements complete, with rates
    and costs to show (it once broke unseen, when the actor-critic became the default). It starts its own
    Ray, before the module's exists."""
    pytest.importorskip("ray")
    out = tmp_path / "bench.json"
    bench = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "bench_ray.py")
    result = subprocess.run([sys.executable, bench, "--steps", "2000", "--repeats", "1", "--episodes", "1",
                             "--hidden", str(HIDDEN), "--json", str(out)], cwd=tmp_path, env=cli_env(),
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    with open(out) as f:
        numbers = json.load(f)
    assert all(rate > 0 for rates in numbers["rates"].values() for rate in rates)
    assert numbers["costs"]["put_ms"] > 0 and numbers["costs"]["episode_bytes_per_step"] > 0
    assert "ray / local" in result.stdout


def test_actor_critic_actors_start_the_next_batch_early(ray_cluster, monkeypatch, tmp_path):
    """On Ray, as locally, the next batch's segments go out before the batch begins, playing the actors'
    second set of weights; each batch's weights go into the object store once, not once a segment; and the
    run is a local one-worker run."""
    settings = {"algo": "ppo", "hidden": HIDDEN, "lanes": 4, "segment_steps": 64, "env": ENV}
    batches = 5
    early, puts = [], []
    prefetch = Scheduler.prefetch
    monkeypatch.setattr(Scheduler, "prefetch", lambda pool, task: (early.append(task), prefetch(pool, task))[1])
    put = ray_cluster.put
    monkeypatch.setattr(ray_cluster, "put", lambda value, **kwargs: (puts.append(value), put(value, **kwargs))[1])
    steps = batches * 4 * 64
    train(settings, str(tmp_path / "ray"), max_steps=steps, workers=2, ray_address="local",
          progress_stream=io.StringIO())
    assert len(early) >= 4 and {task.weights for task in early} == {0, 1}
    assert all(isinstance(task, Segment) and task.batch >= 2 for task in early)
    # One put per batch, and perhaps one more for early segments of a batch the stop then dropped.
    assert batches <= len(puts) <= batches + 1
    monkeypatch.undo()
    train(settings, str(tmp_path / "local"), max_steps=steps, workers=1, progress_stream=io.StringIO())
    expected, got = load_arrays(tmp_path / "local"), load_arrays(tmp_path / "ray")
    assert sorted(got) == sorted(expected)
    for name in expected:
        if name != "state":  # the run record: wall-clock seconds differ
            np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


def test_ray_pool_plays_the_episodes_local_workers_play(ray_cluster):
    """Episodes come back in index order, equal to play_episode's in this process; a batch
    abandoned by a stop request does not leak into the next one."""
    rng = np.random.default_rng(7)
    params = {"W1": np.asfortranarray(rng.standard_normal((HIDDEN, 6400)) / 80),
              "W2": rng.standard_normal(HIDDEN) / np.sqrt(HIDDEN)}
    settings = PlayerSettings(PolicySpec(HIDDEN), ENV, seed=5)
    with ray_pool.RayPool(2, settings) as pool:
        for name, value in params.items():
            pool.params[name][...] = value
        with pytest.raises(StopRequested):
            list(pool.play(range(2), should_stop=lambda: True))
        episodes = list(pool.play(range(3, 5)))
        assert pool.replays == 0
    player = Player(settings, params)
    for index, episode in zip(range(3, 5), episodes):
        expected = player.play(index)
        assert episode["index"] == index
        assert episode.keys() == expected.keys()
        for key in ("indices", "signs", "offsets", "dlogp", "rewards"):
            np.testing.assert_array_equal(episode[key], expected[key], err_msg=key)


# ---------------------------------------------------------------- actor failure


def kill_actor_after_submit(monkeypatch, episode, times):
    """Make the Ray transport SIGKILL the actor it has just handed `episode`, on its first `times` attempts."""
    original = ray_pool.RayTransport.send
    killed = []

    def send_then_kill(self, actor, index):
        original(self, actor, index)
        if index == episode and len(killed) < times:
            killed.append(actor.info["pid"])
            os.kill(actor.info["pid"], signal.SIGKILL)

    monkeypatch.setattr(ray_pool.RayTransport, "send", send_then_kill)
    return killed


def test_a_killed_actor_is_replaced_and_its_episode_replayed(ray_cluster, monkeypatch, tmp_path, local_reference):
    killed = kill_actor_after_submit(monkeypatch, episode=1, times=1)
    text, state = train_in_process(tmp_path / "run", workers=2, ray_address="local")
    assert len(killed) == 1
    assert f"actor {killed[0]} on " in text and "died" in text
    assert "while playing episode 1; replaying it with the same seed" in text
    assert " steps/s, 1 replayed episodes); " in text.strip().splitlines()[-1]  # not 11 or 21
    assert_same_weights(tmp_path / "run", local_reference)


def test_an_episode_that_keeps_losing_its_actor_fails_the_run(ray_cluster, monkeypatch, tmp_path):
    killed = kill_actor_after_submit(monkeypatch, episode=0, times=10)
    with pytest.raises(WorkerError, match="episode 0 killed its worker 3 times"):
        train_in_process(tmp_path / "run", workers=2, ray_address="local")
    assert len(killed) == 3


def test_more_workers_than_cluster_cpus_is_a_one_line_error(ray_cluster, tmp_path, capsys):
    from fastpg.cli import main

    rc = main(["train", "--run-dir", str(tmp_path / "run"), "--ray", "--workers", "3", "--episodes", "2",
               "--algo", "reinforce", "--batch-size", "2", "--hidden", "8"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "--workers 3: the Ray cluster has 2 CPUs" in err
    assert not (tmp_path / "run" / "metrics.csv").exists()
