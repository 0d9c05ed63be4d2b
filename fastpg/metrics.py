"""A run's logs, appended and flushed as they grow: metrics.csv, one row per episode, and (for an
algorithm that reports its updates) updates.csv, one row per update.

metrics.csv's update columns hold the statistics of the last update before
the episode ended (empty for REINFORCE, and before the first update), so an
update in whose batch no episode ended appears there in no row; updates.csv
has every update.
"""
import csv
import math
import os

EPISODE_COLUMNS = ("episode", "env_steps", "reward", "running_reward", "seconds", "steps_per_second")
UPDATE_COLUMNS = ("kl", "entropy", "value_loss", "explained_variance", "clip_fraction", "step_fraction")
COLUMNS = EPISODE_COLUMNS + UPDATE_COLUMNS
# env_steps: the run's env steps when the batch the update learned from ended. learning_rate, ent_coef:
# the schedule's values the update used (empty in the row a resume writes from a checkpoint of fastpg 0.22.2
# or older, which did not keep them).
UPDATE_LOG_COLUMNS = ("update", "env_steps", "learning_rate", "ent_coef") + UPDATE_COLUMNS


class MetricsLog:
    """Append rows to run_dir/metrics.csv.

    With keep_episodes=N (a resume), rows after episode N are dropped first:
    they belong to a batch the checkpoint did not include and will be
    replayed, identically, from the same seeds.
    """

    def __init__(self, path, keep_episodes=None):
        self.path = path
        kept = []
        if keep_episodes is not None and os.path.exists(path):
            # fastpg 0.2 wrote only the episode columns
            kept = [row + [""] * (len(COLUMNS) - len(row)) for row in _numbered_rows(path, keep_episodes)
                    if len(row) in (len(EPISODE_COLUMNS), len(COLUMNS))]
        self._file, self._writer = _restart(path, COLUMNS, kept)

    def write(self, episode, env_steps, reward, running_reward, seconds, steps_per_second, update_stats=None):
        update = [format(update_stats[name], ".6g") if update_stats else "" for name in UPDATE_COLUMNS]
        self._writer.writerow(
            (episode, env_steps, f"{reward:g}", f"{running_reward:.6f}", f"{seconds:.3f}", f"{steps_per_second:.1f}",
             *update)
        )
        self._file.flush()

    def close(self):
        self._file.close()


class UpdateLog:
    """Append rows to run_dir/updates.csv, one per finished update: its number, the env steps when its
    batch ended, and its statistics.

    With keep_updates=N (a resume), rows after update N are dropped first, and ``checkpoint_stats``, the
    statistics of update N that the checkpoint holds, fill in its row if the file lacks it: a run stopped
    between writing a checkpoint and logging that checkpoint's own update, or one begun before updates.csv
    existed (its log then starts at the resume).
    """

    def __init__(self, path, keep_updates=None, checkpoint_env_steps=None, checkpoint_stats=None):
        self.path = path
        kept = []
        if keep_updates is not None and os.path.exists(path):
            kept = [row for row in _numbered_rows(path, keep_updates) if len(row) == len(UPDATE_LOG_COLUMNS)]
        self._file, self._writer = _restart(path, UPDATE_LOG_COLUMNS, kept)
        if keep_updates and checkpoint_stats and (int(kept[-1][0]) if kept else 0) < keep_updates:
            self.write(keep_updates, checkpoint_env_steps, checkpoint_stats)

    def write(self, update, env_steps, stats):
        values = [format(stats[name], ".6g") if stats.get(name) is not None else ""
                  for name in UPDATE_LOG_COLUMNS[2:]]
        self._writer.writerow((update, env_steps, *values))
        self._file.flush()

    def close(self):
        self._file.close()


def _numbered_rows(path, last):
    """The rows of a log whose first field, the episode's or update's number, is at most last."""
    with open(path, newline="") as f:
        return [row for row in csv.reader(f) if row and row[0].isdigit() and int(row[0]) <= last]


def _restart(path, header, rows):
    """Replace the log at path with the header and rows (atomically); returns (file, csv writer) appending to it."""
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(tmp, path)
    file = open(path, "a", newline="")
    return file, csv.writer(file)


def read(path, names=COLUMNS):
    """Columns of a metrics.csv (or, with names=UPDATE_LOG_COLUMNS, an updates.csv) as a dict of float lists;
    an empty or absent value reads as NaN."""
    columns = {name: [] for name in names}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            for name in names:
                value = row.get(name)
                columns[name].append(float(value) if value not in (None, "") else math.nan)
    return columns
