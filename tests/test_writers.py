"""Writers fail loudly on a full disk, name the file, and leave the earlier file untouched.

A full disk is simulated for real: the writer runs in a subprocess whose file-size limit
(RLIMIT_FSIZE, with SIGXFSZ ignored) makes every write past a few kilobytes fail with EFBIG,
in Python as in the ffmpeg child it starts, exactly where ENOSPC would strike.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rvoslib.io import read_video, write_video
from rvoslib.writers import FFmpegWriter, GifWriter, check_iso_media, open_frame_writer

REPO = Path(__file__).resolve().parents[1]
LIMIT = 4096  # bytes: any file written past this fails, as on a full disk

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")


def noise(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)


def run_limited(code: str, cwd: Path) -> dict:
    """Run ``code`` in a fresh Python with the file-size limit; it prints one JSON line."""
    prelude = textwrap.dedent(f"""
        import json, resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, ({LIMIT}, {LIMIT}))
        try:
    """)
    epilogue = textwrap.dedent("""
        except Exception as error:
            print(json.dumps({"error": type(error).__name__, "errno": getattr(error, "errno", None),
                              "message": str(error)}))
        else:
            print(json.dumps({"error": None}))
    """)
    script = prelude + textwrap.indent(textwrap.dedent(code), "    ") + epilogue
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", ["earlier.mp4", "earlier.gif"])
def test_video_writer_on_full_disk_raises_and_keeps_the_earlier_file(tmp_path, name):
    target = tmp_path / name
    write_video(target, noise(3, 16, 16), fps=5)  # the earlier, good output (small, under the limit)
    before = snapshot(tmp_path)
    outcome = run_limited(f"""
        import numpy as np
        from rvoslib.io import write_video
        frames = np.random.default_rng(1).integers(0, 256, size=(12, 96, 96, 3), dtype=np.uint8)
        write_video({str(target)!r}, frames, fps=5)
    """, REPO)
    assert outcome["error"] == "OSError", outcome
    assert name in outcome["message"], outcome["message"]
    assert snapshot(tmp_path) == before  # earlier file byte-identical, no temporary file left
    assert read_video(target)[0].shape == (3, 16, 16, 3)


def test_png_folder_masks_json_and_images_on_full_disk(tmp_path):
    from rvoslib.inference import SegmentationResult, save_masks
    from rvoslib.io import write_image, write_mask, write_text

    small = np.zeros((1, 2, 8, 8), dtype=bool)
    save_masks(SegmentationResult(small, ["x"], ["a", "b"], [0, 1]), tmp_path / "masks")
    with open_frame_writer(tmp_path / "frames", fps=1) as writer:
        writer.append(np.zeros((8, 8, 3), np.uint8))
    write_text(tmp_path / "notes.json", json.dumps({"earlier": True}))
    write_image(tmp_path / "still.png", np.zeros((8, 8, 3), np.uint8))
    write_mask(tmp_path / "mask.png", np.zeros((8, 8), np.uint8))
    before = snapshot(tmp_path)
    cases = {
        "masks": """
            import numpy as np
            from rvoslib.inference import SegmentationResult, save_masks
            masks = np.random.default_rng(0).random((1, 2, 256, 256)) > 0.5
            save_masks(SegmentationResult(masks, ["x"], ["a", "b"], [0, 1]), {masks!r})""",
        "frames": """
            import numpy as np
            from rvoslib.writers import open_frame_writer
            with open_frame_writer({frames!r}, fps=1) as writer:
                writer.append(np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8))""",
        "notes.json": """
            from rvoslib.io import write_text
            write_text({json!r}, "x" * 100_000)""",
        "still.png": """
            import numpy as np
            from rvoslib.io import write_image
            write_image({still!r}, np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8))""",
        "mask.png": """
            import numpy as np
            from rvoslib.io import write_mask
            write_mask({mask!r}, np.random.default_rng(0).integers(0, 200, (256, 256), dtype=np.uint8))""",
    }
    paths = {"masks": str(tmp_path / "masks"), "frames": str(tmp_path / "frames"),
             "json": str(tmp_path / "notes.json"), "still": str(tmp_path / "still.png"),
             "mask": str(tmp_path / "mask.png")}
    for name, code in cases.items():
        outcome = run_limited(code.format(**paths), REPO)
        assert outcome["error"] == "OSError" and outcome["errno"] == errno.EFBIG, (name, outcome)
        assert name in outcome["message"], (name, outcome["message"])
        assert snapshot(tmp_path) == before, name  # nothing earlier changed, no temporary file left


def test_checkpoint_write_on_full_disk_names_the_file(tmp_path):
    target = tmp_path / "last.pt"
    target.write_bytes(b"earlier checkpoint")
    outcome = run_limited(f"""
        import torch
        from rvoslib.checkpoint import atomic_torch_save
        atomic_torch_save({{"w": torch.zeros(100_000)}}, {str(target)!r})
    """, REPO)
    assert outcome["error"] == "OSError" and "last.pt" in outcome["message"], outcome
    assert target.read_bytes() == b"earlier checkpoint" and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_segment_cli_on_full_disk_exits_2_and_keeps_the_earlier_overlay(tmp_path):
    import torch

    from rvoslib.checkpoint import save_checkpoint
    from rvoslib.config import get_preset
    from rvoslib.io import write_image
    from rvoslib.model import build_model

    torch.manual_seed(0)
    checkpoint = save_checkpoint(tmp_path / "best.pt", build_model(get_preset("tiny").model), get_preset("tiny"),
                                 full=True)
    video = tmp_path / "frames"
    for t, frame in enumerate(noise(6, 96, 128, seed=3)):
        write_image(video / f"{t:05d}.png", frame)
    out = tmp_path / "out"
    out.mkdir()
    write_video(out / "overlay.mp4", noise(2, 16, 16), fps=5)
    before = snapshot(out)
    script = textwrap.dedent(f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, ({LIMIT}, {LIMIT}))
        from rvoslib.cli import main
        sys.exit(main(["segment", {str(video)!r}, "a thing", "--checkpoint", {str(checkpoint)!r},
                       "--out", {str(out / "overlay.mp4")!r}, "--device", "cpu", "--no-progress"]))
    """)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2, done.stderr
    assert "overlay.mp4" in done.stderr and "wrote" not in done.stderr, done.stderr
    assert snapshot(out) == before


