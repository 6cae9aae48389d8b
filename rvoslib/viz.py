"""Pictures of videos, masks, heat maps and training curves; the frame slider widget.

matplotlib and ipywidgets are optional (``pip install rvoslib[notebooks]``) and imported
lazily inside the functions that draw figures or build widgets, so ``import rvoslib.viz``
needs neither (the other users, :mod:`rvoslib.figures`, :mod:`rvoslib.inspector` and
:mod:`rvoslib.playground`, import them lazily too). The image
functions (``overlay_masks``, ``heatmap_overlay``, ``draw_boundaries``, ``colormap``)
are pure numpy and return uint8 RGB arrays that can be saved, shown or composed.

Conventions:

* frames are uint8 RGB, (H, W, 3) or (T, H, W, 3); masks are (H, W) or (T, H, W) and
  any non-zero value is foreground (threshold probabilities first); several objects or
  sentences are given as a list of such masks, one colour each.
* Arrays may also be torch tensors (detached and moved to the CPU here).
* Figure functions (``show_frames``, ``attention_grid``, ``plot_curves``, ``save_figure``)
  live in :mod:`rvoslib.figures` and are re-exported here (``viz.attention_grid``). They
  return a ``matplotlib.figure.Figure`` that is already closed in pyplot: it does not pile
  up in pyplot's figure list or show up twice in Jupyter. Put it last in a cell (or call
  ``IPython.display.display(fig)``) to show it, or write it with :func:`save_figure`.
"""

from __future__ import annotations

import io as _io
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .io import DAVIS_PALETTE
from .metrics import binary_dilate_disk, boundary_radius, seg2bmap


# Colours of the boundary picture (draw_boundaries), RGB uint8.
BOUNDARY_COLORS: dict[str, tuple[int, int, int]] = {
    "band": (70, 70, 110),  # tolerance band: GT boundary dilated by the F radius
    "gt_hit": (0, 210, 0),  # GT boundary pixel within tolerance of the prediction (recall hit)
    "gt_miss": (255, 160, 0),  # GT boundary pixel missed by the prediction (recall miss)
    "pred_hit": (40, 140, 255),  # predicted boundary pixel inside the band (precision hit)
    "pred_miss": (255, 30, 30),  # predicted boundary pixel outside the band (precision miss)
    "both": (255, 255, 255),  # pixel on both boundaries
}

ColorLike = Sequence[int]


# --------------------------------------------------------------------------- helpers


