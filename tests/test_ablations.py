"""benchmarks/ablations.py: the study's statistics, its smoke run end to end, and the README's copy of its table."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import ablations
from benchmarks.ablations import Claim, collect, judge, markdown_table, markdown_verdicts, mean_std
from benchmarks.ablation_stats import NOT_TESTABLE, Control, check_control, difference

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- statistics


def test_mean_std_is_the_sample_standard_deviation():
    s = mean_std([0.5, 0.7, 0.9])
    assert s["mean"] == pytest.approx(0.7) and s["std"] == pytest.approx(0.2) and s["n"] == 3
    assert mean_std([0.4]) == {"mean": 0.4, "std": 0.0, "n": 1}


def _variants(better, worse, metric="J&F"):
    return {"A": {metric: list(better)}, "B": {metric: list(worse)}}


@pytest.mark.parametrize("better, worse, expected", [
    ((0.60, 0.62, 0.61), (0.50, 0.51, 0.49), "reproduced"),  # +0.11, s.e. 0.01
    ((0.60, 0.70, 0.50), (0.55, 0.65, 0.45), "not reproduced"),  # +0.05 with s.e. 0.08: noise
    ((0.40, 0.41, 0.42), (0.50, 0.51, 0.52), "contradicted"),  # clearly the other way
    ((0.60,), (0.50,), "no verdict (needs >= 2 seeds)"),
])
def test_judge_compares_the_difference_with_twice_its_standard_error(better, worse, expected):
    verdict = judge(Claim("x", "A beats B", "A", "B", "J&F"), _variants(better, worse))
    assert verdict["verdict"] == expected
    assert verdict["delta"] == pytest.approx(sum(better) / len(better) - sum(worse) / len(worse))


def test_judge_of_an_equivalence_claim_accepts_noise_and_rejects_a_clear_loss():
    claim = Claim("c", "A as good as B", "A", "B", "J&F", equivalent=True)
    assert judge(claim, _variants((0.60, 0.70, 0.50), (0.62, 0.72, 0.52)))["verdict"] == "reproduced"
    assert judge(claim, _variants((0.40, 0.41, 0.42), (0.50, 0.51, 0.52)))["verdict"] == "contradicted"
    assert judge(claim, {"A": {"J&F": [0.5]}}) is None  # B missing: nothing to say


def test_difference_interval_is_two_standard_errors_and_excludes_zero_exactly_when_clear():
    d = difference([0.60, 0.62, 0.61], [0.50, 0.51, 0.49])
    assert d["se"] == pytest.approx((0.01 ** 2 / 3 + 0.01 ** 2 / 3) ** 0.5)
    assert (d["low"], d["high"]) == pytest.approx((d["delta"] - 2 * d["se"], d["delta"] + 2 * d["se"]))
    assert d["low"] > 0  # clear
    noisy = difference([0.60, 0.70, 0.50], [0.55, 0.65, 0.45])
    assert noisy["low"] < 0 < noisy["high"]


def test_a_temporal_claim_gets_no_verdict_unless_the_controls_pass():
    claim = Claim("b", "A beats B on motion", "A", "B", "J&F/motion", temporal=True)
    variants = _variants((0.60, 0.62, 0.61), (0.50, 0.51, 0.49), metric="J&F/motion")
    assert judge(claim, variants, controls_pass=True)["verdict"] == "reproduced"
    failed = judge(claim, variants, controls_pass=False)
    assert failed["verdict"] == NOT_TESTABLE and failed["delta"] == pytest.approx(0.11)  # numbers still reported
    plain = Claim("a", "A beats B", "A", "B", "J&F/motion")  # not temporal: judged whatever the controls say
    assert judge(plain, variants, controls_pass=False)["verdict"] == "reproduced"


def test_verdict_reports_the_difference_per_kind_of_expression():
    variants = {"A": {"J&F": [0.5, 0.6], "J&F/motion": [0.4, 0.5], "J&F/appearance": [0.9, 0.9]},
                "B": {"J&F": [0.5, 0.5], "J&F/motion": [0.3, 0.3], "J&F/appearance": [0.7, 0.8]}}
    verdict = judge(Claim("x", "A beats B", "A", "B", "J&F"), variants)
    assert set(verdict["per_kind"]) == {"appearance", "motion"}  # relation missing: left out
    assert verdict["per_kind"]["motion"]["delta"] == pytest.approx(0.15)
    assert verdict["per_kind"]["appearance"]["delta"] == pytest.approx(0.15)
    row = markdown_verdicts([verdict]).splitlines()[2]
    assert "+0.150 ± 0.050" in row and "| n/a |" in row


@pytest.mark.parametrize("values, above, passed", [
    ((0.55, 0.56, 0.57), True, True),  # clearly above the reference 0.44
    ((0.43, 0.45, 0.47), True, False),  # within noise of it
    ((0.43, 0.45, 0.47), False, True),  # negative control: not clearly above, as it should be
    ((0.55, 0.56, 0.57), False, False),  # negative control fails: the model uses something it should not have
    ((0.90,), True, False),  # one seed: no standard error, a control cannot pass
])
def test_controls_compare_a_variant_with_the_reference(values, above, passed):
    control = Control("c", "text", "A", "J&F/motion", above=above)
    result = check_control(control, {"A": {"J&F/motion": list(values)}}, {"J&F/motion": 0.44})
    assert result["passed"] is passed
    assert result["delta"] == pytest.approx(sum(values) / len(values) - 0.44)
    assert check_control(control, {"B": {"J&F/motion": [0.5, 0.5]}}, {"J&F/motion": 0.44}) is None


def test_conclude_gates_temporal_claims_on_both_controls():
    good = {"J&F": [0.6, 0.61, 0.62], "J&F/motion": [0.55, 0.56, 0.57]}
    blind = {"J&F": [0.5, 0.5, 0.5], "J&F/motion": [0.43, 0.44, 0.45]}
    variants = {name: dict(good) for name in ablations.VARIANTS}
    variants["no temporal pathway"] = dict(blind)
    variants["no temporal prompts"] = dict(blind)
    controls, verdicts = ablations.conclude(variants, {"J&F/motion": 0.44})
    assert [c["passed"] for c in controls] == [True, True]
    temporal = next(v for v in verdicts if v["worse"] == "no temporal prompts")
    assert temporal["verdict"] == "reproduced"
    variants["full model"] = dict(blind)  # the positive control now fails
    controls, verdicts = ablations.conclude(variants, {"J&F/motion": 0.44})
    assert [c["passed"] for c in controls] == [False, True]
    assert {v["verdict"] for v in verdicts if v["temporal"]} == {NOT_TESTABLE}
    assert all(v["verdict"] != NOT_TESTABLE for v in verdicts if not v["temporal"])


def test_collect_orders_variants_and_seeds_and_keeps_train_time():
    runs = [{"variant": v, "seed": s, "metrics": {"J&F": 0.1 * s + i, "J&F/motion": 0.2}, "train_s": 10.0 + s}
            for s in (1, 0) for i, v in enumerate(("no history", "full model"))]
    variants = collect(runs)
    assert list(variants) == ["full model", "no history"]  # the order of ablations.VARIANTS
    assert variants["full model"]["J&F"] == pytest.approx([1.0, 1.1])  # seed 0 then seed 1
    assert variants["no history"]["train_s"] == [10.0, 11.0]
    assert "J&F/appearance" not in variants["full model"]  # missing metrics are left out, not zero
    table = markdown_table(variants).splitlines()
    assert len(table) == 4 and table[2].startswith("| full model | 1.050 ± 0.071 | 0.200 ± 0.000 | n/a |")


def test_every_variant_is_one_valid_override_of_the_study_config(tmp_path):
    from rvoslib.config import get_preset
    from rvoslib.engine import config_differences
    from rvoslib.runtime import TINY_CLIP_CHECKPOINT

    base = get_preset("tiny")
    for name, (overrides, _) in ablations.VARIANTS.items():
        cfg = ablations.run_config(name, 3, ablations.Settings(steps=50), tmp_path, tmp_path / "run")
        assert cfg.train.steps == 50 and cfg.train.seed == 3 and cfg.train.history_training == "two-step"
        assert cfg.train.eval_every == 50  # one validation, after the last step
        changed = [d.split(":")[0].removeprefix("model.") for d in config_differences(base, cfg) if d.startswith("model.")]
        # every variant but random-init starts from the shipped tiny CLIP (the preset itself has random weights)
        expected = {"backbone.pretrained"} | {o.split("=")[0].removeprefix("model.") for o in overrides}
        if base.model.spatiotemporal.value_position == "none":  # then ablations.NO_CUBE changes nothing
            expected.discard("spatiotemporal.value_position")
        if name == "random-init CLIP":
            assert cfg.model.backbone.pretrained is None
            expected = set()
        else:
            assert cfg.model.backbone.pretrained.endswith(TINY_CLIP_CHECKPOINT)
        assert set(changed) == expected, (name, changed)
    assert all(c.better in ablations.VARIANTS and c.worse in ablations.VARIANTS for c in ablations.CLAIMS)
    assert all(c.variant in ablations.VARIANTS for c in ablations.CONTROLS)
    naive = ablations.run_config("naive transfer", 0, ablations.Settings(steps=5), tmp_path, tmp_path / "run").model
    assert not (naive.prompts.use_vision or naive.prompts.use_temporal or naive.prompts.use_history
                or naive.prompts.use_language or naive.vision.stage1)


def test_existing_data_of_another_size_is_a_clear_error(tmp_path):
    settings = ablations.Settings(train_videos=2, val_videos=1)
    ablations.make_data(tmp_path, settings)
    assert ablations.split_counts(tmp_path, "valid")["videos"] == 1
    with pytest.raises(ValueError, match=r"train.*holds 2 videos, the study needs 3"):
        ablations.make_data(tmp_path, ablations.Settings(train_videos=3, val_videos=1))


def test_motion_blind_reference_is_one_over_the_number_of_look_alikes(tmp_path):
    from rvoslib.data.synthetic import write_synthetic_dataset

    write_synthetic_dataset(tmp_path / "valid", 6, seed=5, split="valid", hard=True)
    reference = ablations.motion_blind_reference(tmp_path)
    meta = json.loads((tmp_path / "valid/meta_expressions.json").read_text())["videos"]
    expected = {}  # a right pick scores 1, a wrong look-alike (far away, disjoint) about 0
    for video in meta.values():
        looks = {k: (a["size"], a["colour"], a["shape"]) for k, a in video["objects"].items()}
        for e in video["expressions"].values():
            twins = sum(look == looks[e["obj_id"]] for look in looks.values())
            expected.setdefault(e["kind"], []).append(1 / twins)
    assert reference["J&F/appearance"] == 1.0  # an appearance sentence singles out an object without twins
    assert reference["J&F/motion"] == pytest.approx(sum(expected["motion"]) / len(expected["motion"]), abs=0.05)
    assert reference["J&F/motion"] < 0.75  # hard split: motion sentences point at one of 2-3 look-alikes


# ----------------------------------------------------------------------------- the script


def run_script(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "benchmarks.ablations", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow
def test_quick_study_runs_writes_its_files_and_resumes(tmp_path):
    args = ["--quick", "--variants", "full model", "no history", "--seeds", "0", "1", "--workers", "1",
            "--work", str(tmp_path / "work"), "--out", str(tmp_path / "study.json")]
    proc = run_script(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = json.loads((tmp_path / "study.json").read_text())
    assert list(study["variants"]) == ["full model", "no history"]
    for metrics in study["variants"].values():  # the shape notebook 09 reads: metric -> one value per seed
        assert len(metrics["J&F"]) == 2 and all(0.0 <= v <= 1.0 for v in metrics["J&F"])
        assert len(metrics["J&F/motion"]) == 2 and all(t > 0 for t in metrics["train_s"])
    assert {r["settings"]["steps"] for r in study["runs"]} == {ablations.QUICK.steps}
    assert [v["worse"] for v in study["verdicts"]] == ["no history"]  # the only claim both variants answer
    report = (tmp_path / "study.md").read_text()
    table = markdown_table(study["variants"], study["reference"])
    assert table in report and table in proc.stdout and "motion-blind reference" in table.splitlines()[-1]
    result = tmp_path / "work/runs/no-history-seed1/result.json"
    written = result.stat().st_mtime_ns
    again = run_script(*args)  # every run is finished: nothing is trained again
    assert again.returncode == 0 and "reusing 4 finished run(s)" in again.stderr
    assert result.stat().st_mtime_ns == written
    resumed = json.loads((tmp_path / "study.json").read_text())
    assert resumed["variants"] == study["variants"] and resumed["reused_runs"] == 4 and study["reused_runs"] == 0
    report = (tmp_path / "study.md").read_text()
    assert "4 of 4 runs were reused" in report  # its wall time is not the study's
    assert (tmp_path / "study.png").stat().st_size > 0
    (tmp_path / "study.md").unlink()
    (tmp_path / "study.png").unlink()
    redo = run_script("--report-only", "--out", str(tmp_path / "study.json"), timeout=120)
    assert redo.returncode == 0, redo.stderr[-2000:]
    assert (tmp_path / "study.md").read_text() == report and (tmp_path / "study.png").stat().st_size > 0


def test_unknown_variant_is_rejected_by_name():
    proc = run_script("--variants", "full model", "no prompts", timeout=120)
    assert proc.returncode == 2 and "unknown variants ['no prompts']" in proc.stderr


def test_report_only_without_a_study_is_rejected_by_path(tmp_path):
    proc = run_script("--report-only", "--out", str(tmp_path / "missing.json"), timeout=120)
    assert proc.returncode == 2 and "missing.json" in proc.stderr and "does not exist" in proc.stderr


# ----------------------------------------------------------------------------- the committed result


def test_readme_shows_the_committed_study_unchanged():
    name = "ablations"
    study = json.loads((REPO / f"benchmarks/{name}.json").read_text())
    readme = (REPO / "README.md").read_text()
    assert ablations.recompute(study) == study  # its conclusions are those of its runs
    assert markdown_table(study["variants"], study["reference"]) in readme
    assert ablations.markdown_controls(study["controls"]) in readme
    assert markdown_verdicts(study["verdicts"]) in readme
    assert study["command"] in readme
    assert (REPO / f"benchmarks/{name}.md").read_text() == ablations.markdown_report(study)
    for metrics in study["variants"].values():  # >= 3 seeds, and the same step budget for every run
        assert len(metrics["J&F"]) >= 3
    assert len({r["settings"]["steps"] for r in study["runs"]}) == 1


def test_the_main_study_covers_every_variant():
    study = json.loads((REPO / "benchmarks/ablations.json").read_text())
    readme = (REPO / "README.md").read_text()
    assert list(study["variants"]) == list(ablations.VARIANTS) and not study.get("missing_runs")
    assert [c["name"] for c in study["controls"]] == ["positive", "negative"]
    assert re.search(r"\| full model \| \d\.\d{3} ± \d\.\d{3} \|", readme)
