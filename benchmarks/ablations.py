"""Toy-scale ablation study of VLP-RVOS on the synthetic shapes.

Run from the repository root::

    .venv/bin/python -m benchmarks.ablations            # the study (README: measured wall time)
    .venv/bin/python -m benchmarks.ablations --quick    # smoke configuration: about a minute

It trains the tiny preset under ten variants (``VARIANTS``: the full model and one config change
each), every variant with the same step budget and the same seeds, validates each run once at
its last step on a *hard* synthetic validation split, and writes

* ``benchmarks/ablations.json`` (``--out``): the settings, the machine, every run, and per
  variant ``{metric: [one value per seed]}`` under ``"variants"`` (the shape notebook 09 reads),
  plus mean / standard deviation per metric, the two controls, and the verdict on each of the
  paper's claims (``CLAIMS``, statistics in :mod:`benchmarks.ablation_stats`);
* ``benchmarks/ablations.md`` (``--markdown``): the tables, as in the README
  (:mod:`benchmarks.ablation_report`);
* ``benchmarks/ablations.png`` (``--figure``): J&F per variant and kind of expression, per seed.

``--report-only`` rebuilds the conclusions from the runs held in the JSON and rewrites the three
files, training nothing. Every file is written atomically (an interrupted run leaves the previous
one intact).

The table's last row is a *reference*, not a model: the J&F of a reader that knows every object's
size, colour and shape but nothing of motion, and outputs the true masks of one of the target's
look-alikes at random (:func:`motion_blind_reference`). A model above it on motion expressions used
time; below it, it has not yet learned appearance grounding and masks as well as that reader.

Design of the study:

* data: ``--train-videos`` synthetic training videos (the generator's default mix: half of the
  videos hold look-alike "twins") and ``--val-videos`` *hard* validation videos
  (``hard=True``: every video has twins that share size, colour and shape and differ only in
  their motion), so most validation expressions can only be resolved over time. Both are
  generated once into ``--work`` and reused.
* training: the tiny preset from the shipped tiny pretrained CLIP, two-step history training
  (clip A then clip B with history from A, one optimizer step each: the history tokens are
  trained, so removing them is a fair ablation), ``--steps`` steps; no variant is tuned.
* evaluation: J&F on the validation split after the last step (no best-checkpoint picking),
  overall and per kind of expression (appearance, motion, relation).
* runs: ``--workers`` processes (default 2) with ``--threads`` torch threads each (default 1);
  each finished run writes ``result.json`` in its run folder, and a run whose result exists
  with the same settings is not trained again, so an interrupted study resumes where it stopped.
* controls (``CONTROLS``): the full model must be clearly above the motion-blind reference on
  motion expressions (positive: the study can see temporal reasoning) and the variant with no
  temporal pathway at all must not be (negative: the toy world leaks no answer through
  per-frame cues). A claim about a temporal component is "not testable here" unless both pass.
* verdicts: a claim compares two variants on one metric; the difference of the means is
  "clear" when it exceeds twice its standard error over seeds (sqrt(s1^2/n1 + s2^2/n2)); it is
  reported with the interval difference ± 2 s.e. and per kind of expression.
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import dataclasses
import json
import logging
import math
import multiprocessing
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from benchmarks.ablation_report import markdown_controls, markdown_report, markdown_table, markdown_verdicts, plot_study
from benchmarks.ablation_stats import KINDS, Claim, Control, check_control, controls_pass, judge, mean_std
from benchmarks.ablation_stats import collect as collect_values

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("benchmarks.ablations")

# relative value offsets live inside cubes, so the variants without a cube block read plain values
NO_CUBE = "model.spatiotemporal.value_position=none"
NO_TEMPORAL_PATHWAY = ["model.prompts.use_temporal=False", "model.spatiotemporal.attention=frame",
                       "model.prompts.use_history=False", NO_CUBE]
NAIVE_TRANSFER = ["model.prompts.use_vision=False", "model.prompts.use_temporal=False",
                  "model.prompts.use_history=False", "model.prompts.use_language=False", "model.vision.stage1=False"]

# name -> (config overrides, what the variant asks)
VARIANTS: dict[str, tuple[list[str], str]] = {
    "full model": ([], "the baseline of every comparison: shipped tiny pretrained CLIP, every component on"),
    "random-init CLIP": (["model.backbone.pretrained=None"],
                         "same frozen tiny CLIP architecture with random weights"),
    "no temporal prompts": (["model.prompts.use_temporal=False"],
                            "no temporal prompts and no temporal capture in the vision encoder"),
    "capture without time code": (["model.vision.capture_time_code=none"],
                                  "temporal capture blind to frame order (no per-frame code on its keys)"),
    "frame-only attention": (["model.spatiotemporal.attention=frame", NO_CUBE],
                             "spatio-temporal layers attend within each frame only"),
    "full attention": (["model.spatiotemporal.attention=full", NO_CUBE],
                       "spatio-temporal layers attend over all T x h x w tokens"),
    "no stage-1": (["model.vision.stage1=False"], "no VL cross-attention inside the vision encoder"),
    "no history": (["model.prompts.use_history=False"], "no history tokens from the previous clip"),
    "no temporal pathway": (NO_TEMPORAL_PATHWAY,
                            "negative control: no temporal prompts or capture, frame-only attention, no history"),
    "naive transfer": (NAIVE_TRANSFER,
                       "frozen CLIP with no prompts and no stage-1: stages 2-3 on its plain features"),
}

METRICS = ("J&F", "J&F/motion", "J&F/appearance", "J&F/relation", "J", "F")

CLAIMS = (
    Claim("a", "vision-language pretrained CLIP beats the same frozen CLIP with random weights",
          "full model", "random-init CLIP", "J&F"),
    Claim("b", "temporal prompts help on motion expressions", "full model", "no temporal prompts", "J&F/motion",
          temporal=True),
    Claim("b", "the capture's time code helps on motion expressions", "full model", "capture without time code",
          "J&F/motion", temporal=True),
    Claim("c", "cube-frame attention is as good as full attention", "full model", "full attention", "J&F",
          equivalent=True),
    Claim("c", "cube-frame attention reasons over time (beats frame-only) on motion expressions",
          "full model", "frame-only attention", "J&F/motion", temporal=True),
    Claim("d", "stage-1 VL cross-attention adds to the later stages", "full model", "no stage-1", "J&F"),
    Claim("h", "history tokens help on motion expressions", "full model", "no history", "J&F/motion", temporal=True),
    Claim("n", "the method beats naive transfer (frozen CLIP, no prompts, no stage-1)", "full model",
          "naive transfer", "J&F"),
)

CONTROLS = (
    Control("positive", "the full model is clearly above the reference on motion", "full model", "J&F/motion",
            above=True),
    Control("negative", "no temporal pathway is not clearly above the reference on motion", "no temporal pathway",
            "J&F/motion", above=False),
)


@dataclasses.dataclass
class Settings:
    """Everything that fixes the study's numbers (saved with every run to detect stale results)."""

    steps: int = 500
    seeds: tuple = (0, 1, 2)
    train_videos: int = 1000
    val_videos: int = 60
    data_seed: int = 1  # train videos use this seed, validation videos this seed + 1
    history_training: str = "two-step"
    preset: str = "tiny"

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "seeds": list(self.seeds)}


