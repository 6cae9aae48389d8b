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
# # 03 · Temporal-aware prompt tuning
#
# VLP-RVOS keeps CLIP **frozen**. All it may add inside the image encoder are extra *tokens*
# (prompts) that ride along with the patches through CLIP's own blocks. This notebook opens the
# encoder and shows
#
# 1. the token sequence of one frame, `[CLS | patches | history | vision prompts | temporal prompts]`,
#    and where the prompts come from (a small prompt generator);
# 2. **temporal capture**, re-derived by hand for one block: inside each block's frozen
#    self-attention, the temporal prompts of *all* frames attend to the keys and values of *all*
#    frames (which the block computes anyway), with that block's own frozen weights; no new
#    attention weights (only a small per-frame *time code*, so the capture knows which frame each
#    key comes from), and the only place inside the encoder where frames talk to each other. We
#    check our derivation equals the library's, and that the time code makes it see frame order;
# 3. a perturbation experiment: change frame 0, watch frame 3's temporal prompts (and then its
#    patch features) move; with `use_temporal=False` they do not move at all;
# 4. a **prompt inspector** (widget, then the same as static figures): where each vision prompt
#    looks in a frame, and where a temporal prompt looks across all frames.
#
# **Needs:** CPU in fast mode (the tiny preset: a 4-block ViT of width 64, 64 x 64 input, 8 x 8
# patches, T = 4); the shipped tiny vision-language-pretrained CLIP
# (`data_samples/tiny_clip/rvos-tiny-scenes.pt`) when present, else random CLIP weights (the
# mechanics shown here do not depend on the weights). Full mode (`RVOSLIB_MODE=full`) uses
# open_clip ViT-B/16 with OpenAI weights at 352 x 352 (22 x 22 patches, T = 6) on a DAVIS clip; it
# needs the weights in the local open_clip / Hugging Face cache and is meant for a GPU. Full mode
# could not be run where this notebook was written (no GPU, no weights offline); fast mode is
# what `pytest --nbval` runs.
#
# **Time:** about 20 s in fast mode on a laptop CPU; about a minute in full mode on a GPU.
#
# The prompts here are **untrained** (notebook 07 trains them): we study the mechanism, not what
# a trained model has learned.

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

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from IPython.display import display

from rvoslib import viz
from rvoslib.runtime import notebook_config
from rvoslib.data import RVOSDataset, collate_clips, read_ref_davis17, read_ref_youtube_vos
from rvoslib.data.transforms import denormalize
from rvoslib.model import build_model

cfg = notebook_config(rt)  # fast: tiny preset + the shipped tiny pretrained CLIP; full: clip-b16 (OpenAI)
print("CLIP:", cfg.model.backbone.model_name, "| weights:",
      cfg.model.backbone.pretrained or "random (the shipped tiny CLIP was not found)")

# %% [markdown]
# ## 0. The model and one clip
#
# `build_model` creates the frozen open_clip CLIP and every trainable part around it. In fast mode
# we take a synthetic validation clip with a motion expression (its referent has a look-alike
# twin, see notebook 01); in full mode a real DAVIS clip.

# %%
model = build_model(cfg.model).to(rt.device).eval()
counts = model.parameter_counts()
print(f"trainable {counts['trainable']:,} parameters, frozen CLIP {counts['frozen']:,}")
print({k.split('/')[1]: v for k, v in counts.items() if k.startswith("trainable/")})

T, S = cfg.model.num_frames, cfg.model.backbone.image_size
if rt.fast:
    records = read_ref_youtube_vos(ROOT / "data_samples/synthetic/valid")
    records = [next(r for r in records if any(e.kind == "motion" for e in r.expressions))]
else:
    records = read_ref_davis17(ROOT / "data_samples/davis", videos=["blackswan"])
