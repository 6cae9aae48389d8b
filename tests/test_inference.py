"""Online inference: windows, padding, history, upsampling, thresholds, inputs, outputs, CLI."""

from __future__ import annotations

import argparse
import errno
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rvoslib.checkpoint import save_checkpoint
from rvoslib.config import get_preset
from rvoslib.data import RVOSDataset, read_ref_youtube_vos
from rvoslib.inference import (
    SegmentationResult,
    add_segment_arguments,
    prepare_frames,
    run_segment,
    save_masks,
    segment_frames,
    segment_video,
    write_overlay,
    write_panels,
)
from rvoslib.io import read_mask, read_video
from rvoslib.model import build_model

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data_samples"


class StubModel(torch.nn.Module):
    """The inference interface of VLPRVOS, recording every call.

    Logits come from ``logits_fn(call, batch, t, size)``; the returned history of call c is
    a tensor filled with c, so the test can see which output each call received.
    """

    def __init__(self, size: int = 8, num_frames: int = 4, logits_fn=None):
        super().__init__()
        self.cfg = SimpleNamespace(backbone=SimpleNamespace(image_size=size), num_frames=num_frames,
                                   prompts=SimpleNamespace(use_temporal=True, max_frames=16))
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # gives the stub a device
        self.calls: list[dict] = []
        self.logits_fn = logits_fn or (lambda call, b, t, s: torch.zeros(b, t, s, s))

    def tokenize(self, sentences):
        return torch.arange(len(sentences))[:, None].repeat(1, 3)  # (K, 3): row k says "sentence k"

    def forward(self, frames, tokens, history=None):
        b, t = frames.shape[:2]
        call = len(self.calls)
        self.calls.append({"frames": frames.clone(), "tokens": tokens.clone(), "history": history,
                           "training": self.training})
        size = self.cfg.backbone.image_size
        return {"pred_masks": self.logits_fn(call, b, t, size), "history": torch.full((b, 1, 2), float(call))}


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return build_model(get_preset("tiny").model).eval()


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, tiny_model):
    """A full checkpoint of the tiny model (CLIP included, so a reload gives the same weights)."""
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    save_checkpoint(path, tiny_model, get_preset("tiny"), step=1, full=True)
    return path


