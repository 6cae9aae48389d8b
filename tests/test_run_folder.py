"""The run folder: one writer at a time (lock), stale temporary files, a torn last log line."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rvoslib.config import Config, get_preset
from rvoslib.data import write_synthetic_dataset
from rvoslib.engine import read_log, train
from rvoslib.run_folder import LOCK_NAME, RunFolderLockedError, remove_stale_temporaries, run_folder_lock

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    write_synthetic_dataset(root / "train", 4, seed=1, split="train", max_expressions=2)
    return root


def tiny_cfg(root: Path, out: Path, steps: int = 2) -> Config:
    """The tiny preset (random CLIP), T=2, batch 1, no evaluation, a checkpoint every step."""
    cfg = get_preset("tiny")
    cfg.model.num_frames = 2
    cfg.data.root, cfg.train.out_dir = str(root), str(out)
    cfg.train.steps, cfg.train.batch_size, cfg.train.warmup_steps = steps, 1, 1
    cfg.train.eval_every, cfg.train.ckpt_every, cfg.train.log_every = 0, 1, 1
    cfg.train.history_training = "off"
    return cfg


def dead_pid() -> int:
    """The pid of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# ----------------------------------------------------------------------------- lock


def test_second_writer_is_refused_while_the_first_holds_the_folder(shapes, tmp_path):
    out = tmp_path / "run"
    with run_folder_lock(out) as lock:
        owner = json.loads(lock.read_text())
        assert owner["pid"] == os.getpid()
        with pytest.raises(RunFolderLockedError, match=f"process {os.getpid()}"):
            train(tiny_cfg(shapes, out), device="cpu", progress=False)
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # the refused run wrote nothing
    assert not (out / LOCK_NAME).exists()  # released on exit
    summary = train(tiny_cfg(shapes, out), device="cpu", progress=False)  # the folder is free again
    assert summary["steps"] == 2 and not (out / LOCK_NAME).exists()


def test_cli_train_into_a_folder_another_process_writes_exits_with_a_clear_message(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from rvoslib.run_folder import run_folder_lock\n"
         f"with run_folder_lock({str(out)!r}):\n    print('locked', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = subprocess.run([sys.executable, "-m", "rvoslib.cli", "train", "--out", str(out), "--steps", "1",
                                 "--no-progress", "--pretrained", "none"], cwd=REPO, capture_output=True, text=True)
        assert result.returncode == 2, result.stderr
        assert f"is being written by process {holder.pid}" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert not (out / LOCK_NAME).exists()  # the holder released it when it exited


def test_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(shapes, tmp_path, caplog):
    out = tmp_path / "run"
    out.mkdir()
    pid = dead_pid()
    (out / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": "somewhere"}))
    with caplog.at_level(logging.WARNING, logger="rvoslib.run_folder"):
        summary = train(tiny_cfg(shapes, out, steps=1), device="cpu", progress=False)
    assert summary["steps"] == 1
    assert any("stale lock" in r.getMessage() and str(pid) in r.getMessage() for r in caplog.records)
    assert not (out / LOCK_NAME).exists()


# ----------------------------------------------------------------------------- temporaries and the log


def test_resume_removes_temporary_files_of_interrupted_writes_only(shapes, tmp_path, caplog):
    out = tmp_path / "run"
    train(tiny_cfg(shapes, out, steps=2), device="cpu", progress=False, stop_after=1)
    stale = [out / ".last.k3j2_x.tmp.pt", out / ".best.abc.tmp.pt", out / ".config.q1.tmp.json",
             out / ".log.zz.tmp.jsonl"]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    kept = [out / "notes.tmp.pt", out / ".last.pt.bak", out / "my.last.x.tmp.pt"]
    for path in kept:
        path.write_bytes(b"user file")
    with caplog.at_level(logging.WARNING, logger="rvoslib.run_folder"):
        summary = train(tiny_cfg(shapes, out, steps=2), device="cpu", progress=False, resume=True)
    assert summary["steps"] == 2
    assert not any(p.exists() for p in stale)
    assert all(p.read_bytes() == b"user file" for p in kept)
    assert any("temporary file" in r.getMessage() for r in caplog.records)


def test_remove_stale_temporaries_on_an_empty_folder_removes_nothing(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == []
    assert (tmp_path / "last.pt").exists()


def test_resume_drops_a_torn_last_log_line_with_a_warning(shapes, tmp_path, caplog):
    out = tmp_path / "run"
    train(tiny_cfg(shapes, out, steps=3), device="cpu", progress=False, stop_after=2)
    log = out / "log.jsonl"
    with log.open("a") as f:
        f.write('{"step": 3, "time": 1.2, "lo')  # a crash in the middle of a write
    with caplog.at_level(logging.WARNING, logger="rvoslib.run_folder"):
        summary = train(tiny_cfg(shapes, out, steps=3), device="cpu", progress=False, resume=True)
    assert summary["steps"] == 3
    assert any("torn last line" in r.getMessage() for r in caplog.records)
    steps = [r["step"] for r in read_log(out) if "loss" in r]
    assert steps == [1, 2, 3]
    assert log.read_text().endswith("\n")


def test_read_log_names_the_file_and_line_of_a_damaged_middle_line(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"step": 1}\n{"step": 2, oops\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"log.jsonl' line 2 is not JSON"):
        read_log(log)


def test_without_flock_a_live_pid_in_the_lock_file_refuses(tmp_path, monkeypatch):
    import socket

    from rvoslib import run_folder

    def no_flock(fd, op):
        raise OSError(37, "No locks available")

    monkeypatch.setattr(run_folder.fcntl, "flock", no_flock)
    out = tmp_path / "run"
    out.mkdir()
    live = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        (out / LOCK_NAME).write_text(json.dumps({"pid": live.pid, "host": socket.gethostname()}))
        with pytest.raises(RunFolderLockedError, match=f"process {live.pid}"):
            with run_folder_lock(out):
                pass
    finally:
        live.stdin.close()
        live.wait(timeout=30)
    with run_folder_lock(out):  # its process is gone: taken over
        assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()
