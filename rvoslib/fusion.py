"""Stage 2 of the VL relation modelling: dual propagation between words and video, then
gating by the sentence (DESIGN section 5).

With word tokens ``E`` (B, L, d) and video tokens ``V`` (B, T*h*w, d):

    E'  = E + CrossAttn(LN E -> LN V)                      words gather video context
    V'  = V + CrossAttn(LN V -> LN E', padded words masked) video gathers word context
    F_f = V' * sigmoid(W s) + V'                            gate by the sentence s, with residual
                                                            (fusion.sentence="gate", the paper's)
    F_f = V' + W s                                          or add it (fusion.sentence="add")

The attention primitive and the feed-forward block come from ``rvoslib.attention``.

Scope (``fusion.scope``). With ``"clip"`` (the paper's stage 2, the default) the words' queries
read the T*h*w tokens of all frames at once. That read has no time code, so it is a view of the
*set* of frames: it tells the words where each object has been, not in which order, which already
separates a still object from a moving one, or a horizontal mover from a vertical one
(docs/toy_scale_findings.md, "The text path, tested with an oracle"). With ``"frame"`` the words
read each frame on its own, ``E'_t = E + CrossAttn(E -> V_t)``, and frame t's video tokens read
``E'_t``; the E' handed on is the mean of the ``E'_t`` over frames (still a set view across
frames, so a strictly per-frame model also needs ``spatiotemporal.decoder_words="text"``). That is
the strict control with no temporal pathway: no temporal prompts, frame-only attention, no
history, frame-scope fusion and the text encoder's words in the decoder.

Sentence (``fusion.sentence``). The paper gates the fused tokens by the sentence; "add" instead adds a
projection of the sentence to every token, with no gate. ``benchmarks/motion_probe.py --readout
fusion`` trains stage 2 + the stage-3 encoder on the tiny CLIP's patch tokens to find which of several
look-alikes moves a given way, at the full model's budget (batch 4 x 4000 steps). Behind the gate,
stage 3 learned the frames' order in one run of four seed pairs; with "add" it learned it in all four
(docs/toy_scale_findings.md, "Stage 2's sentence gate"). In the full model this alone did not make
the order learnable.
"""

from __future__ import annotations

from typing import Optional

import torch
from einops import rearrange
from torch import nn

from rvoslib.attention import MultiHeadAttention
from rvoslib.config import FusionConfig

FUSION_SCOPES = ("clip", "frame")  # values of fusion.scope
SENTENCE_MODES = ("gate", "add")  # values of fusion.sentence


