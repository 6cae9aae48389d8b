# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: -all
#     notebook_metadata_filter: kernelspec,language_info,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
#   language_info:
#     codemirror_mode:
#       name: ipython
#       version: 3
#     file_extension: .py
#     mimetype: text/x-python
#     name: python
#     nbconvert_exporter: python
#     pygments_lexer: ipython3
#     version: 3.11.7
# ---

# %% [markdown]
# # 04 · Multi-stage vision-language relation modelling
#
# A referring sentence has to meet the pixels somewhere. VLP-RVOS lets them meet **three times**:
#
# | stage | where | who attends to whom | recorded in `out["attn"]` |
# |---|---|---|---|
# | 1 | *inside* the frozen CLIP ViT, every block | visual tokens (CLS + patches) -> words, added through a gate `tanh(alpha)` that starts at 0 | `["vision"]["stage1"][block]` `(B, T, N, L)` |
# | 2 | after the encoder (`rvoslib.fusion`) | words -> video, then video -> words, then the sentence gates the video | `["fusion"]["word_to_video"]` `(B, L, T·N)`, `["fusion"]["video_to_word"]` `(B, T·N, L)` |
# | 3 | in the spatio-temporal decoder (`rvoslib.spatiotemporal`) | the *shallow* (early-layer) features -> words | `["spatiotemporal"]["decoder"][layer]` `(B, T·N, L)` |
#
# This notebook shows, for one sentence and one chosen word:
#
# 1. stage 1's gates are exactly 0 at initialisation, so the prompted encoder computes **exactly**
#    CLIP's own features at step 0 (we check it against open_clip's forward); then we open the
#    gates to see what stage 1 attends to, block by block;
# 2. stage 2's two directions of propagation, and that padded words receive no attention;
# 3. stage 3's shallow-feature decoding;
# 4. one figure with the chosen word's attention over the frames at every stage.
#
# **Needs:** CPU in fast mode (tiny preset: a 4-block ViT, 64 x 64 input, 8 x 8 patches, T = 4, on
# a synthetic shapes clip); the shipped tiny pretrained CLIP `data_samples/tiny_clip/rvos-tiny-scenes.pt`
# when present, otherwise random CLIP weights. Full mode (`RVOSLIB_MODE=full`) uses open_clip
# ViT-B/16 with OpenAI weights (S = 352, 22 x 22 patches, T = 6) on the DAVIS blackswan clip; it
# needs the weights cached locally and a GPU, and could not be run where this notebook was written.
#
# **Time:** about 20 s in fast mode on a laptop CPU; about a minute in full mode on a GPU.
#
# Every trainable part is **untrained** here (notebook 07 trains them), so the maps show the
# mechanism and the plumbing, not a trained model's grounding.

# %%
from rvoslib.runtime import setup

rt = setup(seed=0)  # reads RVOSLIB_MODE = fast | full | auto (auto = full when CUDA is present)

import tqdm.auto
import tqdm.std

# Text progress bars (rvoslib's too): a finished bar stays readable after the notebook is saved and
# reopened, where a widget bar would show "model not found".
tqdm.auto.tqdm, tqdm.auto.trange = tqdm.std.tqdm, tqdm.std.trange

from pathlib import Path

ROOT = next(p for p in (Path.cwd(), *Path.cwd().parents) if (p / "data_samples").is_dir())
print(f"mode={rt.mode}  device={rt.device}  repository={ROOT}")

import copy
from contextlib import contextmanager

import matplotlib.pyplot as plt
import numpy as np
import torch
from einops import rearrange

from rvoslib import viz
from rvoslib.backbone import get_tokenizer
from rvoslib.runtime import notebook_config
from rvoslib.data import RVOSDataset, collate_clips, read_ref_davis17, read_ref_youtube_vos
from rvoslib.data.transforms import denormalize
from rvoslib.model import build_model
from rvoslib.vision_encoder import PromptedVisionEncoder

cfg = notebook_config(rt)  # fast: tiny preset + the shipped tiny pretrained CLIP; full: clip-b16 (OpenAI)
print("CLIP:", cfg.model.backbone.model_name, "| weights:",
      cfg.model.backbone.pretrained or "random (the shipped tiny CLIP was not found)")