def random_video(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------- windows and history


def test_windows_last_one_shorter_and_history_chain():
    stub = StubModel(logits_fn=lambda call, b, t, s: (100.0 * call + torch.arange(t).float()).view(1, t, 1, 1)
                     .expand(b, t, s, s).clone())
    frames = random_video(10, 12, 20)
    result = segment_frames(frames, "the thing", stub, window=4, return_logits=True, progress=False)
    assert len(stub.calls) == 3  # windows [0..3], [4..7], [8, 9]: the last runs shorter, not padded
    assert [c["frames"].shape for c in stub.calls] == [(1, 4, 3, 8, 8)] * 2 + [(1, 2, 3, 8, 8)]
    assert torch.equal(stub.calls[2]["frames"][0], prepare_frames(frames[8:10], 8))
    assert torch.equal(stub.calls[1]["frames"][0], prepare_frames(frames[4:8], 8))
    # the history given to window w is what window w - 1 returned
    assert stub.calls[0]["history"] is None
    assert [float(c["history"].unique()) for c in stub.calls[1:]] == [0.0, 1.0]
    # outputs: exactly T frames, each from its own window position
    assert result.masks.shape == (1, 10, 12, 20) and result.logits.shape == (1, 10, 12, 20)
    expected = [100.0 * (t // 4) + t % 4 for t in range(10)]
    np.testing.assert_allclose(result.logits[0], np.broadcast_to(np.array(expected)[:, None, None], (10, 12, 20)),
                               rtol=1e-5)
    assert result.frame_names == [f"{i:05d}" for i in range(10)] and result.window == 4
    assert not any(c["training"] for c in stub.calls)


def test_sentence_chunks_carry_their_own_history():
    stub = StubModel()
    segment_frames(random_video(6, 8, 8), ["a", "b", "c"], stub, window=3, batch_size=2, progress=False)
    # window 0: chunk [a, b] (call 0), chunk [c] (call 1); window 1: calls 2 and 3
    assert [c["tokens"][:, 0].tolist() for c in stub.calls] == [[0, 1], [2], [0, 1], [2]]
    assert stub.calls[2]["history"].shape == (2, 1, 2) and float(stub.calls[2]["history"].unique()) == 0.0
    assert stub.calls[3]["history"].shape == (1, 1, 2) and float(stub.calls[3]["history"].unique()) == 1.0


def test_default_window_is_model_clip_length_and_shorter_videos_run_as_they_are():
    stub = StubModel(num_frames=5)
    result = segment_frames(random_video(7, 6, 6), "x", stub, progress=False)
    assert [c["frames"].shape[1] for c in stub.calls] == [5, 2]
    stub.calls.clear()
    result = segment_frames(random_video(2, 6, 6), "x", stub, progress=False)
    assert len(stub.calls) == 1 and stub.calls[0]["frames"].shape[1] == 2
    assert result.masks.shape == (1, 2, 6, 6)


def test_keep_restricts_outputs_not_processing():
    stub = StubModel(logits_fn=lambda call, b, t, s: (10.0 * call + torch.arange(t).float()).view(1, t, 1, 1)
                     .expand(b, t, s, s).clone())
    result = segment_frames(random_video(7, 5, 5), "x", stub, window=3, keep=[6, 1], return_logits=True,
                            progress=False)
    assert len(stub.calls) == 3 and result.frame_indices == [1, 6] and result.frame_names == ["00001", "00006"]
    np.testing.assert_allclose(result.logits[0, :, 0, 0], [1.0, 20.0], rtol=1e-5)


def test_untrained_history_falls_back_to_initial_tokens_with_one_warning(caplog):
    # a model whose history pooling was never trained (a checkpoint trained with history_training="off")
    stub = StubModel()
    stub.history_trained = False
    with caplog.at_level("WARNING", logger="rvoslib.inference"):
        segment_frames(random_video(10, 8, 8), "x", stub, window=4, progress=False)
        segment_frames(random_video(7, 8, 8), ["a", "b"], stub, window=3, batch_size=1, progress=False)
    assert len(stub.calls) == 3 + 3 * 2
    assert all(c["history"] is None for c in stub.calls)  # every window: the learned initial tokens
    warnings = [r for r in caplog.records if "history" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING"  # one per model, not per window or call


def test_untrained_history_matches_independent_windows(tiny_model):
    frames, tokens = random_video(6, 16, 16, seed=4), tiny_model.tokenize(["the red circle"])
    tiny_model.history_trained = False
    try:
        result = segment_frames(frames, "the red circle", tiny_model, window=4, return_logits=True, progress=False)
    finally:
        tiny_model.history_trained = True
    with torch.inference_mode():
        clip = prepare_frames(frames[[4, 5]], 64)[None]
        alone = tiny_model(clip, tokens)["pred_masks"]  # the second (shorter) window with the initial tokens
    expected = F.interpolate(alone, size=(16, 16), mode="bilinear", align_corners=False).numpy()
    np.testing.assert_allclose(result.logits[:, 4:], expected, atol=1e-4)


# ----------------------------------------------------------------------------- matches manual calls


def test_matches_manual_window_calls_with_history(tiny_model):
    frames = random_video(6, 40, 56, seed=3)
    sentences = ["the red circle", "a small square"]
    result = segment_frames(frames, sentences, tiny_model, window=4, return_logits=True, progress=False)
    tokens = tiny_model.tokenize(sentences)
    history, manual, no_history = None, [], []
    with torch.inference_mode():
        for indices, n in (([0, 1, 2, 3], 4), ([4, 5], 2)):
            clip = prepare_frames(frames[indices], 64)[None].repeat(2, 1, 1, 1, 1)
            out = tiny_model(clip, tokens, history)
            history = out["history"]
            manual.append(F.interpolate(out["pred_masks"][:, :n], size=(40, 56), mode="bilinear", align_corners=False))
            no_history.append(F.interpolate(tiny_model(clip, tokens)["pred_masks"][:, :n], size=(40, 56),
                                            mode="bilinear", align_corners=False))
    expected = torch.cat(manual, dim=1).numpy()
    np.testing.assert_allclose(result.logits, expected, atol=1e-4)
    assert np.array_equal(result.masks, expected > 0)
    # the second window really depends on the carried history
    assert not np.allclose(torch.cat(no_history, dim=1).numpy()[:, 4:], expected[:, 4:], atol=1e-4)
    # chunking the sentences gives the same result as one batch
    chunked = segment_frames(frames, sentences, tiny_model, window=4, batch_size=1, return_logits=True, progress=False)
    np.testing.assert_allclose(chunked.logits, result.logits, atol=1e-4)


def test_prepare_frames_matches_evaluation_dataset():
    records = read_ref_youtube_vos(SAMPLES / "synthetic/valid")[:1]
    item = RVOSDataset(records, clip_len=4, size=48, train=False)[0]
    frames = records[0].load_frames(item["meta"]["frame_indices"])
    assert torch.equal(prepare_frames(frames, 48), item["frames"])


# ----------------------------------------------------------------------------- upsampling and threshold


def ramp_logits(call, b, t, s):
    """(b, t, s, s) logits rising from left to right, shifted per frame and per sentence."""
    x = torch.linspace(-3.0, 3.0, s).view(1, 1, 1, s)
    shift = torch.arange(t).float().view(1, t, 1, 1) * 0.5 - torch.arange(b).float().view(b, 1, 1, 1)
    return (x + shift).expand(b, t, s, s).clone()


@pytest.mark.parametrize("threshold", [0.5, 0.3, 0.8])
def test_threshold_applies_to_logits_upsampled_to_original_size(threshold):
    stub = StubModel(size=8, num_frames=3, logits_fn=ramp_logits)
    result = segment_frames(random_video(3, 13, 21), ["a", "b"], stub, threshold=threshold, return_logits=True,
                            progress=False)
    up = F.interpolate(ramp_logits(0, 2, 3, 8), size=(13, 21), mode="bilinear", align_corners=False)
    expected = torch.sigmoid(up.double()) > threshold
    assert result.masks.shape == (2, 3, 13, 21) and result.masks.dtype == bool
    assert np.array_equal(result.masks, expected.numpy())
    np.testing.assert_allclose(result.logits, up.numpy(), atol=1e-6)
    np.testing.assert_allclose(result.probabilities, torch.sigmoid(up).numpy(), atol=1e-6)
    assert result.masks.any() and not result.masks.all()  # the ramp crosses the threshold: both sides tested


# ----------------------------------------------------------------------------- inputs


def test_davis_clip_at_original_size(tiny_model):
    result = segment_video(SAMPLES / "davis/blackswan", "a black feathered swan", tiny_model, max_frames=3,
                           progress=False)
    assert result.masks.shape == (1, 3, 480, 854) and result.masks.dtype == bool
    assert result.frame_names == ["00000", "00001", "00002"] and result.sentences == ["a black feathered swan"]
    assert result.source.endswith("JPEGImages") and result.source_fps is None
    assert result.timing["frames_per_second"] > 0 and result.timing["total_s"] >= result.timing["inference_s"]


def test_mp4_and_array_inputs(tiny_model):
    result = segment_video(SAMPLES / "blackswan.mp4", ["a swan", "the lake"], tiny_model, stride=2, max_frames=2,
                           progress=False)
    assert result.masks.shape == (2, 2, 480, 854) and result.frame_indices == [0, 2]
    assert result.source_fps == pytest.approx(12.0)
    frames = random_video(5, 30, 44)
    from_array = segment_video(frames, ["one", "two", "three"], tiny_model, window=2, progress=False)
    assert from_array.masks.shape == (3, 5, 30, 44) and from_array.source is None
    gray = segment_video(frames[..., 0], "one", tiny_model, window=2, progress=False)  # (T, H, W) grayscale
    assert gray.masks.shape == (1, 5, 30, 44)


def test_checkpoint_path_as_model(tiny_model, tiny_checkpoint):
    frames = random_video(3, 16, 24)
    direct = segment_frames(frames, "x", tiny_model, return_logits=True, progress=False)
    loaded = segment_frames(frames, "x", str(tiny_checkpoint), device="cpu", return_logits=True, progress=False)
    np.testing.assert_allclose(loaded.logits, direct.logits, atol=1e-5)


def test_clear_errors(tmp_path, tiny_model):
    frames = random_video(2, 8, 8)
    with pytest.raises(FileNotFoundError, match="video path does not exist"):
        segment_video(tmp_path / "missing.mp4", "x", tiny_model)
    with pytest.raises(ValueError, match="sentence 1 is empty"):
        segment_video(frames, ["a dog", "  "], tiny_model)
    with pytest.raises(ValueError, match="no sentence"):
        segment_video(frames, [], tiny_model)
    with pytest.raises(ValueError, match="window must be an integer >= 1"):
        segment_video(frames, "x", tiny_model, window=0)
    with pytest.raises(ValueError, match="prompts.max_frames"):
        segment_video(frames, "x", tiny_model, window=1000)
    with pytest.raises(TypeError, match="VLPRVOS .* or the path of an rvoslib checkpoint"):
        segment_video(frames, "x", 42)
    with pytest.raises(TypeError, match="VLPRVOS"):
        segment_video(frames, "x", torch.nn.Linear(2, 2))
    with pytest.raises(FileNotFoundError, match="checkpoint .*missing.pt.*rvoslib train"):
        segment_video(frames, "x", tmp_path / "missing.pt")
    with pytest.raises(TypeError, match="uint8"):
        segment_video(frames.astype(np.float32), "x", tiny_model)
    with pytest.raises(ValueError, match="threshold"):
        segment_video(frames, "x", tiny_model, threshold=1.0)


# ----------------------------------------------------------------------------- outputs


def stub_result(frames: np.ndarray) -> SegmentationResult:
    stub = StubModel(size=8, num_frames=2, logits_fn=ramp_logits)
    return segment_frames(frames, ["left", "right"], stub, progress=False)


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_write_overlay(tmp_path, suffix):
    frames = np.full((3, 24, 32, 3), 60, dtype=np.uint8)
    result = stub_result(frames)
    path = write_overlay(result, frames, tmp_path / f"overlay{suffix}", fps=5)
    written, _ = read_video(path)
    assert written.shape == frames.shape
    inside = result.masks[0, 0] & ~result.masks[1, 0]
    assert np.abs(written[0][inside].astype(int) - 60).max() > 20  # coloured where sentence 0's mask is
    with pytest.raises(ValueError, match="pass the frames"):
        write_overlay(result, None, tmp_path / "x.gif")


def test_save_masks(tmp_path):
    frames = np.zeros((2, 10, 14, 3), dtype=np.uint8)
    result = stub_result(frames)
    out = save_masks(result, tmp_path / "masks")
    assert json.loads((out / "sentences.json").read_text()) == {"0": "left", "1": "right"}
    for k in range(2):
        for t, name in enumerate(result.frame_names):
            mask = read_mask(out / str(k) / f"{name}.png")
            assert np.array_equal(mask, result.masks[k, t].astype(np.uint8))


# ----------------------------------------------------------------------------- command line


def segment_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rvoslib segment")
    add_segment_arguments(parser)
    return parser


def test_cli_segment(tmp_path, tiny_checkpoint):
    args = segment_parser().parse_args([
        str(SAMPLES / "davis/blackswan"), "a black feathered swan", "--checkpoint", str(tiny_checkpoint),
        "--out", str(tmp_path / "swan.gif"), "--masks", str(tmp_path / "masks"), "--max-frames", "3",
        "--device", "cpu", "--no-progress",
    ])
    assert args.func is run_segment
    assert run_segment(args) == 0
    written, _ = read_video(tmp_path / "swan.gif")
    assert written.shape == (3, 480, 854, 3)
    assert sorted(p.name for p in (tmp_path / "masks/0").iterdir()) == ["00000.png", "00001.png", "00002.png"]


def test_cli_segment_needs_a_checkpoint(tmp_path):
    args = segment_parser().parse_args([str(SAMPLES / "blackswan.mp4"), "a swan"])
    with pytest.raises(ValueError, match="needs a trained checkpoint.*rvoslib train"):
        run_segment(args)
    args = segment_parser().parse_args([str(SAMPLES / "blackswan.mp4"), "a swan", "--checkpoint",
                                        str(tmp_path / "nope.pt")])
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        run_segment(args)


# ----------------------------------------------------------------------------- panels (--panels)


@pytest.mark.parametrize("suffix", [".gif", ".mp4", ""])  # "": a folder of PNGs
def test_write_panels(tmp_path, suffix):
    from rvoslib.panels import GAP

    frames = np.full((3, 24, 32, 3), 60, dtype=np.uint8)
    result = stub_result(frames)
    path = write_panels(result, frames, tmp_path / f"panels{suffix}", fps=5)
    written, names = read_video(path)
    scale = 11  # the smallest whole factor that makes the 24 px side >= 256
    assert written.shape[0] == 3 and written.shape[2] == 2 * 32 * scale + GAP
    assert written.shape[1] > 24 * scale  # plus the sentences above and the frame counter below
    if not suffix:
        assert names == result.frame_names


def test_png_folder_output_replaces_only_an_earlier_output(tmp_path, monkeypatch):
    from rvoslib import writers

    frames = np.full((2, 10, 14, 3), 60, dtype=np.uint8)
    result = stub_result(frames)
    folder = tmp_path / "overlay"
    write_overlay(result, frames, folder)
    assert sorted(p.name for p in folder.iterdir()) == ["00000.png", "00001.png"]
    (folder / "stale.png").write_bytes(b"")
    write_panels(result, frames, folder)  # replaces the earlier output as a whole
    assert sorted(p.name for p in folder.iterdir()) == ["00000.png", "00001.png"]
    real_append = writers.PngFolderWriter._append

    def fail_on_second(self, frame, name):
        if name == "00001":
            raise OSError(errno.ENOSPC, "No space left on device")
        real_append(self, frame, name)

    monkeypatch.setattr(writers.PngFolderWriter, "_append", fail_on_second)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(OSError, match="overlay.*No space left"):
        write_overlay(result, frames, folder)  # a failed write leaves the earlier output as it was
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["overlay"]  # no temporary folder left behind
    monkeypatch.undo()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="notes.txt"):
        write_overlay(result, frames, folder)
    assert (folder / "notes.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="single image.*folder"):
        write_panels(result, frames, tmp_path / "frame.png")


def test_cli_segment_panels_gif(tmp_path, tiny_checkpoint):
    from rvoslib.panels import GAP

    out = tmp_path / "demo.gif"
    args = segment_parser().parse_args([
        str(SAMPLES / "synthetic/valid/JPEGImages/valid_00000"), "the small triangle", "the red shape that moves up",
        "--checkpoint", str(tiny_checkpoint), "--panels", "--out", str(out), "--max-frames", "3",
        "--device", "cpu", "--no-progress",
    ])
    assert run_segment(args) == 0
    written, _ = read_video(out)
    assert written.shape[0] == 3 and written.shape[2] == 2 * 256 + GAP  # two 64 px frames enlarged 4 x
    assert 256 < written.shape[1] < 400


def test_cli_segment_panel_errors(tmp_path, tiny_checkpoint):
    video = SAMPLES / "synthetic/valid/JPEGImages/valid_00000"
    common = [str(video), "x", "--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--no-progress"]
    with pytest.raises(ValueError, match="--panel-size only applies to panels"):
        run_segment(segment_parser().parse_args(common + ["--panel-size", "300", "--out", str(tmp_path / "a.gif")]))
    with pytest.raises(ValueError, match="--panels draws the overlay: give --out"):
        run_segment(segment_parser().parse_args(common + ["--panels", "--masks", str(tmp_path / "m")]))
    with pytest.raises(ValueError, match="would destroy the input"):
        run_segment(segment_parser().parse_args(common + ["--panels", "--out", str(video.parent)]))
    with pytest.raises(SystemExit):
        segment_parser().parse_args(common + ["--panels", "--panel-size", "0"])
    assert not (tmp_path / "a.gif").exists()


def test_last_window_runs_shorter_not_padded(tiny_model):
    """The last frames' predictions come from a clip of the real frames only, never padded with copies."""
    frames, sentence = random_video(6, 20, 28, seed=7), "the red circle"
    result = segment_frames(frames, sentence, tiny_model, window=4, return_logits=True, progress=False)
    tokens = tiny_model.tokenize([sentence])
    with torch.inference_mode():
        history = tiny_model(prepare_frames(frames[:4], 64)[None], tokens)["history"]
        shorter = tiny_model(prepare_frames(frames[4:], 64)[None], tokens, history)["pred_masks"]  # (1, 2, S, S)
        padded = tiny_model(prepare_frames(frames[[4, 5, 5, 5]], 64)[None], tokens, history)["pred_masks"][:, :2]
    up = F.interpolate(shorter, size=(20, 28), mode="bilinear", align_corners=False).numpy()
    np.testing.assert_allclose(result.logits[:, 4:], up, atol=1e-4)
    # padding would have changed them: the model sees the whole clip at once
    padded_up = F.interpolate(padded, size=(20, 28), mode="bilinear", align_corners=False).numpy()
    assert not np.allclose(padded_up, up, atol=1e-4)
    # and the streamed path (segment_video) gives the same as the in-memory one
    streamed = segment_video(frames, sentence, tiny_model, window=4, return_logits=True, progress=False)
    np.testing.assert_allclose(streamed.logits, result.logits, atol=1e-5)


# ----------------------------------------------------------------------------- outputs never destroy inputs


def test_cli_segment_refuses_outputs_that_resolve_to_an_input(tmp_path, tiny_checkpoint):
    from rvoslib.io import write_image, write_video

    video = tmp_path / "clip.mp4"
    write_video(video, random_video(3, 16, 16), fps=5)
    frames = tmp_path / "frames"
    for t, frame in enumerate(random_video(3, 16, 16, seed=1)):
        write_image(frames / f"{t:05d}.png", frame)
    link = tmp_path / "link.mp4"
    link.symlink_to(video)
    checkpoint = tmp_path / "ckpt" / "best.pt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(tiny_checkpoint.read_bytes())
    before = {p: p.read_bytes() for p in [video, checkpoint, *frames.iterdir()]}
    cases = [
        (video, ["--out", str(video)]),  # the case: the overlay over its own input
        (video, ["--out", str(link)]),  # a symlink to the input
        (link, ["--out", str(video)]),  # the input through a symlink
        (video, ["--out", str(tmp_path / "." / "clip.mp4")]),
        (frames, ["--out", str(frames)]),  # a PNG-folder overlay replacing the frames folder
        (frames, ["--masks", str(frames)]),
        (frames, ["--out", str(frames / "overlay.mp4")]),  # inside the input folder
        (video, ["--masks", str(checkpoint.parent)]),  # a folder holding the checkpoint
        (video, ["--out", str(tmp_path)]),  # a folder holding the input
    ]
    for source, extra in cases:
        args = segment_parser().parse_args([str(source), "a thing", "--checkpoint", str(checkpoint),
                                            "--device", "cpu", "--no-progress", *extra])
        with pytest.raises(ValueError, match="would destroy the input"):
            run_segment(args)
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "clip.mp4", "frames", "link.mp4"]


def test_segment_to_files_refuses_an_output_over_its_inputs(tmp_path, tiny_model):
    from rvoslib.inference import segment_to_files
    from rvoslib.io import write_video

    video = tmp_path / "clip.gif"
    write_video(video, random_video(2, 8, 8), fps=5)
    before = video.read_bytes()
    with pytest.raises(ValueError, match="would destroy the input"):
        segment_to_files(video, "x", tiny_model, out=video, progress=False)
    with pytest.raises(ValueError, match="nothing to write"):
        segment_to_files(video, "x", tiny_model, progress=False)
    with pytest.raises(ValueError, match="same path"):
        segment_to_files(video, "x", tiny_model, out=tmp_path / "o", masks=tmp_path / "o", progress=False)
    with pytest.raises(ValueError, match="would destroy the input"):
        write_overlay(segment_video(video, "x", tiny_model, progress=False), None, video)
    assert video.read_bytes() == before


# ----------------------------------------------------------------------------- streaming


def frames_folder(folder: Path, num_frames: int, height: int = 96, width: int = 128) -> Path:
    from rvoslib.io import write_image

    for t in range(num_frames):
        write_image(folder / f"{t:05d}.png", random_video(1, height, width, seed=t)[0])
    return folder


def test_segment_to_files_writes_what_the_result_writers_write(tmp_path, tiny_model):
    from rvoslib.inference import segment_to_files

    video = frames_folder(tmp_path / "video", 7, 24, 40)
    summary = segment_to_files(video, ["the red circle", "a square"], tiny_model, out=tmp_path / "streamed",
                               masks=tmp_path / "streamed_masks", window=3, progress=False)
    result = segment_video(video, ["the red circle", "a square"], tiny_model, window=3, progress=False)
    write_overlay(result, None, tmp_path / "whole")
    save_masks(result, tmp_path / "whole_masks")
    assert summary.num_frames == 7 and summary.frame_size == (24, 40)
    assert summary.outputs == {"overlay": tmp_path / "streamed", "masks": tmp_path / "streamed_masks"}
    np.testing.assert_allclose(summary.coverage, result.coverage())
    assert read_video(tmp_path / "streamed")[0].tobytes() == read_video(tmp_path / "whole")[0].tobytes()
    for k in range(2):
        for name in result.frame_names:
            assert np.array_equal(read_mask(tmp_path / f"streamed_masks/{k}/{name}.png"),
                                  read_mask(tmp_path / f"whole_masks/{k}/{name}.png"))
    # panels: "frame t / T" counted across windows, the same pictures as write_panels
    segment_to_files(video, ["the red circle", "a square"], tiny_model, out=tmp_path / "panels_streamed",
                     panels=True, window=3, progress=False)
    write_panels(result, None, tmp_path / "panels_whole")
    assert read_video(tmp_path / "panels_streamed")[0].tobytes() == read_video(tmp_path / "panels_whole")[0].tobytes()


def test_stream_video_yields_windows_with_shorter_last(tiny_model):
    from rvoslib.inference import stream_video

    frames = random_video(10, 16, 20, seed=2)
    windows = list(stream_video(frames, "x", tiny_model, window=4, return_logits=True))
    assert [w.start for w in windows] == [0, 4, 8] and [len(w.names) for w in windows] == [4, 4, 2]
    assert all(np.array_equal(w.frames, frames[w.start:w.start + len(w.names)]) for w in windows)
    whole = segment_frames(frames, "x", tiny_model, window=4, return_logits=True, progress=False)
    np.testing.assert_allclose(np.concatenate([w.logits for w in windows], axis=1), whole.logits, atol=1e-5)


def peak_traced_bytes(run) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_streamed_segmentation_memory_does_not_grow_with_video_length(tmp_path):
    """Python-side peak memory (frames, masks, overlays: numpy reports to tracemalloc) for a
    video 8 times longer stays about the same; holding the frames or masks would multiply it."""
    from rvoslib.inference import segment_to_files

    stub = StubModel(size=8, num_frames=4, logits_fn=ramp_logits)
    short, long = frames_folder(tmp_path / "short", 8), frames_folder(tmp_path / "long", 64)

    def run(video, name):
        return lambda: segment_to_files(video, ["a", "b"], stub, out=tmp_path / f"{name}.mp4",
                                        masks=tmp_path / f"{name}_masks", progress=False)

    run(short, "warm")()  # first-call imports and caches
    peaks = {name: peak_traced_bytes(run(video, name)) for name, video in (("short", short), ("long", long))}
    frame_bytes = 96 * 128 * 3
    assert peaks["long"] < peaks["short"] + 8 * frame_bytes, peaks  # growth well under 8 of the 56 extra frames
    # the in-memory API does hold every mask: its peak grows with the length, as documented
    in_memory = {name: peak_traced_bytes(lambda v=video: segment_video(v, ["a", "b"], stub, progress=False))
                 for name, video in (("short", short), ("long", long))}
    assert in_memory["long"] - in_memory["short"] >= 2 * 56 * 96 * 128  # K=2 bool masks of 56 more frames


def test_save_masks_replaces_only_an_earlier_mask_output(tmp_path):
    frames = np.zeros((2, 10, 14, 3), dtype=np.uint8)
    result = stub_result(frames)
    out = save_masks(result, tmp_path / "masks")
    (out / "0" / "stale.png").write_bytes(b"")
    save_masks(result, out)  # an earlier mask output is replaced as a whole
    assert sorted(p.name for p in (out / "0").iterdir()) == ["00000.png", "00001.png"]
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="notes.txt"):
        save_masks(result, out)
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masks"]  # no temporary folder left