def _to_numpy(x: Any) -> np.ndarray:
    """numpy array from an array-like or a torch tensor (detached, on the CPU)."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _check_frames(frames: Any, name: str = "frames") -> np.ndarray:
    """Validate uint8 RGB frames: (H, W, 3) or (T, H, W, 3)."""
    arr = _to_numpy(frames)
    if arr.dtype != np.uint8:
        raise TypeError(
            f"{name} must be uint8 RGB in [0, 255], got dtype {arr.dtype}; "
            "convert with (x * 255).round().astype(np.uint8) for [0, 1] floats "
            "(undo CLIP's mean/std normalisation first)"
        )
    if arr.ndim not in (3, 4) or arr.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (H, W, 3) or (T, H, W, 3), got {arr.shape}")
    return arr


def _as_mask_list(masks: Any) -> list[np.ndarray]:
    """One mask array -> [bool array]; a list/tuple of masks -> list of bool arrays."""
    if isinstance(masks, (list, tuple)):
        return [_to_numpy(m) != 0 for m in masks]
    return [_to_numpy(masks) != 0]


def palette(n: int) -> np.ndarray:
    """Colours of objects 1..n in the DAVIS palette (index 0, black, is background).

    Returns:
        (n, 3) uint8; wraps around after 255 colours.
    """
    return DAVIS_PALETTE[1 + np.arange(n) % 255]


def _colors_for(n: int, colors: Any) -> np.ndarray:
    """(n, 3) float colours: the palette, or the given colour(s)."""
    if colors is None:
        return palette(n).astype(np.float32)
    arr = np.asarray(colors, dtype=np.float32).reshape(-1, 3)  # one colour or (k, 3)
    if len(arr) < n:
        raise ValueError(f"colors gives {len(arr)} colour(s) for {n} masks")
    return arr[:n]


def inner_boundary(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """Foreground pixels within ``width`` steps (4-neighbourhood) of the background.

    The image border does not count as background, so a mask touching the border has
    no boundary drawn along it. Used for overlay outlines; the DAVIS boundary of the
    F measure is :func:`rvoslib.metrics.seg2bmap`.

    Args:
        mask: (..., H, W) bool.
        width: outline thickness in pixels.

    Returns:
        (..., H, W) bool, a subset of ``mask``.
    """
    eroded = mask.copy()
    for _ in range(width):
        nxt = eroded.copy()
        nxt[..., 1:, :] &= eroded[..., :-1, :]
        nxt[..., :-1, :] &= eroded[..., 1:, :]
        nxt[..., :, 1:] &= eroded[..., :, :-1]
        nxt[..., :, :-1] &= eroded[..., :, 1:]
        eroded = nxt
    return mask & ~eroded


def _titles(titles: Sequence[str] | None, n: int, default: str) -> list[str]:
    """``n`` titles: the given ones (padded with "") or ``default.format(i)``."""
    if titles is None:
        return [default.format(i) for i in range(n)]
    titles = [str(t) for t in titles]
    return titles[:n] + [""] * (n - len(titles))


def _overlaid(frames: Any, masks: Any, colors: Any, alpha: float) -> np.ndarray:
    """(T, H, W, 3) uint8: frames (a single frame becomes T=1), masks overlaid if given."""
    frames = _check_frames(frames)
    if masks is not None:
        frames = overlay_masks(frames, masks, colors=colors, alpha=alpha)
    return frames[None] if frames.ndim == 3 else frames


# --------------------------------------------------------------------------- overlays


def overlay_masks(
    frames: Any,
    masks: Any,
    colors: Any = None,
    alpha: float = 0.5,
    draw_boundary: bool = True,
    boundary_width: int = 1,
) -> np.ndarray:
    """Blend coloured masks over frames, one colour per mask, outlined in full colour.

    Args:
        frames: uint8 RGB, (T, H, W, 3) or (H, W, 3).
        masks: (T, H, W) or (H, W) mask (bool / 0-1 / 0-255; non-zero = foreground),
            matching ``frames``, or a list of such masks, one per object or sentence.
            Later masks are drawn over earlier ones.
        colors: None (DAVIS palette), one RGB colour, or one RGB colour per mask.
        alpha: opacity of the mask interior.
        draw_boundary: outline each mask (its inner boundary) at full opacity.
        boundary_width: outline thickness in pixels.

    Returns:
        uint8, the shape of ``frames``; pixels outside every mask are unchanged.
    """
    frames = _check_frames(frames)
    mask_list = _as_mask_list(masks)
    cols = _colors_for(len(mask_list), colors)
    out = frames.astype(np.float32)  # (..., H, W, 3)
    for k, mask in enumerate(mask_list):
        if mask.shape != frames.shape[:-1]:
            raise ValueError(f"mask {k} has shape {mask.shape}, expected {frames.shape[:-1]} to match frames")
        out[mask] = (1.0 - alpha) * out[mask] + alpha * cols[k]
        if draw_boundary:
            out[inner_boundary(mask, boundary_width)] = cols[k]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def resize_bilinear(heat: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D map with half-pixel centres (``align_corners=False``).

    Matches ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``.

    Args:
        heat: (h, w) float.
        size: (H, W) output size.

    Returns:
        (H, W) float32.
    """
    heat = np.asarray(heat, dtype=np.float32)
    ys = _source_coords(size[0], heat.shape[0])  # (H,) index, (H,) weight
    xs = _source_coords(size[1], heat.shape[1])
    (y0, y1, wy), (x0, x1, wx) = ys, xs
    top = heat[y0][:, x0] * (1 - wx) + heat[y0][:, x1] * wx  # (H, W)
    bottom = heat[y1][:, x0] * (1 - wx) + heat[y1][:, x1] * wx
    return top * (1 - wy[:, None]) + bottom * wy[:, None]


