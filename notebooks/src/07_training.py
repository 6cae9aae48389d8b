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
# **Time:** about 75 s in fast mode on 2 CPU cores, measured with `pytest --nbval` while another
# training job kept the cores busy (its own CPU time is about a minute; 240 training steps, each
# on two clips: clip A, then clip B with A's history). Full mode trains for hours.
#
# ## The equations
#
# This notebook runs the paper's **training** of VLP-RVOS: only the new modules are learned, CLIP stays
# frozen, and the loss is the mask objective of notebook 06. The optimiser, the schedule and the
# two-clip history training below are rvoslib's reading (each a `cfg.train` field).
#
# **Trainable and frozen.** Write the parameters as $\theta = (\theta_{\text{CLIP}}, \phi)$; only $\phi$ (prompt
# generator, stage-1 cross-attention and gates, fusion, spatio-temporal layers, head, history tokens)
# gets updates, $\theta_{\text{CLIP}}$ never does.
#
# **Objective of one step.** A batch holds $B$ clips of $T$ frames, $X \in \mathbb{R}^{B \times T \times 3 \times S \times S}$,
# their sentences and masks $Y \in \{0, 1\}^{B \times T \times S \times S}$. With two-clip history training, each
# video gives two consecutive clips $A$ and $B$; clip $B$ sees the history tokens
# $H_A \in \mathbb{R}^{B \times N_h \times D_v}$ pooled from $A$'s prediction, detached (no gradient flows back into $A$):
#
# $$
# \mathcal{L}_A = \mathcal{L}\big(f_\phi(X_A, \text{text}, H_0),\, Y_A\big), \qquad
# \mathcal{L}_B = \mathcal{L}\big(f_\phi(X_B, \text{text}, \operatorname{sg}[H_A]),\, Y_B\big)
# $$
#
# where $\mathcal{L}$ is notebook 06's weighted sum of BCE and Dice terms, $H_0$ the learned initial history
# and $\operatorname{sg}$ stop-gradient; `history_training="two-step"` (the presets) takes one optimiser step
# on $\mathcal{L}_A$, then one on $\mathcal{L}_B$.
#
# **Update.** Gradient clipping to norm $c$ (`clip_grad`), then AdamW with weight decay $\lambda$ on the
# weight matrices (not on biases, norms, gates or learned tokens):
#
# $$
# g \leftarrow g \cdot \min\!\left(1, \frac{c}{\lVert g \rVert_2}\right), \qquad
# \phi \leftarrow \operatorname{AdamW}(\phi, g;\ \eta_s, \lambda)
# $$
#
# **Schedule.** Step $s = 0, 1, \dots$ runs at $\eta_s = \eta_0 \cdot \rho(s)$ with linear warm-up over $w$ steps
# and a decay by $\gamma$ at each milestone $m_i$ (fractions of the $N$ steps, `lr_milestones`):
#
# $$
# \rho(s) = \min\!\left(1, \frac{s + 1}{w}\right) \cdot \gamma^{\,|\{i \,:\, s \ge \operatorname{round}(m_i N)\}|}
# $$
#
# with $\eta_0$ = `lr` for most parameters and `lr_prompt_head` for the prompt generator and the head.
# Section 3 recomputes $\eta_s$ from this formula and checks it against what the run logged.

# %%
from rvoslib.runtime import setup

rt = setup(seed=0)  # reads RVOSLIB_MODE = fast | full | auto (auto = full when CUDA is present);
# progress bars become text, which stay readable after the notebook is saved and reopened

from pathlib import Path

ROOT = rt.root  # the repository folder (the one holding data_samples/)
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
from rvoslib.model import build_model
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
    cfg.train.steps = 240  # training steps (the preset's 600 take about 2.5 minutes on 2 cores)
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

# %% [markdown]
# First a **baseline**: the same model before any training step (prompts and new modules at their
# initialisation, stage-1 gates closed, CLIP's weights loaded), scored on the validation split. Any
# training worth the name must beat it.

