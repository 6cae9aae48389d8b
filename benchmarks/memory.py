"""Peak memory of one run of a case (``cases.CASES``), measured the same way for every section.

* On CPU each case runs in a fresh subprocess (``python -m benchmarks.run --worker SPEC``) that
  builds the model and inputs, runs the case once as a warm-up, frees what it can
  (``gc.collect``, glibc ``malloc_trim(0)``), resets the kernel's peak-RSS counter (writes 5 to
  ``/proc/self/clear_refs``), reads ``VmRSS``, runs the case once more and reads ``VmHWM``:
  peak = VmHWM - VmRSS, the resident memory the case needed on top of what was already there.
  Where ``/proc/self/clear_refs`` cannot be written (not Linux), it falls back to ``ru_maxrss``
  of a subprocess that runs the case minus ``ru_maxrss`` of one that only builds the same model
  and inputs.
* On CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus what was
  allocated before.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import resource
import subprocess
import sys
from typing import Callable

import torch

from benchmarks.cases import CASES
from benchmarks.common import REPO, sync, timed

WORKER_TAG = "BENCH_RESULT "


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _maxrss_mib() -> float:
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def worker(spec: dict) -> dict:
    """Run one case in this (fresh) process and report its peak memory (see the module docstring).

    ``spec``: ``case`` (a name in ``CASES``), ``params`` (its keyword arguments), ``threads``,
    ``how`` ("hwm", "maxrss-baseline" or "maxrss-case") and ``warmup``.
    """
    torch.set_num_threads(spec["threads"])
    run, reset = CASES[spec["case"]](**spec["params"])
    how = spec["how"]
    if how == "maxrss-baseline":
        return {"maxrss_mib": _maxrss_mib()}
    if how == "maxrss-case":
        run()
        return {"maxrss_mib": _maxrss_mib()}
    if spec.get("warmup", True):
        run()  # warm-up: allocator pools, oneDNN primitives, lazily built buffers
        reset()
    gc.collect()
    _malloc_trim()
    if not _reset_peak_rss():
        return {"error": "cannot reset the peak RSS (/proc/self/clear_refs)"}
    base = _status_kib("VmRSS")
    seconds = timed(run, torch.device("cpu"))
    peak = _status_kib("VmHWM")
    return {"peak_mib": (peak - base) / 1024, "baseline_rss_mib": base / 1024, "seconds": seconds}


def _spawn(case: str, params: dict, threads: int, how: str, warmup: bool = True, timeout: float = 900) -> dict:
    spec = json.dumps({"case": case, "params": params, "threads": threads, "how": how, "warmup": warmup})
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--worker", spec], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(WORKER_TAG):
            return json.loads(line[len(WORKER_TAG):])
    return {"error": f"worker exited with {proc.returncode}: {proc.stderr.strip()[-600:]}"}


def _can_reset_peak_rss() -> bool:
    return sys.platform.startswith("linux") and os.access("/proc/self/clear_refs", os.W_OK)


def peak_memory_cpu(case: str, params: dict, threads: int, warmup: bool = True) -> dict:
    """Peak extra resident memory (MiB) of one run of a case, in fresh subprocesses.

    ``warmup``: run the case once before the measured run (skipped for long cases, whose one-time
    allocations are small next to their peak).
    """
    if _can_reset_peak_rss():
        result = _spawn(case, params, threads, "hwm", warmup)
        result["method"] = ("fresh subprocess: VmHWM - VmRSS around the case, peak counter reset before it"
                            + ("" if warmup else "; no warm-up run"))
        return result
    base, run = _spawn(case, params, threads, "maxrss-baseline"), _spawn(case, params, threads, "maxrss-case")
    if "error" in base or "error" in run:
        return {"error": base.get("error") or run.get("error")}
    return {"peak_mib": run["maxrss_mib"] - base["maxrss_mib"],
            "method": "ru_maxrss(subprocess running the case) - ru_maxrss(subprocess building the same inputs)"}


def peak_memory_cuda(run: Callable, reset: Callable, device: torch.device) -> dict:
    run()
    reset()
    sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    run()
    sync(device)
    return {"peak_mib": (torch.cuda.max_memory_allocated(device) - base) / 2**20,
            "method": "torch.cuda.max_memory_allocated - memory_allocated before"}


def peak_memory(case: str, params: dict, threads: int, device: torch.device, warmup: bool = True) -> dict:
    if device.type == "cpu":
        return peak_memory_cpu(case, params, threads, warmup)
    run, reset = CASES[case](**params)
    return peak_memory_cuda(run, reset, device)
