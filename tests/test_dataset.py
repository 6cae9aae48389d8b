"""Frame sampling, transforms, RVOSDataset and collate."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from rvoslib.data import RVOSDataset, collate_clips, eval_windows, read_ref_youtube_vos, sample_train_indices
from rvoslib.data.transforms import (
    clip_mean_std,
    color_jitter,
    denormalize,
    hflip,
    normalize,
    resize_frames,
    resize_masks,
    swap_left_right,
    transform_clip,
)

# ----------------------------------------------------------------------------- sampling


def test_train_sampling_under_seed():
    assert sample_train_indices(20, 5, 3, np.random.default_rng(0)) == [3, 6, 8, 10, 11]
    assert sample_train_indices(20, 5, 3, np.random.default_rng(1)) == [0, 2, 4, 7, 10]
    assert sample_train_indices(4, 6, 3, np.random.default_rng(0)) == [0, 1, 2, 2, 3, 3]  # short video
    assert sample_train_indices(6, 6, 3, np.random.default_rng(0)) == [0, 1, 2, 3, 4, 5]
    assert sample_train_indices(30, 4, 3, np.random.default_rng(0), anchor=29) == [22, 25, 27, 29]
    for seed in range(50):
        rng = np.random.default_rng(seed)
        indices = sample_train_indices(40, 6, 4, rng)
        gaps = np.diff(indices)
        assert len(indices) == 6 and 0 <= indices[0] and indices[-1] < 40 and gaps.min() >= 1 and gaps.max() <= 4
        assert 7 in sample_train_indices(10, 4, 5, rng, anchor=7)


def test_two_clips_keep_their_own_gaps_in_a_short_video():
    # 12 frames cannot hold 2 x 4 frames with gaps up to 3: sampled as one clip of 8, every gap was 1
    assert sample_train_indices(12, 8, 3, np.random.default_rng(0)) == list(range(4, 12))
    spans, follows = [], 0
    for seed in range(200):
        indices = sample_train_indices(12, 4, 3, np.random.default_rng(seed), clips=2)
        a, b = indices[:4], indices[4:]
        assert len(indices) == 8 and 0 <= min(indices) and max(indices) < 12
        for clip in (a, b):
            assert 1 <= np.diff(clip).min() and np.diff(clip).max() <= 3
            spans.append(clip[-1] - clip[0])
        assert b[0] > a[0]  # history flows forward: B starts after A's first frame
        follows += b[0] > a[-1]
    assert np.mean(spans) > 5.0  # a T-frame clip's mean span, 3 x 2 = 6, not the old 3
    assert 0 < follows < 200  # B follows A when both fit, else it overlaps A


def test_two_clips_follow_each_other_in_a_long_video_and_fall_back_when_short():
    for seed in range(50):
        indices = sample_train_indices(60, 4, 3, np.random.default_rng(seed), clips=2)
        assert np.diff(indices).min() >= 1 and np.diff(indices).max() <= 3  # one run of 8, as inference windows
    short = sample_train_indices(4, 4, 3, np.random.default_rng(0), clips=2)
    assert short == sample_train_indices(4, 8, 3, np.random.default_rng(0))  # as one clip of 2T frames
    assert len(sample_train_indices(30, 4, 3, np.random.default_rng(0), anchor=29, clips=2)) == 8
    with pytest.raises(ValueError, match="clips"):
        sample_train_indices(12, 4, 3, np.random.default_rng(0), clips=3)


def test_eval_windows_pad_last():
    assert eval_windows(10, 4) == [
        ([0, 1, 2, 3], [True] * 4),
        ([4, 5, 6, 7], [True] * 4),
        ([8, 9, 9, 9], [True, True, False, False]),
    ]
    assert eval_windows(3, 3) == [([0, 1, 2], [True] * 3)]
    with pytest.raises(ValueError, match="clip_len"):
        eval_windows(3, 0)


# ----------------------------------------------------------------------------- transforms


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("the dog on the left", "the dog on the right"),
        ("Left cat, right dog", "Right cat, left dog"),
        ("the LEFT one, leftmost", "the RIGHT one, rightmost"),
        ("leftover bright lefty", "leftover bright lefty"),
        ("left-hand side", "right-hand side"),
    ],
)
def test_swap_left_right_whole_words(sentence, expected):
    assert swap_left_right(sentence) == expected


def test_clip_constants_and_normalisation():
    mean, std = clip_mean_std()
    assert mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))
    assert std == pytest.approx((0.26862954, 0.26130258, 0.27577711))
    frames = torch.full((2, 3, 4, 4), 0.5)
    out = normalize(frames)
    assert out[0, 0, 0, 0].item() == pytest.approx((0.5 - 0.48145466) / 0.26862954)
    assert out[1, 2, 3, 3].item() == pytest.approx((0.5 - 0.40821073) / 0.27577711)
    torch.testing.assert_close(denormalize(out), frames)


def test_resize_keeps_frames_and_masks_aligned():
    frames = np.zeros((1, 40, 60, 3), np.uint8)
    masks = np.zeros((1, 40, 60), np.uint8)
    frames[0, 10:30, 20:50] = 255
    masks[0, 10:30, 20:50] = 1
    video, labels, _, _ = transform_clip(frames, masks, "x", size=20)
    assert video.shape == (1, 3, 20, 20) and labels.shape == (1, 20, 20) and labels.dtype == torch.uint8
    bright = denormalize(video)[0].mean(dim=0) > 0.5  # (20, 20)
    assert torch.equal(bright, labels[0] == 1)
    rows, cols = torch.nonzero(labels[0], as_tuple=True)
    assert (rows.min().item(), rows.max().item(), cols.min().item(), cols.max().item()) == (5, 14, 7, 16)


def test_resize_masks_keeps_ids_and_void():
    masks = np.zeros((2, 8, 8), np.uint8)
    masks[:, :4, :4], masks[:, 4:, 4:] = 1, 255
    out = resize_masks(masks, 4)
    assert set(out.unique().tolist()) == {0, 1, 255}
    assert out[0, :2, :2].eq(1).all() and out[1, 2:, 2:].eq(255).all()


def test_flip_swaps_words_and_flips_masks_consistently():
    frames = np.zeros((2, 10, 10, 3), np.uint8)
    masks = np.zeros((2, 10, 10), np.uint8)
    frames[:, 2:5, 0:3] = 200
    masks[:, 2:5, 0:3] = 1
    rng = np.random.default_rng(0)
    video, labels, sentence, flipped = transform_clip(frames, masks, "the box on the left", 10, rng, flip_prob=1.0)
    assert flipped and sentence == "the box on the right"
    assert labels[:, 2:5, 7:10].eq(1).all() and labels.sum().item() == 2 * 9  # now on the right
    assert torch.equal(denormalize(video).mean(dim=1) > 0.5, labels == 1)
    assert torch.equal(hflip(hflip(labels)), labels)


def test_color_jitter_is_small_and_per_clip():
    frames = torch.rand(3, 3, 8, 8)
    out = color_jitter(frames, np.random.default_rng(0), 0.1, 0.1, 0.1)
    assert out.shape == frames.shape and 0 <= out.min() and out.max() <= 1
    assert 0 < (out - frames).abs().mean() < 0.1
    same = frames[:1].repeat(3, 1, 1, 1)  # identical frames stay identical: one factor per clip
    jittered = color_jitter(same, np.random.default_rng(1))
    torch.testing.assert_close(jittered[0], jittered[2])
    torch.testing.assert_close(color_jitter(frames, np.random.default_rng(0), 0, 0, 0), frames)
    assert resize_frames(frames, 8) is frames


# ----------------------------------------------------------------------------- dataset


@pytest.fixture(scope="module")
def shapes():
    """The first 4 videos of the shipped synthetic train split (12 frames of 64 x 64)."""
    return read_ref_youtube_vos(Path(__file__).resolve().parents[1] / "data_samples/synthetic/train")[:4]


def test_train_items(shapes):
    dataset = RVOSDataset(shapes, clip_len=4, size=32, train=True, max_skip=3, seed=0)
    assert len(dataset) == sum(len(r.expressions) for r in shapes)
    item = dataset[0]
    assert item["frames"].shape == (4, 3, 32, 32) and item["frames"].dtype == torch.float32
    assert item["masks"].shape == (4, 32, 32) and set(item["masks"].unique().tolist()) <= {0.0, 1.0}
    assert item["valid"].all() and item["annotated"].all() and not item["void"].any()
    meta = item["meta"]
    assert meta["orig_size"] == (64, 64) and len(meta["frame_indices"]) == 4 and meta["video_id"] == shapes[0].video_id
    assert meta["kind"] in ("appearance", "motion", "relation")
    gaps = np.diff(meta["frame_indices"])
    assert gaps.min() >= 1 and gaps.max() <= 3
    again = RVOSDataset(shapes, clip_len=4, size=32, seed=0)[0]
    torch.testing.assert_close(again["frames"], item["frames"])
    dataset.set_epoch(1)
    assert any(dataset[i]["meta"]["frame_indices"] != RVOSDataset(shapes, 4, 32, seed=0)[i]["meta"]["frame_indices"]
               for i in range(len(dataset)))


def test_fixed_windows_keep_each_items_frames_flip_and_jitter_across_epochs(shapes):
    fixed = RVOSDataset(shapes, clip_len=4, size=32, seed=0, flip_prob=0.5, fixed_windows=True)
    first = [fixed[i] for i in range(len(fixed))]
    fixed.set_epoch(3)
    for i, item in enumerate(first):
        again = fixed[i]
        assert again["meta"]["frame_indices"] == item["meta"]["frame_indices"]
        assert again["meta"]["flipped"] == item["meta"]["flipped"]
        torch.testing.assert_close(again["frames"], item["frames"])
    redrawn = RVOSDataset(shapes, clip_len=4, size=32, seed=0, flip_prob=0.5)
    indices = [x["meta"]["frame_indices"] for x in first]
    assert [redrawn[i]["meta"]["frame_indices"] for i in range(len(redrawn))] == indices  # epoch 0: the same
    redrawn.set_epoch(3)
    assert any(redrawn[i]["meta"]["frame_indices"] != x["meta"]["frame_indices"] for i, x in enumerate(first))


def test_masks_follow_the_object(shapes):
    dataset = RVOSDataset(shapes, clip_len=12, size=64, train=False)
    item = dataset[0]
    record, expression = shapes[0], shapes[0].expressions[0]
    expected = torch.from_numpy(record.load_masks(range(12), expression.obj_ids)).float()
    torch.testing.assert_close(item["masks"], expected)  # same size: masks unchanged


def test_flip_in_dataset_matches_unflipped(shapes):
    plain = RVOSDataset(shapes, clip_len=3, size=48, flip_prob=0.0, jitter=None, seed=5)
    flipped = RVOSDataset(shapes, clip_len=3, size=48, flip_prob=1.0, jitter=None, seed=5)
    for index in range(3):
        a, b = plain[index], flipped[index]
        assert b["meta"]["flipped"] and a["meta"]["frame_indices"] == b["meta"]["frame_indices"]
        torch.testing.assert_close(torch.flip(a["masks"], dims=(-1,)), b["masks"])
        torch.testing.assert_close(torch.flip(a["frames"], dims=(-1,)), b["frames"])
        assert b["sentence"] == swap_left_right(a["sentence"])


def test_eval_windows_and_collate(shapes):
    dataset = RVOSDataset(shapes[:2], clip_len=5, size=32, train=False)
    windows = len(eval_windows(12, 5))
    assert windows == 3 and len(dataset) == windows * sum(len(r.expressions) for r in shapes[:2])
    last = dataset[2]
    assert last["meta"]["window"] == 2 and last["meta"]["frame_indices"] == [10, 11, 11, 11, 11]
    assert last["valid"].tolist() == [True, True, False, False, False]
    assert last["annotated"].tolist() == [True, True, False, False, False]
    batch = next(iter(DataLoader(dataset, batch_size=3, collate_fn=collate_clips)))
    assert batch["frames"].shape == (3, 5, 3, 32, 32) and batch["masks"].shape == (3, 5, 32, 32)
    assert batch["valid"].shape == (3, 5) and batch["valid"].dtype == torch.bool
    assert batch["void"].dtype == torch.bool and len(batch["sentences"]) == 3 and len(batch["meta"]) == 3
    assert batch["meta"][2]["frame_names"] == ["00010", "00011", "00011", "00011", "00011"]


def test_void_is_separate(tiny_ytvos):
    root, id_maps = tiny_ytvos
    records = read_ref_youtube_vos(root)
    item = RVOSDataset(records, clip_len=3, size=8, train=False)[0]
    assert item["void"][2, 0, 0] and item["void"].sum() == 1 and item["masks"][2, 0, 0] == 0
    expected = resize_masks((id_maps["vid_a"] == 1).astype(np.uint8), 8).float()  # 6 x 8 -> 8 x 8
    torch.testing.assert_close(item["masks"], expected)
    assert item["meta"]["orig_size"] == (6, 8) and expected.sum() == 3 * 3 * 2  # rows 1-2 of 6 -> rows 1-3 of 8


def test_missing_masks(tiny_ytvos):
    root, _ = tiny_ytvos
    shutil.rmtree(root / "Annotations")
    records = read_ref_youtube_vos(root)
    with pytest.raises(ValueError, match="training needs masks, but video 'vid_a'"):
        RVOSDataset(records, train=True)
    item = RVOSDataset(records, clip_len=2, size=8, train=False)[1]  # inference still works
    assert not item["annotated"].any() and item["masks"].sum() == 0 and item["valid"].tolist() == [True, False]
