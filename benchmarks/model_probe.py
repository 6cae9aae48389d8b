"""The whole tiny VLP-RVOS in the motion probe's setting: does the full model learn the order there?

    python -m benchmarks.model_probe --steps 4000 --batch 4 --json runs/model_probe.json
    python -m benchmarks.model_probe --loss bce --optim probe            # one piece at a time

``benchmarks.motion_probe`` trains stage 3 alone (behind ``add`` stage 2, with the shallow decoder
and Dice) on the frozen tiny CLIP's final patch tokens, and it learns which of two look-alikes on
the same axis moves which way. The full model, trained by ``rvoslib train`` on such videos with the
oracle motion code (``benchmarks.motion_oracle``), stays at chance. This benchmark closes the gap
from the other side: it trains the real ``VLPRVOS`` (tiny preset, built through ``build_model``) on
the probe's own windows and questions, with the probe's optimizer and loop, and scores it the
probe's way. So if it learns the order here, what stops ``rvoslib train`` is its data or its loop
(sampling, history, schedule); if not, a piece of the model is, and the options take pieces away:

- ``--question``: "oracle", the sentence "the shape <motion phrase>" with the oracle motion code
  added to its word and sentence features (as ``motion_oracle train``); "text", the same sentence
  read by the model's own prompted text tower alone.
- ``--sentences``: "probe", every training window is a motion-unique referent asked by the
  question above; "real", every motion sentence the generator wrote (with its attribute words and
  templates, as ``rvoslib train`` reads them; its referent's motion need not be unique), one window
  each. Held-out windows always use the probe's questions.
- ``--windows``: with ``--sentences real``, "fixed", one window per sentence drawn once; "fresh", a new
  window of the sentence's video at every use, as ``rvoslib train`` re-draws each item's frames every
  epoch.
- ``--flip``: flip half of the training windows left-right, with "left" and "right" swapped in the
  sentence, as ``rvoslib train``'s augmentation does.
- ``--loss``: "model", the model's loss (``compute_losses``: 2 x BCE + 5 x Dice on the mask and on
  every auxiliary layer, and the pixel-text similarity terms); "bce", pixel BCE on the final mask only.
- ``--optim``: "probe", AdamW at ``--lr`` (weight decay 1e-4, no clipping, constant rate) as the
  probe trains; "trainer", ``rvoslib train``'s optimizer (its parameter groups, warm-up, step decay
  and gradient clipping from the tiny preset's ``train`` section, with ``train.steps`` = ``--steps``).
- ``--same-axis``: train on ``--hard --same-axis`` videos (every pair of look-alikes moves along one
  axis, as in the order-only runs of ``motion_oracle``), so that every training window needs the order;
  held-out windows stay the probe's.
- ``--max-gap``: largest gap between a training window's frames (the probe's 3 by default). ``rvoslib
  train`` with two-clip history training samples 2T = 8 frames of a 12-frame synthetic video, which
  shrinks its gaps to 1 (``sample_train_indices``), so its windows see a third of the probe's motion
  on average; held-out windows keep gaps 1-3.
- ``--save``: also write the trained model as a checkpoint, so that ``motion_oracle stride`` can score
  it the way it scores ``rvoslib train`` runs (whole videos, online windows; saved with
  ``train.history_training=off``, as no history was trained, so inference gives every window the
  learned initial tokens).
- ``--set``: overrides of the tiny preset (``KEY=VALUE``), applied after this benchmark's defaults
  ``model.fusion.sentence=add`` and ``model.spatiotemporal.value_position=relative``.

"Right object" on held-out windows: the referent gets the highest mean mask probability over its
pixels in the window. "Order needed": windows where another object moves on the referent's axis.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import time
from typing import Callable, Optional, Sequence

import numpy as np

from benchmarks.motion_probe import add_probe_arguments, order_needed, probe_windows

logger = logging.getLogger(__name__)

DEFAULTS = ("model.fusion.sentence=add", "model.spatiotemporal.value_position=relative")


def questions() -> list[str]:
    """One sentence per motion class (``MOTIONS`` order): "the shape <first phrase>"."""
    from rvoslib.data.expressions import motion_phrases
    from rvoslib.data.shapes import MOTIONS

    return [f"the shape {motion_phrases(m)[0]}" for m in MOTIONS]


def motion_sentences(videos) -> list[tuple[int, int, str]]:
    """(video index, referent index, sentence) of every motion sentence of ``videos``."""
    out = []
    for v, video in enumerate(videos):
        index = {o.obj_id: k for k, o in enumerate(video.objects)}
        out += [(v, index[e["obj_id"]], e["text"]) for e in video.expressions if e["kind"] == "motion"]
    return out


def draw_window(video, rng: np.random.Generator, T: int = 4, max_gap: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A random window of ``video``: frames (T, 3, 64, 64) float in [0, 1] and pixel labels (T, 64, 64) int8."""
    from benchmarks.motion_probe import pixel_labels, sample_window

    picks = sample_window(len(video.frames), rng, T, max_gap)
    frames = video.frames[picks].transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    return frames, pixel_labels(video.id_maps[picks], video.objects)


