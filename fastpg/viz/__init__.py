"""Pictures of a run: learning curves, the learned weights, and the agent playing.

Needs the ``viz`` extra (matplotlib, imageio, Pillow; .mp4 also imageio-ffmpeg).
Importing this package needs only numpy; each entry point checks for the extra
first and raises :class:`MissingDependency` with the install command.

One module a command: ``curves`` (fastpg plot), ``weights`` (fastpg weights),
``video`` (fastpg video, writing frames through ``writers``); ``output`` holds
what they share (errors, the extra's check, safe output paths).
"""
from .curves import find_metrics, plot_curves, read_curve, run_labels
from .output import VIZ_INSTALL, MissingDependency, VizError, check_output, require
from .video import FrameRenderer, check_video_output, record_video
from .weights import OutputWeight, change_since_init, default_w2_output, output_weight, plot_weights
from .writers import _GifWriter  # noqa: F401  (the GIF writer's own tests reach it as viz._GifWriter)

__all__ = [
    "VIZ_INSTALL", "MissingDependency", "VizError", "check_output", "require",
    "find_metrics", "read_curve", "run_labels", "plot_curves",
    "default_w2_output", "change_since_init", "OutputWeight", "output_weight", "plot_weights",
    "check_video_output", "FrameRenderer", "record_video",
]
