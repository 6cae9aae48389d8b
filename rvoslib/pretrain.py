"""Tiny contrastive vision-language pretraining of the "rvos-tiny" open_clip CLIP.

Real CLIP weights cannot be downloaded offline, so to show at toy scale what a
*pretrained* frozen CLIP brings to RVOS we make one: open_clip's own architecture at
toy size ("rvos-tiny": ViT width 64, 4 layers, patch 8, S=64; text width 64, 4 layers,
context 32; open_clip's BPE tokenizer), trained like CLIP on synthetic image-caption
pairs of coloured shapes ("a small red circle", :func:`rvoslib.data.synthetic.make_caption_pairs`):

- the image and text towers are trained from scratch with open_clip's contrastive loss
  (``open_clip.loss.ClipLoss``) and CLIP's learned temperature ``logit_scale``;
- images are normalised with CLIP's mean/std, captions tokenised by
  ``open_clip.get_tokenizer("rvos-tiny")``;
- AdamW (open_clip's rule: no weight decay on gains, biases, 1-D parameters and
  ``logit_scale``), linear warm-up then cosine decay, a tqdm bar showing the loss;
- every batch holds *distinct* captions (one random image per caption). With 2 x 6 x 4 =
  48 captions, a random batch would contain repeated captions, which the CLIP loss
  counts as negatives of each other (false negatives); distinct captions keep its
  targets exact. So ``batch_size`` is at most the number of distinct captions.

The result is saved as open_clip checkpoints are: a plain state dict (fp16 tensors,
readable by ``torch.load(weights_only=True)``), so that
``open_clip.create_model("rvos-tiny", pretrained=PATH)`` and
``rvoslib.backbone.create_clip(BackboneConfig("rvos-tiny", pretrained=PATH, image_size=64))``
load it exactly as they load real CLIP weights. A JSON sidecar next to it records the
command, the settings, the loss and what was measured, on the saved fp16 weights, with
held-out pairs (made with another seed):

- image->text top-1 retrieval over all distinct captions, overall and per attribute;
- two checks of the *patch* tokens, which the RVOS model reads (not only the pooled
  feature), on two-object images: text->patch pointing (does the caption's best-matching
  final patch lie on its object?) and per-block linear probes (can a patch's token tell
  the colour, shape and size of the object under it?).

The same measures for the randomly initialised model are stored beside them as the baseline.

Command line (wired into ``rvoslib pretrain``): :func:`add_arguments` and :func:`run_from_args`,
or :func:`run` with an argv list.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import math
import os
import platform
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)

MODEL_NAME = "rvos-tiny"
IMAGE_SIZE = 64
DEFAULT_OUT = "data_samples/tiny_clip/rvos-tiny-shapes.pt"
EVAL_SEED_OFFSET = 10_000  # held-out pairs use seed + this, so they never share the training generator
MIN_EVAL = 20  # fewest held-out pairs the evaluation accepts

# The settings of the shipped checkpoint (data_samples/tiny_clip/), also the CLI defaults.
DEFAULTS = dict(steps=1500, batch_size=48, seed=0, lr=2e-3, num_pairs=20_000, warmup_steps=150,
                weight_decay=0.1, num_eval=1000)


# --------------------------------------------------------------------------- model and data


def build_tiny_clip(seed: int) -> nn.Module:
    """A randomly initialised open_clip "rvos-tiny" CLIP, trainable, initialised from ``seed``.

    The caller's torch RNG state is left untouched.
    """
    import open_clip

    from rvoslib.backbone import register_tiny_config

    register_tiny_config()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.create_model(MODEL_NAME, pretrained=None)
    return model


@functools.lru_cache(maxsize=1)
def get_tokenizer():
    """open_clip's BPE tokenizer for "rvos-tiny" (built once): list of B strings -> LongTensor (B, 32)."""
    import open_clip

    from rvoslib.backbone import register_tiny_config

    register_tiny_config()
    return open_clip.get_tokenizer(MODEL_NAME)


