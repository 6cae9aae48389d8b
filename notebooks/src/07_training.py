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
# # 07 · Training
#
# Notebooks 03-06 built the model piece by piece with untrained weights. Here we train it with
# `rvoslib.engine.train`, the same function behind `rvoslib train`. You will
#
# 1. see what a training run is made of: a `Config`, a dataset on disk, a run folder;
# 2. train the tiny model on the bundled synthetic shapes on the CPU, **interrupt** it halfway and
#    **resume** it from its checkpoint, as you would after a crash or a preempted GPU job;
# 3. read the run's `log.jsonl` and plot the loss, the learning-rate schedule and the validation J&F;
# 4. learn the commands that train the real model (clip-b16: ViT-B/16 with OpenAI weights) on a real
#    dataset on one or several GPUs.
#
# **Needs:** fast mode: CPU, the bundled `data_samples/synthetic` set (24 training videos, 8 validation
# videos) and the shipped tiny pretrained CLIP. Full mode (`RVOSLIB_MODE=full`): a GPU, open_clip's
# ViT-B/16 OpenAI weights in the local cache (or a weights file), and a real dataset (default:
# Ref-YouTube-VOS under `data/ref-youtube-vos`, see section 4); it could not be run where this
# notebook was written (no GPU, no data, no weights offline).
#
# **Time:** about 90 s in fast mode on 2 CPU cores (240 training steps, each on two clips: clip A, then clip B
# with A's history). Full mode
# trains for hours.

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

import json
import os
import tempfile

import numpy as np
import torch
from IPython.display import Markdown, display

from rvoslib import viz
from rvoslib.checkpoint import load_checkpoint, model_from_checkpoint
from rvoslib.config import get_preset
from rvoslib.data import read_ref_youtube_vos
from rvoslib.engine import read_log, train
from rvoslib.evaluate import evaluate_model
from rvoslib.inference import segment_video
from rvoslib.runtime import TINY_CLIP_CHECKPOINT

if rt.fast:
    torch.set_num_threads(1)  # the tiny model's tensors are small: threads cost more than they bring on a CPU
DATA = ROOT / "data_samples"
TINY_CLIP = ROOT / TINY_CLIP_CHECKPOINT

# %% [markdown]
# ## 1. A run is a config
#
# Everything about an experiment is one `rvoslib.config.Config`: the model (`cfg.model`), the loss
# weights (`cfg.loss`), the dataset (`cfg.data`: root folder, format, splits, augmentation) and the
# optimisation (`cfg.train`: steps, batch size, learning rates, schedule, how often to log, evaluate
# and checkpoint, and `out_dir`, the run folder). Presets give a complete starting point; the
# command line changes fields with `--set section.field=value` (`rvoslib.config.apply_overrides`).
#
# Fast mode: the **tiny** preset, on top of the shipped tiny pretrained CLIP, on the bundled
# synthetic shapes, a few hundred steps, in a temporary run folder. Full mode: the **clip-b16**
# preset on a real dataset (paths from the environment variables `RVOSLIB_DATA` and `RVOSLIB_RUN`).

# %%
if rt.fast:
    cfg = get_preset("tiny")
    cfg.model.backbone.pretrained = str(TINY_CLIP)  # the frozen CLIP's weights: our tiny VLP model
    cfg.data.root = str(DATA / "synthetic")  # train/ and valid/ in Ref-YouTube-VOS layout
    cfg.train.steps = 240  # training steps (the preset's 600 take about 3.5 minutes on 2 cores)
    cfg.train.eval_every = 40  # J&F on data/synthetic/valid every 40 steps
    cfg.train.ckpt_every = 40  # last.pt every 40 steps
    WORK = tempfile.TemporaryDirectory(prefix="rvoslib-nb07-")  # removed by the last cell
    cfg.train.out_dir = WORK.name
else:
    cfg = get_preset("clip-b16")  # ViT-B/16, pretrained="openai", S=352, T=6
    cfg.data.root = os.environ.get("RVOSLIB_DATA", str(ROOT / "data/ref-youtube-vos"))
    cfg.data.format = "ytvos"
    cfg.data.num_workers = 8
    cfg.train.out_dir = os.environ.get("RVOSLIB_RUN", str(ROOT / "runs/b16"))
    cfg.train.batch_size, cfg.train.grad_accum = 1, 4  # the paper's 4 clips per step on one GPU
    cfg.train.steps = 40_000  # about 12 epochs of Ref-YouTube-VOS's 12.9k expressions at 4 clips per step
    cfg.train.ckpt_every = 1000
    cfg.train.eval_every = 0  # Ref-YouTube-VOS valid has no public masks: score Ref-DAVIS17 afterwards (notebook 08)
