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


def write_ytvos_release(root: Path, videos: int = 3) -> Path:
    """Ref-YouTube-VOS as released: train/{JPEGImages,Annotations}, valid/JPEGImages (no masks),
    meta_expressions/<split>/meta_expressions.json (synthetic shapes videos)."""
    import shutil

    from rvoslib.data import write_synthetic_dataset

    for split in ("train", "valid"):
        write_synthetic_dataset(root / split, videos, seed=3, split=split, max_expressions=2)
        meta = root / "meta_expressions" / split
        meta.mkdir(parents=True)
        (root / split / "meta_expressions.json").rename(meta / "meta_expressions.json")
    shutil.rmtree(root / "valid" / "Annotations")  # the valid split's masks are not published
    return root


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def write_mevis(root: Path, frames: int = 6, size=(24, 32)) -> Path:
    """MeViS as released: <split>/JPEGImages, <split>/meta_expressions.json (obj_id and anno_id lists),
    <split>/mask_dict.json (RLE per frame) for train and valid_u; valid has no mask_dict."""
    h, w = size
    for split in ("train", "valid_u", "valid"):
        videos = {}
        masks = {}
        for v in range(2):
            video = f"{split}_{v:03d}"
            tracks = {0: [], 1: []}
            for t in range(frames):
                image = np.full((h, w, 3), 30, dtype=np.uint8)
                a = np.zeros((h, w), np.uint8)
                a[4:12, 2 + 2 * t: 8 + 2 * t] = 1  # moves right
                b = np.zeros((h, w), np.uint8)
                b[14:22, 20:28] = 1  # still
                image[a == 1], image[b == 1] = (200, 40, 40), (40, 40, 200)
                path = root / split / "JPEGImages" / video / f"{t:05d}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(path)
                tracks[0].append(_rle(a))
                tracks[1].append(_rle(b))
            base = 10 * v
            masks[str(base)], masks[str(base + 1)] = tracks[0], tracks[1]
            videos[video] = {"frames": [f"{t:05d}" for t in range(frames)], "expressions": {
                "0": {"exp": "the red box moving right", "obj_id": [0], "anno_id": [base]},
                "1": {"exp": "both boxes", "obj_id": [0, 1], "anno_id": [base, base + 1]}}}
        (root / split / "meta_expressions.json").write_text(json.dumps({"videos": videos}))
        if split != "valid":
            (root / split / "mask_dict.json").write_text(json.dumps(masks))
    return root


def write_a2d(root: Path, frames: int = 6, size=(24, 32)) -> Path:
    """A2D-Sentences as released (Release/videoset.csv, Release/pngs320H/<vid>/, text_annotations/...),
    with the instance annotations as PNG id maps (value = instance_id + 1) instead of the published .h5
    (reading those needs h5py); videos 'trainA' (train) and 'testA' (test), frames 2 and 5 annotated."""
    h, w = size
    (root / "Release").mkdir(parents=True)
    (root / "Release" / "videoset.csv").write_text(
        f"trainA,11,0,1,{h},{w},{frames},2,0\ntestA,11,0,1,{h},{w},{frames},2,1\n")
    text = root / "text_annotations"
    text.mkdir()
    (text / "a2d_annotation.txt").write_text(
        "video_id,instance_id,query\ntrainA,0,man walking to the right\ntestA,0,man walking to the right\n")
    for video in ("trainA", "testA"):
        for t in range(1, frames + 1):
            image = np.full((h, w, 3), 50, dtype=np.uint8)
            ids = np.zeros((h, w), np.uint8)
            ids[6:20, 2 + 3 * t: 8 + 3 * t] = 1  # instance 0, value 1
            image[ids == 1] = (220, 180, 60)
            path = root / "Release" / "pngs320H" / video / f"{t:05d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(path)
            if t in (2, 5):
                annotation = text / "a2d_annotation_with_instances" / video / f"{t:05d}.png"
                annotation.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(ids, mode="L").save(annotation)
    return root
