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
# # 06 · Mask head and losses
#
# The last step of the model turns feature grids into masks, and the losses tell it how wrong
# those masks are. This notebook
#
# 1. follows one clip through the **mask head** (`rvoslib.head.MaskHead`): a 1x1 projection, conv
#    blocks with x2 upsampling to stride 4, one logit per pixel, bilinear to the input size; with
#    the shape of every stage;
# 2. re-derives the **pixel-text similarity** map (cosine between each pixel's feature and the
#    sentence) and compares it with its training target;
# 3. computes every named **loss term** of `rvoslib.losses.compute_losses` on the example, and
#    rebuilds the total from the terms and the config weights;
# 4. trains only the head for a few dozen steps on this one clip, to watch the losses pull the
#    masks into shape;
# 5. compares **Dice** and **BCE** on an empty target and on a small object, the two cases where
#    they disagree the most.
#
# **Needs:** CPU in fast mode (tiny preset: 8 x 8 feature grid, 64 x 64 masks, T = 4, on a
# synthetic shapes clip; the shipped tiny pretrained CLIP when present, otherwise random CLIP
# weights). Full mode (`RVOSLIB_MODE=full`) uses ViT-B/16 with OpenAI weights (22 x 22 grid, 352 x
# 352 masks, T = 6) on the DAVIS blackswan clip; it needs the weights cached locally and a GPU, and
# could not be run where this notebook was written.
#
# **Time:** about 50 s in fast mode on 2 CPU cores (measured with `pytest --nbval` while other
# programs shared the cores); under a minute in full mode on a GPU.
#
# ## The equations
#
# This notebook reconstructs the last part of VLP-RVOS: the **mask prediction** from the
# spatio-temporal features and the **training objective** (the paper's mask losses: binary
# cross-entropy and Dice on the predicted masks, plus the pixel-text alignment term; the weights
# and the details below are rvoslib's reading, each a config field).
#
# **Mask head.** Input: the final features $F \in \mathbb{R}^{B \times T \times d \times h \times w}$ at the
# patch stride $p$. Frame by frame, with $c$ hidden channels and $n = \lceil \log_2(p / 4) \rceil$ upsamplings:
#
# $$
# (BT, d, h, w) \xrightarrow{\text{1x1}} (BT, c, h, w) \xrightarrow{\text{conv block}} (BT, c, h, w)
# \xrightarrow{n \times [\uparrow 2,\ \text{conv block}]} (BT, c, 2^n h, 2^n w)
# \xrightarrow{\text{1x1}} (BT, 1, 2^n h, 2^n w) \xrightarrow{\text{bilinear}} Z \in \mathbb{R}^{B \times T \times S \times S}
# $$
#
# and the predicted mask is $\sigma(Z) > 0.5$. The same head decodes every spatio-temporal layer's output
# $F^{(l)}$, giving the auxiliary logits $Z^{(l)}$, $l < N_{st}$.
#
# **Pixel-text similarity.** With the sentence feature $e \in \mathbb{R}^{B \times D_t}$ (the end-of-text token)
# and two linear maps $W_p \in \mathbb{R}^{d \times m}$, $W_s \in \mathbb{R}^{D_t \times m}$:
#
# $$
# s_{bthw} = \frac{(F_{bt\,:\,hw} W_p) \cdot (e_b W_s)}{\lVert F_{bt\,:\,hw} W_p \rVert\, \lVert e_b W_s \rVert} \in [-1, 1],
# \qquad s \in \mathbb{R}^{B \times T \times h \times w}, \qquad \text{logits } s / \tau,\ \tau = 0.1
# $$
#
# trained against $Y^{\text{sim}} = [\operatorname{avgpool}_{S \to h}(Y) > 0.5] \in \{0, 1\}^{B \times T \times h \times w}$.
#
# **Losses.** With targets $Y \in \{0, 1\}^{B \times T \times S \times S}$, $P = \sigma(Z)$ and the valid-frame
# indicator $v \in \{0, 1\}^{B \times T}$ (frames where the object is absent are valid, with an empty target):
#
# $$
# \mathcal{L}_{\text{bce}}(Z, Y) = \frac{1}{\sum_{bt} v_{bt}} \sum_{b,t} v_{bt}\, \frac{1}{S^2} \sum_{i,j}
# -\big[Y_{btij} \log P_{btij} + (1 - Y_{btij}) \log(1 - P_{btij})\big]
# $$
#
# $$
# \mathcal{L}_{\text{dice}}(Z, Y) = \frac{1}{B} \sum_b \left(1 - \frac{2 \sum_{t,i,j} v_{bt} P_{btij} Y_{btij} + 1}
# {\sum_{t,i,j} v_{bt} (P_{btij} + Y_{btij}) + 1}\right)
# $$
#
# (one Dice per clip, the presets' `dice_per="clip"`; with `"frame"` the sums run over $i, j$ only and
# the per-frame values are averaged over the valid frames, like BCE)
#
# $$
# \mathcal{L} = \sum_{l=1}^{N_{st}} a_l \big[\lambda_b \mathcal{L}_{\text{bce}}(Z^{(l)}, Y) + \lambda_d \mathcal{L}_{\text{dice}}(Z^{(l)}, Y)\big]
# + \lambda_b^{s} \mathcal{L}_{\text{bce}}(s / \tau, Y^{\text{sim}}) + \lambda_d^{s} \mathcal{L}_{\text{dice}}(s / \tau, Y^{\text{sim}})
# $$
#
# with $a_{N_{st}} = 1$ for the prediction, $a_l = $ `aux_weight` for the auxiliary layers, and
# $\lambda_b = \lambda_b^s = 2$, $\lambda_d = \lambda_d^s = 5$. Sections 2 and 3 re-derive each piece and
# check it against the library.

