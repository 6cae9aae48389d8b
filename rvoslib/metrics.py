"""Evaluation metrics of the J&F protocol: DAVIS J / F / J&F (Ref-YouTube-VOS, Ref-DAVIS17, MeViS).
The A2D / JHMDB-Sentences / RefCOCO metrics (mAP, overall IoU, mean IoU, precision@k) are in
``iou_metrics.py``.

It reproduces the DAVIS 2017 evaluation toolkit (davis2017-evaluation:
``metrics.py``, ``utils.db_statistics``, ``evaluation.py`` and ``evaluation_method.py``)
number for number, without its OpenCV / scikit-image / SciPy dependencies:

* J (region similarity): IoU of binary masks, void pixels excluded; 1 when the union
  is empty.
* F (boundary measure): boundaries from ``seg2bmap`` (a pixel, foreground *or*
  background, is a boundary pixel when its right, lower or lower-right neighbour
  differs; the last row only looks right, the last column only looks down, the
  bottom-right pixel is never a boundary), each dilated by a disk of radius
  ``ceil(bound_th * image diagonal)``; precision / recall / F with the toolkit's
  empty-boundary rules.
* Per object: mean over frames, recall = fraction of frames with value > 0.5, decay =
  mean of the first quarter minus mean of the last quarter, quarters chosen by the
  toolkit's (overlapping) 4-bin rule.
* Global: every statistic averaged over objects; J&F-Mean = (J-Mean + F-Mean) / 2.

Masks are numpy arrays or torch tensors; any non-zero value is foreground (threshold
probabilities before calling).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

logger = logging.getLogger(__name__)

VOID_LABEL = 255  # palette value of "void" (unlabelled) pixels in DAVIS-style annotations
GLOBAL_KEYS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")


# --------------------------------------------------------------------------- J


def jaccard(pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None = None) -> np.ndarray | float:
    """Region similarity J (IoU), as ``db_eval_iou`` of the DAVIS toolkit.

    Args:
        pred: predicted mask, (H, W) or (T, H, W); non-zero means foreground.
        gt: ground-truth mask, same shape.
        void: optional void mask, same shape; void pixels count neither in the
            intersection nor in the union.

    Returns:
        float for (H, W) input, (T,) float array for (T, H, W); 1 where the union is empty.
    """
    pred, gt = as_bool(pred), as_bool(gt)
    check_same_shape(pred, gt, "pred", "gt")
    keep = np.ones_like(gt) if void is None else ~as_bool(void)
    check_same_shape(keep, gt, "void", "gt")
    inter = np.sum(pred & gt & keep, axis=(-2, -1))  # () or (T,)
    union = np.sum((pred | gt) & keep, axis=(-2, -1))
    j = np.where(union == 0, 1.0, inter / np.maximum(union, 1))
    return float(j) if j.ndim == 0 else j.astype(np.float64)


# --------------------------------------------------------------------------- F


def seg2bmap(mask: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary map of a binary mask at its own size (DAVIS ``_seg2bmap``).

    A pixel is a boundary pixel when it differs from its right (east), lower (south)
    or lower-right (south-east) neighbour, neighbours outside the image counting as
    background. Then the toolkit's edge rules: in the last row only the right
    neighbour is compared, in the last column only the lower one, and the
    bottom-right pixel is never a boundary pixel. Background pixels can be boundary
    pixels (e.g. the pixel left of an object), so the boundary sits half a pixel
    towards the origin from the true contour.

    Args:
        mask: (H, W) binary mask.

    Returns:
        (H, W) bool boundary map.
    """
    seg = as_bool(mask)
    if seg.ndim != 2:
        raise ValueError(f"seg2bmap expects an (H, W) mask, got shape {seg.shape}")
    east = np.zeros_like(seg)
    south = np.zeros_like(seg)
    south_east = np.zeros_like(seg)
    east[:, :-1] = seg[:, 1:]
    south[:-1, :] = seg[1:, :]
    south_east[:-1, :-1] = seg[1:, 1:]
    bmap = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    bmap[-1, :] = seg[-1, :] ^ east[-1, :]  # last row: right neighbour only
    bmap[:, -1] = seg[:, -1] ^ south[:, -1]  # last column: lower neighbour only
    bmap[-1, -1] = False
    return bmap


def disk(radius: int) -> np.ndarray:
    """Disk structuring element: offsets (dy, dx) in [-r, r]^2 with dy^2 + dx^2 <= r^2.

    Same footprint as ``skimage.morphology.disk(radius)``.

    Returns:
        (2r+1, 2r+1) bool array.
    """
    offsets = np.arange(-radius, radius + 1)
    return offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2