QUICK = Settings(steps=6, seeds=(0,), train_videos=8, val_videos=3)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: an interrupted write leaves the previous file intact."""
    from rvoslib.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


# =============================================================================== data


def make_data(root: Path, settings: Settings) -> Path:
    """Write (once) the training split and the hard validation split under ``root``; returns ``root``.

    An existing split is reused when its video count matches; otherwise a ``ValueError`` names it
    (choose another ``--work``, or delete it).
    """
    from rvoslib.data.synthetic import write_synthetic_dataset

    plan = {"train": (settings.train_videos, settings.data_seed, False),
            "valid": (settings.val_videos, settings.data_seed + 1, True)}
    for split, (videos, seed, hard) in plan.items():
        folder = root / split
        meta = folder / "meta_expressions.json"
        if meta.is_file():
            found = len(json.loads(meta.read_text(encoding="utf-8"))["videos"])
            if found != videos:
                raise ValueError(f"{str(folder)!r} holds {found} videos, the study needs {videos}; "
                                 "pass another --work or delete that folder")
            continue
        log.info("writing %d %s%s videos to %s", videos, "hard " if hard else "", split, folder)
        write_synthetic_dataset(folder, videos, seed=seed, split=split, hard=hard, overwrite=folder.exists())
    return root


def split_counts(root: Path, split: str) -> dict[str, int]:
    """Number of videos and of expressions per kind in one split of the study's data."""
    videos = json.loads((root / split / "meta_expressions.json").read_text(encoding="utf-8"))["videos"]
    counts = {"videos": len(videos)}
    for video in videos.values():
        for expression in video["expressions"].values():
            counts[expression["kind"]] = counts.get(expression["kind"], 0) + 1
    return counts


