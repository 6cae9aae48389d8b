# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: -all
#     notebook_metadata_filter: kernelspec,language_info,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
#   language_info:
#     codemirror_mode:
#       name: ipython
#       version: 3
#     file_extension: .py
#     mimetype: text/x-python
#     name: python
#     nbconvert_exporter: python
#     pygments_lexer: ipython3
#     version: 3.11.7
# ---

# %% [markdown]
# # 11 · Playground: type a sentence, see what the trained model segments
#
# The widget a learner plays with: a synthetic clip of coloured shapes, a text box, and the shipped
# trained tiny VLP-RVOS (`data_samples/tiny_rvos/rvos-tiny-synthetic.pt`) segmenting whatever you
# type, redrawn at once. Tick "stage-2 attention" to see where the sentence's words look in the clip
# (stage 2's word -> video attention, notebook 04), and press "new clip" for another video.
#
# The model only ever saw the synthetic sentences' words (colours, shapes, sizes, motions,
# relations), so a sentence with any other word, or an empty box, gets a plain message instead of
# a mask. It is a **weak** model: J&F about 0.71 on fresh clips (its sidecar,
# `rvos-tiny-synthetic.json`). It picks the right object for most appearance sentences (84 % of
# 135 on the fresh split of seed 9933), and its mistakes there are about shape: of its 21 wrong
# picks, 20 had another shape than the referent (`python -m benchmarks.appearance_errors
# --checkpoint shipped=data_samples/tiny_rvos/rvos-tiny-synthetic.pt --seed 9933`). It is clearly
# better than a guess, though still often wrong, on sentences that need motion to tell look-alike
# twins apart (hard-split motion J&F 0.67, where a motion-blind reader scores 0.42), and relation
# sentences are its weakest kind (0.60). Try to break it: "the circle" next to a square of the same
# colour is a good start.
#
# Under the widget, `rvoslib.playground.Playground` does the work: `update(sentence, attention)`
# runs the model window by window over the clip (the windows and history of online inference,
# `rvoslib.online`) and returns the mask probabilities, the attention when asked, and how well the
# mask matches each object of the clip (IoU over the clip); `figure(result)` draws it. The widget
# only wires a text box, a button and a check box to those two calls.
#
# What the readout computes: for the clip's $T$ frames and the typed sentence, the model gives logits
# $Z \in \mathbb{R}^{T \times H \times W}$; the mask is $M = [\sigma(Z) > 0.5]$, and for each object $k$
# of the clip, with true masks $O_k \in \{0,1\}^{T \times H \times W}$,
#
# $$\mathrm{IoU}_k = \frac{|M \cap O_k|}{|M \cup O_k|} \quad \text{(summed over all } T \text{ frames)},$$
#
# so a mask that covers two look-alikes scores about the same, and low, on both. The stage-2 map is
# one row per word $\ell$ of $\operatorname{softmax}_j(q_\ell \cdot k_j / \sqrt{d})$ over the $T \cdot h \cdot w$ video
# tokens $j$ (notebook 04); the picture is the mean of those rows over the sentence's words.
#
# **Needs:** CPU. **Time:** about 10 s in fast mode on 2 CPU cores (measured with `pytest --nbval`;
# loading the model is most of it); one update takes a few hundredths of a second of model time
# and well under a second with the picture (about 0.3 s).

# %%
from rvoslib.runtime import setup

rt = setup(seed=0)  # reads RVOSLIB_MODE = fast | full | auto (auto = full when CUDA is present);
# progress bars become text, which stay readable after the notebook is saved and reopened

import json

import torch
from einops import rearrange
from IPython.display import display

from rvoslib import probes
from rvoslib.checkpoint import model_from_checkpoint
from rvoslib.inference import prepare_frames
from rvoslib.playground import Playground, check_sentence, describe, playground_widget
from rvoslib.runtime import TINY_RVOS_CHECKPOINT, find_sample