def binary_dilate_disk(mask: np.ndarray, radius: int) -> np.ndarray:
    """Dilate a binary (H, W) mask by ``disk(radius)``; outside the image counts as empty.

    Same result as ``cv2.dilate(mask, disk(radius))`` (the toolkit's call). The disk is
    split into rows: row ``dy`` is a horizontal segment of half-width
    ``isqrt(r^2 - dy^2)``, so the dilation is an OR over ``dy`` of vertically shifted
    horizontal dilations (about 3r array passes instead of ~pi r^2).

    Returns:
        (H, W) bool array.
    """
    src = as_bool(mask)
    if radius < 0:
        raise ValueError(f"dilation radius must be >= 0, got {radius}")
    height, width = src.shape
    horizontal = [src.copy()]  # horizontal[k]: dilation by the segment [-k, k]
    for k in range(1, radius + 1):
        cur = horizontal[-1].copy()
        if k < width:
            cur[:, k:] |= src[:, :-k]
            cur[:, :-k] |= src[:, k:]
        horizontal.append(cur)
    out = np.zeros_like(src)
    for dy in range(-radius, radius + 1):
        if abs(dy) >= height:
            continue
        row = horizontal[math.isqrt(radius * radius - dy * dy)]
        if dy >= 0:
            out[dy:, :] |= row[: height - dy, :]
        else:
            out[:dy, :] |= row[-dy:, :]
    return out


def boundary_radius(shape: tuple[int, int], bound_th: float = 0.008) -> int:
    """Dilation radius in pixels: ``bound_th`` itself when >= 1, else ``ceil(bound_th * diagonal)``.

    E.g. 854 x 480 gives ceil(0.008 * 979.65) = 8.
    """
    if bound_th >= 1:
        if bound_th != int(bound_th):
            raise ValueError(f"bound_th >= 1 is a radius in pixels and must be a whole number, got {bound_th}")
        return int(bound_th)
    return int(np.ceil(bound_th * np.linalg.norm(shape)))


def boundary_f(
    pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None = None, bound_th: float = 0.008
) -> np.ndarray | float:
    """Boundary measure F, as ``db_eval_boundary`` / ``f_measure`` of the DAVIS toolkit.

    Void pixels are removed from both masks first. Precision = fraction of predicted
    boundary pixels inside the dilated GT boundary, recall = the reverse, F = 2PR/(P+R).
    Both boundaries empty -> 1; exactly one empty -> 0.

    Args:
        pred: (H, W) or (T, H, W) predicted mask.
        gt: same shape, ground truth.
        void: optional void mask, same shape.
        bound_th: dilation radius as a fraction of the image diagonal (or pixels if >= 1).

    Returns:
        float for (H, W) input, (T,) array for (T, H, W).
    """
    pred, gt = as_bool(pred), as_bool(gt)
    check_same_shape(pred, gt, "pred", "gt")
    if void is not None:
        void = as_bool(void)
        check_same_shape(void, gt, "void", "gt")
    if gt.ndim == 2:
        return _f_frame(pred, gt, void, bound_th)
    if gt.ndim == 3:
        return np.array(
            [_f_frame(pred[t], gt[t], None if void is None else void[t], bound_th) for t in range(gt.shape[0])],
            dtype=np.float64,
        )
    raise ValueError(f"boundary_f expects (H, W) or (T, H, W) masks, got shape {gt.shape}")


def _f_frame(pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None, bound_th: float) -> float:
    """F of one (H, W) frame; see ``boundary_f``."""
    if void is not None:
        pred, gt = pred & ~void, gt & ~void
    radius = boundary_radius(gt.shape, bound_th)
    pred_b, gt_b = seg2bmap(pred), seg2bmap(gt)
    n_pred, n_gt = int(pred_b.sum()), int(gt_b.sum())
    if n_pred == 0 and n_gt == 0:
        return 1.0
    if n_pred == 0 or n_gt == 0:
        return 0.0  # toolkit: (P, R) = (1, 0) or (0, 1), hence F = 0
    precision = np.sum(pred_b & binary_dilate_disk(gt_b, radius)) / n_pred
    recall = np.sum(gt_b & binary_dilate_disk(pred_b, radius)) / n_gt
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


# --------------------------------------------------------------------------- statistics


@dataclass
class Stats:
    """Mean, recall and decay of one object's per-frame values."""

    mean: float
    recall: float
    decay: float


def decay_bins(n_frames: int, n_bins: int = 4) -> list[slice]:
    """Frame slices of the toolkit's decay bins (``utils.db_statistics``).

    Bin edges are ``round(linspace(1, n, n_bins + 1) + 1e-10) - 1`` (the 1e-10 makes
    halves round up, not to even) and bin i is ``[edge_i, edge_{i+1}]`` inclusive, so
    neighbouring bins share their edge frame. E.g. n=10 gives edges 0,2,5,7,9 and bins
    [0:3], [2:6], [5:8], [7:10]. (The toolkit casts the edges to uint8, which wraps
    above 256 frames; we keep exact integers.)
    """
    edges = np.round(np.linspace(1, n_frames, n_bins + 1) + 1e-10).astype(np.int64) - 1
    return [slice(int(edges[i]), int(edges[i + 1]) + 1) for i in range(n_bins)]


