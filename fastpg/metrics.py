"""metrics.csv: one row per episode, appended and flushed as episodes complete.

The update columns hold the statistics of the last update before the episode
ended (empty for REINFORCE, and before the first update).
"""
import csv
import math
import os

EPISODE_COLUMNS = ("episode", "env_steps", "reward", "running_reward", "seconds", "steps_per_second")
UPDATE_COLUMNS = ("kl", "entropy", "value_loss", "explained_variance", "clip_fraction", "step_fraction")
COLUMNS = EPISODE_COLUMNS + UPDATE_COLUMNS


class MetricsLog:
    """Append rows to run_dir/metrics.csv.

    With keep_episodes=N (a resume), rows after episode N are dropped first:
    they belong to a batch the checkpoint did not include and will be
    replayed, identically, from the same seeds.
    """

    def __init__(self, path, keep_episodes=None):
        self.path = path
        if keep_episodes is None or not os.path.exists(path):
            with open(path, "w", newline="") as f:
                csv.writer(f).writerow(COLUMNS)
        else:
            self._truncate(keep_episodes)
        self._file = open(path, "a", newline="")
        self._writer = csv.writer(self._file)

    def _truncate(self, keep_episodes):
        kept = []
        with open(self.path, newline="") as f:
            for row in csv.reader(f):
                # fastpg 0.2 wrote only the episode columns
                if len(row) in (len(EPISODE_COLUMNS), len(COLUMNS)) and row[0].isdigit() and int(row[0]) <= keep_episodes:
                    kept.append(row + [""] * (len(COLUMNS) - len(row)))
        tmp = self.path + ".tmp"
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(COLUMNS)
            writer.writerows(kept)
        os.replace(tmp, self.path)

    def write(self, episode, env_steps, reward, running_reward, seconds, steps_per_second, update_stats=None):
        update = [format(update_stats[name], ".6g") if update_stats else "" for name in UPDATE_COLUMNS]
        self._writer.writerow(
            (episode, env_steps, f"{reward:g}", f"{running_reward:.6f}", f"{seconds:.3f}", f"{steps_per_second:.1f}",
             *update)
        )
        self._file.flush()

    def close(self):
        self._file.close()


def read(path):
    """Columns of a metrics.csv as a dict of float lists; an empty or absent update value reads as NaN."""
    columns = {name: [] for name in COLUMNS}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            for name in COLUMNS:
                value = row.get(name)
                columns[name].append(float(value) if value not in (None, "") else math.nan)
    return columns
