"""benchmarks.model_probe: the full model trained on the motion probe's windows."""

import numpy as np
import pytest
import torch

from benchmarks.model_probe import (build, flip_some, fresh_windows, motion_sentences, question_context, questions,
                                    right_object_pixels, sentence_windows, train_and_score)
from benchmarks.motion_probe import order_needed, probe_windows
from rvoslib.data.synthetic import MOTIONS, generate_videos


@pytest.fixture(scope="module")
def videos():
    return generate_videos(4, seed=7, split="valid", hard=True)


@pytest.fixture(scope="module")
def windows(videos):
    return probe_windows(videos, np.random.default_rng(0), labels=True)


def test_pixel_labels_agree_with_the_patch_cover(windows):
    _, covers, _, referents, labels = windows
    assert labels.shape == (len(covers), 4, 64, 64) and labels.dtype == np.int8
    for k in range(covers.shape[2]):
        pooled = (labels == k).reshape(len(labels), 4, 8, 8, 8, 8).mean(axis=(3, 5))  # (N, T, 8, 8)
        np.testing.assert_allclose(pooled, covers[:, :, k])
    assert (labels == referents[:, None, None, None]).any(axis=(1, 2, 3)).all()


def test_the_same_windows_come_with_or_without_labels(videos, windows):
    plain = probe_windows(videos, np.random.default_rng(0))
    for a, b in zip(plain, windows):
        np.testing.assert_array_equal(a, b)


def test_right_object_follows_the_pixel_probability(windows):
    _, _, _, referents, labels = windows
    on = labels == referents[:, None, None, None]
    assert right_object_pixels(torch.from_numpy(np.where(on, 6.0, -6.0)), labels, referents).all()
    other = (referents + 1) % (labels.max(axis=(1, 2, 3)) + 1)
    off = labels == other[:, None, None, None]
    assert not right_object_pixels(torch.from_numpy(np.where(off, 6.0, -6.0)), labels, referents).any()


def test_questions_name_each_motion_and_the_oracle_reads_them_back():
    from benchmarks.motion_oracle import CLASSES, motion_class

    assert [CLASSES[motion_class(q)] for q in questions()] == list(MOTIONS)


@pytest.mark.parametrize("optim", ["probe", "trainer"])
def test_training_moves_the_new_modules_and_the_oracle_code_and_never_clip(videos, windows, optim):
    order, _ = order_needed(videos)
    with question_context("oracle"):
        cfg, model = build(["model.spatiotemporal.layers=1"])
        assert hasattr(model.text, "oracle") and model.fusion.gate is None  # the defaults: oracle code, add
        frozen = {n: p.detach().clone() for n, p in model.named_parameters() if n.startswith("clip.")}
        before = {n: p.detach().clone() for n, p in model.trainable_named_parameters()}
        row = train_and_score(cfg, model, windows, windows, order, steps=2, batch=2, lr=1e-3, seed=0,
                              optim=optim, log_every=0)
    assert row["n"] == len(windows[0]) and len(row["loss_curve"]) == 1
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)
    moved = [n for n, p in model.trainable_named_parameters() if not torch.equal(p, before[n])]
    assert any(n.startswith("reasoner.") for n in moved) and any(n.startswith("text.oracle") for n in moved)


def test_sentence_windows_give_every_motion_sentence_its_referent(videos):
    frames, _, _, referents, labels, sentences = sentence_windows(videos, np.random.default_rng(0))
    expected = [(e["text"], [o.obj_id for o in v.objects].index(e["obj_id"]))
                for v in videos for e in v.expressions if e["kind"] == "motion"]
    assert list(zip(sentences, referents.tolist())) == expected and frames.shape[1:] == (4, 3, 64, 64)
    assert (labels == referents[:, None, None, None]).any(axis=(1, 2, 3)).all()


def test_flip_mirrors_the_chosen_rows_and_swaps_their_directions():
    frames, masks = torch.rand(2, 4, 3, 8, 8), (torch.rand(2, 4, 8, 8) > 0.5).float()
    out_frames, out_masks, text = flip_some(frames, masks, ["the dot moving left", "the dot moving left"],
                                            torch.tensor([True, False]))
    assert torch.equal(out_frames[0], frames[0].flip(-1)) and torch.equal(out_frames[1], frames[1])
    assert torch.equal(out_masks[0], masks[0].flip(-1)) and torch.equal(out_masks[1], masks[1])
    assert text == ["the dot moving right", "the dot moving left"]


def test_fresh_windows_draw_a_new_window_of_the_sentences_video_at_every_call(videos):
    draw, rng = fresh_windows(videos), np.random.default_rng(0)
    v, referent, _ = motion_sentences(videos)[0]
    video = videos[v]
    pixels = video.frames.reshape(len(video.frames), -1)  # (F, 64 * 64 * 3) uint8
    windows = set()
    for _ in range(8):
        frames, mask = draw(0, rng)
        flat = np.round(frames.transpose(0, 2, 3, 1) * 255).astype(np.uint8).reshape(len(frames), -1)
        picks = [int(np.flatnonzero((pixels == row).all(axis=1))[0]) for row in flat]  # which frames were drawn
        assert all(1 <= b - a <= 3 for a, b in zip(picks, picks[1:]))
        assert np.array_equal(mask > 0, video.id_maps[picks] == video.objects[referent].obj_id)
        windows.add(tuple(picks))
    assert len(windows) > 1