def motion_blind_reference(root: Path, split: str = "valid") -> dict[str, float]:
    """J&F of a reader that knows every object's size, colour and shape but nothing of motion or place.

    For each expression it picks one of the target's look-alikes (objects with the target's
    size, colour and shape, the target included) at random and outputs that object's true
    masks. The value is the expectation over that choice, computed exactly: per expression the
    mean over look-alikes of (J-mean + F-mean) / 2 against the target, then the mean over
    expressions (overall and per kind), as ``rvoslib.metrics.summarize`` averages objects. It
    is what perfect appearance grounding without any use of time scores: above it, a model
    used motion (or position, for relation expressions).
    """
    from rvoslib.data.formats import read_ref_youtube_vos
    from rvoslib.evaluate import ground_truth
    from rvoslib.metrics import evaluate_object, statistics

    folder = root / split
    meta = json.loads((folder / "meta_expressions.json").read_text(encoding="utf-8"))["videos"]
    per_kind: dict[str, list[float]] = {}
    for record in read_ref_youtube_vos(folder):
        frames = record.annotated_indices()
        looks = {int(k): (a["size"], a["colour"], a["shape"]) for k, a in meta[record.video_id]["objects"].items()}
        masks = {obj_id: ground_truth(record, [obj_id], frames) for obj_id in looks}  # (n, H, W) each
        for expression in record.expressions:
            target = expression.obj_ids[0]
            choices = []
            for obj_id in (o for o, look in looks.items() if look == looks[target]):
                j, f = evaluate_object(masks[obj_id], masks[target])
                choices.append((statistics(j).mean + statistics(f).mean) / 2)
            per_kind.setdefault(expression.kind, []).append(statistics(choices).mean)
    out = {"J&F": statistics([v for values in per_kind.values() for v in values]).mean}
    out.update({f"J&F/{kind}": statistics(values).mean for kind, values in sorted(per_kind.items())})
    return out


# =============================================================================== runs