# %%
from rvoslib.runtime import setup

rt = setup(seed=0)  # reads RVOSLIB_MODE = fast | full | auto (auto = full when CUDA is present);
# progress bars become text, which stay readable after the notebook is saved and reopened

from pathlib import Path

ROOT = rt.root  # the repository folder (the one holding data_samples/)
print(f"mode={rt.mode}  device={rt.device}  repository={ROOT}")

import copy
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from tqdm.auto import tqdm

from rvoslib import viz
from rvoslib.runtime import notebook_config
from rvoslib.data import RVOSDataset, collate_clips, read_ref_davis17, read_ref_youtube_vos
from rvoslib.data.transforms import denormalize
from rvoslib.head import num_upsamplings
from rvoslib.losses import compute_losses, dice_loss, sigmoid_bce, similarity_target
from rvoslib.model import build_model

cfg = notebook_config(rt)  # fast: tiny preset + the shipped tiny pretrained CLIP; full: clip-b16 (OpenAI)
print("CLIP:", cfg.model.backbone.model_name, "| weights:",
      cfg.model.backbone.pretrained or "random (the shipped tiny CLIP was not found)")

# %%
model = build_model(cfg.model).to(rt.device).eval()
T, S = cfg.model.num_frames, cfg.model.backbone.image_size
h, w = model.vision.grid_size
patch = model.vision.patch_size
if rt.fast:
    records = read_ref_youtube_vos(ROOT / "data_samples/synthetic/valid")
    record = next(r for r in records if any(e.kind == "appearance" for e in r.expressions))
    exp_index = next(i for i, e in enumerate(record.expressions) if e.kind == "appearance")
else:
    record, exp_index = read_ref_davis17(ROOT / "data_samples/davis", videos=["blackswan"])[0], 0
