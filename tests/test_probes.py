"""Tests of rvoslib.probes on hand-built masks and attention maps whose answers are known."""

import math

import pytest
import torch
from torch import nn

from rvoslib import probes


def grid_masks():
    """An 8 x 8 frame on a 2 x 2 patch grid (4 x 4 pixels per patch): the referent fills patch 0,
    a distractor fills the left half of patch 1, the rest is background."""
    referent = torch.zeros(8, 8, dtype=torch.bool)
    referent[:4, :4] = True
    objects = referent.clone().to(torch.uint8)
    objects[:4, 4:6] = 2
    return referent, objects


def test_patch_regions_are_the_covered_fractions():
    referent, objects = grid_masks()
    regions = probes.patch_regions(referent, objects, (2, 2))  # (R, N)
    expected = torch.tensor([[1.0, 0.0, 0.0, 0.0],  # referent
                             [0.0, 0.5, 0.0, 0.0],  # distractors: half of patch 1
                             [0.0, 0.5, 1.0, 1.0]])  # background
    torch.testing.assert_close(regions, expected)
    stacked = probes.patch_regions(torch.stack([referent, ~referent]), torch.stack([objects, objects]), (2, 2))
    assert stacked.shape == (2, 3, 4)
    # frame 1 refers to everything but patch 0, so the object in patch 0 becomes the distractor
    torch.testing.assert_close(stacked[1], torch.tensor([[0.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0], [0.0] * 4]))
    with pytest.raises(ValueError, match="shape"):
        probes.patch_regions(referent, objects[:4], (2, 2))


def test_region_mass_of_a_map_with_known_mass():
    referent, objects = grid_masks()
    regions = probes.patch_regions(referent, objects, (2, 2))
    attn = torch.tensor([0.5, 0.2, 0.2, 0.1])  # half on the referent; patch 1 split half/half
    torch.testing.assert_close(probes.region_mass(attn, regions), torch.tensor([0.5, 0.1, 0.4]))
    # relative to the map's own total: a map that gives only part of its attention to patches
    torch.testing.assert_close(probes.region_mass(3 * attn, regions), torch.tensor([0.5, 0.1, 0.4]))
    batch = torch.stack([attn, torch.tensor([0.0, 0.0, 1.0, 0.0])])  # (2, N)
    torch.testing.assert_close(probes.region_mass(batch, regions)[1], torch.tensor([0.0, 0.0, 1.0]))
    assert torch.isnan(probes.region_mass(torch.zeros(4), regions)).all()


def test_lift_is_one_for_uniform_attention_and_tracks_a_preference():
    referent, objects = grid_masks()
    regions = probes.patch_regions(referent, objects, (2, 2))  # areas: 1/4, 1/8, 5/8
    uniform = probes.region_mass(torch.full((4,), 0.25), regions)
    torch.testing.assert_close(probes.region_lift(uniform, regions), torch.ones(3))
    on_referent = probes.region_mass(torch.tensor([1.0, 0.0, 0.0, 0.0]), regions)
    torch.testing.assert_close(probes.region_lift(on_referent, regions), torch.tensor([4.0, 0.0, 0.0]))


def temporal_map(shares_per_frame, kinds_layout, t=2, n_tp=1):
    """(1, T*N_tp, T, S_f) capture map: query row q puts shares_per_frame[q][k] on frame k,
    spread evenly over that frame's tokens."""
    s_f = kinds_layout["temporal"].stop
    attn = torch.zeros(1, t * n_tp, t, s_f)
    for q, shares in enumerate(shares_per_frame):
        for k, share in enumerate(shares):
            attn[0, q, k] = share / s_f
    return attn


LAYOUT = {"cls": slice(0, 1), "patches": slice(1, 5), "history": slice(5, 5), "vision": slice(5, 6),
          "temporal": slice(6, 7)}


def test_frame_share_and_token_kinds():
    attn = temporal_map([[0.75, 0.25], [0.1, 0.9]], LAYOUT)
    share = probes.frame_share(attn, num_temporal=1)  # (B, Tq, N_tp, Tk)
    torch.testing.assert_close(share[0, :, 0], torch.tensor([[0.75, 0.25], [0.1, 0.9]]))
    kinds = probes.token_kind_share(attn, LAYOUT, num_temporal=1)
    torch.testing.assert_close(kinds["patches"][0, 0, 0], torch.tensor([0.75 * 4 / 7, 0.25 * 4 / 7]))
    assert kinds["history"].abs().max() == 0  # an empty slice gets nothing
    total = sum(v.sum(-1) for v in kinds.values())
    torch.testing.assert_close(total, torch.ones_like(total))
    patches = probes.temporal_patch_maps(attn, LAYOUT, num_temporal=1)
    assert patches.shape == (1, 2, 1, 2, 4)


