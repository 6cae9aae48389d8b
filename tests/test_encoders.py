"""rvoslib.text_encoder and rvoslib.vision_encoder: parity with open_clip, prompts, gradients, errors."""

import copy
import time
import warnings

import pytest
import torch
from einops import rearrange

from rvoslib import text_encoder
from rvoslib.backbone import create_clip, get_tokenizer
from rvoslib.config import BackboneConfig, ModelConfig, clip_b16, tiny
from rvoslib.prompts import HistoryEncoder, PromptGenerator
from rvoslib.text_encoder import PromptedTextEncoder, tokenize
from rvoslib.vision_encoder import PromptedVisionEncoder, Stage1CrossAttention

SENTENCES = ["the red dog running on the left", "a cat"]


def tiny_square():
    """The tiny preset on the "rvos-tiny" architecture (D_v = D_t = 64), whose shapes these tests spell out;
    the preset's own "rvos-tiny2" has a narrower text tower (D_t = 32)."""
    cfg = tiny()
    cfg.model.backbone.model_name = "rvos-tiny"
    return cfg


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(0)
    return create_clip(tiny_square().model.backbone)


@pytest.fixture(scope="module")
def tokenizer():
    return get_tokenizer(tiny_square().model.backbone)


@pytest.fixture(scope="module")
def tokens(tokenizer):
    return tokenize(SENTENCES, tokenizer)


def model_cfg(stage1=True, temporal=True, vision=True, language=True, **backbone) -> ModelConfig:
    cfg = tiny_square().model
    cfg.vision.stage1 = stage1
    cfg.prompts.use_temporal, cfg.prompts.use_vision, cfg.prompts.use_language = temporal, vision, language
    for key, value in backbone.items():
        setattr(cfg.backbone, key, value)
    return cfg


def build(clip, cfg):
    torch.manual_seed(1)
    venc = PromptedVisionEncoder(clip, cfg)
    tenc = PromptedTextEncoder(clip, cfg.prompts)
    gen = PromptGenerator(cfg.prompts, venc.vision_width, venc.text_width)
    hist = HistoryEncoder(cfg.prompts, cfg.dim, venc.vision_width)
    return venc, tenc, gen, hist


def frames(b=2, t=4, s=64, seed=2):
    return torch.randn(b, t, 3, s, s, generator=torch.Generator().manual_seed(seed))


def run(parts, video, tokens, history=True, record=False):
    venc, tenc, gen, hist = parts
    prompts = gen(video.shape[1])
    text = tenc(tokens, prompts["language"])
    hist_tokens = hist.initial(video.shape[0]) if history else None
    return venc(video, text["words"], text["word_pad"], prompts, hist_tokens, record_attention=record)


def assert_clip_parity(clip, venc, video, atol=1e-5):
    """Taps and final CLS equal open_clip's forward_intermediates / encode_image on the same frames."""
    words = torch.randn(video.shape[0], 3, venc.text_width)
    pad = torch.tensor([[False, False, True]]).expand(video.shape[0], -1)
    out = venc(video, words, pad, prompts=None, history=None)
    flat = video.flatten(0, 1)
    ref = clip.visual.forward_intermediates(flat, indices=list(venc.tap_layers), intermediates_only=True)
    errors = [(a.flatten(0, 1) - r).abs().max().item() for a, r in zip(out["taps"], ref["image_intermediates"])]
    assert len(errors) == len(venc.tap_layers) and max(errors) < atol, errors
    image = clip.encode_image(flat)
    assert (out["cls_proj"].flatten(0, 1) - image).abs().max() < atol
    torch.testing.assert_close(out["cls"].flatten(0, 1) @ clip.visual.proj, image, atol=atol, rtol=0)
    return max(errors)


# --------------------------------------------------------------------------- text encoder


def test_text_parity_without_prompts(clip, tokens):
    tenc = PromptedTextEncoder(clip, model_cfg(language=False).prompts)
    out = tenc(tokens, None)
    torch.testing.assert_close(out["sentence_proj"], clip.encode_text(tokens), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["sentence"] @ clip.text_projection, clip.encode_text(tokens), atol=1e-5, rtol=1e-5)


