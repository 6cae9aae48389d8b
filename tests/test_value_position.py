"""spatiotemporal.value_position: what the values of the stage-3 attention say about where they came from."""

import pytest
import torch
import torch.nn.functional as F

from rvoslib.config import SpatioTemporalConfig
from rvoslib.position import sine_position_3d
from rvoslib.spatiotemporal import SpatioTemporalEncoder

D, HEADS, K = 32, 4, 4


def make_encoder(mode, value_position, seed=0, relative_init_std=0.0):
    torch.manual_seed(seed)
    cfg = SpatioTemporalConfig(layers=1, heads=HEADS, cube_size=K, attention=mode, ffn_dim=64,
                               value_position=value_position, relative_init_std=relative_init_std)
    return SpatioTemporalEncoder(D, cfg).eval()


def run(enc, x):
    """(B, T, h, w, d) channels-last through the encoder's public forward."""
    return enc(x.permute(0, 1, 4, 2, 3))["layers"][0].permute(0, 1, 3, 4, 2)


def heads_of(t):  # (N, d) -> (heads, N, c)
    return t.view(t.shape[0], HEADS, -1).transpose(0, 1)


def ref_cube_with_offsets(layer, y, pos):
    """Cube attention written out token by token: y (B, T, h, w, d) normalised, one cube per k x k block,
    each value read by query (t, r, c) from key (t', r', c') gets table[t'-t, r'-r, c'-c] added."""
    mha, table, M = layer.attns["cube"], layer.offsets.table, layer.offsets.max_frames
    B, T, h, w, d = y.shape
    out = torch.zeros_like(y)
    for b in range(B):
        for r0 in range(0, h, K):
            for c0 in range(0, w, K):
                coords = [(t, r, c) for t in range(T) for r in range(r0, min(r0 + K, h))
                          for c in range(c0, min(c0 + K, w))]
                tokens = torch.stack([y[b, t, r, c] for t, r, c in coords])  # (N, d)
                query = torch.stack([y[b, t, r, c] + pos[t, r, c] for t, r, c in coords])
                q = heads_of(F.linear(query, mha.q_proj.weight, mha.q_proj.bias))
                k = heads_of(F.linear(query, mha.k_proj.weight, mha.k_proj.bias))
                v = heads_of(F.linear(tokens, mha.v_proj.weight, mha.v_proj.bias))  # (heads, N, c)
                weights = (q @ k.transpose(1, 2) * q.shape[-1] ** -0.5).softmax(-1)  # (heads, N, N)
                rel = torch.stack([torch.stack([heads_of(table[t2 - t1 + M - 1, r2 - r1 + K - 1,
                                                               c2 - c1 + K - 1][None])[:, 0]
                                                for t2, r2, c2 in coords]) for t1, r1, c1 in coords])
                rel = rel.permute(2, 0, 1, 3)  # (heads, N query, N key, c)
                heads = weights @ v + torch.einsum("hqk,hqkc->hqc", weights, rel)
                res = F.linear(heads.transpose(0, 1).reshape(len(coords), d), mha.out_proj.weight,
                               mha.out_proj.bias)
                for (t, r, c), row in zip(coords, res):
                    out[b, t, r, c] = row
    return out


@pytest.mark.parametrize("T,h,w", [(3, 5, 7), (2, 4, 4)])
def test_relative_offsets_equal_a_token_by_token_reference(T, h, w):
    enc = make_encoder("cube", "relative")
    layer = enc.layers[0]
    with torch.no_grad():
        layer.offsets.table.normal_()  # a trained-looking table (it starts at zero)
    x = torch.randn(2, T, h, w, D)
    pos = sine_position_3d(T, h, w, D)
    y = layer.norms["cube"](x)
    expected = x + ref_cube_with_offsets(layer, y, pos)
    expected = expected + layer.ffn(layer.ffn_norm(expected))
    assert torch.allclose(run(enc, x), expected, atol=1e-4)


