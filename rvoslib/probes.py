"""Numbers from a model's recorded attention and trained parameters: look inside a model.

Every picture of an attention map in the notebooks comes with numbers computed here:

* **where attention lands** (:func:`patch_regions`, :func:`region_mass`, :func:`region_lift`):
  the share of a map's mass on the referred object's patches, on the other objects' patches
  (the distractors) and on the background. A patch that an object covers partly counts
  partly: its weight is split by the fraction of its pixels in each region. Attention spread
  uniformly over the patches lands on each region in proportion to its area, so the *lift*
  (mass / area share) is 1 for uniform attention; a lift above 1 on the referent means the
  map prefers the referent's patches;
* **temporal prompts** (:func:`frame_share`, :func:`token_kind_share`): the share of each
  temporal prompt's capture that lands in each frame, and on each kind of token;
* **stage-1 gates** (:func:`gate_values`): ``tanh(alpha_l)`` per block;
* **how different prompts are** (:func:`prompt_similarity`, :func:`prompt_spread`,
  :func:`map_distance`): cosine between prompts, their spread around their mean relative to
  the mean's norm, and the total-variation distance between the maps they produce;
* :func:`stage_masses`, the region masses of every recorded stage of one forward pass
  (``VLPRVOS(..., record_attention=True)["attn"]``), as one table.

All functions take torch tensors and return tensors or plain dicts; none draws anything
(``rvoslib.viz`` draws).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from einops import rearrange

REGIONS = ("referent", "distractors", "background")  # the region order of every (..., R) output


# --------------------------------------------------------------------------- regions


def patch_regions(referent: torch.Tensor, objects: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Fraction of each patch covered by the referent, by the other objects and by background.

    Args:
        referent: ``(..., H, W)`` mask of the referred object (non-zero = object).
        objects: ``(..., H, W)`` mask of every object, the referent included, or an id map
            (0 = background, any other value = an object).
        grid: ``(h, w)`` patch grid; the masks are area-averaged onto it (H, W need not be
            multiples of h, w, though for a ViT they are: S = patch x h).

    Returns:
        ``(..., R=3, N=h*w)`` float in [0, 1], regions in the order of :data:`REGIONS`;
        the three values of a patch sum to 1.
    """
    referent, objects = torch.as_tensor(referent), torch.as_tensor(objects)
    if referent.shape != objects.shape or referent.dim() < 2:
        raise ValueError(f"referent and objects must be masks of one (..., H, W) shape, got "
                         f"{tuple(referent.shape)} and {tuple(objects.shape)}")
    ref = (referent != 0).float()
    other = ((objects != 0) & (referent == 0)).float()
    background = 1.0 - ref - other
    stacked = torch.stack([ref, other, background], dim=-3)  # (..., 3, H, W)
    lead = stacked.shape[:-3]
    flat = stacked.reshape(-1, 3, *stacked.shape[-2:])  # (n, 3, H, W)
    pooled = F.adaptive_avg_pool2d(flat, grid)  # (n, 3, h, w): fraction of each patch's pixels
    return pooled.reshape(*lead, 3, grid[0] * grid[1])  # (..., 3, N)