def sentence_windows(videos, rng: np.random.Generator, T: int = 4, max_gap: int = 3):
    """One window per motion sentence of ``videos``: frames (N, T, 3, 64, 64) float, None, None,
    referent index (N,), pixel labels (N, T, 64, 64) int8 (as ``probe_windows(labels=True)``), and
    the sentences (N,)."""
    sources = motion_sentences(videos)
    windows = [draw_window(videos[v], rng, T, max_gap) for v, _, _ in sources]
    return (np.stack([f for f, _ in windows]), None, None, np.array([r for _, r, _ in sources]),
            np.stack([lab for _, lab in windows]), [t for _, _, t in sources])


def fresh_windows(videos, max_gap: int = 3):
    """``draw(i, rng)``: a new window of motion sentence i's video each time it is called (as
    ``rvoslib train`` re-draws each item's frames every epoch), frames (T, 3, 64, 64) float and the
    referent's mask (T, 64, 64) float."""
    sources = motion_sentences(videos)

    def draw(i: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        video, referent, _ = sources[i]
        frames, labels = draw_window(videos[video], rng, max_gap=max_gap)
        return frames, (labels == referent).astype(np.float32)

    return draw


def flip_some(frames, masks, sentences: Sequence[str], flipped):
    """Flip the rows ``flipped`` (B,) bool left-right: frames (B, T, 3, S, S), masks (B, T, S, S), and
    "left" <-> "right" in their sentences (``swap_left_right``, as ``rvoslib train`` does)."""
    import torch

    from rvoslib.data.transforms import swap_left_right

    frames = torch.where(flipped[:, None, None, None, None], frames.flip(-1), frames)
    masks = torch.where(flipped[:, None, None, None], masks.flip(-1), masks)
    return frames, masks, [swap_left_right(t) if f else t for t, f in zip(sentences, flipped.tolist())]


def right_object_pixels(logits, labels: np.ndarray, referents: np.ndarray) -> np.ndarray:
    """(N,) bool: the referent has the highest mean probability over its pixels.

    logits (N, T, H, W); labels (N, T, H, W) object index per pixel (-1 background); referents (N,).
    """
    prob = logits.sigmoid().numpy()
    objects = int(labels.max()) + 1
    score = np.full((len(prob), objects), -1.0)
    for k in range(objects):
        mask = labels == k  # (N, T, H, W)
        area = mask.sum(axis=(1, 2, 3))
        score[:, k] = np.where(area > 0, (prob * mask).sum(axis=(1, 2, 3)) / np.maximum(area, 1), -1.0)
    return score.argmax(axis=1) == referents


def question_context(question: str):
    """The context to build, train and run the model in: ``oracle_text()`` for "oracle" (the patch
    holds only inside it, for the model's forward as well as its construction), else a no-op."""
    from benchmarks.motion_oracle import oracle_text

    return oracle_text() if question == "oracle" else contextlib.nullcontext()


def build(overrides: Sequence[str]):
    """The tiny preset's config with ``DEFAULTS`` and ``overrides``, and its model on the shipped
    tiny CLIP (build it inside :func:`question_context`)."""
    from rvoslib.config import apply_overrides, tiny
    from rvoslib.model import build_model
    from rvoslib.runtime import TINY_CLIP_CHECKPOINT, find_sample

    cfg = apply_overrides(tiny(), list(DEFAULTS) + list(overrides))
    cfg.model.backbone.pretrained = str(find_sample(TINY_CLIP_CHECKPOINT))
    return cfg, build_model(cfg.model)


def normalise(frames):
    """(B, T, 3, S, S) in [0, 1] -> CLIP's mean/std normalisation, as the datasets give frames."""
    import torch
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    mean = torch.tensor(OPENAI_DATASET_MEAN)[:, None, None]
    std = torch.tensor(OPENAI_DATASET_STD)[:, None, None]
    return (frames - mean) / std


def train_and_score(cfg, model, train, held_out, order: np.ndarray, steps: int, batch: int, lr: float,
                    seed: int, loss: str = "model", optim: str = "probe", log_every: int = 500,
                    sentences: Optional[Sequence[str]] = None, flip: bool = False,
                    draw: Optional[Callable] = None) -> dict:
    """Train ``model`` on the windows ``train`` and score it on the probe windows ``held_out`` (see the
    module docstring). ``sentences``: one per training window (default: the probe's question of its
    motion); ``flip``: the left-right flip augmentation; ``draw``: re-draw window i's frames and mask
    at every use (``fresh_windows``) instead of using the fixed ones."""
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    from rvoslib.losses import compute_losses
    from rvoslib.schedule import build_optimizer, build_scheduler

    frames, _, motions, referents, labels = train[:5]
    tokens = model.tokenize(questions())  # (6, L_ctx)
    if sentences is None:
        sentences = [questions()[m] for m in motions]
    masks = torch.from_numpy(labels == referents[:, None, None, None]).float()  # (N, T, 64, 64)
    frames = torch.from_numpy(frames)
    if optim == "trainer":
        cfg.train.steps = steps
        optimizer = build_optimizer(model, cfg.train)
        scheduler, max_norm = build_scheduler(optimizer, cfg.train), cfg.train.clip_grad
    else:
        params = [p for _, p in model.trainable_named_parameters()]
        optimizer, scheduler, max_norm = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4), None, 0.0
    rng = np.random.default_rng(seed)
    start, losses = time.process_time(), []
    model.train()
    for step in tqdm(range(steps), desc="model probe", mininterval=30):
        idx = torch.from_numpy(rng.integers(0, len(frames), size=batch))
        text = [sentences[i] for i in idx.tolist()]
        if draw is None:
            window, target = frames[idx], masks[idx]
        else:
            drawn = [draw(i, rng) for i in idx.tolist()]
            window = torch.from_numpy(np.stack([f for f, _ in drawn]))  # (B, T, 3, 64, 64)
            target = torch.from_numpy(np.stack([m for _, m in drawn]))  # (B, T, 64, 64)
        if flip:
            window, target, text = flip_some(window, target, text, torch.from_numpy(rng.random(batch) < 0.5))
        out = model(normalise(window), model.tokenize(text))
        if loss == "model":
            total = compute_losses(out, {"masks": target}, cfg.loss)["total"]
        else:
            total = F.binary_cross_entropy_with_logits(out["pred_masks"], target)
        optimizer.zero_grad()
        total.backward()
        if max_norm:
            torch.nn.utils.clip_grad_norm_([p for _, p in model.trainable_named_parameters()], max_norm)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        losses.append(total.item())
        if log_every and (step + 1) % log_every == 0:
            logger.info("step %d: loss %.4f", step + 1, float(np.mean(losses[-log_every:])))
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(normalise(torch.from_numpy(held_out[0][i:i + 32])),
                                  tokens[torch.from_numpy(held_out[2][i:i + 32])])["pred_masks"]
                            for i in range(0, len(held_out[0]), 32)])
    right = right_object_pixels(logits, held_out[4], held_out[3])
    return {"right_object": float(right.mean()), "right_object_order_needed": float(right[order].mean()),
            "n": int(len(right)), "final_loss": float(np.mean(losses[-50:])),
            "loss_curve": [float(np.mean(losses[i:i + 100])) for i in range(0, len(losses), 100)],
            "cpu_s": time.process_time() - start}


