"""`fastpg train` refuses bad arguments with one clean error line and changes nothing: bad options
for a new run create no file, bad resumes (and a missing or corrupt checkpoint) leave the run's
files byte for byte as they were, an existing run needs --resume, an unwritable --run-dir."""
import os
import shutil

import pytest

from helpers import EPISODES, assert_clean_error, file_hashes, run_fastpg


@pytest.fixture
def existing_run(reference_run, tmp_path):
    """A private copy of the session's reference run (4 episodes, batch 2, hidden 8)."""
    run_dir = str(tmp_path / "existing")
    shutil.copytree(reference_run[0], run_dir)
    return run_dir


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
