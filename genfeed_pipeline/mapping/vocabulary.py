"""The input names that mean the same thing across fal's models, in the order they are looked for.

One vocabulary for the mapper (capabilities: how many outputs, does it take text) and for pricing (which
input sets the billed quantity): a name added here is understood by both.
"""

from __future__ import annotations

OUTPUT_COUNT = (
    "num_images",
    "num_outputs",
    "num_videos",
    "num_audios",
    "num_samples",
    "num_generations",
    "number_of_images",
    "batch_size",
    "n",
)
"""How many outputs one request makes."""

IMAGE_SIZE = "image_size"
"""fal's image size input: a preset name or `{width, height}` (the mapper lists its presets)."""
SIZE = (IMAGE_SIZE, "video_size", "size", "output_size")
"""An output size: one of fal's presets, `{width, height}`, or "WxH"."""

WIDTH = ("width",)
HEIGHT = ("height",)
ASPECT_RATIO = ("aspect_ratio",)
RESOLUTION = ("resolution",)

DURATION = (
    "duration",
    "duration_seconds",
    "seconds_total",
    "total_seconds",
    "seconds",
    "audio_length",
    "music_duration",
    "video_length",
    "length_seconds",
    "audio_duration",
    "target_duration",
)
"""Seconds of media asked for: `5`, `"5"`, `"8s"`, or an option such as `"auto"`."""

FRAMES = ("num_frames", "number_of_frames", "frames")
FPS = ("frames_per_second", "fps", "frame_rate")

TEXT = (
    "text",
    "prompt",
    "input",
    "script",
    "lyrics",
    "gen_text",
    "input_text",
    "text_input",
    "messages",
    "content",
    "preview_text",
    "query",
    "question",
)
"""The text a request sends: what characters and tokens are counted on, and what makes "text" an input."""

STEPS = (
    "steps",
    "number_of_steps",
    "num_steps",
    "max_train_steps",
    "training_steps",
    "max_steps",
    "num_train_steps",
    "iterations",
)
"""Training steps of a trainer."""


def first_present(names: tuple[str, ...], properties: dict) -> str | None:
    """The first of `names` that the schema's properties have."""
    return next((name for name in names if name in properties), None)