dataset = RVOSDataset(records, clip_len=T, size=S, train=False)
item = next(dataset[i] for i in range(len(dataset)) if dataset[i]["meta"]["kind"] in ("motion", None))
batch = collate_clips([item])
frames = batch["frames"].to(rt.device)  # (B, T, 3, S, S), CLIP-normalised
tokens = model.tokenize(batch["sentences"]).to(rt.device)  # (B, L_ctx)
B = frames.shape[0]
print(f"clip {item['meta']['video_id']} frames {item['meta']['frame_indices']}: {batch['sentences'][0]!r}")
print("frames", tuple(frames.shape), " tokens", tuple(tokens.shape))

shown = (denormalize(frames[0].cpu()).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)  # (T, S, S, 3)
fig = viz.show_frames(shown, item["masks"].numpy(), colors=[(0, 255, 255)], alpha=0.3, ncols=T,
                      titles=[f"t={t} (cyan: the referred object)" for t in range(T)], figsize=(2.8 * T, 3.0))
fig

# %% [markdown]
# ## 1. The token sequence of one frame
#
# CLIP's ViT cuts a frame into `h x w` patches and prepends a CLS token. VLP-RVOS appends three
# groups of extra tokens to **every frame's** sequence (after CLIP's `ln_pre`, without position
# embeddings):
#
# | tokens | count | where they come from | what they are for |
# |---|---|---|---|
# | CLS | 1 | CLIP | CLIP's image summary |
# | patches | N = h·w | CLIP | the features we segment |
# | history | N_h | pooled from the previous clip's prediction | memory across clips (first clip: learned tokens) |
# | vision prompts | N_v | prompt generator, shared by all frames | adapt CLIP's features to the task |
# | temporal prompts | N_tp | prompt generator + a per-frame embedding | carry information **between frames** |
#
# The prompt generator turns P learnable raw tokens into all three prompt kinds at once (a small
# Transformer, then one linear projection per kind); temporal prompts also get a learned frame
# embedding so frame t's prompts differ from frame t''s.

# %%
pc = cfg.model.prompts
vision_width = model.vision.vision_width
h, w = model.vision.grid_size
N = h * w
with torch.no_grad():
    prompts = model.prompts(T)
for kind, value in prompts.items():
    print(f"{kind:9s} prompts: {tuple(value.shape)}")
sizes = {"CLS": 1, "patches": N, "history": pc.num_history, "vision prompts": pc.num_vision,
         "temporal prompts": pc.num_temporal}
S_f = sum(sizes.values())
print(f"\nper-frame sequence: {sizes} -> S_f = {S_f} tokens of width D_v = {vision_width}")
print("temporal prompts differ between frames:",
      not torch.allclose(prompts["temporal"][0], prompts["temporal"][1]))

# %%
COLOURS = {"CLS": "#444444", "patches": "#9ecae1", "history": "#fdae6b", "vision prompts": "#74c476",
           "temporal prompts": "#e6550d"}


def draw_sequence(sizes, frames, max_patches=32):
    # one row per frame, one cell per token (the patch block is drawn compressed when N is large)
    fig, ax = plt.subplots(figsize=(12, 0.55 * frames + 1.3))
    for t in range(frames):
        x = 0
        for kind, n in sizes.items():
            width = min(n, max_patches) if kind == "patches" else n
            for i in range(width):
                ax.add_patch(plt.Rectangle((x + i, -t), 1, 0.8, facecolor=COLOURS[kind], edgecolor="white", lw=0.6))
            if t == 0:
                label = kind.replace(" ", "\n") + f"\n({n})"
                if kind == "patches" and n > max_patches:
                    label = f"patches ({n} = {h} x {w},\ndrawn as {max_patches})"
                ax.text(x + width / 2, 1.05, label, ha="center", va="bottom", fontsize=8)
            x += width + 2
        ax.text(-0.8, -t + 0.4, f"frame {t}", ha="right", va="center", fontsize=8)
    ax.set_xlim(-6, x + 6)
    ax.set_ylim(-frames + 0.6, 3.4)
    ax.set_axis_off()
    ax.set_title("per-frame token sequences; temporal capture lets the orange tokens of every frame "
                 "read every token of every frame", fontsize=9)
    plt.show()


draw_sequence(sizes, T)


