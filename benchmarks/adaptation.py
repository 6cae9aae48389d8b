"""Section 1, ``adaptation``: what the adaptation costs over the bare CLIP image tower.

The full VLPRVOS forward (``torch.inference_mode``) against open_clip's bare ``encode_image`` on
the same T frames (target <= 1.35x), with the share of each stage from profiler ranges (text
encoder; vision encoder split into frozen blocks / stage-1 cross-attention / temporal capture /
tap projections; fusion; spatio-temporal reasoner; mask head, final and auxiliary; pixel-text
similarity), and the vision encoder alone with the bottleneck stage 1 (``vision.stage1_dim``
default) and with a full-width one (``stage1_dim = D_v``).
"""

from __future__ import annotations

import inspect
import statistics

import torch

from benchmarks.common import autocast, build, clip_inputs, fmt_ratio, interleave, quiet_stderr, ratio, stats, sync


TOP_STAGES = ("prompts", "text", "vision", "fusion", "reasoner", "head", "similarity")


def profile_stages(model, video, tokens, device: torch.device, runs: int = 2) -> dict:
    """Seconds spent in each stage of ``runs`` forwards (summed), from torch.profiler ranges.

    Top-level modules get ranges through forward hooks (which synchronise on CUDA); inside the
    vision encoder, the library's own ranges (``rvoslib.vision.stage1``,
    ``rvoslib.vision.temporal_capture``) and hooks on the tap projections split the encoder.
    On CUDA the library's ranges time kernel launches only, so the vision split is left out.
    """
    from torch.profiler import ProfilerActivity, profile, record_function

    stack, handles = [], []

    def attach(module, name):
        def pre(*_):
            sync(device)
            ctx = record_function(f"bench.{name}")
            ctx.__enter__()
            stack.append(ctx)

        def post(*_):
            sync(device)
            stack.pop().__exit__(None, None, None)

        handles.extend([module.register_forward_pre_hook(pre), module.register_forward_hook(post)])

    for name in TOP_STAGES:
        attach(getattr(model, name), name)
    for proj in [*model.vision.tap_proj, model.vision.shallow_proj]:
        attach(proj, "vision_taps")
    try:
        with quiet_stderr(), torch.inference_mode(), autocast(device), \
                profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(runs):
                with record_function("bench.model"):
                    model(video, tokens)
                    sync(device)
    finally:
        for handle in handles:
            handle.remove()
    events = {e.key: e for e in prof.key_averages()}

    def seconds(key):
        event = events.get(key)
        return (event.cpu_time_total / 1e6, event.count) if event is not None else (0.0, 0)

    total = seconds("bench.model")[0]
    parts = {name: seconds(f"bench.{name}")[0] for name in TOP_STAGES}
    head_calls = seconds("bench.head")[1] // runs  # mask-head calls per forward
    vision = parts.pop("vision")
    split = {}
    if device.type == "cpu":
        split = {"vision: stage-1 cross-attention": seconds("rvoslib.vision.stage1")[0],
                 "vision: temporal capture": seconds("rvoslib.vision.temporal_capture")[0],
                 "vision: tap projections": seconds("bench.vision_taps")[0]}
        split = {"vision: frozen CLIP blocks (+ embedding)": vision - sum(split.values()), **split}
    else:
        split = {"vision encoder": vision}
    head = parts.pop("head")
    heads = ({"mask head": head} if head_calls <= 1 else
             {"mask head, final": head / head_calls, f"mask head, {head_calls - 1} auxiliary": head - head / head_calls})
    stages = {"prompt generator": parts.pop("prompts"), "text encoder": parts.pop("text"), **split,
              "fusion (stage 2)": parts.pop("fusion"), "spatio-temporal reasoner": parts.pop("reasoner"),
              **heads, "pixel-text similarity": parts.pop("similarity")}
    stages["other (wiring, history pooling)"] = total - sum(stages.values())
    return {"total_s": total, "stages_s": stages, "head_calls": head_calls, "runs": runs}