# %%
valid = read_ref_youtube_vos(Path(cfg.data.root) / cfg.data.val_split) if rt.fast else []
if valid:
    torch.manual_seed(t.seed)
    untrained = build_model(cfg.model).to(rt.device).eval()
    untrained_scores = evaluate_model(untrained, valid, device=rt.device, progress=False)
    print(f"untrained model on {cfg.data.val_split}: J&F {untrained_scores['J&F']:.3f} "
          f"over {untrained_scores['num_objects']} sentences")
    del untrained

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
# The schedule by hand: the log line of step $s$ (counted from 1) records the learning rates used by
# that step, i.e. $\eta_0 \rho(s - 1)$ in the notation of the equations. And the validation J&F along the
# run, next to the untrained baseline:

# %%
def rho(step, warmup, milestones, gamma, total):
    # learning-rate factor of the 0-based step `step` (the equation at the top)
    return min(1.0, (step + 1) / warmup) * gamma ** sum(step >= round(m * total) for m in milestones) if warmup else \
        gamma ** sum(step >= round(m * total) for m in milestones)


lr_errors = [abs(r["lr"]["base"] - t.lr * rho(r["step"] - 1, t.warmup_steps, t.lr_milestones, t.lr_gamma, t.steps))
             + abs(r["lr"]["prompt_head"] - t.lr_prompt_head * rho(r["step"] - 1, t.warmup_steps, t.lr_milestones,
                                                                  t.lr_gamma, t.steps))
             for r in train_lines]
print(f"largest |logged lr - formula| over {len(train_lines)} log lines: {max(lr_errors):.1e}")
val_curve = [(r["step"], r["val"]["J&F"]) for r in val_lines]
if val_lines:
    display(Markdown("| step | 0 (untrained) | " + " | ".join(str(s_) for s_, _ in val_curve) + " |\n"
                     + "|---" * (len(val_curve) + 2) + "|\n| validation J&F | "
                     + f"{untrained_scores['J&F']:.3f} | " + " | ".join(f"{v:.3f}" for _, v in val_curve) + " |"))

# %% [markdown]
# What to read in these curves:
#
# * the **loss** falls quickly, then slowly; it is noisy because every step sees 4 different clips
#   (in full mode, with 4 clips out of tens of thousands, smooth it over longer windows);
# * the **learning rate** warms up linearly, stays flat, then drops 10x at 80 % of the steps (the
#   prompt generator and the mask head use half the base rate);
# * the **gradient norm** is clipped to `train.clip_grad` before each update;
# * the **validation J&F** climbs, not monotonically: in fast mode from about 0.10 untrained to about
#   0.2 after 40 steps and about 0.42 at step 240, with a dip on the way (the table above). Where
#   the dip falls changes from machine to machine: two CPUs gave it at step 200 and at step 160
#   (floating-point sums run in another order on another CPU are the likely cause; not checked);
#   motion expressions (the referent has a look-alike twin that moves differently) and relation
#   expressions (the referent is defined by another object) are the hard kinds for a model this
#   small trained this briefly (best.pt, the last evaluation here: about 0.47-0.51 appearance, 0.32
#   relation, 0.17-0.26 motion on those two machines). Appearance and relation gain most of the
#   climb; motion J&F moves little from its first evaluation (about 0.2), by less than 0.1 either
#   way, while appearance gains 0.15 or more;
# * nothing breaks at the dotted line: the resumed run continues the same curves.
#
# `best.pt` holds the weights of the best validation J&F. It loads like any checkpoint (the frozen
# CLIP's weights come from `pretrained`); notebook 08 evaluates such a checkpoint in depth. Below, its
# scores on the validation split and its masks (cyan; the truth outlined in white) for two sentences
# of one validation clip: check whether a mask picks the *one* object its sentence means, or every
# object that looks like it. In this run both masks spread over all three red shapes of the clip:
# the colour word is read, the motion is not. Telling apart look-alikes by their motion needs the
# model to compare frames, which a few hundred steps on 24 videos do not teach.

# %%
if second["best_checkpoint"] is not None:
    trained, _ = model_from_checkpoint(second["best_checkpoint"], device=rt.device, pretrained=cfg.model.backbone.pretrained)