def test_gate_values_read_tanh_alpha():
    class Stage1(nn.Module):
        def __init__(self, alpha):
            super().__init__()
            self.alpha = nn.Parameter(torch.tensor([alpha]))

    model = nn.Module()
    model.vision = nn.Module()
    model.vision.stage1 = nn.ModuleDict({"0": Stage1(0.0), "2": Stage1(0.5)})
    gates = probes.gate_values(model)
    assert list(gates) == [0, 2]
    assert gates[0] == 0.0 and math.isclose(gates[2], math.tanh(0.5), rel_tol=1e-6)


def test_prompt_similarity_spread_and_map_distance():
    mean = torch.tensor([3.0, 0.0, 0.0, 0.0])
    d = torch.tensor([0.0, 0.3, 0.0, 0.0])
    prompts = torch.stack([mean + d, mean - d])  # one shared direction, opposite departures
    cos = probes.prompt_similarity(prompts)
    assert cos[0, 1] > 0.98  # nearly parallel ...
    centred = probes.prompt_similarity(prompts, centred=True)
    torch.testing.assert_close(centred[0, 1], torch.tensor(-1.0))  # ... and opposite once the mean is removed
    torch.testing.assert_close(probes.prompt_spread(prompts), torch.tensor(0.1))  # |d| / |mean|
    assert probes.prompt_spread(mean.expand(3, 4)) == 0
    orthogonal = torch.eye(3)
    torch.testing.assert_close(probes.prompt_similarity(orthogonal), torch.eye(3))

    maps = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 2.0, 2.0], [1.0, 0.0, 1.0, 0.0]])
    tv = probes.map_distance(maps)
    torch.testing.assert_close(tv, torch.tensor([[0.0, 1.0, 0.5], [1.0, 0.0, 0.5], [0.5, 0.5, 0.0]]))


def hand_attn():
    """A recorded-attention dict for B=1, T=1, a 2 x 2 grid, L=3 words of which the last is padding.

    Stage 1: the referent's patch (0) attends to word 0 only, every other patch to word 1.
    Stage 2: word 0 puts all its clip attention on patch 0, word 1 on patch 2 (background).
    """
    stage1 = torch.zeros(1, 1, 4, 3)
    stage1[0, 0, 0, 0] = 1.0
    stage1[0, 0, 1:, 1] = 1.0
    v2w = stage1[:, 0].clone()  # (B, T*N, L): same pattern, the padded word gets nothing
    w2v = torch.zeros(1, 3, 4)
    w2v[0, 0, 0] = 1.0
    w2v[0, 1, 2] = 1.0
    w2v[0, 2] = 0.25  # the padded word's row: must be left out
    layout = {"cls": slice(0, 1), "patches": slice(1, 5), "history": slice(5, 5), "vision": slice(5, 6),
              "temporal": slice(6, 7)}
    temporal = torch.zeros(1, 1, 1, 7)
    temporal[0, 0, 0, 1] = 1.0  # the temporal prompt reads patch 0 only
    vision = {"stage1": [stage1], "temporal": [temporal], "prompt_to_patch": [torch.full((1, 1, 1, 4), 0.1)],
              "cls_to_patch": [torch.tensor([[[0.0, 0.0, 0.0, 0.4]]])], "layout": layout}
    return {"vision": vision, "fusion": {"word_to_video": w2v, "video_to_word": v2w},
            "spatiotemporal": {"decoder": [v2w]}}


def test_stage_masses_on_a_hand_built_forward():
    referent, objects = grid_masks()
    regions = probes.patch_regions(referent, objects, (2, 2))[None]  # (T=1, R, N)
    attn = hand_attn()
    assert probes.real_words(attn).tolist() == [[True, True, False]]
    word0 = probes.stage_masses(attn, regions, word=0)
    torch.testing.assert_close(word0["stage 1, block 0"][0], torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(word0["stage 2, word -> video"][0], torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(word0["stage 3 decoder, layer 0"][0], torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(word0["capture, block 0"][0], torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(word0["vision prompts, block 0"][0], torch.tensor([0.25, 0.125, 0.625]))  # uniform
    torch.testing.assert_close(word0["CLS, block 0"][0], torch.tensor([0.0, 0.0, 1.0]))
    # the mean over the two real words: word 1 draws from patches 1-3 (distractor half of patch 1)
    both = probes.stage_masses(attn, regions)
    word1 = torch.tensor([0.0, 0.5, 2.5]) / 3
    torch.testing.assert_close(both["stage 1, block 0"][0], (torch.tensor([1.0, 0.0, 0.0]) + word1) / 2)
    torch.testing.assert_close(both["stage 2, word -> video"][0], torch.tensor([0.5, 0.0, 0.5]))  # padding left out
