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
# # 01 · Data, video I/O and metrics
#
# Before any model: what goes **in** (videos, sentences, masks) and how what comes **out** is
# **scored**. By the end of this notebook you will have
#
# 1. read one real DAVIS clip twice, as a folder of JPEG frames and as an H.264 `.mp4`, and
#    measured what the video codec changes;
# 2. read the two dataset layouts rvoslib speaks natively (Ref-YouTube-VOS, used by our synthetic
#    shapes sets, and Ref-DAVIS17) into the one in-memory form, `VideoRecord` + `Expression`;
# 3. looked inside the synthetic generator, including a *motion-only* expression whose referent
#    **cannot** be found from any single frame (two objects look exactly the same);
# 4. seen the clip transforms, including the left/right flip that also rewrites the sentence;
# 5. computed the DAVIS metrics J (region IoU) and F (boundary F-measure), drawn F's tolerance band,
#    and watched both react to a mask that drifts further and further from the truth.
#
# **Needs:** CPU only; the data shipped in `data_samples/` (three real DAVIS-2017 clips, licence
# CC BY-NC 4.0, non-commercial; a synthetic shapes set; `blackswan.mp4`). No model weights.
#
# **Time:** about 35 s in fast mode on 2 CPU cores (measured with `pytest --nbval` while other
# programs shared the cores). Full mode (`RVOSLIB_MODE=full`) runs the same
# cells; only the input size S and clip length T of the transforms change (352 and 6, the
# paper's values, instead of 64 and 4), so it takes about as long.

# %%
from rvoslib.runtime import setup

rt = setup(seed=0)  # reads RVOSLIB_MODE = fast | full | auto (auto = full when CUDA is present);
# progress bars become text, which stay readable after the notebook is saved and reopened

from pathlib import Path

ROOT = rt.root  # the repository folder (the one holding data_samples/)
print(f"mode={rt.mode}  device={rt.device}  repository={ROOT}")

import json
import math
import textwrap
from collections import Counter

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display

from rvoslib import io as rio
from rvoslib import metrics, viz
from rvoslib.config import get_preset

cfg = get_preset("tiny" if rt.fast else "clip-b16")
S, T = cfg.model.backbone.image_size, cfg.model.num_frames  # square input side, frames per clip
DATA = ROOT / "data_samples"
print(f"transforms below use S={S}, T={T}")

# %% [markdown]
# ## 1. A video is a stack of frames: folder or file
#
# Every RVOS dataset ships its videos as **folders of JPEG frames** (`00000.jpg, 00001.jpg, ...`);
# users bring **video files**. `rvoslib.io.read_video` reads both and returns the same thing:
# `frames (T, H, W, 3) uint8 RGB` and a list of frame names. Files go through decord (or imageio
# where decord is missing), folders through PIL.
#
# `data_samples/blackswan.mp4` was written from the very same 12 JPEG frames, so any difference
# between the two readings is what the H.264 encoder threw away.

# %%
folder_frames, folder_names = rio.read_video(DATA / "davis/blackswan/JPEGImages")
mp4_frames, mp4_names = rio.read_video(DATA / "blackswan.mp4")

print("folder:", folder_frames.shape, folder_frames.dtype, folder_names[:3], "...")
print("mp4:   ", mp4_frames.shape, mp4_frames.dtype, mp4_names[:3], "...")

diff = np.abs(folder_frames.astype(np.int16) - mp4_frames.astype(np.int16))  # (T, H, W, 3)
mse = (diff.astype(np.float64) ** 2).mean(axis=(1, 2, 3))  # (T,)
psnr = 10 * np.log10(255.0**2 / mse)
print("\nframe  mean |diff|  max |diff|  PSNR (dB)")
for t in range(len(diff)):
    print(f"{t:5d}  {diff[t].mean():10.2f}  {diff[t].max():10d}  {psnr[t]:9.1f}")

# %% [markdown]
# Same count, same size, and a mean difference of about three grey levels (out of 255): a PSNR
# around 35 dB is "visually lossless", but **not** identical. Where does the codec lose most? Below, the absolute
# difference amplified 8x: the errors sit on textures and edges (feathers, ripples), exactly where
# a segmentation boundary lives. Prefer the original frames for evaluation when you have them.