def statistics(values: Sequence[float] | np.ndarray) -> Stats:
    """Per-object statistics over frames, as ``db_statistics`` of the DAVIS toolkit.

    Args:
        values: (T,) per-frame J or F values.

    Returns:
        ``Stats(mean, recall, decay)``: NaN-ignoring mean; recall = fraction of frames
        with value > 0.5 (strict; a NaN frame counts as a miss); decay = mean of the first
        decay bin minus mean of the last (see ``decay_bins``).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"statistics expects a non-empty (T,) array, got shape {values.shape}")
    bins = decay_bins(values.size)
    decay = _nanmean(values[bins[0]]) - _nanmean(values[bins[-1]])
    return Stats(mean=_nanmean(values), recall=float(np.mean(values > 0.5)), decay=float(decay))


def _nanmean(x: np.ndarray) -> float:
    """Mean ignoring NaNs; NaN (without a warning) when nothing is left."""
    finite = x[~np.isnan(x)]
    return float(finite.mean()) if finite.size else float("nan")


# --------------------------------------------------------------------------- folders


@dataclass
class ObjectResult:
    """Scores of one object of one sequence (a row of the per-object table)."""

    sequence: str
    object_id: int
    j: np.ndarray  # (T,) per-frame J
    f: np.ndarray  # (T,) per-frame F
    j_stats: Stats
    f_stats: Stats

    @property
    def name(self) -> str:
        """Toolkit-style row name ``<sequence>_<object id>``."""
        return f"{self.sequence}_{self.object_id}"

    @property
    def jf_mean(self) -> float:
        """(J-Mean + F-Mean) / 2 of this object."""
        return (self.j_stats.mean + self.f_stats.mean) / 2.0


@dataclass
class DavisResult:
    """Per-object table and global summary of ``evaluate_folders``."""

    objects: list[ObjectResult] = field(default_factory=list)
    summary: dict[str, float] = field(default_factory=dict)  # keys: GLOBAL_KEYS


def evaluate_object(
    pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None = None, bound_th: float = 0.008
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame J and F of one object.

    Args:
        pred, gt: (T, H, W) binary masks; void: optional (T, H, W) void mask.

    Returns:
        (j, f): two (T,) arrays.
    """
    return np.atleast_1d(jaccard(pred, gt, void)), np.atleast_1d(boundary_f(pred, gt, void, bound_th))


def summarize(objects: Sequence[ObjectResult]) -> dict[str, float]:
    """Global table of the toolkit (``evaluation_method.py``): each statistic averaged over objects."""
    if not objects:
        raise ValueError("no objects to summarize")

    def avg(get) -> float:
        return float(np.mean([get(o) for o in objects]))

    j_mean, f_mean = avg(lambda o: o.j_stats.mean), avg(lambda o: o.f_stats.mean)
    return {
        "J&F-Mean": (j_mean + f_mean) / 2.0,
        "J-Mean": j_mean,
        "J-Recall": avg(lambda o: o.j_stats.recall),
        "J-Decay": avg(lambda o: o.j_stats.decay),
        "F-Mean": f_mean,
        "F-Recall": avg(lambda o: o.f_stats.recall),
        "F-Decay": avg(lambda o: o.f_stats.decay),
    }


def evaluate_folders(
    pred_root: str | Path,
    gt_root: str | Path,
    sequences: Sequence[str] | None = None,
    *,
    exclude_void: bool = False,
    skip_first_last: bool = False,
    bound_th: float = 0.008,
) -> DavisResult:
    """Score palette-PNG predictions against palette-PNG ground truth, DAVIS style.

    Layout: ``<root>/<sequence>/<frame>.png`` for both roots; a PNG's pixel value is the
    object id (0 background, 255 void). Frames are the GT PNGs of each sequence, in
    sorted order; every one needs a prediction PNG of the same name and size. Object ids
    are the non-zero, non-void values found in any GT frame; object k of the prediction
    is the pixels equal to k (absent -> empty mask).

    Args:
        pred_root: folder of predicted sequences.
        gt_root: folder of ground-truth sequences.
        sequences: names to evaluate; default every sub-folder of ``gt_root``.
        exclude_void: False (default) does what the toolkit actually computes: its
            loader turns 255 into background before the void mask is taken, so void
            pixels end up as background. True excludes them from J and F instead.
        skip_first_last: drop the first and last frame, as the toolkit's
            semi-supervised task does (the RVOS protocols keep every frame).
        bound_th: boundary tolerance of F.

    Returns:
        ``DavisResult`` with one ``ObjectResult`` per (sequence, object) and the global
        summary (``GLOBAL_KEYS``). The table is also logged at INFO level.
    """
    pred_root, gt_root = Path(pred_root), Path(gt_root)
    if not gt_root.is_dir():
        raise FileNotFoundError(f"ground-truth folder not found: {gt_root}")
    if not pred_root.is_dir():
        raise FileNotFoundError(f"prediction folder not found: {pred_root}")
    names = sorted(p.name for p in gt_root.iterdir() if p.is_dir()) if sequences is None else list(sequences)
    if not names:
        raise ValueError(f"no sequences to evaluate under {gt_root}")
    objects: list[ObjectResult] = []
    for name in names:
        objects.extend(_evaluate_sequence(pred_root, gt_root, name, exclude_void, skip_first_last, bound_th))
    if not objects:
        raise ValueError(f"no objects (non-zero GT ids) found in the sequences under {gt_root}")
    result = DavisResult(objects=objects, summary=summarize(objects))
    logger.info("DAVIS evaluation of %s against %s\n%s", pred_root, gt_root, format_table(result))
    return result


