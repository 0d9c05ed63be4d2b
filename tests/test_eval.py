"""fastpg eval: playing and scoring games with a checkpoint's policy."""
import json

import numpy as np
import pytest

from fastpg import checkpoint, cli, rollout
from fastpg.constants import DOWN, UP
from fastpg.evaluate import GameResult, evaluate, summarize
from fastpg.kernels import PolicyStepper
from fastpg.policy import PolicySpec
from fastpg.rollout import Player, PlayerSettings

from helpers import run_fastpg

ENV = "ALE/Pong-v5"


@pytest.fixture(scope="module")
def policy(tiny_run):
    """(params, spec) of the tiny run's checkpoint."""
    arrays, _ = checkpoint.load(str(tiny_run))
    return {"W1": arrays["W1"], "W2": arrays["W2"]}, PolicySpec(hidden=arrays["W2"].shape[0])


def player(policy, seed, greedy=False):
    params, spec = policy
    return Player(PlayerSettings(spec, ENV, seed=seed, greedy=greedy, record=False), params)


def test_an_eval_game_replays_the_training_episode(policy):
    # Same weights, seed and index: eval draws exactly as training does, and keeps no record.
    params, spec = policy
    result = player(policy, seed=3).play(5)
    episode = rollout.play_episode(player(policy, 3).game, PolicyStepper(params["W1"], params["W2"]), 3, 5)
    np.testing.assert_array_equal(result["rewards"], episode["rewards"])
    assert set(result) == {"rewards", "index", "finished"}
    game = GameResult.of(result)
    assert game.steps == len(episode["rewards"])
    assert game.points_for == np.sum(episode["rewards"] > 0)
    assert game.points_against == np.sum(episode["rewards"] < 0)
    assert game.finished and max(game.points_for, game.points_against) == 21


def test_greedy_play_takes_the_likelier_action(policy):
    greedy = player(policy, seed=0, greedy=True)
    seen = []

    def on_step(frame, stepper, action, rewards):
        assert frame.shape == (210, 160, 3)
        seen.append((stepper.p, action))

    result = GameResult.of(greedy.play(0, max_steps=200, on_step=on_step))
    assert result == GameResult(result.points_for, result.points_against, 200, finished=False)
    assert len(seen) == 200
    assert all(0.0 <= p <= 1.0 and action == (UP if p >= 0.5 else DOWN) for p, action in seen)
    again = GameResult.of(greedy.play(0, max_steps=200))
    assert again == result


def test_parallel_evaluation_matches_serial(policy):
    params, spec = policy
    parallel = evaluate(params, spec, ENV, games=2, seed=7, workers=2)
    serial = player(policy, seed=7)
    assert parallel == [GameResult.of(serial.play(index)) for index in range(2)]


def test_bad_environment_fails_before_any_worker_starts(policy):
    from fastpg.env import EnvError

    params, spec = policy
    with pytest.raises(EnvError, match="unknown environment id"):
        evaluate(params, spec, "ALE/NoSuchGame-v5", games=2, workers=2)


def test_summarize():
    results = [GameResult(21, 5, 3000), GameResult(3, 21, 1000), GameResult(10, 10, 27000, finished=False)]
    summary = summarize(results)
    assert summary["games"] == 3
    assert (summary["wins"], summary["losses"], summary["draws"]) == (1, 1, 1)
    assert summary["win_rate"] == pytest.approx(1 / 3)
    assert summary["mean_score"] == pytest.approx((16 - 18 + 0) / 3)
    assert (summary["points_for"], summary["points_against"]) == (34, 36)
    assert summary["mean_length"] == pytest.approx(31000 / 3)
    assert summary["per_game"][1] == {"points_for": 3, "points_against": 21, "steps": 1000}


def test_eval_json_is_the_last_line(tiny_run, tmp_path):
    done = run_fastpg("eval", str(tiny_run), "--games", "2", "--workers", "1", "--greedy", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["games"] == 2 and summary["policy"] == "greedy" and summary["checkpoint_episodes"] == 2
    per_game = summary["per_game"]
    assert len(per_game) == 2
    # The totals are those of the games listed.
    wins = sum(game["points_for"] > game["points_against"] for game in per_game)
    losses = sum(game["points_for"] < game["points_against"] for game in per_game)
    assert (summary["wins"], summary["losses"], summary["draws"]) == (wins, losses, 2 - wins - losses)
    assert summary["win_rate"] == wins / 2
    assert summary["points_for"] == sum(game["points_for"] for game in per_game)
    assert summary["points_against"] == sum(game["points_against"] for game in per_game)
    assert summary["mean_score"] == (summary["points_for"] - summary["points_against"]) / 2
    assert summary["mean_length"] == sum(game["steps"] for game in per_game) / 2


def test_eval_prints_a_summary(tiny_run, capsys):
    assert cli.main(["eval", str(tiny_run), "--games", "1", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    for text in ("win rate", "mean score", "points", "mean game length", "2 episodes"):
        assert text in out


@pytest.mark.parametrize("case", ["missing", "corrupt", "games"])
def test_eval_errors_are_one_line(case, tiny_run, tmp_path, capsys):
    run = str(tiny_run)
    extra = []
    if case == "missing":
        run = str(tmp_path / "nowhere")
    elif case == "corrupt":
        run = str(tmp_path / "checkpoint.npz")
        with open(run, "wb") as f:
            f.write(b"PK\x03\x04 not really a zip file")
    else:
        extra = ["--games", "0"]
    assert cli.main(["eval", run, "--workers", "1", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fastpg eval: error: ")
