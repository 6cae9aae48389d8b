"""Section 2, ``cube``: cube-frame attention against full and frame-only attention.

One ``SpatioTemporalLayer`` forward + backward per T: time and peak memory of each attention
mode, the attention kernels alone, which ``scaled_dot_product_attention`` kernel ran, the same
with the MATH kernel forced, the counted multiply-adds, and (on CPU, at the target T) the time by
kind of op (target: cube-frame >= 4x faster than full at the target T).
"""

from __future__ import annotations

from typing import Callable

import torch

from benchmarks.cases import case_attention, case_st_layer
from benchmarks.common import interleave, ratio, sdpa_kernels, self_cpu_by_op, short_kernel, stats
from benchmarks.memory import peak_memory


def layer_macs(mode: str, frames: int, dim: int, grid: list, cube: int, ffn: int) -> dict:
    """Forward multiply-accumulates of one layer: projections, FFN and attention (QK^T and AV).

    Counts what the implementation computes: the cube block projects the padded windows.
    """
    from rvoslib.cubes import padded_size
    from rvoslib.spatiotemporal import attention_cost

    h, w = grid
    tokens = frames * h * w
    padded = frames * padded_size(h, cube) * padded_size(w, cube)
    blocks = {"full": ["full"], "frame": ["frame"], "cube-frame": ["cube", "frame"]}[mode]
    projections = sum(4 * dim * dim * (padded if b == "cube" else tokens) for b in blocks)
    attention = 2 * dim * attention_cost(mode, frames, h, w, cube)  # pairs x c per head, x heads, x 2
    return {"projections": projections, "ffn": 2 * dim * ffn * tokens, "attention": attention,
            "total": projections + 2 * dim * ffn * tokens + attention}


def op_breakdown(fn: Callable) -> dict:
    """CPU time by kind of op (self time of the ops) in one run of ``fn`` (forward + backward)."""
    kinds = {"attention kernels": 0.0, "matmuls (projections, FFN)": 0.0,
             "other (norms, GELU, cube partition/pad, masks, copies, adds)": 0.0}
    for op, self_us in self_cpu_by_op(fn).items():
        if "scaled_dot_product" in op or "flash_attention" in op:
            kinds["attention kernels"] += self_us
        elif op in ("aten::addmm", "aten::mm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear"):
            kinds["matmuls (projections, FFN)"] += self_us
        else:
            kinds["other (norms, GELU, cube partition/pad, masks, copies, adds)"] += self_us
    total = sum(kinds.values())
    return {"share": {k: v / total for k, v in kinds.items()}, "seconds": {k: v / 1e6 for k, v in kinds.items()},
            "total_s": total / 1e6}


