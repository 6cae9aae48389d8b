"""Figures: frame grids, attention grids, training curves, and writing them to files.

The matplotlib half of ``rvoslib.viz`` (which re-exports these functions: ``viz.attention_grid``
is :func:`attention_grid`). matplotlib is imported inside the functions. Every function returns
a ``matplotlib.figure.Figure`` that is already closed in pyplot: it does not pile up in pyplot's
figure list or show up twice in Jupyter. Put it last in a cell (or call
``IPython.display.display(fig)``) to show it, or write it with :func:`save_figure`.
Frames, masks and maps follow the conventions of :mod:`rvoslib.viz`.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from rvoslib.viz import (
    _as_mask_list,
    _check_frames,
    _get_cmap,
    _overlaid,
    _titles,
    _to_numpy,
    heatmap_overlay,
    outline,
    patch_grid_image,
)

logger = logging.getLogger(__name__)


def _new_figure(n: int, ncols: int, figsize: tuple[float, float] | None, cell: tuple[float, float]):
    """Figure with ``n`` axes on a grid of ``ncols`` columns (unused cells removed), closed in pyplot.

    Returns:
        (fig, axes) with ``len(axes) == n``.
    """
    import matplotlib.pyplot as plt

    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    figsize = figsize or (cell[0] * ncols, cell[1] * nrows)
    fig, grid = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False)
    plt.close(fig)  # the caller owns it: no double display in Jupyter, no pyplot leak
    axes = list(grid.ravel())
    for ax in axes[n:]:
        fig.delaxes(ax)
    return fig, axes[:n]


def _show_image(ax, image: np.ndarray, title: str | None) -> None:
    """Image on an axes without ticks, with an optional title."""
    ax.imshow(image, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)


def show_frames(
    frames: Any,
    masks: Any = None,
    titles: Sequence[str] | None = None,
    ncols: int = 4,
    figsize: tuple[float, float] | None = None,
    colors: Any = None,
    alpha: float = 0.5,
):
    """Static grid of frames, with masks overlaid if given (the figure after a widget).

    Args:
        frames: (T, H, W, 3) or (H, W, 3) uint8.
        masks: optional masks as in :func:`overlay_masks`.
        titles: one per frame; default "t=0", "t=1", ...
        ncols: grid columns.
        figsize: inches; default 3 per cell.
        colors, alpha: as in :func:`overlay_masks`.

    Returns:
        matplotlib Figure with T axes.
    """
    images = _overlaid(frames, masks, colors, alpha)  # (T, H, W, 3)
    fig, axes = _new_figure(len(images), ncols, figsize, cell=(3.0, 3.0 * images.shape[1] / images.shape[2]))
    for ax, image, title in zip(axes, images, _titles(titles, len(images), "t={}")):
        _show_image(ax, image, title)
    fig.tight_layout()
    return fig


def attention_grid(
    maps: Any,
    frames: Any = None,
    titles: Sequence[str] | None = None,
    ncols: int = 4,
    figsize: tuple[float, float] | None = None,
    alpha: float = 0.5,
    cmap: str | Callable = "viridis",
    shared_scale: bool = False,
    *,
    vmin: float | None = None,
    vmax: float | None = None,
    outlines: Any = None,
    outline_colors: Any = None,
    colorbar: bool = False,
    raw_beside: bool = False,
    background: str = "color",
    label: str = "",
):
    """Grid of heat maps, e.g. attention of words / prompts over patches, or per frame.

    Args:
        maps: (K, h, w) or (h, w) float maps (K frames, words or prompts).
        frames: None (maps drawn alone, nearest-neighbour, one cell per patch), one
            (H, W, 3) uint8 frame under every map, or (K, H, W, 3) one frame per map.
        titles: one per map; default "0", "1", ...
        ncols, figsize: grid layout (``ncols`` counts maps; with ``raw_beside`` each map
            takes two cells).
        alpha, cmap: as in :func:`heatmap_overlay`.
        shared_scale: one colour scale (global min / max) for all maps instead of
            min-max per map.
        vmin, vmax: fixed ends of the colour scale (override ``shared_scale``'s).
        outlines: masks outlined over every map: one (H, W) mask or a list of them for all
            maps, or (K, H, W) / a list of (K, H, W) masks, one per map (e.g. the referent
            and the distractors); frame resolution (with ``frames``) or any multiple of the grid.
        outline_colors: one RGB colour per outlined mask (default :data:`OUTLINE_COLORS`:
            cyan, white, magenta).
        colorbar: a colour bar in the maps' own units (one for a shared scale, else one per map).
        raw_beside: with ``frames``, put the raw patch grid (one flat colour per patch,
            nearest) to the left of each smoothed overlay, on the same colour scale.
        background: "color" or "gray" frames under the maps (see :func:`heatmap_overlay`).
        label: colour-bar label, e.g. "share of attention".

    Returns:
        matplotlib Figure with K axes (2K with ``raw_beside``) plus the colour bars' axes.
    """
    maps = _to_numpy(maps).astype(np.float32)
    maps = maps[None] if maps.ndim == 2 else maps  # (K, h, w)
    if maps.ndim != 3:
        raise ValueError(f"maps must have shape (K, h, w) or (h, w), got {maps.shape}")
    backs = _backgrounds(frames, len(maps))  # list of K frames or Nones
    lo, hi = (float(np.nanmin(maps)), float(np.nanmax(maps))) if shared_scale else (None, None)
    lo, hi = (lo if vmin is None else float(vmin)), (hi if vmax is None else float(vmax))
    shared = lo is not None and hi is not None
    size = backs[0].shape[:2] if backs[0] is not None else _grid_multiple(maps.shape[1:], outlines)
    per_map = 2 if raw_beside and backs[0] is not None else 1
    fig, axes = _new_figure(len(maps) * per_map, ncols * per_map, figsize, cell=(3.0, 3.0 * size[0] / size[1]))
    names = _titles(titles, len(maps), "{}")
    for k, (heat, back) in enumerate(zip(maps, backs)):
        scale = (lo, hi) if shared else _own_scale(heat, lo, hi)
        marks = _outlines_for(outlines, k, len(maps))
        images = [patch_grid_image(heat, size, cmap, *scale)] if back is None or raw_beside else []
        if back is not None:
            images.append(heatmap_overlay(back, heat, alpha=alpha, cmap=cmap, vmin=scale[0], vmax=scale[1],
                                          background=background))
        cells = axes[k * per_map:(k + 1) * per_map]
        for i, (ax, image) in enumerate(zip(cells, images)):
            image = outline(image, marks, outline_colors) if marks else image
            title = names[k] if i == len(images) - 1 else "patch grid"
            _show_image(ax, image, title)
        if colorbar and not shared:
            _add_colorbar(fig, cells, cmap, scale, label)
    if colorbar and shared:
        _add_colorbar(fig, axes, cmap, (lo, hi), label)
    if not colorbar:
        fig.tight_layout()
    return fig


def _grid_multiple(grid: tuple[int, int], outlines: Any) -> tuple[int, int]:
    """Drawing size of bare maps: the outlines' size when given, else 16 pixels per patch."""
    if outlines is not None:
        first = _as_mask_list(outlines)[0]
        return tuple(first.shape[-2:])
    return (grid[0] * 16, grid[1] * 16)


def _own_scale(heat: np.ndarray, lo: float | None, hi: float | None) -> tuple[float, float]:
    """(vmin, vmax) of one map: the given ends, else its own min / max."""
    return (float(np.nanmin(heat)) if lo is None else lo, float(np.nanmax(heat)) if hi is None else hi)


def _outlines_for(outlines: Any, k: int, count: int) -> list[np.ndarray]:
    """The (H, W) masks outlined on map k: shared (H, W) masks, or row k of (K, H, W) ones."""
    if outlines is None:
        return []
    picked = []
    for mask in _as_mask_list(outlines):
        if mask.ndim == 3:
            if len(mask) != count:
                raise ValueError(f"outlines give {len(mask)} masks for {count} maps")
            mask = mask[k]
        picked.append(mask)
    return picked


def _add_colorbar(fig, axes, cmap: str | Callable, scale: tuple[float, float], label: str) -> None:
    """A colour bar for ``axes`` in the maps' own units (a constant map gets a tiny range)."""
    import matplotlib.cm
    import matplotlib.colors

    lo, hi = scale
    norm = matplotlib.colors.Normalize(vmin=lo, vmax=hi if hi > lo else lo + 1e-12)
    mappable = matplotlib.cm.ScalarMappable(norm=norm, cmap=_get_cmap(cmap))
    bar = fig.colorbar(mappable, ax=list(axes), fraction=0.046, pad=0.02, shrink=0.9)
    bar.ax.tick_params(labelsize=7)
    if label:
        bar.set_label(label, fontsize=8)


def _backgrounds(frames: Any, k: int) -> list[np.ndarray | None]:
    """K background frames for attention_grid: none, one repeated, or one per map."""
    if frames is None:
        return [None] * k
    frames = _check_frames(frames)
    if frames.ndim == 3:
        return [frames] * k
    if len(frames) != k:
        raise ValueError(f"got {len(frames)} frames for {k} maps; pass one frame or one per map")
    return list(frames)


def _rows(history: Any) -> list[dict]:
    """Rows (list of dicts) from a list of dicts or a dict of equal-length lists."""
    if isinstance(history, Mapping):
        lengths = {len(v) for v in history.values()}
        if len(lengths) > 1:
            raise ValueError(f"dict-of-lists history needs equal-length lists, got lengths {sorted(lengths)}")
        n = lengths.pop() if lengths else 0
        return [{k: v[i] for k, v in history.items()} for i in range(n)]
    return list(history)


def _series(rows: list[dict], x: str, key: str) -> tuple[list[float], list[float]]:
    """(xs, ys) of rows where ``key`` has a finite value; x is the row index if missing."""
    xs, ys = [], []
    for i, row in enumerate(rows):
        value = row.get(key)
        if value is None:
            continue
        value = float(_to_numpy(value))
        if math.isfinite(value):
            xs.append(float(_to_numpy(row[x])) if row.get(x) is not None else float(i))
            ys.append(value)
    return xs, ys


def _numeric_keys(rows: list[dict], x: str) -> list[str]:
    """Keys (first-seen order, except ``x``) whose values are numbers in some row."""
    keys: dict[str, None] = {}
    for row in rows:
        for k, v in row.items():
            if k != x and isinstance(v, (int, float, np.number)) and not isinstance(v, bool):
                keys[k] = None
    return list(keys)


def plot_curves(
    history: Any,
    keys: str | Sequence[str | Sequence[str]] | None = None,
    x: str = "step",
    ncols: int = 3,
    figsize: tuple[float, float] | None = None,
    logy: bool = False,
):
    """Training / evaluation curves (loss, lr, J&F, ...) from a run's log.

    Args:
        history: list of dicts (one per logged step; keys may be missing in some rows,
            e.g. J&F only at evaluation steps) or a dict of equal-length lists.
        keys: what to plot; each entry is one subplot, either a key or a list of keys
            drawn together with a legend. Default: every numeric key except ``x``.
        x: key of the x axis; the row index when a row lacks it.
        ncols: subplot columns.
        figsize: inches; default 4 x 3 per subplot.
        logy: log-scale y axes.

    Returns:
        matplotlib Figure with one axes per entry of ``keys``.
    """
    rows = _rows(history)
    if keys is None:
        keys = _numeric_keys(rows, x)
    elif isinstance(keys, str):
        keys = [keys]
    if not keys:
        raise ValueError("plot_curves found nothing to plot: history is empty or has no numeric keys")
    fig, axes = _new_figure(len(keys), ncols, figsize, cell=(4.0, 3.0))
    for ax, group in zip(axes, keys):
        group = [group] if isinstance(group, str) else list(group)
        for key in group:
            xs, ys = _series(rows, x, key)
            if not xs:
                logger.warning("plot_curves: no values for key %r", key)
            ax.plot(xs, ys, marker="o" if len(xs) < 20 else None, markersize=3, label=key)
        ax.set_xlabel(x)
        ax.set_title(", ".join(group), fontsize=10)
        if logy:
            ax.set_yscale("log")
        if len(group) > 1:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def save_figure(fig, path: str | os.PathLike, dpi: int = 120, **kwargs) -> Path:
    """Write a figure (format from the suffix), creating parent folders.

    Returns:
        the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches=kwargs.pop("bbox_inches", "tight"), **kwargs)
    return path