t = cfg.train
print(f"model {cfg.model.backbone.model_name} (CLIP weights: {cfg.model.backbone.pretrained}), "
      f"S={cfg.model.backbone.image_size}, T={cfg.model.num_frames}")
print(f"data  {cfg.data.root} ({cfg.data.format}: {cfg.data.train_split} / {cfg.data.val_split})")
print(f"train {t.steps} steps x {t.batch_size * t.grad_accum} clips, lr {t.lr:g} (prompts and head {t.lr_prompt_head:g}), "
      f"warm-up {t.warmup_steps} steps, x{t.lr_gamma:g} at {[int(m * t.steps) for m in t.lr_milestones]}")
print(f"every {t.log_every} steps a log line, every {t.eval_every} steps validation, every {t.ckpt_every} steps last.pt")
print("run folder", t.out_dir)

# %% [markdown]
# ## 2. Train, get interrupted, resume
#
# Each step draws `batch_size` clips of T frames (random frames with random gaps, random flips that
# also swap "left" and "right" in the sentence, colour jitter), runs the model, computes the loss of
# notebook 06 (BCE + Dice on the main mask, the auxiliary masks and the pixel-text map), and updates
# **only the trainable parameters** with AdamW; CLIP stays frozen. The progress bar shows the loss
# and the learning rate.
#
# Training jobs die: a preempted GPU, a full disk, a closed laptop. `train(..., stop_after=k)` stops
# after step k exactly as an interruption would, so we can show the cure. `last.pt`, written
# atomically every `ckpt_every` steps, holds the weights **and** the optimizer, the schedule, the
# random generators' states and the step; `resume=True` continues from it. The batches are a pure
# function of (seed, step), so the resumed run sees exactly the data the uninterrupted run would have
# seen.

# %%
INTERRUPT_AT = t.steps // 2  # a multiple of ckpt_every: the interruption loses no step
resume_old_run = not rt.fast and (Path(t.out_dir) / "last.pt").exists()  # full mode: never overwrite a long run
first = train(cfg, device=rt.device, stop_after=INTERRUPT_AT, resume=resume_old_run)
print(f"stopped after {first['steps']} steps (stopped={first['stopped']}), last loss {first['last_loss']:.3f}, "
      f"{first['wall_s']:.0f} s")
print("run folder:", sorted(p.name for p in Path(t.out_dir).iterdir()))
state = load_checkpoint(Path(t.out_dir) / "last.pt")
print("last.pt holds:", {k: (v if k == "step" else type(v).__name__) for k, v in state.items() if k != "config"})

# %% [markdown]
# The checkpoint stores only the **trainable** weights (CLIP's are on disk already, and identical).
# Now resume: the bar starts where the last run stopped.

# %%
second = train(cfg, device=rt.device, resume=True)
print(f"resumed at step {state['step']} and trained to step {second['steps']}; last loss {second['last_loss']:.3f}; "
      f"best validation J&F {second['best_jf'] if second['best_jf'] is not None else float('nan'):.3f} "
      f"at step {second['best_step']}")

# %% [markdown]
# ## 3. Reading the run's log
#
# `log.jsonl` has one JSON object per line: training lines every `log_every` steps (`loss` of that
# step, `loss_avg` since the previous line, the learning rates, every loss term and the gradient
# norm), validation lines every `eval_every` steps (`val`: J&F, J, F and J&F per expression kind),
# and `time` / `cpu_s`, summed over the resumed sessions. On resume the log is cut back to the
# checkpoint's step, so it reads like one uninterrupted run.

# %%
log = read_log(t.out_dir)
train_lines = [r for r in log if "loss" in r]
val_lines = [r for r in log if "val" in r]
print(f"{len(train_lines)} training lines, {len(val_lines)} validation lines; a training line:")
print(json.dumps(train_lines[-1], indent=None)[:400], "...")
if val_lines:
    print("a validation line:\n" + json.dumps(val_lines[-1])[:400])

rows = []
for r in log:
    row = {"step": r["step"]}
    if "loss" in r:
        row.update({"loss (mean since last line)": r["loss_avg"], "lr": r["lr"]["base"],
                    "lr prompts/head": r["lr"]["prompt_head"], "grad norm (before clipping)": r["terms"]["grad_norm"]})
    if "val" in r:
        row.update({k: v for k, v in r["val"].items() if k.startswith("J&F")})
    rows.append(row)
