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
# # 09 · Ablations at toy scale
#
# An **ablation** removes or replaces one component and measures what is lost; it is how a paper
# shows that each of its ideas matters. The VLP-RVOS paper ablates its components on
# Ref-YouTube-VOS with ViT-B/16, starting from a "naive transfer" of CLIP (frozen, no prompts) and
# adding its ideas one by one. We ask the same questions at toy scale, on a CPU, with the tiny
# preset and the synthetic shapes:
#
# * **(a) vision-language pretraining**: is a *pretrained* frozen CLIP better than the same frozen
#   network with random weights? (notebook 02 showed what the pretrained one knows)
# * **(b) temporal-aware prompt tuning**: do the temporal prompts and their capture (notebook 03),
#   and the capture's time code, help on **motion** sentences, whose referent cannot be found from
#   one frame?
# * **(c) cube-frame attention**: does it reason over time (better than attention within frames) and
#   do as well as full attention (notebook 05)?
# * **(d) multi-stage VL relations**: does stage 1 (VL cross-attention inside the ViT, notebook 04)
#   add to the later stages? And do the **history** tokens help?
# * **the method vs naive transfer**: all of it together against frozen CLIP features with no
#   prompts and no stage 1.
#
# The full study is a script, `python -m benchmarks.ablations`: ten variants x 3 seeds x 500
# training steps, validated on a *hard* synthetic split where look-alike objects differ only in
# their motion, with two **controls** fixed before the runs. It writes `benchmarks/ablations.json`
# and the table in the README. This notebook
#
# 1. shows how a variant is just a config override (`rvoslib.config.apply_overrides`, the same as
#    `rvoslib train --set key=value`);
# 2. reads and plots the study's `benchmarks/ablations.json`; when the file is missing it runs a
#    **reduced** study live instead (3 variants x 1 seed x 120 steps on the small bundled
#    validation set: a demonstration of the method, far too small to conclude anything);
# 3. re-derives the study's statistics (controls, differences, intervals, verdicts) from the
#    per-seed numbers, and says what they show.
#
# **Needs:** CPU; `benchmarks/ablations.json` (committed; its runs used the 1800-step tiny CLIP
# shipped until session 18, not re-run on today's 7200-step one), or the bundled synthetic set and
# the shipped tiny pretrained CLIP for the live run. Two environment variables change the live run
# (the test suite uses them to run it in a micro configuration, so it cannot rot):
# `RVOSLIB_NB09_STUDY` (the study file to read; a missing path forces the live run) and
# `RVOSLIB_NB09_LIVE_STEPS` (steps per live run; default 120, 600 in full mode). Full mode
# (`RVOSLIB_MODE=full`) always runs the live study, with 3 seeds; it was not run where this
# notebook was written.
#
# **Time:** about 10 s with `benchmarks/ablations.json` (8 s measured on 2 CPU cores). The reduced
# live run took 57 s with an earlier set of three variants; it has not been re-timed with these.

# %%
from rvoslib.runtime import setup

rt = setup(seed=0)  # reads RVOSLIB_MODE = fast | full | auto (auto = full when CUDA is present);
# progress bars become text, which stay readable after the notebook is saved and reopened

from pathlib import Path

ROOT = rt.root  # the repository folder (the one holding data_samples/)
print(f"mode={rt.mode}  device={rt.device}  repository={ROOT}")

import json
import math
import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

from rvoslib import viz
from rvoslib.config import apply_overrides, get_preset
from rvoslib.engine import read_log, train
from rvoslib.runtime import TINY_CLIP_CHECKPOINT

if rt.fast:
    torch.set_num_threads(1)  # the tiny model's tensors are small: threads cost more than they bring on a CPU
