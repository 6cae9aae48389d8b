"""Side-by-side panels, one per sentence: the picture ``rvoslib segment --panels`` writes.

Each panel is the frame with one sentence's mask drawn in that sentence's bright colour
(a translucent fill, a full-colour outline and a thin black halo just outside it, so the
outline reads on dark and bright backgrounds alike), with the sentence written above it
in the same colour, wrapped to the panel's width. Small frames are enlarged by a whole
factor with nearest-neighbour (pixels stay sharp squares) until the panel's short side
is at least ``panel_size``; larger frames keep their size, they are never shrunk. An
optional line under the panels carries one label per frame (e.g. "frame 3 / 12").

Only numpy and PIL (``ImageDraw`` with Pillow's built-in default font, so there is no
font file to find and no matplotlib)::

    compose_panels(frames (T, H, W, 3) uint8, masks (P, T, H, W) bool, P sentences)
        -> (T, H', W', 3) uint8, W' = P * s * W + (P - 1) * GAP, H' = header + s * H (+ footer)

where ``s = upscale_factor(H, W, panel_size)``.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Optional, Sequence

import numpy as np

from rvoslib.viz import inner_boundary, overlay_masks

logger = logging.getLogger(__name__)

PANEL_COLORS = np.array([  # one per sentence, bright so they read on dark frames; cycled after 8
    (0, 255, 255),  # cyan
    (255, 64, 255),  # magenta
    (255, 230, 0),  # yellow
    (64, 255, 64),  # lime
    (255, 140, 0),  # orange
    (100, 170, 255),  # sky blue
    (255, 120, 160),  # pink
    (255, 255, 255),  # white
], dtype=np.uint8)
BACKGROUND = (52, 52, 58)  # behind the text and between panels: lighter than most dark frames
RULE = 3  # pixels of the sentence's colour under its text, above its frame
HALO = (0, 0, 0)  # thin line just outside each outline
LABEL_COLOR = (210, 210, 210)  # the per-frame label under the panels
GAP = 4  # pixels between two panels
DEFAULT_PANEL_SIZE = 256


# --------------------------------------------------------------------------- geometry


def panel_colors(n: int) -> np.ndarray:
    """(n, 3) uint8 colours of sentences 0..n-1 (``PANEL_COLORS``, cycled)."""
    return PANEL_COLORS[np.arange(n) % len(PANEL_COLORS)]


def upscale_factor(height: int, width: int, panel_size: int = DEFAULT_PANEL_SIZE) -> int:
    """The smallest whole factor s >= 1 with ``s * min(height, width) >= panel_size``.

    1 when the frame is already that large: panels are enlarged, never shrunk.
    """
    if isinstance(panel_size, bool) or not isinstance(panel_size, (int, np.integer)) or panel_size < 1:
        raise ValueError(f"panel_size must be an integer >= 1 (pixels), got {panel_size!r}")
    return max(1, math.ceil(int(panel_size) / min(height, width)))


def upscale_nearest(array: np.ndarray, factor: int) -> np.ndarray:
    """Repeat every pixel ``factor`` times along H and W: (T, H, W[, 3]) -> (T, sH, sW[, 3])."""
    if factor == 1:
        return array
    return np.repeat(np.repeat(array, factor, axis=1), factor, axis=2)


def _outline_width(height: int, width: int) -> int:
    """Outline thickness in output pixels: 2 for a 256 px panel, thicker for big frames."""
    return max(2, round(min(height, width) / 128))


def _font_size(panel_width: int) -> int:
    """Text size in pixels for a panel of this width (18 px at 256 px, 12..32)."""
    return int(np.clip(round(panel_width / 14), 12, 32))


# --------------------------------------------------------------------------- text


def load_font(size: int) -> Any:
    """Pillow's built-in default font at ``size`` px (Pillow >= 10.1 with FreeType).

    Older Pillow, or one built without FreeType, gives its small fixed bitmap font.
    """
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError) as error:
        logger.debug("no scalable default font (%s); using the bitmap one", error)
        return ImageFont.load_default()


def _text_width(font: Any, text: str) -> float:
    return float(font.getlength(text))


def wrap_text(text: str, font: Any, width: int) -> list[str]:
    """Split ``text`` into lines no wider than ``width`` px (at word breaks; long words are cut)."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if _text_width(font, candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = word
        while len(line) > 1 and _text_width(font, line) > width:  # a word wider than the panel
            cut = len(line) - 1
            while cut > 1 and _text_width(font, line[:cut]) > width:
                cut -= 1
            lines.append(line[:cut])
            line = line[cut:]
    if line:
        lines.append(line)
    return lines or [""]


def _line_height(font: Any) -> int:
    ascent, descent = font.getmetrics()
    return int(ascent + descent)


