"""Hand-computed checks of rvoslib.losses."""

import math

import pytest
import torch

from rvoslib.config import LossConfig
from rvoslib.losses import (
    compute_losses,
    dice_loss,
    sigmoid_bce,
    sigmoid_focal,
    similarity_logits,
    similarity_target,
)

LOG2 = math.log(2.0)


def full(value, shape=(1, 1, 2, 2)):
    return torch.full(shape, float(value))


def bce(logit, target):
    """Scalar BCE with logits, written out."""
    p = 1 / (1 + math.exp(-logit))
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


# ----------------------------------------------------------------------- BCE


def test_bce_zero_logits_is_log2():
    assert sigmoid_bce(full(0), full(1)).item() == pytest.approx(LOG2)
    assert sigmoid_bce(full(0), full(0)).item() == pytest.approx(LOG2)


def test_bce_mixed_pixels_hand_value():
    logits = torch.tensor([2.0, -1.0, 0.5, 3.0]).view(1, 1, 2, 2)
    targets = torch.tensor([1.0, 0.0, 0.0, 1.0]).view(1, 1, 2, 2)
    expected = (bce(2, 1) + bce(-1, 0) + bce(0.5, 0) + bce(3, 1)) / 4
    assert sigmoid_bce(logits, targets).item() == pytest.approx(expected, rel=1e-6)


def test_bce_valid_excludes_padded_frames():
    # frame 0: logit 0 (loss log 2); frame 1 (padding): a large error that must not count.
    logits = torch.cat([full(0, (1, 1, 2, 2)), full(-20, (1, 1, 2, 2))], dim=1)  # (1, 2, 2, 2)
    targets = torch.ones(1, 2, 2, 2)
    valid = torch.tensor([[True, False]])
    assert sigmoid_bce(logits, targets, valid).item() == pytest.approx(LOG2)
    assert sigmoid_bce(logits, targets).item() == pytest.approx((LOG2 + bce(-20, 1)) / 2, rel=1e-5)


# ----------------------------------------------------------------------- focal


def test_focal_hand_values():
    # logit 0, target 1: p_t = 0.5, (1 - p_t)^2 = 0.25, alpha_t = 0.25 -> 0.25 * 0.25 * log 2
    assert sigmoid_focal(full(0), full(1)).item() == pytest.approx(0.0625 * LOG2)
    # target 0: alpha_t = 0.75 -> 0.75 * 0.25 * log 2
    assert sigmoid_focal(full(0), full(0)).item() == pytest.approx(0.1875 * LOG2)
    # gamma 0, alpha disabled: plain BCE
    logits = torch.tensor([2.0, -1.0, 0.5, 3.0]).view(1, 1, 2, 2)
    targets = torch.tensor([1.0, 0.0, 0.0, 1.0]).view(1, 1, 2, 2)
    plain = sigmoid_focal(logits, targets, alpha=-1, gamma=0.0)
    assert plain.item() == pytest.approx(sigmoid_bce(logits, targets).item(), rel=1e-6)
    # logit 2, target 1: p = sigmoid(2); loss = 0.25 * (1 - p)^2 * BCE
    p = 1 / (1 + math.exp(-2))
    assert sigmoid_focal(full(2), full(1)).item() == pytest.approx(0.25 * (1 - p) ** 2 * bce(2, 1), rel=1e-6)


# ----------------------------------------------------------------------- Dice


def test_dice_hand_values():
    # 4 pixels, logit 0 -> p = 0.5; target two ones: inter = 1, sum p = 2, sum t = 2
    # -> 1 - (2 + 1) / (4 + 1) = 0.4
    targets = torch.tensor([1.0, 1.0, 0.0, 0.0]).view(1, 1, 2, 2)
    assert dice_loss(full(0), targets).item() == pytest.approx(0.4)


def test_dice_empty_target_frames():
    # Object absent: target all zero; p = 0.5 on 4 pixels -> 1 - 1 / (2 + 1) = 2/3.
    assert dice_loss(full(0), full(0)).item() == pytest.approx(2 / 3)
    # An (almost) empty prediction on an empty frame costs (almost) nothing.
    assert dice_loss(full(-30), full(0)).item() == pytest.approx(0.0, abs=1e-6)


