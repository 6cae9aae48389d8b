"""Cube partition, position encoding, and the stage-3 encoder/decoder checked against
independent references built from F.scaled_dot_product_attention and plain loops."""

import pytest
import torch
import torch.nn.functional as F

from rvoslib.config import SpatioTemporalConfig
from rvoslib.cubes import (axis_shift, cube_attention_mask, cube_partition, cube_unpartition, num_cubes,
                           padded_size)
from rvoslib.position import sine_position_3d
from rvoslib.spatiotemporal import (ATTENTION_MODES, ShallowTextDecoder, SpatioTemporalEncoder,
                                    SpatioTemporalReasoner, attention_cost)

D, HEADS, K = 32, 4, 4


def make_cfg(mode, layers=1, **kw):
    return SpatioTemporalConfig(layers=layers, heads=HEADS, cube_size=K, attention=mode, ffn_dim=64, **kw)


def make_encoder(mode, layers=1):
    torch.manual_seed(0)
    return SpatioTemporalEncoder(D, make_cfg(mode, layers)).eval()


# ----------------------------------------------------------------- independent references


def ref_attention(mha, query, value):
    """Self-attention with mha's weights, written out with F.linear + SDPA: (B, N, d) -> (B, N, d)."""
    def split(t):  # (B, N, d) -> (B, heads, N, c)
        return t.view(t.shape[0], t.shape[1], mha.heads, -1).transpose(1, 2)
    q = split(F.linear(query, mha.q_proj.weight, mha.q_proj.bias))
    k = split(F.linear(query, mha.k_proj.weight, mha.k_proj.bias))
    v = split(F.linear(value, mha.v_proj.weight, mha.v_proj.bias))
    out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2)
    return F.linear(out, mha.out_proj.weight, mha.out_proj.bias)


def ref_frames(mha, y, pos):
    """Attention frame by frame: y (B, T, h, w, d) normalised."""
    out = torch.empty_like(y)
    B, T, h, w, d = y.shape
    for t in range(T):
        tokens = y[:, t].reshape(B, h * w, d)
        query = (y[:, t] + pos[t]).reshape(B, h * w, d)
        out[:, t] = ref_attention(mha, query, tokens).reshape(B, h, w, d)
    return out


def ref_full(mha, y, pos):
    B, T, h, w, d = y.shape
    out = ref_attention(mha, (y + pos).reshape(B, T * h * w, d), y.reshape(B, T * h * w, d))
    return out.reshape(B, T, h, w, d)


def intervals(n, k, shift):
    """Cube boundaries along an axis in original coordinates: cuts at shift, shift+k, ... (0 = plain)."""
    hp = padded_size(n, k)
    starts = ([0] + list(range(shift, hp, k))) if shift else list(range(0, hp, k))
    ends = starts[1:] + [hp]
    return [(a, min(b, n)) for a, b in zip(starts, ends) if a < n]


def ref_cubes(mha, y, pos, k, shift=0):
    """Attention window by window, slicing the unpadded grid (no padding, no masks)."""
    out = torch.empty_like(y)
    B, T, h, w, d = y.shape
    for r0, r1 in intervals(h, k, axis_shift(h, k, shift)):
        for c0, c1 in intervals(w, k, axis_shift(w, k, shift)):
            block = y[:, :, r0:r1, c0:c1]
            query = (block + pos[:, r0:r1, c0:c1]).reshape(B, -1, d)
            res = ref_attention(mha, query, block.reshape(B, -1, d))
            out[:, :, r0:r1, c0:c1] = res.reshape(block.shape)
    return out


def ref_layer(layer, x, pos, attend):
    """x (B, T, h, w, d) through one layer, each attention block computed by ``attend[name]``."""
    for name in layer.blocks:
        x = x + attend[name](layer.attns[name], layer.norms[name](x), pos)
    return x + layer.ffn(layer.ffn_norm(x))


def run_encoder(enc, x):
    """(B, T, h, w, d) channels-last in and out, through the encoder's public forward."""
    out = enc(x.permute(0, 1, 4, 2, 3))["layers"]
    return [o.permute(0, 1, 3, 4, 2) for o in out]


# ----------------------------------------------------------------- cube partition


