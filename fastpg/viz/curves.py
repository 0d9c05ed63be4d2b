"""Learning curves (fastpg plot): reward against episodes, wall-clock time and env steps, read from metrics.csv,
and the update statistics from updates.csv (or, for a run from before it, metrics.csv's update columns)."""
import os

import numpy as np

from .output import VizError, _atomic_output, check_output, require


def find_metrics(path):
    """metrics.csv of a run given as its directory, its metrics.csv or its checkpoint.npz."""
    if os.path.isdir(path):
        return os.path.join(path, "metrics.csv")
    if path.endswith(".npz"):
        return os.path.join(os.path.dirname(path), "metrics.csv")
    return path


def read_curve(path):
    """A run's metrics columns (see fastpg.metrics) as float64 arrays, and under "updates" its updates.csv's
    columns, or None where the run has no updates.csv; raises VizError."""
    from .. import metrics

    csv_path = find_metrics(path)
    if not os.path.isfile(csv_path):
        raise VizError(f"no metrics.csv at {csv_path}")
    columns = _read_columns(csv_path, metrics.COLUMNS)
    if not columns["episode"].size:
        raise VizError(f"{csv_path} has no episodes yet")
    updates_path = os.path.join(os.path.dirname(csv_path), "updates.csv")
    columns["updates"] = (_read_columns(updates_path, metrics.UPDATE_LOG_COLUMNS) if os.path.isfile(updates_path)
                          else None)
    return columns


def _read_columns(csv_path, names):
    from .. import metrics

    try:
        columns = metrics.read(csv_path, names)
    except Exception as exc:  # truncated or foreign file: KeyError, ValueError, TypeError, csv.Error
        raise VizError(f"cannot read {csv_path}: {type(exc).__name__}: {exc}") from None
    return {name: np.asarray(values, dtype=np.float64) for name, values in columns.items()}


def run_labels(paths):
    """A legend label per run: its directory's name, or the path as given where names clash."""
    names = []
    for path in paths:
        directory = os.path.dirname(os.path.abspath(find_metrics(path)))
        names.append(os.path.basename(directory) or directory)
    return [name if names.count(name) == 1 else os.path.normpath(path) for name, path in zip(names, paths)]


LINE_STYLES = ("-", "--", ":", "-.")  # after matplotlib's 10 colours, the next runs repeat them dashed, ...


def run_style(i):
    """The colour and line style of the i-th run: distinct for the first 40 runs."""
    return {"color": f"C{i % 10}", "linestyle": LINE_STYLES[(i // 10) % len(LINE_STYLES)]}


LEGEND_INSIDE_RUNS = 6  # more runs than this put the legend outside the panels
LEGEND_ROWS = 30  # entries per legend column outside

UPDATE_PANELS = (("kl", "mean KL(old || new) per update"), ("entropy", "policy entropy (nats)"),
                 ("value_loss", "value loss, (V - R)^2 / 2"), ("explained_variance", "explained variance of returns"))


def plot_curves(paths, output, updates=False):
    """Plot running and episode reward against episodes, wall-clock time and env steps; one colour and line style a run.

    With ``updates``, a second row shows the update statistics (runs without them draw nothing there).
    Up to LEGEND_INSIDE_RUNS runs, the legend sits in the first panel; more go beside the last panel.
    Returns the matplotlib Figure it saved.
    """
    require("plot", "matplotlib")
    check_output(output, (".png", ".svg", ".pdf"))
    curves = [read_curve(path) for path in paths]
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import EngFormatter

    fig = Figure(figsize=(15, 8.8 if updates else 4.6), layout="constrained")
    if updates:
        top, bottom = fig.subfigures(2, 1)
        axes = top.subplots(1, 3, sharey=True)
        _plot_updates(bottom.subplots(1, len(UPDATE_PANELS)), curves)
    else:
        axes = fig.subplots(1, 3, sharey=True)
    longest = max(curve["seconds"].max() for curve in curves)  # read_curve refuses empty runs
    time_axis = ("seconds", 1 / 60, "wall-clock minutes") if longest <= 3 * 3600 else \
        ("seconds", 1 / 3600, "wall-clock hours")  # minutes read more easily for runs of an hour or two
    x_axes = (("episode", 1.0, "episodes"), time_axis, ("env_steps", 1.0, "environment steps"))
    for ax, (column, factor, label) in zip(axes, x_axes):
        for i, curve in enumerate(curves):
            x = curve[column] * factor
            ax.plot(x, curve["reward"], ".", color=run_style(i)["color"], alpha=0.3, markersize=3.5,
                    markeredgewidth=0, rasterized=True)
            ax.plot(x, curve["running_reward"], linewidth=1.8, **run_style(i))
        ax.set_xlabel(label)
        ax.grid(True, alpha=0.3)
    axes[2].xaxis.set_major_formatter(EngFormatter())
    axes[0].set_ylabel("score per episode (in Pong, points won - lost)")
    handles = [Line2D([], [], linewidth=1.8, label=name, **run_style(i))
               for i, name in enumerate(run_labels(paths))]
    handles += [Line2D([], [], color="0.3", linewidth=1.8, label="running reward (0.99 decay)"),
                Line2D([], [], color="0.3", alpha=0.5, marker=".", linestyle="", label="episode reward")]
    if len(paths) <= LEGEND_INSIDE_RUNS:
        axes[0].legend(handles=handles, loc="upper left", fontsize=8, framealpha=0.85)
    else:  # beside the last panel, where it hides no curve; the layout narrows the panels to fit it
        axes[2].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                       fontsize=8, ncols=1 + len(handles) // LEGEND_ROWS)
    fig.suptitle("fastpg learning curves")
    if updates and not any(np.isfinite(_update_source(curve)["kl"]).any() for curve in curves):
        raise VizError("--updates: none of these runs has update statistics (they come from --algo ppo)")
    with _atomic_output(output) as tmp:
        fig.savefig(tmp, format=os.path.splitext(output)[1][1:].lower(), dpi=100)
    return fig



def _update_source(curve):
    """A run's update statistics: updates.csv's columns (every update), else metrics.csv's (the last update
    before each episode ended: rows repeat an update, or miss one in whose batch no episode ended)."""
    return curve["updates"] if curve["updates"] is not None and curve["updates"]["update"].size else curve


def _plot_updates(axes, curves):
    """Each update statistic against env steps, one style a run."""
    from matplotlib.ticker import EngFormatter

    for ax, (column, label) in zip(axes, UPDATE_PANELS):
        for i, curve in enumerate(curves):
            source = _update_source(curve)
            ax.plot(source["env_steps"], source[column], linewidth=1.0, **run_style(i))
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("environment steps")
        ax.xaxis.set_major_formatter(EngFormatter())
        ax.grid(True, alpha=0.3)