DATA = ROOT / "data_samples"
TINY_CLIP = ROOT / TINY_CLIP_CHECKPOINT
# the full study's results (python -m benchmarks.ablations); a missing file makes this notebook train live
ABLATIONS_JSON = Path(os.environ.get("RVOSLIB_NB09_STUDY", ROOT / "benchmarks/ablations.json"))
LIVE_STEPS = int(os.environ.get("RVOSLIB_NB09_LIVE_STEPS", 120 if rt.fast else 600))
WORK = tempfile.TemporaryDirectory(prefix="rvoslib-nb09-")  # run folders; removed by the last cell
KINDS = ("appearance", "motion", "relation")

# %% [markdown]
# ## 1. A variant is a config override
#
# Every component that can be ablated is a config field (DESIGN: "keep each detail a config field
# so it can be ablated"). The base config is the tiny preset on top of the shipped tiny pretrained
# CLIP; each variant changes one thing (the last two change several fields at once, on purpose):
#
# | variant | override | question |
# |---|---|---|
# | full model | (none) | the baseline every variant is compared with |
# | random-init CLIP | `model.backbone.pretrained=None` | (a) what does vision-language pretraining bring? |
# | no temporal prompts | `model.prompts.use_temporal=False` | (b) do the temporal prompts (and their capture) help? |
# | capture without time code | `model.vision.capture_time_code=none` | (b) does the capture need to know the frames' order? |
# | frame-only attention | `model.spatiotemporal.attention=frame` | (c) does the reasoner need to look across frames? |
# | full attention | `model.spatiotemporal.attention=full` | (c) is cube-frame attention as good as attending to everything? |
# | no stage-1 | `model.vision.stage1=False` | (d) does VL cross-attention inside the ViT help? |
# | no history | `model.prompts.use_history=False` | do the history tokens from the previous clip help? |
# | no temporal pathway | no temporal prompts, frame-only attention, no history | negative control: can anything find motion without time? |
# | naive transfer | no vision, temporal, history or language prompts; no stage-1 | the paper's starting point: stages 2-3 on plain frozen CLIP features |
#
# The cell below builds the three variants the reduced live run trains; the study script,
# `benchmarks/ablations.py`, holds all ten in its `VARIANTS` dictionary.

# %%
NO_PROMPTS = ["model.prompts.use_vision=False", "model.prompts.use_temporal=False",
              "model.prompts.use_history=False", "model.prompts.use_language=False", "model.vision.stage1=False"]
VARIANTS = {
    "full model": [],
    "no temporal pathway": ["model.prompts.use_temporal=False", "model.spatiotemporal.attention=frame",
                            "model.prompts.use_history=False", "model.spatiotemporal.value_position=none"],
    "naive transfer": NO_PROMPTS,
}
SEEDS = [0] if rt.fast else [0, 1, 2]

