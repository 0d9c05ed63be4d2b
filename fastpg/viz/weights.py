"""The learned weights (fastpg weights): W1 rows as 80x80 images framed by their W2, and W2 as bars."""
import math
import os
from typing import NamedTuple

import numpy as np

from ..constants import N_PIXELS
from .output import VizError, _atomic_output, check_output, require

UP_RGB, DOWN_RGB = (26, 152, 80), (123, 50, 148)  # colours for "pushes towards the first / second action"


class OutputWeight(NamedTuple):
    """Each hidden neuron's output weight, which frames its W1 tile: what a positive weight favours (towards),
    what a negative one favours (away), and what the weight is (meaning, for the bar chart's axis)."""

    values: np.ndarray
    towards: str
    away: str
    meaning: str


def output_weight(params, actions, contrast=None, pair=None):
    """The output weight by which ``fastpg weights`` frames each hidden neuron (an OutputWeight).

    REINFORCE: W2, the weight on the logit of P(actions[0]). The actor-critic:
    W_pi[a] - W_pi[b], what the neuron adds to action a's logit over b's (the
    two logits' difference is all a softmax of two actions sees), for (a, b)
    the names in ``contrast``; else its two actions, when it plays two; else the
    game's declared ``pair``, when it plays both (Pong's up and down); else the
    value head's w_v. actions: the run's action names, in the policy's order.
    Raises VizError for a contrast of a REINFORCE run or of actions the run does not play.
    """
    if "W2" in params:
        if contrast is not None:
            raise VizError("--contrast: a REINFORCE run has a single output weight, W2, towards its first action")
        return OutputWeight(params["W2"], actions[0], actions[1], f"W2 (on the logit of P({actions[0]}))")
    if contrast is not None:
        unknown = [name for name in contrast if name not in actions]
        if unknown or len(contrast) != 2 or contrast[0] == contrast[1]:
            raise VizError(f"--contrast must name two distinct actions of the run ({', '.join(actions)}), "
                           f"got {','.join(contrast)}")
        first, second = contrast
    elif len(actions) == 2:
        first, second = actions
    elif pair is not None and all(name in actions for name in pair):
        first, second = pair
    else:
        return OutputWeight(params["w_v"], "a higher value", "a lower value", "w_v (on the value)")
    W_pi = params["W_pi"]
    values = W_pi[actions.index(first)] - W_pi[actions.index(second)]
    return OutputWeight(values, first, second, f"W_pi[{first}] - W_pi[{second}]")


def default_w2_output(output):
    """Where the W2 image goes when not given: w1.png -> w1-w2.png."""
    stem, extension = os.path.splitext(output)
    return f"{stem}-w2{extension}"


def change_since_init(W1, config, spec=None):
    """W1 minus the run's initial W1, reproduced from its seed: what training has changed.

    Pixels that never differ between frames (the walls, the score) get no
    gradient, so their weights must still equal the reproduced ones exactly;
    if none do, the run was initialised some other way and VizError is raised.
    spec: the run's network (None: the seed's, of config's hidden size).
    """
    from ..policy import PolicySpec

    spec = spec or PolicySpec(int(config["hidden"]))
    initial = spec.initial_parameters(int(config.get("seed", 0)))["W1"]
    if initial.shape != W1.shape or not np.any(W1 == initial):
        raise VizError("cannot reproduce this run's initial weights from its seed, so --minus-init "
                       "cannot tell what training changed")
    return W1 - initial


def plot_weights(W1, W2, output, w2_output, neurons=40, title=None, what="W1", towards=("UP", "DOWN"),
                 meaning="W2 (weight on the logit of P(up))"):
    """Rows 0..neurons-1 of W1 as 80x80 images, and all of W2 as a bar chart.

    A W1 row of 12,800 (the difference and the current frame) is drawn as a
    160x80 image: its difference block above its frame block.
    Each tile is scaled to its own range, symmetric about zero: white is
    positive, black negative, mid-grey zero. Its frame marks the neuron's W2:
    green pushes towards ``towards[0]``, purple towards ``towards[1]``,
    thicker for larger |W2|. ``what`` names the rows in the title (for
    example "W1 - initial W1"); ``meaning`` says what W2 is, on the bar
    chart's axis (see output_weight).
    Returns the number of neurons shown.
    """
    require("weights", "matplotlib")
    extensions = (".png", ".svg", ".pdf")
    check_output(output, extensions)
    check_output(w2_output, extensions)
    from matplotlib.figure import Figure

    n_hidden = W1.shape[0]
    tiles = "80x80 images" if W1.shape[1] == N_PIXELS else "160x80 images (the difference above, the frame below)"
    shown = max(1, min(neurons, n_hidden))
    columns = min(shown, 10 if shown > 40 else 8)
    rows = math.ceil(shown / columns)
    w2_max = float(np.max(np.abs(W2))) or 1.0
    up, down = "#%02x%02x%02x" % UP_RGB, "#%02x%02x%02x" % DOWN_RGB

    fig = Figure(figsize=(max(6.0, 1.45 * columns), 1.55 * rows + 0.9), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= shown:
            ax.set_axis_off()
            continue
        image = W1[i].reshape(-1, 80)
        scale = float(np.max(np.abs(image))) or 1.0
        ax.imshow(image, cmap="gray", vmin=-scale, vmax=scale, interpolation="nearest")
        colour = up if W2[i] >= 0 else down
        for spine in ax.spines.values():
            spine.set_edgecolor(colour)
            spine.set_linewidth(0.5 + 3.0 * abs(W2[i]) / w2_max)
        ax.set_title(f"#{i}  W2 {W2[i]:+.2f}", fontsize=7, color=colour, pad=2)
    neurons_text = "neuron 0" if shown == 1 else f"neurons 0-{shown - 1}"
    fig.suptitle((title + ": " if title else "") + f"{what} of hidden {neurons_text} (of {n_hidden}) as {tiles}\n"
                 "white +, black -, each neuron scaled to its own range\n"
                 f"frame: its output weight (green towards {towards[0]}, purple towards {towards[1]}, "
                 "thicker = larger)", fontsize=9)

    bars = Figure(figsize=(max(6.0, min(16.0, 0.08 * n_hidden + 4)), 3.2), layout="constrained")
    ax = bars.subplots()
    colours = [up if w >= 0 else down for w in W2]
    ax.bar(np.arange(n_hidden), W2, color=colours, width=0.85)
    ax.axhline(0, color="0.2", linewidth=0.6)
    if shown < n_hidden:
        ax.axvspan(-0.5, shown - 0.5, color="0.85", zorder=0, label=f"shown in the W1 grid (#0-#{shown - 1})")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlim(-0.5, n_hidden - 0.5)
    ax.set_xlabel("hidden neuron")
    ax.set_ylabel(meaning)
    ax.set_title((title + ": " if title else "") + f"the output weight of each hidden neuron: green towards "
                 f"{towards[0]}, purple towards {towards[1]}", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)

    for figure, path in ((fig, output), (bars, w2_output)):
        with _atomic_output(path) as tmp:
            figure.savefig(tmp, format=os.path.splitext(path)[1][1:].lower(), dpi=100)
    return shown