model, model_cfg = model_from_checkpoint(find_sample(TINY_RVOS_CHECKPOINT), device=rt.device)
playground = Playground(model, seed=7, num_frames=8)  # a clip with look-alike twins
print(f"mode={rt.mode}  device={rt.device}  model window T={model_cfg.model.num_frames}, input {model_cfg.model.backbone.image_size} px")
print("this clip's objects:", [describe(o) for o in playground.video.objects])
print("the sentences the generator wrote for it:", playground.examples)

# %% [markdown]
# ## The playground
#
# Type a sentence and press Enter (or click outside the box). The top row shows each frame with the
# predicted mask in cyan; the line above it says which object of the clip the mask matches best and
# by how much (IoU over the 8 frames). With "stage-2 attention" ticked, a second row shows the raw
# patch grid of the sentence's word -> video attention (mean over its words; each 4-frame window
# shares one unit of it), every object outlined in white, with its colour bar. (The widget needs a
# live kernel; the static figure below shows the same for one sentence.)

# %%
display(playground_widget(playground))

# %% [markdown]
# ## The same, as static figures
#
# The clip's appearance sentence, with its attention; then one of its motion sentences, which has to
# tell the two purple circles apart by how they move. The model does tell them apart (its mask never
# touches the circle moving left), but it is not sure of the shape: it marks the bouncing circle in
# the first window of four frames and the green diamond, which bounces too, in the second, so the
# mask matches both about equally badly.

# %%
sentence = next(e["text"] for e in playground.video.expressions if e["kind"] == "appearance")
result = playground.update(sentence, attention=True)
print(result.summary())
playground.figure(result)

# %%
motion_sentence = next(e["text"] for e in playground.video.expressions if e["kind"] == "motion")
motion_result = playground.update(motion_sentence, attention=True)
print(motion_result.summary())
playground.figure(motion_result)

# %% [markdown]
# ## What works, what does not
#
# Every sentence the generator wrote for this clip (each refers to exactly one object), and the object
# the mask matches best. Then, for every object, the full appearance sentence that names it ("the
# large green diamond"): when two objects look alike that sentence is ambiguous and the model can
# only guess; when an object is unique, the trained model usually finds it.

# %%
for e in playground.video.expressions:
    meant = describe(next(o for o in playground.video.objects if o.obj_id == e["obj_id"]))
    best, iou = playground.update(e["text"]).overlaps[0]
    print(f"{e['kind']:10s} {e['text']!r:46s} best match {best} (IoU {iou:.2f})"
          f"{'' if best == meant else '  <- meant: ' + meant}")
print()
named = {}  # sentence -> the objects it fits
for obj in playground.video.objects:
    named.setdefault(f"the {obj.size} {obj.colour} {obj.shape}", []).append(describe(obj))
for typed, fits in named.items():
    best, iou = playground.update(typed).overlaps[0]
    verdict = "one of the objects it fits" if best in fits else "an object it does not fit"
    print(f"{typed!r:30s} fits {len(fits)} object(s): best match {best} (IoU {iou:.2f}), {verdict}")

# %% [markdown]
# And what happens with text the model cannot use: nothing runs, and the message says why.

# %%
empty = playground.update("")
unknown = playground.update("the dog chasing a ball")
print(empty.summary())
print(unknown.summary())

# %% [markdown]
# ## Summary
#
# * `Playground.update(sentence, attention=False)` runs the trained model over the clip window by
#   window (history carried) and returns mask probabilities, optionally stage 2's attention, and
#   the IoU of the mask with every object; empty or unknown text gives a message, not an error.
# * The widget wires a text box, a "new clip" button and an attention check box to `update` and
#   `figure`; the static figure shows the same for readers without a kernel.
# * The trained tiny model finds objects named by a unique appearance and guesses between
#   look-alikes; its stage-2 attention looks at objects, not at the one you meant (notebook 04).
#
# ## Exercises
#
# 1. **Predict, then run.** Find a clip (press "new clip", or `Playground(model, seed=s)`) with two
#    look-alike objects moving differently, and type a motion sentence for each ("the red circle
#    moving left"). Predict how often the model picks the right one, then count over 10 clips.
# 2. **Change one thing.** Make `Playground(model, seed=0, num_frames=8, hard=True)` (every clip has
#    twins) and repeat the table of "what works": how many named objects are found now?
# 3. **Re-derive a piece.** The checks below recompute the attention row of the first window by hand
#    from one recorded forward; do the same for the second window, carrying the first window's
#    `out["history"]` into it (as `update` does).
# 4. **Measure.** Time `playground.update(sentence)` and `playground.figure(...)` separately with
#    `time.perf_counter()`: which one makes the widget feel slow?

