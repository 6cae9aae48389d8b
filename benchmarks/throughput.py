"""Sections 4 and 5: throughput of inference and of data loading.

4. ``inference``: frames per second of ``rvoslib.inference.segment_video`` on the blackswan sample
   (model time and end to end).
5. ``data``: clips per second of ``RVOSDataset`` + ``DataLoader`` (several ``num_workers``) from a
   frames folder, an mp4 and the synthetic 64 x 64 set, and ``rvoslib.io.read_video``, compared
   with the training-step rate of each preset (forward, losses, backward).
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import torch

from benchmarks.cases import train_step_fn
from benchmarks.common import REPO, SENTENCE, VIDEO_FOLDER, VIDEO_MP4, build, fmt_ratio, interleave, ratio, stats, timed


def section_inference(s: dict, device: torch.device, threads: int) -> tuple[dict, list]:
    from rvoslib.inference import segment_video

    dtype = torch.bfloat16 if device.type == "cuda" else None
    models, timings = {}, {}
    for preset in s["presets"]:
        models[preset] = build(preset)[0].to(device).eval()

    def case(preset):
        def fn():
            result = segment_video(VIDEO_FOLDER, SENTENCE, models[preset], device=device, dtype=dtype,
                                   max_frames=s["max_frames"], progress=False)
            timings.setdefault(preset, []).append(dict(result.timing, frames=result.num_frames))
        return fn

    times = interleave({p: case(p) for p in s["presets"]}, s["repeats"], device)
    result, rows = {"config": {**s, "device": str(device), "dtype": str(dtype), "video": str(VIDEO_FOLDER)}}, []
    for preset in s["presets"]:
        runs = timings[preset][-s["repeats"]:]
        frames = runs[0]["frames"]
        fps_model = statistics.median(r["frames"] / r["inference_s"] for r in runs)
        fps_total = frames / statistics.median(times[preset])
        result[preset] = {"frames": frames, "fps_model": fps_model, "fps_end_to_end": fps_total,
                          "times": stats(times[preset]), "runs": runs}
        rows.append(("4", f"segment_video frames/s, {preset} ({device.type}{', bf16' if dtype else ''}; "
                     f"{frames} frames of {VIDEO_FOLDER.name})",
                     f"{fps_model:.2f} (model) · {fps_total:.2f} (end to end)", "", ""))
    return result, rows


def loader_rate(dataset, clips: int, workers: int) -> dict:
    """Clips per second of a DataLoader over ``dataset`` (batch 1), after its first batch."""
    from torch.utils.data import DataLoader, RandomSampler

    from rvoslib.data import collate_clips

    sampler = RandomSampler(dataset, replacement=True, num_samples=clips)
    loader = DataLoader(dataset, batch_size=1, sampler=sampler, num_workers=workers, collate_fn=collate_clips)
    start, first = time.perf_counter(), None
    for i, _ in enumerate(loader):
        if i == 0:
            first = time.perf_counter()
    end = time.perf_counter()
    return {"clips_per_s": (clips - 1) / (end - first), "startup_s": first - start}


def section_data(s: dict, threads: int, train_steps: dict) -> tuple[dict, list]:
    from rvoslib.config import get_preset
    from rvoslib.data import RVOSDataset, read_ref_davis17, read_ref_youtube_vos
    from rvoslib.io import read_video

    cpu = torch.device("cpu")
    records = read_ref_davis17(REPO / "data_samples/davis", videos=[VIDEO_FOLDER.name])
    sources = {"frames folder": records,
               "mp4": [dataclasses.replace(r, frame_paths=None, video_path=VIDEO_MP4) for r in records],
               # the tiny preset's own training data: 64 x 64 PNG frames (Ref-YouTube-VOS layout)
               "synthetic 64x64": read_ref_youtube_vos(REPO / "data_samples/synthetic/train")}
    decode = interleave({"frames folder": lambda: read_video(VIDEO_FOLDER / "JPEGImages"),
                         "mp4": lambda: read_video(VIDEO_MP4)}, max(s["repeats"], 2), cpu)
    num = len(read_video(VIDEO_FOLDER / "JPEGImages")[0])
    result = {"config": s, "read_video_frames_per_s": {k: num / statistics.median(v) for k, v in decode.items()},
              "loading": {}, "train_step": {},
              "note": "loading runs in this process (num_workers=0, torch threads = --threads) or in DataLoader "
                      "workers (1 torch thread each); a fast training step is timed right after each loading "
                      "run (same round), a slow one once (or taken from section 3 at the same S, T, batch)"}
    rows = [("5", f"rvoslib.io.read_video frames/s ({num} frames 854x480): folder · mp4",
             " · ".join(f"{v:.0f}" for v in result["read_video_frames_per_s"].values()), "", "")]
    for preset in s["presets"]:
        cfg = get_preset(preset)
        size, frames, batch = cfg.model.backbone.image_size, cfg.model.num_frames, cfg.train.batch_size
        known = train_steps.get(preset)
        if known is not None and (known["size"], known["frames"], known["batch"]) != (size, frames, batch):
            known = None
        step_fn = None
        if known is None:
            step_fn = train_step_fn(preset, size, frames, batch)
            step_fn()  # warm-up
            first = timed(step_fn, cpu)
            if first > 2.0:  # slow: measure once, not in every round
                known = {"median_s": statistics.median([first, timed(step_fn, cpu)]), "from": "section 5, once"}
                step_fn = None
        datasets = {name: RVOSDataset(recs, clip_len=frames, size=size, train=True) for name, recs in sources.items()}
        runs = {(name, w): [] for name in sources for w in s["workers"]}
        for _ in range(s["repeats"]):
            for (name, workers), out in runs.items():
                load = loader_rate(datasets[name], s["clips"], workers)
                step_s = (statistics.median(timed(step_fn, cpu) for _ in range(3)) if step_fn is not None
                          else known["median_s"])
                load.update(train_step_s=step_s, train_clips_per_s=batch / step_s)
                load["loading_over_training"] = load["clips_per_s"] / load["train_clips_per_s"]
                out.append(load)
        steps = [r["train_step_s"] for rr in runs.values() for r in rr]
        result["train_step"][preset] = {"size": size, "frames": frames, "batch": batch, **stats(steps),
                                        "clips_per_s": batch / statistics.median(steps),
                                        "from": "section 5, each round" if step_fn is not None else known.get("from")}
        rows.append(("5", f"training step, {preset} (T={frames}, S={size}, batch {batch}): clips/s",
                     f"{result['train_step'][preset]['clips_per_s']:.2f}", "", ""))
        for name in sources:
            loads = []
            for workers in s["workers"]:
                rr = runs[(name, workers)]
                entry = {"clips_per_s": statistics.median(r["clips_per_s"] for r in rr),
                         "loading_over_training": ratio([r["clips_per_s"] for r in rr],
                                                        [r["train_clips_per_s"] for r in rr]),
                         "runs": rr}
                result["loading"][f"{preset}/{name}/workers={workers}"] = entry
                loads.append((workers, entry))
            best = max(e["loading_over_training"]["median"] for _, e in loads)
            rows.append(("5", f"{preset} from {name}: clips/s loaded ("
                         + " · ".join(f"{w} workers" for w, _ in loads) + "); loading / training",
                         " · ".join(f"{e['clips_per_s']:.1f}" for _, e in loads) + "; "
                         + " · ".join(fmt_ratio(e["loading_over_training"]) for _, e in loads), "> 1x",
                         "yes" if best > 1 else "no"))
    return result, rows
