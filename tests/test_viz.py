"""fastpg plot, weights and video: files that decode, and one-line errors."""
import importlib.util
import os
import shutil
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("imageio")
Image = pytest.importorskip("PIL.Image")

from fastpg import cli, viz  # noqa: E402

from helpers import run_fastpg  # noqa: E402


def assert_image(path, min_size):
    """A PNG that decodes, at least min_size (width, height) pixels, and not of one colour."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size[0] >= min_size[0] and image.size[1] >= min_size[1]
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    assert pixels.std() > 10


def run_cli(capsys, *args):
    """cli.main in this process -> (exit code, stdout, stderr lines)."""
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip().splitlines()


def assert_one_line_error(code, err, command):
    assert code == 2
    assert len(err) == 1 and err[0].startswith(f"fastpg {command}: error: "), err


# ---------------------------------------------------------------------------- plot

def test_plot_writes_a_png(tiny_run, tmp_path):
    out = tmp_path / "curve.png"
    done = run_fastpg("plot", str(tiny_run), "-o", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert_image(out, (1000, 300))


def test_plot_puts_several_runs_on_one_figure(tiny_run, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(tiny_run, other)
    out = tmp_path / "two.svg"
    # a run directory, a metrics.csv and a checkpoint.npz all name a run
    code, _, err = run_cli(capsys, "plot", str(tiny_run), str(other / "metrics.csv"), "-o", str(out))
    assert code == 0, err
    svg = out.read_text()
    assert "tiny" in svg and "other" in svg
    assert viz.run_labels([str(tiny_run), str(other / "checkpoint.npz")]) == ["tiny", "other"]


@pytest.mark.parametrize("n_runs", (1, 8))
def test_plot_legend_hides_no_panel(tiny_run, tmp_path, n_runs):
    """A few runs' legend sits in the first panel's corner; more go beside the panels, clear of all of them."""
    from fastpg.viz.curves import LEGEND_INSIDE_RUNS, plot_curves

    runs = [str(tiny_run)]
    for i in range(1, n_runs):
        shutil.copytree(tiny_run, tmp_path / f"run{i}")
        runs.append(str(tmp_path / f"run{i}"))
    fig = plot_curves(runs, str(tmp_path / "curves.png"))
    legends = [(ax, ax.get_legend()) for ax in fig.axes if ax.get_legend() is not None]
    assert len(legends) == 1
    owner, legend = legends[0]
    assert len(legend.get_texts()) == n_runs + 2  # the runs, then the two marker styles
    box = legend.get_window_extent()
    overlaps = [ax for ax in fig.axes if box.overlaps(ax.get_window_extent())]
    if n_runs <= LEGEND_INSIDE_RUNS:
        assert owner is fig.axes[0] and overlaps == [owner]
    else:
        assert owner is fig.axes[2] and overlaps == []


def test_run_labels_disambiguate_equal_names(tmp_path):
    for name in ("a/run", "b/run", "c/x"):
        (tmp_path / name).mkdir(parents=True)
    paths = [str(tmp_path / name) for name in ("a/run", "b/run", "c/x")]
    assert viz.run_labels(paths) == [paths[0], paths[1], "x"]


def test_runs_past_ten_keep_distinct_styles():
    from fastpg.viz.curves import run_style

    styles = [(run_style(i)["color"], run_style(i)["linestyle"]) for i in range(40)]
    assert len(set(styles)) == 40
    assert run_style(10)["color"] == run_style(0)["color"] and run_style(10)["linestyle"] != "-"


# ---------------------------------------------------------------------------- weights

def test_weights_writes_the_w1_grid_and_the_w2_chart(tiny_run, tmp_path):
    out = tmp_path / "w1.png"
    done = run_fastpg("weights", str(tiny_run), "-o", str(out), cwd=tmp_path)  # --neurons 40 > 8 hidden units: all 8
    assert done.returncode == 0, done.stderr
    assert_image(out, (500, 200))
    assert_image(tmp_path / "w1-w2.png", (500, 200))


def test_weights_tiles_show_each_row_of_w1(tmp_path):
    # Neuron 0 is +1 on the left half, -1 on the right; its tile must be white then black.
    W1 = np.zeros((2, 6400))
    W1[0].reshape(80, 80)[:, :40] = 1.0
    W1[0].reshape(80, 80)[:, 40:] = -1.0
    W1[1] = np.linspace(-1, 1, 6400)
    out, w2_out = tmp_path / "w.png", tmp_path / "w2.png"
    assert viz.plot_weights(W1, np.array([0.5, -0.5]), str(out), str(w2_out), neurons=1) == 1
    with Image.open(out) as image:
        grey = np.asarray(image.convert("L"))
    black = grey < 5  # the right half of the only tile, and some title text
    cols, = np.nonzero(black.sum(axis=0) > 50)
    rows, = np.nonzero(black.sum(axis=1) > 30)
    top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()
    width = right - left + 1
    assert width > 30 and abs((bottom - top + 1) - 2 * width) < 10  # 40 pixels wide, 80 tall, zoomed
    assert np.all(grey[top:bottom + 1, left:right + 1] < 5)
    assert np.all(grey[top:bottom + 1, left - width + 5:left - 5] > 250)  # the white (left) half


def test_weights_tile_of_a_network_seeing_the_frame_is_the_difference_above_the_frame(tmp_path):
    # Neuron 0 is +1 on its difference block and -1 on its frame block: a white tile over a black one.
    W1 = np.zeros((1, 12800))
    W1[0, :6400], W1[0, 6400:] = 1.0, -1.0
    out, w2_out = tmp_path / "w.png", tmp_path / "w2.png"
    assert viz.plot_weights(W1, np.array([0.5]), str(out), str(w2_out), neurons=1) == 1
    with Image.open(out) as image:
        grey = np.asarray(image.convert("L"))
    black = grey < 5
    rows, = np.nonzero(black.sum(axis=1) > 30)
    cols, = np.nonzero(black.sum(axis=0) > 30)
    top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()  # the frame block: black
    size = bottom - top + 1
    assert size > 30 and abs((right - left + 1) - size) < 5  # a square, 80x80 zoomed
    assert np.all(grey[top - size + 3:top - 3, left + 3:right - 3] > 250)  # the difference block above: white
    # the tile's coloured border runs just above the difference block, not above the frame block
    border = grey[top - size - 4:top - size + 3, left + 3:right - 3]
    assert np.any(np.all(border < 200, axis=1))
    assert np.all(grey[top - 3:top, left + 3:right - 3] > 250)


def test_minus_init_of_a_network_seeing_the_frame():
    from fastpg.policy import ActorCriticSpec

    spec = ActorCriticSpec(3, inputs="difference+frame")
    initial = spec.initial_parameters(11)["W1"]
    change = np.zeros_like(initial)
    change[1, 7000:7100] = 0.05
    np.testing.assert_allclose(viz.change_since_init(initial + change, {"hidden": 3, "seed": 11}, spec), change,
                               rtol=1e-12, atol=1e-15)


def test_minus_init_recovers_what_training_changed():
    from fastpg.policy import PolicySpec

    initial = PolicySpec(3).initial_parameters(11)["W1"]
    change = np.zeros_like(initial)
    change[1, 100:200] = 0.05  # a trained run changes only pixels that ever move
    np.testing.assert_allclose(viz.change_since_init(initial + change, {"hidden": 3, "seed": 11}), change,
                               rtol=1e-12, atol=1e-15)
    with pytest.raises(viz.VizError, match="initial weights"):
        viz.change_since_init(initial + change, {"hidden": 3, "seed": 12})


def test_output_weight_frames_neurons_by_the_actions_they_favour():
    rng = np.random.default_rng(0)
    W_pi, w_v = rng.standard_normal((3, 5)), rng.standard_normal(5)
    three, actions = {"W_pi": W_pi, "w_v": w_v}, ("NOOP", "RIGHT", "LEFT")
    pong = viz.output_weight(three, actions, pair=("RIGHT", "LEFT"))  # the game's pair, when the run plays both
    np.testing.assert_array_equal(pong.values, W_pi[1] - W_pi[2])
    assert (pong.towards, pong.away) == ("RIGHT", "LEFT")
    chosen = viz.output_weight(three, actions, ("LEFT", "NOOP"), pair=("RIGHT", "LEFT"))
    np.testing.assert_array_equal(chosen.values, W_pi[2] - W_pi[0])
    assert (chosen.towards, chosen.away) == ("LEFT", "NOOP") and "W_pi[LEFT] - W_pi[NOOP]" in chosen.meaning
    for pair in (None, ("UP", "NOOP")):  # no pair among its actions: the value head
        value = viz.output_weight(three, actions, pair=pair)
        assert value.values is w_v and value.meaning.startswith("w_v")
    two = viz.output_weight({"W_pi": W_pi[:2], "w_v": w_v}, ("RIGHT", "LEFT"), pair=("UP", "DOWN"))
    np.testing.assert_array_equal(two.values, W_pi[0] - W_pi[1])
    reinforce = viz.output_weight({"W2": w_v}, ("RIGHT", "LEFT"), pair=("RIGHT", "LEFT"))
    assert reinforce.values is w_v and (reinforce.towards, reinforce.away) == ("RIGHT", "LEFT")
    with pytest.raises(viz.VizError, match="single output weight"):
        viz.output_weight({"W2": w_v}, ("RIGHT", "LEFT"), ("LEFT", "RIGHT"))
    for contrast in (("RIGHT", "FIRE"), ("LEFT", "LEFT"), ("NOOP", "RIGHT", "LEFT"), ("RIGHT",)):
        with pytest.raises(viz.VizError, match=r"two distinct actions of the run \(NOOP, RIGHT, LEFT\)"):
            viz.output_weight(three, actions, contrast)


def test_weights_minus_init(tiny_run, tmp_path, capsys):
    out = tmp_path / "change.png"
    code, stdout, err = run_cli(capsys, "weights", str(tiny_run), "-o", str(out), "--minus-init", "--neurons", "4")
    assert code == 0, err
    assert_image(out, (400, 200))


# ---------------------------------------------------------------------------- video

def test_video_writes_a_gif(tiny_run, tmp_path):
    out = tmp_path / "play.gif"
    done = run_fastpg("video", str(tiny_run), "-o", str(out), "--max-frames", "30", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "30 frames" in done.stdout
    with Image.open(out) as gif:
        assert gif.n_frames == 30
        assert gif.size == (640, 420)
        gif.seek(29)
        last = np.asarray(gif.convert("RGB"), dtype=np.float64)
    assert last.std() > 10


def test_video_gif_frames_are_the_rendered_frames(tiny_run, tmp_path):
    import imageio.v3 as iio

    from fastpg import checkpoint

    arrays, _ = checkpoint.load(str(tiny_run))
    out = tmp_path / "small.gif"
    from fastpg.policy import PolicySpec

    params = {"W1": arrays["W1"], "W2": arrays["W2"]}
    result, frames = viz.record_video(params, PolicySpec(arrays["W2"].shape[0]), "ALE/Pong-v5", str(out),
                                      greedy=True, max_frames=12, every=1, scale=1)
    assert (frames, result.steps, result.finished) == (12, 12, False)
    decoded = iio.imread(out)
    assert decoded.shape == (12, 210, 320, 3)
    assert len({frame.tobytes() for frame in decoded}) > 1  # it moves
    # the game half is the emulator's frame, in its own colours
    assert set(map(tuple, decoded[-1, :, :160].reshape(-1, 3))) <= {
        (0, 0, 0), (144, 72, 17), (92, 186, 92), (213, 130, 74), (236, 236, 236),
        (109, 118, 43), (53, 95, 24), (101, 111, 228), (210, 182, 86)}


@pytest.mark.parametrize("sees_frame", [False, True])
def test_video_panel_shows_what_the_policy_sees(sees_frame):
    """The difference at zoom 2 alone; with the frame, the difference and the binary frame side by side
    at zoom 1 (scale 1: the panel starts at x 160, y 12)."""
    renderer = viz.FrameRenderer(scale=1, sees_frame=sees_frame)
    diff, current = np.zeros(6400, dtype=np.int8), np.zeros(6400, dtype=np.int8)
    diff[5 * 80 + 7], diff[6 * 80 + 7] = 1, -1
    current[30 * 80 + 50] = 1
    canvas = renderer.render(np.zeros((210, 160, 3), dtype=np.uint8), diff, "UP", 0.5, "score 0", 0, current)
    assert canvas.shape == (210, 320, 3)
    zoom = 1 if sees_frame else 2
    diff_view = canvas[12:12 + 80 * zoom:zoom, 160:160 + 80 * zoom:zoom, 0]
    assert (diff_view == np.array([0, 128, 255], dtype=np.uint8)[diff.reshape(80, 80) + 1]).all()
    if sees_frame:
        frame_view = canvas[12:92, 240:320, 0]
        assert (frame_view == np.where(current.reshape(80, 80) == 1, 255, 128)).all()


def test_gif_writer_is_exact_and_survives_many_colours(tmp_path):
    rng = np.random.default_rng(0)
    frames = []
    for k in range(6):
        frame = np.zeros((30, 40, 3), dtype=np.uint8)
        frame[k * 4:k * 4 + 4, 5:15] = (255, 40 * k, 0)
        frames.append(frame)
    frames[3] = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)  # > 256 colours: quantised
    writer = viz._GifWriter(str(tmp_path / "t.gif"), 100)
    for frame in frames:
        writer.write(frame)
    writer.close()
    with Image.open(tmp_path / "t.gif") as gif:
        decoded = []
        for i in range(gif.n_frames):
            gif.seek(i)
            decoded.append(np.asarray(gif.convert("RGB")))
    assert len(decoded) == 6
    for i in (0, 1, 2, 4, 5):
        np.testing.assert_array_equal(decoded[i], frames[i])
    assert np.abs(decoded[3].astype(int) - frames[3]).mean() < 20


@pytest.mark.skipif(importlib.util.find_spec("imageio_ffmpeg") is None, reason="imageio-ffmpeg not installed")
def test_video_writes_an_mp4(tiny_run, tmp_path, capsys):
    import imageio.v2 as imageio

    out = tmp_path / "play.mp4"
    code, _, err = run_cli(capsys, "video", str(tiny_run), "-o", str(out), "--max-frames", "8")
    assert code == 0, err
    with imageio.get_reader(str(out), format="FFMPEG") as reader:
        frames = [frame for frame in reader]
    assert len(frames) == 8 and frames[0].shape == (420, 640, 3)


def test_mp4_without_ffmpeg_says_what_to_install(tiny_run, tmp_path, capsys, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "imageio_ffmpeg" else find_spec(name, *a))
    code, _, err = run_cli(capsys, "video", str(tiny_run), "-o", str(tmp_path / "play.mp4"))
    assert_one_line_error(code, err, "video")
    assert "pip install imageio-ffmpeg" in err[0]
    assert not (tmp_path / "play.mp4").exists()


# ---------------------------------------------------------------------------- failures

@pytest.mark.parametrize("command, module", [("plot", "matplotlib"), ("weights", "matplotlib"),
                                             ("video", "PIL"), ("video", "imageio")])
def test_missing_extra_names_the_install_command(command, module, tiny_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    out = tmp_path / ("x.gif" if command == "video" else "x.png")
    code, _, err = run_cli(capsys, command, str(tiny_run), "-o", str(out))
    assert_one_line_error(code, err, command)
    assert 'pip install "fastpg[viz]"' in err[0] and 'pip install ".[viz]"' in err[0]


def bad_cases(tiny_run, tmp_path):
    corrupt_run = tmp_path / "corrupt"
    corrupt_run.mkdir()
    (corrupt_run / "checkpoint.npz").write_bytes(b"not a checkpoint")
    (corrupt_run / "metrics.csv").write_text("episode,reward\n1,oops\n")
    empty_run = tmp_path / "empty"
    empty_run.mkdir()
    (empty_run / "metrics.csv").write_text("episode,env_steps,reward,running_reward,seconds,steps_per_second\n")
    missing = tmp_path / "missing"
    good = str(tiny_run)
    return {
        "plot missing run": ("plot", [str(missing), "-o", str(tmp_path / "c.png")]),
        "plot corrupt metrics": ("plot", [good, str(corrupt_run), "-o", str(tmp_path / "c.png")]),
        "plot empty metrics": ("plot", [str(empty_run), "-o", str(tmp_path / "c.png")]),
        "plot bad extension": ("plot", [good, "-o", str(tmp_path / "c.jpeg")]),
        "weights corrupt checkpoint": ("weights", [str(corrupt_run), "-o", str(tmp_path / "w.png")]),
        "weights missing dir": ("weights", [good, "-o", str(missing / "w.png")]),
        "weights output is a dir": ("weights", [good, "-o", str(tmp_path)]),
        "weights no neurons": ("weights", [good, "-o", str(tmp_path / "w.png"), "--neurons", "0"]),
        "video missing run": ("video", [str(missing), "-o", str(tmp_path / "v.gif")]),
        "video bad extension": ("video", [good, "-o", str(tmp_path / "v.avi")]),
        "video output under a file": ("video", [good, "-o", str(tiny_run / "metrics.csv" / "v.gif")]),
        "video bad every": ("video", [good, "-o", str(tmp_path / "v.gif"), "--every", "0"]),
    }


@pytest.mark.parametrize("case", [
    "plot missing run", "plot corrupt metrics", "plot empty metrics", "plot bad extension",
    "weights corrupt checkpoint", "weights missing dir", "weights output is a dir", "weights no neurons",
    "video missing run", "video bad extension", "video output under a file", "video bad every",
])
def test_bad_inputs_and_outputs_give_one_line_errors(case, tiny_run, tmp_path, capsys):
    command, args = bad_cases(tiny_run, tmp_path)[case]
    before = set(os.listdir(tmp_path))
    code, _, err = run_cli(capsys, command, *args)
    assert_one_line_error(code, err, command)
    assert set(os.listdir(tmp_path)) == before  # nothing written, not even a temporary file


def test_errors_have_no_traceback_in_a_real_process(tmp_path):
    done = run_fastpg("weights", str(tmp_path / "missing"), "-o", str(tmp_path / "w.png"), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"fastpg weights: error: no checkpoint at {tmp_path / 'missing'}"]