# ----------------------------------------------------------------------------- encoder checks


def test_ffmpeg_error_lines_fail_even_with_exit_status_0(tmp_path, monkeypatch):
    """ffmpeg prints "Error writing trailer: No space left on device" yet may exit 0: still a failure."""
    target = tmp_path / "clip.mp4"
    target.write_bytes(b"earlier")
    writer = FFmpegWriter(target, fps=5)
    writer.append(noise(1, 16, 16)[0])
    real_finish = FFmpegWriter._finish

    def finish_then_complain(self):
        self.stderr.write(b"[mp4 @ 0x1] Error writing trailer: No space left on device\n")
        real_finish(self)

    monkeypatch.setattr(FFmpegWriter, "_finish", finish_then_complain)
    with pytest.raises(OSError, match=r"clip\.mp4.*No space left on device"):
        writer.close()
    assert target.read_bytes() == b"earlier" and [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_truncated_mp4_is_refused(tmp_path):
    good = tmp_path / "good.mp4"
    write_video(good, noise(4, 32, 32), fps=5)
    check_iso_media(good, good)  # a whole file passes
    blob = good.read_bytes()
    for cut in (len(blob) - 10, len(blob) // 2, 40):
        part = tmp_path / "part.mp4"
        part.write_bytes(blob[:cut])
        with pytest.raises(OSError, match="incomplete"):
            check_iso_media(part, tmp_path / "target.mp4")


def test_exception_in_the_caller_keeps_the_earlier_file(tmp_path):
    target = tmp_path / "a.gif"
    write_video(target, noise(2, 8, 8), fps=5)
    before = target.read_bytes()
    with pytest.raises(RuntimeError, match="model crashed"):
        with open_frame_writer(target, fps=5) as writer:
            writer.append(noise(1, 8, 8)[0])
            raise RuntimeError("model crashed")
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["a.gif"]


def test_streaming_gif_holds_every_frame(tmp_path):
    frames = noise(7, 20, 30, seed=5)
    frames[:, :10] = 0  # a flat area that quantisation keeps exact
    with GifWriter(tmp_path / "a.gif", fps=4) as writer:
        for frame in frames:
            writer.append(frame)
    with Image.open(tmp_path / "a.gif") as image:
        assert image.n_frames == 7 and image.info["duration"] == 250 and image.info["loop"] == 0
        decoded = []
        for t in range(image.n_frames):
            image.seek(t)
            decoded.append(np.asarray(image.convert("RGB")))
    decoded = np.stack(decoded)
    assert decoded.shape == frames.shape
    assert np.array_equal(decoded[:, :10], frames[:, :10])
    # each frame is its own (quantised) picture, not a copy of the first
    assert np.abs(decoded.astype(int) - frames.astype(int)).mean() < 8
    assert not np.array_equal(decoded[0], decoded[1])


def test_frame_writer_checks_frames(tmp_path):
    with pytest.raises(ValueError, match="single image"):
        open_frame_writer(tmp_path / "x.png", fps=5)
    with pytest.raises(ValueError, match="fps must be > 0"):
        open_frame_writer(tmp_path / "x.gif", fps=0)
    with pytest.raises(ValueError, match="first frame was 8 x 8"):
        with open_frame_writer(tmp_path / "x.gif", fps=5) as writer:
            writer.append(noise(1, 8, 8)[0])
            writer.append(noise(1, 8, 9)[0])
    with pytest.raises(ValueError, match="no frames"):
        with open_frame_writer(tmp_path / "y.mp4", fps=5):
            pass
    assert list(tmp_path.iterdir()) == []
