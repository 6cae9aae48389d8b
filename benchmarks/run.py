"""Benchmarks of every stage of rvoslib's VLP-RVOS, measured side by side (issue 6).

Run from the repository root::

    .venv/bin/python -m benchmarks.run             # full run: about 10 min on 2 CPU cores
    .venv/bin/python -m benchmarks.run --quick     # smoke configuration: under a minute
    .venv/bin/python benchmarks/run.py --sections adaptation,cube --threads 2 --out /tmp/bench.json

It prints one table (markdown) and writes every number, with the machine it ran on, to
``benchmarks/results.json`` (``--out``). Sections (``--sections``, comma separated; the full
configuration below, ``--quick`` uses tiny sizes; ``settings`` holds both):

1. ``adaptation`` (``adaptation.py``): the full VLPRVOS forward (clip-b16 preset, random CLIP
   weights, S=352, T=6, batch 1, ``torch.inference_mode``) against open_clip's bare
   ``encode_image`` on the same 6 frames (target <= 1.35x), with the share of each stage, and the
   vision encoder alone with the bottleneck stage 1 and with a full-width one.
2. ``cube`` (``cube.py``): one ``SpatioTemporalLayer`` (d=256, 8 heads, 22 x 22 grid, k=4, FFN
   1024) forward + backward for T in 2, 4, 8, 16: cube-frame vs full vs frame-only attention,
   time and peak memory, the attention kernels alone, which ``scaled_dot_product_attention``
   kernel ran, and the same with the MATH kernel forced (target at T=8: cube-frame >= 4x faster
   than full).
3. ``train`` (``checkpointing.py``): a training step (forward, ``rvoslib.losses.compute_losses``,
   backward) of clip-b16 at S=352, T=6, batch 1, with and without activation checkpointing of the
   frozen CLIP blocks (``backbone.grad_checkpointing``): time, peak memory (target: >= 40% less),
   and whether the gradients are identical.
4. ``inference`` (``throughput.py``): frames per second of ``rvoslib.inference.segment_video``
   (tiny and clip-b16, random weights) on ``data_samples/davis/blackswan``; on a GPU too when
   there is one (bf16).
5. ``data`` (``throughput.py``): clips per second of ``RVOSDataset`` + ``DataLoader`` (num_workers
   0 and 2) from a frames folder and from an mp4 (the blackswan sample), and
   ``rvoslib.io.read_video``, compared with the training-step rate of the tiny and clip-b16 models.
6. ``tiny-train`` (``tiny_train.py``): the engine's real training step (``Trainer.train_step``,
   optimizer steps included) of the tiny preset as ``get_preset("tiny")`` defines it, on a batch
   from a synthetic set, against the bare ``encode_image`` forward + backward on the same B*T
   frames; training steps, clips and frames per minute, the data-loading share of a step, and the
   top ops of a profiled step.
7. ``streaming`` (``streaming.py``): peak memory of ``rvoslib segment`` (streamed window by window:
   mp4 overlay and mask PNGs written as it goes) on a generated 100-frame and 2000-frame video of
   the same size (320 x 240), each in a fresh subprocess, side by side with their ratio (target:
   about equal), and of ``segment_video`` (which returns every mask) for contrast.

Method:

* Ratios, not absolute times (the machine is shared and noisy): the cases compared in a row
  are timed in the same process, interleaved (A B C, then C B A, ...), ``--repeats`` rounds after
  one warm-up round; a ratio is the median of the per-round ratios, with [min-max] over rounds
  (``common.py``).
* ``torch.set_num_threads(--threads)`` (default 2) in this process and in every worker.
* Peak memory: on CPU each case runs in a fresh subprocess (this module, ``--worker``) that
  reads the kernel's peak-RSS counter around it; on CUDA ``torch.cuda.max_memory_allocated``
  (``memory.py`` says how, exactly).
* On CUDA every case runs under bf16 autocast (``tiny-train``: the engine's ``train.amp``) and
  is timed with ``torch.cuda.synchronize``.

Modules: ``common.py`` (timing, ratios, models and inputs, kernels, profiler), ``cases.py`` (the
cases a subprocess can run), ``memory.py`` (peak memory), one module per section (above), and
this one (settings, the command line, the table).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Optional

if __package__ in (None, ""):  # run as a file (python benchmarks/run.py): make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.adaptation import section_adaptation  # noqa: E402
from benchmarks.checkpointing import section_train  # noqa: E402
from benchmarks.common import REPO, cpu_name  # noqa: E402
from benchmarks.cube import section_cube  # noqa: E402
from benchmarks.memory import WORKER_TAG, worker  # noqa: E402
from benchmarks.streaming import section_streaming  # noqa: E402
from benchmarks.throughput import section_data, section_inference  # noqa: E402
from benchmarks.tiny_train import section_tiny_train  # noqa: E402

SECTIONS = ("adaptation", "cube", "train", "inference", "data", "tiny-train", "streaming")
PER_DEVICE = ("adaptation", "cube", "train", "inference", "tiny-train")  # also run on the GPU when there is one
SECTION_FUNCTIONS = {"adaptation": section_adaptation, "cube": section_cube, "train": section_train,
                     "inference": section_inference, "tiny-train": section_tiny_train,
                     "streaming": section_streaming}


def settings(quick: bool) -> dict:
    """What each section measures; ``quick`` is the smoke configuration (tiny sizes)."""
    if quick:
        return {
            "adaptation": {"preset": "tiny", "size": 64, "frames": 4, "repeats": 2},
            "cube": {"dim": 64, "heads": 4, "grid": [8, 8], "cube": 4, "ffn": 256, "frames": [2, 4],
                     "target_frames": 4, "math_time_frames": [4], "memory_frames": [4], "math_memory_frames": [],
                     "repeats": 2},
            "train": {"preset": "tiny", "size": 64, "frames": 4, "batch": 1, "repeats": 2},
            "inference": {"presets": ["tiny"], "max_frames": 8, "repeats": 1},
            "data": {"presets": ["tiny"], "clips": 6, "workers": [0, 2], "repeats": 1},
            "tiny-train": {"preset": "tiny", "videos": 4, "repeats": 2},
            "streaming": {"frames": [8, 24], "size": [48, 32], "repeats": 1},
        }
    return {
        "adaptation": {"preset": "clip-b16", "size": 352, "frames": 6, "repeats": 4},
        "cube": {"dim": 256, "heads": 8, "grid": [22, 22], "cube": 4, "ffn": 1024, "frames": [2, 4, 8, 16],
                 "target_frames": 8, "math_time_frames": [2, 4, 8], "memory_frames": [2, 4, 8, 16],
                 "math_memory_frames": [8, 16], "repeats": 3},
        "train": {"preset": "clip-b16", "size": 352, "frames": 6, "batch": 1, "repeats": 2},
        "inference": {"presets": ["tiny", "clip-b16"], "max_frames": None, "repeats": 2},
        "data": {"presets": ["tiny", "clip-b16"], "clips": 24, "workers": [0, 2], "repeats": 2},
        "tiny-train": {"preset": "tiny", "videos": 16, "repeats": 6},
        "streaming": {"frames": [100, 2000], "size": [320, 240], "repeats": 1},
    }


def machine_info(threads: int, devices: list) -> dict:
    cpu = cpu_name()
    import open_clip

    info = {"cpu": cpu, "logical_cpus": os.cpu_count(), "threads": threads, "torch": torch.__version__,
            "open_clip": open_clip.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "cuda_available": torch.cuda.is_available(), "devices": [str(d) for d in devices],
            "device_names": {str(d): (torch.cuda.get_device_name(d) if d.type == "cuda" else cpu) for d in devices},
            "load_average_start": os.getloadavg() if hasattr(os, "getloadavg") else None}
    return info


def print_table(rows: list, machine: dict) -> None:
    print(f"\nrvoslib benchmarks: {machine['cpu']}, {machine['threads']} threads, torch {machine['torch']}"
          + (f", GPU {machine['device_names']}" if machine["cuda_available"] else ""))
    print("\n| § | measurement | value [min-max over rounds] | target | met |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small smoke configuration (tiny sizes), < 1 min")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads in every process (default 2)")
    parser.add_argument("--repeats", type=int, default=None, help="timing rounds per section (default: per section)")
    parser.add_argument("--out", default=str(REPO / "benchmarks/results.json"), help="JSON file for all numbers")
    parser.add_argument("--no-gpu", action="store_true", help="CPU only even when CUDA is available")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # open_clip warns about random weights on the root logger
    if args.worker is not None:
        print(WORKER_TAG + json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0
    sections = [x.strip() for x in args.sections.split(",") if x.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {SECTIONS}")
    torch.set_num_threads(args.threads)
    conf = settings(args.quick)
    if args.repeats is not None:
        for value in conf.values():
            value["repeats"] = args.repeats
    devices = [torch.device("cpu")]
    if torch.cuda.is_available() and not args.no_gpu:
        devices.append(torch.device("cuda"))
    machine = machine_info(args.threads, devices)
    results = {"machine": machine, "quick": args.quick, "sections": {}, "table": []}
    rows, train_steps = [], {}
    start = time.perf_counter()
    for name in sections:
        for device in (devices if name in PER_DEVICE else [devices[0]]):
            t0 = time.perf_counter()
            print(f"[benchmarks] {name} on {device} ...", file=sys.stderr, flush=True)
            if name == "data":
                result, new_rows = section_data(conf[name], args.threads, train_steps)
            else:
                result, new_rows = SECTION_FUNCTIONS[name](conf[name], device, args.threads)
            if name == "train" and device.type == "cpu":
                c = conf[name]
                train_steps[c["preset"]] = {"size": c["size"], "frames": c["frames"], "batch": c["batch"],
                                            "median_s": result["times"]["off"]["median_s"],
                                            "from": "section 3 (checkpointing off)"}
            result["seconds"] = time.perf_counter() - t0
            results["sections"][name if device.type == "cpu" else f"{name}@{device.type}"] = result
            if device.type != "cpu":
                new_rows = [(r[0], f"[{machine['device_names'][str(device)]}] {r[1]}", *r[2:]) for r in new_rows]
            rows += new_rows
    machine["load_average_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    results["seconds"] = time.perf_counter() - start
    results["table"] = [dict(zip(("section", "measurement", "value", "target", "met"), r)) for r in rows]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    print_table(rows, machine)
    print(f"\n{results['seconds']:.0f} s; all numbers in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