# %% [markdown]
# ## 2. Temporal capture, by hand
#
# Each frozen ViT block (open_clip's `ResidualAttentionBlock`) normally runs on one frame:
# `x = x + attn(ln_1(x))`, `x = x + mlp(ln_2(x))`. In the library (`rvoslib.vision_encoder`) each
# block l runs on all frames of the clip at once:
#
# 1. `ln_1` and the frozen q/k/v projection of every token of every frame, once;
# 2. the self-attention: every token **except the temporal prompts** attends within its own frame,
#    exactly as in CLIP; the **temporal prompts of all T frames**, `(B, T·N_tp, D_v)`, attend to the
#    keys and values of **all tokens of all frames**, `(B, T·S_f, D_v)`, their own frame's and the
#    others'. So that the prompts know **which frame** a key comes from, the capture adds a
#    per-frame *time code* (`vision.capture_time_code`): `W_k e_k(s)` to the keys of frame s and
#    `W_q e_q(t)` to the queries of frame t's prompts, through the block's own frozen projections
#    (`e_k`, `e_q`: learned tables `(max_frames, D_v)`, zero at init). Without it the capture is
#    blind to order (attention treats its keys as a set) and could not tell "moving left" from
#    "moving right"; with codes on both sides the score holds a learned term for every (query
#    frame, key frame) pair, so a prompt can learn to look at "the next frame". Both go through
#    the block's own output projection `W_o` and the residual add (with the layer scale `ls_1`);
#    then the gated stage-1 word attention (notebook 04);
# 3. the frozen MLP, for every token, the temporal prompts included.
#
# So temporal capture *is* the frozen self-attention, with a wider view for a few queries: it reuses
# the keys and values the block computes anyway and costs only the prompts' own T·N_tp query rows.
# This is `vision.capture_placement="attention"`, the default. The paper's figure draws the capture
# as a separate step after the MLP (`"after-mlp"`, kept for ablation), which recomputes `ln_1` and
# the key/value projections of every token of every frame in every block; `benchmarks/run.py`
# measured that as most of the encoder's adaptation overhead.
#
# To look inside, we wrap the library's (private) per-block step `_block` for the duration of one
# forward and keep what goes in and out of it.

# %%
@contextmanager
def watch_blocks(encoder):
    # record (input, output) token tensors (B*T, S_f, D_v) of every block
    calls = []
    original = encoder._block

    def spy(layer, x, words, keep, batch, num_temporal, rec):
        x_in = x.detach().clone()
        out = original(layer, x, words, keep, batch, num_temporal, rec)
        calls.append({"layer": layer, "x_in": x_in, "x_out": out.detach().clone()})
        return out

    encoder._block = spy  # instance attribute: shadows the method for this forward only
    try:
        yield calls
    finally:
        del encoder._block


with torch.no_grad(), watch_blocks(model.vision) as calls:
    out = model(frames, tokens)
print(len(calls), "blocks; tokens entering each block:", tuple(calls[0]["x_in"].shape), "= (B*T, S_f, D_v)")


# %% [markdown]
# Now the same block written out with nothing but its frozen weights and the time code. Note what is
# **not** here: no new attention weight, and no second pass over the tokens: the temporal prompts'
# keys and values are the very `k` and `v` of the frame attention (plus the time code on the keys),
# regrouped so that each prompt sees all frames. (Stage 1 is left out: its gates start at 0, so in
# this untrained model it adds exactly nothing; notebook 04.)

