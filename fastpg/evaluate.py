"""Scoring a checkpoint: play full games with its policy, in parallel, and summarise them.

Game ``i`` of an evaluation with seed ``S`` draws its randomness (sticky
actions, and the policy's coin flips when it plays stochastically) from
:func:`fastpg.rollout.episode_rngs` ``(S, i)``, exactly as episode ``i`` of a
training run with seed ``S`` would. So an evaluation is reproducible, and
does not depend on how many workers play it.
"""
import dataclasses
import multiprocessing as mp
import signal

import numpy as np

from .env import DOWN, UP
from .rollout import DRAW_BLOCK, episode_rngs
from .workers import single_threaded_blas_children



@dataclasses.dataclass(frozen=True)
class GameResult:
    """One game: points won and lost, and its length in agent steps."""

    points_for: int
    points_against: int
    steps: int
    finished: bool = True  # False when stopped early by max_steps

    @property
    def score(self):
        return self.points_for - self.points_against


def play_game(game, stepper, seed, index, greedy=False, max_steps=None, on_step=None):
    """Play game ``index`` of seed ``seed`` with the stepper's policy -> GameResult.

    Stochastic play draws its actions exactly as training does; greedy play
    moves up when P(up) >= 0.5. ``on_step(frame, stepper, action, points_for,
    points_against)`` is called after the policy has seen each frame (the
    uint8 (210, 160, 3) buffer, valid only during the call) and chosen its
    action, before the action is played; ``stepper.p`` is then P(up) and
    ``stepper.nnz`` the number of non-zero pixels in the difference frame.
    """
    policy_rng, env_rng = episode_rngs(seed, index)
    stepper.reset()
    frame = game.reset(env_rng)
    points_for = points_against = steps = 0
    draws, next_draw = [], 0
    done = False
    try:
        while not done and (max_steps is None or steps < max_steps):
            if greedy:
                stepper.step(frame, 0.5)
                action = UP if stepper.p >= 0.5 else DOWN
            else:
                if next_draw == len(draws):
                    draws, next_draw = policy_rng.random(DRAW_BLOCK).tolist(), 0
                action = stepper.step(frame, draws[next_draw])
                next_draw += 1
            if on_step is not None:
                on_step(frame, stepper, action, points_for, points_against)
            frame, reward, done = game.step(action)
            steps += 1
            if reward > 0:
                points_for += int(reward)
            elif reward < 0:
                points_against -= int(reward)
    finally:
        stepper.reset()  # drop the recorded episode: nothing learns from it
    return GameResult(points_for, points_against, steps, finished=done)


def make_player(W1, W2, env_id):
    """(game, stepper) for a checkpoint's weights, using the compiled kernels."""
    from .env import AtariGame
    from .kernels import PolicyStepper

    return AtariGame(env_id), PolicyStepper(W1, np.ascontiguousarray(W2))


# One player per worker process, built once by _init_worker.
_player = None


def _init_worker(W1, W2, env_id, seed, greedy):
    global _player
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    game, stepper = make_player(W1, W2, env_id)
    _player = (game, stepper, seed, greedy)


def _play_indexed(index):
    game, stepper, seed, greedy = _player
    return index, play_game(game, stepper, seed, index, greedy=greedy)


def evaluate(W1, W2, env_id, games, seed=0, greedy=False, workers=1, on_result=None):
    """Play games 0..games-1 on up to ``workers`` processes -> list of GameResult, in game order.

    ``on_result(result)`` is called as each game finishes (in finishing order).
    """
    if games < 1:
        raise ValueError(f"--games must be at least 1, got {games}")
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    # Built here first so that a bad env id or bad weights fail in this process: a Pool
    # would keep respawning workers whose initializer raises.
    game, stepper = make_player(W1, W2, env_id)
    workers = min(workers, games)
    results = [None] * games
    pool = None
    if workers == 1:
        outcomes = ((index, play_game(game, stepper, seed, index, greedy=greedy)) for index in range(games))
    else:
        ctx = mp.get_context("spawn")
        with single_threaded_blas_children():
            pool = ctx.Pool(workers, initializer=_init_worker, initargs=(W1, W2, env_id, seed, greedy))
        outcomes = pool.imap_unordered(_play_indexed, range(games))
    try:
        for index, result in outcomes:
            results[index] = result
            if on_result is not None:
                on_result(result)
    finally:
        if pool is not None:
            pool.terminate()  # all results are in, or we are leaving on an error/Ctrl-C
            pool.join()
    return results


def summarize(results):
    """Totals and means of a list of GameResult, as a JSON-ready dict."""
    n = len(results)
    wins = sum(r.points_for > r.points_against for r in results)
    losses = sum(r.points_for < r.points_against for r in results)
    points_for = sum(r.points_for for r in results)
    points_against = sum(r.points_against for r in results)
    return {
        "games": n,
        "wins": wins,
        "losses": losses,
        "draws": n - wins - losses,
        "win_rate": wins / n,
        "mean_score": (points_for - points_against) / n,
        "points_for": points_for,
        "points_against": points_against,
        "mean_points_for": points_for / n,
        "mean_points_against": points_against / n,
        "mean_length": sum(r.steps for r in results) / n,
        "per_game": [{"points_for": r.points_for, "points_against": r.points_against, "steps": r.steps}
                     for r in results],
    }


def format_summary(summary):
    """The human-readable lines of a summary."""
    n = summary["games"]
    draws = f", {summary['draws']} drawn" if summary["draws"] else ""
    return [
        f"win rate          {summary['win_rate']:.1%} ({summary['wins']} of {n} games won{draws})",
        f"mean score        {summary['mean_score']:+.2f} (points won minus lost, per game)",
        f"points            {summary['points_for']} for, {summary['points_against']} against "
        f"({summary['mean_points_for']:.2f} vs {summary['mean_points_against']:.2f} per game)",
        f"mean game length  {summary['mean_length']:,.0f} agent steps",
    ]
