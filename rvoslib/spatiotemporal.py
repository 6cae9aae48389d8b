"""Stage 3: cube-frame attention encoder and the shallow-feature/text decoder (DESIGN section 5).

``SpatioTemporalEncoder`` stacks N_st pre-norm layers over the fused clip features:

    x += CubeAttn(LN x)     # a k x k window through all T frames (rvoslib.cubes)
    x += FrameAttn(LN x)    # global attention inside one frame
    x += FFN(LN x)

with a fixed 3-D sine position encoding (rvoslib.position) added to queries and keys.
What the values carry is ``cfg.value_position``: "none" (content only, the default), "absolute"
(the sine code added to the values too) or "relative" (a learned vector per (dt, dy, dx) offset
between query and key, added to the value read, inside cubes only: rvoslib.relative_values).
Without position in the values, attention can find the same object in another frame but its
output cannot say where that was (benchmarks/motion_probe.py measures the difference).
``cfg.attention`` picks the ablation:

    "cube-frame"    cube then frame attention (the paper's design)
    "full"          one attention over all T*h*w tokens instead of both
    "frame"         frame attention only (no information across frames)
    "cube"          cube attention only
    "shifted-cube"  cube attention whose windows are shifted by k // 2 on odd layers
                    (Swin-style, wrapped strips masked), then frame attention

``ShallowTextDecoder`` lets the shallow feature S query the words, and
``SpatioTemporalReasoner`` adds the decoder's layer outputs to the encoder's. Which words
the decoder reads is ``cfg.decoder_words``:

    "fused"  stage-2's updated words E' (B, L, d) (the default): words that have already
             read the video (E' = E + CrossAttn(E -> V)), so the shallow feature is matched
             against a sentence grounded in this clip
    "text"   the text encoder's word features (B, L, D_t), projected to d by a new Linear
             (``word_proj``), as the paper's figure draws it: the decoder's keys do not
             depend on the video, only on the sentence

We default to "fused" because E' is already in the model's width and carries what stage 2
found in the clip, at no extra parameters; "text" is the paper's reading, kept for
ablation. (Both are masked by the same ``word_pad``.)
Inside the layers the clip is kept channels-last, ``(B, T, h, w, d)``.
"""

from __future__ import annotations

from typing import Optional

import torch
from einops import rearrange
from torch import nn

from rvoslib.config import SpatioTemporalConfig
from rvoslib.cubes import axis_shift, cube_attention_mask, cube_partition, cube_unpartition, num_cubes
from rvoslib.attention import FeedForward, MultiHeadAttention
from rvoslib.position import sine_position_3d
from rvoslib.relative_values import RelativeOffsetCode

ATTENTION_MODES = ("cube-frame", "full", "frame", "cube", "shifted-cube")
DECODER_WORDS = ("fused", "text")  # values of spatiotemporal.decoder_words
VALUE_POSITIONS = ("none", "absolute", "relative")  # values of spatiotemporal.value_position

# the attention blocks each mode runs, in order, before the FFN
_MODE_BLOCKS = {
    "cube-frame": ("cube", "frame"),
    "full": ("full",),
    "frame": ("frame",),
    "cube": ("cube",),
    "shifted-cube": ("cube", "frame"),
}


def check_attention_mode(mode: str) -> None:
    """Raise a ValueError unless ``mode`` is one of ``ATTENTION_MODES``."""
    if mode not in ATTENTION_MODES:
        raise ValueError(f"spatiotemporal.attention: unknown mode {mode!r}; "
                         f"choose one of {list(ATTENTION_MODES)}")


def check_value_position(cfg: SpatioTemporalConfig) -> None:
    """Raise a ValueError for an unknown ``value_position``, or "relative" without a cube block."""
    if cfg.value_position not in VALUE_POSITIONS:
        raise ValueError(f"spatiotemporal.value_position: unknown {cfg.value_position!r}; "
                         f"choose one of {list(VALUE_POSITIONS)}")
    if cfg.value_position == "relative" and "cube" not in _MODE_BLOCKS.get(cfg.attention, ()):
        raise ValueError(f"spatiotemporal.value_position='relative' codes offsets inside cubes, and "
                         f"attention={cfg.attention!r} has no cube block; use 'absolute' or 'none'")


