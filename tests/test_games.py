"""Games other than Pong: each game's screen rule and actions, the generic rule and its refusals,
the FIRE-to-serve rule, REINFORCE's returns outside Pong, and every command on Breakout with both
algorithms (and on the other supported games with the default one).

Runs are tiny (8 hidden units, a few hundred steps): they check that each game is played by its
own rule and that the guarantees hold there too, not that anything is learned.
"""
import json
import os

import numpy as np
import pytest

from fastpg import reference
from fastpg.backends import get_backend
from fastpg.config import Config
from fastpg.env import AtariGame
from fastpg.games import (KNOWN_GAMES, FrameRule, _generic_profile, action_names, game_profile, parse_action_names,
                          resolve_actions)
from fastpg.reinforce import Reinforce

from helpers import assert_clean_error, load_arrays, load_state, run_fastpg

TINY_PPO = ("--algo", "ppo", "--hidden", 8, "--lanes", 2, "--segment-steps", 64)
TINY_REINFORCE = ("--algo", "reinforce", "--hidden", 8, "--batch-size", 2)


# ---------------------------------------------------------------- rules and actions


def test_pong_keeps_the_seeds_rule_under_both_of_its_ids():
    for env_id in ("ALE/Pong-v5", "Pong-v0"):
        profile = game_profile(env_id)
        assert profile.frame == FrameRule(35, (0, 144, 109)) and profile.rallies and not profile.generic
        red = np.arange(256, dtype=np.uint8)
        np.testing.assert_array_equal(profile.frame.is_foreground(red), reference.is_foreground(red))
        assert resolve_actions(env_id, None, "reinforce") == (2, 3)  # up and down, as the seed
        assert resolve_actions(env_id, None, "ppo") == (0, 2, 3)  # and, since 0.18, NOOP


def test_known_games_declare_a_crop_inside_the_screen_and_their_own_background():
    for name, profile in KNOWN_GAMES.items():
        assert 0 <= profile.frame.first_row <= 50, name
        assert profile.frame.table().sum() == 256 - len(profile.frame.background), name
    assert game_profile("ALE/Breakout-v5").fire_to_start and not game_profile("ALE/Breakout-v5").rallies


def test_a_crop_outside_the_screen_is_refused():
    with pytest.raises(ValueError, match=r"first_row must be an int in \[0, 50\]"):
        FrameRule(51, (0,))


def test_default_actions_are_the_whole_set_for_ppo_and_the_declared_pair_for_reinforce():
    assert action_names("ALE/Breakout-v5") == ("NOOP", "FIRE", "RIGHT", "LEFT")
    assert resolve_actions("ALE/Breakout-v5", None, "ppo") == (0, 1, 2, 3)
    assert resolve_actions("ALE/Breakout-v5", None, "reinforce") == (2, 3)
    assert resolve_actions("ALE/Freeway-v5", None, "reinforce") == (1, 0)  # UP, NOOP
    assert resolve_actions("ALE/Boxing-v5", " fire , left", "ppo") == (1, 4)  # names in any case, spaced
    assert parse_action_names(" fire , Left") == ("FIRE", "LEFT")  # the rule --actions and --contrast share


@pytest.mark.parametrize("env_id, names, algo, message", [
    ("ALE/Boxing-v5", None, "reinforce", "declares none: name them with --actions"),
    ("ALE/Breakout-v5", "FIRE,JUMP", "ppo", "JUMP not among ALE/Breakout-v5's actions (NOOP, FIRE, RIGHT, LEFT)"),
    ("ALE/Breakout-v5", "FIRE,FIRE", "ppo", "at least 2 distinct actions"),
    ("ALE/Breakout-v5", "FIRE", "ppo", "at least 2 distinct actions"),
    ("ALE/Breakout-v5", "NOOP,FIRE,LEFT", "reinforce", "exactly two actions"),
])
def test_bad_actions_are_refused_with_the_games_action_names(env_id, names, algo, message):
    with pytest.raises(ValueError, match=None) as error:
        resolve_actions(env_id, names, algo)
    assert message in str(error.value)