def run_config(variant: str, seed: int, settings: Settings, data_root: Path, run_dir: Path):
    """The ``Config`` of one run: the preset from the shipped tiny CLIP, the study's schedule, the variant."""
    from rvoslib.config import apply_overrides, get_preset
    from rvoslib.runtime import TINY_CLIP_CHECKPOINT, use_shipped_tiny_clip

    cfg = use_shipped_tiny_clip(get_preset(settings.preset))
    if cfg.model.backbone.pretrained is None:
        raise FileNotFoundError(f"the study starts from the shipped tiny CLIP, {TINY_CLIP_CHECKPOINT}, "
                                "which is missing")
    cfg.data.root = str(data_root)
    t = cfg.train
    t.steps, t.seed, t.out_dir = settings.steps, seed, str(run_dir)
    t.history_training = settings.history_training
    t.eval_every = t.ckpt_every = settings.steps  # one validation and one checkpoint, at the end
    t.log_every = max(1, settings.steps // 20)
    return apply_overrides(cfg, VARIANTS[variant][0])


def run_dir_name(variant: str, seed: int) -> str:
    return f"{variant.replace(' ', '-')}-seed{seed}"


def run_one(job: dict) -> dict:
    """Train and validate one (variant, seed) in this process; writes and returns ``result.json``'s content.

    job: ``variant``, ``seed``, ``settings`` (a dict), ``data_root``, ``run_dir``, ``threads``.
    """
    import torch

    from rvoslib.engine import read_log, train

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger().setLevel(logging.WARNING)  # one line per run comes from the main process
    torch.set_num_threads(job["threads"])
    settings = Settings(**{**job["settings"], "seeds": tuple(job["settings"]["seeds"])})
    run_dir = Path(job["run_dir"])
    cfg = run_config(job["variant"], job["seed"], settings, Path(job["data_root"]), run_dir)
    summary = train(cfg, device="cpu", progress=False, overwrite=True)
    records = read_log(run_dir)
    last_step = next(r for r in reversed(records) if r.get("step") == settings.steps and "loss" in r)
    evaluation = next(r for r in reversed(records) if "val" in r)
    result = {
        "variant": job["variant"], "seed": job["seed"], "settings": settings.to_dict(),
        "overrides": VARIANTS[job["variant"]][0],
        "metrics": {k: v for k, v in summary["last_val"].items() if k in METRICS or k == "num_objects"},
        "train_s": last_step["time"], "train_cpu_s": last_step["cpu_s"], "eval_s": evaluation["eval_s"],
        "last_loss": summary["last_loss"], "threads": job["threads"],
        "trainable_params": sum(p.numel() for p in summary["model"].parameters() if p.requires_grad),
    }
    write_text(run_dir / "result.json", json.dumps(result, indent=1) + "\n")
    return result


def finished_result(run_dir: Path, settings: Settings) -> Optional[dict]:
    """The saved result of a run with these settings, or None (missing, unreadable or other settings)."""
    path = run_dir / "result.json"
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return result if result.get("settings") == settings.to_dict() else None


def run_all(jobs: list[dict], workers: int, settings: Settings, train: bool = True) -> tuple[list[dict], int]:
    """Run the jobs not already finished in ``workers`` spawned processes (none with ``train=False``).

    Returns the results of every finished job (in ``jobs`` order; all of them unless ``train`` is
    False) and how many were reused, not trained.
    """
    from tqdm.auto import tqdm

    results, todo = {}, []
    for job in jobs:
        done = finished_result(Path(job["run_dir"]), settings)
        if done is not None:
            results[(job["variant"], job["seed"])] = done
        else:
            todo.append(job)
    if results:
        log.info("reusing %d finished run(s) from %s", len(results), Path(jobs[0]["run_dir"]).parent)
    if not train:
        log.info("training nothing: %d run(s) not finished are left out", len(todo))
        todo = []
    context = multiprocessing.get_context("spawn")
    with futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool, \
            tqdm(total=len(todo), desc="ablation runs", unit="run") as bar:
        pending = {pool.submit(run_one, job): job for job in todo}
        for done in futures.as_completed(pending):
            result = done.result()
            results[(result["variant"], result["seed"])] = result
            bar.update(1)
            log.info("%-22s seed %d: J&F %.3f (motion %.3f) in %.0f s", result["variant"], result["seed"],
                     result["metrics"].get("J&F", math.nan), result["metrics"].get("J&F/motion", math.nan),
                     result["train_s"])
    return [results[key] for key in ((j["variant"], j["seed"]) for j in jobs) if key in results], len(results) - len(todo)


# =============================================================================== conclusions


def collect(results: Sequence[dict]) -> dict[str, dict[str, list[float]]]:
    """``{variant: {metric: [per-seed values]}}`` (metrics plus ``train_s``, ``train_cpu_s``), variants in ``VARIANTS`` order."""
    return collect_values(results, list(VARIANTS), METRICS)


def conclude(variants: dict[str, dict[str, list[float]]], reference: dict[str, float]) -> tuple[list[dict], list[dict]]:
    """The controls that could be checked, and the verdicts on the claims both variants of which ran.

    Temporal claims are judged only when both controls were checked and passed.
    """
    controls = [c for c in (check_control(c, variants, reference) for c in CONTROLS) if c is not None]
    passed = len(controls) == len(CONTROLS) and controls_pass(controls)
    verdicts = [v for v in (judge(c, variants, passed) for c in CLAIMS) if v is not None]
    return controls, verdicts


def recompute(study: dict) -> dict:
    """``study`` with its per-variant values, summary, controls and verdicts rebuilt from its runs
    (the runs and the reference are the source of truth; ``--report-only`` uses this)."""
    variants = collect(study["runs"])
    controls, verdicts = conclude(variants, study["reference"])
    summary = {name: {m: mean_std(v) for m, v in metrics.items()} for name, metrics in variants.items()}
    return {**study, "variants": variants, "summary": summary, "controls": controls, "verdicts": verdicts}


# =============================================================================== report


def machine_info() -> dict:
    import torch

    from benchmarks.common import cpu_name

    return {"cpu": cpu_name(), "logical_cpus": os.cpu_count(), "torch": torch.__version__,
            "python": platform.python_version(),
            "load_average_end": os.getloadavg() if hasattr(os, "getloadavg") else None}


# =============================================================================== main


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    d = Settings()
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke configuration ({QUICK.steps} steps, seed 0, {QUICK.train_videos} training videos)")
    parser.add_argument("--steps", type=int, default=None, help=f"training steps per run (default {d.steps})")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help=f"seeds (default {list(d.seeds)})")
    parser.add_argument("--train-videos", type=int, default=None, help=f"default {d.train_videos}")
    parser.add_argument("--val-videos", type=int, default=None, help=f"default {d.val_videos}")
    parser.add_argument("--variants", nargs="+", default=None, metavar="NAME",
                        help=f"subset of the variants (default: all): {', '.join(map(repr, VARIANTS))}")
    parser.add_argument("--workers", type=int, default=2, help="runs trained at a time (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    parser.add_argument("--work", type=Path, default=REPO / "runs/ablations",
                        help="data and run folders (default runs/ablations; runs/ablations-quick with --quick)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON results (default benchmarks/ablations.json; WORK/ablations.json with --quick)")
    parser.add_argument("--markdown", type=Path, default=None, help="markdown report (default: --out with .md)")
    parser.add_argument("--figure", type=Path, default=None, help="bar chart (default: --out with .png)")
    parser.add_argument("--finished-only", action="store_true",
                        help="train nothing: the study of the runs already finished in --work (a partial study "
                             "lists the runs it lacks)")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: rebuild the conclusions from the runs in the --out JSON and rewrite it, "
                             "the markdown report and the figure")
    args = parser.parse_args(argv)
    unknown = [v for v in args.variants or [] if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    for name in ("steps", "train_videos", "val_videos", "workers", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.quick and args.work == REPO / "runs/ablations":
        args.work = REPO / "runs/ablations-quick"
    if args.out is None:
        args.out = args.work / "ablations.json" if args.quick else REPO / "benchmarks/ablations.json"
    if args.markdown is None:
        args.markdown = args.out.with_suffix(".md")
    if args.figure is None:
        args.figure = args.out.with_suffix(".png")
    if args.report_only and not args.out.is_file():
        parser.error(f"--report-only reads the study's JSON, and {str(args.out)!r} does not exist")
    return args


def settings_from_args(args: argparse.Namespace) -> Settings:
    base = QUICK if args.quick else Settings()
    changes = {"steps": args.steps, "train_videos": args.train_videos, "val_videos": args.val_videos,
               "seeds": tuple(args.seeds) if args.seeds else None}
    return dataclasses.replace(base, **{k: v for k, v in changes.items() if v is not None})


def main(argv: Optional[Sequence[str]] = None) -> int:
    from rvoslib.config import get_preset

    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[ablations] %(message)s")
    logging.getLogger("rvoslib").setLevel(logging.WARNING)
    if args.report_only:
        study = recompute(json.loads(args.out.read_text(encoding="utf-8")))
        write_text(args.out, json.dumps(study, indent=1) + "\n")
        write_report(study, args)
        return 0
    settings = settings_from_args(args)
    started = time.perf_counter()
    data_root = make_data(args.work / "data", settings)
    names = args.variants or list(VARIANTS)
    jobs = [{"variant": v, "seed": seed, "settings": settings.to_dict(), "data_root": str(data_root),
             "run_dir": str(args.work / "runs" / run_dir_name(v, seed)), "threads": args.threads}
            for seed in settings.seeds for v in names]  # seed-major: a partial study covers every variant
    results, reused = run_all(jobs, args.workers, settings, train=not args.finished_only)
    if not results:
        raise SystemExit(f"no finished run in {args.work / 'runs'}: nothing to report")
    missing = [f"{j['variant']} seed {j['seed']}" for j in jobs
               if (j["variant"], j["seed"]) not in {(r["variant"], r["seed"]) for r in results}]
    variants = collect(results)
    reference = motion_blind_reference(data_root)
    controls, verdicts = conclude(variants, reference)
    study = {
        "settings": settings.to_dict(), "workers": args.workers, "threads": args.threads,
        "batch_size": get_preset(settings.preset).train.batch_size, "wall_s": time.perf_counter() - started, "reused_runs": reused,
        "command": " ".join(["python -m benchmarks.ablations", *map(shlex.quote, sys.argv[1:] if argv is None else argv)]),
        "machine": machine_info(),
        "data": {split: split_counts(data_root, split) for split in ("train", "valid")},
        "overrides": {name: VARIANTS[name][0] for name in variants},
        "variants": variants,
        "reference": reference,
        "summary": {name: {m: mean_std(v) for m, v in metrics.items()} for name, metrics in variants.items()},
        "controls": controls,
        "verdicts": verdicts,
        "missing_runs": missing,
        "runs": results,
    }
    write_text(args.out, json.dumps(study, indent=1) + "\n")
    write_report(study, args)
    return 0


def write_report(study: dict, args: argparse.Namespace) -> None:
    """Write the markdown report and the figure of ``study``, and print the report."""
    report = markdown_report(study)
    write_text(args.markdown, report)
    plot_study(study, args.figure)
    print(report)
    print(f"study: {study['wall_s'] / 60:.1f} min; numbers in {args.out}, report in {args.markdown}, "
          f"figure in {args.figure}")


if __name__ == "__main__":
    sys.exit(main())