# %%
def block_with_temporal_capture(block, x, batch, num_temporal, codes):
    # x: (B*T, S_f, D_v), frames of a clip stacked as (b t); temporal prompts are the last tokens
    # codes: the time codes (e_k (T, D_v), e_q (T, D_v)), in the space of ln_1's output
    attn = block.attn  # the block's frozen nn.MultiheadAttention
    heads = attn.num_heads
    c = x.shape[-1] // heads
    q, k, v = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)  # once, (B*T, S_f, D_v)

    # every token attends within its own frame: CLIP's self-attention
    per_frame = lambda z: rearrange(z, "n s (h c) -> n h s c", h=heads)  # (B*T, heads, S_f, c)
    weights = (per_frame(q) @ per_frame(k).transpose(-2, -1) / c ** 0.5).softmax(dim=-1)
    out = rearrange(weights @ per_frame(v), "n h s c -> n s (h c)")  # (B*T, S_f, D_v)

    # the temporal prompts of all frames attend to the same keys/values, regrouped over all frames; the
    # keys of frame s get W_k e_k(s), the queries of frame t's prompts W_q e_q(t) (no bias: already in k, q)
    w_q, w_k, _ = attn.in_proj_weight.chunk(3)  # (D_v, D_v) each
    e_k, e_q = codes
    k_coded = k + repeat(e_k @ w_k.T, "t c -> (b t) 1 c", b=batch)  # (B*T, S_f, D_v)
    q_coded = q + repeat(e_q @ w_q.T, "t c -> (b t) 1 c", b=batch)  # (B*T, S_f, D_v)
    all_frames = lambda z: rearrange(z, "(b t) s (h c) -> b h (t s) c", b=batch, h=heads)  # (B, heads, T*S_f, c)
    q_tp = rearrange(q_coded[:, -num_temporal:], "(b t) p (h c) -> b h (t p) c", b=batch, h=heads)  # (B, heads, T*N_tp, c)
    w_tp = (q_tp @ all_frames(k_coded).transpose(-2, -1) / c ** 0.5).softmax(dim=-1)  # (B, heads, T*N_tp, T*S_f)
    out_tp = rearrange(w_tp @ all_frames(v), "b h (t p) c -> (b t) p (h c)", p=num_temporal)  # back into frames
    out = torch.cat([out[:, :-num_temporal], out_tp], dim=1)  # the prompts' rows: attention over all frames

    x = x + block.ls_1(attn.out_proj(out))  # residual, with the block's layer scale
    x = x + block.ls_2(block.mlp(block.ln_2(x)))  # the frozen MLP, every token
    return x, w_tp.mean(dim=1)


layer = len(calls) - 1  # the last block; any block works
block = model.vision.blocks[layer]
time_code = model.vision.time_code  # the presets use vision.capture_time_code="learned"
with torch.no_grad():
    codes = time_code(T)  # (e_k, e_q), each (T, D_v): zeros in this untrained model
    ours, our_weights = block_with_temporal_capture(block, calls[layer]["x_in"], B, pc.num_temporal, codes)
    clip_block = block(calls[layer]["x_in"])  # open_clip's own forward, each frame on its own
torch.testing.assert_close(ours, calls[layer]["x_out"], rtol=1e-4, atol=1e-4)
print(f"block {layer}: our block equals the library's "
      f"(max |diff| {(ours - calls[layer]['x_out']).abs().max().item():.2e})")
print("attention of the temporal prompts:", tuple(our_weights.shape), "= (B, T*N_tp, T*S_f), rows sum to 1")
token_diff = (calls[layer]["x_out"] - clip_block).abs().amax(dim=(0, 2))  # (S_f,): per token position
print(f"library vs CLIP's own block on each frame: max |diff| {token_diff[:-pc.num_temporal].max().item():.1e} "
      f"over CLS, patches, history and vision prompts; {token_diff[-pc.num_temporal:].min().item():.1e} or more "
      "at the temporal prompts (they read every frame)")


# %% [markdown]
# The time code is still zero here (untrained), so the check above cannot tell it apart from no code.
# Training moves it off zero; we stand in for that with random codes, check the derivation again,
# and ask the question the code is for: **does the capture see the order of the frames?** We play
# frames 1..T-1 backwards and measure how much frame 0's patch features move (frame 0 itself is
# unchanged, and so is the *set* of frames it can read).

# %%
def vision_taps(m, video):
    # the encoder's public forward: raw patch tokens of the tapped blocks, (B, T, D_v, h, w) each
    p = m.prompts(T)
    text = m.text(tokens, p["language"])
    return m.vision(video, text["words"], text["word_pad"], p, m.initial_history(B))["taps"]