def test_the_generic_rule_measures_a_background_and_is_the_same_in_every_process():
    profile = _generic_profile("ALE/Tennis-v5")
    assert profile.generic and profile.frame.first_row == 25
    assert profile == _generic_profile("ALE/Tennis-v5")  # seeded probe: deterministic
    background = profile.frame.background[0]
    game = AtariGame("ALE/Tennis-v5")
    frame = game.reset(np.random.default_rng(0))[25:185:2, ::2, 0]
    assert np.count_nonzero(frame == background) > frame.size / 2  # it is the screen's main colour


@pytest.mark.parametrize("env_id, fragment", [
    ("ALE/BeamRider-v5", "pixels non-zero per difference frame"),  # dense difference frames
    ("ALE/Pitfall-v5", "covers"),  # no colour is most of the screen
])
def test_a_game_neither_rule_fits_is_refused_by_train(env_id, fragment, tmp_path):
    result = run_fastpg("train", "--env", env_id, "--run-dir", tmp_path / "run", "--max-steps", 64, cwd=tmp_path)
    assert_clean_error(result, env_id, fragment, "Supported games: Pong, Breakout")
    assert not os.path.exists(tmp_path / "run")


def test_train_states_the_rule_and_actions_it_uses(tmp_path):
    result = run_fastpg("train", "--env", "ALE/Tennis-v5", *TINY_PPO, "--run-dir", tmp_path / "run",
                        "--max-steps", 64, "--workers", 1, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    background = _generic_profile("ALE/Tennis-v5").frame.background[0]
    assert (f"ALE/Tennis-v5: the generic rule (background: the commonest colour of random play): screen rows 25-184, "
            f"background red {background}; actions NOOP, FIRE, UP") in result.stderr


# ---------------------------------------------------------------- FIRE to serve


def _steps_until_game_over(game, limit, seed=0):
    """Random RIGHT/LEFT play (never FIRE) until the game ends or ``limit`` steps."""
    rng = np.random.default_rng(seed)
    game.reset(rng)
    for step in range(1, limit + 1):
        _, _, done = game.step(int(rng.integers(2, 4)))
        if done:
            return step
    return None


def test_breakout_serves_after_a_reset_and_after_each_lost_life():
    game = AtariGame("ALE/Breakout-v5")
    steps = _steps_until_game_over(game, 3000)
    assert steps is not None and steps < 1000  # five balls served and missed
    game.fire_to_start = False  # without the rule the first ball is never served
    assert _steps_until_game_over(game, 3000) is None


def test_a_lost_life_is_reported_and_terminal_only_when_asked():
    """--life-loss terminal marks the steps that lose a life done; the game and its record are unchanged."""
    from fastpg.lanes import LanePlayer, LaneState, Segment
    from fastpg.rollout import PlayerSettings

    config = Config(env="ALE/Breakout-v5", hidden=8)
    spec = config.policy()
    player = LanePlayer(PlayerSettings(spec, config.env, unit="segment"), spec.initial_parameters(0))
    steps = []  # (lives before, lives after, lost_life, done) of each step
    game_step = player.game.step

    def step(action):
        before = player.game.ale.lives()
        result = game_step(action)
        steps.append((before, player.game.ale.lives(), player.game.lost_life, result[2]))
        return result

    player.game.step = step
    plain = player.play(Segment(0, 0, 1500, LaneState.start(0, 0)))
    life_steps = [t for t, (before, after, lost, done) in enumerate(steps) if lost]
    assert life_steps == [t for t, (before, after, lost, done) in enumerate(steps) if after < before and not done]
    assert len(life_steps) >= 4
    terminal = player.play(Segment(0, 0, 1500, LaneState.start(0, 0), life_loss_terminal=True))
    np.testing.assert_array_equal(terminal["rewards"], plain["rewards"])
    for name in ("indices", "signs", "offsets", "choices"):
        np.testing.assert_array_equal(terminal["record"][name], plain["record"][name])
    assert terminal["episodes"] == plain["episodes"]
    extra = np.flatnonzero(terminal["dones"] != plain["dones"])
    np.testing.assert_array_equal(extra, life_steps)
    assert np.all(terminal["dones"][plain["dones"] == 1] == 1)


def test_life_loss_is_a_checked_ppo_setting_and_old_runs_go_on_through_lost_lives():
    with pytest.raises(ValueError, match="--life-loss must be one of continue, terminal, got 'end'"):
        Config(life_loss="end").validate()
    with pytest.raises(ValueError, match="--life-loss is a setting of --algo ppo"):
        Config(algo="reinforce", life_loss="terminal").validate()
    assert Config().life_loss == "terminal"
    assert Config.of_checkpoint({"algo": "ppo", "env": "ALE/Breakout-v5"}, "run").life_loss == "continue"  # 0.3
    assert Config.of_checkpoint({"algo": "ppo", "life_loss": "terminal"}, "run").life_loss == "terminal"
    assert Config.of_checkpoint({"env": "Pong-v0"}, "run").life_loss is None  # 0.1: reinforce


# ---------------------------------------------------------------- REINFORCE outside Pong


def test_reinforce_discounts_over_the_whole_episode_outside_pong():
    """Breakout's bricks do not end rallies: the returns are the plain discounted sums."""
    config = Config(env="ALE/Breakout-v5", algo="reinforce", hidden=8, seed=3)
    spec = config.policy()
    backend = get_backend("numpy")
    params = spec.initial_parameters(config.seed)
    learner = Reinforce(config, spec, params, {f"cache_{k}": np.zeros_like(v) for k, v in params.items()}, backend)
    assert not learner.rallies
    game = AtariGame(config.env)
    stepper = spec.stepper(backend, params, game)
    rng = np.random.default_rng(9)
    frame, rewards = game.reset(rng), []
    for _ in range(400):
        frame, reward, done = game.step(stepper.step(frame, rng.random()))
        rewards.append(reward)
        if done:
            break
    episode = stepper.finish()
    episode["rewards"] = np.array(rewards)
    assert (episode["rewards"] > 0).sum() >= 2  # bricks hit: Pong's rule would restart the returns there
    learner.observe(episode)

    plain = np.zeros(len(rewards))
    running = 0.0
    for t in reversed(range(len(rewards))):
        running = rewards[t] + config.gamma * running
        plain[t] = running
    expected_W1, expected_W2 = np.zeros_like(params["W1"]), np.zeros_like(params["W2"])
    backend.sparse_backward(params["W1"], params["W2"], episode["indices"], episode["signs"], episode["offsets"],
                            episode["dlogp"] * reference.standardize(plain), expected_W1, expected_W2)
    np.testing.assert_allclose(learner.grad_W2, expected_W2, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(learner.grad_W1, expected_W1, rtol=1e-12, atol=1e-15)
    per_point = reference.standardize(reference.discount_rewards(episode["rewards"], config.gamma))
    assert not np.allclose(per_point, reference.standardize(plain))  # the two rules differ on this episode


# ---------------------------------------------------------------- every command, on other games


@pytest.fixture(scope="module")
def breakout_runs(runs):
    """Tiny Breakout runs of both algorithms: name -> run_dir."""
    dirs = {}
    for name, options, stop in (("ppo", TINY_PPO, ("--max-steps", 512)),
                                ("reinforce", TINY_REINFORCE, ("--episodes", 2))):
        run_dir = str(runs / f"breakout-{name}")
        result = run_fastpg("train", "--env", "ALE/Breakout-v5", *options, *stop, "--run-dir", run_dir,
                            "--workers", 1, cwd=runs)
        assert result.returncode == 0, result.stderr
        assert "ALE/Breakout-v5: Breakout's rule: screen rows 34-193, background red 0, 142" in result.stderr
        dirs[name] = run_dir
    return dirs


def test_breakout_ppo_is_the_same_on_one_or_two_workers(breakout_runs, runs):
    run_dir = str(runs / "breakout-ppo-two")
    result = run_fastpg("train", "--env", "ALE/Breakout-v5", *TINY_PPO, "--max-steps", 512, "--run-dir", run_dir,
                        "--workers", 2, cwd=runs)
    assert result.returncode == 0, result.stderr
    one, two = load_arrays(breakout_runs["ppo"]), load_arrays(run_dir)
    for name in one:
        if name != "state":
            np.testing.assert_array_equal(one[name], two[name], err_msg=name)
    assert one["W_pi"].shape == (4, 8)  # NOOP, FIRE, RIGHT, LEFT
    assert load_state(run_dir)["config"]["env"] == "ALE/Breakout-v5"


@pytest.mark.parametrize("algo", ["ppo", "reinforce"])
def test_eval_reports_the_games_score_and_the_random_policys(breakout_runs, algo, tmp_path):
    result = run_fastpg("eval", breakout_runs[algo], "--games", 2, "--workers", 1, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["env"] == "ALE/Breakout-v5" and summary["points_against"] == 0  # Breakout only adds points
    assert summary["mean_score"] == summary["points_for"] / 2
    assert len(summary["random_per_game"]) == 2
    assert summary["random_mean_score"] == np.mean(summary["random_per_game"])

    text = run_fastpg("eval", breakout_runs[algo], "--games", 2, "--workers", 1, cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert "random policy" in text.stdout and "on the same games" in text.stdout
    assert "win rate" not in text.stdout  # no points against: nothing to win


def test_the_random_policy_scores_the_same_on_any_number_of_workers():
    from fastpg.evaluate import evaluate_random

    one = evaluate_random("ALE/Breakout-v5", 3, seed=5, workers=1)
    two = evaluate_random("ALE/Breakout-v5", 3, seed=5, workers=2)
    assert one == two and any(result.score > 0 for result in one)


@pytest.mark.parametrize("algo", ["ppo", "reinforce"])
def test_video_weights_and_plot_of_a_breakout_run(breakout_runs, algo, tmp_path):
    from PIL import Image

    run_dir = breakout_runs[algo]
    out = tmp_path / "play.gif"
    result = run_fastpg("video", run_dir, "-o", out, "--max-frames", 10, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with Image.open(out) as gif:
        assert gif.n_frames == 10
        gif.seek(9)
        game_half = np.asarray(gif.convert("RGB"))[:, :320]
    # Breakout's own screen: its grey walls (142, 142, 142) are there, Pong's brown background is not.
    assert (game_half == 142).all(axis=2).any() and not (game_half == (144, 72, 17)).all(axis=2).any()
    pytest.importorskip("matplotlib")
    assert run_fastpg("weights", run_dir, "-o", tmp_path / "w.png", "--neurons", 4, cwd=tmp_path).returncode == 0
    assert run_fastpg("plot", run_dir, "-o", tmp_path / "curves.png", cwd=tmp_path).returncode == 0
    assert sorted(os.listdir(tmp_path)) == ["curves.png", "play.gif", "w-w2.png", "w.png"]


@pytest.mark.parametrize("env_id, options", [
    ("ALE/Freeway-v5", ()),
    ("ALE/Boxing-v5", ()),
    ("ALE/SpaceInvaders-v5", ()),
    ("ALE/Boxing-v5", ("--algo", "reinforce", "--actions", "LEFTFIRE,RIGHTFIRE", "--episodes", 2)),
])
def test_the_other_supported_games_train_and_evaluate(env_id, options, tmp_path):
    stop = () if "--episodes" in options else ("--max-steps", 256, *TINY_PPO)
    result = run_fastpg("train", "--env", env_id, "--hidden", 8, *options, *stop, "--run-dir", tmp_path / "run",
                        "--workers", 1, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{env_id}: {game_profile(env_id).title}'s rule" in result.stderr
    result = run_fastpg("eval", tmp_path / "run", "--games", 1, "--workers", 1, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "random_mean_score" in json.loads(result.stdout)


def test_reinforce_on_a_game_without_a_pair_asks_for_actions(tmp_path):
    result = run_fastpg("train", "--env", "ALE/Boxing-v5", "--algo", "reinforce", "--run-dir", tmp_path / "run",
                        cwd=tmp_path)
    assert_clean_error(result, "--actions A,B", "NOOP, FIRE, UP")
