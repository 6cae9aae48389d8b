"""Score tiny VLP-RVOS checkpoints on fresh synthetic splits: the README's toy-scale table.

    python -m benchmarks.toy_eval --checkpoint shipped=data_samples/tiny_rvos/rvos-tiny-synthetic.pt \\
        --checkpoint old=runs/old/best.pt --std-seed 9001 --hard-seed 9002

Protocol, fixed before any number was seen:

- two validation splits are written with ``rvoslib make-synthetic``'s generator
  (``write_synthetic_dataset``, split "valid"): a *standard* one (the generator's default
  mix of appearance, motion and relation sentences) and a ``--hard`` one (every video has
  look-alikes that differ only in motion). Their seeds are arguments and are stored with the
  results; they must be seeds that no training, tuning or model selection used;
- every checkpoint is scored with ``rvoslib.evaluate.evaluate_dataset`` (what
  ``rvoslib evaluate`` runs): J&F overall and per kind of sentence;
- the hard split also gets the *motion-blind reference* of ``benchmarks.ablations``: the
  exact expected J&F of a reader with perfect masks and perfect appearance grounding that
  picks one of the target's look-alikes at random. A model above it on motion sentences
  uses time; a model with no temporal pathway should not be above it.

Writes ``--out`` (JSON: seeds, splits' counts, every metric) and the markdown table next to
it (``.md``). Splits are cached under ``--work`` and reused when their seed and size match.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Optional, Sequence

import torch

from benchmarks.ablations import motion_blind_reference, split_counts, write_text

log = logging.getLogger("benchmarks.toy_eval")

KINDS = ("appearance", "motion", "relation")
SPLITS = ("standard", "hard")


def make_split(folder: Path, videos: int, seed: int, hard: bool) -> Path:
    """Write (once) a validation split as ``folder/valid``; reuse it when seed, size and mode match."""
    from rvoslib.data.synthetic import write_synthetic_dataset

    stamp = folder / "split.json"
    wanted = {"videos": videos, "seed": seed, "hard": hard}
    if stamp.is_file() and json.loads(stamp.read_text(encoding="utf-8")) == wanted:
        return folder
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{str(folder)!r} holds another split; delete it or pass another --work")
    log.info("writing %d %svalidation videos (seed %d) to %s", videos, "hard " if hard else "", seed, folder)
    write_synthetic_dataset(folder / "valid", videos, seed=seed, split="valid", hard=hard)
    stamp.write_text(json.dumps(wanted) + "\n", encoding="utf-8")
    return folder


def score(checkpoint: str, root: Path) -> dict:
    """J&F overall and per kind of one checkpoint on ``root/valid`` (the per-object table dropped)."""
    from rvoslib.evaluate import evaluate_dataset

    started = time.time()
    result = evaluate_dataset(checkpoint, root, "ytvos", "valid", device="cpu", progress=False)
    keep = {k: v for k, v in result.items() if k.startswith("J") or k == "num_objects"}
    return {**keep, "seconds": round(time.time() - started, 1)}


def markdown(results: dict) -> str:
    """One table: a row per checkpoint, J&F on each split and per kind; the reference last."""
    header = ["model", "standard J&F", "std appearance", "std motion", "std relation",
              "hard J&F", "hard motion", "hard appearance"]
    cols = [("standard", "J&F"), ("standard", "J&F/appearance"), ("standard", "J&F/motion"),
            ("standard", "J&F/relation"), ("hard", "J&F"), ("hard", "J&F/motion"), ("hard", "J&F/appearance")]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rows = list(results["models"].items())
    rows.append(("*motion-blind reference* (perfect masks, random look-alike)",
                 {"hard": results["reference"]}))
    for name, metrics in rows:
        cells = [f"{metrics[s][m]:.3f}" if m in metrics.get(s, {}) else "-" for s, m in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    seeds = results["seeds"]
    counts = results["counts"]
    caption = (f"Fresh splits written by `rvoslib make-synthetic` (split `valid`): standard seed {seeds['standard']} "
               f"({counts['standard']['videos']} videos; " + ", ".join(
                   f"{counts['standard'].get(k, 0)} {k}" for k in KINDS) + f" sentences), `--hard` seed "
               f"{seeds['hard']} ({counts['hard']['videos']} videos; " + ", ".join(
                   f"{counts['hard'].get(k, 0)} {k}" for k in KINDS) + " sentences). Scored with `rvoslib evaluate`.")
    return caption + "\n\n" + "\n".join(lines) + "\n"


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", action="append", required=True, metavar="NAME=PATH",
                        help="a checkpoint to score, with its row name (repeat for several)")
    parser.add_argument("--std-seed", type=int, required=True, help="seed of the standard validation split")
    parser.add_argument("--hard-seed", type=int, required=True, help="seed of the --hard validation split")
    parser.add_argument("--videos", type=int, default=60, help="videos per split (default: 60)")
    parser.add_argument("--work", default="runs/toy_eval", help="where the splits are written (default: runs/toy_eval)")
    parser.add_argument("--out", default="benchmarks/toy_eval.json", help="results JSON (the .md goes beside it)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    return parser.parse_args(argv)


def checkpoints(items: Sequence[str]) -> dict[str, str]:
    """``["name=path", ...]`` -> {name: path}; a clear error for a malformed item or a missing file."""
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--checkpoint {item!r}: expected NAME=PATH")
        if not Path(path).is_file():
            raise SystemExit(f"--checkpoint {item!r}: no such file {path!r}")
        out[name] = path
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    models = checkpoints(args.checkpoint)
    work = Path(args.work)
    seeds = {"standard": args.std_seed, "hard": args.hard_seed}
    roots = {s: make_split(work / f"{s}-{seeds[s]}", args.videos, seeds[s], s == "hard") for s in SPLITS}
    results = {
        "seeds": seeds,
        "counts": {s: split_counts(roots[s], "valid") for s in SPLITS},
        "reference": motion_blind_reference(roots["hard"]),
        "models": {},
        "checkpoints": models,
    }
    for name, path in models.items():
        results["models"][name] = {s: score(path, roots[s]) for s in SPLITS}
        log.info("%s: %s", name, {s: round(results["models"][name][s]["J&F"], 3) for s in SPLITS})
    out = Path(args.out)
    write_text(out, json.dumps(results, indent=1) + "\n")
    write_text(out.with_suffix(".md"), markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
