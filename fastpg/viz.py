"""Pictures of a run: learning curves, the learned weights, and the agent playing.

Needs the ``viz`` extra (matplotlib, imageio, Pillow); each entry point checks
for it first and raises :class:`MissingDependency` with the install command.
Outputs are written to a temporary file beside the target and renamed into
place, so a failed or interrupted command never leaves a half-written image.
"""
import contextlib
import importlib
import importlib.util
import math
import os

import numpy as np

VIZ_INSTALL = 'pip install "fastpg[viz]"  (from a source checkout: pip install ".[viz]")'
DISTRIBUTIONS = {"matplotlib": "matplotlib", "imageio": "imageio", "PIL": "Pillow"}
FRAME_HEIGHT, FRAME_WIDTH = 210, 160
EMULATOR_FPS = 60  # Atari frames a second; an agent step lasts the env's frameskip of them
UP_RGB, DOWN_RGB = (26, 152, 80), (123, 50, 148)  # colours for "pushes towards UP / DOWN"


class VizError(Exception):
    """A problem with an input or output path, reported as one line."""


class MissingDependency(VizError):
    """A package of the viz extra is not installed."""


def require(command, *modules):
    """Import the viz extra's modules that ``command`` needs, or raise MissingDependency."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            raise MissingDependency(
                f"{DISTRIBUTIONS.get(module, module)} is not installed; "
                f"fastpg {command} needs the viz extra: {VIZ_INSTALL}") from None


def check_output(path, extensions):
    """Fail early, with one line, on an output path that cannot be written; returns its extension."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in extensions:
        raise VizError(f"{path}: unsupported output type {extension or '(no extension)'}; "
                       f"use {' or '.join(extensions)}")
    if os.path.isdir(path):
        raise VizError(f"{path} is a directory; give a file name ending in {' or '.join(extensions)}")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise VizError(f"cannot write {path}: directory {os.path.dirname(path) or directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise VizError(f"cannot write {path}: directory {os.path.dirname(path) or directory} is not writable")
    return extension


@contextlib.contextmanager
def _atomic_output(path):
    """Yield a temporary path beside ``path`` (same extension); rename it into place on success."""
    directory, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f".{name}.tmp{os.path.splitext(name)[1]}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise VizError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# ---------------------------------------------------------------------------- learning curves

def find_metrics(path):
    """metrics.csv of a run given as its directory, its metrics.csv or its checkpoint.npz."""
    if os.path.isdir(path):
        return os.path.join(path, "metrics.csv")
    if path.endswith(".npz"):
        return os.path.join(os.path.dirname(path), "metrics.csv")
    return path


def read_curve(path):
    """A run's metrics columns (see fastpg.metrics) as float64 arrays; raises VizError."""
    from . import metrics

    csv_path = find_metrics(path)
    if not os.path.isfile(csv_path):
        raise VizError(f"no metrics.csv at {csv_path}")
    try:
        columns = metrics.read(csv_path)
    except Exception as exc:  # truncated or foreign file: KeyError, ValueError, TypeError, csv.Error
        raise VizError(f"cannot read {csv_path}: {type(exc).__name__}: {exc}") from None
    if not columns["episode"]:
        raise VizError(f"{csv_path} has no episodes yet")
    return {name: np.asarray(values, dtype=np.float64) for name, values in columns.items()}


def run_labels(paths):
    """A legend label per run: its directory's name, or the path as given where names clash."""
    names = []
    for path in paths:
        directory = os.path.dirname(os.path.abspath(find_metrics(path)))
        names.append(os.path.basename(directory) or directory)
    return [name if names.count(name) == 1 else os.path.normpath(path) for name, path in zip(names, paths)]


def plot_curves(paths, output):
    """Plot running and episode reward against episodes, wall-clock time and env steps; one colour a run."""
    require("plot", "matplotlib")
    check_output(output, (".png", ".svg", ".pdf"))
    curves = [read_curve(path) for path in paths]
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import EngFormatter

    fig = Figure(figsize=(15, 4.6), layout="constrained")
    axes = fig.subplots(1, 3, sharey=True)
    longest = max(curve["seconds"].max() for curve in curves)  # read_curve refuses empty runs
    time_axis = ("seconds", 1 / 60, "wall-clock minutes") if longest <= 3 * 3600 else \
        ("seconds", 1 / 3600, "wall-clock hours")  # minutes read more easily for runs of an hour or two
    x_axes = (("episode", 1.0, "episodes"), time_axis, ("env_steps", 1.0, "environment steps"))
    for ax, (column, factor, label) in zip(axes, x_axes):
        for i, curve in enumerate(curves):
            x = curve[column] * factor
            ax.plot(x, curve["reward"], ".", color=f"C{i}", alpha=0.3, markersize=3.5, markeredgewidth=0,
                    rasterized=True)
            ax.plot(x, curve["running_reward"], color=f"C{i}", linewidth=1.8)
        ax.set_xlabel(label)
        ax.grid(True, alpha=0.3)
    axes[2].xaxis.set_major_formatter(EngFormatter())
    axes[0].set_ylabel("reward per episode (points won - lost)")
    handles = [Line2D([], [], color=f"C{i}", linewidth=1.8, label=name)
               for i, name in enumerate(run_labels(paths))]
    handles += [Line2D([], [], color="0.3", linewidth=1.8, label="running reward (0.99 decay)"),
                Line2D([], [], color="0.3", alpha=0.5, marker=".", linestyle="", label="episode reward")]
    axes[0].legend(handles=handles, loc="upper left", fontsize=8, framealpha=0.85)
    fig.suptitle("fastpg learning curves")
    with _atomic_output(output) as tmp:
        fig.savefig(tmp, format=os.path.splitext(output)[1][1:].lower(), dpi=100)


# ---------------------------------------------------------------------------- weights

def default_w2_output(output):
    """Where the W2 image goes when not given: w1.png -> w1-w2.png."""
    stem, extension = os.path.splitext(output)
    return f"{stem}-w2{extension}"


def change_since_init(W1, config):
    """W1 minus the run's initial W1, reproduced from its seed: what training has changed.

    Pixels that never differ between frames (the walls, the score) get no
    gradient, so their weights must still equal the reproduced ones exactly;
    if none do, the run was initialised some other way and VizError is raised.
    """
    from .learner import init_weights

    initial, _ = init_weights(int(config["hidden"]), int(config.get("seed", 0)))
    if initial.shape != W1.shape or not np.any(W1 == initial):
        raise VizError("cannot reproduce this run's initial weights from its seed, so --minus-init "
                       "cannot tell what training changed")
    return W1 - initial


def plot_weights(W1, W2, output, w2_output, neurons=40, title=None, what="W1"):
    """Rows 0..neurons-1 of W1 as 80x80 images, and all of W2 as a bar chart.

    Each tile is scaled to its own range, symmetric about zero: white is
    positive, black negative, mid-grey zero. Its frame marks the neuron's W2:
    green pushes towards UP, purple towards DOWN, thicker for larger |W2|.
    ``what`` names the rows in the title (for example "W1 - initial W1").
    Returns the number of neurons shown.
    """
    require("weights", "matplotlib")
    extensions = (".png", ".svg", ".pdf")
    check_output(output, extensions)
    check_output(w2_output, extensions)
    from matplotlib.figure import Figure

    n_hidden = W1.shape[0]
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
        image = W1[i].reshape(80, 80)
        scale = float(np.max(np.abs(image))) or 1.0
        ax.imshow(image, cmap="gray", vmin=-scale, vmax=scale, interpolation="nearest")
        colour = up if W2[i] >= 0 else down
        for spine in ax.spines.values():
            spine.set_edgecolor(colour)
            spine.set_linewidth(0.5 + 3.0 * abs(W2[i]) / w2_max)
        ax.set_title(f"#{i}  W2 {W2[i]:+.2f}", fontsize=7, color=colour, pad=2)
    neurons_text = "neuron 0" if shown == 1 else f"neurons 0-{shown - 1}"
    fig.suptitle((title + ": " if title else "") + f"{what} of hidden {neurons_text} (of {n_hidden}) as 80x80 images\n"
                 "white +, black -, each neuron scaled to its own range\n"
                 "frame: its W2 (green towards UP, purple towards DOWN, thicker = larger)", fontsize=9)

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
    ax.set_ylabel("W2 (weight on the logit of P(up))")
    ax.set_title((title + ": " if title else "") + "W2, the output weight of each hidden neuron", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)

    for figure, path in ((fig, output), (bars, w2_output)):
        with _atomic_output(path) as tmp:
            figure.savefig(tmp, format=os.path.splitext(path)[1][1:].lower(), dpi=100)
    return shown


# ---------------------------------------------------------------------------- video

VIDEO_EXTENSIONS = (".gif", ".mp4")
BACKGROUND = (24, 24, 24)
TEXT = (235, 235, 235)
DOWN_TEXT = (200, 140, 220)  # DOWN_RGB, lighter to read on the dark panel


def check_video_output(path):
    """check_output for a video, plus the ffmpeg plugin that .mp4 needs."""
    require("video", "PIL", "imageio")
    extension = check_output(path, VIDEO_EXTENSIONS)
    if extension == ".mp4" and importlib.util.find_spec("imageio_ffmpeg") is None:
        raise MissingDependency("writing .mp4 needs imageio-ffmpeg, which is not installed: "
                                "pip install imageio-ffmpeg (or write a .gif)")
    return extension


class FrameRenderer:
    """Composes one video frame: the game, the 80x80 difference frame the policy saw, P(up), score.

    scale is the integer zoom of the game (the difference frame gets 2*scale,
    so both halves are equally wide). Output is uint8 (210*scale, 320*scale, 3).
    """

    def __init__(self, scale=2):
        from PIL import ImageFont

        self.scale = scale
        self.width = 2 * FRAME_WIDTH * scale
        self.height = FRAME_HEIGHT * scale
        self.panel_x = FRAME_WIDTH * scale
        self.diff_top = 12 * scale
        self.diff_size = 80 * 2 * scale
        try:
            self.font = ImageFont.load_default(size=6 * scale + 1)
        except TypeError:  # Pillow < 10.1: a fixed bitmap font
            self.font = ImageFont.load_default()
        self._diff_levels = np.array([0, 128, 255], dtype=np.uint8)  # -1, 0, +1

    def render(self, frame, diff, p_up, action_up, points_for, points_against, step):
        from PIL import Image, ImageDraw

        s = self.scale
        canvas = np.empty((self.height, self.width, 3), dtype=np.uint8)
        canvas[:] = BACKGROUND
        canvas[:, :self.panel_x] = frame.repeat(s, axis=0).repeat(s, axis=1)
        grey = self._diff_levels[diff.reshape(80, 80).astype(np.int8) + 1]
        zoom = 2 * s
        top, left = self.diff_top, self.panel_x
        canvas[top:top + self.diff_size, left:left + self.diff_size] = (
            grey.repeat(zoom, axis=0).repeat(zoom, axis=1)[:, :, None])

        image = Image.fromarray(canvas)
        draw = ImageDraw.Draw(image)
        draw.fontmode = "1"  # no anti-aliasing: a handful of exact colours keeps the GIF small
        draw.text((left + 3 * s, 2 * s), "what the policy sees: 80x80 difference", font=self.font, fill=TEXT)
        y = top + self.diff_size + 3 * s
        bar_left, bar_right = left + 3 * s, left + self.diff_size - 3 * s
        label = f"P(up) {p_up:.2f}  {'UP' if action_up else 'DOWN'}"
        draw.text((bar_left, y), label, font=self.font, fill=UP_RGB if action_up else DOWN_TEXT)
        y += 9 * s
        bar_height = 5 * s
        draw.rectangle((bar_left, y, bar_right, y + bar_height), outline=TEXT, fill=(60, 60, 60))
        filled = bar_left + round((bar_right - bar_left) * p_up)
        if filled > bar_left:
            draw.rectangle((bar_left, y, filled, y + bar_height), fill=UP_RGB)
        middle = (bar_left + bar_right) // 2
        draw.line((middle, y - s, middle, y + bar_height + s), fill=TEXT, width=1)
        y += bar_height + 3 * s
        draw.text((bar_left, y), f"agent {points_for} : {points_against} cpu   step {step}",
                  font=self.font, fill=TEXT)
        return np.asarray(image)


class _GifWriter:
    """Streams an animated GIF frame by frame, storing only each frame's changed rectangle.

    Colours are exact: frames are mapped to a palette that grows as new
    colours appear (Pong and the overlay use about a dozen); frames after it
    has grown carry it as a local colour table. Only a frame that would take
    the palette past 256 colours is quantised (median cut), starting a new
    palette. Pillow's own writer would keep every frame in memory, and a good
    agent's game has thousands.
    """

    def __init__(self, path, duration_ms):
        self._file = open(path, "wb")
        self._duration = duration_ms
        self._lookup = np.full(1 << 24, 0xFFFF, dtype=np.uint16)  # packed RGB -> palette index
        self._colours = []  # packed RGB, in palette order
        self._header_colours = None  # the palette in the file's header
        self._previous = None  # the last frame's indices; None: redraw everything

    def _indices(self, rgb):
        keys = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
        indices = self._lookup[keys]
        missing = indices == 0xFFFF
        if missing.any():
            new = np.unique(keys[missing])
            if len(self._colours) + len(new) > 256:
                return self._quantised(rgb)
            self._lookup[new] = np.arange(len(self._colours), len(self._colours) + len(new))
            self._colours += new.tolist()
            indices = self._lookup[keys]
        return indices.astype(np.uint8)

    def _quantised(self, rgb):
        from PIL import Image

        image = Image.fromarray(rgb).quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        palette = np.array(image.getpalette()[:768], dtype=np.int32).reshape(-1, 3)
        self._lookup[self._colours] = 0xFFFF
        self._colours = ((palette[:, 0] << 16) | (palette[:, 1] << 8) | palette[:, 2]).tolist()
        self._lookup[self._colours[::-1]] = np.arange(len(self._colours))[::-1]  # the first index wins
        self._previous = None if self._header_colours is None else np.full(rgb.shape[:2], -1)
        return np.asarray(image)

    def write(self, rgb):
        """Append one uint8 (height, width, 3) frame."""
        from PIL import GifImagePlugin, Image

        indices = self._indices(rgb)
        image = Image.fromarray(indices)  # mode L; putpalette makes it P
        flat = []
        for colour in self._colours:
            flat += [(colour >> 16) & 255, (colour >> 8) & 255, colour & 255]
        image.putpalette(flat)
        if self._header_colours is None:
            self._header_colours = list(self._colours)
            header, _ = GifImagePlugin.getheader(image, info={"loop": 0, "duration": self._duration})
            chunks = header + GifImagePlugin.getdata(image, (0, 0), duration=self._duration, disposal=1)
        else:
            rows, cols = np.nonzero(indices != self._previous)
            if rows.size:
                box = (int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)
            else:
                box = (0, 0, 1, 1)  # unchanged: redraw one pixel to keep the frame's time
            chunks = GifImagePlugin.getdata(image.crop(box), box[:2], duration=self._duration, disposal=1,
                                            include_color_table=self._colours != self._header_colours)
        for chunk in chunks:
            self._file.write(chunk)
        self._previous = indices

    def close(self):
        if self._header_colours is not None:
            self._file.write(b";")  # trailer
        self._file.close()


class _Mp4Writer:
    def __init__(self, path, fps):
        import imageio.v2 as imageio

        self._writer = imageio.get_writer(path, format="FFMPEG", fps=fps, codec="libx264",
                                          quality=7, macro_block_size=2, ffmpeg_log_level="error")

    def write(self, rgb):
        self._writer.append_data(rgb)

    def close(self):
        self._writer.close()


def record_video(W1, W2, env_id, output, seed=0, greedy=False, max_frames=None, every=2, fps=None,
                 scale=2, on_frame=None):
    """Play game 0 of ``seed`` (see fastpg.evaluate) and write it as a GIF or MP4.

    One video frame per ``every`` agent steps, at most ``max_frames`` of them
    (default: the whole game). fps defaults to real time.
    Returns (GameResult, frames written).
    """
    from . import kernels
    from .env import UP, _atari_spec
    from .evaluate import make_player, play_game

    extension = check_video_output(output)
    if every < 1:
        raise ValueError(f"--every must be at least 1, got {every}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"--max-frames must be at least 1, got {max_frames}")
    if scale < 1:
        raise ValueError(f"--scale must be at least 1, got {scale}")
    if fps is None:
        frameskip = _atari_spec(env_id).get("frameskip", 4)
        mean_frameskip = frameskip if isinstance(frameskip, int) else (frameskip[0] + frameskip[1] - 1) / 2
        fps = EMULATOR_FPS / mean_frameskip / every
    if not fps > 0:
        raise ValueError(f"--fps must be positive, got {fps}")
    game, stepper = make_player(W1, W2, env_id)
    renderer = FrameRenderer(scale)
    state = {"previous": None, "step": 0, "written": 0}

    def on_step(frame, stepper, action, points_for, points_against):
        current = kernels.preprocess(frame)
        previous = state["previous"]
        diff = np.zeros_like(current) if previous is None else current - previous
        state["previous"] = current
        if state["step"] % every == 0:
            writer.write(renderer.render(frame, diff, stepper.p, action == UP, points_for, points_against,
                                         state["step"]))
            state["written"] += 1
            if on_frame is not None:
                on_frame()
        state["step"] += 1

    max_steps = None if max_frames is None else max_frames * every
    with _atomic_output(output) as tmp:
        if extension == ".gif":  # GIF delays are in 1/100 s, and viewers slow anything under 2/100 s
            writer = _GifWriter(tmp, 10 * max(2, round(100 / fps)))
        else:
            writer = _Mp4Writer(tmp, fps)
        try:
            result = play_game(game, stepper, seed, 0, greedy=greedy, max_steps=max_steps, on_step=on_step)
        finally:
            writer.close()
    return result, state["written"]
