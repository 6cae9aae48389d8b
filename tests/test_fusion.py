"""Stage-2 dual fusion: shapes, padded-word masking, recorded maps, gating, gradients."""

import pytest
import torch
import torch.nn.functional as F

from rvoslib.config import FusionConfig
from rvoslib.attention import MultiHeadAttention, attention_with_weights
from rvoslib.fusion import DualFusion

D, DT = 32, 24


def make_fusion():
    torch.manual_seed(0)
    return DualFusion(D, DT, FusionConfig(heads=4)).eval()


def make_inputs(B=2, T=3, h=4, w=5, L=6):
    torch.manual_seed(1)
    pad = torch.zeros(B, L, dtype=torch.bool)
    pad[0, 4:] = True
    pad[1, 5:] = True
    return torch.randn(B, T, D, h, w), torch.randn(B, L, DT), pad, torch.randn(B, DT)


def test_shapes_and_recorded_maps():
    fusion = make_fusion()
    video, words, pad, sentence = make_inputs()
    out = fusion(video, words, pad, sentence)
    assert out["video"].shape == video.shape
    assert out["words"].shape == (2, 6, D)
    assert out["attn"] is None
    rec = fusion(video, words, pad, sentence, record_attention=True)
    assert rec["attn"]["word_to_video"].shape == (2, 6, 3 * 4 * 5)
    assert rec["attn"]["video_to_word"].shape == (2, 3 * 4 * 5, 6)
    assert torch.allclose(rec["video"], out["video"], atol=1e-5)
    assert torch.allclose(rec["words"], out["words"], atol=1e-5)


def test_padded_words_are_never_attended():
    fusion = make_fusion()
    video, words, pad, sentence = make_inputs()
    changed = words.clone()
    changed[pad] = torch.randn(int(pad.sum()), DT) * 100
    a = fusion(video, words, pad, sentence, record_attention=True)
    b = fusion(video, changed, pad, sentence)
    assert torch.allclose(a["video"], b["video"], atol=1e-5)
    assert torch.allclose(a["words"][~pad], b["words"][~pad], atol=1e-5)
    v2w = a["attn"]["video_to_word"]  # (B, T*h*w, L)
    assert torch.all(v2w.masked_select(pad[:, None, :].expand_as(v2w)) == 0)
    # without the mask the padded words would matter
    c = fusion(video, changed, None, sentence)
    assert not torch.allclose(a["video"], c["video"], atol=1e-3)


def test_sentence_gates_the_video():
    fusion = make_fusion()
    video, words, pad, sentence = make_inputs()
    a = fusion(video, words, pad, sentence)["video"]
    b = fusion(video, words, pad, -sentence)["video"]
    assert not torch.allclose(a, b, atol=1e-3)
    # the gate lies in (1, 2): V'' = V' * (1 + sigmoid(W s))
    with torch.no_grad():
        fusion.gate.weight.zero_()
        fusion.gate.bias.fill_(-1e4)
        ungated = fusion(video, words, pad, sentence)["video"]
        fusion.gate.bias.fill_(1e4)
        doubled = fusion(video, words, pad, sentence)["video"]
    assert torch.allclose(doubled, 2 * ungated, atol=1e-5)


def test_gradients_reach_every_parameter():
    fusion = make_fusion().train()
    video, words, pad, sentence = make_inputs()
    out = fusion(video, words, pad, sentence)
    (out["video"].square().mean() + out["words"][~pad].square().mean()).backward()
    for name, p in fusion.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bad_shapes_raise_clear_errors():
    fusion = make_fusion()
    video, words, pad, sentence = make_inputs()
    with pytest.raises(ValueError, match="word_pad"):
        fusion(video, words, pad.float(), sentence)
    with pytest.raises(ValueError, match="sentence"):
        fusion(video, words, pad, sentence[:, :5])
    with pytest.raises(ValueError, match="video"):
        fusion(video[:, 0], words, pad, sentence)


