"""Does a (tiny) CLIP read motion words? Two measures for :mod:`rvoslib.pretrain`'s sidecar.

A frozen text tower passes on only the distinctions it learned: the tiny CLIP pretrained on still
scenes (version 2) gives the words of "the circle moving left" and "the circle moving right"
features with cosine 0.9998 (1.0000 for the end token), so no module of VLP-RVOS downstream can
tell which way a sentence asks for. The
motion-scene pretraining (``rvoslib pretrain --data motion-scenes``) is meant to change that.

- :func:`motion_text_similarity`: cosine between the text features of "the circle <phrase>" for
  the six motions of :mod:`rvoslib.data.synthetic` (the sentence feature, as the RVOS model reads
  it: the end token after ``ln_final``, before the projection). Text only, no images.
- :func:`motion_choice`: on held-out motion scenes, does an object's true caption "a red circle
  moving left" score above the same caption with each other motion? A scene counts when the
  named object is the only one of its colour and shape. Chance 1/6.
"""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np
import torch
from torch import nn

from rvoslib.data.scenes import Scene
from rvoslib.data.expressions import motion_phrases
from rvoslib.data.shapes import MOTIONS
from rvoslib.pretrain_eval import encode_captions, encode_images, eval_mode, get_tokenizer


def sentence_features(model: nn.Module, sentences: Sequence[str]) -> torch.Tensor:
    """The sentence features the RVOS model reads (``PromptedTextEncoder`` without prompts: the end
    token after ``ln_final``, no projection), unit norm: (B, D_t)."""
    from rvoslib.config import PromptConfig
    from rvoslib.text_encoder import PromptedTextEncoder, tokenize

    encoder = PromptedTextEncoder(model, PromptConfig(use_language=False))
    tokens = tokenize(list(sentences), get_tokenizer())  # (B, L_ctx)
    with eval_mode(model), torch.no_grad():
        sentence = encoder(tokens.to(next(model.parameters()).device))["sentence"]
    return torch.nn.functional.normalize(sentence.float().cpu(), dim=-1)


def motion_text_similarity(model: nn.Module) -> dict:
    """{"left_right", "up_down", "mean_pairwise", "max_pairwise"}: cosines of the sentence features
    of "the circle <first phrase of each motion>"; 1.0 means the tower cannot tell them apart."""
    features = sentence_features(model, [f"the circle {motion_phrases(m)[0]}" for m in MOTIONS])  # (6, D_t)
    cos = (features @ features.T).numpy()
    pairs = [cos[i, j] for i, j in itertools.combinations(range(len(MOTIONS)), 2)]
    index = {m: k for k, m in enumerate(MOTIONS)}
    return {"left_right": float(cos[index["left"], index["right"]]), "up_down": float(cos[index["up"], index["down"]]),
            "mean_pairwise": float(np.mean(pairs)), "max_pairwise": float(np.max(pairs))}


def motion_choice(model: nn.Module, images: np.ndarray, scenes: Sequence[Scene], seed: int = 0) -> dict:
    """{"accuracy", "chance", "num_queries"}: share of held-out motion scenes whose image scores the
    true motion caption of one object above all five other motions (ties count as wrong)."""
    rng = np.random.default_rng([seed, 13])
    queries = []
    for index, scene in enumerate(scenes):
        named = [o for o in scene.objects
                 if sum(p.colour == o.colour and p.shape == o.shape for p in scene.objects) == 1]
        if named:
            obj = named[int(rng.integers(len(named)))]
            queries.append((index, obj.colour, obj.shape, MOTIONS.index(obj.motion)))
    if not queries:
        return {"accuracy": float("nan"), "chance": 1 / len(MOTIONS), "num_queries": 0}
    image_emb = encode_images(model, images[[q[0] for q in queries]])  # (Q, E)
    captions = [f"a {colour} {shape} {motion_phrases(m)[0]}" for _, colour, shape, _ in queries for m in MOTIONS]
    text_emb = encode_captions(model, captions).reshape(len(queries), len(MOTIONS), -1)  # (Q, 6, E)
    scores = torch.einsum("qe,qme->qm", image_emb, text_emb)  # (Q, 6)
    truth = torch.tensor([q[3] for q in queries])
    best = scores.gather(1, truth[:, None])  # (Q, 1)
    wins = ((scores < best).sum(1) == len(MOTIONS) - 1).float()
    return {"accuracy": float(wins.mean()), "chance": 1 / len(MOTIONS), "num_queries": len(queries)}