def test_relative_offsets_start_as_plain_cube_attention():
    plain, relative = make_encoder("cube-frame", "none"), make_encoder("cube-frame", "relative")
    x = torch.randn(2, 4, 6, 6, D)
    assert torch.allclose(run(plain, x), run(relative, x), atol=1e-5)


def test_relative_init_std_draws_the_table_at_that_scale_and_departs_from_plain_attention():
    plain = make_encoder("cube-frame", "none")
    enc = make_encoder("cube-frame", "relative", relative_init_std=0.5)
    table = enc.layers[0].offsets.table  # 15 x 7 x 7 x 32 = 23520 draws
    assert abs(table.std().item() - 0.5) < 0.02 and abs(table.mean().item()) < 0.02
    x = torch.randn(2, 4, 6, 6, D)
    assert not torch.allclose(run(plain, x), run(enc, x), atol=1e-3)


def test_negative_relative_init_std_is_named():
    with pytest.raises(ValueError, match="relative_init_std must be >= 0, got -0.1"):
        make_encoder("cube-frame", "relative", relative_init_std=-0.1)


def test_relative_offsets_get_gradients_and_change_the_output_once_trained():
    enc = make_encoder("cube-frame", "relative").train()
    x = torch.randn(2, 4, 6, 6, D)
    before = run(enc, x)
    before.square().mean().backward()
    grad = enc.layers[0].offsets.table.grad
    assert grad is not None and grad.abs().sum() > 0
    with torch.no_grad():
        enc.layers[0].offsets.table.add_(grad.sign() * 0.1)
    assert not torch.allclose(run(enc, x), before, atol=1e-3)


def test_absolute_position_is_added_to_the_values():
    enc = make_encoder("frame", "absolute")
    layer = enc.layers[0]
    x = torch.randn(1, 2, 3, 3, D)
    pos = sine_position_3d(2, 3, 3, D)
    mha, y = layer.attns["frame"], layer.norms["frame"](x)
    expected = torch.empty_like(x)
    for t in range(2):
        query = (y[:, t] + pos[t]).reshape(1, 9, D)
        q = F.linear(query, mha.q_proj.weight, mha.q_proj.bias).view(1, 9, HEADS, -1).transpose(1, 2)
        k = F.linear(query, mha.k_proj.weight, mha.k_proj.bias).view(1, 9, HEADS, -1).transpose(1, 2)
        v = F.linear(query, mha.v_proj.weight, mha.v_proj.bias).view(1, 9, HEADS, -1).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2)
        expected[:, t] = F.linear(out, mha.out_proj.weight, mha.out_proj.bias).reshape(1, 3, 3, D)
    expected = x + expected
    expected = expected + layer.ffn(layer.ffn_norm(expected))
    assert torch.allclose(run(enc, x), expected, atol=1e-5)
    assert not torch.allclose(run(make_encoder("frame", "none"), x), expected, atol=1e-3)


def test_recorded_weights_with_relative_offsets_match_the_fast_path():
    enc = make_encoder("cube-frame", "relative")
    with torch.no_grad():
        enc.layers[0].offsets.table.normal_()
    x = torch.randn(1, 3, 4, 4, D).permute(0, 1, 4, 2, 3)
    fast, recorded = enc(x), enc(x, record_attention=True)
    assert torch.allclose(fast["layers"][0], recorded["layers"][0], atol=1e-6)
    cube = recorded["attn"][0]["cube"]  # (B*nC, T*k*k, T*k*k)
    assert cube.shape == (1, 48, 48) and torch.allclose(cube.sum(-1), torch.ones(1, 48))


@pytest.mark.parametrize("mode", ["frame", "full"])
def test_relative_offsets_need_a_cube_block(mode):
    with pytest.raises(ValueError, match="value_position='relative'.*no cube block"):
        make_encoder(mode, "relative")


def test_unknown_value_position_is_named():
    with pytest.raises(ValueError, match="value_position: unknown 'sine'"):
        make_encoder("cube-frame", "sine")
