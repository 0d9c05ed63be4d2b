"""The agent playing (fastpg video): each frame shows the game, what the policy saw (the difference
frame, and the binary frame for a network that sees it), the action taken and its probability, and
the score."""
import importlib.util

import numpy as np

from .output import MissingDependency, _atomic_output, check_output, require
from .weights import UP_RGB
from .writers import _GifWriter, _Mp4Writer

FRAME_HEIGHT, FRAME_WIDTH = 210, 160
EMULATOR_FPS = 60  # Atari frames a second; an agent step lasts the env's frameskip of them
VIDEO_EXTENSIONS = (".gif", ".mp4")
BACKGROUND = (24, 24, 24)
TEXT = (235, 235, 235)


def check_video_output(path):
    """check_output for a video, plus the ffmpeg plugin that .mp4 needs."""
    require("video", "PIL", "imageio")
    extension = check_output(path, VIDEO_EXTENSIONS)
    if extension == ".mp4" and importlib.util.find_spec("imageio_ffmpeg") is None:
        raise MissingDependency("writing .mp4 needs imageio-ffmpeg, which is not installed: "
                                "pip install imageio-ffmpeg (or write a .gif)")
    return extension


class FrameRenderer:
    """Composes one video frame: the game, the 80x80 difference frame the policy saw, the action and its
    probability, and the score.

    scale is the integer zoom of the game (the difference frame gets 2*scale,
    so both halves are equally wide). With sees_frame, the policy also saw the
    current binary frame: the difference and the frame then sit side by side,
    each at zoom scale. Output is uint8 (210*scale, 320*scale, 3).
    """

    def __init__(self, scale=2, sees_frame=False):
        from PIL import ImageFont

        self.scale = scale
        self.width = 2 * FRAME_WIDTH * scale
        self.height = FRAME_HEIGHT * scale
        self.panel_x = FRAME_WIDTH * scale
        self.diff_top = 12 * scale
        self.sees_frame = sees_frame
        self.diff_zoom = scale if sees_frame else 2 * scale
        self.panel_width = 80 * 2 * scale
        self.panel_height = 80 * self.diff_zoom
        try:
            self.font = ImageFont.load_default(size=6 * scale + 1)
        except TypeError:  # Pillow < 10.1: a fixed bitmap font
            self.font = ImageFont.load_default()
        self._diff_levels = np.array([0, 128, 255], dtype=np.uint8)  # -1, 0, +1

    def render(self, frame, diff, action_name, probability, score, step, current=None):
        """diff and current: the 6400 pixels of the difference and the binary frame (current is drawn
        only with sees_frame); score: the text of the score so far (Pong: "agent 3 : 5 cpu")."""
        from PIL import Image, ImageDraw

        s = self.scale
        canvas = np.empty((self.height, self.width, 3), dtype=np.uint8)
        canvas[:] = BACKGROUND
        canvas[:, :self.panel_x] = frame.repeat(s, axis=0).repeat(s, axis=1)
        top, left, zoom = self.diff_top, self.panel_x, self.diff_zoom
        views = [diff] + ([current] if self.sees_frame else [])
        for i, pixels in enumerate(views):
            grey = self._diff_levels[pixels.reshape(80, 80).astype(np.int8) + 1]
            x = left + i * 80 * zoom
            canvas[top:top + 80 * zoom, x:x + 80 * zoom] = grey.repeat(zoom, axis=0).repeat(zoom, axis=1)[:, :, None]

        image = Image.fromarray(canvas)
        draw = ImageDraw.Draw(image)
        draw.fontmode = "1"  # no anti-aliasing: a handful of exact colours keeps the GIF small
        label = "the policy sees: difference | frame" if self.sees_frame else "what the policy sees: 80x80 difference"
        draw.text((left + 3 * s, 2 * s), label, font=self.font, fill=TEXT)
        y = top + self.panel_height + 3 * s
        bar_left, bar_right = left + 3 * s, left + self.panel_width - 3 * s
        draw.text((bar_left, y), f"{action_name}  P {probability:.2f}", font=self.font, fill=UP_RGB)
        y += 9 * s
        bar_height = 5 * s
        draw.rectangle((bar_left, y, bar_right, y + bar_height), outline=TEXT, fill=(60, 60, 60))
        filled = bar_left + round((bar_right - bar_left) * probability)
        if filled > bar_left:
            draw.rectangle((bar_left, y, filled, y + bar_height), fill=UP_RGB)
        middle = (bar_left + bar_right) // 2
        draw.line((middle, y - s, middle, y + bar_height + s), fill=TEXT, width=1)
        y += bar_height + 3 * s
        draw.text((bar_left, y), f"{score}   step {step}", font=self.font, fill=TEXT)
        return np.asarray(image)