def test_text_words_padding_and_batch_independence(clip, tokens):
    tenc = PromptedTextEncoder(clip, model_cfg().prompts)
    prompts = torch.randn(4, 64)
    out = tenc(tokens, prompts)
    assert out["words"].shape == (2, 7, 64) and out["sentence"].shape == (2, 64)
    assert out["word_pad"].tolist() == [[False] * 7, [False, False] + [True] * 5]
    assert out["words"][1, 2:].abs().sum() == 0
    alone = tenc(tokens[1:], prompts)
    assert alone["words"].shape == (1, 2, 64)
    torch.testing.assert_close(alone["words"][0], out["words"][1, :2], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alone["sentence"][0], out["sentence"][1], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out["sentence"], tenc(tokens, None)["sentence"], atol=1e-3)  # prompts matter


def test_tokenize_rejects_empty_sentences(tokenizer):
    for bad in ["", "   ", ["a dog", " \t\n"]]:
        with pytest.raises(ValueError, match="empty or whitespace"):
            tokenize(bad, tokenizer)
    with pytest.raises(ValueError, match="sentence 1 must be a str"):
        tokenize(["a dog", None], tokenizer)


def test_empty_token_rows_rejected(clip, tokenizer):
    tenc = PromptedTextEncoder(clip, model_cfg().prompts)
    with pytest.raises(ValueError, match="no words"):
        tenc(tokenizer([""]), None)


def test_overlong_sentence_truncated_with_one_warning(clip, tokenizer, monkeypatch):
    monkeypatch.setattr(text_encoder, "_truncation_warned", False)
    tenc = PromptedTextEncoder(clip, model_cfg().prompts)
    long = " ".join(["red"] * 40)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        toks = tokenize([long, "a cat"], tokenizer, num_prompts=4)
        out = tenc(toks, torch.randn(4, 64))
        tenc(toks, torch.randn(4, 64))
    truncation = [w for w in caught if "context length" in str(w.message)]
    assert len(truncation) == 1
    room = 32 - 2 - 4
    assert out["words"].shape[1] == room and not out["word_pad"][0].any()
    # the EOT is kept: same sentence feature as the sentence cut to `room` words by hand
    prompts = torch.randn(4, 64)
    short = tenc(tokenizer([" ".join(["red"] * room)]), prompts)
    torch.testing.assert_close(tenc(toks[:1], prompts)["sentence"], short["sentence"], atol=1e-5, rtol=1e-5)


def test_text_encoder_bad_inputs(clip, tokens):
    tenc = PromptedTextEncoder(clip, model_cfg().prompts)
    with pytest.raises(ValueError, match=r"integer tensor \(B, L_ctx\)"):
        tenc(tokens.float(), None)
    with pytest.raises(ValueError, match=r"language_prompts must be \(N_l, D_t=64\)"):
        tenc(tokens, torch.randn(4, 32))


# --------------------------------------------------------------------------- vision encoder: parity


def test_vision_parity_tiny(clip):
    for stage1 in (False, True):  # stage 1 on but gates at zero is CLIP unchanged
        venc = PromptedVisionEncoder(clip, model_cfg(stage1=stage1, temporal=False, vision=False))
        venc.train()
        assert_clip_parity(clip, venc, frames(2, 3))


@pytest.fixture(scope="module")
def vit_b16():  # random weights (pretrained=None) at a small S to keep the test fast
    cfg = clip_b16().model
    cfg.backbone = BackboneConfig(model_name="ViT-B-16", pretrained=None, image_size=64)
    torch.manual_seed(0)
    return create_clip(cfg.backbone), cfg


@pytest.mark.slow
def test_vision_parity_vit_b16(vit_b16):
    clip, cfg = vit_b16
    cfg = copy.deepcopy(cfg)
    cfg.prompts.use_temporal = cfg.prompts.use_vision = False
    venc = PromptedVisionEncoder(clip, cfg)  # stage 1 in all 12 blocks, gates at zero
    assert venc.grid_size == (4, 4) and venc.tap_layers == (3, 7, 9, 11)
    with torch.no_grad():
        assert_clip_parity(clip, venc, frames(1, 2, 64))


