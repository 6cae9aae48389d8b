"""The prompt inspector: where each vision or temporal prompt looks, with the numbers beside it.

:class:`PromptInspector` takes one forward pass's recorded vision attention
(``VLPRVOS(..., record_attention=True)["attn"]["vision"]``), the clip's frames and the masks
of the referred object and of every object. :meth:`PromptInspector.select` returns a
:class:`PromptView` for one (kind, block, prompt, frame): the maps, and the numbers of
``rvoslib.probes`` for that selection (attention mass and lift on the referent, the
distractors and the background; for a temporal prompt its share of attention per frame and
per token kind; how far its map is from the other prompts' maps; the block's stage-1 gate).
A prompt index outside the kind's count is an error, never wrapped.

:func:`inspector_widget` puts it behind ipywidgets: the prompt slider's range follows the
selected kind, the frame slider picks the frame whose prompt is shown (its panel is marked),
and a readout prints the numbers. :meth:`PromptInspector.figure` draws the same as a static
figure (raw patch grid beside the smoothed map, magma over grey frames, colour bar, referent
outlined in cyan and the other objects in white).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
from einops import rearrange

from rvoslib import probes, viz

KINDS = ("vision prompt", "temporal prompt")


@dataclass
class PromptView:
    """One selection of the inspector.

    Attributes:
        kind, block, prompt, frame: the selection (``frame``: the frame whose prompt is shown).
        maps: (K, h, w) attention on patches: K = 1 (a vision prompt over its frame) or
            K = T (a temporal prompt over every frame's patches).
        map_frames: the frame index of each map.
        mass, lift: (R,) region mass and lift (``probes.REGIONS`` order) of the maps together.
        frame_share: (T,) share of a temporal prompt's capture per frame (None for vision).
        kind_share: {token kind: share} of a temporal prompt's capture (None for vision).
        patch_share: the share of the prompt's attention that lands on patches at all.
        distance: largest total-variation distance between this map and the maps of the other
            prompts of the same kind (same frame for vision; all frames' prompts for temporal).
        gate: the block's stage-1 gate tanh(alpha), or None without stage 1 there.
    """

    kind: str
    block: int
    prompt: int
    frame: int
    maps: torch.Tensor
    map_frames: list[int]
    mass: torch.Tensor
    lift: torch.Tensor
    frame_share: Optional[torch.Tensor]
    kind_share: Optional[dict]
    patch_share: float
    distance: float
    gate: Optional[float]

    def readout(self) -> str:
        """The numbers, as a few lines of plain text."""
        lines = [f"{self.kind} {self.prompt} of frame {self.frame}, block {self.block}"
                 + ("" if self.gate is None else f" (stage-1 gate tanh(alpha) = {self.gate:+.3f})")]
        regions = ", ".join(f"{name} {m:.1%} (lift {l:.2f})"
                            for name, m, l in zip(probes.REGIONS, self.mass.tolist(), self.lift.tolist()))
        lines.append(f"of its attention on patches ({self.patch_share:.0%} of all it gives): {regions}")
        if self.frame_share is not None:
            shares = enumerate(self.frame_share.tolist())
            lines.append("share per frame: " + " | ".join(f"t={t} {s:.1%}" for t, s in shares))
            lines.append("share per token kind: " + ", ".join(f"{k} {v:.1%}" for k, v in self.kind_share.items()))
        other = "other vision prompts (same frame)" if self.kind == KINDS[0] else "other temporal prompts (all frames)"
        lines.append(f"largest difference from the {other}: total variation {self.distance:.3f} "
                     "(0 = the same map, 1 = no patch in common)")
        return "\n".join(lines)


class PromptInspector:
    """The recorded attention of one clip, ready to be looked at prompt by prompt.

    Args:
        attn: ``out["attn"]["vision"]`` of a recorded forward (batch row ``row`` is used).
        frames: (T, H, W, 3) uint8, the clip as shown.
        referent: (T, H, W) mask of the referred object.
        objects: (T, H, W) mask or id map of every object (0 = background).
        gates: ``probes.gate_values(model)`` (optional).
        row: which batch row of ``attn``.
        grid: the patch grid (h, w); default square (h = w = sqrt(N)).
    """

    def __init__(self, attn: dict, frames: Any, referent: Any, objects: Any,
                 gates: Optional[dict] = None, row: int = 0, grid: Optional[tuple[int, int]] = None):
        self.frames = np.asarray(frames)
        self.referent = np.asarray(referent) != 0
        self.others = (np.asarray(objects) != 0) & ~self.referent
        self.layout = attn["layout"]
        self.gates = gates or {}
        self.depth = len(attn["temporal"])
        self.num_frames = len(self.frames)
        n = self.layout["patches"].stop - self.layout["patches"].start
        side = int(round(n ** 0.5))
        self.grid = tuple(grid) if grid is not None else (side, side)
        if self.grid[0] * self.grid[1] != n:
            raise ValueError(f"grid {self.grid} does not hold the recording's {n} patches; pass grid=(h, w)")
        self.regions = probes.patch_regions(torch.from_numpy(self.referent),
                                            torch.from_numpy(self.others | self.referent), self.grid)  # (T, R, N)
        self.vision = [None if a is None else a[row].float().cpu() for a in attn["prompt_to_patch"]]  # (T, N_v, N)
        self.temporal = [None if a is None else a[row].float().cpu() for a in attn["temporal"]]  # (T*N_tp, T, S_f)
        self.counts = {
            KINDS[0]: 0 if self.vision[0] is None else self.vision[0].shape[1],
            KINDS[1]: 0 if self.temporal[0] is None else self.temporal[0].shape[0] // self.num_frames,
        }

    def select(self, kind: str, block: int, prompt: int, frame: int) -> PromptView:
        """The maps and numbers of one selection; out-of-range values raise ValueError."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        count = self.counts[kind]
        limits = (("block", block, self.depth), ("prompt", prompt, count), ("frame", frame, self.num_frames))
        for name, value, size in limits:
            if not 0 <= value < size:
                raise ValueError(f"{name} {value} is out of range: this model has {size} ({kind}s: {count})")
        return self._vision(block, prompt, frame) if kind == KINDS[0] else self._temporal(block, prompt, frame)

    def _vision(self, block: int, prompt: int, frame: int) -> PromptView:
        maps = self.vision[block][frame]  # (N_v, N): every vision prompt of this frame
        mass = probes.region_mass(maps[prompt], self.regions[frame])
        return PromptView(KINDS[0], block, prompt, frame, maps[prompt].reshape(1, *self.grid), [frame], mass,
                          probes.region_lift(mass, self.regions[frame]), None, None,
                          float(maps[prompt].sum()), float(probes.map_distance(maps)[prompt].max()),
                          self.gates.get(block))

    def _temporal(self, block: int, prompt: int, frame: int) -> PromptView:
        n_tp = self.counts[KINDS[1]]
        attn = self.temporal[block]  # (T*N_tp, T, S_f)
        patches = probes.temporal_patch_maps(attn[None], self.layout, n_tp)[0]  # (Tq, N_tp, Tk, N)
        chosen = patches[frame, prompt]  # (Tk, N)
        clip_regions = rearrange(self.regions, "t r n -> r (t n)")  # (R, T*N)
        mass = probes.region_mass(chosen.flatten(), clip_regions)
        share = probes.frame_share(attn[None], n_tp)[0, frame, prompt]  # (Tk,)
        kind_shares = probes.token_kind_share(attn[None], self.layout, n_tp)  # {kind: (1, Tq, N_tp, Tk)}
        kinds = {k: float(v[0, frame, prompt].sum()) for k, v in kind_shares.items()}
        flat = rearrange(patches, "tq p tk n -> (tq p) (tk n)")
        distance = float(probes.map_distance(flat)[frame * n_tp + prompt].max())
        return PromptView(KINDS[1], block, prompt, frame, chosen.reshape(-1, *self.grid), list(range(self.num_frames)),
                          mass, probes.region_lift(mass, clip_regions), share, kinds, float(chosen.sum()), distance,
                          self.gates.get(block))

    def figure(self, view: PromptView, cmap: str = "magma"):
        """Raw patch grid beside the smoothed map (grey frame), one colour scale from 0, colour bar,
        the referent outlined in cyan and the other objects in white."""
        index = view.map_frames
        titles = [f"frame {t}" + (" (the prompt's own)" if view.kind == KINDS[1] and t == view.frame else "")
                  + (f": {view.frame_share[t]:.0%}" if view.frame_share is not None else "") for t in index]
        fig = viz.attention_grid(view.maps, self.frames[index], titles=titles, ncols=len(index), cmap=cmap,
                                 vmin=0.0, vmax=float(view.maps.max()),
                                 outlines=[self.referent[index], self.others[index]],
                                 colorbar=True, raw_beside=True, background="gray", alpha=0.65,
                                 label="attention weight", figsize=(5.2 * len(index), 2.9))
        fig.suptitle(f"{view.kind} {view.prompt} of frame {view.frame}, block {view.block}: "
                     f"referent {view.mass[0]:.0%} (lift {view.lift[0]:.2f}), "
                     f"distractors {view.mass[1]:.0%} (lift {view.lift[1]:.2f})", fontsize=9)
        return fig


def inspector_widget(inspector: PromptInspector, kind: str = KINDS[1], block: Optional[int] = None):
    """Controls (kind, block, prompt, frame), the picture and the readout, wired to ``inspector``.

    The prompt slider's maximum follows the kind (so nothing wraps); every change redraws. The
    returned VBox has ``.redraw()`` and ``.controls`` for use without a browser.
    """
    import ipywidgets as widgets

    from rvoslib.playground import figure_png

    block = inspector.depth - 1 if block is None else block
    kinds = [k for k in KINDS if inspector.counts[k]]
    controls = {
        "kind": widgets.ToggleButtons(options=kinds, value=kind if kind in kinds else kinds[0]),
        "block": widgets.IntSlider(value=block, min=0, max=inspector.depth - 1, description="block"),
        "prompt": widgets.IntSlider(value=0, min=0, max=inspector.counts[kind if kind in kinds else kinds[0]] - 1,
                                    description="prompt"),
        "frame": widgets.IntSlider(value=0, min=0, max=inspector.num_frames - 1, description="frame"),
    }
    image = widgets.Image(format="png")
    readout = widgets.HTML()

    def redraw(*_) -> PromptView:
        view = inspector.select(controls["kind"].value, controls["block"].value, controls["prompt"].value,
                                controls["frame"].value)
        image.value = figure_png(inspector.figure(view))
        readout.value = "<pre>" + view.readout() + "</pre>"
        return view

    def kind_changed(change) -> None:
        slider = controls["prompt"]
        with slider.hold_trait_notifications():
            slider.value = min(slider.value, inspector.counts[change["new"]] - 1)
            slider.max = inspector.counts[change["new"]] - 1
        redraw()

    controls["kind"].observe(kind_changed, names="value")
    for name in ("block", "prompt", "frame"):
        controls[name].observe(redraw, names="value")
    box = widgets.VBox([widgets.HBox([controls["kind"], controls["block"]]),
                        widgets.HBox([controls["prompt"], controls["frame"]]), readout, image])
    box.redraw, box.controls = redraw, {**controls, "image": image, "readout": readout}
    redraw()
    return box