# %%
amplified = np.clip(diff[0] * 8, 0, 255).astype(np.uint8)
fig = viz.show_frames(np.stack([folder_frames[0], mp4_frames[0], amplified]),
                      titles=["JPEG frame 00000", "mp4 frame 00000", "|difference| x 8"], ncols=3)
fig

# %% [markdown]
# ## 2. Dataset layouts, one in-memory form
#
# ### Ref-YouTube-VOS layout (also our synthetic shapes)
#
# ```
# <root>/JPEGImages/<video>/<frame>.jpg|png     frames
# <root>/Annotations/<video>/<frame>.png        palette PNG: pixel value = object id (0 = background)
# <root>/meta_expressions.json                  {"videos": {vid: {"expressions": {id: {"exp", "obj_id"}}, "frames": [...]}}}
# ```
#
# The sentence refers to an **object id**; the target mask of an expression in a frame is "pixels
# whose value is that id". Our synthetic sets add a `kind` per expression (appearance / motion /
# relation) and the objects' attributes per video.

# %%
root = DATA / "synthetic/train"
for sub in ("JPEGImages", "Annotations"):
    videos = sorted(p.name for p in (root / sub).iterdir())
    first = sorted(p.name for p in (root / sub / videos[0]).iterdir())
    print(f"{sub}/  {len(videos)} videos: {videos[0]}/ holds {first[:3]} ... ({len(first)} files)")
meta = json.loads((root / "meta_expressions.json").read_text())
video_id = next(iter(meta["videos"]))
print("\nmeta_expressions.json, first video:")
print(json.dumps(meta["videos"][video_id], indent=1)[:900], "...")

# %% [markdown]
# `read_ref_youtube_vos` turns that into a list of `VideoRecord`s. A record knows its frame
# paths, its expressions and where its masks are, and decodes nothing until asked
# (`load_frames`, `load_mask`), so reading a 3 000-video dataset's index is instant.

# %%
from rvoslib.data import read_ref_davis17, read_ref_youtube_vos

train = read_ref_youtube_vos(DATA / "synthetic/train")
valid = read_ref_youtube_vos(DATA / "synthetic/valid")
kinds = Counter(e.kind for r in train for e in r.expressions)
print(f"train: {len(train)} videos, {sum(len(r.expressions) for r in train)} expressions, by kind: {dict(kinds)}")
print(f"valid: {len(valid)} videos, {sum(len(r.expressions) for r in valid)} expressions")

record = train[0]
print(f"\n{record.video_id}: {record.num_frames} frames of {record.frame_size()} (H, W), "
      f"masks: {record.has_masks}, frame 0 at {record.frame_paths[0].relative_to(ROOT)}")
print("objects:", record.extra["objects"])
for kind in ("appearance", "motion", "relation"):
    for e in record.expressions:
        if e.kind == kind:
            print(f"  {kind:10s} obj {e.obj_ids}: {e.text!r}")

# %%
# one example sentence of each kind from the training set, with its target mask
examples = {}
for r in train:
    for e in r.expressions:
        examples.setdefault(e.kind, (r, e))
tiles, titles = [], []
for kind, (r, e) in examples.items():
    for t in (0, r.num_frames - 1):
        frame = r.load_frames([t])[0]
        tiles.append(viz.overlay_masks(frame, r.load_mask(t, e.obj_ids) == 1, colors=[(255, 255, 255)], alpha=0.45))
        titles.append(f"{kind}, t={t}\n" + textwrap.fill(repr(e.text), 26))
fig = viz.show_frames(np.stack(tiles), titles=titles, ncols=6, figsize=(15, 3.8))
fig

# %% [markdown]
# ### Ref-DAVIS17
#
# Real DAVIS-2017 clips plus sentences from the Ref-DAVIS17 annotators. The official files are
# `davis_text_annotations/Davis17_annot{1,2}[_full_video].txt`; our sample ships the three rows of
# the refvos csv instead (`video_id;instance_id;ref_exp;...`). `read_ref_davis17` finds either and
# builds the same `VideoRecord`s; extra csv columns land in `Expression.extra`.

# %%
davis = read_ref_davis17(DATA / "davis")
for r in davis:
    e = r.expressions[0]
    print(f"{r.video_id:10s} {r.num_frames} frames {r.frame_size()}  obj {e.obj_ids}: {e.text!r}  "
          f"(difficulty: {e.extra['ref_exp_difficulty']})")
