"""``rvoslib train``: its options, the config they describe, and the run."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import torch

from rvoslib.config import Config, apply_overrides, get_preset, load_config_file
from rvoslib.runtime import TINY_CLIP_CHECKPOINT, find_sample, use_shipped_tiny_clip
from rvoslib.train_loop import fmt_metric, train

logger = logging.getLogger(__name__)


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Declare the ``rvoslib train`` options on ``parser`` (sets ``func=run_train``; returns the parser)."""
    parser.add_argument("--preset", default="tiny", help="config preset: tiny | clip-b16 | clip-l14 (default: tiny)")
    parser.add_argument("--config", type=Path, default=None,
                        help="start from a saved config.json (e.g. runs/x/config.json) instead of --preset")
    parser.add_argument("--data", default=None, help="dataset root (default: the config's data.root, "
                        "data_samples/synthetic for the presets)")
    parser.add_argument("--format", default=None, help="dataset format: ytvos (also the synthetic sets), mevis, "
                        "davis, a2d, refcoco, refcoco+, refcocog, refcoco-all (default: the config's data.format)")
    parser.add_argument("--out", default=None, help="run folder for checkpoints, log.jsonl and config.json "
                        "(default: the config's train.out_dir, runs/tiny for the tiny preset)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the preset's)")
    parser.add_argument("--batch-size", type=int, default=None, help="clips per device per step")
    parser.add_argument("--pretrained", default=None,
                        help="CLIP weights: an open_clip tag, a local checkpoint, or 'none' for random weights "
                             f"(default: the preset's; for tiny, {TINY_CLIP_CHECKPOINT} when present)")
    parser.add_argument("--device", default=None, help="cpu | cuda | cuda:1 ... (default: CUDA when available)")
    parser.add_argument("--resume", nargs="?", const=True, default=False, metavar="CHECKPOINT",
                        help="continue the run in --out from its last.pt (or from CHECKPOINT)")
    parser.add_argument("--overwrite", action="store_true", help="start afresh in an --out that holds a run")
    parser.add_argument("--init", default=None, metavar="CHECKPOINT",
                        help="start from the trained weights of CHECKPOINT (e.g. RefCOCO image pretraining; "
                             "same model but for model.num_frames); the optimizer and step start anew")
    parser.add_argument("--mix", default=None, metavar="ROOT",
                        help="joint training: mix the dataset at ROOT (format data.mix_format, default refcoco-all) "
                             "into the training set, data.mix_fraction (default 0.5) of the items")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, repeatable: --set train.lr=3e-4 "
                             "--set model.spatiotemporal.attention=full")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: torch's choice); 1 is often fastest on a busy machine")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_train)
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    """The ``Config`` that ``rvoslib train`` arguments describe (preset or config.json, then options, then --set)."""
    if args.config is not None:
        if not args.config.is_file():
            raise FileNotFoundError(f"--config {str(args.config)!r} does not exist")
        cfg = load_config_file(args.config)  # names the file when it is malformed
    else:
        cfg = use_shipped_tiny_clip(get_preset(args.preset))
    if args.data is not None:
        cfg.data.root = args.data
    elif args.config is None:
        cfg.data.root = str(find_sample(cfg.data.root))
    if args.format is not None:
        cfg.data.format = args.format
    if args.out is not None:
        cfg.train.out_dir = args.out
    if args.steps is not None:
        cfg.train.steps = args.steps
    if args.batch_size is not None:
        cfg.train.batch_size = args.batch_size
    if args.init is not None:
        cfg.train.init_from = args.init
    if args.mix is not None:
        cfg.data.mix_root = args.mix
    if args.pretrained is not None:
        cfg.model.backbone.pretrained = None if args.pretrained.lower() == "none" else args.pretrained
    return apply_overrides(cfg, args.overrides)


def run_train(args: argparse.Namespace) -> int:
    """``rvoslib train``: build the config from ``args``, train, log the summary; returns 0."""
    cfg = config_from_args(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if cfg.model.backbone.pretrained is None:
        logger.warning("training with randomly initialised CLIP weights (no --pretrained)")
    summary = train(cfg, device=args.device, resume=args.resume, progress=not args.no_progress,
                    overwrite=args.overwrite)
    if int(os.environ.get("RANK", "0")) == 0:
        logger.info("done: %d steps, last loss %s, best val J&F %s (step %s); run folder %s", summary["steps"],
                    fmt_metric(summary["last_loss"]), fmt_metric(summary["best_jf"]), summary["best_step"], summary["out_dir"])
    return 0
