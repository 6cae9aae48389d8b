"""VLPRVOS: the wiring of every component, and ``build_model``.

Read top to bottom, the data goes:

1. ``PromptGenerator``      -> vision (N_v, D_v), temporal (T, N_tp, D_v), language (N_l, D_t) prompts
2. ``PromptedTextEncoder``  -> words (B, L, D_t), word_pad (B, L), sentence (B, D_t)
3. ``PromptedVisionEncoder``-> F_v and the shallow feature S, both (B, T, d, h, w)
   (stage-1 VL cross-attention and temporal capture happen inside the frozen ViT)
4. ``DualFusion`` (stage 2) -> fused video F_f (B, T, d, h, w), updated words E' (B, L, d)
5. ``SpatioTemporalReasoner`` (stage 3, cube-frame attention + shallow decoder, which reads E', or
   the text encoder's words with ``spatiotemporal.decoder_words="text"``)
                            -> one (B, T, d, h, w) map per layer
6. ``MaskHead`` on every layer -> mask logits (B, T, H, W); the last is the prediction,
   the others are auxiliary; ``PixelTextSimilarity`` -> (B, T, h, w) cosine map
7. ``HistoryEncoder.pool``  -> (B, N_h, D_v) detached history tokens for the next clip

Input: ``frames (B, T, 3, S, S)`` normalised with CLIP's mean/std, ``tokens (B, L_ctx)``
from :meth:`VLPRVOS.tokenize`, optional ``history (B, N_h, D_v)``.
Output dict: ``pred_masks (B, T, S, S)`` logits, ``aux_masks`` list of the same (training
mode; empty in eval mode unless ``aux=True``),
``similarity (B, T, h, w)``, ``history (B, N_h, D_v)`` detached, or None without history,
``features (B, T, d, h, w)`` the final spatio-temporal features (two-clip history training
re-pools them with ``model.history.pool(..., detach=False)`` so the pooling layers learn from
the next clip's loss), ``attn`` (None unless ``record_attention``). No loss and no I/O here:
see ``losses`` and ``engine``.
"""

from __future__ import annotations

import logging
from typing import Optional, Sequence, Union

import torch
from torch import nn

from rvoslib.backbone import FrozenCLIP, create_clip, get_tokenizer
from rvoslib.config import ModelConfig
from rvoslib.fusion import DualFusion
from rvoslib.head import MaskHead, PixelTextSimilarity
from rvoslib.prompts import HistoryEncoder, PromptGenerator
from rvoslib.spatiotemporal import SpatioTemporalReasoner
from rvoslib.text_encoder import PromptedTextEncoder, tokenize
from rvoslib.vision_encoder import PromptedVisionEncoder

logger = logging.getLogger(__name__)