def section_adaptation(s: dict, device: torch.device, threads: int) -> tuple[dict, list]:
    model, cfg = build(s["preset"], s["size"], s["frames"])
    model.to(device).eval()
    width = model.vision.vision_width
    wide, _ = build(s["preset"], s["size"], s["frames"], clip=model.clip.model, stage1_dim=width)
    wide.to(device).eval()
    video, tokens, _ = clip_inputs(model, 1, s["frames"], s["size"], device)
    flat = video.flatten(0, 1)  # (T, 3, S, S)
    clip = model.clip.model
    with torch.inference_mode(), autocast(device):
        def vision_call(m):
            prompts = m.prompts(s["frames"])
            text = m.text(tokens, prompts["language"])
            history = m.initial_history(1)
            return lambda: m.vision(video, text["words"], text["word_pad"], prompts, history)

        cases = {"encode_image": lambda: clip.encode_image(flat), "model": lambda: model(video, tokens),
                 "vision": vision_call(model), "vision_full_width_stage1": vision_call(wide)}
        if "aux" in inspect.signature(model.forward).parameters:  # eval mode skips the auxiliary heads
            cases["model_with_aux_heads"] = lambda: model(video, tokens, aux=True)
        times = interleave(cases, s["repeats"], device)
    bare = times["encode_image"]
    profile = profile_stages(model, video, tokens, device)
    model_s = statistics.median(times["model"])
    stages = {name: {"share": sec / profile["total_s"], "x_encode_image": sec / profile["total_s"] * model_s
                     / statistics.median(bare)} for name, sec in profile["stages_s"].items()}
    counts, wide_counts = model.parameter_counts(), wide.parameter_counts()
    result = {
        "config": {**s, "device": str(device), "stage1_dim": model.vision.stage1_dim, "vision_width": width},
        "times": {name: stats(t) for name, t in times.items()},
        "model_over_encode_image": ratio(times["model"], bare),
        "vision_over_encode_image": ratio(times["vision"], bare),
        "vision_full_width_stage1_over_encode_image": ratio(times["vision_full_width_stage1"], bare),
        "model_with_aux_heads_over_encode_image": (ratio(times["model_with_aux_heads"], bare)
                                                   if "model_with_aux_heads" in times else None),
        "stages": stages,
        "profile": profile,
        "trainable_parameters": {"stage1_dim_default": counts["trainable"],
                                 "stage1_dim_default_vision": counts["trainable/vision"],
                                 "stage1_dim_full_width": wide_counts["trainable"],
                                 "stage1_dim_full_width_vision": wide_counts["trainable/vision"]},
        "target": {"model_over_encode_image_max": 1.35},
    }
    met = result["model_over_encode_image"]["median"] <= 1.35
    tag = f"{s['preset']}, S={s['size']}, T={s['frames']}, {device.type}"
    rows = [
        ("1", f"full VLPRVOS forward / bare encode_image ({tag})", fmt_ratio(result["model_over_encode_image"]),
         "<= 1.35x", "yes" if met else "no"),
        ("1", "vision encoder alone / encode_image", fmt_ratio(result["vision_over_encode_image"]), "", ""),
        ("1", f"vision encoder, full-width stage 1 (stage1_dim={width}) / encode_image",
         fmt_ratio(result["vision_full_width_stage1_over_encode_image"]), "", ""),
    ]
    if result["model_with_aux_heads_over_encode_image"] is not None:
        layers = model.cfg.spatiotemporal.layers
        rows.append(("1", f"full forward with the {layers - 1} auxiliary mask heads (aux=True, as in training) "
                     "/ encode_image", fmt_ratio(result["model_with_aux_heads_over_encode_image"]), "", ""))
    for name, share in stages.items():
        rows.append(("1", f"  share of the forward: {name}",
                     f"{100 * share['share']:.1f}% ({share['x_encode_image']:.3f}x encode_image)", "", ""))
    p = result["trainable_parameters"]
    rows.append(("1", f"trainable parameters (vision encoder): stage1_dim={model.vision.stage1_dim} vs {width}",
                 f"{p['stage1_dim_default'] / 1e6:.1f}M ({p['stage1_dim_default_vision'] / 1e6:.1f}M) vs "
                 f"{p['stage1_dim_full_width'] / 1e6:.1f}M ({p['stage1_dim_full_width_vision'] / 1e6:.1f}M)", "", ""))
    return result, rows
