"""How fine can a mask be when the head's logits live at stride s? (the mask head's resolution ceiling)

    python -m benchmarks.mask_resolution --seed 9933 --out benchmarks/mask_resolution.json

The tiny preset's mask head (``model.head.output_stride``, 4) predicts logits on a (S/s) x (S/s)
grid and upsamples them bilinearly to S x S before the 0.5 threshold. For every object and frame
of a standard synthetic validation split (the videos ``rvoslib make-synthetic --split valid
--seed SEED`` writes), this fits such a low-resolution logit map to the true mask (binary
cross-entropy through the same bilinear upsampling, Adam) and reports the IoU of the result: the
best J a head at that stride could reach if it were right everywhere else. Beside it, the
simpler map that average-pools the mask and upsamples the pooled fractions (no fitting).

Writes ``--out`` (JSON) and a markdown table beside it (``.md``).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rvoslib.metrics import jaccard

log = logging.getLogger("benchmarks.mask_resolution")

STRIDES = (2, 4, 8)


def _check(masks: torch.Tensor, stride: int) -> None:
    if masks.dim() != 3 or masks.shape[1] % stride or masks.shape[2] % stride:
        raise ValueError(f"masks must be (N, H, W) with H and W divisible by stride {stride}, got {tuple(masks.shape)}")


def pooled_iou(masks: torch.Tensor, stride: int) -> np.ndarray:
    """IoU of each (H, W) bool mask with its s x s average pool, upsampled bilinearly, > 0.5: (N,)."""
    _check(masks, stride)
    low = F.avg_pool2d(masks[:, None].float(), stride)  # (N, 1, H/s, W/s) covered fractions
    up = F.interpolate(low, size=masks.shape[1:], mode="bilinear", align_corners=False)[:, 0]
    return jaccard((up > 0.5).numpy(), masks.numpy())  # (N,), 1 where both are empty


def fitted_iou(masks: torch.Tensor, stride: int, steps: int = 400, lr: float = 0.5) -> np.ndarray:
    """IoU of each mask with the best logit map at stride s found by ``steps`` of Adam: (N,)."""
    _check(masks, stride)
    truth = masks[:, None].float()  # (N, 1, H, W)
    logits = torch.zeros(masks.shape[0], 1, masks.shape[1] // stride, masks.shape[2] // stride, requires_grad=True)
    optimizer = torch.optim.Adam([logits], lr=lr)
    for _ in range(steps):
        up = F.interpolate(logits, size=masks.shape[1:], mode="bilinear", align_corners=False)
        loss = F.binary_cross_entropy_with_logits(up, truth)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        up = F.interpolate(logits, size=masks.shape[1:], mode="bilinear", align_corners=False)[:, 0]
    return jaccard((up > 0).numpy(), masks.numpy())


def object_masks(videos) -> torch.Tensor:
    """Every object's mask in every frame of synthetic videos: (N, H, W) bool."""
    out = [video.id_maps == obj.obj_id for video in videos for obj in video.objects]  # each (T, H, W)
    return torch.from_numpy(np.concatenate(out))


def main(argv=None) -> int:
    from rvoslib.data.synthetic import generate_videos

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[2])
    parser.add_argument("--seed", type=int, required=True, help="seed of the standard validation split")
    parser.add_argument("--videos", type=int, default=60, help="videos (default: 60)")
    parser.add_argument("--out", type=Path, required=True, help="results JSON (the .md beside it)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    masks = object_masks(generate_videos(args.videos, seed=args.seed, split="valid"))
    rows = [{"stride": s, "pooled_j": float(pooled_iou(masks, s).mean()),
             "fitted_j": float(fitted_iou(masks, s).mean())} for s in STRIDES]
    result = {"seed": args.seed, "videos": args.videos, "object_frames": int(masks.shape[0]),
              "frame_size": list(masks.shape[1:]), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"Object masks of the standard synthetic validation split, seed {args.seed} ({args.videos} videos, "
             f"{masks.shape[0]} object-frames of {masks.shape[1]} x {masks.shape[2]} pixels). Mean J of the best "
             "logit map at each stride (fitted), and of the average-pooled mask (pooled), upsampled bilinearly.",
             "", "| logit stride | grid | fitted J | pooled J |", "|---|---|---|---|"]
    lines += [f"| {r['stride']} | {masks.shape[1] // r['stride']} x {masks.shape[2] // r['stride']} | "
              f"{r['fitted_j']:.3f} | {r['pooled_j']:.3f} |" for r in rows]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    log.info("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