else:  # no validation (full mode without a labelled split): use the last weights
    trained = second["model"].eval()
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
# ## Summary
#
# * A run is one `Config`; `train` (or `rvoslib train`) learns only the new modules $\phi$ with AdamW,
#   clipped gradients and a warm-up / step-decay schedule, on two consecutive clips per video (the
#   second with the first's detached history).
# * `stop_after` and `resume=True` show that an interrupted run continues exactly: the log reads like
#   one run, the schedule continues where it stopped.
# * The log holds every loss term, the learning rates (which equal the schedule's formula) and the
#   validation scores; `best.pt` keeps the best validation J&F and re-scores to the same number.
# * In fast mode the tiny model beats its untrained self and its first evaluation; motion and
#   relation sentences stay the hard kinds, and motion barely moves in 240 steps.
#
# ## Exercises
#
# 1. **Predict, then run.** With `warmup_steps = 20` and `lr = 1e-3`, what learning rate does step 5 (the
#    sixth step) use? Check with `t.lr * rho(5, 20, t.lr_milestones, t.lr_gamma, t.steps)` and with
#    `rvoslib.schedule.lr_factor(5, t)`.
# 2. **Change one config field.** Set `cfg.train.lr_milestones = (0.5,)` and `cfg.train.steps = 80` in a
#    new temporary run folder, train, and find in its `log.jsonl` the first line whose learning rate is
#    10x lower. Predict it first: the 0-based step 40 = `round(0.5 * 80)` is the first decayed one, and
#    a line at step $s$ records step $s - 1$, every `log_every` = 10 steps.
# 3. **Re-derive.** At which logged step does the base learning rate first reach `t.lr`? Predict it from
#    $\rho$ (the warm-up ends when $s + 1 = w$; log lines come every `t.log_every` steps and record step
#    $s - 1$), then check with `next(r["step"] for r in train_lines if r["lr"]["base"] == t.lr)`.
# 4. **Predict, then run.** Does the untrained baseline depend on the seed? Rebuild it with
#    `torch.manual_seed(1)` and score it with `evaluate_model`: how far does its J&F move?

# %%
# Exercise 1, a starting point
from rvoslib.schedule import lr_factor

print(f"formula {t.lr * rho(5, t.warmup_steps, t.lr_milestones, t.lr_gamma, t.steps):.2e}   "
      f"library {t.lr * lr_factor(5, t):.2e}")

# %% [markdown]
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
# the learning rates the run used are the schedule's formula, warm-up, milestones and all
assert max(lr_errors) < 1e-12, max(lr_errors)
if t.eval_every:
    # validation ran on schedule, before and after the interruption
    assert [r["step"] for r in val_lines] == list(range(t.eval_every, t.steps + 1, t.eval_every))
if rt.fast:
    # training taught the model something: the best validation J&F beats the untrained model and the first
    # evaluation, and best.pt, re-scored here from disk, gives back the J&F the run logged for it
    assert second["best_jf"] > untrained_scores["J&F"] + 0.05, (second["best_jf"], untrained_scores["J&F"])
    assert second["best_jf"] > val_curve[0][1], (second["best_jf"], val_curve)
    assert abs(scores["J&F"] - second["best_jf"]) < 1e-3, (scores["J&F"], second["best_jf"])
    # what the text says of the kinds: motion and relation stay well below appearance; motion moves by less
    # than 0.1 from its first evaluation while appearance gains 0.15 or more
    first_val = val_lines[0]["val"]
    assert second["best_step"] == t.steps, second["best_step"]  # "best.pt, the last evaluation here"
    assert max(scores["J&F/motion"], scores["J&F/relation"]) < scores["J&F/appearance"] - 0.1, scores
    assert abs(scores["J&F/motion"] - first_val["J&F/motion"]) < 0.1, (scores, first_val)
    assert scores["J&F/appearance"] > first_val["J&F/appearance"] + 0.15, (scores, first_val)
    # the two masks drawn above: each covers a good part of every red shape in the frames shown
    red = [int(o) for o, a in record.extra["objects"].items() if a["colour"] == "red"]
    red_cover = [[(mask[i] & (record.load_mask(i, [o]) == 1)).sum() / (record.load_mask(i, [o]) == 1).sum()
                  for o in red for i in shown] for mask in result.masks]
    print("share of each red shape covered, per sentence:", np.round(red_cover, 2))
    assert len(red) == 3 and min(map(min, red_cover)) > 0.25, red_cover
    WORK.cleanup()  # the temporary run folder (set cfg.train.out_dir to e.g. "runs/tiny" to keep a run)
print("all checks passed")
