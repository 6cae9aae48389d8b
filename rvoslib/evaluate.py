"""Evaluation: predictions over datasets, the published protocols, and benchmark submissions.

Predictions reuse the online inference loop of :mod:`rvoslib.inference` (windows of T
frames, the last one padded, history carried, logits upsampled to the original frame
size, then thresholded), one video at a time: :func:`predict_records` yields one
:class:`VideoPrediction` per video so a whole benchmark never sits in memory.

Scores (all on binary masks at the original frame size, with ``rvoslib.metrics`` and
``rvoslib.iou_metrics``):

* :func:`evaluate_model` (periodic validation, Ref-YouTube-VOS-like sets with masks,
  MeViS ``valid_u``): every (video, expression) is one object; its J and F are means
  over the frames that have a ground-truth mask (frames without one are skipped);
  "J" and "F" are means over objects and "J&F" = (J + F) / 2, as in the DAVIS toolkit.
  Void pixels (255) count as background, as the toolkit's loader does. Expressions
  with a ``kind`` (synthetic: appearance / motion / relation) also get "J&F/<kind>".
* Ref-DAVIS17 (:func:`evaluate_ref_davis17`): one evaluation per annotator file
  (annotator x first-frame / full-video expressions), averaged over the files, as in
  ReferFormer's protocol. Within a file, the masks of a sequence's expressions are merged
  into one id map per frame (a pixel goes to the object with the highest probability
  above the threshold), and every object of the sequence is scored against its
  ground truth by id, DAVIS style (J&F per object, then means over objects).
* A2D-Sentences, JHMDB-Sentences and RefCOCO/+/g (:func:`evaluate_a2d`): samples are the annotated frames where the
  referred instance is present; ``iou_metrics.a2d_metrics`` gives mAP 0.50:0.95, overall
  and mean IoU and P@k. Every frame of a video goes through the model (online, with
  history); outputs are kept for the annotated frames only. A sample's score (for the
  mAP ranking) is the mean probability inside its predicted mask.
* Splits without masks (Ref-YouTube-VOS valid/test, MeViS valid): no score;
  :func:`write_ytvos_submission` writes the server's layout instead.

The ``rvoslib evaluate`` command is in :mod:`rvoslib.evaluate_cli`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image

from rvoslib.data.a2d import read_a2d_sentences
from rvoslib.data.davis import read_ref_davis17
from rvoslib.data.formats import canonical_format, read_dataset, read_mevis, read_ref_youtube_vos
from rvoslib.data.records import Expression, VideoRecord, check_path_component
from rvoslib.inference import eval_mode, probability_logit, resolve_model, segment_frames
from rvoslib.io import atomic_path, write_mask, write_text
from rvoslib.iou_metrics import a2d_metrics
from rvoslib.metrics import ObjectResult, evaluate_object, statistics, summarize

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

# --------------------------------------------------------------------------- predictions


@dataclass
class VideoPrediction:
    """The predicted masks of one video's expressions.

    Attributes:
        video_id: the record's id.
        exp_ids: K expression ids, in the order of ``masks``.
        frame_indices: T' frame indices of the record covered by ``masks`` (all, or the annotated ones).
        frame_names: their names.
        masks: (K, T', H, W) bool at the original frame size.
        logits: (K, T', H, W) float32 upsampled logits when asked for, else None.
    """

    video_id: str
    exp_ids: list[str]
    frame_indices: list[int]
    frame_names: list[str]
    masks: np.ndarray
    logits: Optional[np.ndarray] = None


def model_config(cfg: Any, model: Any) -> Any:
    """The ``ModelConfig`` to use: ``cfg.model`` of a ``Config``, a ``ModelConfig``, or ``model.cfg``."""
    if cfg is None:
        return model.cfg
    return cfg.model if hasattr(cfg, "model") else cfg


def predict_records(model: Any, records: Sequence[VideoRecord], cfg: Any = None,
                    device: Union[str, torch.device, None] = None, *, window: Optional[int] = None,
                    threshold: float = 0.5, dtype: Optional[torch.dtype] = None,
                    batch_size: Optional[int] = None, return_logits: bool = False,
                    annotated_only: bool = False, max_videos: Optional[int] = None,
                    progress: bool = True) -> Iterator[VideoPrediction]:
    """Predict every expression of every record, one video at a time (a generator).

    Args:
        model: a VLPRVOS or a checkpoint path.
        records: videos from a reader of ``rvoslib.data``.
        cfg: ``Config`` or ``ModelConfig`` giving the default window (T); default ``model.cfg``.
        device: where to run (default: where the model is).
        window, threshold, dtype, batch_size: as in :func:`rvoslib.inference.segment_video`.
        return_logits: keep the upsampled logits.
        annotated_only: keep outputs for the annotated frames only (all frames still run).
        max_videos: stop after this many videos.
        progress: a progress bar over videos.
    Yields:
        :class:`VideoPrediction` per record with at least one expression.
    """
    from tqdm.auto import tqdm

    model, device = resolve_model(model, device)
    window = model_config(cfg, model).num_frames if window is None else window
    todo = [r for r in records if r.expressions][:max_videos]
    for record in tqdm(todo, desc="videos", unit="video", disable=not progress):
        keep = record.annotated_indices() if annotated_only else None
        if keep is not None and not keep:
            continue
        result = segment_frames(
            record.load_frames(), [e.text for e in record.expressions], model, window=window, device=device,
            dtype=dtype, threshold=threshold, return_logits=return_logits, batch_size=batch_size, keep=keep,
            frame_names=record.frame_names, progress=False,
        )
        yield VideoPrediction(record.video_id, [e.exp_id for e in record.expressions], result.frame_indices,
                              result.frame_names, result.masks, result.logits)


# --------------------------------------------------------------------------- J&F per expression


def scorable(record: VideoRecord) -> Optional[VideoRecord]:
    """A copy of ``record`` with only the expressions that can be scored, or None if there are none."""
    if not record.has_masks or not record.annotated_indices():
        return None
    expressions = [e for e in record.expressions if e.obj_ids]
    return dataclasses.replace(record, expressions=expressions) if expressions else None


def ground_truth(record: VideoRecord, obj_ids: Sequence[int], indices: Sequence[int]) -> np.ndarray:
    """(n, H, W) bool GT of the union of ``obj_ids`` at frame ``indices`` (void counts as background)."""
    return np.stack([record.load_mask(i, obj_ids) == 1 for i in indices])


def score_prediction(prediction: VideoPrediction, record: VideoRecord) -> list[tuple[ObjectResult, Expression]]:
    """J and F of each expression of one video over its annotated frames.

    Returns:
        (ObjectResult, Expression) per scored expression; ``ObjectResult.sequence`` is the
        video id and ``object_id`` the expression id.
    """
    expressions = {e.exp_id: e for e in record.expressions}
    rows = {index: row for row, index in enumerate(prediction.frame_indices)}
    frames = [i for i in record.annotated_indices() if i in rows]
    scores = []
    for k, exp_id in enumerate(prediction.exp_ids):
        expression = expressions.get(exp_id)
        if expression is None or not expression.obj_ids or not frames:
            continue
        pred = prediction.masks[k, [rows[i] for i in frames]]  # (n, H, W)
        j, f = evaluate_object(pred, ground_truth(record, expression.obj_ids, frames))
        scores.append((ObjectResult(record.video_id, exp_id, j, f, statistics(j), statistics(f)), expression))
    return scores


def score_predictions(predictions: Iterable[VideoPrediction],
                      records: Sequence[VideoRecord]) -> list[tuple[ObjectResult, Expression]]:
    """Score a stream of predictions against the records they came from (matched by video id)."""
    by_id = {r.video_id: r for r in records}
    scores = []
    for prediction in predictions:
        if prediction.video_id not in by_id:
            raise KeyError(f"prediction for video {prediction.video_id!r}, which is not among the records")
        scores.extend(score_prediction(prediction, by_id[prediction.video_id]))
    return scores


def summarize_scores(scores: Sequence[tuple[ObjectResult, Expression]]) -> dict:
    """``J&F``, ``J``, ``F`` over objects, ``J&F/<kind>`` per expression kind, and ``num_objects``."""
    if not scores:
        raise ValueError("nothing to score: no expression has a ground-truth mask on any frame "
                         "(for a split without masks, write a submission with evaluate_dataset)")
    objects = [o for o, _ in scores]
    summary = summarize(objects)
    out = {"J&F": summary["J&F-Mean"], "J": summary["J-Mean"], "F": summary["F-Mean"]}
    for kind in sorted({e.kind for _, e in scores if e.kind}):
        out[f"J&F/{kind}"] = summarize([o for o, e in scores if e.kind == kind])["J&F-Mean"]
    out["num_objects"] = len(objects)
    return out


def evaluate_model(model: Any, records: Sequence[VideoRecord], cfg: Any = None,
                   device: Union[str, torch.device, None] = None, max_videos: Optional[int] = None,
                   progress: bool = True, *, window: Optional[int] = None, threshold: float = 0.5,
                   dtype: Optional[torch.dtype] = None, batch_size: Optional[int] = None) -> dict:
    """J&F of ``model`` on the records that have masks (the engine's periodic validation).

    Args:
        model: a VLPRVOS (also DDP-wrapped) or a checkpoint path; its train/eval mode is restored.
        records: videos with masks (records or expressions without masks are skipped).
        cfg: ``Config`` / ``ModelConfig`` for the window (default ``model.cfg``).
        device: where to run (default: where the model is).
        max_videos: evaluate the first ``max_videos`` scorable videos only.
        progress: progress bar over videos.
        window, threshold, dtype, batch_size: as in :func:`rvoslib.inference.segment_video`.
    Returns:
        ``{"J&F", "J", "F", "J&F/<kind>"..., "num_objects"}`` (floats in [0, 1], and an int).
    """
    todo = [r for r in map(scorable, records) if r is not None][:max_videos]
    model, device = resolve_model(model, device)
    with eval_mode(model):
        predictions = predict_records(model, todo, cfg, device, window=window, threshold=threshold, dtype=dtype,
                                      batch_size=batch_size, annotated_only=True, progress=progress)
        return summarize_scores(score_predictions(predictions, todo))


# --------------------------------------------------------------------------- Ref-DAVIS17


def group_name(expression: Expression) -> str:
    """The annotator file an expression comes from: ``annot1_full_video``, ``annot2_first_frame``, or ``all``."""
    parts = [f"annot{expression.annotator}" if expression.annotator is not None else "all"]
    if expression.extra.get("expression_type"):
        parts.append(str(expression.extra["expression_type"]))
    return "_".join(parts)


def davis_groups(records: Sequence[VideoRecord]) -> dict[str, list[VideoRecord]]:
    """Split records by annotator file: ``{group: [record copies holding that group's expressions]}``."""
    names = sorted({group_name(e) for r in records for e in r.expressions})
    return {name: [dataclasses.replace(r, expressions=[e for e in r.expressions if group_name(e) == name])
                   for r in records if any(group_name(e) == name for e in r.expressions)] for name in names}


def merge_objects(logits: np.ndarray, obj_ids: Sequence[int], threshold: float = 0.5) -> np.ndarray:
    """Merge K objects' masks into one id map per frame.

    Args:
        logits: (K, T, H, W) upsampled logits of K expressions.
        obj_ids: the object id of each expression.
        threshold: a pixel is a candidate for object k when its probability exceeds this.
    Returns:
        (T, H, W) uint8: each pixel gets the id of the candidate object with the highest
        probability (the first one on ties), 0 where no object is a candidate.
    """
    # the comparison runs on logits: sigmoid is monotonic, and this needs no (K, T, H, W) float copy
    best = np.full(logits.shape[1:], probability_logit(threshold), dtype=np.float32)  # (T, H, W)
    merged = np.zeros(logits.shape[1:], dtype=np.uint8)
    for logit, obj_id in zip(logits, obj_ids):
        better = logit > best
        merged[better], best[better] = obj_id, logit[better]
    return merged


def score_id_maps(record: VideoRecord, id_maps: np.ndarray, frame_indices: Sequence[int],
                  obj_ids: Sequence[int]) -> list[ObjectResult]:
    """DAVIS per-object scores of merged predictions ``id_maps (T', H, W)`` at ``frame_indices``."""
    rows = {index: row for row, index in enumerate(frame_indices)}
    frames = [i for i in record.annotated_indices() if i in rows]
    results = []
    for obj_id in obj_ids:
        pred = id_maps[[rows[i] for i in frames]] == obj_id  # (n, H, W)
        j, f = evaluate_object(pred, ground_truth(record, [obj_id], frames))
        results.append(ObjectResult(record.video_id, int(obj_id), j, f, statistics(j), statistics(f)))
    return results


def score_davis_group(predictions: Iterable[VideoPrediction], records: Sequence[VideoRecord],
                      objects: dict[str, list[int]], threshold: float = 0.5,
                      out_dir: Optional[Path] = None) -> list[ObjectResult]:
    """Merge and score one annotator file's predictions (with logits).

    Args:
        predictions: per video, the logits of this group's expressions.
        records: the group's records (expressions of this group only).
        objects: per video, the object ids to score (all objects any annotator refers to).
        threshold: candidate threshold of :func:`merge_objects`.
        out_dir: if given, the merged palette PNGs go to ``out_dir/<video>/<frame>.png``.
    """
    by_id = {r.video_id: r for r in records}
    results = []
    for prediction in predictions:
        record = by_id[prediction.video_id]
        obj_of = {e.exp_id: e.obj_ids[0] for e in record.expressions}
        merged = merge_objects(prediction.logits, [obj_of[x] for x in prediction.exp_ids], threshold)
        if out_dir is not None:
            for name, id_map in zip(prediction.frame_names, merged):
                write_mask(out_dir / record.video_id / f"{name}.png", id_map)
        results.extend(score_id_maps(record, merged, prediction.frame_indices, objects[record.video_id]))
    return results


def average_groups(summaries: dict[str, dict]) -> dict:
    """Mean over annotator files of each toolkit statistic; ``J&F``, ``J``, ``F`` at the top."""
    if not summaries:
        raise ValueError("no Ref-DAVIS17 annotator file had an expression to score")
    keys = next(iter(summaries.values())).keys()
    mean = {k: float(np.mean([s[k] for s in summaries.values()])) for k in keys}
    return {"J&F": mean["J&F-Mean"], "J": mean["J-Mean"], "F": mean["F-Mean"], **mean}


def evaluate_ref_davis17(model: Any, records: Sequence[VideoRecord], cfg: Any = None,
                         device: Union[str, torch.device, None] = None, out_dir: Optional[PathLike] = None,
                         *, threshold: float = 0.5, progress: bool = True, **predict_kwargs: Any) -> dict:
    """The Ref-DAVIS17 protocol: DAVIS J&F per annotator file, averaged over files.

    Args:
        model, cfg, device: as in :func:`predict_records`.
        records: from ``read_ref_davis17`` (``Expression.annotator`` and
            ``extra["expression_type"]`` name the file; a csv gives one group "all").
        out_dir: merged palette PNGs go to ``out_dir/<group>/<sequence>/<frame>.png``
            (the DAVIS toolkit's results layout).
        threshold: mask threshold.
        predict_kwargs: window, dtype, batch_size, max_videos for :func:`predict_records`.
    Returns:
        ``J&F``, ``J``, ``F`` and the toolkit's statistics averaged over files; ``groups``:
        ``{file: toolkit summary}``; ``objects``: ``{file: {"<seq>_<id>": J&F}}``.
    """
    todo = [r for r in map(scorable, records) if r is not None]
    objects = {r.video_id: sorted({i for e in r.expressions for i in e.obj_ids}) for r in todo}
    model, device = resolve_model(model, device)
    summaries, per_object = {}, {}
    with eval_mode(model):
        for name, group in davis_groups(todo).items():
            predictions = predict_records(model, group, cfg, device, threshold=threshold, return_logits=True,
                                          progress=progress, **predict_kwargs)
            group_dir = Path(out_dir) / name if out_dir is not None else None
            results = score_davis_group(predictions, group, objects, threshold, group_dir)
            if not results:
                continue
            summaries[name] = summarize(results)
            per_object[name] = {o.name: o.jf_mean for o in results}
            logger.info("Ref-DAVIS17 %s: J&F %.4f over %d objects", name, summaries[name]["J&F-Mean"], len(results))
    return {**average_groups(summaries), "groups": summaries, "objects": per_object}


# --------------------------------------------------------------------------- A2D-Sentences


def a2d_samples(prediction: VideoPrediction, record: VideoRecord) -> Iterator[tuple[np.ndarray, np.ndarray, float]]:
    """(pred (H, W) bool, gt (H, W) bool, score) per annotated frame where the referred instance is present."""
    expressions = {e.exp_id: e for e in record.expressions}
    for k, exp_id in enumerate(prediction.exp_ids):
        expression = expressions[exp_id]
        for row, index in enumerate(prediction.frame_indices):
            if not record.is_annotated(index):
                continue
            gt = record.load_mask(index, expression.obj_ids) == 1
            if not gt.any():
                continue
            pred = prediction.masks[k, row]
            prob = 1.0 / (1.0 + np.exp(-prediction.logits[k, row][pred].astype(np.float64)))
            yield pred, gt, float(prob.mean()) if prob.size else 0.0


def evaluate_a2d(model: Any, records: Sequence[VideoRecord], cfg: Any = None,
                 device: Union[str, torch.device, None] = None, *, threshold: float = 0.5,
                 progress: bool = True, **predict_kwargs: Any) -> dict:
    """The A2D/JHMDB-Sentences protocol: mAP 0.50:0.95, overall IoU, mean IoU and P@k.

    Returns:
        ``iou_metrics.a2d_metrics`` keys (``mAP``, ``AP50``, ..., ``overall_iou``, ``mean_iou``,
        ``P@0.5`` ... ``P@0.9``) and ``num_samples``.
    """
    todo = [r for r in map(scorable, records) if r is not None]
    model, device = resolve_model(model, device)
    by_id = {r.video_id: r for r in todo}
    samples = []  # (pred (H, W), gt (H, W), score)
    with eval_mode(model):
        for prediction in predict_records(model, todo, cfg, device, threshold=threshold, return_logits=True,
                                          annotated_only=True, progress=progress, **predict_kwargs):
            samples.extend(a2d_samples(prediction, by_id[prediction.video_id]))
    if not samples:
        raise ValueError("no A2D sample to score: no annotated frame shows a referred instance")
    preds, gts, scores = (list(column) for column in zip(*samples))
    return {**a2d_metrics(preds, gts, scores), "num_samples": len(samples)}


# --------------------------------------------------------------------------- submissions


def write_submission_png(path: PathLike, mask: np.ndarray) -> None:
    """One (H, W) binary mask as an 8-bit grayscale PNG with values 0 and 255, atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(np.where(np.asarray(mask, dtype=bool), 255, 0).astype(np.uint8), mode="L").save(tmp, "PNG")


def write_ytvos_submission(predictions: Iterable[VideoPrediction], out_dir: PathLike,
                           zip_path: Optional[PathLike] = None) -> Path:
    """Write predictions in the Ref-YouTube-VOS server's layout and zip them.

    Layout (what the CodaLab server of Ref-YouTube-VOS reads, as produced by the public
    baselines, e.g. ReferFormer's ``inference_ytvos.py``)::

        Annotations/<video_id>/<exp_id>/<frame>.png     8-bit grayscale (mode "L"), 0 / 255

    one PNG per frame listed in meta_expressions.json, at the frame's original size; the
    zip holds the ``Annotations/`` folder at its root. MeViS ``valid`` uses the same layout.
    Video ids, expression ids and frame names must each be a single path component
    (``check_path_component``), so every file stays under ``out_dir`` and every archive
    entry is a relative path under ``Annotations/``.

    Args:
        predictions: :class:`VideoPrediction` per video (every frame, every expression).
        out_dir: the folder receiving ``Annotations/``.
        zip_path: the archive (default ``out_dir/submission.zip``), written atomically.
    Returns:
        the zip path.
    """
    out_dir = Path(out_dir)
    zip_path = Path(zip_path) if zip_path is not None else out_dir / "submission.zip"
    files = []
    for prediction in predictions:
        video_id = check_path_component(prediction.video_id, "prediction", "video id")
        names = [check_path_component(n, f"prediction for video {video_id!r}", "frame name")
                 for n in prediction.frame_names]
        for exp_id, masks in zip(prediction.exp_ids, prediction.masks):
            exp_id = check_path_component(exp_id, f"prediction for video {video_id!r}", "expression id")
            for name, mask in zip(names, masks):
                relative = Path("Annotations") / video_id / exp_id / f"{name}.png"
                write_submission_png(out_dir / relative, mask)
                files.append(relative)
    if not files:
        raise ValueError("no prediction to write: the submission would be empty")
    with atomic_path(zip_path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for relative in files:
                archive.write(out_dir / relative, arcname=relative.as_posix())
    logger.info("wrote %d masks to %s and %s", len(files), out_dir / "Annotations", zip_path)
    return zip_path


# --------------------------------------------------------------------------- datasets


# formats scored with the A2D protocol (mAP 0.50:0.95, overall / mean IoU, P@k) on their annotated frames
IOU_PROTOCOL_FORMATS = ("a2d-sentences", "jhmdb-sentences", "refcoco", "refcoco+", "refcocog", "refcoco-all")


def read_split(root: PathLike, format: str, split: Optional[str]) -> list[VideoRecord]:
    """Read the records of one split of a dataset in any supported format."""
    format = canonical_format(format)
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"dataset root does not exist: {root}")
    if format == "ref-youtube-vos":
        return read_ref_youtube_vos(root, split=split)
    if format == "mevis":
        return read_mevis(root, split=split)
    if format == "a2d-sentences":
        return read_a2d_sentences(root, split={"valid": "test", "val": "test"}.get(split, split or "test"))
    if format in ("refcoco", "refcoco+", "refcocog", "refcoco-all", "jhmdb-sentences"):
        return read_dataset(format, root, split=split)
    records = read_ref_davis17(root)
    names = davis_split_videos(root, split)
    return records if names is None else [r for r in records if r.video_id in names]


def davis_split_videos(root: Path, split: Optional[str]) -> Optional[set[str]]:
    """Sequences of a DAVIS split from ``ImageSets/2017/<split>.txt`` (None: no such file, keep all)."""
    if split is None:
        return None
    name = {"valid": "val"}.get(split, split)
    for path in (root / "ImageSets" / "2017" / f"{name}.txt", root / "ImageSets" / f"{name}.txt"):
        if path.is_file():
            return set(path.read_text().split())
    return None


def evaluate_dataset(model_or_checkpoint: Any, root: PathLike, format: str = "ytvos",
                     split: Optional[str] = "valid", out_dir: Optional[PathLike] = None, *,
                     device: Union[str, torch.device, None] = None, window: Optional[int] = None,
                     threshold: float = 0.5, dtype: Optional[torch.dtype] = None,
                     batch_size: Optional[int] = None, max_videos: Optional[int] = None,
                     progress: bool = True, pretrained: Optional[str] = None) -> dict:
    """Run a benchmark's full protocol on one split.

    Args:
        model_or_checkpoint: a VLPRVOS or the path of an rvoslib checkpoint.
        root: dataset root. format: "ytvos" (also the synthetic sets), "mevis", "davis"
            (Ref-DAVIS17), "a2d", "jhmdb", "refcoco", "refcoco+" or "refcocog" (long names as in
            ``rvoslib.data.READERS`` work too).
        split: split name ("valid", "train", "valid_u", "test"...).
        out_dir: where ``metrics.json`` (and DAVIS merged PNGs, or the submission) go;
            required for splits without masks.
        device, window, threshold, dtype, batch_size: as in ``segment_video``.
        max_videos: only the first videos (a quick check).
        pretrained: CLIP weights for a trainable-only checkpoint.
    Returns:
        Ref-YouTube-VOS / MeViS / synthetic with masks: :func:`summarize_scores` plus
        ``objects`` (``"<video>/<exp_id>"`` -> J&F); Ref-DAVIS17: :func:`evaluate_ref_davis17`;
        A2D, JHMDB, RefCOCO: :func:`evaluate_a2d`; without masks: ``submission`` (zip path), ``videos``,
        ``expressions``. Every result also names ``format``, ``split`` and ``num_videos``.
    """
    format = canonical_format(format)
    records = read_split(root, format, split)[:max_videos]
    if not records:
        raise ValueError(f"no video found for format {format!r}, split {split!r} under {root}")
    model, device = resolve_model(model_or_checkpoint, device, pretrained)
    options = dict(window=window, dtype=dtype, batch_size=batch_size)
    out = Path(out_dir) if out_dir is not None else None
    if format == "ref-davis17":
        results = evaluate_ref_davis17(model, records, None, device, out, threshold=threshold, progress=progress,
                                       **options)
    elif format in IOU_PROTOCOL_FORMATS:
        results = evaluate_a2d(model, records, None, device, threshold=threshold, progress=progress, **options)
    elif any(scorable(r) is not None for r in records):
        results = _evaluate_jf(model, records, device, threshold, progress, options)
    else:
        results = _write_submission(model, records, device, threshold, progress, options, out)
    results = {**results, "format": format, "split": split, "num_videos": len(records)}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "metrics.json", json.dumps(results, indent=2, default=str))  # atomic; a failure names the file
    return results


def _evaluate_jf(model: Any, records: Sequence[VideoRecord], device: torch.device, threshold: float,
                 progress: bool, options: dict) -> dict:
    """J&F over (video, expression) objects, with the per-object table."""
    todo = [r for r in map(scorable, records) if r is not None]
    with eval_mode(model):
        predictions = predict_records(model, todo, None, device, threshold=threshold, annotated_only=True,
                                      progress=progress, **options)
        scores = score_predictions(predictions, todo)
    return {**summarize_scores(scores), "objects": {f"{o.sequence}/{o.object_id}": o.jf_mean for o, _ in scores}}


def _write_submission(model: Any, records: Sequence[VideoRecord], device: torch.device, threshold: float,
                      progress: bool, options: dict, out: Optional[Path]) -> dict:
    """Predict every frame of every expression and write the server's zip."""
    if out is None:
        raise ValueError("this split has no ground-truth masks, so it cannot be scored here; pass out_dir "
                         "(--out) to write a submission for the benchmark's server instead")
    with eval_mode(model):
        predictions = predict_records(model, records, None, device, threshold=threshold, progress=progress, **options)
        zip_path = write_ytvos_submission(predictions, out)
    return {"submission": str(zip_path), "expressions": sum(len(r.expressions) for r in records)}