# %% [markdown]
# ## Checks

# %%
# a known sentence segments: the clip's appearance sentence refers to one object, and on this clip
# (seed 7) the trained model's mask matches that object best
referent = next(o for o in playground.video.objects
                if o.obj_id == next(e["obj_id"] for e in playground.video.expressions if e["text"] == sentence))
assert result.ok and result.masks.shape == playground.video.frames.shape[:3]
assert result.overlaps[0][0] == describe(referent) and result.overlaps[0][1] > 0.5, result.overlaps

# the motion sentence, as described above: the mask never touches the circle moving left; in the first
# window it sits mostly on the bouncing circle, in the second on the bouncing green diamond
motion_iou = dict(motion_result.overlaps)
ids, mask = playground.video.id_maps, motion_result.masks
names = {o.obj_id: describe(o) for o in playground.video.objects}
on_most = [names[max(names, key=lambda i: (mask[w] & (ids[w] == i)).sum())] for w in (slice(0, 4), slice(4, 8))]
assert on_most == ["large purple circle (bouncing)", "large green diamond (bouncing)"], on_most
assert motion_iou["large purple circle (moving left)"] == 0.0, motion_iou
assert 0.2 < motion_iou["large green diamond (bouncing)"] <= motion_iou["large purple circle (bouncing)"] < 0.5

# the shipped model's recorded fresh-clip scores that the introduction quotes
fresh = json.loads(find_sample(TINY_RVOS_CHECKPOINT).with_suffix(".json").read_text())["fresh_splits"]
standard, hard = fresh["scores"]["standard"], fresh["scores"]["hard"]
assert abs(standard["J&F"] - 0.71) < 0.02, standard
assert hard["J&F/motion"] > fresh["reference"]["J&F/motion"] + 0.15, (hard, fresh["reference"])
assert standard["J&F/relation"] < min(standard["J&F/appearance"], standard["J&F/motion"]) - 0.08, standard

# the attention row is stage 2's word -> video map, mean over the words: re-derived for the first window
window = model_cfg.model.num_frames
with torch.no_grad():
    out = model(prepare_frames(playground.video.frames[:window], model_cfg.model.backbone.image_size)[None].to(rt.device),
                model.tokenize([sentence]).to(rt.device), record_attention=True)
keep = probes.real_words(out["attn"])[0]
by_hand = rearrange(out["attn"]["fusion"]["word_to_video"][0][keep].mean(0), "(t h w) -> t h w",
                    t=window, h=model.vision.grid_size[0]).cpu().numpy()
assert abs(by_hand - result.attention[:window]).max() < 1e-5

# text the model cannot use gets a plain message naming the problem, and nothing is segmented
assert not empty.ok and empty.probabilities is None and "Type a sentence" in empty.message
assert not unknown.ok and "'dog'" in unknown.message and "'ball'" in unknown.message and "'the'" not in unknown.message
assert check_sentence("The RED circle!")[1] is None

# the widget runs the same update for what is typed
box = playground_widget(playground)
box.controls["text"].value = "the purple giraffe"
assert "'giraffe'" in box.controls["message"].value
box.controls["text"].value = sentence
assert sentence in box.controls["message"].value and "the mask matches" in box.controls["message"].value
print("all checks passed")
