"""Statistics of the toy-scale ablation study: per-seed values, verdicts on claims, controls.

Every number here is a plain function of the per-seed results, so the report can be rebuilt
from ``benchmarks/ablations.json`` alone (``--report-only``).

Rules (fixed before the runs, see ``benchmarks/ablations.py``):

* a *difference* between two variants is the difference of their means over seeds; its
  standard error is ``sqrt(s1^2/n1 + s2^2/n2)`` (sample standard deviations); it is *clear*
  when it exceeds twice that standard error. The effect size is reported as the difference
  in J&F points with the interval ``difference ± 2 s.e.`` (the verdict's own interval: it
  excludes 0 exactly when the difference is clear; with 3 seeds it is narrower than a
  Student-t 95% interval would be, so treat a borderline verdict as a lead);
* the *controls* compare one variant with the motion-blind reference (an exact number, no
  seeds): the positive control passes when the full model is clearly above it on motion
  expressions, the negative control when the variant without a temporal pathway is *not*
  clearly above it. A claim about a temporal component gets no verdict unless both pass.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from typing import Optional, Sequence

KINDS = ("appearance", "motion", "relation")
NOT_TESTABLE = "not testable here"


@dataclasses.dataclass(frozen=True)
class Claim:
    """One of the paper's claims as a comparison: ``better`` should beat ``worse`` on ``metric``.

    With ``equivalent=True`` the claim is that ``better`` is *not worse* than ``worse`` (cube-frame
    attention "as good as" full attention), so a difference within noise supports it. With
    ``temporal=True`` the claim is about reasoning over time, and it is judged only when both
    controls pass.
    """

    key: str
    text: str
    better: str
    worse: str
    metric: str
    equivalent: bool = False
    temporal: bool = False


@dataclasses.dataclass(frozen=True)
class Control:
    """A check of the study itself: ``variant``'s ``metric`` against the motion-blind reference.

    ``above=True``: passes when the variant is clearly above the reference (positive control);
    ``above=False``: passes when it is not clearly above it (negative control: no leak).
    """

    name: str
    text: str
    variant: str
    metric: str
    above: bool


def mean_std(values: Sequence[float]) -> dict[str, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value) of ``values``."""
    values = [float(v) for v in values]
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values)}


def collect(results: Sequence[dict], order: Sequence[str], metrics: Sequence[str]) -> dict[str, dict[str, list[float]]]:
    """``{variant: {metric: [per-seed values]}}`` (``metrics`` plus ``train_s`` and ``train_cpu_s``, the
    training's wall and CPU seconds), variants in ``order``,
    seeds ascending; a metric a run did not report is left out, not set to zero."""
    variants: dict[str, dict[str, list[float]]] = {}
    for result in sorted(results, key=lambda r: (list(order).index(r["variant"]), r["seed"])):
        entry = variants.setdefault(result["variant"], {})
        for metric in (*metrics, "train_s", "train_cpu_s"):
            value = result.get(metric) if metric.startswith("train_") else result["metrics"].get(metric)
            if value is not None:
                entry.setdefault(metric, []).append(float(value))
    return variants


def difference(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Mean(a) - mean(b), its standard error, and the interval difference ± 2 s.e."""
    sa, sb = mean_std(a), mean_std(b)
    delta = sa["mean"] - sb["mean"]
    se = math.sqrt(sa["std"] ** 2 / sa["n"] + sb["std"] ** 2 / sb["n"])
    return {"delta": delta, "se": se, "low": delta - 2 * se, "high": delta + 2 * se, "n": min(sa["n"], sb["n"])}


def judge(claim: Claim, variants: dict[str, dict[str, list[float]]],
          controls_pass: Optional[bool] = True) -> Optional[dict]:
    """The verdict on one claim: difference of means, its standard error and interval, and what it says.

    Returns None when a variant or the metric is missing. Verdicts: "reproduced" (the difference
    is in the claimed direction and exceeds 2 standard errors; for an equivalence claim: the
    candidate is not clearly worse), "not reproduced" (within noise), "contradicted" (clearly in
    the other direction), "no verdict (needs >= 2 seeds)", and for a temporal claim whose
    controls did not both pass, "not testable here" (the numbers are still reported).
    Per kind of expression, the same difference is given under ``"per_kind"`` (no verdict).
    """
    a = variants.get(claim.better, {}).get(claim.metric)
    b = variants.get(claim.worse, {}).get(claim.metric)
    if not a or not b:
        return None
    diff = difference(a, b)
    clear = abs(diff["delta"]) > 2 * diff["se"]
    if diff["n"] < 2:
        verdict = "no verdict (needs >= 2 seeds)"
    elif claim.temporal and not controls_pass:
        verdict = NOT_TESTABLE
    elif claim.equivalent:
        verdict = "contradicted" if clear and diff["delta"] < 0 else "reproduced"
    else:
        verdict = "reproduced" if clear and diff["delta"] > 0 else ("contradicted" if clear else "not reproduced")
    per_kind = {}
    for kind in KINDS:
        ka = variants[claim.better].get(f"J&F/{kind}")
        kb = variants[claim.worse].get(f"J&F/{kind}")
        if ka and kb:
            per_kind[kind] = difference(ka, kb)
    return {"claim": claim.key, "text": claim.text, "better": claim.better, "worse": claim.worse,
            "metric": claim.metric, "temporal": claim.temporal, **diff, "verdict": verdict, "per_kind": per_kind}


def check_control(control: Control, variants: dict[str, dict[str, list[float]]],
                  reference: dict[str, float]) -> Optional[dict]:
    """One control: the variant's mean minus the (exact) reference, its standard error, pass or fail.

    Returns None when the variant, the metric or the reference value is missing. With one seed
    there is no standard error and the control cannot pass.
    """
    values = variants.get(control.variant, {}).get(control.metric)
    if not values or control.metric not in reference:
        return None
    s = mean_std(values)
    delta = s["mean"] - reference[control.metric]
    se = s["std"] / math.sqrt(s["n"])
    clearly_above = s["n"] >= 2 and delta > 2 * se
    passed = clearly_above if control.above else (s["n"] >= 2 and not clearly_above)
    return {"name": control.name, "text": control.text, "variant": control.variant, "metric": control.metric,
            "value": s["mean"], "reference": reference[control.metric], "delta": delta, "se": se,
            "passed": passed}


def controls_pass(results: Sequence[Optional[dict]]) -> bool:
    """True when every control was checked and passed."""
    return bool(results) and all(r is not None and r["passed"] for r in results)