# %% [markdown]
# ## 0. Model, clip and sentence
#
# We encode a batch of **two** sentences about the same clip: the clip's own expression, and a
# shorter one, so that the batch has padded word positions (used in section 2).
#
# A "word" here is one of CLIP's BPE tokens: the text encoder returns one feature per token
# between the start and end tokens, so a rare word can be split (ViT-B/16's tokenizer reads
# "feathered" as "fe" + "athered"). We decode each token to label the maps.

# %%
model = build_model(cfg.model).to(rt.device).eval()
T, S = cfg.model.num_frames, cfg.model.backbone.image_size
h, w = model.vision.grid_size
N = h * w
if rt.fast:
    records = read_ref_youtube_vos(ROOT / "data_samples/synthetic/valid")
    record = next(r for r in records if any(e.kind == "appearance" and len(e.text.split()) >= 3 for e in r.expressions))
    exp_index = next(i for i, e in enumerate(record.expressions) if e.kind == "appearance" and len(e.text.split()) >= 3)
else:
    record, exp_index = read_ref_davis17(ROOT / "data_samples/davis", videos=["blackswan"])[0], 0
dataset = RVOSDataset([record], clip_len=T, size=S, train=False)
windows = len(dataset) // len(record.expressions)  # items are ordered (expression, window)
item = dataset[exp_index * windows]  # the first T frames, with that expression
sentences = [item["sentence"], "the object"]
frames = item["frames"][None].expand(len(sentences), -1, -1, -1, -1).to(rt.device)  # (B=2, T, 3, S, S)
tokens = model.tokenize(sentences).to(rt.device)  # (B, L_ctx)

tokenizer = get_tokenizer(cfg.model.backbone)
n_words = [len(tokenizer.encode(s)) for s in sentences]
L = max(n_words)
words = [tokenizer.decode([int(i)]).strip() for i in tokens[0, 1:1 + n_words[0]]]  # word position l = token 1 + l
WORD = len(words) - 1  # the chosen word: the last one (the noun)
print(f"clip {item['meta']['video_id']}, frames {item['meta']['frame_indices']}")
print("sentences:", sentences, " words per sentence:", n_words, " L =", L)
print("words of sentence 0:", words, " chosen word:", repr(words[WORD]))

shown = (denormalize(item["frames"]).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)  # (T, S, S, 3)
fig = viz.show_frames(shown, item["masks"].numpy(), colors=[(0, 255, 255)], alpha=0.3, ncols=T,
                      titles=[f"t={t}" for t in range(T)], figsize=(2.8 * T, 3.1))
fig.suptitle(f"{sentences[0]!r} (cyan: the referred object)", fontsize=10)
fig.tight_layout()
fig

# %% [markdown]
# ## 1. Stage 1: word attention inside the frozen encoder
#
# In every ViT block, after CLIP's frozen self-attention, the frame's CLS and patch tokens attend to
# the words through a narrow adapter (queries D_v -> r, words D_t -> r with r = `vision.stage1_dim`,
# D_v / 4 by default, output r -> D_v), and the result is added through a learnable gate:
#
# `x = x + tanh(alpha_l) * CrossAttn(LN(x) -> words)`,  with `alpha_l = 0` at initialisation.
#
# `tanh(0) = 0`, so at step 0 every block computes exactly what CLIP computes: the pretrained
# features are not disturbed by a randomly initialised new module. (The gate's alpha still gets a
# gradient, so training opens it.)

# %%
gates = {int(l): torch.tanh(m.alpha).item() for l, m in model.vision.stage1.items()}
print("tanh(alpha) per block:", gates)

with torch.no_grad():
    prompts = model.prompts(T)
    text = model.text(tokens, prompts["language"])  # words (B, L, D_t), word_pad (B, L), sentence (B, D_t)
    block0 = model.vision.stage1["0"]
    visual = torch.randn(len(sentences), T * (1 + N), model.vision.vision_width, device=rt.device)  # any tokens
    words_v = model.vision.word_proj(text["words"])  # (B, L, r): words projected to the stage-1 inner width r = vision.stage1_dim
    update, _ = block0(visual, words_v, (~text["word_pad"])[:, None, None, :])
