"""Training losses of VLP-RVOS (DESIGN section 6), as pure functions on logits.

Per clip: ``bce_weight x BCE`` (or sigmoid focal) ``+ dice_weight x Dice`` on the main
mask and, scaled by ``aux_weight``, on every auxiliary mask; plus
``sim_bce_weight x BCE + sim_dice_weight x Dice`` on the pixel-text similarity map
against the mask downsampled to the patch grid.

Reduction: BCE / focal give each frame one value (mean over its H x W pixels), then
frames are averaged over the valid ones (``valid (B, T)``; padded frames are left out).
Dice is computed per clip by default (``LossConfig.dice_per="clip"``: sums over all
valid frames of a clip, as in ReferFormer-style training), or per frame. Frames where
the referred object is absent are real frames with an all-zero target: BCE pushes them
to background; with per-clip Dice they add their predicted area to the denominator; a
per-frame Dice of such a frame is ``1 - 1 / (sum p + 1)``, which demands near-zero
probability on every pixel (at 352 x 352, logits of -10 everywhere still cost 0.85).

Nothing here hides non-finite values: a NaN logit gives a NaN loss, for the engine to
catch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rvoslib.config import LossConfig

DICE_SMOOTH = 1.0  # added to the Dice numerator and denominator


def sigmoid_bce(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy on logits, mean over pixels, then over valid frames.

    Args:
        logits: (B, T, H, W) mask logits.
        targets: (B, T, H, W) targets in [0, 1].
        valid: optional (B, T) bool, True for real frames.

    Returns:
        Scalar tensor.
    """
    _check_shapes(logits, targets, valid)
    per_pixel = F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="none")
    return _mean_over_frames(per_pixel.mean(dim=(-2, -1)), valid)  # (B, T) -> ()


