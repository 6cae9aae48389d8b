"""Report of the toy-scale ablation study: markdown tables (results, controls, verdicts) and the figure.

Everything here reads the study's JSON (``benchmarks/ablations.json``) and nothing else, so the
README's tables can be checked against the committed file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from benchmarks.ablation_stats import KINDS, mean_std

REFERENCE_NAME = "*motion-blind reference* (perfect masks, random look-alike)"


def _cell(values: Optional[list], digits: int = 3) -> str:
    if not values:
        return "n/a"
    s = mean_std(values)
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}" if s["n"] > 1 else f"{s['mean']:.{digits}f}"


def markdown_table(variants: dict[str, dict[str, list[float]]], reference: Optional[dict] = None) -> str:
    """The results table: J&F overall and per kind (mean ± std over seeds), training CPU time per run
    (wall time when the runs did not record CPU time: it depends on what else the machine ran);
    a last row with ``reference`` (the motion-blind reference) when given."""
    columns = ("J&F", "J&F/motion", "J&F/appearance", "J&F/relation")
    cpu = all(metrics.get("train_cpu_s") for metrics in variants.values())
    time_key, time_name = ("train_cpu_s", "training CPU time per run (s)") if cpu else ("train_s", "train time per run (s)")
    lines = [f"| variant | J&F | J&F motion | J&F appearance | J&F relation | {time_name} |",
             "|---|---|---|---|---|---|"]
    for name, metrics in variants.items():
        cells = [_cell(metrics.get(m)) for m in columns]
        cells.append(_cell(metrics.get(time_key), digits=0))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if reference:
        cells = [f"{reference[m]:.3f}" if m in reference else "n/a" for m in columns]
        lines.append(f"| {REFERENCE_NAME} | " + " | ".join(cells) + " | - |")
    return "\n".join(lines)


def _interval(d: dict) -> str:
    return f"{d['delta']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"


def markdown_verdicts(verdicts: Sequence[dict]) -> str:
    """One row per claim: the comparison, the difference with its ± 2 s.e. interval, per kind, the verdict."""
    lines = ["| claim | comparison | metric | difference [± 2 s.e.] | appearance | motion | relation | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for v in verdicts:
        kinds = [f"{v['per_kind'][k]['delta']:+.3f} ± {v['per_kind'][k]['se']:.3f}" if k in v.get("per_kind", {})
                 else "n/a" for k in KINDS]
        lines.append(f"| ({v['claim']}) {v['text']} | {v['better']} vs {v['worse']} | {v['metric']} | "
                     f"{_interval(v)} | " + " | ".join(kinds) + f" | {v['verdict']} |")
    return "\n".join(lines)


def markdown_controls(controls: Sequence[dict]) -> str:
    """One row per control: the variant's value, the reference, the difference ± s.e., passed or failed."""
    lines = ["| control | variant | metric | value | reference | difference ± s.e. | result |",
             "|---|---|---|---|---|---|---|"]
    for c in controls:
        lines.append(f"| {c['name']}: {c['text']} | {c['variant']} | {c['metric']} | {c['value']:.3f} | "
                     f"{c['reference']:.3f} | {c['delta']:+.3f} ± {c['se']:.3f} | "
                     f"{'passed' if c['passed'] else 'FAILED'} |")
    return "\n".join(lines)


def markdown_report(study: dict) -> str:
    """The whole markdown file: settings line, results table, controls, verdicts."""
    s, data = study["settings"], study["data"]
    val = data["valid"]
    header = (f"Tiny preset, {s['steps']} steps ({s['history_training']} history training, batch "
              f"{study['batch_size']}) per run, seeds {', '.join(map(str, s['seeds']))}; "
              f"{data['train']['videos']} training videos; hard validation split of {val['videos']} videos "
              f"({', '.join(f'{val.get(k, 0)} {k}' for k in KINDS)} expressions). "
              f"Study wall time {study['wall_s'] / 60:.1f} min on {study['machine']['logical_cpus']} CPU cores "
              f"({study['workers']} runs at a time, {study['threads']} thread each)")
    cpu_min = sum(r.get("train_cpu_s", 0.0) for r in study["runs"]) / 60
    header += f"; training CPU time of all runs {cpu_min:.0f} min"
    reused = study.get("reused_runs", 0)
    header += f"; {reused} of {len(study['runs'])} runs were reused from an earlier invocation." if reused else "."
    if study.get("missing_runs"):
        header += (f" **Partial study: {len(study['missing_runs'])} planned run(s) had not finished and are "
                   f"left out** ({', '.join(study['missing_runs'])}).")
    parts = [header, markdown_table(study["variants"], study.get("reference"))]
    if study.get("controls"):
        parts.append(markdown_controls(study["controls"]))
    parts.append(markdown_verdicts(study["verdicts"]))
    return "\n\n".join(parts) + "\n"


def plot_study(study: dict, path: Path) -> Path:
    """Bar chart of J&F per variant (overall and per kind): mean, sample std as error bar, one dot per seed,
    and the motion-blind reference as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rvoslib.io import atomic_path

    variants = study["variants"]
    metrics = ["J&F", *[f"J&F/{k}" for k in KINDS]]
    val = study["data"]["valid"]
    labels = ["overall"] + [f"{k}\n({val.get(k, 0)} expressions)" for k in KINDS]
    width = 0.8 / len(variants)
    colours = plt.get_cmap("tab20").colors
    fig, ax = plt.subplots(figsize=(12, 5))
    for i, (name, values) in enumerate(variants.items()):
        x = [j + (i - (len(variants) - 1) / 2) * width for j in range(len(metrics))]
        stats = [mean_std(values[m]) if values.get(m) else None for m in metrics]
        ax.bar(x, [st["mean"] if st else 0 for st in stats], width, yerr=[st["std"] if st else 0 for st in stats],
               capsize=2, label=name, color=colours[i % len(colours)])
        for xi, m in zip(x, metrics):
            ax.plot([xi] * len(values.get(m, [])), values.get(m, []), "k.", ms=3)
    reference = study.get("reference") or {}
    for j, m in enumerate(metrics):
        if m in reference:
            ax.hlines(reference[m], j - 0.45, j + 0.45, colors="k", linestyles="--", lw=1,
                      label="motion-blind reference" if j == 0 else None)
    ax.set_xticks(range(len(metrics)), labels)
    ax.set(ylabel="J&F on the hard validation split", ylim=(0, 1.05),
           title=f"ablations, tiny preset, {study['settings']['steps']} steps, "
                 f"{len(study['settings']['seeds'])} seeds (bar: mean, line: std, dots: seeds)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path