firsts = np.stack([viz.overlay_masks(r.load_frames([0])[0], r.load_mask(0, r.expressions[0].obj_ids) == 1)
                   for r in davis])
fig = viz.show_frames(firsts, titles=[f"{r.video_id}: '{r.expressions[0].text}'" for r in davis], ncols=3)
fig

# %% [markdown]
# ## 3. The synthetic generator, and why a single frame is not enough
#
# `rvoslib.data.synthetic` draws 2-4 coloured shapes with a motion each (static, left, right, up,
# down, bouncing) and writes expressions that refer to **exactly one** object, each checked by an
# independent resolver (`referents`). Everything is deterministic by seed: regenerating
# `valid` with seed 0 gives the shipped PNGs bit for bit.
#
# A **motion** expression is only made for an object that has a *twin*: another object of the
# same size, colour and shape, moving differently. No single frame can tell the twins apart; the
# model must look across frames. This is what temporal prompts and cube attention are for
# (notebooks 03 and 05).

# %%
from rvoslib.data.expressions import referents
from rvoslib.data.synthetic import generate_videos

generated = generate_videos(len(valid), seed=0, split="valid")
for video, rec in zip(generated, valid):
    assert video.video_id == rec.video_id and np.array_equal(video.frames, rec.load_frames())
print(f"regenerated {len(generated)} validation videos: identical to data_samples/synthetic/valid")

# the first validation video with a motion expression
video, expression = next((v, e) for v in generated for e in v.expressions if e["kind"] == "motion")
target = next(o for o in video.objects if o.obj_id == expression["obj_id"])
twins = [o for o in video.objects if o is not target and o.appearance() == target.appearance()]
print(f"{video.video_id}: {expression['text']!r} -> object {target.obj_id} {target.appearance()} moving {target.motion}")
for o in twins:
    print(f"   twin: object {o.obj_id} {o.appearance()} moving {o.motion}")

spec = expression["spec"]
ambiguous = referents({**spec, "motion": None}, video.objects)  # the same words without the motion
print("objects matching the description without its motion:", ambiguous)
print("objects matching the full expression:              ", referents(spec, video.objects))

# %%
target_masks = video.id_maps == target.obj_id  # (F, S, S)
twin_masks = np.isin(video.id_maps, [o.obj_id for o in twins])
OUTLINE = [(255, 0, 255), (0, 255, 255)]  # twin magenta, target cyan: outlines only, the colours stay visible
outlined = viz.overlay_masks(video.frames, [twin_masks, target_masks], colors=OUTLINE, alpha=0.0)  # (F, S, S, 3)

