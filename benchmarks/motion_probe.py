"""Can the stage-3 encoder alone learn which of several look-alikes moves a given way?

    python -m benchmarks.motion_probe                       # defaults: seeds 501 / 502, 16 x 2000
    python -m benchmarks.motion_probe --features clip --readout fused --query text

An oracle-style probe of the temporal pathway. Clips are T=4 windows (gaps 1-3, as in
training) of hard synthetic videos, and only windows whose referent's motion is unique in
its video are used, so motion always decides the answer. The question is the referent's
motion class (one of 6). Each token gets a logit, trained with BCE (plus ``--dice``) against
the share of its patch the referent covers.

The options move the probe, one piece at a time, towards the full model:

- ``--features``: "pixels", a fixed random 8 x 8 patch embedding, the same for every variant;
  or "clip", the shipped tiny CLIP's frozen patch tokens.
- ``--readout``: how the question meets the tokens. "dot": dotted with each token's feature
  after the encoder. "fused": added to every token before it. "fusion": through the model's
  stage 2.
- ``--query``: "learned", a free vector per class; or "text", read by a trainable Linear from
  the frozen text tower's features of the motion phrase.
- ``--variants``: the encoder's value codes and attention (``VARIANTS``).

The encoder always has the tiny preset's sizes and a trainable Linear in front.

"Right object" on held-out videos (``--eval-seed``): the referent gets the highest mean
probability over the patches it covers. Chance is the mean of 1 / (objects on screen).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from typing import Optional, Sequence

import numpy as np

logger = logging.getLogger(__name__)

GRID = 8  # patches per side (64 px frames, 8 px patches)


def sample_window(num_frames: int, rng: np.random.Generator, T: int = 4, max_gap: int = 3) -> np.ndarray:
    """T sorted frame indices of one window, gaps drawn from 1..max_gap: (T,) int."""
    gaps = rng.integers(1, max_gap + 1, size=T - 1)
    start = int(rng.integers(0, num_frames - int(gaps.sum())))
    return start + np.concatenate([[0], np.cumsum(gaps)])


def pixel_labels(ids: np.ndarray, objects) -> np.ndarray:
    """Object ids (T, H, W) -> each pixel's index in ``objects`` (T, H, W) int8, -1 for the background."""
    label = np.full(ids.shape, -1, np.int8)
    for k, o in enumerate(objects):
        label[ids == o.obj_id] = k
    return label