def sigmoid_focal(
    logits: torch.Tensor,
    targets: torch.Tensor,
    alpha: float = 0.25,
    gamma: float = 2.0,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sigmoid focal loss (Lin et al. 2017), mean over pixels, then over valid frames.

    Per pixel: ``a_t * (1 - p_t)^gamma * BCE`` with ``p_t = p t + (1 - p)(1 - t)`` and
    ``a_t = alpha t + (1 - alpha)(1 - t)``; ``alpha < 0`` disables the alpha weighting.

    Args:
        logits, targets: (B, T, H, W); valid: optional (B, T) bool.

    Returns:
        Scalar tensor.
    """
    _check_shapes(logits, targets, valid)
    logits, targets = logits.float(), targets.float()
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return _mean_over_frames(loss.mean(dim=(-2, -1)), valid)


def dice_loss(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor | None = None,
              per: str = "frame") -> torch.Tensor:
    """Soft Dice loss, per frame (averaged over valid frames) or per clip (averaged over clips).

    ``1 - (2 sum(p t) + 1) / (sum p + sum t + 1)`` with ``p = sigmoid(logits)`` and
    smoothing 1 on numerator and denominator (an empty target with an empty prediction
    costs 0). ``per="frame"`` sums over each frame's H x W pixels; ``per="clip"`` sums
    over all valid frames of a clip (T x H x W), so a frame where the object is absent
    only adds its predicted area to the denominator instead of being a Dice term of its
    own that demands near-zero probability on every pixel.

    Args:
        logits, targets: (B, T, H, W); valid: optional (B, T) bool.
        per: "frame" | "clip".

    Returns:
        Scalar tensor.
    """
    _check_shapes(logits, targets, valid)
    if per not in ("frame", "clip"):
        raise ValueError(f"dice per must be 'frame' or 'clip', got {per!r}")
    prob, targets = logits.float().sigmoid(), targets.float()
    inter = (prob * targets).sum(dim=(-2, -1))  # (B, T)
    total = prob.sum(dim=(-2, -1)) + targets.sum(dim=(-2, -1))  # (B, T)
    if per == "frame":
        per_frame = 1 - (2 * inter + DICE_SMOOTH) / (total + DICE_SMOOTH)
        return _mean_over_frames(per_frame, valid)
    keep = torch.ones_like(inter, dtype=torch.bool) if valid is None else valid.bool()
    zero = torch.zeros_like(inter)
    inter = torch.where(keep, inter, zero).sum(dim=1)  # (B,)
    total = torch.where(keep, total, zero).sum(dim=1)  # (B,)
    per_clip = 1 - (2 * inter + DICE_SMOOTH) / (total + DICE_SMOOTH)  # (B,)
    has_frames = keep.any(dim=1)
    return torch.where(has_frames, per_clip, torch.zeros_like(per_clip)).sum() / has_frames.sum().clamp(min=1)


def similarity_target(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Pixel-text target: the mask area-averaged onto the (h, w) patch grid, then > 0.5.

    A patch is foreground when more than half of its area is. (Objects smaller than half
    a patch vanish from this target; the full-resolution mask terms still see them.)

    Args:
        masks: (B, T, H, W) in {0, 1}.
        size: (h, w).

    Returns:
        (B, T, h, w) float tensor in {0, 1}.
    """
    coverage = F.interpolate(masks.float(), size=size, mode="area")  # (B, T, h, w), T as channels
    return (coverage > 0.5).float()


def similarity_logits(similarity: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cosine map in [-1, 1] to logits: ``similarity / temperature`` (0.1 gives [-10, 10])."""
    if temperature <= 0:
        raise ValueError(f"sim_temperature must be > 0, got {temperature}")
    return similarity.float() / temperature


def compute_losses(outputs: dict, targets: dict, cfg: LossConfig) -> dict[str, torch.Tensor]:
    """All loss terms of one batch and their weighted sum.

    Args:
        outputs: model outputs: ``pred_masks`` (B, T, H, W) logits; optional ``aux_masks``
            list of (B, T, H, W) logits; optional ``similarity`` (B, T, h, w) cosine map.
        targets: ``masks`` (B, T, H, W) float in {0, 1}; optional ``valid`` (B, T) bool.
        cfg: ``LossConfig`` (weights, ``mask_loss`` "bce" | "focal", temperature).

    Returns:
        Dict of scalar tensors. ``k`` is ``bce`` or ``focal`` (``cfg.mask_loss``):
        ``mask_k``, ``mask_dice``; per auxiliary layer i: ``aux{i}_k``, ``aux{i}_dice``;
        if ``similarity`` is given: ``sim_bce``, ``sim_dice``; and ``total`` =
        bce_weight x mask_k + dice_weight x mask_dice
        + aux_weight x sum_i (bce_weight x aux{i}_k + dice_weight x aux{i}_dice)
        + sim_bce_weight x sim_bce + sim_dice_weight x sim_dice.
    """
    if "pred_masks" not in outputs:
        raise KeyError("outputs must contain 'pred_masks' (B, T, H, W) logits")
    if "masks" not in targets:
        raise KeyError("targets must contain 'masks' (B, T, H, W) in {0, 1}")
    masks, valid = targets["masks"], targets.get("valid")
    kind = _mask_loss_name(cfg)
    terms: dict[str, torch.Tensor] = {}

    terms[f"mask_{kind}"], terms["mask_dice"] = _mask_terms(outputs["pred_masks"], masks, valid, cfg)
    total = cfg.bce_weight * terms[f"mask_{kind}"] + cfg.dice_weight * terms["mask_dice"]

    for i, aux in enumerate(outputs.get("aux_masks") or []):
        terms[f"aux{i}_{kind}"], terms[f"aux{i}_dice"] = _mask_terms(aux, masks, valid, cfg)
        total = total + cfg.aux_weight * (
            cfg.bce_weight * terms[f"aux{i}_{kind}"] + cfg.dice_weight * terms[f"aux{i}_dice"]
        )

    if outputs.get("similarity") is not None:
        similarity = outputs["similarity"]  # (B, T, h, w)
        sim_target = similarity_target(masks, tuple(similarity.shape[-2:]))  # (B, T, h, w)
        sim_logits = similarity_logits(similarity, cfg.sim_temperature)
        terms["sim_bce"] = sigmoid_bce(sim_logits, sim_target, valid)
        terms["sim_dice"] = dice_loss(sim_logits, sim_target, valid, per=cfg.dice_per)
        total = total + cfg.sim_bce_weight * terms["sim_bce"] + cfg.sim_dice_weight * terms["sim_dice"]

    terms["total"] = total
    return terms


def _mask_terms(
    logits: torch.Tensor, masks: torch.Tensor, valid: torch.Tensor | None, cfg: LossConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """(BCE or focal, Dice) of one (B, T, H, W) logit map."""
    if cfg.mask_loss == "focal":
        first = sigmoid_focal(logits, masks, cfg.focal_alpha, cfg.focal_gamma, valid)
    else:
        first = sigmoid_bce(logits, masks, valid)
    return first, dice_loss(logits, masks, valid, per=cfg.dice_per)


def _mask_loss_name(cfg: LossConfig) -> str:
    if cfg.mask_loss not in ("bce", "focal"):
        raise ValueError(f"LossConfig.mask_loss must be 'bce' or 'focal', got {cfg.mask_loss!r}")
    return cfg.mask_loss


def _mean_over_frames(per_frame: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Mean of a (B, T) per-frame loss over valid frames (0 when no frame is valid)."""
    if valid is None:
        return per_frame.mean()
    weight = valid.to(per_frame.dtype)  # (B, T)
    # torch.where, not a product: a NaN in a padded frame must not leak, a NaN in a real one must.
    kept = torch.where(valid.bool(), per_frame, torch.zeros_like(per_frame))
    return kept.sum() / weight.sum().clamp(min=1.0)


def _check_shapes(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor | None) -> None:
    """Clear errors for mismatched inputs (the usual cause: a mask at another resolution)."""
    if logits.dim() != 4:
        raise ValueError(f"expected (B, T, H, W) logits, got shape {tuple(logits.shape)}")
    if logits.shape != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} must have the same shape")
    if valid is not None and tuple(valid.shape) != tuple(logits.shape[:2]):
        raise ValueError(f"valid must be (B, T) = {tuple(logits.shape[:2])}, got {tuple(valid.shape)}")