@pytest.mark.parametrize("T,h,w,k", [(3, 5, 7, 4), (2, 8, 8, 4), (1, 3, 2, 4), (2, 6, 9, 3)])
@pytest.mark.parametrize("shift", [0, 1, 2])
def test_cube_partition_round_trip(T, h, w, k, shift):
    x = torch.randn(2, T, h, w, 5)
    sh = (axis_shift(h, k, shift), axis_shift(w, k, shift))
    windows, key_pad = cube_partition(x, k, sh)
    assert windows.shape == (2 * num_cubes(h, w, k), T * k * k, 5)
    assert key_pad.shape == windows.shape[:2]
    assert torch.equal(cube_unpartition(windows, k, T, h, w, sh), x)
    # exactly the real tokens are unmasked, and every padded slot holds zeros
    assert int((~key_pad).sum()) == 2 * T * h * w
    assert torch.all(windows[key_pad] == 0)
    assert torch.equal(torch.sort(windows[~key_pad].flatten()).values, torch.sort(x.flatten()).values)


def test_cube_partition_layout():
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(1, 2, 4, 4, 1)
    windows, key_pad = cube_partition(x, 2)
    # first cube: rows 0-1, cols 0-1 of both frames, ordered (t kh kw)
    assert windows[0, :, 0].tolist() == [0, 1, 4, 5, 16, 17, 20, 21]
    assert not key_pad.any()


# ----------------------------------------------------------------- position encoding


def test_position_encoding_distinct_and_deterministic():
    pe = sine_position_3d(3, 5, 7, D)
    assert pe.shape == (3, 5, 7, D)
    assert torch.equal(pe, sine_position_3d(3, 5, 7, D))
    flat = pe.reshape(-1, D)
    dist = torch.cdist(flat, flat) + torch.eye(flat.shape[0]) * 1e3
    assert dist.min() > 1e-2
    with pytest.raises(ValueError, match="even"):
        sine_position_3d(2, 2, 2, 7)


# ----------------------------------------------------------------- encoder vs references


def test_frame_mode_equals_per_frame_attention():
    enc = make_encoder("frame")
    x = torch.randn(2, 3, 5, 7, D)
    pos = sine_position_3d(3, 5, 7, D)
    expected = ref_layer(enc.layers[0], x, pos, {"frame": ref_frames})
    assert torch.allclose(run_encoder(enc, x)[0], expected, atol=1e-5)


def test_full_mode_equals_attention_over_all_tokens():
    enc = make_encoder("full")
    x = torch.randn(2, 3, 5, 7, D)
    pos = sine_position_3d(3, 5, 7, D)
    expected = ref_layer(enc.layers[0], x, pos, {"full": ref_full})
    assert torch.allclose(run_encoder(enc, x)[0], expected, atol=1e-5)


@pytest.mark.parametrize("T,h,w", [(3, 5, 7), (2, 8, 8), (2, 3, 3)])
def test_cube_mode_equals_window_loop(T, h, w):
    enc = make_encoder("cube")
    x = torch.randn(2, T, h, w, D)
    pos = sine_position_3d(T, h, w, D)
    expected = ref_layer(enc.layers[0], x, pos, {"cube": lambda m, y, p: ref_cubes(m, y, p, K)})
    assert torch.allclose(run_encoder(enc, x)[0], expected, atol=1e-5)


def test_cube_frame_equals_cube_then_frame():
    enc = make_encoder("cube-frame")
    x = torch.randn(1, 3, 5, 7, D)
    pos = sine_position_3d(3, 5, 7, D)
    attend = {"cube": lambda m, y, p: ref_cubes(m, y, p, K), "frame": ref_frames}
    assert torch.allclose(run_encoder(enc, x)[0], ref_layer(enc.layers[0], x, pos, attend), atol=1e-5)


