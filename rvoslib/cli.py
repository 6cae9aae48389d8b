"""Command line: ``rvoslib <command> ...``.

Each command is one ``add_<name>_command(subparsers)`` function that declares its
arguments and sets ``func`` (called with the parsed arguments, returns an exit code).
To add a command (train, evaluate, segment, pretrain), write such a function and call it
in ``build_parser``. Errors users can cause (missing files, bad values) are reported as one
line and exit code 2; ``--debug`` shows the full traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Sequence

logger = logging.getLogger("rvoslib.cli")

USER_ERRORS = (OSError, ValueError, KeyError, LookupError, RuntimeError)


# ----------------------------------------------------------------------------- make-synthetic

MAKE_SYNTHETIC_HELP = """\
Generate a synthetic referring-video dataset of coloured shapes, written in the
Ref-YouTube-VOS layout that `rvoslib train` and the readers understand:

  OUT/JPEGImages/<video>/<frame>.png      the frames (PNG, exact colours; --jpeg for JPEG)
  OUT/Annotations/<video>/<frame>.png     masks (palette PNG, pixel value = object id)
  OUT/meta_expressions.json               sentences, the object each refers to, and its
                                          kind: appearance ("the large blue square"),
                                          motion ("the shape moving left") or relation
                                          ("the circle to the left of the red square")

The same --seed, --split and options always give the same dataset. Masks are
written for every split, so a valid split can be scored.

examples:
  rvoslib make-synthetic data/shapes/train --videos 200 --seed 0
  rvoslib make-synthetic data/shapes/valid --videos 50 --seed 0 --split valid --hard
"""


def add_make_synthetic_command(subparsers: argparse._SubParsersAction) -> None:
    """Register ``make-synthetic``."""
    parser = subparsers.add_parser(
        "make-synthetic",
        help="generate a synthetic coloured-shapes RVOS dataset",
        description=MAKE_SYNTHETIC_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("out", metavar="OUT", type=Path,
                        help="output folder (created; must be empty unless --overwrite)")
    parser.add_argument("--videos", type=_positive_int, default=100, help="number of videos (default: 100)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--split", choices=("train", "valid"), default="train",
                        help="split name, used in video ids and mixed into the seed (default: train)")
    parser.add_argument("--hard", action="store_true",
                        help="every video has look-alike objects that differ only in motion, so many "
                             "sentences need several frames to resolve (for validating temporal models)")
    parser.add_argument("--same-axis", action="store_true",
                        help="with --hard: look-alikes move along one axis (left/right, or up/down/bouncing), "
                             "so only the frames' order tells them apart")
    parser.add_argument("--frames", type=_positive_int, default=12, help="frames per video (default: 12)")
    parser.add_argument("--size", type=_positive_int, default=64,
                        help="frame side in pixels, square frames (default: 64)")
    parser.add_argument("--jpeg", action="store_true",
                        help="write frames as JPEG (quality 95) instead of exact PNG (the default)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it already holds files")
    parser.set_defaults(func=run_make_synthetic)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def run_make_synthetic(args: argparse.Namespace) -> int:
    """Generate into a temporary sibling folder, then move it to OUT (OUT is untouched on failure)."""
    from rvoslib.data.files import load_meta_expressions
    from rvoslib.data.synthetic import write_synthetic_dataset

    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"OUT exists and is not a folder: {out}")
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        raise FileExistsError(f"OUT {out} is not empty; choose another folder or pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        write_synthetic_dataset(
            tmp, args.videos, args.seed, split=args.split, overwrite=True,
            hard=args.hard, same_axis=args.same_axis, num_frames=args.frames, size=args.size,
            image_format="jpg" if args.jpeg else "png",
        )
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp creates 0700; give the usual folder permissions
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    videos = load_meta_expressions(out / "meta_expressions.json")
    kinds = Counter(e.get("kind") for v in videos.values() for e in v["expressions"].values())
    logger.info("wrote %d videos, %d expressions (%s) to %s", len(videos), sum(kinds.values()),
                ", ".join(f"{k}: {n}" for k, n in sorted(kinds.items())), out)
    return 0


# ----------------------------------------------------------------------------- train, evaluate, segment, pretrain


def _add_command(subparsers: argparse._SubParsersAction, name: str, help: str, description: str,
                 add_arguments, run) -> None:
    """Register a command whose arguments and runner live in the module that does the work."""
    parser = subparsers.add_parser(name, help=help, description=description,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.set_defaults(func=run)


TRAIN_HELP = """\
Train VLP-RVOS: the CLIP stays frozen; prompts, stage-1/2/3 relation modules,
the cube-frame encoder and the mask head are trained. With no options it trains
the tiny preset (initialised from the shipped tiny pretrained CLIP) on the bundled
synthetic set on the CPU. Each run folder holds last.pt, best.pt (by validation
J&F), log.jsonl and config.json; --resume continues exactly where it stopped.

examples:
  rvoslib train --out runs/tiny
  rvoslib train --out runs/tiny --resume
  rvoslib train --preset clip-b16 --data /data/ref-youtube-vos --out runs/b16 --device cuda
  torchrun --nproc_per_node 4 -m rvoslib.cli train --preset clip-b16 --data /data/ref-youtube-vos
  rvoslib train --set model.spatiotemporal.attention=full --set train.lr=3e-4
  rvoslib train --preset clip-b16 --format refcoco --data /data/coco --out runs/refcoco --set model.num_frames=1
  rvoslib train --preset clip-b16 --data /data/ref-youtube-vos --init runs/refcoco/last.pt --out runs/b16
  rvoslib train --preset clip-b16 --data /data/ref-youtube-vos --mix /data/coco --out runs/b16-joint
"""


def add_library_commands(subparsers: argparse._SubParsersAction) -> None:
    """``train``, ``evaluate``, ``segment`` and ``pretrain`` (their modules import torch)."""
    from rvoslib import engine, evaluate_cli, pretrain, segment_cli

    _add_command(subparsers, "train", "train VLP-RVOS (one device, or many GPUs with torchrun)",
                 TRAIN_HELP, engine.add_train_arguments, engine.run_train)
    _add_command(subparsers, "evaluate", "score a checkpoint on a dataset (J&F, mAP) or write a submission",
                 evaluate_cli.EVALUATE_HELP, evaluate_cli.add_evaluate_arguments, evaluate_cli.run_evaluate)
    _add_command(subparsers, "segment", "segment a video (frames folder or mp4) from sentences",
                 segment_cli.SEGMENT_HELP, segment_cli.add_segment_arguments, segment_cli.run_segment)
    _add_command(subparsers, "pretrain", "tiny contrastive CLIP pretraining on synthetic captions",
                 pretrain.PRETRAIN_HELP, pretrain.add_arguments, pretrain.run_from_args)


# ----------------------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    """The ``rvoslib`` parser with every command."""
    parser = argparse.ArgumentParser(
        prog="rvoslib",
        description="VLP-RVOS: referring video object segmentation with a frozen, prompt-tuned CLIP.",
    )
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="logging level (default: INFO)")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_library_commands(subparsers)
    add_make_synthetic_command(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``rvoslib`` with ``argv`` (default: sys.argv[1:]); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level), format="%(message)s", stream=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as error:
        if args.debug:
            raise
        sys.stderr.write(f"rvoslib {args.command}: error: {error}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