def frame0_change_when_reversed():
    # max |change| of frame 0's patch tokens (last tapped block) when frames 1..T-1 are played backwards
    backwards = torch.cat([frames[:, :1], frames[:, 1:].flip(1)], dim=1)  # frames 0, T-1, ..., 1
    with torch.no_grad():
        forth, back = (vision_taps(model, video)[-1][:, 0] for video in (frames, backwards))
    return (forth - back).abs().max().item()


order_change = {"time code at init (zeros)": frame0_change_when_reversed()}
code_generator = torch.Generator(device="cpu").manual_seed(1)
with torch.no_grad():
    for p in time_code.parameters():  # stand-in for trained codes
        p.copy_(torch.randn(p.shape, generator=code_generator).to(p.device))
    with watch_blocks(model.vision) as coded_calls:
        model(frames, tokens)
    ours_coded, _ = block_with_temporal_capture(block, coded_calls[layer]["x_in"], B, pc.num_temporal, time_code(T))
order_change["random time code"] = frame0_change_when_reversed()
with torch.no_grad():
    for p in time_code.parameters():
        p.zero_()  # back to the untrained model for the rest of the notebook
print(f"block {layer} with random time codes: our block equals the library's "
      f"(max |diff| {(ours_coded - coded_calls[layer]['x_out']).abs().max().item():.2e})")
print("frame 0's patch features when frames 1..T-1 are reversed, max |change|:")
for name, value in order_change.items():
    print(f"  {name:26s} {value:.2e}")

# %% [markdown]
# With the codes at zero, reversing the other frames barely moves frame 0 (the little that moves
# comes from each frame's own temporal prompts, which carry a frame embedding); with non-zero codes
# it clearly does: the capture now reads a sequence, not a set. (`vision.capture_time_code="none"`
# turns the code off for ablation; `"sine"` uses fixed sine codes times a learned scale.)

# %% [markdown]
# "No new attention weights" is a checkable claim: a model built with `use_temporal=False` has the
# same trainable parameters in its vision encoder except the time code (`2 x max_frames x D_v`, the
# only parameters the capture adds); the other difference is in the prompt generator (the raw
# temporal tokens, the frame embedding and the temporal projection). We build that model around
# the *same* CLIP object (`clip=`), so nothing is loaded twice.

# %%
no_tp_cfg = copy.deepcopy(cfg.model)
no_tp_cfg.prompts.use_temporal = False
no_tp = build_model(no_tp_cfg, clip=model.clip.model).to(rt.device).eval()

def trainable(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)

gen = model.prompts
temporal_params = gen.frame_embed.numel() + trainable(gen.proj["temporal"]) + pc.num_temporal * pc.generator_dim
print(f"vision encoder, trainable: with temporal prompts {trainable(model.vision):,}, without {trainable(no_tp.vision):,} "
      f"(difference: the time code, {trainable(time_code):,})")
print(f"prompt generator: {trainable(model.prompts):,} vs {trainable(no_tp.prompts):,} "
      f"(difference {trainable(model.prompts) - trainable(no_tp.prompts):,} = frame embedding + temporal projection "
      f"+ raw temporal tokens = {temporal_params:,})")

# %% [markdown]
# ## 3. Does information really cross frames? Perturb frame 0
#
# We add noise to **frame 0 only** and compare, block by block, the temporal prompts of every
# frame before and after. Frame 0's prompts change (their frame changed), and so do frames 1..T-1's,
# although their pixels did not: that is temporal capture at work. Then we compare frame T-1's
# **patch** features (the taps that feed the rest of the model): with temporal prompts they move,
# from the second block on (the patches of block l+1 read the prompts that block l's attention
# updated); without temporal prompts (`use_temporal=False`) they do not move at all, because every
# other step of the encoder works frame by frame.

# %%
generator = torch.Generator(device="cpu").manual_seed(0)
perturbed = frames.clone()
perturbed[:, 0] += torch.randn(perturbed[:, 0].shape, generator=generator).to(rt.device)

