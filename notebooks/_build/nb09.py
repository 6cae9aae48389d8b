"""Generator of notebooks/09_ablations.ipynb (run: python notebooks/_build/nb09.py)."""

from nbbuild import Notebook, setup_cell

nb = Notebook("09_ablations.ipynb")

nb.md(r"""
# 09 · Ablations at toy scale

An **ablation** removes or replaces one component and measures what is lost; it is how a paper
shows that each of its ideas matters. The VLP-RVOS paper ablates its components on
Ref-YouTube-VOS with ViT-B/16; we can ask the same questions at toy scale, on a CPU, with the
tiny preset and the synthetic shapes:

* **VLP init vs random init**: is a vision-language *pretrained* frozen CLIP better than the same
  frozen network with random weights? (notebook 02 showed what the pretrained one knows)
* **temporal prompts vs none**: do the temporal prompts (notebook 03) help, above all for
  **motion** expressions, whose referent cannot be found from one frame?

This notebook

1. shows how a variant is just a config override (`rvoslib.config.apply_overrides`, the same as
   `rvoslib train --set key=value`);
2. if the full study's results file `benchmarks/ablations.json` exists, plots it; otherwise runs a
   **reduced** study live: 3 variants x 1 seed x 120 training steps;
3. plots J&F per variant, overall and per kind of expression, and the training losses.

**Be warned:** the reduced live run is far too small to conclude anything. One seed, 120 steps
and 29 validation expressions give differences that are within run-to-run noise; it shows how the
study is done, not its result. The full study (several seeds, longer training, a larger and harder
validation set with look-alike objects) is meant to live in `benchmarks/ablations.py`, writing
`benchmarks/ablations.json`, which this notebook then plots instead.

**Needs:** CPU; the bundled synthetic set and the shipped tiny pretrained CLIP. Full mode
(`RVOSLIB_MODE=full`) runs the same live study with the tiny preset's 600 steps and 3 seeds per
variant on the device that `setup` picks (a GPU when there is one); it was not run where this
notebook was written.

**Time:** about 60-90 s in fast mode on a laptop CPU (three short trainings); a few seconds when
`benchmarks/ablations.json` exists.
""")

nb.code(setup_cell(r"""
    import json
    import math
    import tempfile

    import matplotlib.pyplot as plt
    import numpy as np
    import torch
    from IPython.display import Markdown, display

    from rvoslib import viz
    from rvoslib.config import apply_overrides, get_preset
    from rvoslib.engine import read_log, train

    if rt.fast:
        torch.set_num_threads(1)  # the tiny model's tensors are small: threads cost more than they bring on a CPU
    DATA = ROOT / "data_samples"
    TINY_CLIP = DATA / "tiny_clip/rvos-tiny-shapes.pt"
    ABLATIONS_JSON = ROOT / "benchmarks/ablations.json"  # the full study's results, when it has been run
    WORK = tempfile.TemporaryDirectory(prefix="rvoslib-nb09-")  # run folders; removed by the last cell
    KINDS = ("appearance", "motion", "relation")
"""))

# ----------------------------------------------------------------------------- 1. variants
nb.md(r"""
## 1. A variant is a config override

Every component that can be ablated is a config field (DESIGN: "keep each detail a config field
so it can be ablated"). The base config is the tiny preset on top of the shipped tiny pretrained
CLIP; each variant changes one field:

| variant | override | question |
|---|---|---|
| full model | (none) | the reference |
| random-init CLIP | `model.backbone.pretrained=None` | what does vision-language pretraining bring? |
| no temporal prompts | `model.prompts.use_temporal=False` | do the temporal prompts (and temporal capture) help? |

Other fields worth ablating the same way: `model.spatiotemporal.attention=full` (cube-frame vs full
attention, notebook 05), `model.vision.stage1=False` (no VL cross-attention inside the ViT),
`model.prompts.use_history=False`, `model.spatiotemporal.decoder=False`.
""")

nb.code(r"""
VARIANTS = {
    "full model": [],
    "random-init CLIP": ["model.backbone.pretrained=None"],
    "no temporal prompts": ["model.prompts.use_temporal=False"],
}
STEPS, SEEDS = (120, [0]) if rt.fast else (600, [0, 1, 2])

base = get_preset("tiny")
base.model.backbone.pretrained = str(TINY_CLIP)
base.data.root = str(DATA / "synthetic")
base.train.steps = STEPS
base.train.warmup_steps = 15
base.train.eval_every = STEPS  # one validation, at the end
base.train.ckpt_every = STEPS
base.train.log_every = 10
configs = {name: apply_overrides(base, overrides) for name, overrides in VARIANTS.items()}
for name, cfg in configs.items():
    print(f"{name:20s} CLIP weights: {cfg.model.backbone.pretrained is not None!s:5s}  "
          f"temporal prompts: {cfg.model.prompts.use_temporal}")
""")

# ----------------------------------------------------------------------------- 2. results
nb.md(r"""
## 2. The results: from the full study's file, or a reduced live run

The results are kept as `{variant: {metric: [one value per seed]}}`, with the metrics of the
validation split (`J&F`, `J`, `F`, `J&F/appearance`, `J&F/motion`, `J&F/relation`). The full
study's `benchmarks/ablations.json` is read when it exists and has that shape under a `"variants"`
key; otherwise (as when this notebook was written) the reduced study runs here: each variant trains
for `STEPS` steps per seed with `rvoslib.engine.train` into a temporary run folder and is validated
at the end on `data_samples/synthetic/valid`.
""")