print("stage-1 update of block 0 on random tokens: max |update| =", update.abs().max().item())

# %% [markdown]
# Stronger: with no prompts and no history, our prompted encoder (stage 1 included, gates at 0) must
# reproduce open_clip's own forward **exactly**: the tapped patch tokens equal
# `visual.forward_intermediates`, and the final CLS token, projected, equals `encode_image`. With
# prompts in the sequence the features differ from CLIP's (the prompts are new tokens), but stage 1
# still changes nothing: an encoder built **without** stage 1 gives identical features.

# %%
clip = model.clip.model  # the frozen open_clip CLIP inside the model
flat = rearrange(frames, "b t c h w -> (b t) c h w")
with torch.no_grad():
    ours = model.vision(frames, text["words"], text["word_pad"], prompts=None, history=None)
    reference = clip.visual.forward_intermediates(flat, indices=list(model.vision.tap_layers), intermediates_only=True)
    clip_image = clip.encode_image(flat)  # (B*T, embed_dim)
tap_error = max((rearrange(a, "b t c h w -> (b t) c h w") - r).abs().max().item()
                for a, r in zip(ours["taps"], reference["image_intermediates"]))
cls_error = (rearrange(ours["cls_proj"], "b t c -> (b t) c") - clip_image).abs().max().item()
print(f"no prompts, gates at 0: max |ours - open_clip| taps {tap_error:.1e}, image embedding {cls_error:.1e}")

no_stage1_cfg = copy.deepcopy(cfg.model)
no_stage1_cfg.vision.stage1 = False
no_stage1 = PromptedVisionEncoder(model.clip, no_stage1_cfg).to(rt.device).eval()  # same frozen CLIP
history = model.initial_history(len(sentences))
with torch.no_grad():
    with_s1 = model.vision(frames, text["words"], text["word_pad"], prompts, history)
    without_s1 = no_stage1(frames, None, None, prompts, history)
print("with prompts: stage-1 encoder == encoder without stage 1:",
      all(torch.equal(a, b) for a, b in zip(with_s1["taps"], without_s1["taps"])))


# %% [markdown]
# To see what stage 1 *would* attend to, we open the gates (set every `alpha` to 0.5, i.e. a gate of
# 0.46, as a few training steps would) for the rest of the notebook. Note that the attention
# **weights** of a block do not depend on its own gate (the gate only scales the block's output),
# so block 0's map is the same at step 0; later blocks see tokens that earlier gates changed.

# %%
@contextmanager
def gates_set_to(model, alpha):
    saved = {l: m.alpha.detach().clone() for l, m in model.vision.stage1.items()}
    with torch.no_grad():
        for m in model.vision.stage1.values():
            m.alpha.fill_(alpha)
    try:
        yield
    finally:
        with torch.no_grad():
            for l, m in model.vision.stage1.items():
                m.alpha.copy_(saved[l])


with gates_set_to(model, 0.5), torch.no_grad():
    print("tanh(alpha) per block:", {int(l): round(torch.tanh(m.alpha).item(), 3) for l, m in model.vision.stage1.items()})
    out = model(frames, tokens, record_attention=True)
    opened = model.vision(frames, text["words"], text["word_pad"], prompts=None, history=None)
print("gates restored to", {int(l): torch.tanh(m.alpha).item() for l, m in model.vision.stage1.items()})
gated_error = (rearrange(opened["cls_proj"], "b t c -> (b t) c") - clip_image).abs().max().item()
print(f"with open gates the image embedding departs from CLIP's: max |diff| {gated_error:.3f}")

attn = out["attn"]
stage1 = attn["vision"]["stage1"]  # per block: (B, T, N, L), each patch's attention over the words
print("stage1:", len(stage1), "blocks of", tuple(stage1[0].shape))

# %% [markdown]
# **Stage 1, word by word.** For each block, the average share of attention the patches give to each
# word of the sentence (over all patches and frames). Then the chosen word's share at every patch,
# in each tapped block (rows) and frame (columns).

