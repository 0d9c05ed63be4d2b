"""Same results as fastpg before the seams refactor, and its checkpoints still work.

tests/data/ holds a run directory and weights made by that code (see its README).
"""
import json
import os
import shutil

import numpy as np
import pytest

from fastpg import checkpoint
from fastpg.evaluate import evaluate
from fastpg.policy import PolicySpec

from helpers import load_arrays, load_state, run_fastpg, run_train  # noqa: E402  (tests/ is on sys.path)

DATA = os.path.join(os.path.dirname(__file__), "data")
V1_RUN = os.path.join(DATA, "v1-run")
SETTINGS = ("--seed", "5")  # with hidden 3, batch 2: the reference runs' settings
REFERENCE_ARRAYS = ("W1", "W2", "cache_W1", "cache_W2")


@pytest.fixture(scope="module")
def reference_weights():
    with np.load(os.path.join(DATA, "v1-after-6-episodes.npz"), allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def assert_same_weights(run_dir, reference, backend):
    """The compiled backend's arrays bit for bit. The numpy backend's within rounding: its dense
    products go through the BLAS, whose kernel, and so summation order, depends on the CPU (the
    reference was made on an AVX2 machine; an AVX-512 one differs in the last bits)."""
    arrays = load_arrays(run_dir)
    for name in REFERENCE_ARRAYS:
        if backend == "cython":
            np.testing.assert_array_equal(arrays[name], reference[f"{backend}_{name}"], err_msg=name)
        else:
            np.testing.assert_allclose(arrays[name], reference[f"{backend}_{name}"], rtol=1e-12, atol=1e-15,
                                       err_msg=name)


@pytest.mark.parametrize("workers, backend", [(1, "cython"), (2, "cython"), (1, "numpy")])
def test_same_weights_as_before(tmp_path, reference_weights, workers, backend):
    run_dir = str(tmp_path / "run")
    run_train(run_dir, *SETTINGS, "--backend", backend, episodes=6, hidden=3, workers=workers)
    assert_same_weights(run_dir, reference_weights, backend)


@pytest.fixture
def v1_run(tmp_path):
    """A copy of the format-1 run directory (4 episodes)."""
    path = tmp_path / "v1-run"
    shutil.copytree(V1_RUN, path)
    return str(path)


def test_a_format_1_checkpoint_loads_with_its_arrays_declared():
    arrays, state = checkpoint.load(V1_RUN)
    assert state["format"] == checkpoint.FORMAT_1
    assert state["arrays"] == {"W1": [3, 6400], "W2": [3], "cache_W1": [3, 6400], "cache_W2": [3]}
    assert sorted(arrays) == sorted(REFERENCE_ARRAYS)


def test_a_format_1_run_resumes_exactly_and_is_saved_as_format_2(v1_run, reference_weights):
    result = run_fastpg("train", "--run-dir", v1_run, "--resume", "--episodes", 6, "--workers", 1,
                        cwd=os.path.dirname(v1_run))
    assert result.returncode == 0, result.stderr
    assert_same_weights(v1_run, reference_weights, "cython")
    state = load_state(v1_run)
    assert state["format"] == checkpoint.FORMAT and state["episodes"] == 6
    assert state["config"]["algo"] == "reinforce"


@pytest.mark.parametrize("greedy, workers", [(False, 2), (True, 1)])
def test_a_format_1_run_evaluates_as_before(greedy, workers):
    with open(os.path.join(DATA, "v1-run-eval.json")) as f:
        expected = json.load(f)["greedy" if greedy else "stochastic"]
    result = run_fastpg("eval", V1_RUN, "--games", 3, "--workers", workers, "--json",
                        *(["--greedy"] if greedy else []), cwd=DATA)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["per_game"] == expected


def test_a_format_1_run_draws(tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("imageio")
    pytest.importorskip("PIL")
    for command, output in (("weights", "w.png"), ("video", "v.gif"), ("plot", "p.png")):
        extra = ("--max-frames", 3) if command == "video" else ("--minus-init",) if command == "weights" else ()
        result = run_fastpg(command, V1_RUN, "-o", tmp_path / output, *extra, cwd=tmp_path)
        assert result.returncode == 0, (command, result.stderr)
        assert os.path.getsize(tmp_path / output) > 0


def test_eval_gives_the_same_games_on_either_backend():
    arrays, state = checkpoint.load(V1_RUN)
    spec = PolicySpec(hidden=3)
    params = {name: arrays[name] for name in spec.parameters()}
    results = {backend: evaluate(params, spec, "ALE/Pong-v5", 2, seed=3, backend=backend)
               for backend in ("cython", "numpy")}
    assert results["cython"] == results["numpy"]
    assert all(result.finished and max(result.points_for, result.points_against) == 21
               for result in results["cython"])
