"""``rvoslib segment``: its options and the run; ``add_inference_options`` is shared with ``evaluate``.

The command streams (:func:`rvoslib.inference.segment_to_files`): each window of frames is
segmented and handed to the overlay / panel / mask writers before the next one is decoded.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Optional, Union

import torch

from rvoslib.inference import (TRAIN_HINT, check_output_path, check_sentences, resolve_video_path,
                               segment_to_files)
from rvoslib.panels import DEFAULT_PANEL_SIZE

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

SEGMENT_HELP = """\
Segment the object each sentence refers to in every frame of a video, and write an
overlay (mp4, GIF or a folder of PNGs) and/or the masks as PNGs. With --panels the
overlay has one labelled panel per sentence, side by side. The video is a frames folder, a
DAVIS sequence folder (with JPEGImages/) or a video file. Needs a trained checkpoint.
The video is read, segmented and written window by window, so a long video needs no more
memory than a short one.

examples:
  rvoslib segment data_samples/davis/blackswan "a black feathered swan" --checkpoint runs/x/best.pt --out swan.mp4
  rvoslib segment clip.mp4 "the dog on the left" "the person" --checkpoint runs/x/best.pt --masks masks/
  rvoslib segment clip.mp4 "the dog on the left" "the person" --checkpoint runs/x/best.pt --panels --out dogs.gif
"""


def parse_dtype(name: Optional[str], device: torch.device) -> Optional[torch.dtype]:
    """"auto" (bfloat16 on CUDA when supported, else None), "float32", "bfloat16", "float16" -> dtype."""
    if name in (None, "float32"):
        return None
    if name == "auto":
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if cuda_bf16 else None
    choices = {"bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in choices:
        raise ValueError(f"dtype must be auto, float32, bfloat16 or float16, got {name!r}")
    return choices[name]


def add_inference_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``segment`` and ``evaluate``: model, device, precision, windowing."""
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="trained rvoslib checkpoint (runs/<name>/best.pt)")
    parser.add_argument("--pretrained", default=None,
                        help="CLIP weights for a trainable-only checkpoint (open_clip tag or local file)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"),
                        help="autocast precision (default auto: bfloat16 on CUDA, float32 on CPU)")
    parser.add_argument("--window", type=int, default=None,
                        help="frames per forward pass (default: the model's clip length T); lower it to save memory")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="sentences per forward pass (default: all of a video's sentences at once)")
    parser.add_argument("--threshold", type=float, default=0.5, help="mask probability threshold (default: 0.5)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")