# %%
share = torch.stack([a[0, :, :, :n_words[0]].mean(dim=(0, 1)).cpu() for a in stage1])  # (blocks, words)
fig, ax = plt.subplots(figsize=(8, 3))
x = np.arange(len(words))
for l in range(len(stage1)):
    ax.bar(x + (l - (len(stage1) - 1) / 2) * 0.8 / len(stage1), share[l], 0.8 / len(stage1), label=f"block {l}")
ax.set(xticks=x, xticklabels=words, ylabel="mean attention", title="stage 1: patches -> words")
ax.legend(fontsize=7, ncol=4)
plt.show()

tapped = list(model.vision.tap_layers)
maps = torch.cat([stage1[l][0, :, :, WORD].reshape(T, h, w).cpu() for l in tapped])  # (taps*T, h, w)
fig = viz.attention_grid(maps, frames=np.concatenate([shown] * len(tapped)), ncols=T, shared_scale=True,
                         titles=[f"block {l}, t={t}" for l in tapped for t in range(T)])
fig.suptitle(f"stage 1: share of each patch's attention given to {words[WORD]!r} (one colour scale)", fontsize=10)
fig.tight_layout()
fig

# %% [markdown]
# ## 2. Stage 2: dual propagation after the encoder
#
# The encoder's output F_v `(B, T, d, h, w)` becomes video tokens V `(B, T·h·w, d)`; the words are
# projected to E `(B, L, d)`. Then (`rvoslib.fusion.DualFusion`)
#
# 1. `E' = E + CrossAttn(E -> V)`: each word gathers context from **the whole clip** (one softmax
#    over all T·h·w tokens);
# 2. `V' = V + CrossAttn(V -> E')`: each video token gathers the (updated) words, **padded word
#    positions masked out**;
# 3. `F_f = V' * sigmoid(W s) + V'`: the sentence feature s gates the channels.
#
# The two maps have different normalisations: `word_to_video` sums to 1 over the clip, so a word
# spreads one unit of attention across all frames; `video_to_word` sums to 1 over the words, per
# patch.

# %%
w2v = attn["fusion"]["word_to_video"]  # (B, L, T*h*w)
v2w = attn["fusion"]["video_to_word"]  # (B, T*h*w, L)
print("word_to_video", tuple(w2v.shape), " video_to_word", tuple(v2w.shape))
print("padding of the batch (True = padded word):", text["word_pad"].tolist())
print(f"attention that sentence 1's patches give to its padded words: {v2w[1, :, n_words[1]:].abs().max().item()}")
with torch.no_grad():
    gate = torch.sigmoid(model.fusion.gate(model.fusion.sentence_proj(text["sentence"])))  # (B, d)
print(f"sentence gate sigmoid(W s): mean {gate.mean().item():.3f}, range [{gate.min().item():.3f}, {gate.max().item():.3f}]")

word_maps = rearrange(w2v[0, WORD], "(t h w) -> t h w", t=T, h=h).cpu()  # (T, h, w)
per_frame = word_maps.sum(dim=(1, 2))
fig = viz.attention_grid(word_maps, frames=shown, ncols=T, shared_scale=True,
                         titles=[f"t={t}: {per_frame[t]:.0%} of the word's attention" for t in range(T)])
fig.suptitle(f"stage 2, word -> video: where {words[WORD]!r} looks in the clip (one colour scale)", fontsize=10)
fig.tight_layout()
fig

# %%
v2w_maps = rearrange(v2w[0, :, :n_words[0]], "(t h w) l -> l t h w", t=T, h=h)[:, 0].cpu()  # (words, h, w), frame 0
fig = viz.attention_grid(v2w_maps, frames=shown[0], ncols=len(words), shared_scale=True,
                         titles=[repr(wd) for wd in words], figsize=(2.6 * len(words), 2.9))
fig.suptitle("stage 2, video -> words: each patch of frame 0 distributes its attention over the words", fontsize=10)
fig.tight_layout()
fig

# %% [markdown]
# ## 3. Stage 3: the shallow feature reads the words again
#
# The spatio-temporal stage (notebook 05) has two branches whose outputs are added layer by layer:
# the cube-frame encoder over the fused features F_f, and a **decoder** in which the *shallow*
# feature S (projected from the first tapped block, rich in edges and colours, poor in semantics)
# queries the stage-2 words E'. Fine spatial detail thus meets the sentence directly, without going
# through CLIP's deeper, coarser layers.

