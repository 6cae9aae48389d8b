"""The synthetic shapes world: its vocabulary (SHAPES, COLOURS, SIZES, MOTIONS, AXES), the
generator's settings (SyntheticOptions), one object (ShapeObject), drawing (shape_mask,
render_frames) and motion (trajectory, motion_axis).

Used by :mod:`rvoslib.data.synthetic` (videos), :mod:`rvoslib.data.expressions` (referring
expressions) and :mod:`rvoslib.data.scenes` (still and motion scenes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

SHAPES = ("circle", "square", "triangle", "diamond")
COLOURS = {
    "red": (220, 50, 50),
    "green": (50, 180, 70),
    "blue": (50, 100, 235),
    "yellow": (240, 210, 40),
    "purple": (155, 70, 205),
    "white": (240, 240, 240),
}
SIZES = {"small": 0.085, "large": 0.15}  # radius as a fraction of the frame side
MOTIONS = ("static", "left", "right", "up", "down", "bouncing")


@dataclass
class SyntheticOptions:
    """Generator settings (all have defaults; ``write_synthetic_dataset`` takes them as keywords)."""

    num_frames: int = 12  # frames per video
    size: int = 64  # frame side in pixels (square frames)
    min_objects: int = 2  # objects per video, inclusive range
    max_objects: int = 4
    hard: bool = False  # every video gets twins (appearance-sharing distractors)
    twin_prob: float = 0.5  # chance of a twin group per video when not hard
    # twins move along one axis (left/right, or up/down/bouncing), so only the frames' order tells them
    # apart: a reader of unordered positions cannot resolve their motion sentences (needs hard)
    same_axis: bool = False
    max_expressions: int = 8  # per video
    image_format: str = "png"  # frames as "png" (exact colours, ~5x smaller here) or "jpg" (quality 95)

    def check(self) -> None:
        """Raise ValueError naming the bad option."""
        if self.num_frames < 2:
            raise ValueError(f"num_frames must be >= 2 (motion needs several frames), got {self.num_frames}")
        if self.size < 32:
            raise ValueError(f"size must be >= 32 pixels, got {self.size}")
        if not 2 <= self.min_objects <= self.max_objects <= 6:
            raise ValueError(f"need 2 <= min_objects <= max_objects <= 6, got {self.min_objects}, {self.max_objects}")
        if self.image_format not in ("jpg", "png"):
            raise ValueError(f"image_format must be 'jpg' or 'png', got {self.image_format!r}")
        if self.max_expressions < 1:
            raise ValueError(f"max_expressions must be >= 1, got {self.max_expressions}")
        if self.same_axis and not self.hard:
            raise ValueError("same_axis needs hard=True (it constrains the twins that hard videos have)")


@dataclass
class ShapeObject:
    """One object of a synthetic video.

    Attributes:
        obj_id: palette value in the masks (1..n).
        shape, colour, size, motion: its attributes (see SHAPES, COLOURS, SIZES, MOTIONS).
        centres: (F, 2) float centre (x, y) per frame, in pixels.
        radius: in pixels.
    """

    obj_id: int
    shape: str
    colour: str
    size: str
    motion: str
    centres: np.ndarray
    radius: float

    def appearance(self) -> tuple[str, str, str]:
        """(size, colour, shape): objects with equal appearance are twins."""
        return (self.size, self.colour, self.shape)


# ----------------------------------------------------------------------------- drawing


def shape_mask(shape: str, centre: Sequence[float], radius: float, size: int) -> np.ndarray:
    """Pixels (centres at integer coordinates) inside a shape: (size, size) bool.

    Args:
        shape: one of SHAPES.
        centre: (x, y) in pixels.
        radius: half the shape's extent, in pixels.
    """
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    dx, dy = xs - centre[0], ys - centre[1]
    if shape == "circle":
        return dx**2 + dy**2 <= radius**2
    if shape == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) <= 0.82 * radius
    if shape == "diamond":
        return np.abs(dx) + np.abs(dy) <= 1.2 * radius
    if shape == "triangle":  # pointing up: apex 1.15 r above the centre, base 0.8 r below
        height = 1.95 * radius
        half_width = 1.15 * radius * (dy + 1.15 * radius) / height
        return (dy <= 0.8 * radius) & (dy >= -1.15 * radius) & (np.abs(dx) <= half_width)
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def render_frames(
    objects: Sequence[ShapeObject], size: int, background: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Draw objects in list order (later ones in front).

    Returns:
        frames (F, S, S, 3) uint8 and id maps (F, S, S) uint8 (each object's visible pixels).
    """
    num_frames = len(objects[0].centres)
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    id_maps = np.zeros((num_frames, size, size), dtype=np.uint8)
    frames[:] = np.asarray(background, dtype=np.uint8)
    for t in range(num_frames):
        for obj in objects:
            inside = shape_mask(obj.shape, obj.centres[t], obj.radius, size)
            frames[t][inside] = COLOURS[obj.colour]
            id_maps[t][inside] = obj.obj_id
    return frames, id_maps


# ----------------------------------------------------------------------------- motion


def trajectory(motion: str, radius: float, num_frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Centres (F, 2) of one object, keeping the whole shape inside the frame.

    Linear motions travel 30-45% of the frame side over the video; bouncing oscillates
    vertically with amplitude 10-15% of the side and a period of 40-65% of the video.
    """
    reach = 1.25 * radius  # every shape lies within 1.2 r of its centre (diamond tips, triangle apex)
    low, high = reach + 1.0, size - 2.0 - reach  # allowed centre range: at least one pixel of margin
    t = np.arange(num_frames, dtype=np.float64)
    if motion in ("left", "right", "up", "down"):
        distance = rng.uniform(0.30, 0.45) * size
        start = rng.uniform(low + distance, high) if motion in ("left", "up") else rng.uniform(low, high - distance)
        other = rng.uniform(low, high)
        sign = -1.0 if motion in ("left", "up") else 1.0
        moving = start + sign * distance * t / (num_frames - 1)
        fixed = np.full(num_frames, other)
        return np.stack([moving, fixed] if motion in ("left", "right") else [fixed, moving], axis=1)
    if motion == "bouncing":
        amplitude = rng.uniform(0.10, 0.15) * size
        period = rng.uniform(0.40, 0.65) * num_frames
        phase = rng.uniform(0, 2 * np.pi)
        y = rng.uniform(low + amplitude, high - amplitude) + amplitude * np.sin(2 * np.pi * t / period + phase)
        return np.stack([np.full(num_frames, rng.uniform(low, high)), y], axis=1)
    if motion == "static":
        return np.tile([rng.uniform(low, high), rng.uniform(low, high)], (num_frames, 1))
    raise ValueError(f"unknown motion {motion!r}; expected one of {MOTIONS}")


AXES = (("left", "right"), ("up", "down", "bouncing"))  # motions an unordered reader cannot tell apart


def motion_axis(motion: str) -> str:
    """"still", "horizontal" or "vertical": what an unordered set of an object's positions shows of its
    motion (one of MOTIONS). Motions that share an axis (AXES) need the frames' order to tell apart."""
    if motion not in MOTIONS:
        raise ValueError(f"unknown motion {motion!r}; expected one of {MOTIONS}")
    return "still" if motion == "static" else ("horizontal" if motion in AXES[0] else "vertical")