dataset = RVOSDataset([record], clip_len=T, size=S, train=False)
batch = collate_clips([dataset[exp_index * (len(dataset) // len(record.expressions))]])
frames, masks, valid = (batch[k].to(rt.device) for k in ("frames", "masks", "valid"))  # (B,T,3,S,S), (B,T,S,S), (B,T)
tokens = model.tokenize(batch["sentences"]).to(rt.device)
with torch.no_grad():
    out = model(frames, tokens, aux=True)  # eval mode skips the auxiliary heads unless asked
print(f"{batch['meta'][0]['video_id']}: {batch['sentences'][0]!r}")
for key in ("pred_masks", "similarity", "features"):
    print(f"  out[{key!r}]: {tuple(out[key].shape)}")
print(f"  out['aux_masks']: {len(out['aux_masks'])} x {tuple(out['aux_masks'][0].shape)}")
shown = (denormalize(frames[0].cpu()).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)  # (T, S, S, 3)

# %% [markdown]
# ## 1. From a feature grid to a mask
#
# The spatio-temporal stage outputs one feature grid per frame, `(B, T, d, h, w)` at the **patch
# stride** (8 pixels per feature for the tiny ViT, 16 for ViT-B/16). The head works frame by frame
# (`(b t)` as the batch):
#
# 1. 1x1 conv, d -> hidden channels;
# 2. a 3x3 conv + GroupNorm + ReLU block at the patch stride;
# 3. `n` times: x2 bilinear upsampling, then a 3x3 conv block, until the stride is <= 4 pixels:
#    `n = ceil(log2(patch / 4))` (1 for patch 8, 2 for patch 16, 2 for patch 14, which lands on
#    stride 3.5);
# 4. 1x1 conv to **one logit** per pixel, then bilinear upsampling to the input size S.
#
# The same head (same weights) decodes every spatio-temporal layer's output: the last one is the
# prediction, the others are the auxiliary masks.

# %%
for p in (8, 14, 16):
    print(f"patch {p:2d}: n = ceil(log2({p} / 4)) = {math.ceil(math.log2(p / 4))} upsamplings "
          f"-> stride {p / 2 ** num_upsamplings(p, 4):g}")
head = model.head
print("\n", head)

stages = []
hooks = [m.register_forward_hook(lambda m, i, o, name=name: stages.append((name, o.detach())))
         for name, m in [("1x1 projection", head.input_proj), *[(f"conv block {i}", b) for i, b in enumerate(head.blocks)],
                         ("1x1 to one logit", head.predict)]]
with torch.no_grad():
    logits = head(out["features"], (S, S))  # (B, T, S, S)
for hk in hooks:
    hk.remove()
print(f"\n{'stage':18s} {'shape (B*T, C, H, W)':24s} stride")
print(f"{'input features':18s} {str(tuple(rearrange(out['features'], 'b t c h w -> (b t) c h w').shape)):24s} {patch}")
for name, o in stages:
    print(f"{name:18s} {str(tuple(o.shape)):24s} {S / o.shape[-1]:g}")
print(f"{'bilinear to S':18s} {str(tuple(logits.shape)):24s} 1   (as (B, T, S, S))")


# %% [markdown]
# What the stages look like for frame 0. Feature maps have many channels; we show each as RGB from
# its first three principal components (so similar colours = similar features), then the logit map
# and the mask probability `sigmoid(logit)`. The model is untrained: the features carry the image
# structure, the mask does not yet mean anything.

# %%
def pca_rgb(feature):
    # (C, H, W) -> (H, W, 3) uint8: the first three principal components, each min-max scaled
    C, H, W = feature.shape
    x = feature.reshape(C, -1).T.float()
    x = x - x.mean(0)
    _, _, v = torch.linalg.svd(x, full_matrices=False)
    rgb = (x @ v[:3].T).reshape(H, W, 3)
    rgb = (rgb - rgb.amin((0, 1))) / (rgb.amax((0, 1)) - rgb.amin((0, 1)) + 1e-8)
    return (rgb.cpu().numpy() * 255).astype(np.uint8)


panels = [("frame 0", shown[0]), (f"features {h}x{w}", pca_rgb(out["features"][0, 0]))]
panels += [(f"{name} {o.shape[-2]}x{o.shape[-1]}", pca_rgb(o[0])) for name, o in stages[:-1]]
fig, axes = plt.subplots(1, len(panels) + 2, figsize=(2.6 * (len(panels) + 2), 3))
for ax, (title, img) in zip(axes, panels):
    ax.imshow(img, interpolation="nearest")
    ax.set_title(title, fontsize=8)
lg = stages[-1][1][0, 0].cpu()
im_logit = axes[-2].imshow(lg, cmap="viridis", interpolation="nearest")
axes[-2].set_title(f"logits {lg.shape[0]}x{lg.shape[1]}", fontsize=8)
im_prob = axes[-1].imshow(torch.sigmoid(logits[0, 0]).cpu(), cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
axes[-1].set_title(f"sigmoid, {S}x{S}", fontsize=8)
for ax in axes:
    ax.set_axis_off()
fig.colorbar(im_logit, ax=axes[-2], shrink=0.7)
fig.colorbar(im_prob, ax=axes[-1], shrink=0.7)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 2. The pixel-text similarity map
#
# A second, lighter read-out: project every feature-grid position and the sentence feature into a
# common space and take their **cosine**, giving `(B, T, h, w)` in [-1, 1]. It is trained against
# the mask averaged onto the patch grid (a patch is foreground when more than half of it is), with
# `logits = cosine / temperature` (0.1, so logits in [-10, 10]). It asks the final features to
# *contain* the sentence, not only to be decodable into a mask.
#
# Re-derived by hand from the model's modules:

# %%
with torch.no_grad():
    prompts = model.prompts(T)
    sentence = model.text(tokens, prompts["language"])["sentence"]  # (B, D_t): the EOT feature
    sim = model.similarity
    pixels = F.normalize(sim.pixel_proj(rearrange(out["features"], "b t c h w -> b t h w c")), dim=-1)  # (B,T,h,w,sim_dim)
    text = F.normalize(sim.text_proj(sentence), dim=-1)  # (B, sim_dim)
    cosine = torch.einsum("bthwc,bc->bthw", pixels, text)
torch.testing.assert_close(cosine, out["similarity"], rtol=1e-5, atol=1e-5)
print("our cosine map equals out['similarity']:", tuple(cosine.shape))

target = similarity_target(masks, (h, w))  # (B, T, h, w) in {0, 1}
fig, axes = plt.subplots(3, T, figsize=(2.5 * T, 7.4))
for t in range(T):
    axes[0, t].imshow(viz.overlay_masks(shown[t], masks[0, t].cpu().numpy(), colors=[(0, 255, 255)], alpha=0.3))
    im = axes[1, t].imshow(cosine[0, t].cpu(), cmap="viridis", vmin=-1, vmax=1, interpolation="nearest")
    axes[2, t].imshow(target[0, t].cpu(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    axes[0, t].set_title(f"t={t}", fontsize=9)
for r, label in enumerate(["frame + mask", "cosine (untrained)", "target on the grid (white = 1)"]):
    axes[r, 0].set_ylabel(label, fontsize=9)
for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(im, ax=axes[1].tolist(), shrink=0.8, label="cosine")
plt.show()

# %% [markdown]
# ## 3. The loss terms
#
# `compute_losses(outputs, targets, cfg.loss)` returns a dict of named scalars. For every mask
# (the prediction and each auxiliary layer's) a **BCE** (or focal) term and a **Dice** term; for
# the similarity map its own BCE and Dice; and `total`, their weighted sum (2 x BCE + 5 x Dice,
# auxiliary terms x `aux_weight`). BCE is a mean over pixels per frame, then over the valid frames,
# so every real frame weighs the same; Dice (per clip in the presets) sums over all valid frames of
# a clip. Frames where the object is absent count, with an empty target.

# %%
lc = cfg.loss
with torch.no_grad():
    losses = compute_losses(out, {"masks": masks, "valid": valid}, lc)
weights = {"mask_bce": lc.bce_weight, "mask_dice": lc.dice_weight, "sim_bce": lc.sim_bce_weight,
           "sim_dice": lc.sim_dice_weight}
for i in range(len(out["aux_masks"])):
    weights |= {f"aux{i}_bce": lc.aux_weight * lc.bce_weight, f"aux{i}_dice": lc.aux_weight * lc.dice_weight}
print(f"{'term':10s} {'value':>8s} {'weight':>7s} {'weighted':>9s}")
for name, value in losses.items():
    if name != "total":
        print(f"{name:10s} {value.item():8.4f} {weights[name]:7.1f} {weights[name] * value.item():9.4f}")
rebuilt = sum(weights[k] * v for k, v in losses.items() if k != "total")
print(f"{'total':10s} {losses['total'].item():8.4f}          {rebuilt.item():9.4f}  (sum of the weighted terms)")


# %% [markdown]
# The terms by hand, from the equations at the top: $\mathcal{L}_{\text{bce}}$, $\mathcal{L}_{\text{dice}}$ (per clip
# or per frame as `cfg.loss.dice_per` says) and the similarity target $Y^{\text{sim}}$ (average each
# $p \times p$ patch of the mask, then $> 0.5$).

# %%
def my_bce(z, y, v):
    # z, y (B, T, H, W); v (B, T): per-frame pixel mean, then mean over valid frames
    p = torch.sigmoid(z.float())
    per_frame = -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean(dim=(-2, -1))  # (B, T)
    return (per_frame * v).sum() / v.sum()


def my_dice(z, y, v, per):
    p, v4 = torch.sigmoid(z.float()), v[..., None, None].float()  # v4 (B, T, 1, 1)
    dims = (1, 2, 3) if per == "clip" else (2, 3)  # clip: sum over T, H, W; frame: over H, W
    score = 1 - (2 * (v4 * p * y).sum(dims) + 1) / ((v4 * (p + y)).sum(dims) + 1)  # (B,) or (B, T)
    return score.mean() if per == "clip" else (score * v).sum() / v.sum()


vf = valid.float()
my_target = (rearrange(masks.float(), "b t (h p) (w q) -> b t h w (p q)", h=h, w=w).mean(-1) > 0.5).float()
my_terms = {"mask_bce": my_bce(out["pred_masks"], masks, vf),
            "mask_dice": my_dice(out["pred_masks"], masks, vf, lc.dice_per),
            "sim_bce": my_bce(out["similarity"] / lc.sim_temperature, my_target, vf),
            "sim_dice": my_dice(out["similarity"] / lc.sim_temperature, my_target, vf, lc.dice_per)}
for name, value in my_terms.items():
    print(f"{name:10s} by hand {value.item():.6f}   library {losses[name].item():.6f}")
print("similarity target by hand equals similarity_target:", torch.equal(my_target, target),
      f"({int(my_target.sum())} foreground patches of {my_target.numel()})")


# %% [markdown]
# Are these numbers any good? Two references on the same targets: a **perfect** prediction (logits
# +10 inside the mask and -10 outside, a similarity of +1 / -1 on the target grid) and a **random**
# one (standard-normal logits, uniform cosines).

# %%
def outputs_like(pred, sim):
    return {"pred_masks": pred, "aux_masks": [pred] * len(out["aux_masks"]), "similarity": sim}

perfect = outputs_like(10.0 * (2 * masks - 1), 2 * target - 1)
generator = torch.Generator().manual_seed(0)
random = outputs_like(torch.randn(masks.shape, generator=generator).to(rt.device),
                      (torch.rand(target.shape, generator=generator) * 2 - 1).to(rt.device))
references = {name: compute_losses(o, {"masks": masks, "valid": valid}, lc)
              for name, o in [("perfect", perfect), ("random", random), ("untrained model", out)]}
for name, terms in references.items():
    print(f"{name:16s} total {terms['total'].item():8.4f}   mask_bce {terms['mask_bce'].item():.4f}  "
          f"mask_dice {terms['mask_dice'].item():.4f}  sim_bce {terms['sim_bce'].item():.4f}  sim_dice {terms['sim_dice'].item():.4f}")

# %% [markdown]
# ## 4. The losses at work: fit the head to this one clip
#
# We freeze everything but the head and the similarity projections, keep this clip's final
# features fixed, and minimise `total` for a few dozen steps. This is **overfitting one clip**, not
# training (that is notebook 07); it only shows that the terms pull the logits where they should.

# %%
features = out["features"].detach()  # (B, T, d, h, w), fixed
head_fit, sim_fit = copy.deepcopy(model.head).train(), copy.deepcopy(model.similarity).train()
params = [*head_fit.parameters(), *sim_fit.parameters()]
optimizer = torch.optim.Adam(params, lr=3e-3)
STEPS = 60
history = []
for step in tqdm(range(1, STEPS + 1), desc="fit the head"):
    fit_out = {"pred_masks": head_fit(features, (S, S)), "aux_masks": [], "similarity": sim_fit(features, sentence)}
    terms = compute_losses(fit_out, {"masks": masks, "valid": valid}, lc)
    optimizer.zero_grad()
    terms["total"].backward()
    optimizer.step()
    history.append({"step": step, **{k: v.item() for k, v in terms.items()}})
print(f"total: {history[0]['total']:.3f} -> {history[-1]['total']:.3f}")
fig = viz.plot_curves(history, keys=["total", ["mask_bce", "mask_dice"], ["sim_bce", "sim_dice"]], logy=True)
fig

# %%
with torch.no_grad():
    fitted = torch.sigmoid(head_fit(features, (S, S)))[0].cpu()  # (T, S, S)
    before = torch.sigmoid(out["pred_masks"])[0].cpu()
fig, axes = plt.subplots(3, T, figsize=(2.5 * T, 7.4))
for t in range(T):
    axes[0, t].imshow(viz.overlay_masks(shown[t], masks[0, t].cpu().numpy(), colors=[(0, 255, 255)], alpha=0.3))
    axes[1, t].imshow(before[t], cmap="viridis", vmin=0, vmax=1)
    prob_im = axes[2, t].imshow(fitted[t], cmap="viridis", vmin=0, vmax=1)
    axes[0, t].set_title(f"t={t}", fontsize=9)
for r, label in enumerate(["target", "sigmoid, untrained", f"sigmoid, {STEPS} steps"]):
    axes[r, 0].set_ylabel(label, fontsize=9)
for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(prob_im, ax=axes[1:].ravel().tolist(), shrink=0.8, label="sigmoid(logit)")
plt.show()

# %% [markdown]
# ## 5. Dice and BCE disagree on empty targets and small objects
#
# Per frame, with `p = sigmoid(logit)`:
#
# * **BCE** = mean over pixels of `-[t log p + (1 - t) log(1 - p)]`: every pixel counts the same, so
#   a frame is dominated by its (usually many) background pixels;
# * **Dice** = `1 - (2 Σ p·t + 1) / (Σ p + Σ t + 1)`: overlap relative to the sizes of prediction and
#   target, whatever the frame size.
#
# Three targets on a 64 x 64 frame (empty, a 3 x 3 object, a 24 x 24 object) and a few predictions:

# %%
R = 64
empty = torch.zeros(R, R)
small = torch.zeros(R, R); small[30:33, 30:33] = 1
large = torch.zeros(R, R); large[20:44, 20:44] = 1
targets_ = {"empty": empty, "small (9 px)": small, "large (576 px)": large}
predictions = {
    "background, logit -4": lambda t: torch.full((R, R), -4.0),
    "background, logit -12": lambda t: torch.full((R, R), -12.0),
    "uniform, logit 0": lambda t: torch.zeros(R, R),
    "perfect, +-10": lambda t: 10.0 * (2 * t - 1),
    "shifted 2 px, +-10": lambda t: 10.0 * (2 * torch.roll(t, 2, dims=1) - 1),
}
table = {}
print(f"{'prediction':24s}" + "".join(f"{name:>24s}" for name in targets_))
print(f"{'':24s}" + "".join(f"{'BCE':>12s}{'Dice':>12s}" for _ in targets_))
for pname, make in predictions.items():
    row = []
    for tname, t in targets_.items():
        logit = make(t)[None, None]
        row.append((sigmoid_bce(logit, t[None, None]).item(), dice_loss(logit, t[None, None]).item()))
        table[pname, tname] = row[-1]
    print(f"{pname:24s}" + "".join(f"{b:12.4f}{d:12.4f}" for b, d in row))

# %% [markdown]
# Read the table by rows:
#
# * **Missing a small object** (background, logit -4, on the 9-pixel object): BCE barely notices
#   (9 wrong pixels out of 4096), Dice says it is as bad as it gets (~1). Dice is what makes small
#   objects matter.
# * **Empty targets**: a confident-looking background at logit -4 (p = 0.018 per pixel) still has
#   Σp ≈ 74 over the frame, and Dice = 1 - 1/(Σp + 1) ≈ 0.99: Dice treats it as a complete failure,
#   while BCE is small. Dice only reaches 0 on an empty frame when Σp ≪ 1, i.e. when the background
#   logit is below about `-ln(H·W)` (-8.3 here). Even the "perfect" ±10 prediction pays a Dice of
#   0.16 on the empty frame (Σp = 4096·σ(-10) ≈ 0.19), and logit -12 still pays 0.02. The curve
#   below shows that cliff; it is why frames where the object is absent push the model towards very
#   negative background logits.
# * A **2-pixel shift** of a perfect mask hurts the small object a lot under both losses, the large
#   one little.

# %%
levels = torch.linspace(-12, 2, 57)
bce_curve = [sigmoid_bce(torch.full((1, 1, R, R), float(v)), empty[None, None]).item() for v in levels]
dice_curve = [dice_loss(torch.full((1, 1, R, R), float(v)), empty[None, None]).item() for v in levels]
fig, ax = plt.subplots(figsize=(7.5, 3.5))
ax.plot(levels, dice_curve, label="Dice")
ax.plot(levels, bce_curve, label="BCE")
ax.axvline(-math.log(R * R), color="grey", ls="--", label=f"-ln(H W) = {-math.log(R * R):.1f}")
ax.plot(levels, 1 - 1 / (R * R * torch.sigmoid(levels) + 1), "k:", lw=1, label="Dice = 1 - 1 / (HW sigmoid(x) + 1)")
ax.set(xlabel="background logit everywhere", ylabel="loss", yscale="log", ylim=(1e-6, 3),
       title=f"an empty {R} x {R} target")
ax.legend()
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# ## Summary
#
# * The mask head decodes each frame's $(d, h, w)$ feature grid at the patch stride into one logit per
#   pixel: a 1x1 projection, conv blocks with $n = \lceil \log_2(p/4) \rceil$ x2 upsamplings to stride
#   $\le 4$, a 1x1 conv, bilinear to $S \times S$. The same head gives the auxiliary masks.
# * The pixel-text map is a cosine between projected pixel features and the projected sentence,
#   trained as logits $s / \tau$ against the mask pooled onto the patch grid.
# * The objective is $2 \cdot$ BCE $+ 5 \cdot$ Dice on the prediction, on each auxiliary mask and on the
#   pixel-text map; we rebuilt every term and the total from the equations.
# * BCE weighs every pixel the same, so it barely notices a missed small object; Dice measures
#   overlap relative to size, so it does, and on an empty frame it keeps pushing background logits
#   below about $-\ln(HW)$.
#
# ## Exercises
#
# 1. **Predict, then run.** What Dice loss does a prediction of logit $-6$ everywhere get on the empty
#    $64 \times 64$ target? Use $1 - 1/(HW\sigma(x) + 1)$, then check with
#    `dice_loss(torch.full((1, 1, R, R), -6.0), empty[None, None])`.
# 2. **Change one config field.** Set `lc = dataclasses.replace(cfg.loss, dice_per="frame")` and
#    recompute `compute_losses(out, {"masks": masks, "valid": valid}, lc)`: which terms change, and
#    does `my_dice(..., per="frame")` still agree with the library?
# 3. **Re-derive.** For a patch of $p = 8$ pixels, how many foreground pixels must a patch hold for
#    $Y^{\text{sim}}$ to mark it? Check by building a $64 \times 64$ mask with a $6 \times 5$ square (30 pixels)
#    inside one patch and a $6 \times 6$ square (36 pixels) inside another, and calling
#    `similarity_target(mask[None, None], (8, 8))`.
# 4. **Change one field.** Refit the head (section 4) with `aux_weight = 0` and `sim_bce_weight =
#    sim_dice_weight = 0`: does the mask loss still fall below half its first value in 60 steps?

# %%
# Exercise 1, a starting point: the formula for a constant background logit x on an empty R x R frame
x = -6.0
print(f"formula {1 - 1 / (R * R * torch.sigmoid(torch.tensor(x)).item() + 1):.4f}   "
      f"library {dice_loss(torch.full((1, 1, R, R), x), empty[None, None]).item():.4f}")

# %% [markdown]
# ## Checks

# %%
B = frames.shape[0]
# head: shapes of every stage
n_up = num_upsamplings(patch, cfg.model.head.output_stride)
assert n_up == math.ceil(math.log2(patch / cfg.model.head.output_stride)) and len(head.blocks) == n_up + 1
assert stages[0][1].shape == (B * T, cfg.model.head.hidden, h, w)
assert stages[-1][1].shape == (B * T, 1, h * 2**n_up, w * 2**n_up)
assert logits.shape == out["pred_masks"].shape == (B, T, S, S)
torch.testing.assert_close(logits, out["pred_masks"])  # the model's prediction is the head on the final features

# similarity: re-derived, in [-1, 1], target on the patch grid
torch.testing.assert_close(cosine, out["similarity"], rtol=1e-5, atol=1e-5)
# the similarity target is the mask averaged onto the patch grid, > 0.5, and the frame has foreground patches
assert torch.equal(my_target, target) and target.shape == (B, T, h, w) and target.sum() > 0

# loss dict: keys, total rebuilt from the terms
n_aux = cfg.model.spatiotemporal.layers - 1
expected = {"mask_bce", "mask_dice", "sim_bce", "sim_dice", "total"} | {f"aux{i}_{k}" for i in range(n_aux) for k in ("bce", "dice")}
assert set(losses) == expected, set(losses) ^ expected
torch.testing.assert_close(rebuilt, losses["total"])
for name, value in my_terms.items():  # every term re-derived from the equations
    torch.testing.assert_close(value, losses[name], rtol=1e-5, atol=1e-6)
assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())

# a perfect logit map has a far lower loss than a random one (and than the untrained model)
assert references["perfect"]["total"] < 0.05 * references["random"]["total"]
assert references["perfect"]["total"] < references["untrained model"]["total"]

# fitting the head on this clip lowers the loss
assert history[-1]["total"] < 0.5 * history[0]["total"]

# Dice vs BCE
assert table["background, logit -4", "small (9 px)"][0] < 0.05 < 0.9 < table["background, logit -4", "small (9 px)"][1]
assert table["background, logit -4", "empty"][1] > 0.9 and table["background, logit -12", "empty"][1] < 0.05
mass = R * R * torch.sigmoid(torch.tensor(-10.0)).item()  # sum of p over an empty frame predicted at -10
assert abs(table["perfect, +-10", "empty"][1] - (1 - 1 / (mass + 1))) < 1e-4
assert table["perfect, +-10", "large (576 px)"][1] < 1e-3 and table["perfect, +-10", "empty"][0] < 1e-4
print("all checks passed")