def test_stage1_is_a_noop_at_step_zero_with_prompts(clip, tokens):
    venc, tenc, gen, hist = build(clip, model_cfg(stage1=True))
    plain = PromptedVisionEncoder(clip, model_cfg(stage1=False))
    video = frames()
    with torch.no_grad():
        outs = [run((encoder, tenc, gen, hist), video, tokens) for encoder in (venc, plain)]
    for a, b in zip(outs[0]["taps"], outs[1]["taps"]):
        assert torch.equal(a, b)
    assert torch.equal(outs[0]["cls"], outs[1]["cls"])


def test_recording_path_matches_sdpa_path(clip, tokens):
    parts = build(clip, model_cfg())
    for gate in parts[0].stage1.values():
        torch.nn.init.constant_(gate.alpha, 0.5)  # make stage 1 active
    video = frames(2, 3)
    with torch.no_grad():
        plain = run(parts, video, tokens)
        recorded = run(parts, video, tokens, record=True)
    assert plain["attn"] is None
    for key in ("visual", "shallow", "cls"):
        torch.testing.assert_close(recorded[key], plain[key], atol=1e-5, rtol=1e-5)
    attn, (b, t, n, n_v, n_tp, n_h) = recorded["attn"], (2, 3, 64, 4, 2, 2)
    s_f = 1 + n + n_h + n_v + n_tp
    assert attn["layout"]["temporal"] == slice(s_f - n_tp, s_f)
    for layer in range(4):
        assert attn["stage1"][layer].shape == (b, t, n, 7)
        torch.testing.assert_close(attn["stage1"][layer].sum(-1), torch.ones(b, t, n))
        assert attn["stage1"][layer][1, :, :, 2:].abs().max() == 0  # padded words get no attention
        assert attn["prompt_to_patch"][layer].shape == (b, t, n_v, n)
        assert attn["cls_to_patch"][layer].shape == (b, t, n)
        assert attn["temporal"][layer].shape == (b, t * n_tp, t, s_f)
        torch.testing.assert_close(attn["temporal"][layer].sum((-2, -1)), torch.ones(b, t * n_tp))


# --------------------------------------------------------------------------- vision encoder: behaviour


def test_output_shapes_and_properties(clip, tokens):
    parts = build(clip, model_cfg())
    venc = parts[0]
    assert (venc.vision_width, venc.text_width, venc.grid_size, venc.patch_size) == (64, 64, (8, 8), 8)
    out = run(parts, frames(2, 4), tokens)
    assert out["visual"].shape == out["shallow"].shape == (2, 4, 64, 8, 8)
    assert len(out["taps"]) == 4 and out["taps"][0].shape == (2, 4, 64, 8, 8)
    assert out["cls"].shape == (2, 4, 64) and out["cls_proj"].shape == (2, 4, 64)


def _loss(parts, video, tokens):
    """A loss that, like the full model's, reads the visual, shallow and word features."""
    venc, tenc, gen, hist = parts
    prompts = gen(video.shape[1])
    text = tenc(tokens, prompts["language"])
    out = venc(video, text["words"], text["word_pad"], prompts, hist.initial(video.shape[0]))
    return out["visual"].square().mean() + out["shallow"].square().mean() + text["words"].square().mean()