def text_strip(lines: Sequence[str], width: int, height: int, font: Any, color: Sequence[int],
               margin: int) -> np.ndarray:
    """(height, width, 3) uint8: ``lines`` written top-left (after ``margin`` px) on ``BACKGROUND``."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    step = _line_height(font)
    for n, line in enumerate(lines):
        draw.text((margin, margin + n * step), line, fill=tuple(int(c) for c in color), font=font)
    return np.asarray(image, dtype=np.uint8)


def _strip_height(num_lines: int, font: Any, margin: int) -> int:
    """Pixels for ``num_lines`` lines, a margin above and below and a rule, rounded up to even (for H.264)."""
    height = 2 * margin + num_lines * _line_height(font) + RULE
    return height + height % 2


# --------------------------------------------------------------------------- panels


def draw_mask(frames: np.ndarray, mask: np.ndarray, color: Sequence[int], alpha: float, width: int) -> np.ndarray:
    """(T, H, W, 3) uint8: ``mask`` (T, H, W) filled in ``color``, outlined, with a black halo outside."""
    out = overlay_masks(frames, mask, colors=np.asarray(color), alpha=alpha, boundary_width=width)
    out[inner_boundary(~mask, max(1, width // 2))] = HALO  # background pixels next to the mask
    return out


def _as_array(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def check_panel_inputs(frames: Any, masks: Any, sentences: Any,
                       frame_labels: Optional[Sequence[str]] = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Validated frames (T, H, W, 3) uint8, masks (P, T, H, W) bool and P sentences; clear errors otherwise."""
    frames = _as_array(frames)
    if frames.dtype != np.uint8:
        raise TypeError(f"frames must be uint8 RGB in [0, 255], got dtype {frames.dtype}")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"frames must have shape (T, H, W, 3) with T >= 1, got {frames.shape}")
    masks = _as_array(masks if not isinstance(masks, (list, tuple)) else [_as_array(m) for m in masks])
    if masks.ndim != 4 or masks.shape[1:] != frames.shape[:3]:
        raise ValueError(f"masks must have shape (P, T, H, W) = (P, {', '.join(map(str, frames.shape[:3]))}) "
                         f"to match frames {frames.shape}, got {masks.shape}")
    sentences = [sentences] if isinstance(sentences, str) else list(sentences)
    if len(sentences) != masks.shape[0]:
        raise ValueError(f"got {len(sentences)} sentence(s) for {masks.shape[0]} mask(s): "
                         "pass one sentence per mask, in the same order")
    for k, sentence in enumerate(sentences):
        if not isinstance(sentence, str):
            raise TypeError(f"sentence {k} must be a str, got {type(sentence).__name__}")
    if frame_labels is not None and len(frame_labels) != frames.shape[0]:
        raise ValueError(f"got {len(frame_labels)} frame_labels for {frames.shape[0]} frames")
    return frames, masks != 0, sentences


def _check_colors(colors: Any, n: int) -> np.ndarray:
    if colors is None:
        return panel_colors(n)
    colors = np.asarray(colors)
    if colors.ndim != 2 or colors.shape[1] != 3 or len(colors) < n:
        raise ValueError(f"colors must be (P, 3) RGB, one per sentence ({n}), got shape {colors.shape}")
    return colors[:n].astype(np.uint8)


def compose_panels(frames: Any, masks: Any, sentences: Sequence[str], *, panel_size: int = DEFAULT_PANEL_SIZE,
                   frame_labels: Optional[Sequence[str]] = None, colors: Any = None,
                   alpha: float = 0.45) -> np.ndarray:
    """One panel per sentence, side by side, for every frame.

    Args:
        frames: (T, H, W, 3) uint8 RGB.
        masks: (P, T, H, W) (bool, or non-zero = foreground), one mask per sentence and frame.
        sentences: the P sentences, written above their panels (wrapped to the panel width).
        panel_size: each panel's short side is enlarged (nearest-neighbour, whole factor)
            to at least this many pixels; frames already that large are not resized.
        frame_labels: optional T labels written under the panels, e.g. "frame 3 / 12".
        colors: optional (P, 3) RGB colours (default ``PANEL_COLORS``).
        alpha: opacity of the mask fill (the outline is opaque).
    Returns:
        (T, H', W', 3) uint8 with W' = P * s * W + (P - 1) * GAP and H' = s * H plus the
        text lines, s = ``upscale_factor(H, W, panel_size)``.
    """
    frames, masks, sentences = check_panel_inputs(frames, masks, sentences, frame_labels)
    num_panels, num_frames, height, width = masks.shape
    scale = upscale_factor(height, width, panel_size)
    big = upscale_nearest(frames, scale)  # (T, sH, sW, 3)
    panel_h, panel_w = height * scale, width * scale
    cols = _check_colors(colors, num_panels)
    font = load_font(_font_size(panel_w))
    margin = max(4, _font_size(panel_w) // 3)
    wrapped = [wrap_text(s, font, panel_w - 2 * margin) for s in sentences]
    header_h = _strip_height(max(len(lines) for lines in wrapped), font, margin)
    footer_h = 0 if frame_labels is None else _strip_height(1, font, margin)
    canvas = np.empty((num_frames, header_h + panel_h + footer_h, num_panels * (panel_w + GAP) - GAP, 3), np.uint8)
    canvas[:] = BACKGROUND
    line = _outline_width(panel_h, panel_w)
    for p in range(num_panels):
        x = p * (panel_w + GAP)
        canvas[:, :header_h, x:x + panel_w] = text_strip(wrapped[p], panel_w, header_h, font, cols[p], margin)
        canvas[:, header_h - RULE:header_h, x:x + panel_w] = cols[p]
        mask = upscale_nearest(masks[p], scale)  # (T, sH, sW)
        canvas[:, header_h:header_h + panel_h, x:x + panel_w] = draw_mask(big, mask, cols[p], alpha, line)
    if frame_labels is not None:
        for t, label in enumerate(frame_labels):
            canvas[t, header_h + panel_h:] = text_strip([str(label)], canvas.shape[2], footer_h, font,
                                                        LABEL_COLOR, margin)
    return canvas
