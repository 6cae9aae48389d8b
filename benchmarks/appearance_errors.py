"""Which attribute a model gets wrong on appearance sentences ("the small triangle").

    python -m benchmarks.appearance_errors --checkpoint shipped=data_samples/tiny_rvos/rvos-tiny-synthetic.pt \\
        --seed 9931 --out benchmarks/appearance_errors.json

For every appearance sentence of a standard synthetic validation split (the videos that
``rvoslib make-synthetic --split valid --seed SEED`` writes), the model's masks pick an object:
the one they overlap most over the kept frames (none when they overlap no object). When the pick
is not the referent, the attributes (size, colour, shape) in which the picked object differs
from the referent are counted. Beside them, the *base rate*: the share of the other objects in
the same videos that equal the referent in each attribute. A model that confuses attributes at
random picks same-shape objects about as often as they occur; one that never picks a same-shape
object while often picking other ones resolves everything but shape.

Writes ``--out`` (JSON) and a markdown table beside it (``.md``).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

log = logging.getLogger("benchmarks.appearance_errors")

ATTRIBUTES = ("size", "colour", "shape")


def differing(referent, picked) -> tuple[str, ...]:
    """The attributes (in ``ATTRIBUTES`` order) in which two synthetic objects differ."""
    return tuple(a for a in ATTRIBUTES if getattr(referent, a) != getattr(picked, a))


def score_appearance(video, masks: np.ndarray, indices: Sequence[int]) -> list[dict]:
    """One row per appearance sentence of a synthetic video.

    masks: (K, T', H, W) bool predictions for the video's K expressions on the kept frames
    ``indices``. Row: ``right`` (the mask overlaps the referent more than any other object),
    ``j`` (IoU with the referent over the kept frames), ``differs`` (the attributes in which the
    picked object differs from the referent; None when right, "empty" when the mask is on no
    object).
    """
    ids = video.id_maps[list(indices)]  # (T', H, W) object ids of the kept frames
    objects = {o.obj_id: o for o in video.objects}
    rows = []
    for expression, mask in zip(video.expressions, masks):
        if expression["kind"] != "appearance":
            continue
        referent = objects[expression["obj_id"]]
        truth = ids == referent.obj_id
        union = int((mask | truth).sum())
        overlap = {i: int((mask & (ids == i)).sum()) for i in objects}
        picked = max(overlap, key=overlap.get)
        right = overlap[picked] > 0 and picked == referent.obj_id
        differs = None if right else ("empty",) if overlap[picked] == 0 else differing(referent, objects[picked])
        rows.append({"right": right, "j": float((mask & truth).sum()) / union if union else 1.0,
                     "differs": differs})
    return rows


def base_rates(videos) -> dict[str, float]:
    """Per attribute: the share of the non-referent objects that equal the referent in it, over
    the appearance sentences of ``videos``."""
    same, total = Counter(), 0
    for video in videos:
        objects = {o.obj_id: o for o in video.objects}
        for expression in video.expressions:
            if expression["kind"] != "appearance":
                continue
            referent = objects[expression["obj_id"]]
            for other in video.objects:
                if other.obj_id != referent.obj_id:
                    total += 1
                    same.update(a for a in ATTRIBUTES if getattr(other, a) == getattr(referent, a))
    return {a: same[a] / total if total else float("nan") for a in ATTRIBUTES}


def summarize(rows: Sequence[dict]) -> dict:
    """Counts and means of :func:`score_appearance` rows."""
    wrong = [r for r in rows if not r["right"]]
    right_j = [r["j"] for r in rows if r["right"]]
    return {
        "sentences": len(rows),
        "right": sum(r["right"] for r in rows),
        "j_when_right": float(np.mean(right_j)) if right_j else float("nan"),
        "wrong_by_differing": dict(Counter("+".join(r["differs"]) for r in wrong).most_common()),
        "wrong_with_same": {a: sum(1 for r in wrong if r["differs"] != ("empty",) and a not in r["differs"])
                            for a in ATTRIBUTES},
    }


def score_model(checkpoint: str, videos) -> dict:
    """Run one checkpoint over ``videos`` (online inference, as ``rvoslib segment``) and summarize."""
    from rvoslib.inference import resolve_model, segment_video

    model, _ = resolve_model(checkpoint, device="cpu")
    rows = []
    with torch.inference_mode():
        for video in videos:
            result = segment_video(video.frames, [e["text"] for e in video.expressions], model, progress=False)
            rows += score_appearance(video, result.masks, result.frame_indices)
    return summarize(rows)


def markdown(results: dict) -> str:
    """The markdown table of :func:`main`'s results."""
    rates = results["base_rates"]
    lines = [f"Appearance sentences of the standard synthetic validation split, seed {results['seed']} "
             f"({results['videos']} videos). Other objects in those videos that share the referent's "
             + ", ".join(f"{a}: {rates[a]:.0%}" for a in ATTRIBUTES) + ".", "",
             "| model | sentences | right object | J when right | wrong picks | wrong, same size | "
             "wrong, same colour | wrong, same shape | wrong picks by the attributes that differ |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, m in results["models"].items():
        wrong = m["sentences"] - m["right"]
        same = m["wrong_with_same"]
        by = ", ".join(f"{k} {v}" for k, v in m["wrong_by_differing"].items())
        lines.append(f"| {name} | {m['sentences']} | {m['right'] / m['sentences']:.1%} | {m['j_when_right']:.3f} "
                     f"| {wrong} | {same['size']} | {same['colour']} | {same['shape']} | {by} |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", action="append", required=True, metavar="NAME=PATH",
                        help="a checkpoint to score (repeatable)")
    parser.add_argument("--seed", type=int, required=True, help="seed of the standard validation split")
    parser.add_argument("--videos", type=int, default=60, help="videos (default: 60)")
    parser.add_argument("--out", default="benchmarks/appearance_errors.json", help="results JSON (the .md beside it)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    pairs = []
    for item in args.checkpoint:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            parser.error(f"--checkpoint {item!r}: expected NAME=PATH")
        if not Path(path).is_file():
            parser.error(f"--checkpoint {item!r}: no file {path!r}")
        pairs.append((name, path))
    torch.set_num_threads(args.threads)

    from rvoslib.data.synthetic import generate_videos

    videos = generate_videos(args.videos, seed=args.seed, split="valid")
    results = {"seed": args.seed, "videos": args.videos, "base_rates": base_rates(videos), "models": {}}
    library = logging.getLogger("rvoslib")
    level = library.level
    library.setLevel(logging.WARNING)  # segment_video logs one line per video otherwise
    try:
        for name, path in pairs:
            log.info("scoring %s (%s)", name, path)
            results["models"][name] = score_model(path, videos)
    finally:
        library.setLevel(level)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(markdown(results), encoding="utf-8")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