# %%
decoder = attn["spatiotemporal"]["decoder"]  # per layer: (B, T*h*w, L)
print("decoder:", len(decoder), "layers of", tuple(decoder[0].shape))
maps = torch.cat([rearrange(a[0, :, WORD], "(t h w) -> t h w", t=T, h=h).cpu() for a in decoder])
fig = viz.attention_grid(maps, frames=np.concatenate([shown] * len(decoder)), ncols=T, shared_scale=True,
                         titles=[f"layer {l}, t={t}" for l in range(len(decoder)) for t in range(T)])
fig.suptitle(f"stage 3, shallow feature -> words: share of each patch's attention given to {words[WORD]!r}", fontsize=10)
fig.tight_layout()
fig

# %% [markdown]
# ## 4. One word, three stages
#
# The chosen word across the stages, frame by frame: stage 1 (last block), stage 2 in both
# directions, stage 3 (last decoder layer). Each row has its own colour scale.

# %%
rows = {
    f"stage 1, block {len(stage1) - 1}": stage1[-1][0, :, :, WORD].reshape(T, h, w),
    "stage 2, word -> video": rearrange(w2v[0, WORD], "(t h w) -> t h w", t=T, h=h),
    "stage 2, video -> word": rearrange(v2w[0, :, WORD], "(t h w) -> t h w", t=T, h=h),
    f"stage 3, layer {len(decoder) - 1}": rearrange(decoder[-1][0, :, WORD], "(t h w) -> t h w", t=T, h=h),
}
fig, axes = plt.subplots(len(rows), T, figsize=(2.5 * T, 2.6 * len(rows)), squeeze=False)
for r, (name, maps) in enumerate(rows.items()):
    maps = maps.cpu().numpy()
    lo, hi = float(maps.min()), float(maps.max())
    for t in range(T):
        axes[r, t].imshow(viz.heatmap_overlay(shown[t], maps[t], vmin=lo, vmax=hi), interpolation="nearest")
        axes[r, t].set_axis_off()
        axes[r, t].set_title(f"t={t}", fontsize=8)
    axes[r, 0].text(-0.08, 0.5, name, transform=axes[r, 0].transAxes, rotation=90, ha="right", va="center", fontsize=9)
fig.suptitle(f"{words[WORD]!r} in {sentences[0]!r}", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Checks

# %%
B = len(sentences)
# stage 1 is a no-op at initialisation
assert all(g == 0.0 for g in gates.values()) and len(gates) == len(model.vision.blocks)
assert update.abs().max().item() == 0.0
assert tap_error < 1e-4 and cls_error < 1e-4, "gates at 0, no prompts: the encoder is CLIP"
assert all(torch.equal(a, b) for a, b in zip(with_s1["taps"], without_s1["taps"]))
assert gated_error > 1e-3, "open gates change the features"
assert all(torch.tanh(m.alpha).item() == 0.0 for m in model.vision.stage1.values()), "gates restored"

# shapes of the recorded maps
assert all(a.shape == (B, T, N, L) for a in stage1)
assert w2v.shape == (B, L, T * N) and v2w.shape == (B, T * N, L)
assert all(a.shape == (B, T * N, L) for a in decoder)
ones = lambda x: torch.ones(x.shape[:-1], device=x.device)
for a in [*stage1, v2w, *decoder]:  # per patch, a distribution over the words
    torch.testing.assert_close(a.sum(-1), ones(a))
torch.testing.assert_close(w2v.sum(-1), ones(w2v))  # per word, a distribution over the clip

# padded words get no attention
assert text["word_pad"][1].tolist() == [False] * n_words[1] + [True] * (L - n_words[1])
assert v2w[1, :, n_words[1]:].abs().max().item() == 0.0
assert all(a[1, :, :, n_words[1]:].abs().max().item() == 0.0 for a in stage1)
assert all(a[1, :, n_words[1]:].abs().max().item() == 0.0 for a in decoder)
print("all checks passed")
