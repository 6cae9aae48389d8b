"""RefCOCO/+/g in the published layout, and the plain-data pickle reader its refs files need."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch
import pytest

from rvoslib.data import RVOSDataset, read_dataset
from rvoslib.data.records import DatasetFormatError
from rvoslib.data.refcoco import read_refcoco
from rvoslib.safe_pickle import UnsafePickleError, load_plain_pickle, loads_plain_pickle

from layouts import write_refcoco

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


# ----------------------------------------------------------------------------- RefCOCO


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


def test_refcoco_union_reads_the_three_datasets_with_distinct_ids(tmp_path):
    for dataset, split_by in (("refcoco", "unc"), ("refcoco+", "unc"), ("refcocog", "umd")):
        write_refcoco(tmp_path, dataset, split_by)
    records = read_dataset("refcoco-all", tmp_path, split="train")
    assert [r.video_id for r in records] == [f"{d}_COCO_train2014_000000000009" for d in ("refcoco", "refcoco+",
                                                                                          "refcocog")]
    assert sum(len(r.expressions) for r in records) == 3 * 3
    (tmp_path / "refcocog" / "refs(umd).p").unlink()
    with pytest.raises(FileNotFoundError, match=r"refcocog/refs\(umd\)\.p"):
        read_dataset("refcoco-all", tmp_path, split="train")


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


# ----------------------------------------------------------------------------- pretraining and joint training


def test_mix_records_hold_the_asked_share_of_items(tmp_path):
    from rvoslib.data.records import Expression, VideoRecord
    from rvoslib.train_data import mix_records

    def records(prefix, n, per):
        return [VideoRecord(f"{prefix}{i}", ["0"], expressions=[Expression(str(k), "x", [1]) for k in range(per)])
                for i in range(n)]

    main, images = records("v", 6, 2), records("img", 5, 1)  # 12 video items, 5 image items
    half = mix_records(main, images, 0.5, seed=0)
    assert sum(len(r.expressions) for r in half) == 12  # cycles through the 5 images: 12 of 24 items
    quarter = mix_records(main, images, 0.25, seed=0)
    assert sum(len(r.expressions) for r in quarter) == 4 and len({r.video_id for r in quarter}) == 4
    assert [r.video_id for r in quarter] != [r.video_id for r in mix_records(main, images, 0.25, seed=1)]
    assert mix_records(main, images, 0.0, seed=0) == []


def test_init_from_refuses_a_checkpoint_of_another_model(tmp_path):
    from rvoslib.checkpoint import save_checkpoint
    from rvoslib.config import get_preset
    from rvoslib.model import build_model
    from rvoslib.train_loop import init_weights

    cfg = get_preset("tiny")
    cfg.model.num_frames = 1
    model = build_model(cfg.model)
    with torch.no_grad():
        next(p for p in model.parameters() if p.requires_grad).add_(1.0)
    save_checkpoint(tmp_path / "pre.pt", model, cfg, 3)
    video = get_preset("tiny")  # T=4: a different num_frames is allowed
    video.train.init_from = str(tmp_path / "pre.pt")
    fresh = build_model(video.model)
    init_weights(fresh, video)
    assert all(torch.equal(a, b) for a, b in zip(model.trainable_state_dict().values(),
                                                 fresh.trainable_state_dict().values()))
    video.model.dim = 32
    with pytest.raises(ValueError, match="model.dim"):
        init_weights(build_model(video.model), video)
    video.train.init_from = str(tmp_path / "none.pt")
    with pytest.raises(FileNotFoundError, match="train.init_from"):
        init_weights(fresh, video)