def test_manual_softmax_equals_sdpa():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 4, 7, 8), torch.randn(2, 4, 9, 8), torch.randn(2, 4, 9, 8)
    mask = torch.rand(2, 1, 7, 9) > 0.3
    mask[..., 0] = True
    out, weights = attention_with_weights(q, k, v, mask)
    assert torch.allclose(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), atol=1e-5)
    assert weights.shape == (2, 7, 9)
    assert torch.all(weights.masked_select(~mask[:, 0]) == 0)


def test_fully_masked_rows_stay_finite():
    mha = MultiHeadAttention(D, 4)
    x = torch.randn(1, 5, D, requires_grad=True)
    allowed = torch.zeros(1, 5, 5, dtype=torch.bool)
    allowed[0, :3, :3] = True  # rows 3-4 may attend to nothing
    for record in (False, True):
        out, _ = mha(x, x, x, allowed, record)
        out.sum().backward()
        assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()


def make_frame_fusion():
    torch.manual_seed(0)
    return DualFusion(D, DT, FusionConfig(heads=4, scope="frame")).eval()


def test_frame_scope_fuses_each_frame_as_a_one_frame_clip():
    clip_scope, frame_scope = make_fusion(), make_frame_fusion()
    video, words, pad, sentence = make_inputs()
    out = frame_scope(video, words, pad, sentence, record_attention=True)
    for t in range(video.shape[1]):  # frame t alone, through the clip scope, gives the same video
        alone = clip_scope(video[:, t: t + 1], words, pad, sentence)
        assert torch.allclose(out["video"][:, t], alone["video"][:, 0], atol=1e-5)
    per_frame = [clip_scope(video[:, t: t + 1], words, pad, sentence)["words"] for t in range(video.shape[1])]
    assert torch.allclose(out["words"], torch.stack(per_frame).mean(0), atol=1e-5)
    w2v = out["attn"]["word_to_video"]  # (B, L, T*h*w), each frame's read weighted 1/T
    assert w2v.shape == (2, 6, 3 * 4 * 5)
    assert torch.allclose(w2v.sum(-1), torch.ones(2, 6), atol=1e-5)


def test_frame_scope_sees_no_other_frame_and_clip_scope_does():
    video, words, pad, sentence = make_inputs()
    changed = video.clone()
    changed[:, 1:] = torch.randn_like(changed[:, 1:])  # every frame but frame 0 replaced
    for fusion, moves in ((make_frame_fusion(), False), (make_fusion(), True)):
        before = fusion(video, words, pad, sentence)["video"][:, 0]
        after = fusion(changed, words, pad, sentence)["video"][:, 0]
        assert ((after - before).abs().max() > 1e-3) == moves


def test_an_unknown_scope_is_refused():
    with pytest.raises(ValueError, match="fusion.scope='pixel'"):
        DualFusion(D, DT, FusionConfig(heads=4, scope="pixel"))


def make_add_fusion():
    torch.manual_seed(0)
    return DualFusion(D, DT, FusionConfig(heads=4, sentence="add")).eval()


def test_sentence_add_shifts_every_token_by_the_same_vector_and_the_gate_does_not():
    video, words, pad, sentence = make_inputs()
    other = torch.randn_like(sentence)  # same words and video, another sentence feature
    for fusion, additive in ((make_add_fusion(), True), (make_fusion(), False)):
        shift = fusion(video, words, pad, other)["video"] - fusion(video, words, pad, sentence)["video"]
        shift = shift.permute(0, 1, 3, 4, 2).flatten(1, 3)  # (B, T*h*w, d)
        same_everywhere = torch.allclose(shift, shift[:, :1].expand_as(shift), atol=1e-5)
        assert same_everywhere == additive
    add = make_add_fusion()
    expected = add.sentence_proj(other) - add.sentence_proj(sentence)  # (B, d)
    got = add(video, words, pad, other)["video"] - add(video, words, pad, sentence)["video"]
    assert torch.allclose(got[:, 0, :, 0, 0], expected, atol=1e-5)


def test_sentence_add_has_no_gate_and_an_unknown_mode_is_refused():
    assert make_add_fusion().gate is None and make_fusion().gate is not None
    with pytest.raises(ValueError, match="fusion.sentence='multiply'"):
        DualFusion(D, DT, FusionConfig(heads=4, sentence="multiply"))