class DualFusion(nn.Module):
    """Stage 2: words <-> video dual propagation and sentence gating.

    dim: internal width d; text_width: D_t of the text encoder's word/sentence features.
    """

    def __init__(self, dim: int, text_width: int, cfg: FusionConfig):
        super().__init__()
        self.word_proj = nn.Linear(text_width, dim)
        self.sentence_proj = nn.Linear(text_width, dim)
        # words -> video
        self.w2v_query_norm = nn.LayerNorm(dim)
        self.w2v_memory_norm = nn.LayerNorm(dim)
        self.word_to_video = MultiHeadAttention(dim, cfg.heads)
        # video -> words
        self.v2w_query_norm = nn.LayerNorm(dim)
        self.v2w_memory_norm = nn.LayerNorm(dim)
        self.video_to_word = MultiHeadAttention(dim, cfg.heads)
        if cfg.scope not in FUSION_SCOPES:
            raise ValueError(f"fusion.scope={cfg.scope!r}: choose one of {list(FUSION_SCOPES)}")
        if cfg.sentence not in SENTENCE_MODES:
            raise ValueError(f"fusion.sentence={cfg.sentence!r}: choose one of {list(SENTENCE_MODES)}")
        self.gate = nn.Linear(dim, dim) if cfg.sentence == "gate" else None
        self.scope = cfg.scope

    def forward(self, video: torch.Tensor, words: torch.Tensor, word_pad: Optional[torch.Tensor],
                sentence: torch.Tensor, record_attention: bool = False) -> dict:
        """Fuse one clip with its sentence.

        video (B, T, d, h, w); words (B, L, D_t); word_pad (B, L) bool, True = padding
        (None: no padding); sentence (B, D_t).
        Returns dict(video=(B, T, d, h, w) fused F_f, words=(B, L, d) updated E',
        attn=dict(word_to_video=(B, L, T*h*w), video_to_word=(B, T*h*w, L)) averaged
        over heads, or None unless ``record_attention``).
        """
        _check_inputs(video, words, word_pad, sentence)
        T, h = video.shape[1], video.shape[3]
        e = self.word_proj(words)  # (B, L, d)
        if self.scope == "clip":
            v = rearrange(video, "b t c h w -> b (t h w) c")  # (B, T*h*w, d)
            e, w2v = self._words_from_video(e, v, record_attention)
            v, v2w = self._video_from_words(v, e, word_pad, record_attention)
        else:
            v, e, w2v, v2w = self._per_frame(video, e, word_pad, record_attention)
        s = self.sentence_proj(sentence)  # (B, d)
        if self.gate is not None:
            v = v * torch.sigmoid(self.gate(s))[:, None, :] + v  # (B, T*h*w, d)
        else:
            v = v + s[:, None, :]  # (B, T*h*w, d)
        fused = rearrange(v, "b (t h w) c -> b t c h w", t=T, h=h)  # (B, T, d, h, w)
        attn = dict(word_to_video=w2v, video_to_word=v2w) if record_attention else None
        return dict(video=fused, words=e, attn=attn)

    def _per_frame(self, video: torch.Tensor, e: torch.Tensor, word_pad: Optional[torch.Tensor], record: bool):
        """Scope "frame": video (B, T, d, h, w), e (B, L, d) -> video (B, T*h*w, d), E' (B, L, d) the
        mean over frames of E'_t, and the weights in the clip scope's shapes (word_to_video divided by T,
        so that each word's weights still sum to 1 over the clip)."""
        B, T = video.shape[:2]
        v = rearrange(video, "b t c h w -> (b t) (h w) c")  # (B*T, h*w, d)
        e_t = e.repeat_interleave(T, dim=0)  # (B*T, L, d), row b*T + t
        pad_t = None if word_pad is None else word_pad.repeat_interleave(T, dim=0)  # (B*T, L)
        e_t, w2v = self._words_from_video(e_t, v, record)
        v, v2w = self._video_from_words(v, e_t, pad_t, record)
        v = rearrange(v, "(b t) n c -> b (t n) c", b=B)  # (B, T*h*w, d)
        e = rearrange(e_t, "(b t) l c -> b t l c", b=B).mean(1)  # (B, L, d)
        if record:
            w2v = rearrange(w2v, "(b t) l n -> b l (t n)", b=B) / T  # (B, L, T*h*w)
            v2w = rearrange(v2w, "(b t) n l -> b (t n) l", b=B)  # (B, T*h*w, L)
        return v, e, w2v, v2w

    def _words_from_video(self, e: torch.Tensor, v: torch.Tensor, record: bool):
        """E' = E + CrossAttn(E -> V): e (B, L, d), v (B, T*h*w, d) -> (B, L, d), weights."""
        memory = self.w2v_memory_norm(v)
        update, weights = self.word_to_video(self.w2v_query_norm(e), memory, memory, record=record)
        return e + update, weights

    def _video_from_words(self, v: torch.Tensor, e: torch.Tensor, word_pad: Optional[torch.Tensor],
                          record: bool):
        """V' = V + CrossAttn(V -> E'), padded words masked: -> (B, T*h*w, d), weights."""
        memory = self.v2w_memory_norm(e)
        allowed = None if word_pad is None else ~word_pad[:, None, :]  # (B, 1, L)
        update, weights = self.video_to_word(self.v2w_query_norm(v), memory, memory, allowed, record)
        return v + update, weights


def _check_inputs(video, words, word_pad, sentence) -> None:
    """Raise a ValueError naming the argument whose shape does not fit."""
    if video.dim() != 5:
        raise ValueError(f"DualFusion: video must be (B, T, d, h, w), got shape {tuple(video.shape)}")
    if words.dim() != 3 or words.shape[0] != video.shape[0]:
        raise ValueError(f"DualFusion: words must be (B, L, D_t) with B={video.shape[0]}, "
                         f"got shape {tuple(words.shape)}")
    if word_pad is not None and (word_pad.shape != words.shape[:2] or word_pad.dtype != torch.bool):
        raise ValueError(f"DualFusion: word_pad must be a bool (B, L) = {tuple(words.shape[:2])} tensor, "
                         f"got {word_pad.dtype} {tuple(word_pad.shape)}")
    if sentence.shape != (words.shape[0], words.shape[2]):
        raise ValueError(f"DualFusion: sentence must be (B, D_t) = {(words.shape[0], words.shape[2])}, "
                         f"got shape {tuple(sentence.shape)}")
