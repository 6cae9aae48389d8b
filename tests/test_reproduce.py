"""Every command of the README's "Reproduce the paper" section, run at toy size.

The commands are read from README.md itself and run in order with the same code paths:
``--preset clip-b16`` becomes the tiny preset with random CLIP weights and one step, the
dataset roots become tiny fixtures in the published layouts (tests/layouts.py), ``runs/``
a temporary folder, ``torchrun`` starts 2 CPU processes instead of 4 GPUs, and gpu_check
runs ``--tiny`` (with its DDP part). A command added to the section is run here without any change to this file
(a new dataset root must be added to ``ROOTS``).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from layouts import write_a2d, write_jhmdb, write_mevis, write_refcoco, write_ytvos_release

REPO = Path(__file__).resolve().parents[1]
SECTION = "## Reproduce the paper"
TOY_TRAIN = "--preset tiny --pretrained none --steps 1 --no-progress --set model.num_frames=2"
TOY_GPU_CHECK = "--tiny --steps 1 --video-frames 8"  # its DDP part included (gloo, 2 CPU processes)

pytestmark = pytest.mark.slow


def readme_commands() -> list[str]:
    """The commands in the fenced code blocks of the section, continuation lines joined, comments dropped."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start: end if end > 0 else None]
    commands = []
    for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", section, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def toy(command: str, roots: dict[str, Path], runs: Path) -> str:
    """The command at toy size (see the module docstring)."""
    for real, fixture in roots.items():
        command = command.replace(real, str(fixture))
    command = re.sub(r"(?<=\s)runs/", f"{runs}/", command)
    command = command.replace("--preset clip-b16", TOY_TRAIN).replace("--nproc_per_node 4", "--nproc_per_node 2")
    if command.startswith("python -m benchmarks.gpu_check"):
        command += " " + TOY_GPU_CHECK
    assert "/data/" not in command, f"no fixture for a dataset root in: {command}"
    return command


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("datasets")
    for dataset, split_by in (("refcoco", "unc"), ("refcoco+", "unc"), ("refcocog", "umd")):
        write_refcoco(base / "coco", dataset, split_by)
    write_jhmdb(base / "jhmdb")
    return {"/data/coco": base / "coco", "/data/ref-youtube-vos": write_ytvos_release(base / "ytvos"),
            "/data/ref-davis17": REPO / "data_samples" / "davis", "/data/mevis": write_mevis(base / "mevis"),
            "/data/a2d-sentences": write_a2d(base / "a2d"), "/data/jhmdb-sentences": base / "jhmdb"}


@pytest.fixture(scope="module")
def executed(roots, tmp_path_factory) -> tuple[Path, list[str]]:
    """Run every in-process command (rvoslib ..., python -m benchmarks.gpu_check) in order."""
    from benchmarks import gpu_check
    from rvoslib.cli import main

    runs = tmp_path_factory.mktemp("runs")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    done = []
    try:
        for command in readme_commands():
            if command.startswith("torchrun"):
                continue
            args = shlex.split(toy(command, roots, runs))
            if args[0] == "rvoslib":
                code = main(args[1:])
            else:
                code = gpu_check.main(args[3:])
            assert code == 0, command
            done.append(command)
    finally:
        torch.set_num_threads(threads)
    return runs, done


def test_the_section_has_every_kind_of_command():
    commands = readme_commands()
    joined = "\n".join(commands)
    for needed in ("--format refcoco", "--init", "--mix", "torchrun --nproc_per_node 4", "--format mevis",
                   "--format a2d", "--format davis", "--format jhmdb", "benchmarks.gpu_check"):
        assert needed in joined, needed
    assert sum(c.startswith("rvoslib evaluate") for c in commands) >= 5


def test_readme_commands_run_at_toy_size(executed):
    runs, done = executed
    assert len(done) == sum(not c.startswith("torchrun") for c in readme_commands())
    pre = json.loads((runs / "b16-refcoco" / "config.json").read_text())
    assert pre["model"]["num_frames"] == 1 and pre["data"]["format"] == "refcoco-all"  # T=1 image pretraining
    pre_log = [json.loads(line) for line in (runs / "b16-refcoco" / "log.jsonl").read_text().splitlines()]
    assert any("J&F" in r.get("val", {}) for r in pre_log)  # validated on the RefCOCO/+/g val images
    video = json.loads((runs / "b16-ytvos" / "config.json").read_text())
    assert video["train"]["init_from"] == str(runs / "b16-refcoco" / "last.pt")
    assert video["model"]["num_frames"] == 2
    joint = json.loads((runs / "b16-joint" / "config.json").read_text())
    assert joint["data"]["mix_root"] and joint["data"]["mix_format"] == "refcoco-all"
    assert (runs / "b16-ytvos" / "submission" / "submission.zip").is_file()  # Ref-YouTube-VOS valid: no masks
    metrics = {p.parent.name: json.loads(p.read_text()) for p in runs.glob("*/eval-*/metrics.json")}
    assert "J&F" in metrics["eval-ref-davis17-valid"] and "J&F" in metrics["eval-mevis-valid_u"]
    assert "mAP" in metrics["eval-a2d-sentences-test"]
    assert "overall_iou" in next(v for k, v in metrics.items() if k.startswith("eval-jhmdb-sentences"))


def test_readme_torchrun_command(executed, roots):
    runs, _ = executed
    commands = [c for c in readme_commands() if c.startswith("torchrun")]
    assert commands
    for command in commands:
        args = shlex.split(toy(command, roots, runs))
        args[0] = str(Path(sys.executable).parent / "torchrun")
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
        result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
    out = Path(re.search(r"--out (\S+)", toy(commands[0], roots, runs)).group(1))
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert log and log[0]["step"] == 1
    assert torch.load(out / "last.pt", weights_only=True)["extra"]["world_size"] == 2