@pytest.mark.parametrize("T,h,w", [(3, 5, 7), (2, 8, 8), (2, 9, 6)])
def test_shifted_cube_equals_shifted_window_loop(T, h, w):
    enc = make_encoder("shifted-cube", layers=2)
    assert [layer.shift for layer in enc.layers] == [0, K // 2]
    x = torch.randn(2, T, h, w, D)
    pos = sine_position_3d(T, h, w, D)
    first, second = run_encoder(enc, x)
    attend = {"cube": lambda m, y, p: ref_cubes(m, y, p, K, shift=K // 2), "frame": ref_frames}
    assert torch.allclose(second, ref_layer(enc.layers[1], first, pos, attend), atol=1e-5)


def test_shifted_cube_differs_from_cube():
    shifted, plain = make_encoder("shifted-cube", layers=2), make_encoder("cube-frame", layers=2)
    plain.load_state_dict(shifted.state_dict())  # same weights, only the windows differ
    x = torch.randn(1, 2, 8, 8, D)
    a, b = run_encoder(shifted, x), run_encoder(plain, x)
    assert torch.allclose(a[0], b[0], atol=1e-6)  # layer 0 is not shifted
    assert not torch.allclose(a[1], b[1], atol=1e-3)


@pytest.mark.parametrize("mode", ["cube", "shifted-cube"])
def test_padded_keys_get_exactly_zero_weight(mode):
    enc = make_encoder(mode, layers=2)
    T, h, w = 3, 5, 7
    out = enc(torch.randn(2, T, D, h, w), record_attention=True)
    for layer, maps in zip(enc.layers, out["attn"]):
        shift = (axis_shift(h, K, layer.shift), axis_shift(w, K, layer.shift))
        _, key_pad = cube_partition(torch.zeros(2, T, h, w, 1), K, shift)
        weights = maps["cube"]  # (B*nC, T*k*k, T*k*k)
        real_queries = ~key_pad[:, :, None]
        assert torch.all(weights.masked_select(real_queries & key_pad[:, None, :]) == 0)
        rows = weights.sum(-1)
        assert torch.allclose(rows, torch.ones_like(rows), atol=1e-5)
        if any(shift):  # tokens from different strips never see each other
            allowed = cube_attention_mask(key_pad, h, w, K, T, shift)
            assert torch.all(weights.masked_select(real_queries & ~allowed) == 0)


@pytest.mark.parametrize("shift", [0, 2])
def test_padded_content_does_not_change_real_outputs(shift):
    enc = make_encoder("cube")
    mha = enc.layers[0].attns["cube"]
    T, h, w = 3, 5, 7
    sh = (axis_shift(h, K, shift), axis_shift(w, K, shift))
    windows, key_pad = cube_partition(torch.randn(2, T, h, w, D), K, sh)
    allowed = cube_attention_mask(key_pad, h, w, K, T, sh)
    noisy = windows.clone()
    noisy[key_pad] = torch.randn(int(key_pad.sum()), D) * 100
    a, _ = mha(windows, windows, windows, allowed)
    b, _ = mha(noisy, noisy, noisy, allowed)
    assert torch.allclose(a[~key_pad], b[~key_pad], atol=1e-5)
    assert torch.isfinite(b).all()


@pytest.mark.parametrize("mode", ATTENTION_MODES)
def test_shapes_and_recorded_path_match(mode):
    enc = make_encoder(mode, layers=2)
    x = torch.randn(2, 3, D, 5, 7)
    plain = enc(x)
    recorded = enc(x, record_attention=True)
    assert plain["attn"] is None and len(recorded["attn"]) == 2
    assert [o.shape for o in plain["layers"]] == [x.shape] * 2
    for a, b in zip(plain["layers"], recorded["layers"]):
        assert torch.allclose(a, b, atol=1e-5)


def test_invalid_mode_raises():
    with pytest.raises(ValueError, match="unknown mode"):
        SpatioTemporalEncoder(D, make_cfg("temporal"))


# ----------------------------------------------------------------- decoder and reasoner


def test_decoder_ignores_padded_words():
    torch.manual_seed(0)
    dec = ShallowTextDecoder(D, layers=2, heads=HEADS, ffn_dim=64).eval()
    shallow, words = torch.randn(2, 2, D, 3, 4), torch.randn(2, 5, D)
    pad = torch.tensor([[False, False, False, True, True], [False] * 4 + [True]])
    changed = words.clone()
    changed[pad] = torch.randn(int(pad.sum()), D) * 10
    a = dec(shallow, words, pad, record_attention=True)
    b = dec(shallow, changed, pad)
    for x, y in zip(a["layers"], b["layers"]):
        assert x.shape == shallow.shape
        assert torch.allclose(x, y, atol=1e-5)
    for weights in a["attn"]:  # (B, T*h*w, L)
        assert torch.all(weights.masked_select(pad[:, None, :].expand_as(weights)) == 0)


@pytest.mark.parametrize("mode,decoder", [("cube-frame", True), ("shifted-cube", False), ("full", True)])
def test_reasoner_layers_and_gradients(mode, decoder):
    torch.manual_seed(0)
    model = SpatioTemporalReasoner(D, make_cfg(mode, layers=2, decoder=decoder))
    fused, shallow = torch.randn(1, 3, D, 5, 7), torch.randn(1, 3, D, 5, 7)
    words, pad = torch.randn(1, 4, D), torch.tensor([[False, False, False, True]])
    out = model(fused, shallow, words, pad)
    assert len(out["layers"]) == 2 and all(o.shape == fused.shape for o in out["layers"])
    sum(o.square().mean() for o in out["layers"]).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    if not decoder:
        assert torch.allclose(out["layers"][-1], model.encoder(fused)["layers"][-1])


def test_decoder_reads_text_encoder_words_when_configured():
    torch.manual_seed(0)
    fused_cfg, text_cfg = make_cfg("cube-frame", layers=2), make_cfg("cube-frame", layers=2, decoder_words="text")
    assert fused_cfg.decoder_words == "fused"  # the default: stage-2's updated words
    fused_model = SpatioTemporalReasoner(D, fused_cfg)
    text_model = SpatioTemporalReasoner(D, text_cfg, text_width=48)
    assert fused_model.word_proj is None and text_model.word_proj.weight.shape == (D, 48)  # D_t -> d
    text_model.load_state_dict(fused_model.state_dict(), strict=False)  # same weights but the projection
    video, shallow = torch.randn(1, 3, D, 5, 7), torch.randn(1, 3, D, 5, 7)
    pad = torch.tensor([[False, False, False, True]])
    text_words = torch.randn(1, 4, 48)  # (B, L, D_t)
    fused_out = fused_model(video, shallow, torch.randn(1, 4, D), pad)
    text_out = text_model(video, shallow, text_words, pad)
    assert all(o.shape == video.shape for o in text_out["layers"])
    assert (text_out["layers"][-1] - fused_out["layers"][-1]).abs().max() > 1e-3
    text_out["layers"][-1].square().mean().backward()
    assert text_model.word_proj.weight.grad.abs().sum() > 0
    # the decoder reads the projected text-encoder words
    with torch.no_grad():
        projected = text_model.word_proj(text_words)  # (B, L, d)
        expected = text_model.encoder(video)["layers"][-1] + text_model.decoder(shallow, projected, pad)["layers"][-1]
    torch.testing.assert_close(text_out["layers"][-1].detach(), expected)


def test_decoder_words_errors():
    with pytest.raises(ValueError, match="spatiotemporal.decoder_words='sentence'"):
        SpatioTemporalReasoner(D, make_cfg("cube-frame", decoder_words="sentence"))
    with pytest.raises(ValueError, match="text_width"):
        SpatioTemporalReasoner(D, make_cfg("cube-frame", decoder_words="text"))
    model = SpatioTemporalReasoner(D, make_cfg("cube-frame", decoder_words="text"), text_width=48)
    with pytest.raises(ValueError, match=r"words \(B, L, D_t=48\)"):
        model(torch.randn(1, 2, D, 4, 4), torch.randn(1, 2, D, 4, 4), torch.randn(1, 3, D), None)


def test_attention_cost():
    T, h, w, k = 8, 22, 22, 4
    full, cf = attention_cost("full", T, h, w, k), attention_cost("cube-frame", T, h, w, k)
    assert full == (T * h * w) ** 2
    assert cf == T * (h * w) ** 2 + 36 * (T * k * k) ** 2  # 22 -> 24: 6 x 6 cubes
    assert 5.5 < full / cf < 6.5
    assert attention_cost("shifted-cube", T, h, w, k) == cf
    assert attention_cost("frame", T, h, w, k) + attention_cost("cube", T, h, w, k) == cf