def _source_coords(out_len: int, in_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left/right source indices and right weight for each output position, half-pixel rule."""
    src = (np.arange(out_len, dtype=np.float32) + 0.5) * (in_len / out_len) - 0.5
    src = np.clip(src, 0, in_len - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, in_len - 1)
    return lo, hi, (src - lo).astype(np.float32)


def normalize(heat: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """Min-max normalise to [0, 1] (or with the given range); a constant map gives zeros.

    NaN/inf are replaced by the finite minimum first.
    """
    heat = np.asarray(heat, dtype=np.float32)
    finite = np.isfinite(heat)
    if not finite.all():
        heat = np.where(finite, heat, heat[finite].min() if finite.any() else 0.0)
    lo = float(heat.min()) if vmin is None else float(vmin)
    hi = float(heat.max()) if vmax is None else float(vmax)
    if hi <= lo:
        return np.zeros_like(heat)
    return np.clip((heat - lo) / (hi - lo), 0.0, 1.0)


def colormap(values: np.ndarray, cmap: str | Callable = "viridis") -> np.ndarray:
    """Map values in [0, 1] to RGB colours.

    Args:
        values: (...) float in [0, 1].
        cmap: any matplotlib colormap name (matplotlib imported here; default "viridis",
            perceptually uniform: equal steps in value look like equal steps in colour, and
            it reads in grey), "jet" (pure numpy: blue -> cyan -> yellow -> red; not
            perceptually uniform, kept for old figures), or a matplotlib Colormap /
            callable returning RGBA in [0, 1].

    Returns:
        (..., 3) uint8.
    """
    values = np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0)
    if isinstance(cmap, str) and cmap == "jet":
        rgb = np.stack([np.clip(1.5 - np.abs(4 * values - c), 0, 1) for c in (3, 2, 1)], axis=-1)
    else:
        rgb = np.asarray(_get_cmap(cmap)(values))[..., :3]
    return np.round(rgb * 255).astype(np.uint8)


def _get_cmap(cmap: str | Callable) -> Callable:
    """A matplotlib colormap by name (lazy import), or ``cmap`` itself if callable."""
    if callable(cmap):
        return cmap
    import matplotlib

    try:
        return matplotlib.colormaps[cmap]
    except KeyError:
        raise ValueError(f"unknown colormap {cmap!r}; use 'jet' or a matplotlib colormap name") from None


def heatmap_overlay(
    frame: Any,
    heat: Any,
    alpha: float = 0.5,
    cmap: str | Callable = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    background: str = "color",
) -> np.ndarray:
    """Colour a patch-level heat map and blend it over a frame.

    The map is resized to the frame (bilinear, half-pixel centres), min-max normalised
    (or scaled to [vmin, vmax] so several maps share one scale) and colour-mapped.

    Args:
        frame: (H, W, 3) uint8 RGB.
        heat: (h, w) float, e.g. attention of one word over the patch grid.
        alpha: opacity of the heat map.
        cmap: see :func:`colormap`.
        vmin, vmax: optional fixed range instead of the map's own min / max.
        background: "color" (the frame as it is) or "gray" (the frame in grey, so an
            object's own colour cannot be mistaken for attention).

    Returns:
        (H, W, 3) uint8.
    """
    frame = _check_frames(frame, "frame")
    heat = _to_numpy(heat)
    if frame.ndim != 3 or heat.ndim != 2:
        raise ValueError(f"heatmap_overlay expects frame (H, W, 3) and heat (h, w), got {frame.shape} and {heat.shape}")
    frame = _background(frame, background)
    # normalise before resizing so vmin / vmax refer to the map's own values
    colours = colormap(resize_bilinear(normalize(heat, vmin, vmax), frame.shape[:2]), cmap)  # (H, W, 3)
    out = (1.0 - alpha) * frame.astype(np.float32) + alpha * colours.astype(np.float32)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def grayscale(frames: Any) -> np.ndarray:
    """uint8 RGB frames in grey (ITU-R 601 luma in all three channels), same shape."""
    frames = _check_frames(frames)
    luma = frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)  # (..., H, W)
    return np.repeat(np.round(luma).astype(np.uint8)[..., None], 3, axis=-1)


def _background(frame: np.ndarray, background: str) -> np.ndarray:
    if background not in ("color", "gray"):
        raise ValueError(f"background must be 'color' or 'gray', got {background!r}")
    return grayscale(frame) if background == "gray" else frame


def patch_grid_image(
    heat: Any,
    size: tuple[int, int] | None = None,
    cmap: str | Callable = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
) -> np.ndarray:
    """The raw patch grid of a heat map: one flat colour per patch, nothing smoothed.

    Args:
        heat: (h, w) float.
        size: (H, W) output size, a multiple of (h, w) per axis (nearest-neighbour blocks);
            default (h, w).
        cmap, vmin, vmax: as in :func:`heatmap_overlay`.

    Returns:
        (H, W, 3) uint8, each patch a block of one colour.
    """
    heat = _to_numpy(heat)
    if heat.ndim != 2:
        raise ValueError(f"patch_grid_image expects heat (h, w), got {heat.shape}")
    size = heat.shape if size is None else tuple(size)
    if size[0] % heat.shape[0] or size[1] % heat.shape[1]:
        raise ValueError(f"size {size} must be a multiple of the grid {heat.shape}")
    colours = colormap(normalize(heat, vmin, vmax), cmap)  # (h, w, 3)
    return np.repeat(np.repeat(colours, size[0] // heat.shape[0], 0), size[1] // heat.shape[1], 1)


def outline(image: Any, masks: Any, colors: Any = None, width: int = 1) -> np.ndarray:
    """Draw the outline of each mask over an image (no fill), e.g. the referent over a heat map.

    Args:
        image: (H, W, 3) or (T, H, W, 3) uint8.
        masks, colors: as in :func:`overlay_masks` (default colours: cyan, white, ...).
        width: outline thickness in pixels.
    """
    mask_list = _as_mask_list(masks)
    colors = OUTLINE_COLORS[: len(mask_list)] if colors is None and len(mask_list) <= len(OUTLINE_COLORS) else colors
    return overlay_masks(image, mask_list, colors=colors, alpha=0.0, draw_boundary=True, boundary_width=width)


OUTLINE_COLORS = [(0, 255, 255), (255, 255, 255), (255, 0, 255)]  # referent, distractors, ...: absent from magma


# --------------------------------------------------------------------------- J/F picture


def draw_boundaries(
    pred: Any,
    gt: Any,
    radius: int | None = None,
    bound_th: float = 0.008,
    frame: Any = None,
    colors: Mapping[str, ColorLike] | None = None,
) -> np.ndarray:
    """The picture behind the boundary measure F, for one frame.

    Boundaries are the DAVIS ``seg2bmap`` ones; the tolerance band is the GT boundary
    dilated by a disk of ``radius`` pixels. Drawn in this order (see ``BOUNDARY_COLORS``):
    the band; GT boundary pixels, "gt_hit" when within ``radius`` of the predicted
    boundary (they count for recall) else "gt_miss"; predicted boundary pixels,
    "pred_hit" inside the band (they count for precision) else "pred_miss"; pixels
    on both boundaries are "both".

    Args:
        pred: (H, W) predicted mask (non-zero = foreground).
        gt: (H, W) ground-truth mask.
        radius: tolerance in pixels; default ``boundary_radius((H, W), bound_th)``,
            the radius the F measure uses.
        bound_th: fraction of the image diagonal, used when ``radius`` is None.
        frame: optional (H, W, 3) uint8 frame drawn, darkened, underneath.
        colors: overrides for some keys of ``BOUNDARY_COLORS``.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    pred, gt = _to_numpy(pred) != 0, _to_numpy(gt) != 0
    if pred.shape != gt.shape or gt.ndim != 2:
        raise ValueError(f"draw_boundaries expects pred and gt of one (H, W) shape, got {pred.shape} and {gt.shape}")
    palette_ = {**BOUNDARY_COLORS, **(colors or {})}
    radius = boundary_radius(gt.shape, bound_th) if radius is None else int(radius)
    gt_b, pred_b = seg2bmap(gt), seg2bmap(pred)  # (H, W) bool each
    band = binary_dilate_disk(gt_b, radius)
    pred_band = binary_dilate_disk(pred_b, radius)
    out = _boundary_background(frame, gt.shape)
    layers = [
        ("band", band),
        ("gt_hit", gt_b & pred_band),
        ("gt_miss", gt_b & ~pred_band),
        ("pred_hit", pred_b & band),
        ("pred_miss", pred_b & ~band),
        ("both", gt_b & pred_b),
    ]
    for key, where in layers:
        out[where] = palette_[key]
    return out


def _boundary_background(frame: Any, shape: tuple[int, int]) -> np.ndarray:
    """Black (H, W, 3) uint8, or the frame darkened to 40 % so the colours stand out."""
    if frame is None:
        return np.zeros((*shape, 3), dtype=np.uint8)
    frame = _check_frames(frame, "frame")
    if frame.shape != (*shape, 3):
        raise ValueError(f"frame has shape {frame.shape}, expected {(*shape, 3)} to match the masks")
    return (frame.astype(np.float32) * 0.4).astype(np.uint8)


# --------------------------------------------------------------------------- widgets


def to_png(image: np.ndarray) -> bytes:
    """PNG bytes of an (H, W, 3) uint8 image."""
    from PIL import Image

    buffer = _io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    return buffer.getvalue()


def frame_slider(
    frames: Any,
    masks: Any = None,
    titles: Sequence[str] | None = None,
    colors: Any = None,
    alpha: float = 0.5,
    width: int | None = None,
):
    """A slider over frames showing each frame with its masks overlaid.

    Works without a live kernel connection for testing: changing the slider's value
    re-encodes the image synchronously. Follow it with :func:`show_frames` in a
    notebook so the static output shows the same content.

    Args:
        frames: (T, H, W, 3) uint8 (already rendered overlays or heat maps work too).
        masks: optional masks as in :func:`overlay_masks`.
        titles: one per frame; default "frame t / T".
        colors, alpha: as in :func:`overlay_masks`.
        width: displayed width in pixels; default max(W, 256) so tiny frames are visible.

    Returns:
        ipywidgets.VBox with children (IntSlider, Label, Image); the caller displays it.
    """
    import ipywidgets as widgets

    images = _overlaid(frames, masks, colors, alpha)  # (T, H, W, 3)
    last = len(images) - 1
    names = _titles(titles, len(images), f"frame {{}} / {last}")
    slider = widgets.IntSlider(value=0, min=0, max=last, step=1, description="frame")
    label = widgets.Label(value=names[0])
    image = widgets.Image(value=to_png(images[0]), format="png", width=width or max(images.shape[2], 256))
    cache: dict[int, bytes] = {0: image.value}

    def update(change: dict) -> None:
        t = int(change["new"])
        if t not in cache:
            cache[t] = to_png(images[t])
        image.value, label.value = cache[t], names[t]

    slider.observe(update, names="value")
    return widgets.VBox([slider, label, image])


# --------------------------------------------------------------------------- figures (rvoslib.figures)

FIGURES = ("show_frames", "attention_grid", "plot_curves", "save_figure")  # matplotlib figures, in rvoslib.figures


def __getattr__(name: str) -> Any:
    """``viz.show_frames`` and the other figure functions live in :mod:`rvoslib.figures` (imported on first use)."""
    if name in FIGURES:
        from rvoslib import figures

        return getattr(figures, name)
    raise AttributeError(f"module 'rvoslib.viz' has no attribute {name!r}")
