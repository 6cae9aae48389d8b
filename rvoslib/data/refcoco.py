"""RefCOCO / RefCOCO+ / RefCOCOg: referring expressions on COCO images, read as one-frame videos.

The published layout (the ``refer`` toolkit's ``data/`` folder), paths relative to ``root``::

    train2014/COCO_train2014_000000581857.jpg    COCO 2014 train images (also accepted:
                                                 images/mscoco/images/train2014/ or images/train2014/)
    refcoco/instances.json                       COCO instances: images, annotations (polygons or RLE)
    refcoco/refs(unc).p                          the refs: a pickled list of dicts (also refs(google).p)
    refcoco+/instances.json, refcoco+/refs(unc).p
    refcocog/instances.json, refcocog/refs(umd).p (also refs(google).p)

A ref is ``{"ref_id", "ann_id", "image_id", "split", "category_id", "sentences": [{"sent_id",
"sent", "raw", "tokens"}], ...}``; its ``ann_id`` is an annotation of instances.json whose
``segmentation`` is the referred object's mask. The refs file is a pickle: it is read with
:func:`rvoslib.safe_pickle.load_plain_pickle`, which admits plain containers and scalars
only and never runs code.

Each image becomes one :class:`VideoRecord` with a single frame (``video_id`` = the image's
file stem); each sentence of each ref on it is an :class:`Expression` with ``obj_ids =
[ann_id]``. In ``RVOSDataset`` such a record gives a T=1 clip when ``model.num_frames = 1``
(image pretraining), and a static clip of T repeated frames otherwise, which is how images
are mixed with videos in joint training (``data.mix_root``).

``read_refcoco_union`` (format ``refcoco-all``) reads the three together, as the paper's image
pretraining uses them.

Splits: refcoco / refcoco+ (unc) ``train``, ``val``, ``testA``, ``testB``; refcocog (umd)
``train``, ``val``, ``test``. ``split="valid"`` means ``val``.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from rvoslib.data.files import load_json
from rvoslib.data.records import (
    DatasetFormatError,
    Expression,
    MaskSource,
    MasksUnavailableError,
    VideoRecord,
    check_mask_size,
    check_path_component,
)

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike
REFCOCO_DATASETS = ("refcoco", "refcoco+", "refcocog")
DEFAULT_SPLIT_BY = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd"}
IMAGE_FOLDERS = ("train2014", "images/mscoco/images/train2014", "images/train2014")


class CocoMasks(MaskSource):
    """The object masks of one COCO image, from instances.json segmentations (one frame).

    Args:
        segmentations: ``{ann_id: segmentation}`` (COCO polygons ``[[x, y, ...], ...]`` or RLE).
        size: (H, W) of the image from instances.json.
        frame_path: the image, to check that it has that size (once, on first use).
        source: the instances.json path, named in errors.
    """

    def __init__(self, segmentations: dict[int, Any], size: tuple[int, int], frame_path: Optional[Path],
                 source: str):
        self.segmentations, self.size = segmentations, size
        self.frame_path, self.source = frame_path, source
        self._checked = frame_path is None

    def is_annotated(self, frame_index: int) -> bool:
        return frame_index == 0

    def load(self, frame_index: int, obj_ids: Sequence[int]) -> np.ndarray:
        """(H, W) uint8: 1 on the union of the annotations ``obj_ids``, 0 elsewhere (no void)."""
        if frame_index != 0:
            raise MasksUnavailableError(f"an image has one frame, not frame {frame_index}")
        height, width = self.size
        mask = np.zeros((height, width), dtype=np.uint8)
        for ann_id in obj_ids:
            if ann_id not in self.segmentations:
                raise MasksUnavailableError(f"{self.source}: no annotation {ann_id} on this image")
            mask |= decode_segmentation(self.segmentations[ann_id], height, width, f"{self.source}, annotation {ann_id}")
        if not self._checked:
            check_mask_size(mask, self.source, self.frame_path)
            self._checked = True
        return mask


def decode_segmentation(segmentation: Any, height: int, width: int, where: str) -> np.ndarray:
    """A COCO segmentation (polygons, RLE, or uncompressed RLE) -> (H, W) uint8 in {0, 1}."""
    from pycocotools import mask as mask_utils

    try:
        if isinstance(segmentation, list):  # polygons: [[x0, y0, x1, y1, ...], ...]
            polygons = [p for p in segmentation if len(p) >= 6]
            if not polygons:
                return np.zeros((height, width), dtype=np.uint8)
            rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
        elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
            rle = mask_utils.frPyObjects(segmentation, height, width)
        elif isinstance(segmentation, dict):
            rle = dict(segmentation)
            if isinstance(rle.get("counts"), str):
                rle["counts"] = rle["counts"].encode("ascii")
        else:
            raise TypeError(f"expected polygons or RLE, got {type(segmentation).__name__}")
        with warnings.catch_warnings():  # pycocotools' numpy-2 copy-keyword DeprecationWarning
            warnings.simplefilter("ignore", DeprecationWarning)
            decoded = mask_utils.decode([rle])  # (H, W, 1)
    except (TypeError, ValueError, KeyError) as err:
        raise DatasetFormatError(f"{where}: cannot decode the segmentation ({err})") from None
    if decoded.shape[:2] != (height, width):
        raise DatasetFormatError(f"{where}: the segmentation is {decoded.shape[:2]}, the image {(height, width)}")
    return (decoded.reshape(height, width) > 0).astype(np.uint8)


# ----------------------------------------------------------------------------- reading


def coco_images_dir(root: Path) -> Path:
    """The COCO train2014 image folder under ``root`` (see ``IMAGE_FOLDERS``)."""
    for name in IMAGE_FOLDERS:
        if (root / name).is_dir():
            return root / name
    raise FileNotFoundError(f"no COCO train2014 image folder under {root}: expected one of "
                            f"{[str(root / n) for n in IMAGE_FOLDERS]}")


def read_refs(path: Path) -> list[dict]:
    """The refs of a ``refs(<split_by>).p`` file, checked: a list of dicts with ids, split and sentences."""
    from rvoslib.safe_pickle import load_plain_pickle

    refs = load_plain_pickle(path)
    if not isinstance(refs, list):
        raise DatasetFormatError(f"{path}: expected a list of refs, got {type(refs).__name__}")
    for index, ref in enumerate(refs):
        where = f"{path}, ref #{index}"
        if not isinstance(ref, dict):
            raise DatasetFormatError(f"{where}: expected a dict, got {type(ref).__name__}")
        missing = {"ref_id", "ann_id", "image_id", "split", "sentences"} - set(ref)
        if missing:
            raise DatasetFormatError(f"{where}: missing key(s) {sorted(missing)}")
        if not isinstance(ref["sentences"], list) or not all(isinstance(s, dict) for s in ref["sentences"]):
            raise DatasetFormatError(f"{where}: 'sentences' must be a list of dicts")
    return refs


def read_instances(path: Path) -> tuple[dict[int, dict], dict[int, dict]]:
    """``(images by id, annotations by id)`` of a COCO instances.json."""
    data = load_json(path, "COCO instances file")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise DatasetFormatError(f"{path}: expected a COCO instances file with 'images' and 'annotations' lists")
    try:
        images = {int(im["id"]): im for im in data["images"]}
        annotations = {int(a["id"]): a for a in data["annotations"]}
    except (KeyError, TypeError, ValueError) as err:
        raise DatasetFormatError(f"{path}: an image or annotation has no integer 'id' ({err})") from None
    return images, annotations


def read_refcoco(root: PathLike, dataset: str = "refcoco", split: Optional[str] = "train",
                 split_by: Optional[str] = None, check_files: bool = True) -> list[VideoRecord]:
    """Read one split of RefCOCO, RefCOCO+ or RefCOCOg as one-frame video records.

    Args:
        root: the folder holding ``<dataset>/`` and the COCO images (layout in the module docstring).
        dataset: "refcoco", "refcoco+" or "refcocog".
        split: the refs' split ("train", "val", "testA", "testB", "test"; "valid" = "val"), None = all.
        split_by: which refs file, ``refs(<split_by>).p`` (default: unc, unc, umd).
        check_files: check that every image file exists (one error naming the first missing one).
    Returns:
        one record per image with at least one ref in the split, ordered by image id.
    """
    root = Path(root)
    if dataset not in REFCOCO_DATASETS:
        raise ValueError(f"dataset must be one of {REFCOCO_DATASETS}, got {dataset!r}")
    split = {"valid": "val"}.get(split, split)
    folder = root / dataset
    refs_path = folder / f"refs({split_by or DEFAULT_SPLIT_BY[dataset]}).p"
    instances_path = folder / "instances.json"
    refs = [r for r in read_refs(refs_path) if split is None or r["split"] == split]
    if not refs:
        raise DatasetFormatError(f"{refs_path}: no refs in split {split!r}")
    images, annotations = read_instances(instances_path)
    images_dir = coco_images_dir(root)
    by_image: dict[int, list[dict]] = defaultdict(list)
    for ref in refs:
        by_image[int(ref["image_id"])].append(ref)
    records = [_image_record(images_dir, image_id, image_refs, images, annotations, refs_path, instances_path,
                             dataset) for image_id, image_refs in sorted(by_image.items())]
    records = [r for r in records if r.expressions]
    if check_files:
        missing = [r.frame_paths[0] for r in records if not r.frame_paths[0].is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} of {len(records)} images of {dataset} {split} are missing, "
                                    f"first {missing[0]}")
    logger.info("read %s %s: %d images, %d refs, %d sentences", dataset, split, len(records), len(refs),
                sum(len(r.expressions) for r in records))
    return records


def _image_record(images_dir: Path, image_id: int, refs: list[dict], images: dict[int, dict],
                  annotations: dict[int, dict], refs_path: Path, instances_path: Path, dataset: str) -> VideoRecord:
    """One image with the sentences of its refs."""
    image = images.get(image_id)
    if image is None:
        raise DatasetFormatError(f"{refs_path}: image {image_id} is not in {instances_path}")
    file_name = check_path_component(image.get("file_name", ""), instances_path, "image file name")
    stem = Path(file_name).stem
    expressions, segmentations = [], {}
    for ref in refs:
        ann_id = int(ref["ann_id"])
        annotation = annotations.get(ann_id)
        if annotation is None or int(annotation.get("image_id", -1)) != image_id:
            raise DatasetFormatError(f"{refs_path}: ref {ref['ref_id']} names annotation {ann_id}, which "
                                     f"{instances_path} does not have on image {image_id}")
        segmentations[ann_id] = annotation.get("segmentation")
        for sentence in ref["sentences"]:
            text = str(sentence.get("sent") or sentence.get("raw") or "").strip()
            if not text:
                logger.warning("%s: ref %s has an empty sentence; skipped", refs_path, ref["ref_id"])
                continue
            exp_id = check_path_component(sentence.get("sent_id", len(expressions)), refs_path, "sentence id")
            expressions.append(Expression(exp_id, text, [ann_id], extra={
                "ref_id": ref["ref_id"], "category_id": ref.get("category_id"), "split": ref["split"]}))
    size = (int(image["height"]), int(image["width"]))
    frame_path = images_dir / file_name
    return VideoRecord(stem, [stem], [frame_path], expressions,
                       CocoMasks(segmentations, size, frame_path, str(instances_path)),
                       dataset=dataset, extra={"image_id": image_id})


def read_refcoco_plus(root: PathLike, split: Optional[str] = "train", **kwargs: Any) -> list[VideoRecord]:
    """:func:`read_refcoco` with ``dataset="refcoco+"``."""
    return read_refcoco(root, "refcoco+", split, **kwargs)


def read_refcocog(root: PathLike, split: Optional[str] = "train", **kwargs: Any) -> list[VideoRecord]:
    """:func:`read_refcoco` with ``dataset="refcocog"`` (umd refs by default)."""
    return read_refcoco(root, "refcocog", split, **kwargs)


def read_refcoco_union(root: PathLike, split: Optional[str] = "train", **kwargs: Any) -> list[VideoRecord]:
    """RefCOCO, RefCOCO+ and RefCOCOg (default refs files) together, as the paper's image pretraining uses.

    Each dataset's records keep their own sentences; ``video_id`` is prefixed with the dataset
    (``refcoco+/COCO_train2014_...`` would not be one path component, so ``refcoco+_COCO...``)
    so ids stay unique where an image appears in several datasets. A dataset whose folder is
    missing is an error naming it. Note: images of one dataset's val/test may be in another's
    train split; this reader does not remove them.
    """
    records = []
    for dataset in REFCOCO_DATASETS:
        for record in read_refcoco(root, dataset, split, **kwargs):
            record.video_id = f"{dataset}_{record.video_id}"
            records.append(record)
    return records