def test_frozen_split_and_gradients(clip, tokens):
    parts = build(clip, model_cfg())
    venc, tenc, gen, hist = parts
    for module in parts:
        module.train()
    assert not any(m.training for m in venc.visual.modules())
    assert not tenc.transformer.training
    loss = lambda: _loss(parts, frames(1, 3), tokens[:1])  # noqa: E731
    loss().backward()
    assert all(p.grad is None for p in clip.parameters())
    trainable = {f"{i}.{name}": p for i, m in enumerate(parts) for name, p in m.named_parameters() if p.requires_grad}
    pooling = {k for k in trainable if k.startswith("3.") and not k.endswith("initial_tokens")}
    assert all(p.grad is not None for k, p in trainable.items() if k not in pooling)  # pool: after a clip
    gated = {k for k in trainable if k.startswith("0.stage1.") or k.startswith("0.word_proj.")}
    gated -= {k for k in gated if k.endswith(".alpha")}
    for name, p in trainable.items():
        if name in gated:  # behind tanh(alpha = 0): zero gradient at step 0
            assert p.grad.abs().max() == 0, name
        elif name not in pooling:
            assert p.grad.abs().max() > 0, name
    assert all(trainable[f"0.stage1.{l}.alpha"].grad.abs().item() > 0 for l in range(4))

    # one optimizer step moves alpha away from 0; then the cross-attention weights learn
    torch.optim.SGD(trainable.values(), lr=0.1).step()
    for p in trainable.values():
        p.grad = None
    loss().backward()
    for name in gated:
        assert trainable[name].grad.abs().max() > 0, name


def reference_block(block, x, batch, num_temporal):
    """open_clip's own block on every frame, except that the temporal prompts' attention reads the
    keys/values of all frames: built from ``block.attention`` (nn.MultiheadAttention) only."""
    h = block.ln_1(x)  # (B*T, S_f, D_v)
    a = block.attention(q_x=h)  # within each frame
    every = rearrange(h, "(b t) s c -> b (t s) c", b=batch)  # (B, T*S_f, D_v)
    prompts = rearrange(h[:, -num_temporal:], "(b t) p c -> b (t p) c", b=batch)  # (B, T*N_tp, D_v)
    a_tp = block.attention(q_x=prompts, k_x=every, v_x=every)
    a = torch.cat([a[:, :-num_temporal], rearrange(a_tp, "b (t p) c -> (b t) p c", p=num_temporal)], dim=1)
    x = x + block.ls_1(a)
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def test_temporal_capture_is_the_frozen_attention_over_all_frames(clip, tokens):
    """Every block: CLIP's own block per frame, the temporal prompts attending to all frames' tokens."""
    venc, tenc, gen, hist = build(clip, model_cfg(stage1=False))
    video = frames(2, 3)
    with torch.no_grad():
        prompts = gen(3)
        history = hist.initial(2)
        out = venc(video, None, None, prompts, history)
        extra = [history.repeat_interleave(3, dim=0), prompts["vision"].expand(6, -1, -1), prompts["temporal"].repeat(2, 1, 1)]
        x = venc._embed(video, extra)  # (B*T, S_f, D_v)
        n_tp = prompts["temporal"].shape[1]
        taps = []
        for layer, block in enumerate(venc.blocks):
            frame_only = block(x)  # open_clip's forward on each frame on its own
            x = reference_block(block, x, 2, n_tp)
            # only the temporal prompts differ from CLIP's per-frame block
            torch.testing.assert_close(x[:, :-n_tp], frame_only[:, :-n_tp], atol=1e-5, rtol=1e-5)
            assert (x[:, -n_tp:] - frame_only[:, -n_tp:]).abs().max() > 1e-3
            if layer in venc.tap_layers:
                taps.append(rearrange(x[:, 1:65], "(b t) (h w) c -> b t c h w", b=2, h=8))
    for ours, ref in zip(out["taps"], taps):
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_stage1_bottleneck_width_and_validation(clip):
    venc = PromptedVisionEncoder(clip, model_cfg())
    assert venc.stage1_dim == 16  # D_v // 4
    s1 = venc.stage1["0"]
    assert (s1.q.weight.shape, s1.kv.weight.shape, s1.out.weight.shape) == ((16, 64), (32, 16), (64, 16))
    assert venc.word_proj.weight.shape == (16, 64)  # D_t -> r
    cfg = model_cfg()
    cfg.vision.stage1_dim = 64  # full width
    wide = PromptedVisionEncoder(clip, cfg)
    assert wide.stage1["0"].q.weight.shape == (64, 64)
    n = lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad)  # noqa: E731
    assert n(wide) > n(venc)
    cfg.vision.stage1_dim = 15
    with pytest.raises(ValueError, match=r"stage1_heads=2 must divide the stage-1 inner width \(vision.stage1_dim\) 15"):
        PromptedVisionEncoder(clip, cfg)


