"""Section 3, ``train``: activation checkpointing of the frozen CLIP blocks in a training step.

A training step (forward, ``rvoslib.losses.compute_losses``, backward; no optimizer update) with
and without ``backbone.grad_checkpointing``: time, peak memory (target: >= 40% less), and whether
the gradients are identical.
"""

from __future__ import annotations

import gc

import torch

from benchmarks.cases import case_train_step
from benchmarks.common import fmt_ratio, interleave, ratio, stats
from benchmarks.memory import peak_memory


def gradients(model) -> dict:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def train_times_and_gradients(params: dict, repeats: int, device: torch.device) -> dict:
    """In one process: gradients with and without checkpointing (same model and inputs), then
    interleaved step times."""
    run, reset, model = case_train_step(**params, device=str(device))

    def step(flag):
        def fn():
            reset()
            model.vision.grad_checkpointing = flag
            run()
        return fn

    # gradients with and without checkpointing, same model and inputs
    step(False)()
    plain = gradients(model)
    step(True)()
    ckpt = gradients(model)
    identical = plain.keys() == ckpt.keys() and all(torch.equal(plain[n], ckpt[n]) for n in plain)
    max_diff = max((plain[n] - ckpt[n]).abs().max().item() for n in plain) if plain.keys() == ckpt.keys() else None
    frozen_with_grad = sum(p.grad is not None for p in model.clip.parameters())
    times = interleave({"off": step(False), "on": step(True)}, repeats, device, warmup=0)
    return {"times": times, "identical": identical, "max_diff": max_diff, "frozen_with_grad": frozen_with_grad}


def section_train(s: dict, device: torch.device, threads: int) -> tuple[dict, list]:
    params = {k: s[k] for k in ("preset", "size", "frames", "batch")}
    measured = train_times_and_gradients(params, s["repeats"], device)
    times, identical, max_diff = measured["times"], measured["identical"], measured["max_diff"]
    gc.collect()
    memory = {flag: peak_memory("train_step", {**params, "checkpointing": flag == "on", "device": str(device)},
                                threads, device, warmup=False) for flag in ("off", "on")}
    reduction = None
    if all("peak_mib" in m for m in memory.values()):
        reduction = 1 - memory["on"]["peak_mib"] / memory["off"]["peak_mib"]
    result = {"config": {**s, "device": str(device)}, "times": {k: stats(v) for k, v in times.items()},
              "time_on_over_off": ratio(times["on"], times["off"]), "peak_memory": memory,
              "peak_memory_reduction": reduction, "gradients_identical": identical,
              "gradients_max_abs_diff": max_diff, "frozen_params_with_grad": measured["frozen_with_grad"],
              "target": {"peak_memory_reduction_min": 0.40}}
    tag = f"{s['preset']}, S={s['size']}, T={s['frames']}, batch {s['batch']}, {device.type}"
    rows = [
        ("3", f"training step time, checkpointing on / off ({tag})", fmt_ratio(result["time_on_over_off"]), "", ""),
        ("3", "training step peak memory (MiB), off / on",
         " / ".join(f"{memory[k].get('peak_mib', float('nan')):.0f}" for k in ("off", "on")), "", ""),
        ("3", "peak memory cut by checkpointing",
         "n/a" if reduction is None else f"{100 * reduction:.1f}%", ">= 40%",
         "n/a" if reduction is None else ("yes" if reduction >= 0.40 else "no")),
        ("3", "gradients with / without checkpointing",
         "identical" if identical else f"max |diff| {max_diff:.2e}", "identical", "yes" if identical else "no"),
    ]
    return result, rows