base = get_preset("tiny")
base.model.backbone.pretrained = str(TINY_CLIP)
base.data.root = str(DATA / "synthetic")
base.train.steps = LIVE_STEPS
base.train.warmup_steps = min(15, LIVE_STEPS // 4)
base.train.eval_every = LIVE_STEPS  # one validation, at the end
base.train.ckpt_every = LIVE_STEPS
base.train.log_every = max(1, LIVE_STEPS // 12)
configs = {name: apply_overrides(base, overrides) for name, overrides in VARIANTS.items()}
for name, cfg in configs.items():
    m = cfg.model
    print(f"{name:20s} temporal prompts: {m.prompts.use_temporal!s:5s}  vision prompts: {m.prompts.use_vision!s:5s}  "
          f"stage-1: {m.vision.stage1!s:5s}  attention: {m.spatiotemporal.attention}")

# %% [markdown]
# ## 2. The results: from the full study's file, or a reduced live run
#
# The results are kept as `{variant: {metric: [one value per seed]}}`, with the metrics of the
# validation split (`J&F`, `J`, `F`, `J&F/appearance`, `J&F/motion`, `J&F/relation`). The full
# study's file is read when it exists and has that shape under a `"variants"` key (in fast mode;
# full mode always trains); otherwise the reduced study runs here: each variant trains for
# `LIVE_STEPS` steps per seed with `rvoslib.engine.train` into a temporary run folder and is
# validated at the end on `data_samples/synthetic/valid`.

# %%
def read_study(path):
    # the study's JSON as a dict, or None when it is missing or has no {variant: {metric: [values]}}
    if not path.is_file():
        return None
    try:
        study_file = json.loads(path.read_text())
        for metrics in study_file["variants"].values():
            assert all(isinstance(v, list) for v in metrics.values())
        return study_file
    except (KeyError, TypeError, ValueError, AttributeError, AssertionError) as err:
        print(f"{path} exists but is not {{'variants': {{variant: {{metric: [values]}}}}}} ({err!r}); running live")
        return None


study_file = read_study(ABLATIONS_JSON) if rt.fast else None
from_file = study_file is not None
runs = {}  # variant -> list of (seed, run folder, validation metrics) of the live run
if from_file:
    study = {name: {m: v for m, v in metrics.items() if m.startswith(("J", "F"))}
             for name, metrics in study_file["variants"].items()}
    source = f"{ABLATIONS_JSON.name}: {len(study_file['settings']['seeds'])} seeds x {study_file['settings']['steps']} steps"
else:
    study = {}
    for name, cfg in configs.items():
        for seed in SEEDS:
            cfg.train.seed = seed
            cfg.train.out_dir = str(Path(WORK.name) / f"{name.replace(' ', '-')}-seed{seed}")
            print(f"--- {name}, seed {seed}")
            summary = train(cfg, device=rt.device)
            runs.setdefault(name, []).append((seed, cfg.train.out_dir, summary["last_val"]))
            for metric, value in summary["last_val"].items():
                if metric != "num_objects":
                    study.setdefault(name, {}).setdefault(metric, []).append(value)
    source = f"live reduced run: {len(SEEDS)} seed(s) x {LIVE_STEPS} steps"
reference = study_file.get("reference", {}) if from_file else {}
print("results from", source)

# %%
metric_names = ["J&F", *[f"J&F/{k}" for k in KINDS]]
rows = ["| variant | " + " | ".join(metric_names) + " |", "|---" * (len(metric_names) + 1) + "|"]
for name, metrics in study.items():
    cells = []
    for m in metric_names:
        values = metrics.get(m, [])
        spread = f" ± {np.std(values, ddof=1):.3f}" if len(values) > 1 else ""
        cells.append(f"{np.mean(values):.3f}{spread}" if values else "n/a")
    rows.append(f"| {name} | " + " | ".join(cells) + " |")
if reference:
    rows.append("| *motion-blind reference* | " + " | ".join(f"{reference[m]:.3f}" if m in reference else "n/a"
                                                         for m in metric_names) + " |")
display(Markdown(f"**J&F on the validation split** ({source}; mean ± sample std over seeds)\n\n" + "\n".join(rows)))

fig, ax = plt.subplots(figsize=(12, 4), layout="constrained")
plt.close(fig)
width = 0.8 / len(study)
colours = plt.get_cmap("tab20").colors
for i, (name, metrics) in enumerate(study.items()):
    means = [np.mean(metrics[m]) if metrics.get(m) else np.nan for m in metric_names]
    errors = [np.std(metrics[m], ddof=1) if len(metrics.get(m, [])) > 1 else 0 for m in metric_names]
    x = np.arange(len(metric_names)) + (i - (len(study) - 1) / 2) * width
    ax.bar(x, means, width, yerr=errors, label=name, capsize=2, color=colours[i % len(colours)])
    for seed_values, xi in zip([metrics.get(m, []) for m in metric_names], x):
        ax.plot([xi] * len(seed_values), seed_values, "k.", ms=3)
for j, m in enumerate(metric_names):  # the study's motion-blind reader (perfect masks, random look-alike)
    if m in reference:
        ax.hlines(reference[m], j - 0.45, j + 0.45, colors="k", linestyles="--", lw=1,
                  label="motion-blind reference" if j == 0 else None)
ax.set_xticks(range(len(metric_names)), ["overall", *KINDS])
top = max(max(v) for metrics in study.values() for m, v in metrics.items() if m in metric_names and v)
ax.set(ylabel="validation J&F", ylim=(0, 1.05 if reference else min(1.0, 1.3 * top)),
       title=f"ablations at toy scale ({source})")
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
ax.grid(axis="y", alpha=0.3)
fig

# %% [markdown]
# The dashed lines are the **motion-blind reference**: not a model, but the exact expected score of a
# reader that knows every object's size, colour and shape perfectly, ignores motion, and outputs the
# true masks of one of the target's look-alikes at random. It scores 1.0 on appearance sentences
# (perfect masks of a unique object) and about $1/k$ on motion sentences with $k$ look-alikes. A model
# *above* it on motion sentences must be using time.
#
# ## 3. Controls, differences, verdicts
#
# **Controls first.** A study can only judge claims about temporal reasoning if it can see temporal
# reasoning at all, and if nothing else gives the answer away. So two checks were fixed before the
# runs: the full model must be *clearly above* the reference on motion sentences (positive control),
# and the variant with no temporal pathway must *not* be (negative control: no answer leaks through
# position or other per-frame cues). For a variant with per-seed values $x_1..x_n$ and the reference
# $r$ (an exact number, no noise):
#
# $$\Delta = \bar x - r, \qquad \mathrm{s.e.} = s_x / \sqrt{n}, \qquad \text{clearly above} \iff \Delta > 2\,\mathrm{s.e.}$$
#
# **Claims.** Each claim compares two variants $A$ (should be better) and $B$ on one metric, with
# $n_A, n_B$ seeds and sample standard deviations $s_A, s_B$:
#
# $$\Delta = \bar x_A - \bar x_B, \qquad \mathrm{s.e.} = \sqrt{s_A^2/n_A + s_B^2/n_B}, \qquad
#   \text{interval} = [\Delta - 2\,\mathrm{s.e.},\ \Delta + 2\,\mathrm{s.e.}]$$
#
# "reproduced": the interval lies above 0 ("as good as" claims: it does not lie below 0);
# "not reproduced": it contains 0; "contradicted": it lies below 0. A claim about a temporal
# component is "not testable here" when a control failed: its numbers are shown, but no verdict is
# drawn. With 3 seeds, $\pm 2$ s.e. is narrower than a Student-$t$ 95% interval (exercise 3), so a
# borderline verdict is a lead, not a result.
#
# The cell below re-derives all of it from the per-seed values above and shows the study's file
# beside it.

# %%
def mean_se(values):
    values = np.asarray(values, dtype=float)
    return values.mean(), (values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else math.nan)


def compare(a, b):
    # difference of means and its standard error (Welch's, without the t quantile)
    (ma, sa), (mb, sb) = mean_se(a), mean_se(b)
    return ma - mb, math.sqrt(sa ** 2 + sb ** 2)


controls = study_file.get("controls", []) if from_file else []
verdicts = study_file.get("verdicts", []) if from_file else []
lines = ["| control | variant | value | reference | difference ± s.e. | result |", "|---|---|---|---|---|---|"]
for c in controls:
    mean, se = mean_se(study[c["variant"]][c["metric"]])
    lines.append(f"| {c['name']}: {c['text']} | {c['variant']} | {mean:.3f} | {c['reference']:.3f} | "
                 f"{mean - c['reference']:+.3f} ± {se:.3f} | **{'passed' if c['passed'] else 'FAILED'}** |")
controls_ok = bool(controls) and all(c["passed"] for c in controls)
lines += ["", "| claim | comparison | metric | difference [± 2 s.e.] | motion | appearance | verdict |",
          "|---|---|---|---|---|---|---|"]
for v in verdicts:
    delta, se = compare(study[v["better"]][v["metric"]], study[v["worse"]][v["metric"]])
    kinds = []
    for kind in ("motion", "appearance"):
        d, e = compare(study[v["better"]][f"J&F/{kind}"], study[v["worse"]][f"J&F/{kind}"])
        kinds.append(f"{d:+.3f} ± {e:.3f}")
    lines.append(f"| ({v['claim']}) {v['text']} | {v['better']} vs {v['worse']} | {v['metric']} | "
                 f"{delta:+.3f} [{delta - 2 * se:+.3f}, {delta + 2 * se:+.3f}] | " + " | ".join(kinds)
                 + f" | **{v['verdict']}** |")
display(Markdown("\n".join(lines) if verdicts else "(live reduced run: one seed, no controls and no verdicts)"))

# %% [markdown]
# The training losses of the live runs (the sum of all loss terms, averaged between log lines), when
# the study ran here:

# %%
if runs:
    curves = []
    for name, folders in runs.items():
        for seed, folder, _ in folders:
            curves += [{"step": r["step"], f"{name} (seed {seed})": r["loss_avg"]} for r in read_log(folder) if "loss" in r]
    series = list(dict.fromkeys(k for row in curves for k in row if k != "step"))  # variant order: colours as above
    fig = viz.plot_curves(curves, keys=[series], figsize=(9, 3.4))
    fig.axes[0].set(ylabel="training loss", title="training loss per variant")
    display(fig)
else:
    print("(results read from the study's file: no live training curves)")

# %% [markdown]
# ### What the study shows
#
# **The study's file** (10 variants x 3 seeds x 500 steps, the hard validation split): the study
# cannot test the paper's claims yet, and its controls say so. The **positive control failed**: the
# full model scores about 0.34 on motion sentences, about 0.09 *below* the motion-blind reference
# (0.43), so the study cannot see temporal reasoning, and every temporal claim is "not testable
# here" (its numbers are still in the table). All ten variants lie within about 0.015 J&F of each
# other, inside the seed-to-seed noise, and every one is below the reference on every kind of
# sentence, appearance included (about 0.31-0.40 where the reference scores 1.0). After 500 steps
# (about 3 CPU-minutes per run) the tiny models have not learned to ground colour, shape and size or
# to draw clean masks, so the components under test have nothing to show. The one hint: the
# pretrained CLIP is ahead of random weights on *appearance* sentences (about +0.07 with a standard
# error of 0.02), which is where notebook 02 says its tokens carry information; it is a per-kind
# comparison, not the planned metric, so it is a lead. The "as good as full attention" verdict is
# "reproduced" only because nothing here can be told apart. The README discusses each claim.
#
# **The reduced live run** (one seed, 120 steps), when it runs: its bars differ by amounts that a
# different seed can produce on its own; do not read a winner into them. It shows the method (one
# override per variant, the same data, schedule and validation), not a result.
#
# ## Summary
#
# * An ablation is one config override away from the full model, trained with the same data, steps
#   and seeds; a claim is a comparison of two variants on one metric, judged by the difference of
#   their means against twice its standard error.
# * Controls come first: the motion-blind reference says what perfect appearance grounding alone
#   scores, the full model must beat it on motion sentences for temporal claims to be testable, and
#   a model with no temporal pathway must not (or the toy world leaks the answer).
# * At 500 steps per run the toy study is a negative result about its own power: the positive
#   control fails, so no temporal claim is testable, and the non-temporal ones (pretraining,
#   stage 1, the method vs naive transfer) are not reproduced. Reporting that plainly is the point
#   of fixing the controls before the runs.
#
# ## Exercises
#
# 1. **Predict, then run.** Before running: if the study had only seeds 0 and 1, would claim (a)'s
#    verdict change? Recompute `compare(...)` for it with `study[name]["J&F"][:2]` and see.
# 2. **Change one config field.** Build the "capture without time code" variant with
#    `apply_overrides(base, ["model.vision.capture_time_code=none"])` and check which field changed
#    (`cfg.model.vision.capture_time_code`); then try an override with a typo in the key and read
#    the error.
# 3. **Re-derive a stricter interval.** With $n = 3$ seeds per variant, Welch's degrees of freedom
#    are $\nu = \mathrm{s.e.}^4 / \big((s_A^2/n_A)^2/(n_A-1) + (s_B^2/n_B)^2/(n_B-1)\big)$, between 2
#    and 4; the 95% Student-$t$ quantile is 4.30 for $\nu=2$ and 2.78 for $\nu=4$. Compute $\nu$ and
#    the $t$ interval for each claim: which verdicts survive?
# 4. **Run the live path.** Restart the kernel with `RVOSLIB_NB09_STUDY=/nonexistent` in the
#    environment (and `RVOSLIB_NB09_LIVE_STEPS=60` to be quick): the notebook trains the three
#    variants of section 1 here. Do their bars agree with the study's order?
#
# ## Checks
#
# What must hold whichever way the results fall: every variant was measured; the study's file
# agrees with the per-seed values it holds (its differences, standard errors and control results
# are re-derived above, independently); a live run trained each variant for the planned steps and
# scored it once.

# %%
assert set(study) >= set(VARIANTS), set(study)
for name in VARIANTS:
    assert all(math.isfinite(v) for v in study[name]["J&F"]), name
if from_file:
    assert all(len(metrics["J&F"]) >= 3 for metrics in study.values())  # >= 3 seeds per variant
    assert len({r["settings"]["steps"] for r in study_file["runs"]}) == 1  # one budget for every run
    assert len(controls) == 2 and verdicts
    for c in controls:  # the notebook's re-derivation of each control gives the file's result
        mean, se = mean_se(study[c["variant"]][c["metric"]])
        clearly_above = mean - c["reference"] > 2 * se
        assert clearly_above == (c["passed"] if c["name"] == "positive" else not c["passed"]), c
    for v in verdicts:  # ... and of each claim's difference, standard error and verdict
        delta, se = compare(study[v["better"]][v["metric"]], study[v["worse"]][v["metric"]])
        assert abs(delta - v["delta"]) < 1e-9 and abs(se - v["se"]) < 1e-9, v
        clear = abs(delta) > 2 * se
        if v["temporal"] and not controls_ok:
            assert v["verdict"] == "not testable here", v
        elif v["text"].endswith("as good as full attention"):
            assert v["verdict"] == ("contradicted" if clear and delta < 0 else "reproduced"), v
        else:
            assert v["verdict"] == ("reproduced" if clear and delta > 0 else "contradicted" if clear
                                    else "not reproduced"), v
if from_file:  # the prose above describes this file: the positive control failed, the negative passed, the
    by_name = {c["name"]: c for c in controls}  # variants lie close together, all below the reference
    assert not by_name["positive"]["passed"] and by_name["negative"]["passed"]
    means = [np.mean(m["J&F"]) for m in study.values()]
    assert max(means) - min(means) < 0.02
    for kind in KINDS:
        assert all(np.mean(m[f"J&F/{kind}"]) < reference[f"J&F/{kind}"] for m in study.values()), kind
    appearance = next(v for v in verdicts if v["worse"] == "random-init CLIP")["per_kind"]["appearance"]
    assert appearance["delta"] > 2 * appearance["se"]  # the lead on appearance sentences
if runs:  # the live run trained every variant for the planned number of steps, for every seed, and
    for name, folders in runs.items():  # its table shows the validation the training log recorded
        assert len(folders) == len(SEEDS)
        for seed, folder, last_val in folders:
            records = read_log(folder)
            assert max(r["step"] for r in records if "loss" in r) == LIVE_STEPS
            logged = [r["val"] for r in records if "val" in r]
            assert len(logged) == 1 and logged[0]["J&F"] == last_val["J&F"] == study[name]["J&F"][SEEDS.index(seed)]
WORK.cleanup()  # the temporary run folders
print("all checks passed")