def test_stage1_rows_may_be_clips_or_frames():
    torch.manual_seed(0)
    s1 = Stage1CrossAttention(64, 2, 16)
    torch.nn.init.constant_(s1.alpha, 0.5)
    x, words = torch.randn(2, 3 * 5, 64), torch.randn(2, 4, 16)
    keep = torch.tensor([[True, True, True, False], [True, False, False, False]])[:, None, None, :]
    clip_rows, w_clip = s1(x, words, keep, record=True)
    frame_rows, w_frame = s1(rearrange(x, "b (t m) c -> (b t) m c", t=3), words.repeat_interleave(3, 0),
                             keep.repeat_interleave(3, 0), record=True)
    torch.testing.assert_close(rearrange(frame_rows, "(b t) m c -> b (t m) c", t=3), clip_rows)
    torch.testing.assert_close(rearrange(w_frame, "(b t) m l -> b (t m) l", t=3), w_clip)
    assert w_clip[1, :, 1:].abs().max() == 0


def _frames_after_first(parts, tokens, video):
    with torch.no_grad():
        return run(parts, video, tokens[:1], history=False)["taps"][-1][:, 1:]


@pytest.mark.parametrize("temporal", [True, False])
def test_temporal_capture_mixes_frames_only_when_enabled(clip, tokens, temporal):
    parts = build(clip, model_cfg(temporal=temporal))
    video = frames(1, 3)
    perturbed = video.clone()
    perturbed[:, 0] = torch.randn_like(perturbed[:, 0])
    base, other = _frames_after_first(parts, tokens, video), _frames_after_first(parts, tokens, perturbed)
    changed = (base - other).abs().max().item()
    if temporal:
        assert changed > 1e-4
    else:
        assert changed == 0.0


def test_history_tokens_change_outputs(clip, tokens):
    parts = build(clip, model_cfg())
    venc, tenc, gen, hist = parts
    video = frames(1, 2)
    with torch.no_grad():
        prompts = gen(2)
        text = tenc(tokens[:1], prompts["language"])
        a = venc(video, text["words"], text["word_pad"], prompts, hist.initial(1))
        b = venc(video, text["words"], text["word_pad"], prompts, torch.randn(1, 2, 64))
        c = venc(video, text["words"], text["word_pad"], prompts, None)
    assert not torch.allclose(a["visual"], b["visual"], atol=1e-4)
    assert not torch.allclose(a["visual"], c["visual"], atol=1e-4)


def test_grad_checkpointing_gives_same_outputs_and_gradients(clip, tokens):
    results = []
    for flag in (False, True):
        parts = build(clip, model_cfg(grad_checkpointing=flag))
        out = run(parts, frames(1, 2), tokens[:1])
        out["visual"].square().mean().backward()
        grads = [p.grad.clone() for m in parts for p in m.parameters() if p.grad is not None]
        results.append((out["visual"].detach(), grads))
    torch.testing.assert_close(results[0][0], results[1][0])
    assert len(results[0][1]) == len(results[1][1])
    for g0, g1 in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(g0, g1, atol=1e-6, rtol=1e-4)


def test_stage1_layers_and_tap_validation(clip):
    cfg = model_cfg()
    cfg.vision.stage1_layers = (1, 3)
    assert sorted(PromptedVisionEncoder(clip, cfg).stage1) == ["1", "3"]
    cfg.vision.tap_layers = (1, 4)
    with pytest.raises(ValueError, match=r"tap_layers=\(1, 4\): block 4 does not exist; the ViT has 4 blocks"):
        PromptedVisionEncoder(clip, cfg)


