"""The playground: type a sentence, see what a model segments in a synthetic clip.

:class:`Playground` holds a model and one synthetic shapes clip (``rvoslib.data.synthetic``).
:meth:`Playground.update` takes whatever a learner typed and returns a
:class:`PlaygroundResult`: the model's masks for every frame (and, on request, its stage-2
word -> video attention), or a plain message when the sentence is empty or uses words the
synthetic sentences never use (the tiny model has only seen those). Nothing here raises on
what a learner types. :meth:`Playground.new_clip` draws the next clip.

:func:`playground_widget` wraps it in ipywidgets (a text box, a "new clip" button, an
attention check box, the picture and a message line); :meth:`Playground.figure` draws the
same picture as a static matplotlib figure for readers without a kernel. Both import their
plotting libraries lazily. Tested without a browser by calling ``update``.
"""

from __future__ import annotations

import io as _io
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch
from einops import rearrange

from rvoslib import viz
from rvoslib.probes import real_words
from rvoslib.data import expressions, shapes, synthetic
from rvoslib.online import carries_history, prepare_frames, upsample_logits, window_ranges

logger = logging.getLogger(__name__)

MASK_COLOR = (0, 255, 255)  # cyan: not one of the synthetic shapes' colours
PUNCTUATION = re.compile(r"[.,;:!?\"']")


def known_words() -> frozenset[str]:
    """Every word the synthetic generator puts in a referring sentence (its whole vocabulary)."""
    words = {"the", *shapes.SHAPES, *shapes.COLOURS, *shapes.SIZES, *expressions._NOUNS}
    phrases = [p for group in expressions._MOTION_PHRASES.values() for p in group]
    phrases += [p for group in expressions._RELATION_PHRASES.values() for p in group]
    for phrase in phrases:
        words.update(phrase.split())
    return frozenset(words)


def check_sentence(sentence: Any) -> tuple[list[str], Optional[str]]:
    """Split a typed sentence into lower-case words; a message instead when it cannot be used.

    Returns:
        (words, None) for a usable sentence, or ([], message) for an empty one or one with
        words outside :func:`known_words` (the message names them and says what to try).
    """
    text = PUNCTUATION.sub(" ", str(sentence or "")).lower()
    words = text.split()
    if not words:
        return [], "Type a sentence about the clip, e.g. 'the red circle' or 'the shape moving left'."
    unknown = sorted({w for w in words if w not in known_words()})
    if unknown:
        return [], (f"The tiny model only knows the words of the synthetic sentences; it has never seen "
                    f"{', '.join(repr(w) for w in unknown)}. Use colours ({', '.join(shapes.COLOURS)}), "
                    f"shapes ({', '.join(shapes.SHAPES)}), sizes (small, large), motions "
                    f"(moving left / right / up / down, bouncing, standing still) or relations "
                    f"(left of, right of, above, below).")
    return words, None