def main(argv: Optional[Sequence[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_probe_arguments(parser, steps=4000, batch=4)
    parser.add_argument("--lr", type=float, default=1e-3, help="with --optim probe")
    parser.add_argument("--question", default="oracle", choices=("oracle", "text"))
    parser.add_argument("--sentences", default="probe", choices=("probe", "real"))
    parser.add_argument("--flip", action="store_true", help="flip half the training windows (and left/right)")
    parser.add_argument("--loss", default="model", choices=("model", "bce"))
    parser.add_argument("--optim", default="probe", choices=("probe", "trainer"))
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--same-axis", action="store_true", help="train on --hard --same-axis videos")
    parser.add_argument("--max-gap", type=int, default=3, help="largest gap between training frames")
    parser.add_argument("--windows", default="fixed", choices=("fixed", "fresh"),
                        help="with --sentences real: one window per sentence, or a new one at every use")
    parser.add_argument("--save", default=None, help="also write the trained model here (a checkpoint)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    fresh = args.windows == "fresh"
    if fresh and args.sentences != "real":
        parser.error("--windows fresh needs --sentences real")
    import torch

    from rvoslib.data.synthetic import generate_videos

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    videos = generate_videos(args.train_videos, seed=args.seed, hard=True, same_axis=args.same_axis)
    if args.sentences == "real":
        train = sentence_windows(videos, rng, max_gap=args.max_gap)
    else:
        train = probe_windows(videos, rng, max_gap=args.max_gap, labels=True)
    eval_videos = generate_videos(args.eval_videos, seed=args.eval_seed, split="valid", hard=True)
    held_out = probe_windows(eval_videos, np.random.default_rng(args.eval_seed), labels=True)
    order, order_chance = order_needed(eval_videos)
    chance = float(np.mean(1.0 / (held_out[1].sum(axis=(1, 3, 4)) > 0).sum(axis=1)))
    with question_context(args.question):
        cfg, model = build(args.overrides)
        row = train_and_score(cfg, model, train, held_out, order, args.steps, args.batch, args.lr, args.seed,
                              args.loss, args.optim, sentences=train[5] if args.sentences == "real" else None,
                              flip=args.flip, draw=fresh_windows(videos, args.max_gap) if fresh else None)
        if args.save:
            from rvoslib.checkpoint import save_checkpoint

            cfg.train.history_training = "off"
            save_checkpoint(args.save, model, cfg, step=args.steps)
    results = {"chance": chance, "order_needed": {"windows": int(order.sum()), "chance": float(order_chance[order].mean())},
               "train_windows": len(train[0]), "question": args.question, "loss": args.loss, "optim": args.optim,
               "same_axis": args.same_axis, "max_gap": args.max_gap, "sentences": args.sentences,
               "windows": args.windows, "flip": args.flip,
               "overrides": list(DEFAULTS) + args.overrides, "seeds": {"train": args.seed, "held_out": args.eval_seed},
               "steps": args.steps, "batch": args.batch, **row}
    print(f"right object {row['right_object']:.3f} (chance {chance:.3f}); order needed "
          f"{row['right_object_order_needed']:.3f} (chance {results['order_needed']['chance']:.3f}); "
          f"loss {row['final_loss']:.4f}; {row['cpu_s']:.0f} CPU s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
    return results


if __name__ == "__main__":
    main()
