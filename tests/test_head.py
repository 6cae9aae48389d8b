"""Mask head output sizes and upsampling counts, pixel-text similarity, gradients."""

import pytest
import torch
import torch.nn.functional as F

from rvoslib.config import HeadConfig
from rvoslib.head import MaskHead, PixelTextSimilarity, num_upsamplings

D, DT = 32, 24
CFG = HeadConfig(hidden=16, groups=4, output_stride=4, sim_dim=16)


@pytest.mark.parametrize("patch,expected", [(16, 2), (8, 1), (14, 2), (4, 0), (2, 0), (32, 3)])
def test_num_upsamplings(patch, expected):
    n = num_upsamplings(patch, 4)
    assert n == expected
    assert patch / 2 ** n <= 4 or n == 0  # lands at or below the target stride
    assert n == 0 or patch / 2 ** (n - 1) > 4  # and not one upsampling later than needed


@pytest.mark.parametrize("patch", [8, 14, 16])
@pytest.mark.parametrize("size", [64, 336, 352])
def test_mask_head_output_size(patch, size):
    torch.manual_seed(0)
    head = MaskHead(D, CFG, patch).eval()
    grid = size // patch
    with torch.no_grad():
        logits = head(torch.randn(1, 2, D, grid, grid), (size, size))
    assert logits.shape == (1, 2, size, size)
    assert torch.isfinite(logits).all()


def test_mask_head_non_square_and_gradients():
    torch.manual_seed(0)
    head = MaskHead(D, CFG, 16)
    logits = head(torch.randn(2, 3, D, 4, 6), (64, 96))
    assert logits.shape == (2, 3, 64, 96)
    logits.square().mean().backward()
    for name, p in head.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_mask_head_rejects_bad_groups():
    with pytest.raises(ValueError, match="groups"):
        MaskHead(D, HeadConfig(hidden=18, groups=4), 16)


def test_similarity_is_a_cosine_in_range():
    torch.manual_seed(0)
    sim = PixelTextSimilarity(D, DT, 16)
    x, sentence = torch.randn(2, 3, D, 4, 5) * 10, torch.randn(2, DT)
    cos = sim(x, sentence)
    assert cos.shape == (2, 3, 4, 5)
    assert cos.min() >= -1 and cos.max() <= 1
    pixels = sim.pixel_proj(x.permute(0, 1, 3, 4, 2))  # (B, T, h, w, s)
    text = sim.text_proj(sentence)[:, None, None, None, :]
    assert torch.allclose(cos, F.cosine_similarity(pixels, text.expand_as(pixels), dim=-1), atol=1e-5)
    cos.sum().backward()
    for name, p in sim.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


PIX = HeadConfig(hidden=16, groups=4, output_stride=4, sim_dim=16, pixel_dim=8)


def test_pixel_refinement_doubles_the_resolution_and_reads_the_pixels():
    torch.manual_seed(0)
    head = MaskHead(D, PIX, 8).eval()
    feats, frames = torch.randn(1, 2, D, 8, 8), torch.randn(1, 2, 3, 64, 64)
    with torch.no_grad():
        logits = head(feats, (64, 64), frames)
        moved = frames.clone()
        moved[..., 10:20, 10:20] += 3.0  # change a few pixels, not the features
        changed = (head(feats, (64, 64), moved) - logits).abs()
    assert logits.shape == (1, 2, 64, 64)
    # the logits near the edited pixels follow them; far away only GroupNorm's statistics move
    assert changed[..., 4:26, 4:26].max() > 5 * changed[..., 40:, 40:].max() > 0
    assert head.output_stride == 4  # the conv stack ends at stride 4; the refinement works at stride 2


def test_pixel_refinement_needs_frames_and_gets_gradients():
    torch.manual_seed(0)
    head = MaskHead(D, PIX, 8)
    with pytest.raises(ValueError, match="needs the frames"):
        head(torch.randn(1, 2, D, 8, 8), (64, 64))
    head(torch.randn(2, 2, D, 8, 8), (64, 64), torch.randn(2, 2, 3, 64, 64)).square().mean().backward()
    for name, p in head.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    with pytest.raises(ValueError, match="pixel_dim"):
        MaskHead(D, HeadConfig(hidden=16, groups=4, pixel_dim=6), 8)