def probe_windows(videos, rng: np.random.Generator, T: int = 4, max_gap: int = 3, labels: bool = False):
    """Windows of motion-unique referents: frames (N, T, 3, 64, 64) float, cover (N, T, K, 8, 8)
    patch coverage per object (K = max objects, zero for missing), motion class (N,), referent index (N,);
    with ``labels``, also each pixel's object index, (N, T, 64, 64) int8 (-1 for the background)."""
    from rvoslib.data.synthetic import MOTIONS

    frames, covers, motions, referents, pixels = [], [], [], [], []
    for video in videos:
        counts = {m: sum(o.motion == m for o in video.objects) for m in MOTIONS}
        for index, obj in enumerate(video.objects):
            if counts[obj.motion] != 1:
                continue
            picks = sample_window(len(video.frames), rng, T, max_gap)
            ids = video.id_maps[picks]  # (T, 64, 64)
            cover = np.stack([(ids == o.obj_id) for o in video.objects], axis=1).astype(np.float32)  # (T, K, 64, 64)
            cover = cover.reshape(T, len(video.objects), GRID, 8, GRID, 8).mean(axis=(3, 5))  # (T, K, 8, 8)
            padded = np.zeros((T, 6, GRID, GRID), np.float32)
            padded[:, :cover.shape[1]] = cover
            frames.append(video.frames[picks].transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
            covers.append(padded)
            motions.append(MOTIONS.index(obj.motion))
            referents.append(index)
            if labels:
                pixels.append(pixel_labels(ids, video.objects))  # (T, 64, 64)
    out = (np.stack(frames), np.stack(covers), np.array(motions), np.array(referents))
    return out + (np.stack(pixels),) if labels else out


def order_needed(videos) -> tuple[np.ndarray, np.ndarray]:
    """For the windows of :func:`probe_windows` (same order): whether another object of the video
    moves along the referent's axis (left/right; up/down/bouncing), so that only the frames' order
    tells them apart, (N,) bool; and the chance of a reader of unordered positions, (N,)
    1 / (objects on the referent's axis)."""
    from rvoslib.data.shapes import MOTIONS, motion_axis

    flags, chances = [], []
    for video in videos:
        counts = {m: sum(o.motion == m for o in video.objects) for m in MOTIONS}
        for obj in video.objects:
            if counts[obj.motion] != 1:
                continue
            same = sum(motion_axis(o.motion) == motion_axis(obj.motion) for o in video.objects)
            flags.append(same > 1)
            chances.append(1.0 / same)
    return np.array(flags, dtype=bool), np.array(chances)


def clip_patch_tokens(frames: np.ndarray, batch: int = 256) -> np.ndarray:
    """The shipped tiny CLIP's last-block patch tokens (after ln_post): (N, T, 3, 64, 64) -> (N, T, 64, 8, 8)."""
    import torch
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    from rvoslib.backbone import create_clip
    from rvoslib.config import tiny
    from rvoslib.runtime import TINY_CLIP_CHECKPOINT, find_sample

    backbone = tiny().model.backbone
    backbone.pretrained = str(find_sample(TINY_CLIP_CHECKPOINT))
    visual = create_clip(backbone).visual
    mean = torch.tensor(OPENAI_DATASET_MEAN)[:, None, None]
    std = torch.tensor(OPENAI_DATASET_STD)[:, None, None]
    flat = torch.from_numpy(frames).flatten(0, 1)  # (N*T, 3, 64, 64)
    out = []
    with torch.no_grad():
        for i in range(0, len(flat), batch):
            x = visual.conv1((flat[i:i + batch] - mean) / std).flatten(2).transpose(1, 2)  # (n, 64, w)
            cls = visual.class_embedding.expand(len(x), 1, -1)
            x = visual.ln_pre(torch.cat([cls, x], dim=1) + visual.positional_embedding)
            x = visual.ln_post(visual.transformer(x)[:, 1:])  # (n, 64, w)
            out.append(x.transpose(1, 2).reshape(len(x), -1, GRID, GRID))
    return torch.cat(out).reshape(*frames.shape[:2], -1, GRID, GRID).numpy()


def text_queries() -> "torch.Tensor":
    """The shipped tiny CLIP's frozen text features of each motion class: (6, D_t).

    Each is the mean word feature of the motion phrase in "the shape <phrase>" (first phrase of
    the generator's list), read by the text tower with no prompts, as stages 1-3 read words.
    """
    import torch

    from rvoslib.backbone import create_clip, get_tokenizer
    from rvoslib.config import tiny
    from rvoslib.data.expressions import motion_phrases
    from rvoslib.data.shapes import MOTIONS
    from rvoslib.runtime import TINY_CLIP_CHECKPOINT, find_sample
    from rvoslib.text_encoder import PromptedTextEncoder, tokenize

    cfg = tiny().model
    cfg.backbone.pretrained = str(find_sample(TINY_CLIP_CHECKPOINT))
    cfg.prompts.use_language = False
    text = PromptedTextEncoder(create_clip(cfg.backbone), cfg.prompts)
    tokens = tokenize([f"the shape {motion_phrases(m)[0]}" for m in MOTIONS], get_tokenizer(cfg.backbone))
    with torch.no_grad():
        out = text(tokens)
    keep = ~out["word_pad"]
    keep[:, :2] = False  # "the shape"
    return (out["words"] * keep[..., None]).sum(1) / keep.sum(1, keepdim=True)  # (6, D_t)


def build_probe(variant: str, dim: int = 64, seed: int = 0, readout: str = "dot", features: str = "pixels",
                query: str = "learned", fusion_sentence: str = "gate", decoder: bool = False):
    """The probe network for one variant (see ``VARIANTS``).

    readout "dot": each token's feature dotted with the query after the encoder; "fused": the query
    is added to every token before the encoder (as stage 2 mixes the sentence into the video) and a
    Linear reads each token's logit, so the encoder itself must match motion against the query.
    readout "fusion": as "fused", but the query meets the tokens through the model's stage 2
    (``DualFusion``, the query as a one-word sentence), as in the full model; ``fusion_sentence`` is its
    ``fusion.sentence`` ("gate", the paper's; "add"). ``decoder``: as in the full model, the model's
    shallow-feature decoder (``ShallowTextDecoder``: the input tokens read the question as a one-word
    sentence) is added to the encoder's output.
    features "pixels": the frozen random patch embedding runs here; "clip": the inputs already are
    the tiny CLIP's patch tokens (``clip_patch_tokens``), (B, T, 64, 8, 8).
    query "learned": a free vector per motion class; "text": a trainable Linear of the frozen text
    tower's features of the motion phrase (``text_queries``), as the model must read the sentence.
    """
    import torch
    from torch import nn

    from rvoslib.config import tiny
    from rvoslib.fusion import DualFusion
    from rvoslib.spatiotemporal import ShallowTextDecoder, SpatioTemporalEncoder

    st_cfg = replace(tiny().model.spatiotemporal, **VARIANTS[variant])

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            generator = torch.Generator().manual_seed(1234)  # the same frozen embedding for every variant
            self.embed = nn.Conv2d(3, dim, 8, stride=8)
            with torch.no_grad():
                self.embed.weight.copy_(torch.randn(self.embed.weight.shape, generator=generator) * 0.2)
                self.embed.bias.zero_()
            self.embed.requires_grad_(False)
            torch.manual_seed(seed)
            self.inp = nn.Linear(dim, dim)
            self.encoder = SpatioTemporalEncoder(dim, st_cfg)
            self.norm = nn.LayerNorm(dim)
            if query == "text":
                self.register_buffer("phrases", text_queries())  # (6, D_t)
                self.read_text = nn.Linear(self.phrases.shape[1], dim)
            else:
                self.embedding = nn.Embedding(6, dim)
            self.logit = nn.Linear(dim, 1)
            if readout == "fusion":
                self.fusion = DualFusion(dim, dim, replace(tiny().model.fusion, sentence=fusion_sentence))
            if decoder:
                self.decoder = ShallowTextDecoder(dim, st_cfg.layers, st_cfg.heads, st_cfg.ffn_dim)

        def query(self, motion):  # (B,) -> (B, d)
            return self.read_text(self.phrases[motion]) if query == "text" else self.embedding(motion)

        def forward(self, frames, motion):
            B, T = frames.shape[:2]
            x = self.embed(frames.flatten(0, 1)) if features == "pixels" else frames.flatten(0, 1)  # (B*T, d, 8, 8)
            x = self.inp(x.flatten(2).transpose(1, 2))  # (B*T, 64, d)
            x = x.transpose(1, 2).reshape(B, T, dim, GRID, GRID)  # (B, T, d, 8, 8)
            shallow = x
            if readout == "fused":
                x = x + self.query(motion)[:, None, :, None, None]
            if readout == "fusion":
                q = self.query(motion)  # (B, d): a one-word sentence
                x = self.fusion(x, q[:, None], None, q)["video"]  # (B, T, d, 8, 8)
            x = self.encoder(x)["layers"][-1]  # (B, T, d, 8, 8)
            if decoder:
                x = x + self.decoder(shallow, self.query(motion)[:, None], None)["layers"][-1]
            x = x.permute(0, 1, 3, 4, 2)  # (B, T, 8, 8, d)
            if readout in ("fused", "fusion"):
                return self.logit(self.norm(x)).squeeze(-1)  # (B, T, 8, 8)
            return torch.einsum("bthwc,bc->bthw", self.norm(x), self.query(motion)) * dim ** -0.5 * 4

    return Probe()


VARIANTS = {
    "cube-frame": {},
    "cube-frame, absolute position in values": {"value_position": "absolute"},
    "cube-frame, relative offsets in values": {"value_position": "relative"},
    "frame only": {"attention": "frame"},
}


def right_object(logits, covers, referents) -> np.ndarray:
    """(N,) bool: the referent has the highest mean probability over the patches it covers."""
    prob = logits.sigmoid().numpy()[:, :, None]  # (N, T, 1, 8, 8)
    weight = covers.sum(axis=(1, 3, 4))  # (N, K)
    score = (prob * covers).sum(axis=(1, 3, 4)) / np.maximum(weight, 1e-6)
    score[weight == 0] = -1.0
    return score.argmax(axis=1) == referents


def run_variant(variant: str, train, held_out, steps: int, batch: int, lr: float, seed: int,
                readout: str = "dot", features: str = "pixels", query: str = "learned",
                dice: float = 0.0, order: Optional[np.ndarray] = None, fusion_sentence: str = "gate",
                decoder: bool = False) -> dict:
    """Train one variant; returns its held-out right-object share, loss and time.

    dice: weight of a soft Dice term per clip added to the BCE (the model's own loss has 5 x Dice
    + 2 x BCE), to see whether Dice's reward for covering every candidate slows the choice.
    """
    import torch
    import torch.nn.functional as F

    model = build_probe(variant, seed=seed, readout=readout, features=features, query=query,
                        fusion_sentence=fusion_sentence, decoder=decoder)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    frames, covers, motions, _ = (torch.from_numpy(a) for a in train)
    targets = covers.gather(2, torch.from_numpy(train[3])[:, None, None, None, None]
                            .expand(-1, covers.shape[1], 1, GRID, GRID)).squeeze(2)  # (N, T, 8, 8)
    rng = np.random.default_rng(seed)
    start, losses = time.process_time(), []
    for step in range(steps):
        idx = torch.from_numpy(rng.integers(0, len(frames), size=batch))
        logits, target = model(frames[idx], motions[idx]), targets[idx]
        loss = F.binary_cross_entropy_with_logits(logits, target)
        if dice:
            prob = logits.sigmoid().flatten(1)
            overlap = 2 * (prob * target.flatten(1)).sum(1) + 1
            loss = loss + dice * (1 - overlap / (prob.sum(1) + target.flatten(1).sum(1) + 1)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(torch.from_numpy(held_out[0][i:i + 64]), torch.from_numpy(held_out[2][i:i + 64]))
                            for i in range(0, len(held_out[0]), 64)])
    right = right_object(logits, held_out[1], held_out[3])
    extra = {} if order is None else {"right_object_order_needed": float(right[order].mean())}
    return {"right_object": float(right.mean()), "n": int(len(right)), **extra,
            "final_loss": float(np.mean(losses[-50:])), "cpu_s": time.process_time() - start}


