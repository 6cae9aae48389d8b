"""Metrics of the IoU protocol (A2D-Sentences, JHMDB-Sentences, RefCOCO): COCO mAP, overall IoU,
mean IoU and precision@k.

It follows the protocol of the RVOS literature (MTTR, ReferFormer): COCO ``segm`` mAP with
categories ignored, and per-sample IoU of the highest-scoring prediction for overall IoU, mean
IoU and P@{0.5..0.9} (strict ``iou > k``). pycocotools is imported on first use.

Masks are numpy arrays or torch tensors; any non-zero value is foreground.
"""

from __future__ import annotations

import contextlib
import io
import logging
from typing import Sequence

import numpy as np

from rvoslib.metrics import as_bool, check_same_shape

logger = logging.getLogger(__name__)

PRECISION_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)  # P@k thresholds of the A2D protocol


def mask_iou(pred: np.ndarray, gt: np.ndarray, eps: float = 1e-6) -> tuple[float, int, int]:
    """IoU of two (H, W) binary masks as in the A2D protocol: (I + eps) / (U + eps).

    Returns:
        (iou, intersection, union); both empty gives iou 1.
    """
    pred, gt = as_bool(pred), as_bool(gt)
    check_same_shape(pred, gt, "pred", "gt")
    inter, union = int(np.sum(pred & gt)), int(np.sum(pred | gt))
    return (inter + eps) / (union + eps), inter, union


def iou_metrics(
    pred_masks: Sequence[np.ndarray], gt_masks: Sequence[np.ndarray], thresholds: Sequence[float] = PRECISION_THRESHOLDS
) -> dict[str, float]:
    """Overall IoU, mean IoU and precision@k over samples (one (H, W) prediction per sample).

    overall_iou = sum of intersections / sum of unions; mean_iou = mean of per-sample
    IoUs; ``P@k`` = fraction of samples with IoU > k (strict).
    """
    if len(pred_masks) != len(gt_masks) or not gt_masks:
        raise ValueError(f"need as many predictions as GT masks (> 0), got {len(pred_masks)} and {len(gt_masks)}")
    ious, inters, unions = zip(*(mask_iou(p, g) for p, g in zip(pred_masks, gt_masks)))
    ious = np.array(ious)
    out = {f"P@{k}": float(np.mean(ious > k)) for k in thresholds}
    out["overall_iou"] = float(np.sum(inters) / max(np.sum(unions), 1))
    out["mean_iou"] = float(ious.mean())
    return out


def build_coco(
    pred_masks: Sequence[np.ndarray], gt_masks: Sequence[np.ndarray], scores: Sequence | None = None
) -> tuple[object, list[dict]]:
    """COCO ground truth (one image and one annotation per sample) and RLE detections.

    Args:
        pred_masks: per sample an (H, W) mask or a (K, H, W) stack of candidates.
        gt_masks: per sample the (H, W) referred-object mask.
        scores: per sample a score or (K,) scores; default 1.0 for every candidate.

    Returns:
        (coco_gt, detections): a ``pycocotools.coco.COCO`` and its result list
        (``image_id``, ``category_id`` 1, ``segmentation`` RLE, ``score``).
    """
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    if len(pred_masks) != len(gt_masks) or not gt_masks:
        raise ValueError(f"need as many predictions as GT masks (> 0), got {len(pred_masks)} and {len(gt_masks)}")
    images, annotations, detections = [], [], []
    for idx, gt in enumerate(gt_masks):
        gt = as_bool(gt)
        height, width = gt.shape
        rle = _encode(gt, mask_utils)
        images.append({"id": idx, "height": height, "width": width})
        annotations.append(
            {
                "id": idx + 1,
                "image_id": idx,
                "category_id": 1,
                "segmentation": rle,
                "iscrowd": 0,
                "area": float(mask_utils.area(rle)),
                "bbox": mask_utils.toBbox(rle).tolist(),
            }
        )
        preds = as_bool(pred_masks[idx])
        preds = preds[None] if preds.ndim == 2 else preds  # (K, H, W)
        if preds.shape[1:] != gt.shape:
            raise ValueError(f"pred_masks[{idx}] has size {preds.shape[1:]}, GT has {gt.shape}")
        sample_scores = np.ones(len(preds)) if scores is None else np.atleast_1d(np.asarray(scores[idx], float))
        if len(sample_scores) != len(preds):
            raise ValueError(f"scores[{idx}] has {len(sample_scores)} values for {len(preds)} predicted masks")
        for mask, score in zip(preds, sample_scores):
            detections.append(
                {"image_id": idx, "category_id": 1, "segmentation": _encode(mask, mask_utils), "score": float(score)}
            )
    coco_gt = COCO()
    coco_gt.dataset = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "referred"}]}
    with _quiet():
        coco_gt.createIndex()
    return coco_gt, detections


def coco_map(
    pred_masks: Sequence[np.ndarray], gt_masks: Sequence[np.ndarray], scores: Sequence | None = None
) -> dict[str, float]:
    """COCO ``segm`` AP with categories ignored (``useCats = 0``), as in the A2D protocol.

    Returns:
        ``mAP`` (IoU 0.50:0.95), ``AP50``, ``AP75``, ``AP_small``, ``AP_medium``, ``AP_large``
        (pycocotools' ``stats[:6]``; -1 where a size range has no GT).
    """
    from pycocotools.cocoeval import COCOeval

    coco_gt, detections = build_coco(pred_masks, gt_masks, scores)
    with _quiet() as captured:
        coco_dt = coco_gt.loadRes(detections)
        evaluator = COCOeval(coco_gt, coco_dt, iouType="segm")
        evaluator.params.useCats = 0
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    logger.debug("pycocotools output:\n%s", captured.getvalue())
    names = ("mAP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large")
    return {k: float(v) for k, v in zip(names, evaluator.stats[:6])}


def a2d_metrics(
    pred_masks: Sequence[np.ndarray], gt_masks: Sequence[np.ndarray], scores: Sequence | None = None
) -> dict[str, float]:
    """All A2D/JHMDB-Sentences metrics: ``coco_map`` plus ``iou_metrics`` of the top-scoring prediction.

    Args:
        pred_masks: per sample an (H, W) mask or (K, H, W) candidates.
        gt_masks: per sample an (H, W) mask.
        scores: per sample a score or (K,) scores (default 1.0). For the IoU metrics the
            top-scoring candidate is used; among equal scores the last one, as the
            reference implementation's stable ``sorted(...)[-1]`` picks.
    """
    top = []
    for idx, preds in enumerate(pred_masks):
        preds = np.asarray(preds)
        if preds.ndim == 2:
            top.append(preds)
            continue
        sample_scores = np.ones(len(preds)) if scores is None else np.atleast_1d(np.asarray(scores[idx], float))
        top.append(preds[len(sample_scores) - 1 - int(np.argmax(sample_scores[::-1]))])
    out = coco_map(pred_masks, gt_masks, scores)
    out.update(iou_metrics(top, gt_masks))
    return out


def _encode(mask: np.ndarray, mask_utils) -> dict:
    """RLE of an (H, W) bool mask with a str ``counts`` (JSON friendly)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


@contextlib.contextmanager
def _quiet():
    """Capture pycocotools' prints (the library itself never prints)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        yield buffer
