"""Does a model's motion grounding depend on how far objects move inside one window?

    python -m benchmarks.motion_stride --checkpoint data_samples/tiny_rvos/rvos-tiny-synthetic.pt \\
        --videos 40 --seed 301 --strides 1 2 3

Generates ``--videos`` hard synthetic videos (``--seed``: use a tuning seed, never one a reported
table uses) in memory and segments every sentence with ``segment_video`` keeping every
``stride``-th frame: a window of T kept frames then spans ``stride x (T - 1)`` source frames,
so a linear mover travels ``stride`` times further inside it. For each kind of sentence it
prints the mean J against the referent on the kept frames, the share of sentences whose mask
overlaps the referent more than any other object ("right object"), and the share whose referent
gets the highest mean probability over its pixels ("right choice", threshold-free). If motion sentences stay
at the same share at every stride, the model is not limited by how small the motion is.
"""

from __future__ import annotations

import argparse
import json
from typing import Optional, Sequence

import numpy as np


def score_video(video, masks: np.ndarray, indices: Sequence[int], probs: Optional[np.ndarray] = None
                ) -> list[tuple[str, float, bool, Optional[bool]]]:
    """(kind, J against the referent, right object, right choice) per expression of one synthetic video.

    masks: (K, T', H, W) bool predictions on the kept frames ``indices``. "Right object": the mask
    overlaps the referent more than any other object (a mask on no object is wrong). probs:
    (K, T', H, W) foreground probabilities, or None; "right choice" (None without probs): the
    referent has the highest mean probability over its own pixels, a threshold-free reading of
    which object the model prefers (it still says something when the masks are empty).
    """
    ids = video.id_maps[list(indices)]  # (T', H, W) object ids of the kept frames
    rows = []
    for k, (expression, mask) in enumerate(zip(video.expressions, masks)):
        truth = ids == expression["obj_id"]
        union = int((mask | truth).sum())
        j = float((mask & truth).sum()) / union if union else 1.0
        overlap = {o.obj_id: int((mask & (ids == o.obj_id)).sum()) for o in video.objects}
        best = max(overlap, key=overlap.get)
        right = overlap[best] > 0 and best == expression["obj_id"]
        choice = None
        if probs is not None:
            mean = {o.obj_id: float(probs[k][ids == o.obj_id].mean()) if (ids == o.obj_id).any() else -1.0
                    for o in video.objects}
            choice = max(mean, key=mean.get) == expression["obj_id"]
        rows.append((expression["kind"], j, right, choice))
    return rows


def same_axis_look_alikes(video, expression) -> int:
    """Objects that fit the sentence's described attributes and whose motion an unordered set of
    positions cannot tell from the referent's (left vs right; up, down, bouncing), the referent included."""
    from rvoslib.data.shapes import motion_axis

    attrs, own = expression["spec"]["attrs"], next(o for o in video.objects if o.obj_id == expression["obj_id"])
    return sum(all(getattr(o, k) == v for k, v in attrs.items()) and motion_axis(o.motion) == motion_axis(own.motion)
               for o in video.objects)


def needs_order(video, expression) -> bool:
    """A motion sentence whose referent has a same-axis look-alike (:func:`same_axis_look_alikes`):
    only the order of the frames tells them apart. A model that pools frames without order (stage 2's
    words read every frame) can resolve the other motion sentences."""
    return expression["kind"] == "motion" and same_axis_look_alikes(video, expression) > 1


def set_reader_chance(video, expression) -> float:
    """1 / :func:`same_axis_look_alikes`: the chance of a reader that sees which objects move along
    which axis but not which way."""
    return 1.0 / same_axis_look_alikes(video, expression)


def look_alike_chance(video) -> list[float]:
    """Per expression, 1 / (objects that fit its described attributes): a motion-blind reader's chance."""
    return [1.0 / sum(all(getattr(o, key) == value for key, value in e["spec"]["attrs"].items())
                      for o in video.objects) for e in video.expressions]


ORDER_KIND = "motion, order needed"  # the motion sentences of :func:`needs_order`, also counted under "motion"


def motion_stride(checkpoint: str, videos: int, seed: int, strides: Sequence[int], split: str = "valid",
                  same_axis: bool = False) -> dict:
    """``{stride: {kind: {"J": mean, "right_object": share, "right_choice": share, "chance": mean
    look-alike chance, "n": sentences}}}``. Kind "motion, order needed" (:func:`needs_order`) repeats
    the motion sentences that only the frames' order resolves; its "chance" is that of a reader who
    sees the positions without their order (:func:`set_reader_chance`).

    ``split``: the generator's split name; ``seed`` and ``split="train"`` regenerate the first
    ``videos`` training videos of ``rvoslib make-synthetic --hard --seed`` (does the model fit the
    videos it was trained on?)."""
    import torch

    from rvoslib.data.synthetic import generate_videos
    from rvoslib.inference import resolve_model, segment_video

    model, _ = resolve_model(checkpoint, device="cpu")
    clips = generate_videos(videos, seed=seed, split=split, hard=True, same_axis=same_axis)
    chances = [(e["kind"], c) for video in clips for e, c in zip(video.expressions, look_alike_chance(video))]
    chances += [(ORDER_KIND, set_reader_chance(video, e)) for video in clips for e in video.expressions
                if needs_order(video, e)]
    out = {}
    with torch.inference_mode():
        for stride in strides:
            rows = []
            for video in clips:
                result = segment_video(video.frames, [e["text"] for e in video.expressions], model,
                                       stride=stride, progress=False, return_logits=True)
                probs = torch.as_tensor(result.logits).float().sigmoid().numpy()
                scored = score_video(video, result.masks, result.frame_indices, probs)
                rows += scored + [(ORDER_KIND,) + row[1:] for row, e in zip(scored, video.expressions)
                                  if needs_order(video, e)]
            out[stride] = {kind: {"J": float(np.mean([r[1] for r in rows if r[0] == kind])),
                                  "right_object": float(np.mean([r[2] for r in rows if r[0] == kind])),
                                  "right_choice": float(np.mean([r[3] for r in rows if r[0] == kind])),
                                  "chance": float(np.mean([c for k, c in chances if k == kind])),
                                  "n": sum(r[0] == kind for r in rows)}
                           for kind in sorted({r[0] for r in rows})}
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="data_samples/tiny_rvos/rvos-tiny-synthetic.pt")
    parser.add_argument("--videos", type=int, default=40)
    parser.add_argument("--seed", type=int, default=301)
    parser.add_argument("--strides", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--split", default="valid", help='generator split: "train" scores training videos')
    parser.add_argument("--same-axis", action="store_true", help="videos of make-synthetic --hard --same-axis")
    args = parser.parse_args(argv)
    print(json.dumps(motion_stride(args.checkpoint, args.videos, args.seed, args.strides, args.split,
                                   args.same_axis), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