def add_segment_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of ``rvoslib segment`` on ``parser`` (sets ``func=run_segment``).

    Also gives the parser the command's description (with examples) unless it has one.
    """
    if not parser.description:
        parser.description = SEGMENT_HELP
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("video", help="frames folder, DAVIS sequence folder or video file")
    parser.add_argument("sentences", nargs="+", metavar="SENTENCE", help="referring expression(s), quoted")
    add_inference_options(parser)
    parser.add_argument("--out", type=Path, default=None,
                        help="overlay to write: .mp4, .gif, or a path without extension for a folder of one PNG "
                             "per frame (default: <video name>_segmented.mp4 unless --masks is given); written as "
                             "the video is segmented, it replaces an earlier file only once complete; a path that "
                             "is, holds or lies inside an input is refused")
    parser.add_argument("--panels", action="store_true",
                        help="write one panel per sentence side by side instead of one frame with every mask: "
                             "each panel shows that sentence's mask in its own bright colour, outlined, with the "
                             "sentence written above it; small frames are enlarged (see --panel-size)")
    parser.add_argument("--panel-size", type=_pixels, default=None, metavar="PIXELS",
                        help=f"with --panels: enlarge small frames (nearest-neighbour, by a whole factor) until "
                             f"each panel's short side is at least PIXELS; larger frames keep their size, they "
                             f"are never shrunk (default: {DEFAULT_PANEL_SIZE})")
    parser.add_argument("--no-frame-counter", dest="frame_counter", action="store_false",
                        help="with --panels: leave out the 'frame t / T' line under the panels")
    parser.add_argument("--masks", type=Path, default=None,
                        help="folder for the mask PNGs (<k>/<frame>.png) and sentences.json; an earlier mask output "
                             "there is replaced once the new one is complete (a folder holding anything else is "
                             "refused)")
    parser.add_argument("--fps", type=float, default=None, help="overlay frame rate (default: the source's, else 10)")
    parser.add_argument("--stride", type=int, default=1, help="keep every N-th frame (default: 1)")
    parser.add_argument("--max-frames", type=int, default=None, help="segment at most this many frames")
    parser.set_defaults(func=run_segment)


def _pixels(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of pixels, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of pixels >= 1, got {text}")
    return value


def check_panel_options(args: argparse.Namespace, out: Optional[Path]) -> None:
    """--panel-size and --no-frame-counter need --panels, and --panels needs an overlay (--out)."""
    if not args.panels:
        if args.panel_size is not None or not args.frame_counter:
            option = "--panel-size" if args.panel_size is not None else "--no-frame-counter"
            raise ValueError(f"{option} only applies to panels: add --panels")
    elif out is None:
        raise ValueError("--panels draws the overlay: give --out (.mp4, .gif or a folder for PNGs)")


def require_checkpoint(checkpoint: Optional[PathLike], command: str) -> Path:
    """The checkpoint path, or a clear error saying a trained one is needed and how to get it."""
    if checkpoint is None:
        raise ValueError(f"{command} needs a trained checkpoint (--checkpoint PATH): an untrained model gives "
                         f"meaningless masks. To get one, {TRAIN_HINT}")
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist; {TRAIN_HINT}")
    return path


def run_segment(args: argparse.Namespace) -> int:
    """``rvoslib segment``: segment window by window, writing the overlay and/or the masks as it goes.

    Memory stays bounded by the window whatever the video's length (:func:`segment_to_files`);
    the outputs are renamed into place only when complete, so a failure (a full disk, a bad
    frame) leaves earlier files as they were. Returns the exit code.
    """
    from rvoslib.runtime import pick_device

    checkpoint = require_checkpoint(args.checkpoint, "rvoslib segment")
    sentences = check_sentences(args.sentences)
    video = resolve_video_path(args.video)
    device = pick_device(args.device)
    out = args.out
    if out is None and args.masks is None:
        out = Path(f"{Path(args.video).name or 'video'}_segmented.mp4")
    check_panel_options(args, out)
    inputs = [args.video, video, checkpoint]
    for path, what in ((out, "--out"), (args.masks, "--masks")):
        if path is not None:
            check_output_path(path, inputs, what)
    summary = segment_to_files(
        video, sentences, str(checkpoint), out=out, masks=args.masks, panels=args.panels,
        panel_size=args.panel_size or DEFAULT_PANEL_SIZE, frame_counter=args.frame_counter, fps=args.fps,
        window=args.window, stride=args.stride, max_frames=args.max_frames, device=device,
        dtype=parse_dtype(args.dtype, device), threshold=args.threshold, batch_size=args.batch_size,
        progress=args.progress, pretrained=args.pretrained)
    timing = summary.timing
    logger.info("segmented %d frames (%dx%d) for %d sentence(s) in %.2f s (%.1f frames/s on %s)",
                summary.num_frames, summary.frame_size[1], summary.frame_size[0], len(summary.sentences),
                timing["inference_s"], timing["frames_per_second"], timing["device"])
    for sentence, share in zip(summary.sentences, summary.coverage):
        logger.info("%5.1f%% of the pixels: %r", 100 * share, sentence)
    for kind, path in summary.outputs.items():
        if kind != "masks":  # the mask writer logged its own line
            logger.info("wrote %s %s", kind, path)
    return 0
