"""Prompt-tuned forward over open_clip's frozen ViT blocks.

Per frame the token sequence is (S_f tokens)

    [CLS | N patches | N_h history | N_v vision prompts | N_tp temporal prompts]

CLS and patches are embedded exactly as open_clip's ``VisionTransformer._embeds`` does
(``conv1``, ``class_embedding``, ``positional_embedding``, ``ln_pre``); history and
prompt tokens are appended after ``ln_pre`` with no position embedding. Frames go
through the blocks as ``(b t)``. For each ViT block l (open_clip ``ResidualAttentionBlock``,
whose frozen weights we call directly: ``ln_1``, ``attn.in_proj_*``, ``attn.out_proj``,
``ls_1``, ``ln_2``, ``mlp``, ``ls_2``):

1. frozen self-attention. ``ln_1`` and the packed q/k/v projection ``attn.in_proj`` run
   once over every token of every frame ``(B*T, S_f, D_v)``; every token attends within
   its own frame, exactly as CLIP does, through ``attn.out_proj`` and the residual add
   through ``ls_1``. With ``vision.capture_placement="attention"`` (the default) the
   **temporal capture is folded in here**: the temporal prompts' rows are replaced by their
   capture over the keys/values this step has just computed (see "Temporal capture").
   Then, in the blocks listed by ``vision.stage1_layers``, a new stage-1
   cross-attention from the frame's CLS and patch tokens to the words, added through a
   gate that is zero at init, so at step 0 the block computes exactly what CLIP computes
   (``rvoslib.stage1``: :class:`~rvoslib.stage1.Stage1CrossAttention`, a bottleneck adapter
   of inner width ``vision.stage1_dim``);
2. frozen MLP (``ln_2``, ``mlp``, ``ls_2``) on every token, temporal prompts included;
3. with ``vision.capture_placement="after-mlp"`` only: the temporal capture as a separate
   step, as the paper's figure draws it,
   ``tp = tp + ls_1(attention(q=ln_1(tp), k=ln_1(all tokens of all frames), v=same))``
   with the block's frozen ``ln_1``, W_q/W_k/W_v/W_o and ``ls_1`` (and the same time code).

Temporal capture. The temporal prompts of all T frames ``(B, T*N_tp)`` attend to the
keys/values of **all tokens of all frames** ``(B, T*S_f)`` (their own frame's and the
others') with block l's own frozen attention weights. This is how information moves
across frames inside the frozen encoder: the temporal prompts gather from every frame in
block l, and in block l+1 every frame's patches read their own frame's (updated) prompts.
Only the temporal prompts' attention is cross-frame; every other token's attention is
CLIP's, untouched (the parity tests check it).

Time code (``vision.capture_time_code``). Attention is permutation-invariant over its keys,
so without a code the capture sees the *set* of frames, not their order. A per-frame code
(``rvoslib.time_code``: :class:`~rvoslib.time_code.CaptureTimeCode`, ``TIME_CODES``; its
module docstring gives the score it adds and why) is added to the keys of frame t's tokens
and to the queries of frame t's temporal prompts, through the block's frozen projections,
only inside the capture (the within-frame attention never sees them).

Placement (``vision.capture_placement``). ``"attention"`` (default) reads the attention
step's keys/values: the block has already computed ``ln_1`` and the key/value projections
of every token of every frame for its own self-attention, so the separate step of
``"after-mlp"`` recomputes them (+17% of a ViT-B block's FLOPs, plus the copies of
regrouping every token; measured with ``benchmarks/run.py`` on ViT-B/16, S=352, T=6, CPU:
the vision encoder took 1.37x the time of open_clip's ``encode_image`` with the separate
step, 1.10x with it folded in, same stage 1). Folded in, it costs only the prompts' own
queries over T*S_f keys (T*N_tp query rows: about 0.1% of a block's FLOPs), with the same
frozen weights. What changes: the prompts read the tokens of block l at the attention
step (as every other query of that attention does) instead of after its MLP, i.e. half a
block earlier; and each block updates a prompt once (one attention, one MLP, the
computation the frozen block was trained for) instead of twice (own-frame attention,
MLP, then a second, cross-frame attention with no MLP after it). The cross-frame path is
as short in both: what frame 0 tells the prompts in block l reaches frame t's patches in
block l+1. ``"after-mlp"`` is kept as the paper's reading, for ablation.

Taps: the patch tokens after each block in ``vision.tap_layers`` ``(B, T, D_v, h, w)``
go through their own 1x1 projection (LayerNorm + Linear, D_v -> d; the LayerNorm
tames the large-magnitude channels of CLIP's residual stream) and are summed into
F_v; the first tap also gets a separate projection into the shallow feature S.

A note on gradients: at step 0 the gates are tanh(0) = 0, so the stage-1
cross-attention weights and the word projection receive an all-zero gradient; each
gate's alpha does receive a non-zero gradient, and once an optimizer step has moved
alpha away from 0 the cross-attention weights are trained too (the tests check both).
The zero-initialised time codes, by contrast, get a non-zero gradient at step 0.

``record_attention=True`` switches every attention of interest to a manual-softmax
path that returns the same outputs (tested) and records head-averaged maps.
The stage-1 and temporal-capture steps run inside ``torch.profiler.record_function``
ranges (``rvoslib.vision.stage1``, ``rvoslib.vision.temporal_capture``; the latter covers
the capture in either placement, though folded in it excludes the shared q/k/v projection),
so a profile shows their share of the encoder (``benchmarks/run.py`` reads them).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn
from torch.profiler import record_function
from torch.utils.checkpoint import checkpoint

from .backbone import keep_frozen_eval, unwrap_clip
from .config import ModelConfig
from .stage1 import Stage1CrossAttention  # also re-exported from here, as before the split
from .time_code import TIME_CODES, CaptureTimeCode  # idem
from .vit_attention import _split_heads, attend, frozen_out_proj  # idem

CAPTURE_PLACEMENTS = ("attention", "after-mlp")  # values of vision.capture_placement


# --------------------------------------------------------------------------- stage 1's residual add


def _add_to_leading(x: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
    """``x`` with ``update (n, M, D)`` added to its first M tokens ``x[:, :M]``; ``x (n, S, D)``.

    Stage 1 reads ``x[:, :M].contiguous()``: a copy when M < S (then the add is done in place,
    with no ``(n, S, D)`` concatenation), but ``x`` itself when M == S (a frame of CLS and
    patches only, no history or prompts). Stage 1's LayerNorm saved that tensor for backward,
    so in that case the add must not be in place.
    """
    if update.shape[1] == x.shape[1]:
        return x + update
    x[:, :update.shape[1]].add_(update)  # x[:, :M] was copied before stage 1 read it
    return x


# --------------------------------------------------------------------------- the encoder


class PromptedVisionEncoder(nn.Module):
    """CLIP's frozen ViT with prompts, history tokens, stage-1 VL attention and temporal capture.

    Args:
        clip_model: open_clip ``CLIP`` (or :class:`~rvoslib.backbone.FrozenCLIP`) with a ViT
            (``ResidualAttentionBlock`` blocks, class-token pooling) built at S x S.
        cfg: ``ModelConfig`` (reads ``vision``, ``prompts.max_frames``, ``dim``,
            ``backbone.grad_checkpointing``).

    See the module docstring for the computation; :meth:`forward` for shapes.
    """

    def __init__(self, clip_model: nn.Module, cfg: ModelConfig):
        super().__init__()
        visual = unwrap_clip(clip_model).visual
        self._check_visual(visual)
        self.visual = visual
        self.cfg = cfg
        depth, width = len(self.blocks), visual.conv1.out_channels
        self.tap_layers = self._layer_indices(cfg.vision.tap_layers, depth, "vision.tap_layers")
        if not self.tap_layers:
            raise ValueError("vision.tap_layers must name at least one block")
        stage1 = cfg.vision.stage1_layers
        stage1 = range(depth) if stage1 is None else self._layer_indices(stage1, depth, "vision.stage1_layers")
        inner = cfg.vision.stage1_dim if cfg.vision.stage1_dim is not None else max(width // 4, 1)
        self.stage1_dim = inner  # r
        self.stage1 = nn.ModuleDict(
            {str(l): Stage1CrossAttention(width, cfg.vision.stage1_heads, inner) for l in stage1}
            if cfg.vision.stage1 else {})
        self._text_width = self._find_text_width(unwrap_clip(clip_model))
        self.word_proj = nn.Linear(self._text_width, inner) if self.stage1 else None  # D_t -> r, shared
        self.tap_proj = nn.ModuleList([nn.Sequential(nn.LayerNorm(width), nn.Linear(width, cfg.dim))
                                       for _ in self.tap_layers])
        self.shallow_proj = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, cfg.dim))
        self.grad_checkpointing = cfg.backbone.grad_checkpointing
        self.capture_placement = self._choice(cfg.vision.capture_placement, CAPTURE_PLACEMENTS,
                                              "vision.capture_placement")
        code = self._choice(cfg.vision.capture_time_code, TIME_CODES, "vision.capture_time_code")
        captures = cfg.prompts.use_temporal and cfg.prompts.num_temporal > 0
        self.time_code = (CaptureTimeCode(code, cfg.prompts.max_frames, width)
                          if captures and code != "none" else None)  # None: no capture, or no code

    # ---------------------------------------------------------------- construction helpers

    @staticmethod
    def _check_visual(visual: nn.Module) -> None:
        from open_clip.transformer import ResidualAttentionBlock

        blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
        if blocks is None or not hasattr(visual, "conv1"):
            raise ValueError("PromptedVisionEncoder needs an open_clip VisionTransformer (ViT) vision tower")
        if not all(isinstance(b, ResidualAttentionBlock) and isinstance(b.attn, nn.MultiheadAttention)
                   and b.attn.batch_first for b in blocks):
            raise ValueError("PromptedVisionEncoder supports open_clip's default ResidualAttentionBlock "
                             "(batch-first nn.MultiheadAttention); this ViT uses custom blocks")
        if getattr(visual, "attn_pool", None) is not None or getattr(visual, "pool_type", "tok") != "tok":
            raise ValueError("PromptedVisionEncoder supports class-token pooling (pool_type='tok', no attn_pool)")

    @staticmethod
    def _choice(value: str, choices: tuple, name: str) -> str:
        if value not in choices:
            raise ValueError(f"{name}={value!r}: choose one of {list(choices)}")
        return value

    @staticmethod
    def _find_text_width(clip: nn.Module) -> int:
        tower = getattr(clip, "text", clip)
        if getattr(tower, "positional_embedding", None) is not None:
            return tower.positional_embedding.shape[1]
        return getattr(tower, "width", None) or getattr(getattr(tower, "transformer", None), "width")

    @staticmethod
    def _layer_indices(layers, depth: int, name: str) -> tuple:
        out = []
        for l in layers:
            if not -depth <= int(l) < depth:
                raise ValueError(f"{name}={tuple(layers)}: block {l} does not exist; the ViT has {depth} blocks "
                                 f"(0..{depth - 1})")
            out.append(int(l) % depth)
        return tuple(out)

    # ---------------------------------------------------------------- properties

    @property
    def blocks(self) -> nn.ModuleList:
        """open_clip's frozen ``ResidualAttentionBlock`` list (not registered twice)."""
        return self.visual.transformer.resblocks

    @property
    def vision_width(self) -> int:
        """D_v."""
        return self.visual.conv1.out_channels

    @property
    def text_width(self) -> int:
        """D_t of the words that stage 1 reads."""
        return self._text_width

    @property
    def patch_size(self) -> int:
        """Side of a square patch in pixels."""
        return self.visual.conv1.kernel_size[0]

    @property
    def image_size(self) -> int:
        """S, the square input side the ViT was built for."""
        return self.grid_size[0] * self.patch_size

    @property
    def grid_size(self) -> tuple:
        """(h, w) patch grid."""
        return tuple(self.visual.grid_size)

    def train(self, mode: bool = True) -> "PromptedVisionEncoder":
        super().train(mode)
        keep_frozen_eval(self.visual)
        return self

    # ---------------------------------------------------------------- input checks

    def _check_inputs(self, frames: torch.Tensor, words: Optional[torch.Tensor], word_pad: Optional[torch.Tensor],
                      vision: Optional[torch.Tensor], temporal: Optional[torch.Tensor],
                      history: Optional[torch.Tensor]) -> None:
        """Raise ``ValueError`` naming the expected shape for any malformed input."""
        s, d = self.image_size, self.vision_width
        if not torch.is_tensor(frames) or frames.dim() != 5 or frames.shape[2] != 3 or frames.shape[-2:] != (s, s):
            got = tuple(frames.shape) if torch.is_tensor(frames) else type(frames).__name__
            raise ValueError(f"frames must be (B, T, 3, {s}, {s}) (RGB, S={s} as the backbone was built, "
                             f"normalised with CLIP's mean/std); got {got}")
        if not frames.is_floating_point():
            raise ValueError(f"frames must be a float tensor normalised with CLIP's mean/std, got {frames.dtype}")
        b, t = frames.shape[:2]
        if t > self.cfg.prompts.max_frames:
            raise ValueError(f"clip has T={t} frames; at most prompts.max_frames={self.cfg.prompts.max_frames}")
        if self.stage1:
            if words is None or word_pad is None:
                raise ValueError("stage-1 cross-attention (vision.stage1=True) needs words and word_pad")
            if words.dim() != 3 or words.shape[0] != b or words.shape[2] != self.text_width:
                raise ValueError(f"words must be (B={b}, L, D_t={self.text_width}), got {tuple(words.shape)}")
            if word_pad.shape != words.shape[:2] or word_pad.dtype != torch.bool:
                raise ValueError(f"word_pad must be a bool tensor (B, L)={tuple(words.shape[:2])}, "
                                 f"got {tuple(word_pad.shape)} {word_pad.dtype}")
            if bool(word_pad.all(dim=1).any()):
                raise ValueError("every sentence needs at least one unpadded word (word_pad is all True in a row)")
        if vision is not None and (vision.dim() != 2 or vision.shape[1] != d):
            raise ValueError(f"vision prompts must be (N_v, D_v={d}), got {tuple(vision.shape)}")
        if temporal is not None and (temporal.dim() != 3 or temporal.shape[0] != t or temporal.shape[2] != d):
            raise ValueError(f"temporal prompts must be (T={t}, N_tp, D_v={d}), got {tuple(temporal.shape)}")
        if history is not None and (history.dim() != 3 or history.shape[0] != b or history.shape[2] != d):
            raise ValueError(f"history must be (B={b}, N_h, D_v={d}), got {tuple(history.shape)}")

    # ---------------------------------------------------------------- pieces of the forward

    def _embed(self, frames: torch.Tensor, extra: list) -> torch.Tensor:
        """Frames ``(B, T, 3, S, S)`` -> token sequences ``(B*T, S_f, D_v)``.

        CLS and patches as in open_clip's ``VisionTransformer._embeds`` (patch dropout is
        the identity in eval mode); ``extra`` tokens ``(B*T, n, D_v)`` appended after ``ln_pre``.
        """
        v = self.visual
        x = v.conv1(rearrange(frames, "b t c h w -> (b t) c h w").to(v.conv1.weight.dtype))  # (B*T, D_v, h, w)
        x = rearrange(x, "n c h w -> n (h w) c")  # (B*T, N, D_v)
        cls = v.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)  # (B*T, 1, D_v)
        x = torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype)  # (B*T, 1 + N, D_v)
        x = v.ln_pre(x)
        return torch.cat([x, *[e.to(x.dtype) for e in extra]], dim=1)  # (B*T, S_f, D_v)

    def _block(self, layer: int, x: torch.Tensor, words: Optional[torch.Tensor], keep: Optional[torch.Tensor],
               batch: int, num_temporal: int, rec: Optional[dict]) -> torch.Tensor:
        """Block ``layer`` (steps 1-3 of the module docstring) on ``x (B*T, S_f, D_v)``; records into ``rec``.

        ``words (B*T, L, r)`` and ``keep (B*T, 1, 1, L)`` are the projected words and their mask,
        repeated for every frame (stage 1 treats each token on its own, so frames need not be joined).
        The temporal prompts are the last ``num_temporal`` tokens of every frame (0: no capture).
        """
        block = self.blocks[layer]
        codes = self._time_codes(x.shape[0] // batch) if num_temporal else None
        folded = num_temporal if self.capture_placement == "attention" else 0
        x = x + block.ls_1(self._attention(block.attn, block.ln_1(x), batch, folded, codes, rec))
        if str(layer) in self.stage1:
            with record_function("rvoslib.vision.stage1"):
                n_vis = 1 + self.grid_size[0] * self.grid_size[1]  # CLS + patches
                update, weights = self.stage1[str(layer)](x[:, :n_vis].contiguous(), words, keep, rec is not None)
                x = _add_to_leading(x, update)  # (B*T, S_f, D_v)
            if rec is not None:
                rec["stage1"] = rearrange(weights[:, 1:], "(b t) n l -> b t n l", b=batch)  # (B, T, N, L)
        x = x + block.ls_2(block.mlp(block.ln_2(x)))
        if num_temporal and self.capture_placement == "after-mlp":
            x = self._capture_after_mlp(block, x, batch, num_temporal, codes, rec)
        return x

    def _time_codes(self, num_frames: int) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
        """``(key (T, D_v), query (T, D_v))`` codes of the capture, or None (``capture_time_code="none"``)."""
        return None if self.time_code is None else self.time_code(num_frames)

    def _attention(self, attn: nn.MultiheadAttention, h: torch.Tensor, batch: int, num_temporal: int,
                   codes: Optional[tuple], rec: Optional[dict]) -> torch.Tensor:
        """The frozen self-attention of a block, with temporal capture folded in when ``num_temporal``.

        Args:
            h: ``(B*T, S_f, D_v)`` = ``ln_1(x)``; the temporal prompts are its last ``num_temporal``
                tokens (0: plain per-frame self-attention for every token).
            codes: the capture's time codes (see :meth:`_capture`), or None.

        Returns:
            ``(B*T, S_f, D_v)``, before ``ls_1``: for every token but the temporal prompts, the
            block's self-attention within its frame (what ``block.attention(h)`` computes); for the
            temporal prompts, their capture over the keys/values of all tokens of all T frames.
        """
        record = rec is not None
        qkv = F.linear(h, attn.in_proj_weight, attn.in_proj_bias)  # (B*T, S_f, 3 D_v), rows [W_q; W_k; W_v]
        q, k, v = (_split_heads(z, attn.num_heads) for z in qkv.chunk(3, dim=-1))  # (B*T, heads, S_f, c), views
        out, weights = attend(q, k, v, record=record)  # (B*T, heads, S_f, c)
        a = frozen_out_proj(attn, out)  # (B*T, S_f, D_v)
        if record:
            rec["self"] = weights.mean(dim=1)  # (B*T, S_f, S_f); with a folded capture, the prompts' rows are unused
        if num_temporal:
            with record_function("rvoslib.vision.temporal_capture"):
                q_all, k_all, v_all = (rearrange(z, "(b t) s c -> b t s c", b=batch)
                                       for z in qkv.chunk(3, dim=-1))  # (B, T, S_f, D_v) each, views
                a_tp = self._capture(attn, q_all[:, :, -num_temporal:], k_all, v_all, codes, rec)  # (B, T, N_tp, D_v)
                a[:, -num_temporal:] = rearrange(a_tp, "b t p c -> (b t) p c")  # in place, small
        return a

    def _capture_after_mlp(self, block: nn.Module, x: torch.Tensor, batch: int, num_temporal: int,
                           codes: Optional[tuple], rec: Optional[dict]) -> torch.Tensor:
        """The capture as a separate step after the MLP (``capture_placement="after-mlp"``):
        ``tp = tp + ls_1(attention(q=ln_1(tp), k=ln_1(all tokens of all frames), v=same))``.

        Args:
            x: ``(B*T, S_f, D_v)`` after the block's MLP; the temporal prompts are its last tokens.

        Returns:
            ``(B*T, S_f, D_v)``: ``x`` with the temporal prompts updated (a new tensor).
        """
        with record_function("rvoslib.vision.temporal_capture"):
            attn, d = block.attn, x.shape[-1]
            h = rearrange(block.ln_1(x), "(b t) s c -> b t s c", b=batch)  # (B, T, S_f, D_v)
            (w_q, w_kv), (b_q, b_kv) = attn.in_proj_weight.split([d, 2 * d]), attn.in_proj_bias.split([d, 2 * d])
            q_tp = F.linear(h[:, :, -num_temporal:], w_q, b_q)  # (B, T, N_tp, D_v)
            k_all, v_all = F.linear(h, w_kv, b_kv).chunk(2, dim=-1)  # (B, T, S_f, D_v) each
            a_tp = self._capture(attn, q_tp, k_all, v_all, codes, rec)  # (B, T, N_tp, D_v)
            update = rearrange(block.ls_1(a_tp), "b t p c -> (b t) p c")  # (B*T, N_tp, D_v)
            return torch.cat([x[:, :-num_temporal], x[:, -num_temporal:] + update], dim=1)  # (B*T, S_f, D_v)

    @staticmethod
    def _capture(attn: nn.MultiheadAttention, q_tp: torch.Tensor, k_all: torch.Tensor, v_all: torch.Tensor,
                 codes: Optional[tuple], rec: Optional[dict]) -> torch.Tensor:
        """Temporal capture: the temporal prompts of all T frames attend to all tokens of all frames.

        Args:
            attn: the block's frozen attention (heads, ``in_proj_weight`` for the codes, ``out_proj``).
            q_tp: ``(B, T, N_tp, D_v)`` projected queries of the temporal prompts.
            k_all, v_all: ``(B, T, S_f, D_v)`` projected keys and values of every token of every frame.
            codes: None, or ``(key (T, D_v), query (T, D_v))`` time codes in ``ln_1``'s output space:
                ``W_k key[t]`` is added to frame t's keys, ``W_q query[t]`` to frame t's prompts'
                queries (no bias: the projections' biases are already in ``k_all`` and ``q_tp``).

        Returns:
            ``(B, T, N_tp, D_v)`` after the output projection (before ``ls_1``); records
            ``rec["temporal"] (B, T*N_tp, T, S_f)`` when ``rec`` is a dict.
        """
        t = q_tp.shape[1]
        if codes is not None:
            key_code, query_code = codes
            w_q, w_k, _ = attn.in_proj_weight.chunk(3)  # (D_v, D_v) each
            k_all = k_all + rearrange(F.linear(key_code.to(w_k.dtype), w_k), "t c -> 1 t 1 c")  # (B, T, S_f, D_v)
            q_tp = q_tp + rearrange(F.linear(query_code.to(w_q.dtype), w_q), "t c -> 1 t 1 c")  # (B, T, N_tp, D_v)
        q = _split_heads(rearrange(q_tp, "b t p c -> b (t p) c"), attn.num_heads)  # (B, heads, T*N_tp, c)
        k, v = (_split_heads(rearrange(z, "b t s c -> b (t s) c"), attn.num_heads)
                for z in (k_all, v_all))  # (B, heads, T*S_f, c)
        out, weights = attend(q, k, v, record=rec is not None)  # (B, heads, T*N_tp, c)
        if rec is not None:
            rec["temporal"] = rearrange(weights.mean(dim=1), "b q (t s) -> b q t s", t=t)  # (B, T*N_tp, T, S_f)
        return rearrange(frozen_out_proj(attn, out), "b (t p) c -> b t p c", t=t)  # (B, T, N_tp, D_v)

    def _run(self, fn, *args) -> torch.Tensor:
        """Call ``fn(*args, rec=None)``, under activation checkpointing when configured and useful."""
        if self.grad_checkpointing and torch.is_grad_enabled():
            return checkpoint(fn, *args, None, use_reentrant=False)
        return fn(*args, None)

    # ---------------------------------------------------------------- forward

    def forward(self, frames: torch.Tensor, words: Optional[torch.Tensor] = None,
                word_pad: Optional[torch.Tensor] = None, prompts: Optional[dict] = None,
                history: Optional[torch.Tensor] = None, record_attention: bool = False) -> dict:
        """Encode a batch of clips.

        Args:
            frames: ``(B, T, 3, S, S)`` normalised with CLIP's mean/std.
            words: ``(B, L, D_t)`` word features; word_pad ``(B, L)`` bool, True at padding
                (both required when ``vision.stage1``).
            prompts: dict from :class:`~rvoslib.prompts.PromptGenerator` (``vision (N_v, D_v)``,
                ``temporal (T, N_tp, D_v)``; None entries or None = no such prompts).
                Temporal capture runs when temporal prompts are given.
            history: ``(B, N_h, D_v)`` history tokens, or None.
            record_attention: also return attention maps (manual-softmax path, same outputs).

        Returns:
            dict with ``visual`` F_v ``(B, T, d, h, w)``, ``shallow`` S ``(B, T, d, h, w)``,
            ``taps`` list of raw ``(B, T, D_v, h, w)`` (order of ``vision.tap_layers``),
            ``cls`` ``(B, T, D_v)`` final class token after ``ln_post``, ``cls_proj``
            ``(B, T, embed_dim)`` (= ``cls @ visual.proj``, CLIP's image embedding), and
            ``attn``: None, or a dict of per-block lists (None where not applicable):
            ``stage1`` ``(B, T, N, L)`` patch-to-word, ``prompt_to_patch`` ``(B, T, N_v, N)``
            vision-prompt-to-patch share of the frozen self-attention, ``cls_to_patch``
            ``(B, T, N)``, ``temporal`` ``(B, T*N_tp, T, S_f)`` temporal-prompt-to-frame-token;
            all averaged over heads; and ``layout``, the token slices of a frame sequence.
        """
        prompts = prompts or {}
        vision, temporal = prompts.get("vision"), prompts.get("temporal")
        self._check_inputs(frames, words, word_pad, vision, temporal, history)
        b, t = frames.shape[:2]
        (gh, gw), n = self.grid_size, self.grid_size[0] * self.grid_size[1]
        extra = [] if history is None else [repeat(history, "b n c -> (b t) n c", t=t)]  # (B*T, N_h, D_v)
        if vision is not None:
            extra.append(repeat(vision, "n c -> bt n c", bt=b * t))  # (B*T, N_v, D_v)
        if temporal is not None:
            extra.append(repeat(temporal, "t n c -> (b t) n c", b=b))  # (B*T, N_tp, D_v)
        x = self._embed(frames, extra)  # (B*T, S_f, D_v)
        layout = self._layout(n, history, vision, temporal)
        words_v = keep = None
        if self.stage1:
            words_v = repeat(self.word_proj(words.to(x.dtype)), "b l c -> (b t) l c", t=t)  # (B*T, L, r)
            keep = repeat(~word_pad, "b l -> (b t) 1 1 l", t=t)  # (B*T, 1, 1, L)
        n_tp = 0 if temporal is None else temporal.shape[1]
        attn = ({"stage1": [], "prompt_to_patch": [], "cls_to_patch": [], "temporal": [], "layout": layout}
                if record_attention else None)
        tapped = {}
        for layer in range(len(self.blocks)):
            if record_attention:
                rec = {}
                x = self._block(layer, x, words_v, keep, b, n_tp, rec)
                self._collect(attn, rec, b, layout)
            else:
                x = self._run(self._block, layer, x, words_v, keep, b, n_tp)
            if layer in self.tap_layers:
                tapped[layer] = x[:, 1:1 + n]  # (B*T, N, D_v)

        taps = [tapped[l] for l in self.tap_layers]
        visual = sum(proj(tok) for proj, tok in zip(self.tap_proj, taps))  # (B*T, N, d)
        shallow = self.shallow_proj(taps[0])  # (B*T, N, d)
        def to_map(tokens: torch.Tensor) -> torch.Tensor:
            return rearrange(tokens, "(b t) (h w) c -> b t c h w", b=b, h=gh, w=gw)  # (B, T, C, h, w)

        cls = rearrange(self.visual.ln_post(x[:, 0]), "(b t) c -> b t c", b=b)  # (B, T, D_v)
        proj = self.visual.proj
        return {"visual": to_map(visual), "shallow": to_map(shallow), "taps": [to_map(y) for y in taps],
                "cls": cls, "cls_proj": cls @ proj if proj is not None else cls, "attn": attn}

    @staticmethod
    def _layout(n: int, history, vision, temporal) -> dict:
        """Slices of the per-frame token sequence: cls, patches, history, vision, temporal."""
        sizes = {"cls": 1, "patches": n, "history": 0 if history is None else history.shape[1],
                 "vision": 0 if vision is None else vision.shape[0],
                 "temporal": 0 if temporal is None else temporal.shape[1]}
        layout, start = {}, 0
        for name, size in sizes.items():
            layout[name] = slice(start, start + size)
            start += size
        return layout

    @staticmethod
    def _collect(attn: dict, rec: dict, batch: int, layout: dict) -> None:
        """Append one block's recorded maps (see ``forward``) to ``attn``."""
        patches, vis = layout["patches"], layout["vision"]
        self_attn = rearrange(rec["self"], "(b t) q k -> b t q k", b=batch)  # (B, T, S_f, S_f)
        attn["stage1"].append(rec.get("stage1"))
        attn["prompt_to_patch"].append(self_attn[:, :, vis, patches] if vis.stop > vis.start else None)
        attn["cls_to_patch"].append(self_attn[:, :, 0, patches])
        attn["temporal"].append(rec.get("temporal"))