times = [0, len(video.frames) // 2, len(video.frames) - 1]
fig, axes = plt.subplots(1, 5, figsize=(17, 3.7))
axes[0].imshow(video.frames[0], interpolation="nearest")
axes[0].set_title("t=0 as the model sees it:\nwhich red circle moves up?", fontsize=9)
for ax, t in zip(axes[1:4], times):
    ax.imshow(outlined[t], interpolation="nearest")
    ax.set_title(f"t={t}: cyan = target, magenta = twin", fontsize=9)
for ax in axes[:4]:
    ax.set_axis_off()
for o, colour in [(target, "c"), *[(tw, "m") for tw in twins]]:
    axes[4].plot(o.centres[:, 0], o.centres[:, 1], "-o", color=colour, ms=3, label=f"object {o.obj_id} ({o.motion})")
axes[4].set(xlim=(0, video.frames.shape[2]), ylim=(video.frames.shape[1], 0), aspect="equal",
            title="centre trajectories (x, y), pixels")
axes[4].legend(fontsize=8)
fig.suptitle(repr(expression["text"]))
fig.tight_layout()
plt.show()

# %% [markdown]
# Scrub through the clip with the slider (live kernel needed); the static grid below shows every
# frame for readers of the saved notebook.

# %%
display(viz.frame_slider(outlined, width=320))
fig = viz.show_frames(outlined, ncols=6, figsize=(13, 5))
fig

# %% [markdown]
# ## 4. Clip transforms: resize, flip (with the sentence), normalise
#
# `RVOSDataset` turns (video, expression) pairs into tensors the model eats:
# `frames (T, 3, S, S)` resized to a square and normalised with CLIP's mean/std,
# `masks (T, S, S)`, the sentence, and meta data. In training it samples T frames with random
# gaps and applies a random horizontal **flip**. A flip mirrors the pixels, so "the shape to the
# left of the red square" would become false; the dataset therefore swaps the words
# left <-> right in the sentence too (`transforms.swap_left_right`).
#
# We take a training expression that mentions left or right, and draw the same item with
# `flip_prob=0` and `flip_prob=1` (same seed: same sampled frames, jitter off).

# %%
from rvoslib.data import RVOSDataset
from rvoslib.data.transforms import denormalize, swap_left_right

rec, exp_index = next((r, i) for r in train for i, e in enumerate(r.expressions)
                      if any(w in e.text.split() for w in ("left", "right")))
items = {}
for flip in (0.0, 1.0):
    ds = RVOSDataset([rec], clip_len=T, size=S, train=True, flip_prob=flip, jitter=None, seed=0)
    items[flip] = ds[exp_index]
plain, flipped = items[0.0], items[1.0]
print("frames", tuple(plain["frames"].shape), plain["frames"].dtype, " masks", tuple(plain["masks"].shape),
      " sampled frames", plain["meta"]["frame_indices"])
print("original:", repr(plain["sentence"]))
print("flipped: ", repr(flipped["sentence"]), " meta['flipped'] =", flipped["meta"]["flipped"])


def to_uint8(frames):  # (T, 3, S, S) CLIP-normalised -> (T, S, S, 3) uint8 for display
    return (denormalize(frames).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)


rows = np.concatenate([viz.overlay_masks(to_uint8(it["frames"]), it["masks"].numpy()) for it in (plain, flipped)])
titles = [f"t={t} original" for t in plain["meta"]["frame_indices"]] + [f"t={t} flipped" for t in flipped["meta"]["frame_indices"]]
fig = viz.show_frames(rows, titles=titles, ncols=T, figsize=(2.6 * T, 5.6))
fig.suptitle(f"top: {plain['sentence']!r}\nbottom: {flipped['sentence']!r}", fontsize=10)
fig.tight_layout()
fig

# %% [markdown]
# Real videos are not square: DAVIS frames are 854 x 480. The transform resizes them to S x S
# (bilinear with antialiasing for frames, nearest at pixel centres for masks), which squashes
# the picture horizontally. The model never sees the original aspect ratio; predictions are
# resized back to the original size for evaluation (notebook 08).

# %%
davis_item = RVOSDataset(davis[:1], clip_len=T, size=S, train=False)[0]
original = davis[0].load_frames([0])[0]
resized = viz.overlay_masks(to_uint8(davis_item["frames"][:1])[0], davis_item["masks"][0].numpy())
fig, axes = plt.subplots(1, 2, figsize=(10, 3.3), gridspec_kw={"width_ratios": [854 / 480, 1]})
axes[0].imshow(viz.overlay_masks(original, davis[0].load_mask(0, [1]) == 1)); axes[0].set_title(f"original {original.shape[1]} x {original.shape[0]}")
axes[1].imshow(resized, interpolation="nearest"); axes[1].set_title(f"model input {S} x {S}")
for ax in axes:
    ax.set_axis_off()
plt.show()

# %% [markdown]
# ## 5. Scoring: J and F, the DAVIS way
#
# The paper, like every RVOS paper, reports the DAVIS measures: region similarity $\mathcal{J}$, contour
# accuracy $\mathcal{F}$ and their mean $\mathcal{J}\&\mathcal{F}$. For a predicted mask $P$ and the ground truth $G$ of
# one frame, $P, G \in \{0, 1\}^{H \times W}$:
#
# $$
# \mathcal{J}(P, G) = \frac{|P \cap G|}{|P \cup G|} \qquad (1 \text{ when both are empty})
# $$
#
# For $\mathcal{F}$, take each mask's one-pixel boundary $\partial P, \partial G \in \{0, 1\}^{H \times W}$ (DAVIS `seg2bmap`: a
# pixel whose right, lower or lower-right neighbour differs) and a disk $D_r$ of radius
# $r = \lceil 0.008 \sqrt{H^2 + W^2}\, \rceil$ (**8 px** at 854 x 480); $\oplus$ is dilation:
#
# $$
# \text{precision} = \frac{|\partial P \cap (\partial G \oplus D_r)|}{|\partial P|}, \qquad
# \text{recall} = \frac{|\partial G \cap (\partial P \oplus D_r)|}{|\partial G|}, \qquad
# \mathcal{F}(P, G) = \frac{2 \cdot \text{precision} \cdot \text{recall}}{\text{precision} + \text{recall}}
# $$
#
# (both boundaries empty: 1; exactly one empty: 0). Over the $T$ frames of one object,
# $\bar{\mathcal{J}} = \frac{1}{T} \sum_t \mathcal{J}(P_t, G_t)$, the same for $\bar{\mathcal{F}}$, and a dataset's
# $\mathcal{J}\&\mathcal{F} = \tfrac{1}{2}(\operatorname{mean}_n \bar{\mathcal{J}}_n + \operatorname{mean}_n \bar{\mathcal{F}}_n)$ over its objects $n$.
#
# The tolerance makes F forgive small boundary errors completely; J forgives nothing. Let's see it
# on the real swan mask, shifted right by an increasing number of pixels.

# %%
swan = davis[0]
gt = swan.load_mask(0, [1]) == 1  # (480, 854) bool
frame0 = swan.load_frames([0])[0]
radius = metrics.boundary_radius(gt.shape)
print(f"mask {gt.shape}, diagonal {np.hypot(*gt.shape):.1f} px -> tolerance radius {radius} px")


def my_jaccard(p, g):
    union = (p | g).sum()
    return (p & g).sum() / union if union else 1.0


def my_boundary_f(p, g):
    # the equations above, from the library's boundary map (seg2bmap) and disk dilation
    r = math.ceil(0.008 * math.hypot(*g.shape))
    bp, bg = metrics.seg2bmap(p), metrics.seg2bmap(g)
    if not bp.any() and not bg.any():
        return 1.0
    if not bp.any() or not bg.any():
        return 0.0
    precision = (bp & metrics.binary_dilate_disk(bg, r)).sum() / bp.sum()
    recall = (bg & metrics.binary_dilate_disk(bp, r)).sum() / bg.sum()
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def shift_mask(mask, dx, dy=0):
    """Move a mask by (dx, dy) pixels; what leaves the image is lost, what enters is background."""
    out = np.zeros_like(mask)
    H, W = mask.shape
    out[max(dy, 0):H + min(dy, 0), max(dx, 0):W + min(dx, 0)] = mask[max(-dy, 0):H + min(-dy, 0), max(-dx, 0):W + min(-dx, 0)]
    return out


def erode_mask(mask, r):
    """Shrink a mask by a disk of radius r (erosion = complement of the dilated complement)."""
    return ~metrics.binary_dilate_disk(~mask, r)


shifts = [0, 2, 4, 6, 8, 9, 12, 16, 24, 32]
erosions = [0, 2, 4, 8, 12, 16]
shift_scores = [(metrics.jaccard(shift_mask(gt, s), gt), metrics.boundary_f(shift_mask(gt, s), gt)) for s in shifts]
erosion_scores = [(metrics.jaccard(erode_mask(gt, r), gt), metrics.boundary_f(erode_mask(gt, r), gt)) for r in erosions]
print("\nshift (px)      J      F        erosion (px)      J      F")
for i in range(max(len(shifts), len(erosions))):
    left = f"{shifts[i]:10d}  {shift_scores[i][0]:.3f}  {shift_scores[i][1]:.3f}" if i < len(shifts) else " " * 28
    right = f"{erosions[i]:17d}  {erosion_scores[i][0]:.3f}  {erosion_scores[i][1]:.3f}" if i < len(erosions) else ""
    print(left + right)

# %% [markdown]
# The same table by hand, from the equations (`my_jaccard`, `my_boundary_f` above):

# %%
by_hand = [(my_jaccard(shift_mask(gt, s), gt), my_boundary_f(shift_mask(gt, s), gt)) for s in shifts]
print("shift (px)   J by hand  J library   F by hand  F library")
for s, (jh, fh), (jl, fl) in zip(shifts, by_hand, shift_scores):
    print(f"{s:10d}   {jh:9.4f}  {jl:9.4f}   {fh:9.4f}  {fl:9.4f}")

# %% [markdown]
# Up to the 8 px radius, **F stays exactly 1**: every shifted boundary pixel is still inside the
# band. J drops from the first pixel. Past the radius, F falls quickly on the parts of the boundary
# that moved across the band (the left and right sides), while the top and bottom edges, which
# slide *along* themselves, keep matching. Erosion is harsher on F: it moves *every* boundary pixel
# inwards by the same distance, so once that distance exceeds r no boundary pixel matches and F is
# 0, while J still says the prediction covers more than half of the swan. The picture behind F, cropped around the swan:
# the dark band is G's boundary dilated by r; green/orange = G's boundary matched/missed (recall),
# blue/red = P's boundary inside/outside the band (precision), white = on both.

# %%
ys, xs = np.nonzero(gt)
crop = (slice(max(ys.min() - 30, 0), ys.max() + 30), slice(max(xs.min() - 30, 0), xs.max() + 40))
fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
for ax, s in zip(axes, (6, 16)):
    pred = shift_mask(gt, s)
    picture = viz.draw_boundaries(pred, gt, frame=frame0)[crop]
    ax.imshow(picture, interpolation="nearest")
    ax.set_title(f"shifted {s} px: J={metrics.jaccard(pred, gt):.3f}, F={metrics.boundary_f(pred, gt):.3f}")
    ax.set_axis_off()
from matplotlib.patches import Patch
labels = {"band": "tolerance band (G dilated)", "gt_hit": "G boundary matched", "gt_miss": "G boundary missed",
          "pred_hit": "P boundary in band", "pred_miss": "P boundary outside band", "both": "on both"}
fig.legend(handles=[Patch(facecolor=np.array(viz.BOUNDARY_COLORS[k]) / 255, edgecolor="black", label=v)
                    for k, v in labels.items()],
           loc="lower center", ncol=6, fontsize=9)
fig.tight_layout(rect=(0, 0.06, 1, 1))
plt.show()

# %%
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.plot(shifts, [j for j, _ in shift_scores], "o-", label="J (IoU)")
ax.plot(shifts, [f for _, f in shift_scores], "s-", label="F (boundary)")
ax.axvline(radius, color="grey", ls="--", label=f"tolerance radius r = {radius} px")
ax.set(xlabel="horizontal shift of the predicted mask (px)", ylabel="score", ylim=(0, 1.05),
       title="blackswan frame 0: a shifted copy of the ground truth")
ax.legend()
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# ### From frames to a sequence: mean, recall, decay
#
# A dataset score is per object: the **mean** of the per-frame values, the **recall** (fraction
# of frames above 0.5) and the **decay** (mean of the first quarter of the video minus the last
# quarter; positive = the prediction gets worse over time). J&F is the mean of J-mean and F-mean.
# Here a prediction that drifts 3 px further right at every frame:

# %%
gts = swan.load_masks(range(swan.num_frames), [1]) == 1  # (12, 480, 854)
drifting = np.stack([shift_mask(g, 3 * t) for t, g in enumerate(gts)])
j_seq, f_seq = metrics.evaluate_object(drifting, gts)
j_stats, f_stats = metrics.statistics(j_seq), metrics.statistics(f_seq)
print("t    :", " ".join(f"{t:5d}" for t in range(len(j_seq))))
print("J    :", " ".join(f"{v:5.3f}" for v in j_seq))
print("F    :", " ".join(f"{v:5.3f}" for v in f_seq))
for name, st in (("J", j_stats), ("F", f_stats)):
    print(f"{name}: mean {st.mean:.3f}  recall {st.recall:.3f}  decay {st.decay:.3f}")
print(f"J&F = {(j_stats.mean + f_stats.mean) / 2:.3f}")
my_recall = float((j_seq > 0.5).mean())  # fraction of frames with J > 0.5
print(f"J recall by hand {my_recall:.3f}")

# %% [markdown]
# ## Summary
#
# * A video is a stack of frames, from a folder or a file; H.264 changes the pixels a little
#   (PSNR above 30 dB here), never the frame count or size.
# * Ref-YouTube-VOS and Ref-DAVIS17 layouts become the same `VideoRecord` + `Expression`; the synthetic
#   shapes sets use the first and contain motion-only sentences whose referent no single frame can
#   identify.
# * A horizontal flip must also swap "left" and "right" in the sentence.
# * $\mathcal{J}$ is the IoU; $\mathcal{F}$ matches boundaries within a tolerance band of radius
#   $r = \lceil 0.008 \cdot \text{diagonal} \rceil$, so it forgives small shifts entirely and punishes a uniform
#   erosion beyond $r$ completely. We re-derived both by hand and got the library's numbers.
#
# ## Exercises
#
# 1. **Predict, then run.** What tolerance radius does a 64 x 64 frame (the tiny model's input) get?
#    And a 352 x 352 frame? Check with `metrics.boundary_radius((64, 64))` and `((352, 352))`.
# 2. **Predict, then run.** Shift the swan mask *vertically* by 12 px (`shift_mask(gt, 0, 12)`): is $\mathcal{F}$
#    higher or lower than for the horizontal 12 px shift? (Hint: the swan is wider than it is tall.)
#    Check with `metrics.boundary_f`.
# 3. **Re-derive.** Compute the J decay of `j_seq` by hand: the mean of the first quarter of the
#    frames minus the mean of the last quarter, with the quarters of `metrics.decay_bins(12)`; compare
#    with `j_stats.decay`.
# 4. **Change one setting.** Predict the shapes of the frames and masks of section 4's clip at half the
#    input size, then check with
#    `RVOSDataset([rec], clip_len=T, size=S // 2, train=True, flip_prob=0.0, jitter=None, seed=0)[exp_index]`.

# %%
# Exercise 1, a starting point
print({size: metrics.boundary_radius((size, size)) for size in (64, 352)})

# %% [markdown]
# ## Checks
#
# What this notebook taught, as assertions (they are what `pytest --nbval` tests).

# %%
# video I/O: the folder and the mp4 hold the same frames, up to lossy compression
assert folder_frames.shape == mp4_frames.shape == (12, 480, 854, 3)
assert len(folder_names) == len(mp4_names) == len(rio.list_frames(DATA / "davis/blackswan/JPEGImages"))
assert 0 < diff.mean() < 5 and psnr.min() > 30

# readers: every expression refers to an object that is present in its masks
for r in train[:4] + davis:
    for e in r.expressions:
        assert (r.load_mask(0, e.obj_ids) == 1).any(), (r.video_id, e.text)
assert set(kinds) == {"appearance", "motion", "relation"}

# a motion expression's description without its motion matches its twin as well
assert len(ambiguous) >= 2 and referents(spec, video.objects) == [target.obj_id]

# flip: pixels mirrored, masks mirrored, left <-> right swapped in the sentence
torch.testing.assert_close(flipped["frames"], plain["frames"].flip(-1))
torch.testing.assert_close(flipped["masks"], plain["masks"].flip(-1))
assert flipped["sentence"] == swap_left_right(plain["sentence"]) != plain["sentence"]
assert plain["frames"].shape == (T, 3, S, S)

# metrics
assert metrics.jaccard(gt, gt) == 1.0 and metrics.boundary_f(gt, gt) == 1.0
empty = np.zeros_like(gt)
assert metrics.jaccard(empty, empty) == 1.0 and metrics.boundary_f(empty, empty) == 1.0
assert metrics.boundary_f(empty, gt) == 0.0
assert radius == math.ceil(0.008 * math.hypot(480, 854)) == 8
for (jh, fh), (jl, fl) in zip(by_hand, shift_scores):  # J and F re-derived from the equations
    assert abs(jh - jl) < 1e-12 and abs(fh - fl) < 1e-12, (jh, jl, fh, fl)
assert my_recall == j_stats.recall
f_by_shift = dict(zip(shifts, (f for _, f in shift_scores)))
j_by_shift = dict(zip(shifts, (j for j, _ in shift_scores)))
assert all(f_by_shift[s] == 1.0 for s in shifts if s <= radius), "F forgives errors within the radius"
assert all(j_by_shift[s] < 1.0 for s in shifts if s > 0), "J forgives nothing"
beyond = [f_by_shift[s] for s in shifts if s > radius]
assert beyond[0] < 1.0 and all(a > b for a, b in zip(beyond, beyond[1:])), "F drops once the shift exceeds r"
erosion_f = dict(zip(erosions, (f for _, f in erosion_scores)))
assert erosion_f[12] == 0.0 and dict(zip(erosions, (j for j, _ in erosion_scores)))[12] > 0.5
assert j_stats.decay > 0 and f_stats.decay > 0
print("all checks passed")