def region_mass(attn: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """Share of a map's mass that lands on each region.

    Args:
        attn: ``(..., N)`` non-negative weights over N patches (any total: the result is
            relative to the map's own total over these patches).
        regions: ``(..., R, N)`` patch coverage (:func:`patch_regions`), broadcast against
            ``attn``'s leading dimensions.

    Returns:
        ``(..., R)``: ``sum_n attn_n regions_rn / sum_n attn_n``; sums to 1 over R when the
        regions cover every patch. NaN where a map has no mass.
    """
    attn = attn.float()
    regions = regions.to(attn.device).float()
    if attn.shape[-1] != regions.shape[-1]:
        raise ValueError(f"attn has {attn.shape[-1]} patches, regions {regions.shape[-1]}")
    landed = (attn.unsqueeze(-2) * regions).sum(-1)  # (..., R)
    total = attn.sum(-1, keepdim=True)  # (..., 1)
    return landed / total.where(total > 0, torch.full_like(total, float("nan")))


def area_share(regions: torch.Tensor) -> torch.Tensor:
    """``(..., R)``: each region's share of the patches, what uniform attention puts on it."""
    return regions.float().mean(-1)


def region_lift(mass: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """``mass / area_share``: 1 where a map is as uniform as can be, > 1 where it prefers a region.

    Args:
        mass: ``(..., R)`` from :func:`region_mass`.
        regions: ``(..., R, N)`` the regions it was measured with (broadcast as there).
    """
    return mass / area_share(regions).to(mass.device)


# --------------------------------------------------------------------------- temporal prompts


def frame_share(temporal: torch.Tensor, num_temporal: int) -> torch.Tensor:
    """Share of each temporal prompt's capture that lands in each frame (all its tokens).

    Args:
        temporal: ``(B, T*N_tp, T, S_f)`` one block's recorded capture
            (``attn["vision"]["temporal"][l]``); query rows ordered (frame, prompt).
        num_temporal: N_tp.

    Returns:
        ``(B, T_query, N_tp, T_key)``; sums to 1 over the last axis.
    """
    per_frame = temporal.float().sum(-1)  # (B, T*N_tp, T)
    return rearrange(per_frame, "b (t p) k -> b t p k", p=num_temporal)


def token_kind_share(temporal: torch.Tensor, layout: dict, num_temporal: int) -> dict[str, torch.Tensor]:
    """Share of each temporal prompt's capture on each kind of token, per key frame.

    Args:
        temporal: ``(B, T*N_tp, T, S_f)`` as in :func:`frame_share`.
        layout: ``attn["vision"]["layout"]``, the slices of a frame's token sequence.
        num_temporal: N_tp.

    Returns:
        ``{kind: (B, T_query, N_tp, T_key)}`` for every kind in ``layout``; summed over kinds
        and key frames it is 1.
    """
    grouped = rearrange(temporal.float(), "b (t p) k s -> b t p k s", p=num_temporal)
    return {kind: grouped[..., where].sum(-1) for kind, where in layout.items()}


def temporal_patch_maps(temporal: torch.Tensor, layout: dict, num_temporal: int) -> torch.Tensor:
    """The capture's attention on the patches of every frame, ``(B, T_query, N_tp, T_key, N)``."""
    grouped = rearrange(temporal, "b (t p) k s -> b t p k s", p=num_temporal)
    return grouped[..., layout["patches"]]


# --------------------------------------------------------------------------- parameters


def gate_values(model) -> dict[int, float]:
    """``{block: tanh(alpha_l)}``, the stage-1 gate of every block that has stage 1."""
    stage1 = getattr(model, "vision", model).stage1
    return {int(layer): float(torch.tanh(module.alpha.detach()).item()) for layer, module in stage1.items()}


def prompt_similarity(prompts: torch.Tensor, centred: bool = False) -> torch.Tensor:
    """Cosine similarity between prompts.

    Args:
        prompts: ``(P, D)`` (or ``(..., P, D)``).
        centred: subtract the prompts' mean first, so the cosine compares what sets each
            prompt apart from the others rather than what they share.

    Returns:
        ``(..., P, P)``.
    """
    x = prompts.float()
    if centred:
        x = x - x.mean(-2, keepdim=True)
    x = F.normalize(x, dim=-1)
    return x @ x.transpose(-2, -1)


def prompt_spread(prompts: torch.Tensor) -> torch.Tensor:
    """How far the prompts sit from their mean, relative to the mean's length.

    Args:
        prompts: ``(..., P, D)``.

    Returns:
        ``(...,)``: ``mean_i |p_i - m| / |m|`` with ``m`` the mean prompt; 0 when all prompts
        are one vector.
    """
    x = prompts.float()
    mean = x.mean(-2, keepdim=True)  # (..., 1, D)
    return (x - mean).norm(dim=-1).mean(-1) / mean.norm(dim=-1).squeeze(-1)


def map_distance(maps: torch.Tensor) -> torch.Tensor:
    """Total-variation distance between maps, each normalised to sum 1.

    Args:
        maps: ``(..., K, N)`` non-negative.

    Returns:
        ``(..., K, K)``: ``0.5 * sum_n |a_n - b_n|``, 0 for identical maps and 1 for maps with
        no patch in common.
    """
    p = maps.float() / maps.float().sum(-1, keepdim=True)
    return 0.5 * (p.unsqueeze(-2) - p.unsqueeze(-3)).abs().sum(-1)


# --------------------------------------------------------------------------- one forward, every stage


def real_words(attn: dict) -> torch.Tensor:
    """``(B, L)`` bool, True at the words that are not padding.

    Read from stage 2's video-to-word map, which gives padded words exactly zero attention
    (the fusion masks them).
    """
    return attn["fusion"]["video_to_word"].sum(-2) > 0


def _word_columns(maps: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``(B, M, L)`` patch-to-word maps -> ``(B, L, M)`` with padded words' rows NaN-free zeros."""
    return rearrange(maps, "b m l -> b l m") * keep[..., None]


def _mean_over_words(mass: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``(B, L, R)`` masses -> ``(B, R)``, the mean over the kept words."""
    weights = keep.float()[..., None]  # (B, L, 1)
    return (mass.nan_to_num() * weights).sum(1) / weights.sum(1)


def stage_masses(attn: dict, regions: torch.Tensor, word: Optional[int] = None,
                 blocks: Optional[Sequence[int]] = None) -> dict[str, torch.Tensor]:
    """Region masses of every recorded attention of one forward pass.

    Args:
        attn: ``out["attn"]`` of ``VLPRVOS.forward(..., record_attention=True)``.
        regions: ``(B, T, R, N)`` from :func:`patch_regions` (or ``(T, R, N)``, the same clip
            for every batch row).
        word: index of one word (0 = the first word after the start token); None: the mean
            over the sentence's words (the padding excluded).
        blocks: which ViT blocks to report (default: all).

    Returns:
        ``{name: (B, R)}``, in forward order. Maps over patches (the capture, the vision prompts,
        CLS, stage 2's word -> video) give their own mass per region; maps from patches to words
        (stage 1, stage 2's video -> word, the stage-3 decoder) give, for a word, the share of the
        attention that word *receives* that comes from each region's patches.
    """
    vision = attn["vision"]
    if regions.dim() == 3:
        regions = regions.unsqueeze(0)  # (1, T, R, N)
    t = regions.shape[1]
    clip_regions = rearrange(regions, "b t r n -> b r (t n)")  # (B, R, T*N)
    keep = real_words(attn)  # (B, L)
    if word is not None:
        keep = keep & (torch.arange(keep.shape[1], device=keep.device) == word)
    blocks = range(len(vision["temporal"])) if blocks is None else blocks
    out: dict[str, torch.Tensor] = {}

    def words_mass(maps: torch.Tensor) -> torch.Tensor:  # (B, T*N, L) -> (B, R)
        columns = _word_columns(maps, keep)  # (B, L, T*N)
        return _mean_over_words(region_mass(columns, clip_regions[:, None]), keep)

    for layer in blocks:
        if vision["stage1"][layer] is not None:
            out[f"stage 1, block {layer}"] = words_mass(rearrange(vision["stage1"][layer], "b t n l -> b (t n) l"))
    for layer in blocks:
        temporal = vision["temporal"][layer]
        if temporal is not None:
            n_tp = temporal.shape[1] // t
            maps = rearrange(temporal_patch_maps(temporal, vision["layout"], n_tp), "b tq p tk n -> b (tq p) (tk n)")
            out[f"capture, block {layer}"] = region_mass(maps, clip_regions[:, None]).mean(1)
    for layer in blocks:
        prompts = vision["prompt_to_patch"][layer]
        if prompts is not None:  # (B, T, N_v, N): each frame's prompts over that frame's patches
            out[f"vision prompts, block {layer}"] = region_mass(prompts, regions[:, :, None]).mean(dim=(1, 2))
    for layer in blocks:
        out[f"CLS, block {layer}"] = region_mass(vision["cls_to_patch"][layer], regions).mean(1)
    fusion = attn["fusion"]
    w2v = region_mass(fusion["word_to_video"], clip_regions[:, None])  # (B, L, R)
    out["stage 2, word -> video"] = _mean_over_words(w2v, keep)
    out["stage 2, video -> word"] = words_mass(fusion["video_to_word"])
    decoder = (attn.get("spatiotemporal") or {}).get("decoder") or []
    for layer, maps in enumerate(decoder):
        out[f"stage 3 decoder, layer {layer}"] = words_mass(maps)
    return out
