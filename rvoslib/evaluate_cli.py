"""``rvoslib evaluate``: its options, the run, and the scores as a few readable lines.

The protocols themselves are in :mod:`rvoslib.evaluate`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from rvoslib.data.formats import FORMAT_ALIASES, canonical_format
from rvoslib.evaluate import evaluate_dataset
from rvoslib.inference import add_inference_options, parse_dtype, require_checkpoint
from rvoslib.outputs import check_output_path

logger = logging.getLogger(__name__)

EVALUATE_HELP = """\
Evaluate a trained checkpoint on a dataset split with the benchmark's protocol:
J&F for Ref-YouTube-VOS-like sets with masks (also the synthetic sets, per expression
kind) and MeViS; Ref-DAVIS17 J&F averaged over annotator files; A2D-Sentences mAP and
IoUs. Splits without masks (Ref-YouTube-VOS valid) get a submission zip for the server.
--data, --format and --split default to the checkpoint's data config.

examples:
  rvoslib evaluate --checkpoint runs/x/best.pt --data data_samples/synthetic --split valid
  rvoslib evaluate --checkpoint runs/x/best.pt --data data_samples/davis --format davis
  rvoslib evaluate --checkpoint runs/x/best.pt --data data/ref-youtube-vos --split valid --out runs/x/ytvos-valid
"""


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of ``rvoslib evaluate`` on ``parser`` (sets ``func=run_evaluate``).

    Also gives the parser the command's description (with examples) unless it has one.
    """
    if not parser.description:
        parser.description = EVALUATE_HELP
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_inference_options(parser)
    parser.add_argument("--data", type=Path, default=None, help="dataset root (default: the checkpoint's data.root)")
    parser.add_argument("--format", default=None, choices=sorted(FORMAT_ALIASES),
                        help="dataset format (default: the checkpoint's data.format)")
    parser.add_argument("--split", default=None, help="split (default: the checkpoint's data.val_split)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for metrics.json, DAVIS PNGs or the submission (default: "
                             "<checkpoint folder>/eval-<format>-<split>)")
    parser.add_argument("--max-videos", type=int, default=None, help="evaluate only the first N videos")
    parser.set_defaults(func=run_evaluate)


def format_results(results: dict) -> str:
    """A few readable lines: the main scores, per kind / per annotator file, or the submission."""
    if "submission" in results:
        return f"submission for {results['num_videos']} videos written to {results['submission']}"
    lines = []
    main = [k for k in ("J&F", "J", "F", "mAP", "overall_iou", "mean_iou") if k in results]
    lines.append("  ".join(f"{k} {results[k]:.4f}" for k in main))
    extra = {k: v for k, v in results.items() if k.startswith(("J&F/", "P@"))}
    if extra:
        lines.append("  ".join(f"{k} {v:.4f}" for k, v in extra.items()))
    for name, summary in results.get("groups", {}).items():
        lines.append(f"{name}: J&F {summary['J&F-Mean']:.4f}  J {summary['J-Mean']:.4f}  F {summary['F-Mean']:.4f}")
    return "\n".join(lines)


def run_evaluate(args: argparse.Namespace) -> int:
    """``rvoslib evaluate``: load the checkpoint, run the protocol, log and save the scores."""
    from rvoslib.checkpoint import model_from_checkpoint
    from rvoslib.runtime import pick_device

    checkpoint = require_checkpoint(args.checkpoint, "rvoslib evaluate")
    device = pick_device(args.device)
    model, cfg = model_from_checkpoint(checkpoint, device=device, pretrained=args.pretrained)
    root = args.data if args.data is not None else Path(cfg.data.root)
    format = canonical_format(args.format or cfg.data.format)
    split = args.split or cfg.data.val_split
    out = args.out if args.out is not None else checkpoint.parent / f"eval-{format}-{split}"
    check_output_path(out, [root, checkpoint], "--out")  # never write over (or into) the data or the checkpoint
    results = evaluate_dataset(model, root, format, split, out, device=device, window=args.window,
                               threshold=args.threshold, dtype=parse_dtype(args.dtype, device),
                               batch_size=args.batch_size, max_videos=args.max_videos, progress=args.progress)
    logger.info("%s %s (%d videos):\n%s", format, split, results["num_videos"], format_results(results))
    logger.info("wrote %s", out / "metrics.json")
    return 0