class VLPRVOS(nn.Module):
    """Referring video object segmentation with a frozen, prompt-tuned CLIP.

    Args:
        cfg: the model config (``Config.model``).
        clip: an open_clip CLIP already created for ``cfg.backbone`` (default: create it).
    """

    def __init__(self, cfg: ModelConfig, clip: Optional[nn.Module] = None):
        super().__init__()
        self.cfg = cfg
        self.clip = FrozenCLIP(clip if clip is not None else create_clip(cfg.backbone))
        self.text = PromptedTextEncoder(self.clip, cfg.prompts)
        self.vision = PromptedVisionEncoder(self.clip, cfg)
        d_v, d_t, d = self.vision.vision_width, self.text.text_width, cfg.dim
        self.prompts = PromptGenerator(cfg.prompts, d_v, d_t)
        self.history = HistoryEncoder(cfg.prompts, d, d_v) if cfg.prompts.use_history else None
        self.fusion = DualFusion(d, d_t, cfg.fusion)
        self.reasoner = SpatioTemporalReasoner(d, cfg.spatiotemporal, text_width=d_t)
        self.head = MaskHead(d, cfg.head, self.vision.patch_size)
        self.similarity = PixelTextSimilarity(d, d_t, cfg.head.sim_dim)
        self._tokenizer = None
        # False when the history pooling layers never received a gradient (trained with
        # train.history_training="off"): online inference then gives every window the learned
        # initial tokens instead of pooled history (rvoslib.inference.carries_history)
        self.history_trained = True

    def set_history_training(self, mode: str) -> None:
        """Record how this model's history was (or is being) trained, ``train.history_training``.

        With ``"off"`` the pooling layers of ``HistoryEncoder.pool`` never get a gradient, so their
        tokens are untrained noise to the next clip: ``history_trained`` becomes False (for a model
        with history tokens). Called by ``model_from_checkpoint`` and the training engine.
        """
        self.history_trained = self.history is None or mode != "off"

    # ------------------------------------------------------------------ text

    def tokenize(self, sentences: Union[str, Sequence[str]]) -> torch.Tensor:
        """Sentences -> ``(B, L_ctx)`` tokens; rejects empty sentences, warns once on truncation."""
        if self._tokenizer is None:
            self._tokenizer = get_tokenizer(self.cfg.backbone)
        return tokenize(sentences, self._tokenizer, num_prompts=self.text.num_prompts)

    # ------------------------------------------------------------------ forward

    def initial_history(self, batch_size: int) -> Optional[torch.Tensor]:
        """Learned history tokens for a first clip, ``(B, N_h, D_v)``; None without history."""
        return None if self.history is None else self.history.initial(batch_size)

    def forward(self, frames: torch.Tensor, tokens: torch.Tensor, history: Optional[torch.Tensor] = None,
                record_attention: bool = False, aux: Optional[bool] = None) -> dict:
        """One clip per batch row; see the module docstring for the input and output dicts.

        ``aux``: also run the mask head on every earlier spatio-temporal layer (the auxiliary
        masks the losses use). Default: in training mode only; in eval mode ``aux_masks`` is
        an empty list, which saves the head's work on N_st - 1 layers (18% of a clip-b16
        forward at S=352, T=6, measured with benchmarks/run.py).
        """
        if frames.dim() != 5:
            raise ValueError(f"frames must be (B, T, 3, S, S), got shape {tuple(frames.shape)}")
        if tokens.dim() != 2 or tokens.shape[0] != frames.shape[0]:
            raise ValueError(f"tokens must be (B={frames.shape[0]}, L_ctx), got shape {tuple(tokens.shape)}")
        b, t = frames.shape[:2]
        prompts = self.prompts(t)
        text = self.text(tokens, prompts["language"])
        if self.history is not None and history is None:
            history = self.history.initial(b)
        elif self.history is None:
            history = None
        vis = self.vision(frames, text["words"], text["word_pad"], prompts, history, record_attention)
        fused = self.fusion(vis["visual"], text["words"], text["word_pad"], text["sentence"], record_attention)
        decoder_words = text["words"] if self.reasoner.reads_text else fused["words"]  # (B, L, D_t) or (B, L, d)
        st = self.reasoner(fused["video"], vis["shallow"], decoder_words, text["word_pad"], record_attention)
        out_size = frames.shape[-2:]
        final = st["layers"][-1]  # (B, T, d, h, w)
        pred = self.head(final, out_size, frames)  # (B, T, S, S)
        with_aux = self.training if aux is None else aux
        out = {
            "pred_masks": pred,
            "aux_masks": [self.head(x, out_size, frames) for x in st["layers"][:-1]] if with_aux else [],
            "similarity": self.similarity(final, text["sentence"]),  # (B, T, h, w)
            "history": None if self.history is None else self.history.pool(final, pred),
            "features": final,
            "attn": None,
        }
        if record_attention:
            out["attn"] = {"vision": vis["attn"], "fusion": fused["attn"], "spatiotemporal": st["attn"]}
        return out

    # ------------------------------------------------------------------ parameters

    def train(self, mode: bool = True) -> "VLPRVOS":
        """Train mode for the new modules; CLIP stays in eval (its encoders' ``train`` see to it)."""
        super().train(mode)
        return self

    def trainable_named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """``(name, parameter)`` for every parameter that is trained (everything but CLIP)."""
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad]

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The trained part of the weights (what checkpoints store by default)."""
        names = {n for n, _ in self.trainable_named_parameters()}
        return {k: v for k, v in self.state_dict().items() if k in names}

    def parameter_counts(self) -> dict[str, int]:
        """Trainable and frozen parameter counts, overall and per top-level module."""
        counts = {"trainable": 0, "frozen": 0}
        for name, p in self.named_parameters():  # shared CLIP tensors are listed once
            key = "trainable" if p.requires_grad else "frozen"
            counts[key] += p.numel()
            part = f"{key}/{name.split('.')[0]}"
            counts[part] = counts.get(part, 0) + p.numel()
        return counts


def build_model(cfg: ModelConfig, clip: Optional[nn.Module] = None) -> VLPRVOS:
    """Build ``VLPRVOS`` from a model config (creating the frozen CLIP through open_clip)."""
    model = VLPRVOS(cfg, clip=clip)
    counts = model.parameter_counts()
    logger.info("built VLPRVOS (%s): %.2fM trainable, %.2fM frozen parameters", cfg.backbone.model_name,
                counts["trainable"] / 1e6, counts["frozen"] / 1e6)
    return model