nb.code(r"""
def read_study(path):
    # {variant: {metric: [values]}} from the full study's JSON, or None when it is missing or not in that shape
    if not path.is_file():
        return None
    try:
        variants = json.loads(path.read_text())["variants"]
        return {name: {metric: [float(v) for v in (values if isinstance(values, list) else [values])]
                       for metric, values in metrics.items() if metric.startswith(("J", "F"))}
                for name, metrics in variants.items()}
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        print(f"{path} exists but is not {{'variants': {{variant: {{metric: [values]}}}}}} ({err!r}); running live")
        return None


study = read_study(ABLATIONS_JSON)
source = f"{ABLATIONS_JSON.relative_to(ROOT)}" if study else f"live reduced run: {len(SEEDS)} seed(s) x {STEPS} steps"
runs = {}  # variant -> list of (seed, run folder) of the live run
if study is None:
    study = {}
    for name, cfg in configs.items():
        for seed in SEEDS:
            cfg.train.seed = seed
            cfg.train.out_dir = str(Path(WORK.name) / f"{name.replace(' ', '-')}-seed{seed}")
            print(f"--- {name}, seed {seed}")
            summary = train(cfg, device=rt.device)
            runs.setdefault(name, []).append((seed, cfg.train.out_dir))
            for metric, value in summary["last_val"].items():
                if metric != "num_objects":
                    study.setdefault(name, {}).setdefault(metric, []).append(value)
print("results from", source)
""")

nb.code(r"""
metric_names = ["J&F", *[f"J&F/{k}" for k in KINDS]]
rows = ["| variant | " + " | ".join(metric_names) + " |", "|---" * (len(metric_names) + 1) + "|"]
for name, metrics in study.items():
    cells = []
    for m in metric_names:
        values = metrics.get(m, [])
        spread = f" ± {np.std(values):.3f}" if len(values) > 1 else ""
        cells.append(f"{np.mean(values):.3f}{spread}" if values else "n/a")
    rows.append(f"| {name} | " + " | ".join(cells) + " |")
display(Markdown(f"**J&F on the validation split** ({source}; mean ± std over seeds)\n\n" + "\n".join(rows)))

fig, ax = plt.subplots(figsize=(10, 3.6))
plt.close(fig)
width = 0.8 / len(study)
for i, (name, metrics) in enumerate(study.items()):
    means = [np.mean(metrics[m]) if metrics.get(m) else np.nan for m in metric_names]
    errors = [np.std(metrics[m]) if len(metrics.get(m, [])) > 1 else 0 for m in metric_names]
    x = np.arange(len(metric_names)) + (i - (len(study) - 1) / 2) * width
    ax.bar(x, means, width, yerr=errors, label=name, capsize=3)
    for seed_values, xi in zip([metrics.get(m, []) for m in metric_names], x):
        ax.plot([xi] * len(seed_values), seed_values, "k.", ms=4)
ax.set_xticks(range(len(metric_names)), ["overall", *KINDS])
top = max(max(v) for metrics in study.values() for m, v in metrics.items() if m in metric_names and v)
ax.set(ylabel="validation J&F", ylim=(0, min(1.0, 1.3 * top)), title=f"ablations at toy scale ({source})")
ax.legend(fontsize=8)
ax.grid(axis="y", alpha=0.3)
fig
""")

nb.md(r"""
The training losses of the live runs (the sum of all loss terms, averaged between log lines), when
the study ran here:
""")

nb.code(r"""
if runs:
    curves = []
    for name, folders in runs.items():
        for seed, folder in folders:
            curves += [{"step": r["step"], f"{name} (seed {seed})": r["loss_avg"]} for r in read_log(folder) if "loss" in r]
    series = list(dict.fromkeys(k for row in curves for k in row if k != "step"))  # variant order: colours as above
    fig = viz.plot_curves(curves, keys=[series], figsize=(9, 3.4))
    fig.axes[0].set(ylabel="training loss", title="training loss per variant")
    display(fig)
else:
    print("(results read from the study's file: no live training curves)")
""")

nb.md(r"""
### What this can and cannot tell

* With **one seed and 120 steps**, the bars above differ by amounts that a different seed can
  produce on its own: do not read a winner into them. Look instead at the method: one override per
  variant, the same data, the same schedule, the same validation.
* What would make it conclusive: several seeds per variant (the spread gives the noise level),
  training to convergence (the preset's 600 steps or more), and a validation set large enough and
  hard enough to separate the questions, e.g. `rvoslib make-synthetic OUT --videos 100 --split valid
  --hard` (look-alike objects that differ only in their motion, where temporal information is the
  only way to the right answer).
* The expectations to test: the pretrained CLIP should help most on **appearance** expressions
  (its tokens encode colour, shape and size better, notebook 02); temporal prompts should help
  most on **motion** expressions. The paper reports both effects at full scale on real data.

## Checks
""")

nb.code(r"""
assert set(study) >= set(VARIANTS), set(study)
for name in VARIANTS:
    values = study[name]["J&F"]
    assert len(values) >= 1 and all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values), (name, values)
    for kind in KINDS:  # the synthetic validation split has expressions of every kind
        assert all(0.0 <= v <= 1.0 for v in study[name].get(f"J&F/{kind}", [])), (name, kind)
if runs:  # the live run trained every variant for the planned number of steps, for every seed
    for name, folders in runs.items():
        assert len(folders) == len(SEEDS)
        for _, folder in folders:
            assert max(r["step"] for r in read_log(folder)) == STEPS
WORK.cleanup()  # the temporary run folders
print("all checks passed")
""")

if __name__ == "__main__":
    print(nb.write())
