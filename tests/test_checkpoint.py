"""fastpg.checkpoint: what a real run writes, the save/load round trip, atomic writes, and the
files load refuses (missing, truncated, garbage, wrong shapes, non-finite, pickled, foreign)."""
import os

import numpy as np
import pytest

from fastpg import checkpoint

from helpers import ARRAYS, EPISODES, HIDDEN, file_hashes, load_arrays


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
    assert state == {**small_state(), "format": checkpoint.FORMAT,
                     "arrays": {name: list(array.shape) for name, array in arrays.items()}}
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
    with pytest.raises(checkpoint.CheckpointError, match=r"^cannot read .*checkpoint\.npz: ") as info:
        checkpoint.load(str(tmp_path))
    assert "\n" not in str(info.value)


def test_load_rejects_garbage(tmp_path):
    (tmp_path / "checkpoint.npz").write_bytes(b"not a zip file at all" * 100)
    with pytest.raises(checkpoint.CheckpointError, match="cannot read"):
        checkpoint.load(str(tmp_path))


def test_load_rejects_arrays_that_differ_from_the_state_record(tmp_path):
    checkpoint.save(str(tmp_path), small_arrays(n_hidden=3), small_state(n_hidden=3))
    path = tmp_path / "checkpoint.npz"
    with np.load(path, allow_pickle=False) as data:
        payload = {name: data[name] for name in data.files}
    payload["W2"] = np.zeros(5)  # the state still records W2 as (3,)
    with open(path, "wb") as f:
        np.savez(f, **payload)
    with pytest.raises(checkpoint.CheckpointError, match=r"W2 is float64 \(5,\), expected float64 \(3,\)"):
        checkpoint.load(str(tmp_path))


def test_arrays_that_do_not_fit_the_run_are_rejected():
    from fastpg.policy import PolicySpec
    from fastpg.reinforce import Reinforce

    spec = PolicySpec(4)
    needs = {**spec.parameters(), **Reinforce.state_arrays(spec)}
    arrays = small_arrays(n_hidden=3)
    with pytest.raises(checkpoint.CheckpointError, match=r"W1 is \(3, 6400\), this run needs \(4, 6400\)"):
        checkpoint.check_fits("run", arrays, needs)
    with pytest.raises(checkpoint.CheckpointError, match="holds arrays W1, W2; this run needs W1, W2, cache_W1"):
        checkpoint.check_fits("run", {"W1": arrays["W1"], "W2": arrays["W2"]}, needs)
    checkpoint.check_fits("run", small_arrays(n_hidden=4), needs)  # fits: no error


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