kinds = sorted({k for row in rows for k in row if k.startswith("J&F/")})
keys = ["loss (mean since last line)", ["lr", "lr prompts/head"], "grad norm (before clipping)"]
if val_lines:
    keys.append(["J&F", *kinds])
fig = viz.plot_curves(rows, keys=keys, ncols=4, figsize=(17, 3.4))
for ax in fig.axes:
    ax.axvline(INTERRUPT_AT, color="grey", ls=":", lw=1)
fig.axes[1].set_yscale("log")
fig.suptitle("dotted line: where the run was interrupted and resumed", fontsize=9, y=1.02)
fig

# %% [markdown]
# What to read in these curves:
#
# * the **loss** falls quickly, then slowly; it is noisy because every step sees 4 different clips
#   (in full mode, with 4 clips out of tens of thousands, smooth it over longer windows);
# * the **learning rate** warms up linearly, stays flat, then drops 10x at 80 % of the steps (the
#   prompt generator and the mask head use half the base rate);
# * the **gradient norm** is clipped to `train.clip_grad` before each update;
# * the **validation J&F** climbs; motion expressions (the referent has a look-alike twin that moves
#   differently) and relation expressions (the referent is defined by another object) are the hard
#   kinds for a model this small trained this briefly;
# * nothing breaks at the dotted line: the resumed run continues the same curves.
#
# `best.pt` holds the weights of the best validation J&F. It loads like any checkpoint (the frozen
# CLIP's weights come from `pretrained`); notebook 08 evaluates such a checkpoint in depth. Below, its
# scores on the validation split and its masks (cyan; the truth outlined in white) for two sentences
# of one validation clip: check whether a mask picks the *one* object its sentence means, or every
# object that looks like it. Telling apart look-alikes by their motion needs the model to compare
# frames, which a few hundred steps on 24 videos teach only partly.

# %%
if second["best_checkpoint"] is not None:
    trained, _ = model_from_checkpoint(second["best_checkpoint"], device=rt.device, pretrained=cfg.model.backbone.pretrained)
else:  # no validation (full mode without a labelled split): use the last weights
    trained = second["model"].eval()
valid = read_ref_youtube_vos(Path(cfg.data.root) / cfg.data.val_split) if rt.fast else []
if valid:
    scores = evaluate_model(trained, valid, device=rt.device, progress=False)
    display(Markdown("| | " + " | ".join(k for k in scores if k != "num_objects") + " |\n"
                     + "|---" * len(scores) + "|\n| best.pt on valid | "
                     + " | ".join(f"{v:.3f}" for k, v in scores.items() if k != "num_objects") + " |"))
    record = valid[0]
    result = segment_video(record.frame_paths[0].parent, [e.text for e in record.expressions[:2]], trained,
                           device=rt.device, progress=False)
    shown = [0, 4, 8, 11]
    frames = record.load_frames(shown)
    tiles = []
    for mask, expression in zip(result.masks, record.expressions):
        gt = np.stack([record.load_mask(i, expression.obj_ids) == 1 for i in shown])
        filled = viz.overlay_masks(frames, mask[shown], colors=[(0, 255, 255)], alpha=0.55)
        tiles.append(viz.overlay_masks(filled, gt, colors=[(255, 255, 255)], alpha=0.0))  # truth: white outline
    titles = [f"t={s}" + (f"\n{sentence!r}" if s == 0 else "") for sentence in result.sentences for s in shown]
    fig = viz.show_frames(np.concatenate(tiles), titles=titles, ncols=len(shown), figsize=(10, 6.0))
    display(fig)

