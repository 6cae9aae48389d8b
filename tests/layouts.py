"""Writers of tiny datasets in the exact published layouts (RefCOCO, JHMDB-Sentences, MeViS, A2D,
Ref-YouTube-VOS with an unannotated valid split), shared by the reader tests and the README-command tests."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def write_refcoco(root: Path, dataset: str = "refcoco", split_by: str = "unc") -> dict:
    """Two 24 x 32 COCO images, three objects (two polygons and one RLE), refs in two splits."""
    from pycocotools import mask as mask_utils

    images_dir = root / "train2014"
    images_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images = []
    for image_id in (9, 581857):
        name = f"COCO_train2014_{image_id:012d}.jpg"
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(images_dir / name)
        images.append({"id": image_id, "file_name": name, "height": 24, "width": 32})
    crowd = np.zeros((24, 32), dtype=np.uint8, order="F")
    crowd[2:6, 20:30] = 1
    rle = mask_utils.encode(crowd)
    annotations = [
        {"id": 101, "image_id": 9, "category_id": 1, "iscrowd": 0, "bbox": [4, 4, 8, 8],
         "segmentation": [[4, 4, 12, 4, 12, 12, 4, 12]]},  # a square
        {"id": 102, "image_id": 9, "category_id": 2, "iscrowd": 1, "bbox": [20, 2, 10, 4],
         "segmentation": {"size": [24, 32], "counts": rle["counts"].decode("ascii")}},
        {"id": 201, "image_id": 581857, "category_id": 1, "iscrowd": 0, "bbox": [0, 10, 16, 14],
         "segmentation": [[0, 10, 16, 10, 16, 24, 0, 24]]},
    ]
    folder = root / dataset
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "instances.json").write_text(json.dumps(
        {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}))

    def ref(ref_id, ann_id, image_id, split, sentences):
        return {"ref_id": ref_id, "ann_id": ann_id, "image_id": image_id, "split": split, "category_id": 1,
                "file_name": f"COCO_train2014_{image_id:012d}_{ann_id}.jpg",
                "sent_ids": [s[0] for s in sentences],
                "sentences": [{"sent_id": i, "sent": s, "raw": s.upper(), "tokens": s.split()} for i, s in sentences]}

    refs = [ref(0, 101, 9, "train", [(0, "the left square"), (1, "square on the left")]),
            ref(1, 102, 9, "train", [(2, "top right thing")]),
            ref(2, 201, 581857, "val", [(3, "bottom block")])]
    with open(folder / f"refs({split_by}).p", "wb") as handle:
        pickle.dump(refs, handle, protocol=2)  # the published files are protocol-2 pickles
    return {"crowd": crowd.astype(bool)}


def write_mat(path: Path, name: str, array: np.ndarray) -> None:
    """A MATLAB level-5 file with one uint8 array (uncompressed), written from the format's specification."""

    def element(mi_type: int, payload: bytes) -> bytes:
        return struct.pack("<II", mi_type, len(payload)) + payload + b"\0" * (-len(payload) % 8)

    array = np.asarray(array, dtype=np.uint8)
    body = (element(6, struct.pack("<II", 9, 0))  # array flags: mxUINT8_CLASS
            + element(5, struct.pack(f"<{array.ndim}i", *array.shape))  # dimensions
            + element(1, name.encode("ascii"))  # name
            + element(2, array.tobytes(order="F")))  # real part, column-major
    header = b"MATLAB 5.0 MAT-file, written by rvoslib's tests".ljust(116, b" ") + b"\0" * 8 + b"\x00\x01IM"
    path.write_bytes(header + element(14, body))


def write_jhmdb(root: Path, frames: int = 8, masked: int = 6, size=(24, 32)) -> dict[str, np.ndarray]:
    """Two videos of two actions; the actor is a box that moves right; the last frames have no mask."""
    h, w = size
    out = {}
    for action, video in (("brush_hair", "April_09_brush_hair_u_nm_np1_ba_goo_0"), ("run", "Run_fast_f_cm_np1_ri_med_1")):
        frame_dir = root / "Rename_Images" / action / video
        frame_dir.mkdir(parents=True)
        part = np.zeros((h, w, masked), dtype=np.uint8)  # (H, W, T_m) as in puppet_mask.mat
        for t in range(frames):
            image = np.full((h, w, 3), 40, dtype=np.uint8)
            image[6:18, 2 + 2 * t: 10 + 2 * t] = 220
            Image.fromarray(image).save(frame_dir / f"{t + 1:05d}.png")
            if t < masked:
                part[6:18, 2 + 2 * t: 10 + 2 * t, t] = 1
        mask_dir = root / "puppet_mask" / action / video
        mask_dir.mkdir(parents=True)
        write_mat(mask_dir / "puppet_mask.mat", "part_mask", part)
        out[video] = part
    (root / "jhmdb_annotation.txt").write_text(
        "video_id,query\n"
        "April_09_brush_hair_u_nm_np1_ba_goo_0,woman brushing her hair\n"
        "Run_fast_f_cm_np1_ri_med_1,man running to the right\n")
    return out