def test_dice_is_per_frame_then_averaged_over_valid_frames():
    # Frame 0: 0.4 (above). Frame 1: empty target, p = 0.5 -> 2/3. Frame 2: padding.
    logits = torch.zeros(1, 3, 2, 2)
    targets = torch.zeros(1, 3, 2, 2)
    targets[0, 0, 0, :] = 1
    targets[0, 2] = 1
    valid = torch.tensor([[True, True, False]])
    assert dice_loss(logits, targets, valid).item() == pytest.approx((0.4 + 2 / 3) / 2)
    # Two clips, valid frames counted across the batch: (0.4 + 2/3 + 2/3) / 3.
    logits2 = torch.zeros(2, 2, 2, 2)
    targets2 = torch.zeros(2, 2, 2, 2)
    targets2[0, 0, 0, :] = 1
    assert dice_loss(logits2, targets2, torch.tensor([[True, True], [True, False]])).item() == pytest.approx(
        (0.4 + 2 / 3 + 2 / 3) / 3
    )


def test_no_valid_frame_gives_zero():
    assert dice_loss(full(0), full(1), torch.tensor([[False]])).item() == 0.0


def test_losses_do_not_hide_nan():
    logits = full(0)
    logits[0, 0, 0, 0] = float("nan")
    for value in (sigmoid_bce(logits, full(1)), sigmoid_focal(logits, full(1)), dice_loss(logits, full(1))):
        assert torch.isnan(value)


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="same shape"):
        sigmoid_bce(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match="valid"):
        dice_loss(torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, 2), torch.ones(2, 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="B, T, H, W"):
        sigmoid_bce(torch.zeros(2, 2), torch.zeros(2, 2))


# ----------------------------------------------------------------------- pixel-text


def test_similarity_target_area_average_then_threshold():
    masks = torch.zeros(1, 1, 4, 4)
    masks[0, 0, 0:2, 0:2] = 1  # top-left patch fully covered (1.0)
    masks[0, 0, 0:2, 2] = 1  # top-right patch half covered (0.5, not > 0.5)
    masks[0, 0, 2:4, 0:2] = 1
    masks[0, 0, 3, 1] = 0  # bottom-left 3/4 covered
    target = similarity_target(masks, (2, 2))
    assert target.tolist() == [[[[1.0, 0.0], [1.0, 0.0]]]]
    assert similarity_logits(torch.tensor([0.5, -1.0]), 0.1).tolist() == pytest.approx([5.0, -10.0])


# ----------------------------------------------------------------------- compute_losses


def make_batch():
    """B=1, T=2, 4x4 masks; frame 1 is padding. Similarity on a 2x2 grid."""
    masks = torch.zeros(1, 2, 4, 4)
    masks[0, 0, 0:2, 0:2] = 1
    outputs = {
        "pred_masks": torch.zeros(1, 2, 4, 4),
        "aux_masks": [torch.zeros(1, 2, 4, 4), torch.full((1, 2, 4, 4), 2.0)],
        "similarity": torch.zeros(1, 2, 2, 2),
    }
    targets = {"masks": masks, "valid": torch.tensor([[True, False]])}
    return outputs, targets


def test_compute_losses_terms_and_total():
    outputs, targets = make_batch()
    cfg = LossConfig()
    out = compute_losses(outputs, targets, cfg)
    assert set(out) == {
        "mask_bce", "mask_dice", "aux0_bce", "aux0_dice", "aux1_bce", "aux1_dice", "sim_bce", "sim_dice", "total"
    }
    # Valid frame: 16 pixels, 4 foreground. Logit 0: BCE log 2; Dice 1 - (2*2 + 1) / (8 + 4 + 1) = 8/13.
    assert out["mask_bce"].item() == pytest.approx(LOG2)
    assert out["mask_dice"].item() == pytest.approx(8 / 13)
    assert out["aux0_dice"].item() == pytest.approx(8 / 13)
    # aux1: logit 2 everywhere: BCE = (4 bce(2,1) + 12 bce(2,0)) / 16; p = sigmoid(2)
    p = 1 / (1 + math.exp(-2))
    assert out["aux1_bce"].item() == pytest.approx((4 * bce(2, 1) + 12 * bce(2, 0)) / 16, rel=1e-6)
    assert out["aux1_dice"].item() == pytest.approx(1 - (2 * 4 * p + 1) / (16 * p + 4 + 1), rel=1e-6)
    # Similarity 0 -> logit 0; the 2x2 target has one foreground patch:
    # BCE log 2; Dice 1 - (2*0.5 + 1) / (2 + 1 + 1) = 0.5.
    assert out["sim_bce"].item() == pytest.approx(LOG2)
    assert out["sim_dice"].item() == pytest.approx(0.5)
    expected = (
        2 * out["mask_bce"] + 5 * out["mask_dice"]
        + 1.0 * (2 * out["aux0_bce"] + 5 * out["aux0_dice"] + 2 * out["aux1_bce"] + 5 * out["aux1_dice"])
        + 2 * out["sim_bce"] + 5 * out["sim_dice"]
    )
    assert out["total"].item() == pytest.approx(expected.item())