# %% [markdown]
# ## 4. Training the real model (full mode, GPU)
#
# ### Data
#
# Download Ref-YouTube-VOS from the challenge site (youtube-vos.org, "Referring VOS"; registration
# required) and keep the release layout; `rvoslib` reads it as it is:
#
# ```
# data/ref-youtube-vos/
#   train/JPEGImages/<video>/<frame>.jpg
#   train/Annotations/<video>/<frame>.png          palette PNG, pixel value = object id
#   valid/JPEGImages/<video>/<frame>.jpg           (no public masks: scored by the challenge server)
#   meta_expressions/train/meta_expressions.json
#   meta_expressions/valid/meta_expressions.json
# ```
#
# Other formats: `--format mevis` (MeViS: `mask_dict.json` RLE masks, read with pycocotools),
# `--format davis` (Ref-DAVIS17: DAVIS folders plus the expression files), `--format a2d`
# (A2D-Sentences). The same folder layout, generated, is what `data_samples/synthetic` is.
#
# ### CLIP weights
#
# `pretrained="openai"` is resolved by open_clip: the weights come from its cache, or are downloaded
# once (about 600 MB for ViT-B/16). On a machine without network access, download them elsewhere and
# pass the file: `--set model.backbone.pretrained=/path/to/ViT-B-16.pt`. rvoslib fails at once with
# a clear message when neither works.
#
# ### One GPU
#
# ```bash
# rvoslib train --preset clip-b16 --data data/ref-youtube-vos --out runs/b16 \
#     --set train.steps=40000 --set train.grad_accum=4 --set train.eval_every=0 --set data.num_workers=8
# ```
#
# bf16 autocast is on by default on GPUs that support it (`train.amp=auto`); if memory is short, add
# `--set model.backbone.grad_checkpointing=True` (recomputes the frozen CLIP blocks in the backward
# pass) or lower `model.num_frames`. The progress bar shows the loss and the learning rate;
# `runs/b16/` receives `log.jsonl`, `config.json`, `last.pt` every `ckpt_every` steps and `best.pt`
# whenever the validation J&F improves (with a labelled validation split).
#
# ### Resume
#
# Run the same command with `--resume` (or `train(cfg, resume=True)`): it continues from
# `runs/b16/last.pt` exactly where it stopped; `--resume path/to/ckpt.pt` picks another checkpoint.
# Changing the model config on resume is refused; changing paths or logging intervals is fine.
#
# ### Several GPUs
#
# ```bash
# torchrun --nproc_per_node 4 -m rvoslib.cli train --preset clip-b16 --data data/ref-youtube-vos --out runs/b16 \
#     --set train.steps=40000 --set train.eval_every=0
# ```
#
# Each process trains on its share of every global batch (`batch_size x grad_accum x world size`
# clips per step) with DistributedDataParallel; process 0 alone logs, evaluates and writes
# checkpoints. (Here: 1 clip x 4 GPUs = the paper's 4 clips per step.)
#
# ### The same from Python
#
# Exactly what the cells above do, with the full-mode config of section 1:
#
# ```python
# from rvoslib.config import get_preset
# from rvoslib.engine import train
#
# cfg = get_preset("clip-b16")
# cfg.data.root = "data/ref-youtube-vos"
# cfg.train.out_dir = "runs/b16"
# cfg.train.steps, cfg.train.grad_accum, cfg.train.eval_every = 40_000, 4, 0
# summary = train(cfg, device="cuda")             # resume=True to continue runs/b16/last.pt
# print(summary["last_checkpoint"], summary["best_jf"])
# ```
#
# A run of many hours is better started from a terminal or a job scheduler than from a notebook
# cell; this notebook can then read its `log.jsonl` (section 3) while it runs. Then evaluate on
# Ref-DAVIS17 or write a Ref-YouTube-VOS submission (notebook 08) and segment your
# own videos (notebook 10). The paper reports J&F 59.7 on Ref-YouTube-VOS valid and 60.3 on
# Ref-DAVIS17 with ViT-B/16 (62.9 and 65.1 after pretraining on RefCOCO/+/g images, which rvoslib
# does not provide a reader for).
#
# ## Checks

# %%
# the interruption stopped where asked, and the resumed run continued from that step to the end
if rt.fast:  # (full mode may have resumed an older, longer run in RVOSLIB_RUN)
    assert first["stopped"] and first["steps"] == INTERRUPT_AT
assert state["step"] == first["steps"]
assert not second["stopped"] and second["steps"] == t.steps
steps = [r["step"] for r in train_lines]
assert steps == sorted(set(steps)), "no step is logged twice or out of order"
assert steps == list(range(t.log_every, t.steps + 1, t.log_every)), "no step is missing around the resume"
assert load_checkpoint(Path(t.out_dir) / "last.pt")["step"] == t.steps
# the loss went down
losses = [r["loss_avg"] for r in train_lines]
assert np.mean(losses[-3:]) < np.mean(losses[:3]), losses
assert all(np.isfinite(losses))
if t.eval_every:
    # validation ran on schedule, before and after the interruption, with finite scores in [0, 1]
    assert [r["step"] for r in val_lines] == list(range(t.eval_every, t.steps + 1, t.eval_every))
    assert all(0.0 <= r["val"]["J&F"] <= 1.0 for r in val_lines)
if rt.fast:
    assert 0.0 <= scores["J&F"] <= 1.0 and scores["num_objects"] > 0
    WORK.cleanup()  # the temporary run folder (set cfg.train.out_dir to e.g. "runs/tiny" to keep a run)
print("all checks passed")