def add_probe_arguments(parser: argparse.ArgumentParser, steps: int, batch: int) -> None:
    """The data and budget options every probe takes: videos, seeds, steps and batch."""
    parser.add_argument("--train-videos", type=int, default=600)
    parser.add_argument("--eval-videos", type=int, default=150)
    parser.add_argument("--seed", type=int, default=501, help="training videos and initialisation")
    parser.add_argument("--eval-seed", type=int, default=502, help="held-out videos")
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--batch", type=int, default=batch)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_probe_arguments(parser, steps=2000, batch=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--readout", default="dot", choices=("dot", "fused", "fusion"),
                        help="how the query meets the tokens (see build_probe)")
    parser.add_argument("--features", default="pixels", choices=("pixels", "clip"),
                        help="a frozen random patch embedding, or the shipped tiny CLIP's patch tokens")
    parser.add_argument("--query", default="learned", choices=("learned", "text"),
                        help="a free vector per motion class, or read from the frozen text tower's words")
    parser.add_argument("--fusion-sentence", default="gate", choices=("gate", "add"),
                        help="with --readout fusion: stage 2's fusion.sentence (the paper's gate, or add)")
    parser.add_argument("--decoder", action="store_true",
                        help="add the model's shallow-feature decoder to the encoder's output")
    parser.add_argument("--dice", type=float, default=0.0, help="weight of a soft Dice term beside the BCE")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    import torch

    from rvoslib.data.synthetic import generate_videos

    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    train = probe_windows(generate_videos(args.train_videos, seed=args.seed, hard=True), rng)
    eval_videos = generate_videos(args.eval_videos, seed=args.eval_seed, split="valid", hard=True)
    held_out = probe_windows(eval_videos, np.random.default_rng(args.eval_seed))
    order, order_chance = order_needed(eval_videos)
    if args.features == "clip":
        train = (clip_patch_tokens(train[0]),) + train[1:]
        held_out = (clip_patch_tokens(held_out[0]),) + held_out[1:]
    chance = float(np.mean(1.0 / (held_out[1].sum(axis=(1, 3, 4)) > 0).sum(axis=1)))
    results = {"chance": chance, "order_needed": {"windows": int(order.sum()), "chance": float(order_chance[order].mean())},
               "train_windows": len(train[0]), "readout": args.readout, "features": args.features, "query": args.query, "dice": args.dice,
               "fusion_sentence": args.fusion_sentence, "decoder": args.decoder,
               "seeds": {"train": args.seed, "held_out": args.eval_seed}, "steps": args.steps, "variants": {}}
    print(f"{len(train[0])} training windows, {len(held_out[0])} held-out; chance {chance:.3f}")
    for variant in args.variants:
        results["variants"][variant] = row = run_variant(variant, train, held_out, args.steps, args.batch,
                                                         args.lr, args.seed, args.readout, args.features,
                                                         args.query, args.dice, order, args.fusion_sentence,
                                                         args.decoder)
        print(f"{variant:34s} right object {row['right_object']:.3f}  (order needed: "
              f"{row['right_object_order_needed']:.3f}, chance {results['order_needed']['chance']:.3f})  "
              f"loss {row['final_loss']:.4f}  "
              f"{row['cpu_s']:.0f} CPU s", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
    return results


if __name__ == "__main__":
    main()