def temporal_prompts(calls):  # per block: (B, T, N_tp, D_v)
    return [rearrange(c["x_out"][:, -pc.num_temporal:], "(b t) p c -> b t p c", b=B) for c in calls]

with torch.no_grad():
    with watch_blocks(model.vision) as before:
        model(frames, tokens)
    with watch_blocks(model.vision) as after:
        model(perturbed, tokens)
change = torch.stack([((a - b).norm(dim=-1) / b.norm(dim=-1)).mean(dim=(0, 2))  # (T,) relative change per frame
                      for a, b in zip(temporal_prompts(after), temporal_prompts(before))])  # (layers, T)

last = T - 1
with torch.no_grad():
    tap_change = {name: [(a[:, last] - b[:, last]).abs().max().item()
                         for a, b in zip(vision_taps(m, perturbed), vision_taps(m, frames))]
                  for name, m in (("use_temporal=True", model), ("use_temporal=False", no_tp))}

print("relative change of the temporal prompts (rows: block, columns: frame)")
print("block " + " ".join(f"  t={t}  " for t in range(T)))
for l, row in enumerate(change.tolist()):
    print(f"{l:5d} " + " ".join(f"{v:8.4f}" for v in row))
print(f"\nmax |change| of frame {last}'s patch tokens at the tapped blocks {list(model.vision.tap_layers)}:")
for name, values in tap_change.items():
    print(f"  {name:19s}", " ".join(f"{v:.2e}" for v in values))

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
x = np.arange(change.shape[0])
for t in range(T):
    axes[0].bar(x + (t - (T - 1) / 2) * 0.8 / T, change[:, t].cpu(), width=0.8 / T, label=f"frame {t}")
axes[0].set(xlabel="block", ylabel="relative change", xticks=x,
            title="temporal prompts after noise on frame 0 only")
axes[0].legend(fontsize=8)
taps = np.arange(len(model.vision.tap_layers))
for i, (name, values) in enumerate(tap_change.items()):
    axes[1].bar(taps + (i - 0.5) * 0.4, values, width=0.4, label=name)
axes[1].set(xlabel="tapped block", ylabel="max |change|", xticks=taps, xticklabels=model.vision.tap_layers,
            title=f"frame {last}'s patch features (frame {last} itself unchanged)")
axes[1].legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 4. Prompt inspector
#
# `record_attention=True` makes the encoder compute every attention of interest with an explicit
# softmax (same outputs, tested in the library) and return head-averaged maps, per block, in
# `out["attn"]["vision"]`:
#
# * `prompt_to_patch[l]`: `(B, T, N_v, N)`, how much each **vision prompt** attends to each patch of
#   its own frame in block l's self-attention;
# * `temporal[l]`: `(B, T·N_tp, T, S_f)`, how much each **temporal prompt** attends to each token of
#   every frame in block l's self-attention (its temporal capture);
# * `layout`: the slices of the per-frame sequence (CLS, patches, history, vision, temporal).
#
# Pick a prompt kind, block, prompt index and frame. For a vision prompt the map is over its frame's
# patches; for a temporal prompt of frame t you see its attention over the patches of **all**
# frames, with the share of its attention that each frame receives in the titles. (The widget needs
# a live kernel; the static figures below show the same maps.)

# %%
with torch.no_grad():
    rec = model(frames, tokens, record_attention=True)["attn"]["vision"]
layout = rec["layout"]
print({k: (v.start, v.stop) for k, v in layout.items()})
print("prompt_to_patch per block:", tuple(rec["prompt_to_patch"][0].shape),
      " temporal per block:", tuple(rec["temporal"][0].shape))
depth = len(rec["temporal"])


def vision_prompt_map(layer, prompt, t):  # (h, w)
    return rec["prompt_to_patch"][layer][0, t, prompt].reshape(h, w).cpu()