def normalize_images(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 images (B, S, S, 3) -> float (B, 3, S, S) normalised with CLIP's mean/std."""
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    x = torch.as_tensor(np.asarray(images)).permute(0, 3, 1, 2).float() / 255.0  # (B, 3, S, S)
    mean = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def object_masks(images: np.ndarray) -> np.ndarray:
    """Object pixels of caption-pair images (B, S, S, 3) uint8 -> (B, S, S) bool.

    Each image is one shape on a plain grey background that never covers the top-left
    pixel, so the object is every pixel whose colour differs from that corner.
    """
    images = np.asarray(images)
    return np.any(images != images[:, :1, :1, :], axis=-1)


def caption_groups(captions: Sequence[str]) -> list[np.ndarray]:
    """Indices of the pairs sharing each distinct caption (sorted by caption): a list of 1-D arrays."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, caption in enumerate(captions):
        groups[caption].append(i)
    return [np.asarray(groups[c]) for c in sorted(groups)]


def sample_batch(groups: Sequence[np.ndarray], batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """``batch_size`` pair indices with distinct captions: random captions, one random image each."""
    chosen = rng.choice(len(groups), size=batch_size, replace=False)
    return np.array([rng.choice(groups[g]) for g in chosen])


# --------------------------------------------------------------------------- optimisation


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups as open_clip trains CLIP: no decay on 1-D tensors, norms, biases, logit_scale."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        exclude = p.ndim < 2 or "ln" in name or "bias" in name or "logit_scale" in name
        (no_decay if exclude else decay).append(p)
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor at ``step``: linear warm-up to 1 over ``warmup`` steps, then cosine to 0."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def clamp_logit_scale_(model: nn.Module, max_scale: float = 100.0) -> None:
    """Clamp the learned temperature as CLIP does: exp(logit_scale) <= 100."""
    with torch.no_grad():
        model.logit_scale.clamp_(0, math.log(max_scale))


def train_step(model: nn.Module, loss_fn: nn.Module, optimizer: torch.optim.Optimizer,
               images: torch.Tensor, tokens: torch.Tensor) -> float:
    """One contrastive step on images (B, 3, S, S) and tokens (B, L_ctx); returns the loss."""
    image_features, text_features, logit_scale = model(images, tokens)  # (B, E), (B, E), ()
    loss = loss_fn(image_features, text_features, logit_scale)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    clamp_logit_scale_(model)
    return loss.item()


# --------------------------------------------------------------------------- evaluation


@contextmanager
def eval_mode(model: nn.Module):
    """Run the block with ``model`` in eval mode and no gradients; restore its mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


@torch.no_grad()
def encode_images(model: nn.Module, images: np.ndarray, batch_size: int = 256) -> torch.Tensor:
    """uint8 images (B, S, S, 3) -> unit-norm image embeddings (B, E)."""
    device = next(model.parameters()).device
    chunks = [model.encode_image(normalize_images(images[i:i + batch_size]).to(device), normalize=True)
              for i in range(0, len(images), batch_size)]
    return torch.cat(chunks).float()


@torch.no_grad()
def encode_captions(model: nn.Module, captions: Sequence[str]) -> torch.Tensor:
    """B captions -> unit-norm text embeddings (B, E)."""
    device = next(model.parameters()).device
    tokens = get_tokenizer()(list(captions)).to(device)  # (B, L_ctx)
    return model.encode_text(tokens, normalize=True).float()


def retrieval_accuracy(model: nn.Module, images: np.ndarray, captions: Sequence[str],
                       candidate_captions: Sequence[str], labels: Sequence[dict]) -> dict:
    """Image->text top-1 retrieval among all candidate captions (zero-shot classification style).

    Args:
        model: an open_clip CLIP (any device); evaluated in eval mode, no gradients.
        images: (B, S, S, 3) uint8.
        captions: B true captions.
        candidate_captions: the C captions to choose from (e.g. every distinct caption).
        labels: B dicts of attribute -> value ({"shape", "colour", "size"}).
    Returns:
        {"accuracy", "chance", "per_attribute": {attr: acc}, "per_attribute_chance": {attr: 1/#values},
        "num_images", "num_candidates"}. An attribute counts as right when the label's value
        is a word of the retrieved caption.
    """
    with eval_mode(model):
        image_emb = encode_images(model, images)  # (B, E)
        text_emb = encode_captions(model, candidate_captions)  # (C, E)
    best = (image_emb @ text_emb.T).argmax(dim=1).cpu().numpy()  # (B,)
    predicted = [candidate_captions[j] for j in best]
    correct = np.array([p == c for p, c in zip(predicted, captions)])
    attributes = sorted(labels[0]) if labels else []
    per_attr = {a: float(np.mean([lab[a] in p.split() for lab, p in zip(labels, predicted)])) for a in attributes}
    chance_attr = {a: 1.0 / len({lab[a] for lab in labels}) for a in attributes}
    return {"accuracy": float(correct.mean()), "chance": 1.0 / len(candidate_captions),
            "per_attribute": per_attr, "per_attribute_chance": chance_attr,
            "num_images": len(images), "num_candidates": len(candidate_captions)}


# Patch tokens. The RVOS model reads patch tokens, so two checks on two-object images
# (the training images show one object): does a caption's best-matching final patch fall on
# its object (text->patch pointing), and does a linear probe read the attributes of the
# object under a patch from that patch's token, block by block?


def two_object_composites(images: np.ndarray, captions: Sequence[str], seed: int = 0
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two-object images: each image gets the object of a partner image pasted in.

    Partners are a permutation drawn with ``seed``; pairs with the same caption or with
    objects closer than one pixel are skipped. Each composite gives two queries, one per object.
    Returns composites (M, S, S, 3) uint8, the queried object's mask (Q, S, S) bool, the
    other object's mask (Q, S, S) and ``source`` (Q,): the index into ``images`` of the
    queried object's pair; Q = 2M and query q is about composite q // 2.
    """
    masks = object_masks(images)  # (B, S, S)
    partner = np.random.default_rng([seed, 2]).permutation(len(images))
    composites, targets, others, source = [], [], [], []
    for i, j in enumerate(partner):
        grown = np.pad(masks[j], 1)  # j's mask dilated by one pixel: a gap is required
        grown = grown[1:-1, 1:-1] | grown[:-2, 1:-1] | grown[2:, 1:-1] | grown[1:-1, :-2] | grown[1:-1, 2:]
        if captions[i] == captions[j] or (grown & masks[i]).any():
            continue
        image = images[i].copy()
        image[masks[j]] = images[j][masks[j]]
        composites.append(image)
        targets += [masks[i], masks[j]]
        others += [masks[j], masks[i]]
        source += [i, j]
    if not composites:
        raise ValueError(f"no two-object composites could be made from {len(images)} pairs; use more pairs")
    return np.stack(composites), np.stack(targets), np.stack(others), np.asarray(source)


def patch_coverage(masks: np.ndarray, grid: int) -> np.ndarray:
    """Fraction of each patch's pixels inside the mask: (B, S, S) bool -> (B, grid, grid) float."""
    b, height, width = masks.shape
    cells = masks.reshape(b, grid, height // grid, grid, width // grid)  # (B, h, ph, w, pw)
    return cells.mean(axis=(2, 4))


def block_patch_tokens(model: nn.Module, images: np.ndarray, batch_size: int = 256) -> list[torch.Tensor]:
    """Patch tokens after every ViT block: uint8 (B, S, S, 3) -> list over blocks of (B, N, D_v)."""
    device = next(model.parameters()).device
    chunks = []
    with eval_mode(model):
        for i in range(0, len(images), batch_size):
            x = normalize_images(images[i:i + batch_size]).to(device)  # (b, 3, S, S)
            out = model.visual.forward_intermediates(x, intermediates_only=True, output_fmt="NLC")
            chunks.append([t.float().cpu() for t in out["image_intermediates"]])  # each (b, N, D_v)
    return [torch.cat(per_block) for per_block in zip(*chunks)]


def dense_features(model: nn.Module, images: np.ndarray) -> torch.Tensor:
    """Final patch tokens in the joint embedding space: uint8 (B, S, S, 3) -> unit-norm (B, N, E).

    The tokens go through the same ``ln_post`` and ``proj`` as the pooled feature, so they
    can be compared with text embeddings (MaskCLIP-style dense features).
    """
    visual = model.visual
    with eval_mode(model):
        last = block_patch_tokens(model, images)[-1].to(visual.proj.device)  # (B, N, D_v)
        dense = visual.ln_post(last) @ visual.proj  # (B, N, E)
    return nn.functional.normalize(dense, dim=-1).float().cpu()


def two_object_pointing(model: nn.Module, images: np.ndarray, captions: Sequence[str], seed: int = 0) -> dict:
    """Does a caption's best-matching final patch fall on *its* object when two are shown?

    On :func:`two_object_composites`, take for each caption the patch whose dense feature
    (:func:`dense_features`) is closest to the caption's embedding; a hit is a patch covered
    more by the named object than by the other one. (With one object on a plain background
    even random features "point" at it, since all background patches are alike.)
    Returns {"hit_rate", "chance": the hit rate of a random patch on either object,
    "on_other_object" and "on_background": where the other top patches fall, "num_queries"}.
    """
    composites, targets, others, source = two_object_composites(images, captions, seed)
    feats = dense_features(model, composites)  # (M, N, E)
    with eval_mode(model):
        text = encode_captions(model, [captions[k] for k in source]).cpu()  # (Q, E)
    q = len(source)
    sim = torch.einsum("qne,qe->qn", feats[torch.arange(q) // 2], text)  # (Q, N)
    grid = math.isqrt(feats.shape[1])
    target = patch_coverage(targets, grid).reshape(q, -1)  # (Q, N)
    other = patch_coverage(others, grid).reshape(q, -1)
    top = sim.argmax(dim=1).numpy()
    top_target, top_other = target[np.arange(q), top], other[np.arange(q), top]  # (Q,) coverage of the top patch
    on_object = (target + other) > 0
    chance = ((target > other) & on_object).sum(1) / on_object.sum(1)
    background = (top_target == 0) & (top_other == 0)
    return {"hit_rate": float((top_target > top_other).mean()), "chance": float(chance.mean()),
            "on_other_object": float(((top_other >= top_target) & ~background).mean()),
            "on_background": float(background.mean()), "num_queries": q}


def ridge_probe_accuracy(train_x: torch.Tensor, train_y: Sequence[str], test_x: torch.Tensor,
                         test_y: Sequence[str], ridge: float = 1.0) -> float:
    """Accuracy of a closed-form ridge-regression classifier (one-hot targets) on standardised features.

    train_x (n, D), test_x (m, D); labels are strings.
    """
    classes = sorted(set(train_y))
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    a = nn.functional.pad((train_x - mean) / std, (0, 1), value=1.0).double()  # (n, D + 1) with a bias column
    b = nn.functional.pad((test_x - mean) / std, (0, 1), value=1.0).double()
    targets = torch.tensor([[c == y for c in classes] for y in train_y], dtype=torch.float64)  # (n, K)
    weights = torch.linalg.solve(a.T @ a + ridge * torch.eye(a.shape[1], dtype=torch.float64), a.T @ targets)
    predicted = (b @ weights).argmax(1).tolist()
    return float(np.mean([classes[k] == y for k, y in zip(predicted, test_y)]))


def patch_probe(model: nn.Module, images: np.ndarray, captions: Sequence[str], labels: Sequence[dict],
                seed: int = 0) -> dict:
    """Linear probes: read the attributes of the object under a patch from that patch's token.

    On :func:`two_object_composites`, the samples are the patches at least half covered by
    one object and untouched by the other; the label is that object's attributes. A ridge
    classifier per block and attribute is fit on the first half of the composites and
    scored on the second half.
    Returns {"per_block": [{attr: accuracy} for each block], "chance": {attr: 1/#values},
    "num_train", "num_test"} (patch counts).
    """
    composites, targets, others, source = two_object_composites(images, captions, seed)
    blocks = block_patch_tokens(model, composites)  # per block (M, N, D_v)
    grid = math.isqrt(blocks[0].shape[1])
    target = patch_coverage(targets, grid).reshape(len(source), -1)  # (Q, N)
    other = patch_coverage(others, grid).reshape(len(source), -1)
    query, patch = np.nonzero((target >= 0.5) & (other == 0))  # samples: (query, patch) pairs
    train = query // 2 < len(composites) // 2  # split by composite
    attributes = sorted(labels[0]) if labels else []
    names = {a: [labels[source[k]][a] for k in query] for a in attributes}
    per_block = []
    for tokens in blocks:  # (M, N, D_v)
        x = tokens[torch.from_numpy(query // 2), torch.from_numpy(patch)]  # (samples, D_v)
        per_block.append({a: ridge_probe_accuracy(x[train], list(np.asarray(y)[train]), x[~train],
                                                  list(np.asarray(y)[~train])) for a, y in names.items()})
    return {"per_block": per_block, "chance": {a: 1.0 / len(set(y)) for a, y in names.items()},
            "num_train": int(train.sum()), "num_test": int((~train).sum())}


def evaluate(model: nn.Module, images: np.ndarray, captions: Sequence[str], labels: Sequence[dict],
             candidate_captions: Sequence[str]) -> dict:
    """Retrieval (:func:`retrieval_accuracy`) plus the patch-token checks (:func:`two_object_pointing`,
    :func:`patch_probe`) on held-out pairs."""
    result = retrieval_accuracy(model, images, captions, candidate_captions, labels)
    result["two_object_pointing"] = two_object_pointing(model, images, captions)
    result["patch_probe"] = patch_probe(model, images, captions, labels)
    return result


# --------------------------------------------------------------------------- saving


def fp16_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict on the CPU with floating tensors in fp16 (plain tensors only)."""
    return {k: (v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.detach().cpu()).clone()
            for k, v in model.state_dict().items()}


def save_checkpoint(model: nn.Module, path: str | os.PathLike) -> str:
    """Write the fp16 state dict to ``path`` atomically (temp file + rename); returns its sha256.

    Saved through a file object, so the archive's inner name does not depend on the
    (random) temporary file name and equal weights give byte-identical files.
    """
    from rvoslib.io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(fp16_state_dict(model), f)
    return _sha256(path)


def write_json(data: dict, path: str | os.PathLike) -> None:
    """Write ``data`` as indented JSON, atomically."""
    from rvoslib.io import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2) + "\n")


def sidecar_path(out_path: str | os.PathLike) -> Path:
    """The JSON sidecar next to a checkpoint: ``x/name.pt`` -> ``x/name.json``."""
    return Path(out_path).with_suffix(".json")


def _sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def reproduce_command(out_path: str | os.PathLike, **settings) -> str:
    """The ``rvoslib pretrain`` command line that makes the same checkpoint."""
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in settings.items())
    return f"rvoslib pretrain --out {out_path} {flags}"


# --------------------------------------------------------------------------- the whole run


def _check_settings(steps: int, batch_size: int, num_pairs: int, num_classes: int, warmup_steps: int,
                    num_eval: int) -> None:
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    if not 2 <= batch_size <= num_classes:
        raise ValueError(f"batch_size must be between 2 and the number of distinct captions ({num_classes}) "
                         f"so every batch holds distinct captions; got {batch_size}")
    if num_eval < MIN_EVAL:
        raise ValueError(f"num_eval must be >= {MIN_EVAL} (the patch probes split two-object images in halves), "
                         f"got {num_eval}")
    if num_pairs < batch_size:
        raise ValueError(f"num_pairs ({num_pairs}) must be >= batch_size ({batch_size})")


def train(model: nn.Module, images: np.ndarray, captions: Sequence[str], steps: int, batch_size: int,
          seed: int, lr: float, warmup_steps: int, weight_decay: float, progress: bool = True) -> list[float]:
    """Contrastive training of both towers on pairs (images (n, S, S, 3) uint8, n captions).

    Returns the loss of every step. Raises ``FloatingPointError`` naming the step on a NaN/inf loss.
    """
    from open_clip.loss import ClipLoss
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    tokens = get_tokenizer()(list(captions))  # (n, L_ctx)
    groups = caption_groups(captions)
    rng = np.random.default_rng([seed, 1])
    optimizer = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.98), eps=1e-6)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, steps, warmup_steps))
    loss_fn = ClipLoss()
    model.train()
    losses: list[float] = []
    bar = tqdm(range(steps), desc="pretrain rvos-tiny", disable=not progress, dynamic_ncols=True)
    for step in bar:
        idx = sample_batch(groups, batch_size, rng)  # (B,)
        loss = train_step(model, loss_fn, optimizer, normalize_images(images[idx]).to(device), tokens[idx].to(device))
        if not math.isfinite(loss):
            raise FloatingPointError(f"pretraining loss is {loss} at step {step} (lr {schedule.get_last_lr()[0]:.3g})")
        schedule.step()
        losses.append(loss)
        if step % 10 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{np.mean(losses[-10:]):.3f}", lr=f"{schedule.get_last_lr()[0]:.2e}")
    model.eval()
    return losses


def loss_curve(losses: Sequence[float], points: int = 100) -> list[list[float]]:
    """About ``points`` [step, mean loss over the window ending there] pairs, for plotting."""
    window = max(1, len(losses) // points)
    return [[i + window - 1, float(np.mean(losses[i:i + window]))] for i in range(0, len(losses) - window + 1, window)]


def run_summary(out_path: str | os.PathLike, settings: dict, losses: Sequence[float], seconds: float,
                held_out: dict, random_init: dict, model: nn.Module, device: str, sha256: str) -> dict:
    """The JSON sidecar's content for one pretraining run (see :func:`pretrain_tiny_clip`)."""
    steps, batch_size, seed = settings["steps"], settings["batch_size"], settings["seed"]
    window = min(50, max(1, steps // 10))  # initial/final loss: mean over the first/last 10% of steps (<= 50)
    return {
        "what": "open_clip 'rvos-tiny' CLIP pretrained contrastively (open_clip ClipLoss) on synthetic "
                "coloured-shape image-caption pairs (rvoslib.data.synthetic.make_caption_pairs)",
        "command": reproduce_command(out_path, **settings),
        "model_name": MODEL_NAME, "image_size": IMAGE_SIZE, **settings, "device": str(device),
        "eval_seed": seed + EVAL_SEED_OFFSET,
        "initial_loss": float(np.mean(losses[:window])), "final_loss": float(np.mean(losses[-window:])),
        "loss_window": window, "final_loss_last_step": float(losses[-1]), "loss_chance": math.log(batch_size),
        "logit_scale": float(model.logit_scale.detach().exp()),
        "train_seconds": round(seconds, 1), "torch_threads": torch.get_num_threads(),
        "held_out": held_out, "random_init": random_init, "loss_curve": loss_curve(losses),
        "checkpoint": {"file": Path(out_path).name, "bytes": os.path.getsize(out_path), "sha256": sha256,
                       "dtype": "float16"},
        "versions": _versions(),
    }


def pretrain_tiny_clip(out_path: str | os.PathLike = DEFAULT_OUT, steps: int = DEFAULTS["steps"],
                       batch_size: int = DEFAULTS["batch_size"], seed: int = DEFAULTS["seed"],
                       lr: float = DEFAULTS["lr"], num_pairs: int = DEFAULTS["num_pairs"], device: str = "cpu",
                       warmup_steps: int = DEFAULTS["warmup_steps"], weight_decay: float = DEFAULTS["weight_decay"],
                       num_eval: int = DEFAULTS["num_eval"], progress: bool = True) -> dict:
    """Pretrain the tiny CLIP, evaluate it on held-out pairs, save checkpoint + JSON sidecar.

    Args:
        out_path: checkpoint file (open_clip format: fp16 state dict); the sidecar is
            the same path with ``.json``.
        steps: optimizer steps; batch_size: pairs per step (<= number of distinct captions).
        seed: fixes the model initialisation, the training pairs and the batches; held-out
            pairs use ``seed + EVAL_SEED_OFFSET``.
        lr: peak AdamW learning rate (warm-up ``warmup_steps``, then cosine to 0).
        num_pairs: size of the training pool of (image, caption) pairs.
        device: where to train ("cpu", "cuda", ...).
        num_eval: held-out pairs for the evaluation.
        progress: show the tqdm bar.
    Returns:
        The sidecar's content: settings, command, losses, timings, held-out evaluation of
        the trained and of the randomly initialised model, checkpoint size and sha256.
    """
    from rvoslib.data.synthetic import all_captions, make_caption_pairs

    candidates = all_captions()
    _check_settings(steps, batch_size, num_pairs, len(candidates), warmup_steps, num_eval)
    settings = dict(steps=steps, batch_size=batch_size, seed=seed, lr=lr, num_pairs=num_pairs,
                    warmup_steps=warmup_steps, weight_decay=weight_decay, num_eval=num_eval)
    images, captions, _ = make_caption_pairs(num_pairs, seed, size=IMAGE_SIZE)
    eval_images, eval_captions, eval_labels = make_caption_pairs(num_eval, seed + EVAL_SEED_OFFSET, size=IMAGE_SIZE)
    model = build_tiny_clip(seed).to(device)
    random_init = evaluate(model, eval_images, eval_captions, eval_labels, candidates)
    start = time.perf_counter()
    losses = train(model, images, captions, steps, batch_size, seed, lr, warmup_steps, weight_decay, progress)
    seconds = time.perf_counter() - start
    model.load_state_dict(fp16_state_dict(model))  # measure what is shipped: the fp16-rounded weights
    held_out = evaluate(model, eval_images, eval_captions, eval_labels, candidates)
    sha = save_checkpoint(model, out_path)
    results = run_summary(out_path, settings, losses, seconds, held_out, random_init, model, device, sha)
    write_json(results, sidecar_path(out_path))
    logger.info("pretrained %s in %.0f s: loss %.3f -> %.3f; held-out retrieval %.1f%% (chance %.1f%%); "
                "saved %s", MODEL_NAME, seconds, results["initial_loss"], results["final_loss"],
                100 * held_out["accuracy"], 100 * held_out["chance"], out_path)
    results["losses"] = losses
    return results


def _versions() -> dict:
    import open_clip

    return {"torch": torch.__version__, "open_clip": open_clip.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


# --------------------------------------------------------------------------- command line

PRETRAIN_HELP = """\
Pretrain the tiny open_clip CLIP ("rvos-tiny") contrastively on synthetic image-caption
pairs of coloured shapes, evaluate it on held-out pairs, and save it in open_clip's
checkpoint format (fp16 state dict) with a JSON sidecar (OUT with .json) holding the
command, losses and measured accuracies. Load it with
  create_clip(BackboneConfig(model_name="rvos-tiny", pretrained=OUT, image_size=64)).
The defaults make the shipped data_samples/tiny_clip/rvos-tiny-shapes.pt.
"""


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Declare the ``pretrain`` options on ``parser``; returns it."""
    d = DEFAULTS
    parser.add_argument("--out", type=Path, default=Path(DEFAULT_OUT), help=f"checkpoint path (default: {DEFAULT_OUT})")
    parser.add_argument("--steps", type=int, default=d["steps"], help=f"optimizer steps (default: {d['steps']})")
    parser.add_argument("--batch-size", type=int, default=d["batch_size"],
                        help=f"pairs per step, at most the 48 distinct captions (default: {d['batch_size']})")
    parser.add_argument("--seed", type=int, default=d["seed"], help=f"random seed (default: {d['seed']})")
    parser.add_argument("--lr", type=float, default=d["lr"], help=f"peak learning rate (default: {d['lr']})")
    parser.add_argument("--num-pairs", type=int, default=d["num_pairs"],
                        help=f"training image-caption pairs (default: {d['num_pairs']})")
    parser.add_argument("--warmup-steps", type=int, default=d["warmup_steps"],
                        help=f"linear warm-up steps (default: {d['warmup_steps']})")
    parser.add_argument("--weight-decay", type=float, default=d["weight_decay"],
                        help=f"AdamW weight decay (default: {d['weight_decay']})")
    parser.add_argument("--num-eval", type=int, default=d["num_eval"],
                        help=f"held-out pairs for the evaluation (default: {d['num_eval']})")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (default: 0 = torch's default); 1 is fastest on a busy machine")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def run_from_args(args: argparse.Namespace) -> int:
    """Run the pretraining described by parsed :func:`add_arguments` options; returns 0."""
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    result = pretrain_tiny_clip(
        args.out, steps=args.steps, batch_size=args.batch_size, seed=args.seed, lr=args.lr,
        num_pairs=args.num_pairs, device=args.device, warmup_steps=args.warmup_steps,
        weight_decay=args.weight_decay, num_eval=args.num_eval, progress=not args.no_progress,
    )
    acc = result["held_out"]
    per = ", ".join(f"{a} {100 * v:.1f}%" for a, v in acc["per_attribute"].items())
    logger.info("held-out top-1 %.1f%% over %d captions (chance %.1f%%); %s; written %s and %s",
                100 * acc["accuracy"], acc["num_candidates"], 100 * acc["chance"], per,
                args.out, sidecar_path(args.out))
    return 0


def run(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m rvoslib.pretrain [options]``: parse ``argv`` and run; returns the exit code."""
    parser = argparse.ArgumentParser(prog="rvoslib pretrain", description=PRETRAIN_HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    args = add_arguments(parser).parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    return run_from_args(args)


if __name__ == "__main__":
    raise SystemExit(run())
