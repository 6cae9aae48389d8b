"""benchmarks/run.py: the smoke configuration runs end to end and writes its JSON (no timing asserted)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

SECTIONS = ("adaptation", "cube", "train", "inference", "data", "tiny-train", "streaming")


@pytest.mark.slow
def test_quick_benchmark_runs(tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--repeats", "1", "--no-gpu",
                           "--threads", "1", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["quick"] and set(results["sections"]) == set(SECTIONS)
    assert results["machine"]["threads"] == 1 and results["machine"]["torch"]
    # the printed table is the JSON's table, one row per line
    assert "| § | measurement |" in proc.stdout
    assert len(results["table"]) == sum(line.startswith("| ") for line in proc.stdout.splitlines()) - 1
    adaptation = results["sections"]["adaptation"]
    assert adaptation["model_over_encode_image"]["median"] > 0
    assert abs(sum(s["share"] for s in adaptation["stages"].values()) - 1) < 1e-6
    cube = results["sections"]["cube"]["per_frames"]["4"]
    assert {"full/default", "cube-frame/default", "frame/default"} <= set(cube["peak_memory"])
    assert all("peak_mib" in m for m in cube["peak_memory"].values()), cube["peak_memory"]
    assert cube["kernels"]["full/math"] == "math"  # the forced backend really ran
    train = results["sections"]["train"]
    assert train["gradients_identical"] and train["frozen_params_with_grad"] == 0
    assert all("peak_mib" in m for m in train["peak_memory"].values()), train["peak_memory"]
    assert results["sections"]["inference"]["tiny"]["fps_model"] > 0
    assert all(v["clips_per_s"] > 0 for v in results["sections"]["data"]["loading"].values())
    check_tiny_train(results)
    check_streaming(results["sections"]["streaming"], [8, 24])


def check_tiny_train(results):
    """Section 6 has its keys, every number positive, and the tiny preset's sizes as read at run time."""
    from rvoslib.config import get_preset

    tiny = results["sections"]["tiny-train"]
    preset = get_preset("tiny")
    config = tiny["config"]
    assert (config["size"], config["frames"], config["batch"]) == (
        preset.model.backbone.image_size, preset.model.num_frames, preset.train.batch_size)
    assert config["history_training"] == preset.train.history_training
    assert config["encode_image_frames"] == config["batch"] * config["frames"]
    assert all(tiny["times"][k]["median_s"] > 0 for k in ("data", "step", "encode_image", "encode_image_weights"))
    for key in ("step_over_encode_image", "step_over_encode_image_weights", "data_over_step"):
        assert tiny[key]["median"] > 0, key
    assert tiny["step_over_encode_image_per_clip_pass"] > 0
    for kind in ("step", "data_and_step"):
        assert {"steps_per_min", "clips_per_min", "frames_per_min"} == set(tiny["throughput"][kind])
        assert all(v > 0 for v in tiny["throughput"][kind].values()), tiny["throughput"]
    assert set(tiny["data_share"]) == {"median", "min", "max"}  # a share of measured times: no threshold on timings
    assert tiny["profile"]["top"] and all(op["share"] > 0 for op in tiny["profile"]["top"])
    assert sum(row["section"] == "6" for row in results["table"]) >= 5


def test_bad_section_is_rejected():
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--sections", "adaptation,bogus"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unknown sections ['bogus']" in proc.stderr


def check_streaming(section, lengths):
    """Section 7: each mode segmented every frame of each generated video and reports both peaks."""
    for mode, per_length in section["modes"].items():
        for n in lengths:
            run = per_length[str(n)]
            assert "error" not in run, run
            assert run["frames"] == n and run["rss_mib"] >= 0 and run["traced_mib"] > 0
        short, long = per_length[str(lengths[0])], per_length[str(lengths[-1])]
        for key in ("rss_mib", "traced_mib"):
            assert per_length[f"{key}_ratio"] == pytest.approx(long[key] / short[key])


def test_streaming_section_at_tiny_size(tmp_path):
    from benchmarks.streaming import section_streaming

    section, rows = section_streaming({"frames": [4, 12], "size": [40, 24], "modes": ["stream"]}, None, 1,
                                      work=tmp_path)
    check_streaming(section, [4, 12])
    assert [row[0] for row in rows] == ["7", "7"] and "4 vs 12 frames of 40x24" in rows[0][1]
    assert list(tmp_path.iterdir()) == []  # generated videos and outputs are cleaned up