def test_compute_losses_weights_focal_and_optional_outputs():
    outputs, targets = make_batch()
    cfg = LossConfig(mask_loss="focal", bce_weight=1.0, dice_weight=0.0, aux_weight=0.5,
                     sim_bce_weight=0.0, sim_dice_weight=0.0)
    out = compute_losses(outputs, targets, cfg)
    assert "mask_focal" in out and "aux1_focal" in out and "mask_bce" not in out
    # focal at logit 0: per pixel 0.25 * alpha_t * log 2; alpha_t = 0.25 on 4 pixels, 0.75 on 12.
    focal0 = 0.25 * LOG2 * (4 * 0.25 + 12 * 0.75) / 16
    assert out["mask_focal"].item() == pytest.approx(focal0)
    expected = out["mask_focal"] + 0.5 * (out["aux0_focal"] + out["aux1_focal"])
    assert out["total"].item() == pytest.approx(expected.item())
    # No aux masks, no similarity, no valid: only the main terms.
    bare = compute_losses({"pred_masks": torch.zeros(1, 1, 4, 4)}, {"masks": targets["masks"][:, :1]}, LossConfig())
    assert set(bare) == {"mask_bce", "mask_dice", "total"}
    assert bare["total"].item() == pytest.approx(2 * LOG2 + 5 * 8 / 13)
    with pytest.raises(ValueError, match="mask_loss"):
        compute_losses(outputs, targets, LossConfig(mask_loss="l2"))
    with pytest.raises(KeyError, match="pred_masks"):
        compute_losses({}, targets, LossConfig())


def test_compute_losses_temperature_and_gradients():
    outputs, targets = make_batch()
    sim = torch.full((1, 2, 2, 2), 0.2, requires_grad=True)
    outputs["similarity"] = sim
    pred = torch.zeros(1, 2, 4, 4, requires_grad=True)
    outputs["pred_masks"] = pred
    out = compute_losses(outputs, targets, LossConfig(sim_temperature=0.2))
    # similarity 0.2 / 0.2 = logit 1 on 4 patches, one foreground: (bce(1,1) + 3 bce(1,0)) / 4
    assert out["sim_bce"].item() == pytest.approx((bce(1, 1) + 3 * bce(1, 0)) / 4, rel=1e-6)
    out["total"].backward()
    assert pred.grad is not None and sim.grad is not None
    assert torch.all(pred.grad[:, 1] == 0) and torch.all(sim.grad[:, 1] == 0)  # padded frame gets no gradient
    assert pred.grad[:, 0].abs().sum() > 0


def test_dice_per_clip_matches_hand_value_and_spares_absent_frames():
    # clip of two 1x2 frames: frame 0 has the object on pixel 0, frame 1 is empty
    targets = torch.tensor([[[[1.0, 0.0]], [[0.0, 0.0]]]])  # (1, 2, 1, 2)
    logits = torch.tensor([[[[0.0, 0.0]], [[0.0, 0.0]]]])  # p = 0.5 everywhere
    # per clip: inter = 0.5, sum p = 2.0, sum t = 1 -> 1 - (2*0.5 + 1) / (3 + 1) = 0.5
    assert dice_loss(logits, targets, per="clip").item() == pytest.approx(0.5)
    # per frame: frame 0: 1 - (1 + 1)/(2 + 1) = 1/3; frame 1: 1 - 1/(1 + 1) = 1/2; mean 5/12
    assert dice_loss(logits, targets, per="frame").item() == pytest.approx(5 / 12)
    # a padded (invalid) frame is left out of the clip sums
    valid = torch.tensor([[True, False]])
    # inter = 0.5, sum p = 1.0, sum t = 1 -> 1 - 2/3
    assert dice_loss(logits, targets, valid, per="clip").item() == pytest.approx(1 / 3)
    # an absent frame with confident background costs almost nothing per clip, a lot per frame
    confident = torch.tensor([[[[8.0, -8.0]], [[-8.0, -8.0]]]])
    assert dice_loss(confident, targets, per="clip").item() < 0.01
    with pytest.raises(ValueError, match="per"):
        dice_loss(logits, targets, per="pixel")