def test_vision_bad_inputs(clip, tokens):
    parts = build(clip, model_cfg())
    venc = parts[0]
    words, pad = torch.randn(1, 3, 64), torch.zeros(1, 3, dtype=torch.bool)
    bad_frames = {
        "wrong S": torch.randn(1, 2, 3, 96, 96),
        "rank 4": torch.randn(2, 3, 64, 64),
        "grey": torch.randn(1, 2, 1, 64, 64),
        "T > max_frames": torch.randn(1, 65, 3, 64, 64),
    }
    for name, video in bad_frames.items():
        match = "at most prompts.max_frames" if name.startswith("T") else r"\(B, T, 3, 64, 64\)"
        with pytest.raises(ValueError, match=match):
            venc(video, words, pad)
    with pytest.raises(ValueError, match="float tensor"):
        venc(torch.zeros(1, 2, 3, 64, 64, dtype=torch.uint8), words, pad)
    with pytest.raises(ValueError, match="needs words and word_pad"):
        venc(frames(1, 2))
    with pytest.raises(ValueError, match="at least one unpadded word"):
        venc(frames(1, 2), words, torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"temporal prompts must be \(T=2"):
        venc(frames(1, 2), words, pad, parts[2](3))
    with pytest.raises(ValueError, match=r"history must be \(B=1, N_h, D_v=64\)"):
        venc(frames(1, 2), words, pad, None, torch.randn(2, 2, 64))


def test_tiny_forward_backward_is_fast(clip, tokens):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        parts = build(clip, model_cfg())
        video = frames(1, 4)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            out = run(parts, video, tokens[:1])
            (out["visual"].square().mean() + out["shallow"].mean()).backward()
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    assert min(times) < 1.0, times


# --------------------------------------------------------------------------- temporal capture: time code, placement


def capture_cfg(code="learned", placement="attention", stage1=False) -> ModelConfig:
    cfg = model_cfg(stage1=stage1)
    cfg.vision.capture_time_code, cfg.vision.capture_placement = code, placement
    return cfg


def randomise_time_code(venc) -> None:
    """Non-zero codes: random learned tables; sine scales set to 2."""
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in venc.time_code.parameters():
            p.copy_(torch.full_like(p, 2.0) if p.numel() == 1 else torch.randn(p.shape, generator=g))


def _frame0_change_when_reversed(parts, tokens) -> float:
    """Largest change of frame 0's tapped features when frames 1..T-1 are reversed."""
    video = frames(1, 4)
    reversed_rest = torch.cat([video[:, :1], video[:, 1:].flip(1)], dim=1)
    with torch.no_grad():
        a, b = (run(parts, v, tokens[:1]) for v in (video, reversed_rest))
    return max((x[:, 0] - y[:, 0]).abs().max().item() for x, y in zip(a["taps"], b["taps"]))


@pytest.mark.parametrize("placement", ["attention", "after-mlp"])
@pytest.mark.parametrize("code", ["learned", "sine", "none"])
def test_time_code_makes_the_capture_see_frame_order(clip, tokens, code, placement):
    parts = build(clip, capture_cfg(code, placement))
    # the same temporal prompts in every frame (no frame embedding), so that without a time code
    # reversing frames 1..T-1 is an exact permutation of what frame 0's prompts attend to
    torch.nn.init.zeros_(parts[2].frame_embed)
    if code == "none":
        assert parts[0].time_code is None
        assert _frame0_change_when_reversed(parts, tokens) < 1e-5  # a set of frames, not a sequence
        return
    assert _frame0_change_when_reversed(parts, tokens) < 1e-5  # codes start at zero: today's capture
    randomise_time_code(parts[0])
    assert _frame0_change_when_reversed(parts, tokens) > 1e-3