def temporal_prompt_maps(layer, prompt, t):  # (T, h, w) over patches, and (T,) share of attention per frame
    row = rec["temporal"][layer][0, t * pc.num_temporal + prompt]  # (T, S_f)
    return row[:, layout["patches"]].reshape(T, h, w).cpu(), row.sum(dim=-1).cpu()


def inspect(kind, layer, prompt, frame):
    if kind == "vision prompt":
        prompt = prompt % pc.num_vision
        fig = viz.attention_grid(vision_prompt_map(layer, prompt, frame), frames=shown[frame], ncols=1, figsize=(3.2, 3.4),
                                 titles=[f"vision prompt {prompt}, block {layer}, frame {frame}"])
    else:
        prompt = prompt % pc.num_temporal
        maps, share = temporal_prompt_maps(layer, prompt, frame)
        fig = viz.attention_grid(maps, frames=shown, ncols=T, shared_scale=True, figsize=(2.6 * T, 3.0),
                                 titles=[f"frame {s}: {share[s]:.0%} of attention" for s in range(T)])
        fig.suptitle(f"temporal prompt {prompt} of frame {frame}, block {layer}", fontsize=10)
        fig.tight_layout()
    display(fig)


controls = dict(
    kind=widgets.ToggleButtons(options=["vision prompt", "temporal prompt"], value="temporal prompt"),
    layer=widgets.IntSlider(value=depth - 1, min=0, max=depth - 1, description="block"),
    prompt=widgets.IntSlider(value=0, min=0, max=max(pc.num_vision, pc.num_temporal) - 1, description="prompt"),
    frame=widgets.IntSlider(value=0, min=0, max=T - 1, description="frame"),
)
display(widgets.VBox([widgets.HBox(list(controls.values())[:2]), widgets.HBox(list(controls.values())[2:]),
                      widgets.interactive_output(inspect, controls)]))

# %% [markdown]
# **Static view 1.** Every vision prompt of frame 0 in the last block: each prompt is one extra
# token that reads the patches through CLIP's frozen attention (untrained here, so they look at
# similar places; training makes them specialise).

# %%
maps = torch.stack([vision_prompt_map(depth - 1, p, 0) for p in range(pc.num_vision)])
fig = viz.attention_grid(maps, frames=shown[0], ncols=min(pc.num_vision, 5),
                         titles=[f"vision prompt {p}" for p in range(pc.num_vision)])
fig.suptitle(f"vision prompts over the patches of frame 0, block {depth - 1}", fontsize=10)
fig.tight_layout()
fig

# %% [markdown]
# **Static view 2.** Temporal prompt 0 of frame 0, over the patches of all frames, in the first and
# the last block (each map on its own colour scale). The titles give the share of the prompt's
# attention that lands in each frame.

# %%
rows = [temporal_prompt_maps(l, 0, 0) for l in (0, depth - 1)]
fig = viz.attention_grid(torch.cat([m for m, _ in rows]), frames=np.concatenate([shown, shown]), ncols=T,
                         titles=[f"block {l}, frame {s}: {share[s]:.0%}" for l, (_, share) in zip((0, depth - 1), rows)
                                 for s in range(T)])
fig.suptitle("temporal prompt 0 of frame 0: attention over every frame's patches", fontsize=10)
fig.tight_layout()
fig

# %% [markdown]
# **Static view 3.** Where does a temporal prompt's attention go, summed over all temporal prompts
# of all frames? Split by the frame it lands in (the prompt's own frame or the T-1 others) and by
# token kind. Everything in the "other frames" bar is information that crosses frames. (Untrained
# prompts on near-identical frames spread their attention almost evenly over the frames, so about
# (T-1)/T of it comes from other frames.)

# %%
kinds = ["cls", "patches", "history", "vision", "temporal"]
own_frame = torch.eye(T, dtype=torch.bool)  # (T query frame, T key frame)
shares = {"own frame": [], "other frames": []}
for a in rec["temporal"]:  # (B, T*N_tp, T, S_f)
    a = rearrange(a[0], "(tq p) tk s -> tq p tk s", p=pc.num_temporal).mean(1).cpu()  # (T, T, S_f), mean over prompts
    for name, pick in (("own frame", own_frame), ("other frames", ~own_frame)):
        landed = (a * pick[:, :, None]).sum(1)  # (T query frame, S_f): summed over the picked key frames
        shares[name].append([landed[:, layout[k]].sum(-1).mean().item() for k in kinds])  # mean over query frames
