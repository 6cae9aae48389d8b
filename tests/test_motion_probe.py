"""benchmarks.motion_probe: the windows it trains on and how it scores a choice."""

import numpy as np
import pytest
import torch

from benchmarks.motion_probe import VARIANTS, build_probe, probe_windows, right_object
from rvoslib.data.synthetic import MOTIONS, generate_videos


@pytest.fixture(scope="module")
def windows():
    videos = generate_videos(6, seed=5, split="valid", hard=True)
    return videos, probe_windows(videos, np.random.default_rng(0))


def test_windows_hold_motion_unique_referents_and_their_patch_cover(windows):
    videos, (frames, covers, motions, referents) = windows
    assert frames.shape[1:] == (4, 3, 64, 64) and covers.shape[1:] == (4, 6, 8, 8)
    row = 0
    for video in videos:
        counts = {m: sum(o.motion == m for o in video.objects) for m in MOTIONS}
        for index, obj in enumerate(video.objects):
            if counts[obj.motion] != 1:
                continue
            assert MOTIONS[motions[row]] == obj.motion and referents[row] == index
            assert covers[row, :, index].sum() > 0  # the referent is on screen in its window
            assert np.all(covers[row, :, len(video.objects):] == 0)  # no cover for absent objects
            row += 1
    assert row == len(frames) > 0


def test_right_object_follows_where_the_probability_is(windows):
    _, (_, covers, _, referents) = windows
    on_referent = covers[np.arange(len(covers)), :, referents]  # (N, T, 8, 8)
    logits = torch.from_numpy(np.where(on_referent > 0, 8.0, -8.0).astype(np.float32))
    assert right_object(logits, covers, referents).all()
    other = (referents + 1) % (covers.sum(axis=(1, 3, 4)) > 0).sum(axis=1)
    wrong = torch.from_numpy(np.where(covers[np.arange(len(covers)), :, other] > 0, 8.0, -8.0).astype(np.float32))
    assert not right_object(wrong, covers, referents).any()


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("readout", ["dot", "fused", "fusion"])
def test_every_variant_gives_one_logit_per_patch(windows, variant, readout):
    _, (frames, _, motions, _) = windows
    probe = build_probe(variant, readout=readout)
    logits = probe(torch.from_numpy(frames[:2]), torch.from_numpy(motions[:2]))
    assert logits.shape == (2, 4, 8, 8)
    trainable = {n.split(".")[0] for n, p in probe.named_parameters() if p.requires_grad}
    assert "embed" not in trainable and "encoder" in trainable  # the patch embedding stays frozen


def test_order_needed_flags_follow_the_windows_and_the_axes(windows):
    from benchmarks.motion_probe import order_needed

    videos, (frames, _, motions, referents) = windows
    flags, chances = order_needed(videos)
    assert flags.shape == chances.shape == (len(frames),)
    axis = {"static": 0, "left": 1, "right": 1, "up": 2, "down": 2, "bouncing": 2}
    k = 0
    for video in videos:
        unique = [o for o in video.objects if sum(p.motion == o.motion for p in video.objects) == 1]
        for obj in unique:
            same = [o for o in video.objects if axis[o.motion] == axis[obj.motion]]
            assert flags[k] == (len(same) > 1) and chances[k] == 1 / len(same)
            k += 1
    assert k == len(frames) and flags.any() and not flags.all()


def test_the_fusion_readout_builds_stage_2_with_the_asked_sentence_mode():
    variant = next(iter(VARIANTS))
    assert build_probe(variant, readout="fusion", fusion_sentence="add").fusion.gate is None
    assert build_probe(variant, readout="fusion").fusion.gate is not None  # the paper's gate by default


def test_the_decoder_option_adds_a_path_that_changes_the_logits():
    variant = next(iter(VARIANTS))
    torch.manual_seed(0)
    frames, motion = torch.rand(2, 4, 3, 64, 64), torch.tensor([0, 3])
    probe = build_probe(variant, readout="fusion", fusion_sentence="add", decoder=True).eval()
    with torch.no_grad():
        logits = probe(frames, motion)
        assert logits.shape == (2, 4, 8, 8)
        for p in probe.decoder.parameters():
            p.zero_()  # a zeroed decoder passes the shallow tokens through unchanged
        without = probe(frames, motion)
    assert (logits - without).abs().max() > 1e-4