@pytest.mark.parametrize("placement", ["attention", "after-mlp"])
def test_zero_time_code_equals_no_code_and_gets_gradients(clip, tokens, placement):
    coded, plain = build(clip, capture_cfg("learned", placement)), build(clip, capture_cfg("none", placement))
    plain[0].load_state_dict(coded[0].state_dict(), strict=False)
    video = frames(1, 3)
    with torch.no_grad():
        torch.testing.assert_close(run(coded, video, tokens[:1])["taps"][-1], run(plain, video, tokens[:1])["taps"][-1],
                                   atol=1e-6, rtol=0)
    for code in ("learned", "sine"):
        venc = build(clip, capture_cfg(code, placement))[0]
        _loss((venc, *coded[1:]), video, tokens[:1]).backward()
        grads = {n: p.grad for n, p in venc.time_code.named_parameters()}
        assert set(grads) == ({"key_embed", "query_embed"} if code == "learned" else {"key_scale", "query_scale"})
        assert all(g is not None and g.abs().max() > 0 for g in grads.values()), (code, grads)


def reference_after_mlp_block(block, x, batch, num_temporal):
    """The paper's figure: open_clip's own block on every frame, then a separate capture step
    ``tp = tp + ls_1(attention(q=ln_1(tp), k=ln_1(all tokens of all frames), v=same))``."""
    x = block(x)  # (B*T, S_f, D_v), each frame on its own
    h = block.ln_1(x)
    every = rearrange(h, "(b t) s c -> b (t s) c", b=batch)  # (B, T*S_f, D_v)
    prompts = rearrange(h[:, -num_temporal:], "(b t) p c -> b (t p) c", b=batch)  # (B, T*N_tp, D_v)
    a_tp = rearrange(block.attention(q_x=prompts, k_x=every, v_x=every), "b (t p) c -> (b t) p c", p=num_temporal)
    return torch.cat([x[:, :-num_temporal], x[:, -num_temporal:] + block.ls_1(a_tp)], dim=1)


def test_after_mlp_capture_is_a_separate_frozen_attention_step(clip, tokens):
    venc, tenc, gen, hist = build(clip, capture_cfg("none", "after-mlp"))
    video = frames(2, 3)
    with torch.no_grad():
        prompts, history = gen(3), hist.initial(2)
        out = venc(video, None, None, prompts, history)
        extra = [history.repeat_interleave(3, dim=0), prompts["vision"].expand(6, -1, -1), prompts["temporal"].repeat(2, 1, 1)]
        x = venc._embed(video, extra)  # (B*T, S_f, D_v)
        taps = []
        for layer, block in enumerate(venc.blocks):
            x = reference_after_mlp_block(block, x, 2, prompts["temporal"].shape[1])
            if layer in venc.tap_layers:
                taps.append(rearrange(x[:, 1:65], "(b t) (h w) c -> b t c h w", b=2, h=8))
    for ours, ref in zip(out["taps"], taps):
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_capture_placements_differ_record_and_profile(clip, tokens):
    video, results = frames(2, 3), {}
    for placement in ("attention", "after-mlp"):
        parts = build(clip, capture_cfg("learned", placement, stage1=True))
        randomise_time_code(parts[0])
        with torch.no_grad(), torch.profiler.profile() as prof:
            plain = run(parts, video, tokens)
        names = [e.name for e in prof.events()]
        assert names.count("rvoslib.vision.temporal_capture") == len(parts[0].blocks), placement
        with torch.no_grad():
            recorded = run(parts, video, tokens, record=True)
        for key in ("visual", "shallow", "cls"):
            torch.testing.assert_close(recorded[key], plain[key], atol=1e-5, rtol=1e-5)
        s_f = 1 + 64 + 2 + 4 + 2
        for maps in recorded["attn"]["temporal"]:
            assert maps.shape == (2, 3 * 2, 3, s_f)
            torch.testing.assert_close(maps.sum((-2, -1)), torch.ones(2, 6))
        results[placement] = plain["visual"]
    assert (results["attention"] - results["after-mlp"]).abs().max() > 1e-3


@pytest.mark.parametrize("field, value", [("capture_time_code", "rope"), ("capture_placement", "before-attention")])
def test_unknown_capture_options_are_clear_errors(clip, field, value):
    cfg = capture_cfg()
    setattr(cfg.vision, field, value)
    with pytest.raises(ValueError, match=rf"vision.{field}='{value}'"):
        PromptedVisionEncoder(clip, cfg)