def attention_cost(mode: str, T: int, h: int, w: int, k: int) -> int:
    """Query-key pairs one encoder layer computes, per clip and head.

    Counts what the implementation computes, padded cube tokens included:
    cube ``nC * (T k^2)^2`` (about ``T^2 h w k^2``), frame ``T (h w)^2``, full
    ``(T h w)^2``; "cube-frame" and "shifted-cube" are cube + frame.
    """
    check_attention_mode(mode)
    costs = {"cube": num_cubes(h, w, k) * (T * k * k) ** 2,
             "frame": T * (h * w) ** 2,
             "full": (T * h * w) ** 2}
    return sum(costs[block] for block in _MODE_BLOCKS[mode])


class SpatioTemporalLayer(nn.Module):
    """One pre-norm layer: the mode's attention blocks, then an FFN. (B, T, h, w, d) -> same.

    shift: window shift of the cube attention (0 = plain cubes; k // 2 on odd
    "shifted-cube" layers).
    """

    def __init__(self, dim: int, cfg: SpatioTemporalConfig, shift: int = 0):
        super().__init__()
        check_attention_mode(cfg.attention)
        self.blocks = _MODE_BLOCKS[cfg.attention]
        self.cube_size = cfg.cube_size
        self.shift = shift
        check_value_position(cfg)
        self.value_position = cfg.value_position
        self.offsets = (RelativeOffsetCode(dim, cfg.heads, cfg.cube_size, init_std=cfg.relative_init_std)
                        if cfg.value_position == "relative" else None)
        self.norms = nn.ModuleDict({name: nn.LayerNorm(dim) for name in self.blocks})
        self.attns = nn.ModuleDict({name: MultiHeadAttention(dim, cfg.heads, cfg.dropout)
                                    for name in self.blocks})
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, cfg.ffn_dim, cfg.dropout)

    def forward(self, x: torch.Tensor, pos: torch.Tensor, record: bool = False
                ) -> tuple[torch.Tensor, Optional[dict]]:
        """x (B, T, h, w, d), pos (T, h, w, d) -> x (B, T, h, w, d), maps or None.

        maps (when ``record``): {"cube": (B*nC, T*k*k, T*k*k), "frame": (B*T, h*w, h*w),
        "full": (B, T*h*w, T*h*w)} for the blocks the mode runs, averaged over heads.
        """
        maps = {}
        for name in self.blocks:
            attend = getattr(self, f"{name}_attention")
            update, maps[name] = attend(self.norms[name](x), pos, record)
            x = x + update
        x = x + self.ffn(self.ffn_norm(x))
        return x, (maps if record else None)

    def _values(self, y: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """What the attention reads: y, plus the position code with ``value_position="absolute"``."""
        return y + pos if self.value_position == "absolute" else y

    def cube_attention(self, y: torch.Tensor, pos: torch.Tensor, record: bool = False):
        """Attention inside each (possibly shifted) cube: y (B, T, h, w, d) normalised -> update, weights.

        Padded keys (and, when shifted, keys of another strip) are masked; padded query
        outputs are dropped by ``cube_unpartition``.
        """
        _, T, h, w, _ = y.shape
        k = self.cube_size
        shift = (axis_shift(h, k, self.shift), axis_shift(w, k, self.shift))
        values, key_pad = cube_partition(self._values(y, pos), k, shift)  # (B*nC, T*k*k, d), (B*nC, T*k*k)
        query, _ = cube_partition(y + pos, k, shift)  # (B*nC, T*k*k, d)
        allowed = cube_attention_mask(key_pad, h, w, k, T, shift)
        offsets = None if self.offsets is None else self.offsets(T)  # (heads, T*k*k, T*k*k, c)
        out, weights = self.attns["cube"](query, query, values, allowed, record, value_offsets=offsets)
        return cube_unpartition(out, k, T, h, w, shift), weights  # (B, T, h, w, d)

    def frame_attention(self, y: torch.Tensor, pos: torch.Tensor, record: bool = False):
        """Global attention inside each frame: y (B, T, h, w, d) normalised -> update, weights."""
        B, _, h, _, _ = y.shape
        values = rearrange(self._values(y, pos), "b t h w c -> (b t) (h w) c")  # (B*T, h*w, d)
        query = rearrange(y + pos, "b t h w c -> (b t) (h w) c")  # (B*T, h*w, d)
        out, weights = self.attns["frame"](query, query, values, record=record)
        return rearrange(out, "(b t) (h w) c -> b t h w c", b=B, h=h), weights

    def full_attention(self, y: torch.Tensor, pos: torch.Tensor, record: bool = False):
        """Attention over all T*h*w tokens of a clip: y (B, T, h, w, d) normalised -> update, weights."""
        _, T, h, _, _ = y.shape
        values = rearrange(self._values(y, pos), "b t h w c -> b (t h w) c")  # (B, T*h*w, d)
        query = rearrange(y + pos, "b t h w c -> b (t h w) c")  # (B, T*h*w, d)
        out, weights = self.attns["full"](query, query, values, record=record)
        return rearrange(out, "b (t h w) c -> b t h w c", t=T, h=h), weights


class SpatioTemporalEncoder(nn.Module):
    """N_st ``SpatioTemporalLayer``s over a clip, with a fixed 3-D sine position encoding."""

    def __init__(self, dim: int, cfg: SpatioTemporalConfig):
        super().__init__()
        check_attention_mode(cfg.attention)
        self.dim = dim
        shifted = cfg.attention == "shifted-cube"
        self.layers = nn.ModuleList(
            SpatioTemporalLayer(dim, cfg, shift=cfg.cube_size // 2 if shifted and i % 2 else 0)
            for i in range(cfg.layers))

    def forward(self, x: torch.Tensor, record_attention: bool = False) -> dict:
        """x (B, T, d, h, w) -> dict(layers=[(B, T, d, h, w)] one per layer (last = final),
        attn=[maps per layer] (see ``SpatioTemporalLayer.forward``) or None)."""
        _, T, d, h, w = x.shape
        if d != self.dim:
            raise ValueError(f"SpatioTemporalEncoder: expected width d={self.dim}, "
                             f"got x of shape {tuple(x.shape)}")
        pos = sine_position_3d(T, h, w, d, device=x.device, dtype=x.dtype)  # (T, h, w, d)
        x = rearrange(x, "b t c h w -> b t h w c")  # (B, T, h, w, d)
        outputs, maps = [], []
        for layer in self.layers:
            x, layer_maps = layer(x, pos, record_attention)
            outputs.append(rearrange(x, "b t h w c -> b t c h w"))  # (B, T, d, h, w)
            maps.append(layer_maps)
        return dict(layers=outputs, attn=maps if record_attention else None)


class ShallowTextLayer(nn.Module):
    """Pre-norm cross-attention from shallow-feature tokens to words, then an FFN."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float = 0.0):
        super().__init__()
        self.query_norm = nn.LayerNorm(dim)
        self.memory_norm = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, heads, dropout)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, ffn_dim, dropout)

    def forward(self, s: torch.Tensor, words: torch.Tensor, word_pad: Optional[torch.Tensor],
                record: bool = False) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """s (B, N, d), words (B, L, d), word_pad (B, L) True = padding -> (B, N, d), weights (B, N, L)."""
        memory = self.memory_norm(words)
        allowed = None if word_pad is None else ~word_pad[:, None, :]  # (B, 1, L)
        update, weights = self.attn(self.query_norm(s), memory, memory, allowed, record)
        s = s + update
        return s + self.ffn(self.ffn_norm(s)), weights


class ShallowTextDecoder(nn.Module):
    """The shallow feature S queries the words, one output per layer.

    No position encoding: the keys (words) have no location, and each pixel is
    matched to the sentence by content alone.
    """

    def __init__(self, dim: int, layers: int, heads: int, ffn_dim: Optional[int] = None,
                 dropout: float = 0.0):
        super().__init__()
        self.layers = nn.ModuleList(
            ShallowTextLayer(dim, heads, ffn_dim or 4 * dim, dropout) for _ in range(layers))

    def forward(self, shallow: torch.Tensor, words: torch.Tensor, word_pad: Optional[torch.Tensor],
                record_attention: bool = False) -> dict:
        """shallow (B, T, d, h, w), words (B, L, d), word_pad (B, L) bool True = padding.

        Returns dict(layers=[(B, T, d, h, w)] one per layer, attn=[(B, T*h*w, L)] per layer or None).
        """
        _, T, _, h, _ = shallow.shape
        s = rearrange(shallow, "b t c h w -> b (t h w) c")  # (B, T*h*w, d)
        outputs, maps = [], []
        for layer in self.layers:
            s, weights = layer(s, words, word_pad, record_attention)
            outputs.append(rearrange(s, "b (t h w) c -> b t c h w", t=T, h=h))  # (B, T, d, h, w)
            maps.append(weights)
        return dict(layers=outputs, attn=maps if record_attention else None)


class SpatioTemporalReasoner(nn.Module):
    """Encoder over the fused features plus (optionally) the shallow-feature/text decoder.

    Args:
        dim: d.
        cfg: ``SpatioTemporalConfig``.
        text_width: D_t of the text encoder's words; needed with ``decoder_words="text"``.
    """

    def __init__(self, dim: int, cfg: SpatioTemporalConfig, text_width: Optional[int] = None):
        super().__init__()
        if cfg.decoder_words not in DECODER_WORDS:
            raise ValueError(f"spatiotemporal.decoder_words={cfg.decoder_words!r}: choose one of {list(DECODER_WORDS)}")
        reads_text = cfg.decoder and cfg.decoder_words == "text"
        if reads_text and text_width is None:
            raise ValueError("spatiotemporal.decoder_words='text' needs the text encoder's width (text_width=D_t)")
        self.encoder = SpatioTemporalEncoder(dim, cfg)
        self.decoder = (ShallowTextDecoder(dim, cfg.layers, cfg.heads, cfg.ffn_dim, cfg.dropout)
                        if cfg.decoder else None)
        self.word_proj = nn.Linear(text_width, dim) if reads_text else None  # D_t -> d
        self.reads_text = reads_text  # the decoder reads the text encoder's words (else stage-2's E')
        self.word_width = text_width if reads_text else dim  # width of the words forward expects

    def forward(self, fused: torch.Tensor, shallow: torch.Tensor, words: torch.Tensor,
                word_pad: Optional[torch.Tensor], record_attention: bool = False) -> dict:
        """fused and shallow (B, T, d, h, w); words: what the decoder reads (see the module docstring),
        stage-2 E' (B, L, d) with ``decoder_words="fused"``, the text encoder's words (B, L, D_t) with
        "text" (projected to d here); word_pad (B, L) True = padding.

        Returns dict(layers=[(B, T, d, h, w)] = encoder_i + decoder_i per layer (last = final),
        attn=dict(encoder=..., decoder=... or None) or None).
        """
        if shallow.shape != fused.shape:
            raise ValueError(f"SpatioTemporalReasoner: shallow {tuple(shallow.shape)} and fused "
                             f"{tuple(fused.shape)} must have the same (B, T, d, h, w) shape")
        enc = self.encoder(fused, record_attention)
        layers, dec_attn = enc["layers"], None
        if self.decoder is not None:
            if words.dim() != 3 or words.shape[-1] != self.word_width:
                raise ValueError(f"SpatioTemporalReasoner: the decoder reads words (B, L, "
                                 f"{'D_t' if self.word_proj is not None else 'd'}={self.word_width}), "
                                 f"got {tuple(words.shape)}")
            if self.word_proj is not None:
                words = self.word_proj(words)  # (B, L, d)
            dec = self.decoder(shallow, words, word_pad, record_attention)
            layers = [e + s for e, s in zip(enc["layers"], dec["layers"])]
            dec_attn = dec["attn"]
        attn = dict(encoder=enc["attn"], decoder=dec_attn) if record_attention else None
        return dict(layers=layers, attn=attn)
