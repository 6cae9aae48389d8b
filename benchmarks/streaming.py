"""Section 7, ``streaming``: peak memory of segmenting a short and a long video of the same frame size.

``rvoslib segment`` streams (``rvoslib.inference.segment_to_files``): it decodes one window of
frames, segments it, hands the masks to the overlay and mask writers, and keeps only the history
tokens for the next window. Its peak memory should therefore not depend on the video's length.
This section measures it on two generated mp4 videos of the same size (``--frames``, default
100 and 2000 frames of 320 x 240), each segmented in a fresh subprocess with the tiny preset
(random weights: memory does not depend on them) writing an mp4 overlay and the mask PNGs:

* ``rss``: peak resident memory of the process during the run above what it held before
  (``VmHWM - VmRSS``, the peak counter reset first, after a warm-up run on a 16-frame video;
  ``benchmarks/memory.py`` explains the method). Decoders, encoders and torch included.
* ``traced``: peak of the Python-side allocations (``tracemalloc``; numpy arrays report to it):
  frames, masks, overlays.

For contrast the same videos go through ``segment_video``, the in-memory API, which returns every
mask (K x T x H x W bytes) and so grows with the length, as its docstring says.

Run alone: ``python -m benchmarks.streaming [--frames 100,2000] [--size 320x240]``; in the
benchmark table via ``python -m benchmarks.run --sections streaming``.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Optional

if __package__ in (None, ""):  # run as a file: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.memory import _malloc_trim, _reset_peak_rss, _status_kib  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TAG = "STREAMING_RESULT "
SENTENCES = ["the bright square moving right", "the dark disc"]
WARMUP_FRAMES = 16  # a warm-up run first: imports, allocator pools, oneDNN primitives
MODES = ("stream", "result")  # segment_to_files (what rvoslib segment runs) | segment_video (returns masks)


def make_video(path: Path, num_frames: int, height: int, width: int, fps: float = 25.0) -> Path:
    """Write a synthetic mp4, one frame at a time (a square and a disc moving over a gradient)."""
    from rvoslib.writers import open_frame_writer

    ys, xs = np.mgrid[0:height, 0:width]
    background = np.stack([xs * 200 // max(width, 1), ys * 200 // max(height, 1),
                           np.full_like(xs, 90)], axis=-1).astype(np.uint8)  # (H, W, 3)
    side = max(4, min(height, width) // 5)
    with open_frame_writer(path, fps) as writer:
        for t in range(num_frames):
            frame = background.copy()
            x = (t * 3) % max(width - side, 1)
            frame[height // 4:height // 4 + side, x:x + side] = 240
            cy, cx = height * 2 // 3, width - 1 - (t * 2) % width
            frame[(ys - cy) ** 2 + (xs - cx) ** 2 < (side // 2) ** 2] = 20
            writer.append(frame)
    return path


def run_case(mode: str, video: Path, out: Path, model) -> int:
    """Segment ``video`` with ``model``; returns the number of frames segmented."""
    from rvoslib.inference import segment_to_files, segment_video

    if mode == "stream":
        summary = segment_to_files(video, SENTENCES, model, out=out / "overlay.mp4", masks=out / "masks",
                                   device="cpu", progress=False)
        return summary.num_frames
    return segment_video(video, SENTENCES, model, device="cpu", progress=False).num_frames


def worker(spec: dict) -> dict:
    """In a fresh process: warm up on a short video, then measure one run (see the module docstring)."""
    import torch

    from rvoslib.config import get_preset
    from rvoslib.model import build_model

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    model = build_model(get_preset("tiny").model).eval()
    with tempfile.TemporaryDirectory(dir=spec["work"]) as scratch:
        scratch = Path(scratch)
        warm = make_video(scratch / "warm.mp4", WARMUP_FRAMES, spec["height"], spec["width"])
        (scratch / "warm").mkdir()
        run_case(spec["mode"], warm, scratch / "warm", model)
        (scratch / "out").mkdir()
        gc.collect()
        _malloc_trim()
        if not _reset_peak_rss():
            return {"error": "cannot reset the peak RSS (/proc/self/clear_refs); needs Linux"}
        base = _status_kib("VmRSS")
        tracemalloc.start()
        start = time.perf_counter()
        frames = run_case(spec["mode"], Path(spec["video"]), scratch / "out", model)
        seconds = time.perf_counter() - start
        traced = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        peak = _status_kib("VmHWM")
    return {"frames": frames, "rss_mib": (peak - base) / 1024, "traced_mib": traced / 2**20,
            "baseline_rss_mib": base / 1024, "seconds": seconds}


def measure(mode: str, video: Path, height: int, width: int, threads: int, work: Path, timeout: float = 1800) -> dict:
    spec = json.dumps({"mode": mode, "video": str(video), "height": height, "width": width, "threads": threads,
                       "work": str(work)})
    proc = subprocess.run([sys.executable, "-m", "benchmarks.streaming", "--worker", spec], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(TAG):
            return json.loads(line[len(TAG):])
    return {"error": f"worker exited with {proc.returncode}: {proc.stderr.strip()[-600:]}"}


def section_streaming(conf: dict, device, threads: int, work: Optional[Path] = None) -> tuple[dict, list]:
    """Peak memory for each video length and mode; returns (results, table rows)."""
    height, width = conf["size"][1], conf["size"][0]
    lengths = list(conf["frames"])
    results = {"size": f"{width}x{height}", "frames": lengths, "sentences": len(SENTENCES),
               "window": "tiny preset (T=4)", "modes": {}}
    with tempfile.TemporaryDirectory(dir=work) as folder:
        folder = Path(folder)
        videos = {n: make_video(folder / f"video{n}.mp4", n, height, width) for n in lengths}
        for mode in conf.get("modes", MODES):
            results["modes"][mode] = {str(n): measure(mode, videos[n], height, width, threads, folder)
                                      for n in lengths}
    rows = []
    short, long = str(lengths[0]), str(lengths[-1])
    names = {"stream": "`rvoslib segment` (streamed: mp4 overlay + mask PNGs)",
             "result": "`segment_video` (returns every mask)"}
    for mode, per_length in results["modes"].items():
        a, b = per_length[short], per_length[long]
        if "error" in a or "error" in b:
            rows.append(("7", f"{names[mode]} peak memory", a.get("error") or b.get("error"), "", ""))
            continue
        extra_mib = (int(long) - int(short)) * height * width * 3 / 2**20  # the extra frames, decoded
        for key, label in (("rss_mib", "resident"), ("traced_mib", "Python/numpy")):
            ratio = b[key] / max(a[key], 1e-9)
            share = (b[key] - a[key]) / extra_mib  # growth per byte of the extra decoded frames
            per_length[f"{key}_ratio"], per_length[f"{key}_growth_share"] = ratio, share
            target, met = (f"about equal: growth < 5% of the {extra_mib:.0f} MiB of extra frames",
                           "yes" if share < 0.05 else "no") if mode == "stream" else ("grows with T (contrast)", "")
            rows.append(("7", f"{names[mode]}, {label} peak, {short} vs {long} frames of {width}x{height}",
                         f"{a[key]:.1f} vs {b[key]:.1f} MiB ({ratio:.2f}x; growth {100 * share:.1f}% of the "
                         f"extra frames)", target, met))
    return results, rows


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", default="100,2000", help="video lengths, comma separated (default 100,2000)")
    parser.add_argument("--size", default="320x240", help="frame size WxH (default 320x240)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {MODES}")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        print(TAG + json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0
    width, height = (int(v) for v in args.size.lower().split("x"))
    conf = {"frames": [int(v) for v in args.frames.split(",")], "size": [width, height],
            "modes": [m for m in args.modes.split(",") if m]}
    results, rows = section_streaming(conf, None, args.threads)
    print(json.dumps(results, indent=1))
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
