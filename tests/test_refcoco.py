"""RefCOCO/+/g in the published layout, and the plain-data pickle reader its refs files need."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rvoslib.data import RVOSDataset, read_dataset
from rvoslib.data.records import DatasetFormatError
from rvoslib.data.refcoco import read_refcoco
from rvoslib.safe_pickle import UnsafePickleError, load_plain_pickle, loads_plain_pickle

# ----------------------------------------------------------------------------- the safe unpickler


class _RunsCode:
    """Unpickling this calls ``os.system``: a hostile pickle."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_plain_pickle_reads_containers_and_scalars_of_every_protocol():
    value = {"a": [1, 2.5, None, True], "b": ("x", b"y"), "c": {3, 4}, "d": frozenset({"z"}), "e": -(2 ** 70)}
    for protocol in range(0, pickle.HIGHEST_PROTOCOL + 1):
        assert loads_plain_pickle(pickle.dumps(value, protocol=protocol)) == value


def test_pickle_that_would_run_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps([{"ref_id": 0, "evil": _RunsCode(marker)}], protocol=2))
    pickle.loads(pickle.dumps(_RunsCode(tmp_path / "control")))  # the payload works when unpickled normally
    assert (tmp_path / "control").exists()
    with pytest.raises(UnsafePickleError, match=r"refs\(unc\)\.p.*(posix|os|nt)\.system"):
        load_plain_pickle(path)
    assert not marker.exists()


def test_pickle_of_a_class_instance_or_a_persistent_id_is_refused(tmp_path):
    class Handler(pickle.Pickler):
        def persistent_id(self, obj):
            return "tensor-0" if obj == "external" else None

    import io

    buffer = io.BytesIO()
    Handler(buffer, protocol=2).dump(["external"])
    with pytest.raises(UnsafePickleError, match="persistent id"):
        loads_plain_pickle(buffer.getvalue())
    with pytest.raises(UnsafePickleError, match="collections.OrderedDict"):
        from collections import OrderedDict

        loads_plain_pickle(pickle.dumps(OrderedDict(a=1)))
    with pytest.raises(ValueError, match="not a readable pickle"):
        loads_plain_pickle(b"\x80\x02]q\x00(K\x01", "cut.p")
    with pytest.raises(FileNotFoundError, match="missing.p"):
        load_plain_pickle(tmp_path / "missing.p")


def test_python2_byte_strings_are_read_as_text():
    # protocol-2 pickle written by Python 2 of {'sent': 'caf\xc3\xa9'} (a UTF-8 byte string, SHORT_BINSTRING)
    data = b"\x80\x02}q\x00U\x04sentq\x01U\x05caf\xc3\xa9q\x02s."
    assert loads_plain_pickle(data) == {"sent": "café"}


# ----------------------------------------------------------------------------- a RefCOCO fixture in the published layout


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


def test_refcoco_reader_gives_one_frame_records_with_the_referred_masks(tmp_path):
    fixture = write_refcoco(tmp_path)
    records = read_refcoco(tmp_path, "refcoco", "train")
    assert [r.video_id for r in records] == ["COCO_train2014_000000000009"]
    record = records[0]
    assert record.num_frames == 1 and record.annotated_indices() == [0]
    assert [(e.exp_id, e.text, e.obj_ids) for e in record.expressions] == [
        ("0", "the left square", [101]), ("1", "square on the left", [101]), ("2", "top right thing", [102])]
    square = record.load_mask(0, [101])
    assert square.shape == (24, 32) and square.dtype == np.uint8
    assert square[6, 6] == 1 and square[20, 20] == 0 and square[8, 2] == 0
    assert np.array_equal(record.load_mask(0, [102]) == 1, fixture["crowd"])
    assert record.load_frames().shape == (1, 24, 32, 3)
    val = read_dataset("refcoco", tmp_path, split="valid")  # "valid" means the refs' "val"
    assert [r.extra["image_id"] for r in val] == [581857]


def test_refcocog_uses_umd_refs_and_the_refer_toolkit_image_folder(tmp_path):
    write_refcoco(tmp_path, "refcocog", "umd")
    (tmp_path / "images" / "mscoco" / "images").mkdir(parents=True)
    (tmp_path / "train2014").rename(tmp_path / "images" / "mscoco" / "images" / "train2014")
    records = read_dataset("refcocog", tmp_path, split=None)
    assert len(records) == 2 and all(r.frame_paths[0].is_file() for r in records)


def test_images_are_t1_clips_or_static_clips_in_the_dataset(tmp_path):
    write_refcoco(tmp_path)
    records = read_refcoco(tmp_path, "refcoco", "train")
    one = RVOSDataset(records, clip_len=1, size=32, train=True)[0]
    assert one["frames"].shape == (1, 3, 32, 32) and one["masks"].shape == (1, 32, 32)
    assert one["masks"].sum() > 0
    four = RVOSDataset(records, clip_len=4, size=32, train=True, flip_prob=0.0)[0]
    assert four["frames"].shape == (4, 3, 32, 32)
    assert all(bool((four["frames"][t] == four["frames"][0]).all()) for t in range(4))  # one image, repeated


def test_refcoco_errors_name_the_file(tmp_path):
    write_refcoco(tmp_path)
    refs = tmp_path / "refcoco" / "refs(unc).p"
    with pytest.raises(FileNotFoundError, match=r"refs\(google\)\.p"):
        read_refcoco(tmp_path, "refcoco", "train", split_by="google")
    refs.write_bytes(pickle.dumps([{"ref_id": 0, "ann_id": 999, "image_id": 9, "split": "train",
                                    "sentences": [{"sent_id": 0, "sent": "x"}]}], protocol=2))
    with pytest.raises(DatasetFormatError, match="annotation 999"):
        read_refcoco(tmp_path, "refcoco", "train")
    refs.write_bytes(pickle.dumps([{"ref_id": 0}], protocol=2))
    with pytest.raises(DatasetFormatError, match=r"ref #0: missing key"):
        read_refcoco(tmp_path, "refcoco", "train")
    write_refcoco(tmp_path)
    (tmp_path / "train2014" / "COCO_train2014_000000000009.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="COCO_train2014_000000000009.jpg"):
        read_refcoco(tmp_path, "refcoco", "train")
