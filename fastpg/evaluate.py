"""Scoring a checkpoint: play full games with its policy, in parallel, and summarise them.

Game ``i`` of an evaluation with seed ``S`` draws its randomness (sticky
actions, and the policy's coin flips when it plays stochastically) from
:func:`fastpg.rollout.episode_rngs` ``(S, i)``, exactly as episode ``i`` of a
training run with seed ``S`` would. So an evaluation is reproducible, and
does not depend on how many workers play it.
"""
import dataclasses

from .rollout import Player, PlayerSettings


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

    @classmethod
    def of(cls, episode):
        """The result of a played episode (see :func:`fastpg.rollout.play_episode`)."""
        rewards = episode["rewards"]
        return cls(int(rewards[rewards > 0].sum()), int(-rewards[rewards < 0].sum()), len(rewards),
                   finished=bool(episode["finished"]))


def evaluate(params, spec, env_id, games, seed=0, greedy=False, workers=1, on_result=None, on_warning=print,
             backend="cython"):
    """Play games 0..games-1 on up to ``workers`` processes -> list of GameResult, in game order.

    params: the policy's named arrays, as ``spec`` (a :class:`fastpg.policy.PolicySpec`) declares.
    ``on_result(result)`` is called as each game's result is handed back, in
    game order. A game whose worker dies is played again, with the same seed,
    on a new worker, and ``on_warning`` says so.
    """
    if games < 1:
        raise ValueError(f"--games must be at least 1, got {games}")
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    settings = PlayerSettings(spec, env_id, backend=backend, seed=seed, greedy=greedy, record=False)
    # Built here first so that a bad env id or bad weights fail in this process, with one message.
    player = Player(settings, params)
    workers = min(workers, games)
    results = []
    if workers == 1:
        episodes = (player.play(index) for index in range(games))
        pool = None
    else:
        from .workers import WorkerPool

        pool = WorkerPool(workers, settings, on_warning=on_warning, task_name="game")
        for name, value in params.items():
            pool.params[name][...] = value
        episodes = pool.play(range(games))
    try:
        for episode in episodes:
            results.append(GameResult.of(episode))
            if on_result is not None:
                on_result(results[-1])
    finally:
        if pool is not None:
            pool.close()
    return results


def evaluate_random(env_id, games, seed=0, workers=1, on_warning=print):
    """The uniformly random policy over env_id's whole minimal action set, on the same games' seeds."""
    from .games import action_names
    from .policy import UniformSpec

    spec = UniformSpec(tuple(range(len(action_names(env_id)))))
    return evaluate({}, spec, env_id, games, seed=seed, workers=workers, on_warning=on_warning)


def summarize(results, random_results=None):
    """Totals and means of a list of GameResult (and of the random policy's, when given), as a JSON-ready dict.

    A game's score is the sum of its rewards: in Pong, points won minus lost.
    """
    n = len(results)
    wins = sum(r.points_for > r.points_against for r in results)
    losses = sum(r.points_for < r.points_against for r in results)
    points_for = sum(r.points_for for r in results)
    points_against = sum(r.points_against for r in results)
    summary = {
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
    if random_results is not None:
        random_mean = sum(r.score for r in random_results) / len(random_results)
        summary["random_mean_score"] = random_mean
        summary["random_per_game"] = [r.score for r in random_results]
        summary["times_random"] = summary["mean_score"] / random_mean if random_mean > 0 else None
    return summary


def format_summary(summary, rallies=True):
    """The human-readable lines of a summary; ``rallies``: the game is won on points, as Pong."""
    n = summary["games"]
    draws = f", {summary['draws']} drawn" if summary["draws"] else ""
    lines = [f"mean score        {summary['mean_score']:+.2f} (the game's score: its rewards summed, per game)"]
    if "random_mean_score" in summary:
        times = summary["times_random"]
        versus = f", {times:.1f}x" if times is not None else ""
        lines.append(f"random policy     {summary['random_mean_score']:+.2f} on the same games{versus}")
    if rallies:
        lines += [
            f"win rate          {summary['win_rate']:.1%} ({summary['wins']} of {n} games won{draws})",
            f"points            {summary['points_for']} for, {summary['points_against']} against "
            f"({summary['mean_points_for']:.2f} vs {summary['mean_points_against']:.2f} per game)",
        ]
    return lines + [f"mean game length  {summary['mean_length']:,.0f} agent steps"]