def section_cube(s: dict, device: torch.device, threads: int) -> tuple[dict, list]:
    modes = ("full", "cube-frame", "frame")
    common = {k: s[k] for k in ("dim", "heads", "grid", "cube")}
    per_t, rows = {}, []
    for frames in s["frames"]:
        layer_cases, attn_cases, kernels = {}, {}, {}
        timed_kernels = ["default"] + (["math"] if frames in s["math_time_frames"] else [])
        for kernel in timed_kernels:
            for mode in modes:
                params = {**common, "mode": mode, "frames": frames, "kernel": kernel, "device": str(device)}
                layer_cases[(mode, kernel)] = case_st_layer(ffn=s["ffn"], **params)[0]
                if mode != "frame":
                    attn_cases[(mode, kernel)] = case_attention(**params)[0]
                if kernel == "default" or frames == s["target_frames"]:
                    kernels[(mode, kernel)] = short_kernel(sdpa_kernels(layer_cases[(mode, kernel)], device))
        cases = {("layer", *k): v for k, v in layer_cases.items()}
        cases.update({("attention", *k): v for k, v in attn_cases.items()})
        times = interleave(cases, s["repeats"], device)
        entry = {"times": {"/".join(k): stats(t) for k, t in times.items()},
                 "kernels": {"/".join(k): v for k, v in kernels.items()},
                 "macs": {mode: layer_macs(mode, frames, s["dim"], s["grid"], s["cube"], s["ffn"]) for mode in modes}}
        for kernel in timed_kernels:
            entry[f"layer_full_over_cube_frame_{kernel}"] = ratio(times[("layer", "full", kernel)],
                                                                  times[("layer", "cube-frame", kernel)])
            entry[f"layer_frame_over_cube_frame_{kernel}"] = ratio(times[("layer", "frame", kernel)],
                                                                   times[("layer", "cube-frame", kernel)])
            entry[f"attention_full_over_cube_frame_{kernel}"] = ratio(times[("attention", "full", kernel)],
                                                                      times[("attention", "cube-frame", kernel)])
        macs = entry["macs"]
        entry["macs_full_over_cube_frame"] = {"layer": macs["full"]["total"] / macs["cube-frame"]["total"],
                                              "attention": macs["full"]["attention"] / macs["cube-frame"]["attention"]}
        memory = {}
        kernels_for_memory = ["default"] + (["math"] if frames in s["math_memory_frames"] else [])
        if frames in s["memory_frames"]:
            for kernel in kernels_for_memory:
                for mode in modes:
                    params = {**common, "ffn": s["ffn"], "mode": mode, "frames": frames, "kernel": kernel,
                              "device": str(device)}
                    memory[f"{mode}/{kernel}"] = peak_memory("st_layer", params, threads, device)
        entry["peak_memory"] = memory
        if frames == s["target_frames"] and device.type == "cpu":
            ops = {mode: op_breakdown(layer_cases[(mode, "default")]) for mode in ("full", "cube-frame")}
            matmul = "matmuls (projections, FFN)"
            # if cube-frame's attention and every other op were free, its matmuls alone would remain
            ops["ceiling_full_over_cube_frame_matmuls_only"] = (ops["full"]["total_s"]
                                                               / ops["cube-frame"]["seconds"][matmul])
            entry["op_breakdown_default"] = ops
        per_t[frames] = entry
    target = per_t.get(s["target_frames"])
    result = {"config": {**s, "device": str(device)}, "per_frames": per_t,
              "target": {"frames": s["target_frames"], "layer_full_over_cube_frame_min": 4.0}}

    def series(key, fmt="{:.2f}x"):
        return " · ".join(f"T={t}: " + fmt.format(per_t[t][key]["median"]) for t in per_t if key in per_t[t])

    tag = f"d={s['dim']}, {s['heads']} heads, {s['grid'][0]}x{s['grid'][1]}, k={s['cube']}, {device.type}"
    met = target is not None and target["layer_full_over_cube_frame_default"]["median"] >= 4.0
    rows += [
        ("2", f"layer fwd+bwd time, full / cube-frame ({tag})", series("layer_full_over_cube_frame_default"),
         f">= 4x at T={s['target_frames']}", "yes" if met else "no"),
        ("2", "attention kernels only fwd+bwd, full / (cube + frame)", series("attention_full_over_cube_frame_default"),
         "", ""),
        ("2", "layer fwd+bwd time, frame-only / cube-frame", series("layer_frame_over_cube_frame_default"), "", ""),
        ("2", "MATH kernel forced: layer full / cube-frame", series("layer_full_over_cube_frame_math"), "", ""),
        ("2", "MATH kernel forced: attention only, full / (cube + frame)",
         series("attention_full_over_cube_frame_math"), "", ""),
        ("2", "forward multiply-adds (counted), full / cube-frame",
         " · ".join(f"T={t}: layer {e['macs_full_over_cube_frame']['layer']:.2f}x, attention "
                    f"{e['macs_full_over_cube_frame']['attention']:.1f}x" for t, e in per_t.items()), "", ""),
    ]
    if target is not None:
        rows.append(("2", f"kernel that ran at T={s['target_frames']} (default; forced)",
                     ", ".join(f"{m}: {target['kernels'][m + '/default']}; {target['kernels'][m + '/math']}"
                               for m in modes), "", ""))
    for t, e in per_t.items():
        for kernel in ("default", "math"):
            mem = {m: e["peak_memory"].get(f"{m}/{kernel}", {}) for m in modes}
            if all("peak_mib" in v for v in mem.values()):
                rows.append(("2", f"peak memory fwd+bwd at T={t}, {kernel} kernel (MiB): full / cube-frame / frame",
                             " / ".join(f"{mem[m]['peak_mib']:.0f}" for m in modes), "", ""))
    if target is not None and "op_breakdown_default" in target:
        ops = target["op_breakdown_default"]
        for mode in ("full", "cube-frame"):
            rows.append(("2", f"time by op kind at T={s['target_frames']}, {mode} (fwd+bwd, profiler)",
                         ", ".join(f"{k.split(' (')[0]} {100 * v:.0f}%" for k, v in ops[mode]["share"].items()), "", ""))
        rows.append(("2", f"ceiling at T={s['target_frames']}: full / cube-frame's matmuls alone (attention and "
                     "all other ops free)", f"{ops['ceiling_full_over_cube_frame_matmuls_only']:.2f}x", "", ""))
    return result, rows
