"""What a (tiny) CLIP has learned: the measures of :mod:`rvoslib.pretrain`'s sidecar.

All take an open_clip CLIP (any device; run in eval mode without gradients) and uint8 images
(B, S, S, 3). On held-out scenes (:mod:`rvoslib.data.scenes`, another seed than training):

- :func:`scene_retrieval`: image->text and text->image top-1 among the captions of a block of
  N scenes (each caption true of its own scene only), chance 1/N;
- :func:`binding_queries` + :func:`binding_accuracy`: does an image prefer its caption ("a red
  circle and a blue square") to the attribute-swapped one ("a blue circle and a red square"), or
  to the relation-swapped one ("a blue square left of a red circle")? Chance 50%;
- :func:`scene_patch_probe`: per-block linear probes reading the colour / shape / size of the
  object under a patch from that patch's token;
- :func:`scene_pointing`: for a caption naming one object, is the best-matching final patch
  token (through ``ln_post`` and ``proj``, :func:`dense_features`) on that object?

The single-object measures of version 1 (:func:`retrieval_accuracy` over fixed captions and
:func:`two_object_pointing` on pasted two-object composites) stay, for a version-1 checkpoint
remade with ``rvoslib pretrain --data shapes --model rvos-tiny`` (it is no longer shipped).
"""

from __future__ import annotations

import functools
import math
from contextlib import contextmanager
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from rvoslib.data.scenes import Scene, caption_holds, choose_captions

# --------------------------------------------------------------------------- encoding


@functools.lru_cache(maxsize=4)
def get_tokenizer(model_name: str = "rvos-tiny"):
    """open_clip's BPE tokenizer for a tiny config (built once): list of B strings -> LongTensor (B, 32)."""
    import open_clip

    from rvoslib.backbone import register_tiny_config

    register_tiny_config()
    return open_clip.get_tokenizer(model_name)