def record_video(params, spec, env_id, output, seed=0, greedy=False, max_frames=None, every=2, fps=None,
                 scale=2, on_frame=None, backend="cython"):
    """Play game 0 of ``seed`` (see fastpg.evaluate) with the policy ``spec`` and its ``params``,
    and write it as a GIF or MP4.

    One video frame per ``every`` agent steps, at most ``max_frames`` of them
    (default: the whole game). fps defaults to real time.
    Returns (GameResult, frames written).
    """
    from ..backends import get_backend
    from ..env import atari_settings
    from ..evaluate import GameResult
    from ..games import action_names, game_profile
    from ..rollout import Player, PlayerSettings

    extension = check_video_output(output)
    if every < 1:
        raise ValueError(f"--every must be at least 1, got {every}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"--max-frames must be at least 1, got {max_frames}")
    if scale < 1:
        raise ValueError(f"--scale must be at least 1, got {scale}")
    if fps is None:
        frameskip = atari_settings(env_id).get("frameskip", 4)
        mean_frameskip = frameskip if isinstance(frameskip, int) else (frameskip[0] + frameskip[1] - 1) / 2
        fps = EMULATOR_FPS / mean_frameskip / every
    if not fps > 0:
        raise ValueError(f"--fps must be positive, got {fps}")
    player = Player(PlayerSettings(spec, env_id, backend=backend, seed=seed, greedy=greedy, record=False), params)
    preprocess = get_backend(backend).preprocess
    rule, names, rallies = spec.frame, action_names(env_id), game_profile(env_id).rallies
    renderer = FrameRenderer(scale, sees_frame=getattr(spec, "inputs", "difference") == "difference+frame")
    state = {"previous": None, "points_for": 0, "points_against": 0, "written": 0}

    def on_step(frame, stepper, action, rewards):
        current = preprocess(frame, first_row=rule.first_row, foreground=rule.table())
        previous = state["previous"]
        diff = np.zeros_like(current) if previous is None else current - previous
        state["previous"] = current
        step = len(rewards)
        if step:  # the score after the previous step
            state["points_for"] += max(int(rewards[-1]), 0)
            state["points_against"] += max(-int(rewards[-1]), 0)
        if step % every == 0:
            score = (f"agent {state['points_for']} : {state['points_against']} cpu" if rallies
                     else f"score {state['points_for'] - state['points_against']}")
            writer.write(renderer.render(frame, diff, names[action], _probability(spec, stepper, action), score,
                                         step, current))
            state["written"] += 1
            if on_frame is not None:
                on_frame()

    max_steps = None if max_frames is None else max_frames * every
    with _atomic_output(output) as tmp:
        if extension == ".gif":  # GIF delays are in 1/100 s, and viewers slow anything under 2/100 s
            writer = _GifWriter(tmp, 10 * max(2, round(100 / fps)))
        else:
            writer = _Mp4Writer(tmp, fps)
        try:
            result = GameResult.of(player.play(0, max_steps=max_steps, on_step=on_step))
        finally:
            writer.close()
    return result, state["written"]


def _probability(spec, stepper, action):
    """The probability the policy gave the action it took at its last step."""
    if hasattr(stepper, "probs"):  # the softmax head
        return float(stepper.probs[stepper.choice])
    return stepper.p if action == spec.actions[0] else 1.0 - stepper.p