def _evaluate_sequence(
    pred_root: Path, gt_root: Path, name: str, exclude_void: bool, skip_first_last: bool, bound_th: float
) -> list[ObjectResult]:
    """Score every GT object of one sequence."""
    gt_files = sorted((gt_root / name).glob("*.png"))
    if not gt_files:
        raise FileNotFoundError(f"no ground-truth PNG masks in {gt_root / name}")
    if skip_first_last:
        gt_files = gt_files[1:-1]
        if not gt_files:
            raise ValueError(f"sequence {name!r} has fewer than 3 annotated frames; cannot skip first and last")
    gt = np.stack([read_label_png(p) for p in gt_files])  # (T, H, W) ids
    pred = np.stack([_read_prediction(pred_root / name / p.name, gt.shape[1:]) for p in gt_files])  # (T, H, W)
    void = gt == VOID_LABEL  # (T, H, W)
    ids = [int(i) for i in np.unique(gt) if i not in (0, VOID_LABEL)]
    rows = []
    for obj_id in ids:
        j, f = evaluate_object(pred == obj_id, gt == obj_id, void if exclude_void else None, bound_th)
        rows.append(ObjectResult(name, obj_id, j, f, statistics(j), statistics(f)))
    return rows


def read_label_png(path: str | Path) -> np.ndarray:
    """Read a label PNG (palette or 8-bit grey) as an (H, W) uint8 array of ids."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask file not found: {path}")
    try:
        with Image.open(path) as img:
            if img.mode not in ("P", "L", "1"):
                raise ValueError(
                    f"{path}: expected a palette (P) or grey (L) PNG whose values are object ids, got mode {img.mode}"
                )
            return np.array(img, dtype=np.uint8)
    except OSError as err:
        raise ValueError(f"{path}: unreadable PNG ({err})") from err


def _read_prediction(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """Read a predicted label PNG and check its size against the GT."""
    if not path.is_file():
        raise FileNotFoundError(f"prediction missing: {path} (one PNG per ground-truth frame, same name)")
    pred = read_label_png(path)
    if pred.shape != tuple(shape):
        raise ValueError(f"{path}: size {pred.shape[::-1]} (W, H) differs from the ground truth {tuple(shape)[::-1]}")
    return pred


def format_table(result: DavisResult, digits: int = 3) -> str:
    """Plain-text global summary and per-object table (sorted by J&F, worst first, like the toolkit's CSV)."""
    keys = GLOBAL_KEYS
    width = max(len(k) for k in keys) + 1
    lines = ["".join(k.rjust(width) for k in keys)]
    lines.append("".join(f"{result.summary[k]:{width}.{digits}f}" for k in keys))
    name_w = max([len("Sequence")] + [len(o.name) for o in result.objects]) + 2
    lines += ["", "Sequence".ljust(name_w) + "J&F-Mean".rjust(10) + "J-Mean".rjust(10) + "F-Mean".rjust(10)]
    for o in sorted(result.objects, key=lambda o: o.jf_mean):
        lines.append(
            o.name.ljust(name_w)
            + f"{o.jf_mean:10.{digits}f}{o.j_stats.mean:10.{digits}f}{o.f_stats.mean:10.{digits}f}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- helpers


def as_bool(x) -> np.ndarray:
    """Any array-like (numpy, torch tensor on any device, list) -> bool ndarray (non-zero is True)."""
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    return arr if arr.dtype == bool else arr != 0


def check_same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    """Raise a ValueError naming both arguments when their shapes differ."""
    if a.shape != b.shape:
        raise ValueError(f"{name_a} has shape {a.shape} but {name_b} has shape {b.shape}")