shares = {k: np.array(v) for k, v in shares.items()}  # (blocks, kinds)

fig, ax = plt.subplots(figsize=(9, 3.4))
kind_colours = dict(zip(kinds, COLOURS.values()))
for i, (name, values) in enumerate(shares.items()):
    bottom = np.zeros(depth)
    for j, kind in enumerate(kinds):
        ax.bar(np.arange(depth) + (i - 0.5) * 0.38, values[:, j], 0.36, bottom=bottom, color=kind_colours[kind],
               edgecolor="black", linewidth=0.4, label=kind if i == 0 else None)
        bottom += values[:, j]
    for l in range(depth):
        ax.text(l + (i - 0.5) * 0.38, bottom[l] + 0.01, name, ha="center", fontsize=7)
ax.set(xticks=range(depth), xlabel="block", ylabel="share of attention", ylim=(0, 1),
       title="temporal capture: where the temporal prompts' attention goes")
ax.legend(fontsize=8, ncol=5, loc="upper left")
plt.show()

# %% [markdown]
# ## Checks

# %%
# the sequence layout
assert calls[0]["x_in"].shape == calls[0]["x_out"].shape == (B * T, S_f, vision_width)
assert [layout[k].stop - layout[k].start for k in ("cls", "patches", "history", "vision", "temporal")] == list(sizes.values())
assert prompts["temporal"].shape == (T, pc.num_temporal, vision_width)
assert prompts["vision"].shape == (pc.num_vision, vision_width)

# temporal capture: our derivation equals the library (time codes zero and random), with no new parameters
# in the encoder but the time code; every token but the temporal prompts is exactly what CLIP's own block
# computes on its frame
torch.testing.assert_close(ours, calls[layer]["x_out"], rtol=1e-4, atol=1e-4)
torch.testing.assert_close(ours_coded, coded_calls[layer]["x_out"], rtol=1e-4, atol=1e-4)
assert token_diff[:-pc.num_temporal].max() < 1e-4
assert token_diff[-pc.num_temporal:].min() > 10 * token_diff[:-pc.num_temporal].max()
assert trainable(model.vision) - trainable(no_tp.vision) == trainable(time_code) == 2 * pc.max_frames * vision_width
assert all(p.abs().max() == 0 for p in time_code.parameters())  # restored to the untrained codes

# the time code makes the capture see frame order
assert order_change["random time code"] > 1e-3
assert order_change["random time code"] > 20 * order_change["time code at init (zeros)"]
assert trainable(model.prompts) - trainable(no_tp.prompts) == temporal_params

# perturbing frame 0 moves the other frames' temporal prompts, and later frame T-1's patches; without
# temporal prompts frame T-1 is untouched
assert (change[:, 1:] > 1e-4).all()
assert tap_change["use_temporal=True"][-1] > 1e-6
assert max(tap_change["use_temporal=False"]) < 1e-6

# recorded attention: shapes and normalisation
assert rec["prompt_to_patch"][0].shape == (B, T, pc.num_vision, N)
assert rec["temporal"][0].shape == (B, T * pc.num_temporal, T, S_f)
for a in rec["temporal"]:
    torch.testing.assert_close(a.sum(dim=(-2, -1)), torch.ones(a.shape[:2], device=a.device))
assert all((a.sum(-1) <= 1 + 1e-5).all() for a in rec["prompt_to_patch"])
torch.testing.assert_close(rec["temporal"][layer], rearrange(our_weights, "b q (t s) -> b q t s", t=T),
                           rtol=1e-4, atol=1e-5)
other = shares["other frames"].sum(-1)  # (blocks,)
assert (other > 0.5).all(), "most of the temporal prompts' attention comes from other frames"
print("all checks passed")