@dataclass
class PlaygroundResult:
    """What :meth:`Playground.update` returns for one sentence.

    Attributes:
        sentence: as typed.
        message: a plain explanation when nothing was segmented (empty or unknown words), else None.
        probabilities: (F, H, W) float32 mask probabilities for the F frames, or None.
        attention: (F, h, w) float32 stage-2 word -> video attention, mean over the sentence's
            words (each window's T maps sum to 1), or None when not asked for.
        overlaps: per object of the clip, ``(description, IoU of the mask with the object over
            the clip)``, best first.
        seconds: time of the model's forward passes and the bookkeeping.
    """

    sentence: str
    message: Optional[str] = None
    probabilities: Optional[np.ndarray] = None
    attention: Optional[np.ndarray] = None
    overlaps: list[tuple[str, float]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.message is None

    @property
    def masks(self) -> Optional[np.ndarray]:
        """(F, H, W) bool, probability above 0.5."""
        return None if self.probabilities is None else self.probabilities > 0.5

    def summary(self) -> str:
        """One line: the message, or which object the mask covers best."""
        if not self.ok:
            return self.message
        if not self.overlaps:
            return f"{self.sentence!r}: done in {self.seconds:.2f} s"
        (best, iou), rest = self.overlaps[0], self.overlaps[1:]
        others = "; ".join(f"{name} {value:.2f}" for name, value in rest)
        return (f"{self.sentence!r}: the mask matches the {best} best (IoU {iou:.2f})"
                + (f"; others: {others}" if others else "") + f". {self.seconds:.2f} s")


def describe(obj: shapes.ShapeObject) -> str:
    """"large red circle (moving left)"."""
    motion = "static" if obj.motion == "static" else f"moving {obj.motion}" if obj.motion != "bouncing" else "bouncing"
    return f"{obj.size} {obj.colour} {obj.shape} ({motion})"


class Playground:
    """A model, one synthetic clip, and the sentence -> masks step (see the module docstring).

    Args:
        model: a VLPRVOS in eval mode (e.g. from ``rvoslib.checkpoint.model_from_checkpoint``).
        seed: seed of the first clip; each :meth:`new_clip` takes the next one.
        num_frames: frames per clip (the model runs over them window by window, with history).
        hard: clips with look-alike twins (motion needed to tell them apart).
    """

    def __init__(self, model: Any, seed: int = 0, num_frames: int = 8, hard: bool = False):
        self.model = model
        self.seed = seed
        self.num_frames = num_frames
        self.hard = hard
        self.size = model.cfg.backbone.image_size
        self.window = model.cfg.num_frames
        self.video = self._make_video(seed)

    def _make_video(self, seed: int) -> synthetic.SyntheticVideo:
        return synthetic.generate_videos(1, seed=seed, split="playground", num_frames=self.num_frames,
                                         size=max(self.size, 32), hard=self.hard)[0]

    def new_clip(self) -> synthetic.SyntheticVideo:
        """Draw the next clip (seed + 1) and make it the current one."""
        self.seed += 1
        self.video = self._make_video(self.seed)
        return self.video

    @property
    def examples(self) -> list[str]:
        """The sentences the generator wrote for the current clip (each refers to one object)."""
        return [e["text"] for e in self.video.expressions]

    def update(self, sentence: Any, attention: bool = False) -> PlaygroundResult:
        """Segment ``sentence`` in the current clip; a message instead of an error for unusable text."""
        start = time.perf_counter()
        _, message = check_sentence(sentence)
        if message is not None:
            return PlaygroundResult(str(sentence or ""), message=message)
        text = str(sentence).strip()
        probabilities, maps = self._run(text, attention)
        overlaps = self._overlaps(probabilities > 0.5)
        return PlaygroundResult(text, probabilities=probabilities, attention=maps, overlaps=overlaps,
                                seconds=time.perf_counter() - start)

    @torch.inference_mode()
    def _run(self, text: str, attention: bool) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """(F, H, W) probabilities and optionally (F, h, w) stage-2 attention, window by window.

        The windows are those of online inference (``rvoslib.online``): consecutive, the last one
        shorter, history carried from one to the next.
        """
        model, frames = self.model, self.video.frames  # frames (F, H, W, 3) uint8
        device = next(model.parameters()).device
        tokens = model.tokenize([text]).to(device)  # (1, L_ctx)
        windows = window_ranges(len(frames), self.window)
        carry = carries_history(model, len(windows))
        probabilities = np.zeros(frames.shape[:3], np.float32)
        maps = np.zeros((len(frames), *model.vision.grid_size), np.float32) if attention else None
        history = None
        for span in windows:
            clip = prepare_frames(frames[span.start:span.stop], self.size).to(device)[None]  # (1, n, 3, S, S)
            out = model(clip, tokens, history, record_attention=attention)
            history = out["history"] if carry else None
            logits = upsample_logits(out["pred_masks"], frames.shape[1:3])[0]  # (n, H, W)
            probabilities[span.start:span.stop] = torch.sigmoid(logits).cpu().numpy()
            if attention:
                maps[span.start:span.stop] = self._stage2_map(out["attn"])
        return probabilities, maps

    def _stage2_map(self, attn: dict) -> np.ndarray:
        """(T, h, w): stage 2's word -> video attention, mean over the sentence's real words."""
        keep = real_words(attn)[0]  # (L,)
        w2v = attn["fusion"]["word_to_video"][0][keep].mean(0)  # (T*h*w,)
        h, w = self.model.vision.grid_size
        return rearrange(w2v, "(t h w) -> t h w", h=h, w=w).float().cpu().numpy()

    def _overlaps(self, masks: np.ndarray) -> list[tuple[str, float]]:
        """(description, IoU over the clip) per object, best first."""
        rows = []
        for obj in self.video.objects:
            target = self.video.id_maps == obj.obj_id  # (F, H, W)
            union = (masks | target).sum()
            rows.append((describe(obj), float((masks & target).sum() / union) if union else 0.0))
        return sorted(rows, key=lambda row: -row[1])

    # ------------------------------------------------------------------ pictures

    def figure(self, result: Optional[PlaygroundResult] = None, width: float = 1.9):
        """Static picture: the frames with the mask (cyan), and the attention row when present.

        The attention row shows the raw patch grid (nearest), one colour scale for the clip,
        with a colour bar. Without a usable result the frames are drawn alone with the message
        as the title.
        """
        import matplotlib.pyplot as plt

        frames = self.video.frames
        rows = 2 if result is not None and result.attention is not None else 1
        fig, axes = plt.subplots(rows, len(frames), figsize=(width * len(frames), width * rows + 0.6),
                                 squeeze=False)
        plt.close(fig)
        shown = frames if result is None or not result.ok else viz.overlay_masks(frames, result.masks,
                                                                                  colors=[MASK_COLOR], alpha=0.45)
        for t, ax in enumerate(axes[0]):
            ax.imshow(shown[t], interpolation="nearest")
            ax.set_title(f"t={t}", fontsize=8)
            ax.set_axis_off()
        title = "no sentence yet" if result is None else result.summary()
        fig.suptitle(_wrap(title, 150), fontsize=9)
        fig.subplots_adjust(left=0.01, right=0.92 if rows == 2 else 0.99, bottom=0.02,
                            top=0.80 if rows == 1 else 0.86, wspace=0.05, hspace=0.15)
        if rows == 2:
            self._attention_row(fig, axes[1], result.attention)
        return fig

    def _attention_row(self, fig, axes, attention: np.ndarray) -> None:
        """Raw patch grids (nearest) of the stage-2 attention, one scale, every object outlined in
        white, and a colour bar."""
        import matplotlib.cm
        import matplotlib.colors

        lo, hi = 0.0, max(float(attention.max()), 1e-12)
        frames = self.video.frames
        for t, ax in enumerate(axes):
            image = viz.patch_grid_image(attention[t], frames.shape[1:3], "magma", lo, hi)  # (H, W, 3)
            ax.imshow(viz.outline(image, self.video.id_maps[t] > 0, colors=[(255, 255, 255)]),
                      interpolation="nearest")
            ax.set_title(f"stage 2, t={t}", fontsize=7)
            ax.set_axis_off()
        box = axes[-1].get_position()  # the colour bar goes right of the last map, after the layout is fixed
        scale = matplotlib.cm.ScalarMappable(norm=matplotlib.colors.Normalize(lo, hi), cmap="magma")
        bar = fig.colorbar(scale, cax=fig.add_axes([box.x1 + 0.005, box.y0, 0.008, box.height]))
        bar.ax.tick_params(labelsize=7)
        bar.set_label("share of the window's\nword -> video attention", fontsize=7)


def _wrap(text: str, width: int) -> str:
    """Break a long line at spaces so a title fits."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join(lines + [line])


def figure_png(fig, dpi: int = 90) -> bytes:
    """PNG bytes of a matplotlib figure (for an ipywidgets Image)."""
    buffer = _io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def playground_widget(playground: Playground, sentence: Optional[str] = None):
    """Text box, "new clip" button, attention check box, picture and message, wired to ``playground``.

    Every change redraws at once (the text box on Enter or when it loses focus). The returned
    VBox has ``.redraw()`` and ``.controls`` (dict of the widgets) for use without a browser.
    """
    import ipywidgets as widgets

    text = widgets.Text(value=sentence if sentence is not None else playground.examples[0],
                        description="sentence", continuous_update=False,
                        layout=widgets.Layout(width="60%"))
    button = widgets.Button(description="new clip", tooltip="draw another synthetic clip")
    attention = widgets.Checkbox(value=False, description="stage-2 attention")
    message = widgets.HTML()
    examples = widgets.HTML()
    image = widgets.Image(format="png")

    def redraw(*_) -> PlaygroundResult:
        result = playground.update(text.value, attention=attention.value)
        examples.value = "<b>this clip's own sentences:</b> " + " | ".join(playground.examples)
        message.value = result.summary()
        image.value = figure_png(playground.figure(result))
        return result

    def next_clip(_=None) -> None:
        playground.new_clip()
        redraw()

    text.observe(redraw, names="value")
    attention.observe(redraw, names="value")
    button.on_click(next_clip)
    box = widgets.VBox([widgets.HBox([text, button, attention]), examples, message, image])
    box.redraw, box.next_clip = redraw, next_clip
    box.controls = {"text": text, "button": button, "attention": attention, "message": message, "image": image}
    redraw()
    return box
