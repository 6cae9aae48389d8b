"""``python -m benchmarks.gpu_check`` at the tiny size: every part runs or says why it is skipped."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks import gpu_check


def test_gpu_check_tiny_reports_every_part(tmp_path, capsys):
    out = tmp_path / "report.json"
    code = gpu_check.main(["--tiny", "--steps", "1", "--video-frames", "8", "--no-ddp", "--out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    parts = {p["part"]: p for p in report["parts"]}
    assert report["config"]["model"] == "rvos-tiny2" and report["config"]["weights"] == "random"
    for checkpointing in ("", " + activation checkpointing"):
        fp32 = parts[f"train fp32{checkpointing}"]
        assert fp32["status"] == "ok" and fp32["steps_per_s"] > 0
        for precision in ("bf16", "fp16"):
            part = parts[f"train {precision}{checkpointing}"]
            if torch.cuda.is_available():
                assert part["status"] in ("ok", "skipped")
            else:
                assert part["status"] == "skipped" and part["why"] == "needs CUDA"
    assert parts["loss agreement fp32 + ckpt vs fp32 (rtol 0.0001)"]["status"] == "ok"
    assert parts["segment_video"]["status"] == "ok" and parts["segment_video"]["frames"] == 8
    assert "| segment_video | ok |" in capsys.readouterr().out


def test_loss_agreement_fails_beyond_its_tolerance():
    losses = {"fp32": 2.0, "bf16": 2.05, "fp16": 2.3}
    assert gpu_check.loss_agreement(losses, "bf16", 0.05)["relative"] == pytest.approx(0.025)
    with pytest.raises(AssertionError, match="fp16 loss 2.30000 vs fp32 2.00000"):
        gpu_check.loss_agreement(losses, "fp16", 0.05)


def test_a_failing_part_is_reported_and_the_check_goes_on():
    results: list = []

    def broken():
        raise RuntimeError("CUDA out of memory")

    assert gpu_check.run_part("train fp32", results, broken) is None
    assert gpu_check.run_part("segment_video", results, lambda: {"frames": 1}) == {"frames": 1}
    assert gpu_check.run_part("ddp", results, broken, skip="needs CUDA") is None
    assert [(r["part"], r["status"]) for r in results] == [
        ("train fp32", "FAILED"), ("segment_video", "ok"), ("ddp", "skipped")]
    assert "CUDA out of memory" in results[0]["why"]


def test_estimate_counts_flops_and_memory_linear_in_frames(tmp_path):
    from rvoslib.model import build_model

    out = tmp_path / "estimate.json"
    assert gpu_check.main(["--estimate", "clip-b16", "--tiny", "--out", str(out)]) == 0
    estimate = json.loads(out.read_text())
    assert estimate["model"] == "rvos-tiny2" and estimate["clip_passes"] == 2  # two-step history training
    cfg = gpu_check.check_config("tiny", True, None, None, "none")
    model = build_model(cfg.model).train()
    direct = gpu_check.count_clip_pass(model, cfg, cfg.model.num_frames)  # counted at T, not extrapolated
    assert estimate["step_tflop"] * 1e12 / 2 == pytest.approx(direct["flops"], rel=0.02)
    assert estimate["activations_gib_fp32"] * 2 ** 30 == pytest.approx(direct["saved_bytes"], rel=0.05)
    assert estimate["params_total"] == sum(p.numel() for p in model.parameters())


def test_parts_past_the_time_budget_are_skipped():
    report = gpu_check.run_check(tiny=True, steps=1, video_frames=4, ddp=False, budget_s=0)
    assert report["parts"] and all(p["status"] == "skipped" for p in report["parts"])
    assert any(p["why"].startswith("time budget") for p in report["parts"])