def normalize_images(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 images (B, S, S, 3) -> float (B, 3, S, S) normalised with CLIP's mean/std."""
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    x = torch.as_tensor(np.asarray(images)).permute(0, 3, 1, 2).float() / 255.0  # (B, 3, S, S)
    mean = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


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
    with eval_mode(model):
        chunks = [model.encode_image(normalize_images(images[i:i + batch_size]).to(device), normalize=True)
                  for i in range(0, len(images), batch_size)]
    return torch.cat(chunks).float().cpu()


@torch.no_grad()
def encode_captions(model: nn.Module, captions: Sequence[str]) -> torch.Tensor:
    """B captions -> unit-norm text embeddings (B, E). (All tiny configs share the tokenizer.)"""
    device = next(model.parameters()).device
    tokens = get_tokenizer()(list(captions)).to(device)  # (B, L_ctx)
    with eval_mode(model):
        return model.encode_text(tokens, normalize=True).float().cpu()


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


def patch_coverage(masks: np.ndarray, grid: int) -> np.ndarray:
    """Fraction of each patch's pixels inside the mask: (B, S, S) bool -> (B, grid, grid) float."""
    b, height, width = masks.shape
    cells = masks.reshape(b, grid, height // grid, grid, width // grid)  # (B, h, ph, w, pw)
    return cells.mean(axis=(2, 4))


def object_coverage(scenes: Sequence[Scene], grid: int) -> np.ndarray:
    """Per scene and object id k = 1..4, the fraction of each patch showing object k: (B, 4, N)."""
    ids = np.stack([s.id_map for s in scenes])  # (B, S, S)
    per_object = [patch_coverage(ids == k, grid).reshape(len(scenes), -1) for k in range(1, 5)]
    return np.stack(per_object, axis=1)


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


# --------------------------------------------------------------------------- scene measures


def scene_retrieval(model: nn.Module, images: np.ndarray, scenes: Sequence[Scene], block: int = 50,
                    seed: int = 0) -> dict:
    """Top-1 retrieval within blocks of ``block`` held-out scenes, with one caption per scene drawn
    as in training (:func:`~rvoslib.data.scenes.choose_captions`: true of its own scene only).

    Returns {"image_to_text", "text_to_image", "chance": mean 1/N, "block": N, "num_images"}.
    """
    rng = np.random.default_rng([seed, 11])
    i2t, t2i, chance = [], [], []
    for start in range(0, len(scenes) - block + 1, block):
        captions = choose_captions(scenes[start:start + block], rng, tries=40)
        keep = [start + k for k, c in enumerate(captions) if c is not None]
        sim = encode_images(model, images[keep]) @ encode_captions(model, [c for c in captions if c is not None]).T
        truth = torch.arange(len(keep))
        i2t += (sim.argmax(1) == truth).tolist()
        t2i += (sim.argmax(0) == truth).tolist()
        chance += [1.0 / len(keep)] * len(keep)
    return {"image_to_text": float(np.mean(i2t)), "text_to_image": float(np.mean(t2i)),
            "chance": float(np.mean(chance)), "block": block, "num_images": len(i2t)}


def _phrase(obj, keys=("colour", "shape")) -> str:
    return " ".join(getattr(obj, k) for k in keys)


def binding_queries(scenes: Sequence[Scene], seed: int = 0) -> list[dict]:
    """At most one attribute and one relation query per scene, each {"image", "kind", "true", "false",
    "true_spec", "false_spec"}; the false caption is checked to be false of the scene.

    - attribute: objects a, b differing in colour and shape: "a red circle and a blue square" vs
      "a blue circle and a red square" (colours exchanged);
    - relation: a relation that holds from a to b, both the only objects of their colour and shape:
      "a red circle to the left of a blue square" vs "a blue square to the left of a red circle".
    """
    from rvoslib.data.expressions import RELATIONS, _relation_holds

    rng = np.random.default_rng([seed, 12])
    queries = []
    for index, scene in enumerate(scenes):
        pairs = [(a, b) for a in scene.objects for b in scene.objects if a is not b]
        pairs = [pairs[k] for k in rng.permutation(len(pairs))]
        attribute = next(((a, b) for a, b in pairs if a.colour != b.colour and a.shape != b.shape), None)
        if attribute is not None:
            a, b = attribute
            true = {"mentions": [{"colour": a.colour, "shape": a.shape}, {"colour": b.colour, "shape": b.shape}]}
            false = {"mentions": [{"colour": b.colour, "shape": a.shape}, {"colour": a.colour, "shape": b.shape}]}
            if not caption_holds(false, scene.objects):
                queries.append({"image": index, "kind": "attribute", "true_spec": true, "false_spec": false,
                                "true": f"a {_phrase(a)} and a {_phrase(b)}",
                                "false": f"a {b.colour} {a.shape} and a {a.colour} {b.shape}"})
        phrases = [_phrase(o) for o in scene.objects]
        for a, b in pairs:  # both named unambiguously, so the swapped caption is clearly false
            if phrases.count(_phrase(a)) > 1 or phrases.count(_phrase(b)) > 1:
                continue
            holding = [r for r in RELATIONS if _relation_holds(r, a, b).all()]
            if not holding:
                continue
            relation = str(rng.choice(holding))
            true = {"mentions": [{"colour": a.colour, "shape": a.shape}, {"colour": b.colour, "shape": b.shape}],
                    "relation": relation}
            false = {"mentions": true["mentions"][::-1], "relation": relation}
            if caption_holds(false, scene.objects):  # pragma: no cover - a relation is antisymmetric
                continue
            words = relation if relation in ("above", "below") else f"to the {relation}"
            queries.append({"image": index, "kind": "relation", "true_spec": true, "false_spec": false,
                            "true": f"a {_phrase(a)} {words} a {_phrase(b)}",
                            "false": f"a {_phrase(b)} {words} a {_phrase(a)}"})
            break
    return queries


Scorer = Callable[[np.ndarray, Sequence[str]], np.ndarray]  # (image indices (Q,), Q captions) -> (Q,) scores


def clip_scorer(model: nn.Module, images: np.ndarray) -> Scorer:
    """Cosine similarity of image ``i`` and a caption, for :func:`binding_accuracy`."""
    image_emb = encode_images(model, images)  # (B, E)

    def score(indices: np.ndarray, captions: Sequence[str]) -> np.ndarray:
        return (image_emb[torch.as_tensor(indices)] * encode_captions(model, captions)).sum(-1).numpy()

    return score


def binding_accuracy(score: Scorer, queries: Sequence[dict]) -> dict:
    """Share of queries where the true caption scores above the swapped one (a tie counts half).

    Returns {kind: {"accuracy", "num_queries"}} for "attribute" and "relation", and "chance": 0.5.
    """
    result: dict = {"chance": 0.5}
    for kind in ("attribute", "relation"):
        chosen = [q for q in queries if q["kind"] == kind]
        if not chosen:
            result[kind] = {"accuracy": float("nan"), "num_queries": 0}
            continue
        images = np.array([q["image"] for q in chosen])
        true = score(images, [q["true"] for q in chosen])
        false = score(images, [q["false"] for q in chosen])
        wins = (true > false) + 0.5 * (true == false)
        result[kind] = {"accuracy": float(wins.mean()), "num_queries": len(chosen)}
    return result


def scene_pointing(model: nn.Module, images: np.ndarray, scenes: Sequence[Scene]) -> dict:
    """For each object with a unique appearance in its scene, the caption "a small red circle": is the
    final patch whose dense feature best matches it on that object (covered more by it than by any
    other object)?

    Returns {"hit_rate", "chance": the hit rate of a random patch that shows some object,
    "chance_any_patch": of a random patch, "on_other_object", "on_background", "num_queries"}.
    """
    feats = dense_features(model, images)  # (B, N, E)
    grid = math.isqrt(feats.shape[1])
    coverage = object_coverage(scenes, grid)  # (B, 4, N)
    image_index, object_index, captions = [], [], []
    for i, scene in enumerate(scenes):
        looks = [o.appearance() for o in scene.objects]
        for k, o in enumerate(scene.objects):
            if looks.count(o.appearance()) == 1:
                image_index.append(i)
                object_index.append(k)
                captions.append(f"a {o.size} {o.colour} {o.shape}")
    image_index, object_index = np.array(image_index), np.array(object_index)
    text = encode_captions(model, captions)  # (Q, E)
    top = torch.einsum("qne,qe->qn", feats[torch.as_tensor(image_index)], text).argmax(1).numpy()  # (Q,)
    cov = coverage[image_index]  # (Q, 4, N)
    target = cov[np.arange(len(cov)), object_index]  # (Q, N)
    others = cov.copy()
    others[np.arange(len(cov)), object_index] = 0
    other = others.max(1)  # (Q, N)
    hit_patch = (target > other) & (target > 0)  # (Q, N)
    on_object = (target + other) > 0
    rows = np.arange(len(top))
    hits = hit_patch[rows, top]
    background = ~on_object[rows, top]
    return {"hit_rate": float(hits.mean()),
            "chance": float((hit_patch.sum(1) / np.maximum(on_object.sum(1), 1)).mean()),
            "chance_any_patch": float(hit_patch.mean()),
            "on_other_object": float((~hits & ~background).mean()), "on_background": float(background.mean()),
            "num_queries": int(len(top))}


def scene_patch_probe(model: nn.Module, images: np.ndarray, scenes: Sequence[Scene]) -> dict:
    """Linear probes: read the attributes of the object under a patch from that patch's token.

    Samples: patches at least half covered by one object and untouched by the others, labelled
    with that object's attributes. A ridge classifier per block and attribute is fit on the
    first half of the scenes and scored on the second half.
    Returns {"per_block": [{attr: accuracy} per block], "chance": {attr: 1/#values}, "num_train", "num_test"}.
    """
    blocks = block_patch_tokens(model, images)  # per block (B, N, D_v)
    coverage = object_coverage(scenes, math.isqrt(blocks[0].shape[1]))  # (B, 4, N)
    best = coverage.argmax(1)  # (B, N) object index with the largest share
    clean = (coverage.max(1) >= 0.5) & ((coverage > 0).sum(1) == 1)  # (B, N)
    image, patch = np.nonzero(clean)
    objects = [scenes[i].objects[best[i, p]] for i, p in zip(image, patch)]
    train = image < len(scenes) // 2
    labels = {a: np.array([getattr(o, a) for o in objects]) for a in ("colour", "shape", "size")}
    per_block = []
    for tokens in blocks:
        x = tokens[torch.as_tensor(image), torch.as_tensor(patch)]  # (samples, D_v)
        per_block.append({a: ridge_probe_accuracy(x[train], list(y[train]), x[~train], list(y[~train]))
                          for a, y in labels.items()})
    return {"per_block": per_block, "chance": {a: 1.0 / len(set(y)) for a, y in labels.items()},
            "num_train": int(train.sum()), "num_test": int((~train).sum())}


def evaluate_scenes(model: nn.Module, images: np.ndarray, scenes: Sequence[Scene], seed: int = 0) -> dict:
    """All scene measures: {"retrieval", "binding", "pointing", "patch_probe"}."""
    return {"retrieval": scene_retrieval(model, images, scenes, seed=seed),
            "binding": binding_accuracy(clip_scorer(model, images), binding_queries(scenes, seed)),
            "pointing": scene_pointing(model, images, scenes),
            "patch_probe": scene_patch_probe(model, images, scenes)}


# --------------------------------------------------------------------------- version 1 (single objects)


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
    image_emb = encode_images(model, images)  # (B, E)
    text_emb = encode_captions(model, candidate_captions)  # (C, E)
    best = (image_emb @ text_emb.T).argmax(dim=1).numpy()  # (B,)
    predicted = [candidate_captions[j] for j in best]
    correct = np.array([p == c for p, c in zip(predicted, captions)])
    attributes = sorted(labels[0]) if labels else []
    per_attr = {a: float(np.mean([lab[a] in p.split() for lab, p in zip(labels, predicted)])) for a in attributes}
    chance_attr = {a: 1.0 / len({lab[a] for lab in labels}) for a in attributes}
    return {"accuracy": float(correct.mean()), "chance": 1.0 / len(candidate_captions),
            "per_attribute": per_attr, "per_attribute_chance": chance_attr,
            "num_images": len(images), "num_candidates": len(candidate_captions)}


def object_masks(images: np.ndarray) -> np.ndarray:
    """Object pixels of single-object images (B, S, S, 3) uint8 -> (B, S, S) bool: every pixel
    whose colour differs from the top-left one (the plain background never has a shape there)."""
    images = np.asarray(images)
    return np.any(images != images[:, :1, :1, :], axis=-1)


def two_object_composites(images: np.ndarray, captions: Sequence[str], seed: int = 0
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two-object images: each single-object image gets the object of a partner image pasted in.

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


def two_object_pointing(model: nn.Module, images: np.ndarray, captions: Sequence[str], seed: int = 0) -> dict:
    """Version 1's pointing on :func:`two_object_composites`: is a caption's best-matching final patch
    covered more by the named object than by the other one?

    Returns {"hit_rate", "chance": the hit rate of a random patch on either object,
    "on_other_object" and "on_background": where the other top patches fall, "num_queries"}.
    """
    composites, targets, others, source = two_object_composites(images, captions, seed)
    feats = dense_features(model, composites)  # (M, N, E)
    text = encode_captions(model, [captions[k] for k in source])  # (Q, E)
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
