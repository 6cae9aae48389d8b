"""Tests of rvoslib.inspector on a hand-built recording: the numbers of a selection, no silent
wrapping, and a widget whose every control changes what is shown."""

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from rvoslib.inspector import KINDS, PromptInspector, inspector_widget  # noqa: E402

T, N_V, N_TP = 2, 3, 2
LAYOUT = {"cls": slice(0, 1), "patches": slice(1, 5), "history": slice(5, 5), "vision": slice(5, 8),
          "temporal": slice(8, 10)}  # S_f = 10 tokens, a 2 x 2 patch grid


def recording():
    """Vision prompt p of frame t puts 0.5 on patch p (patch 0: the referent) and 0.5 on CLS.
    Temporal prompt p of frame t puts 0.8 on frame (t + p) % 2's patch 3 and 0.2 on the other
    frame's patch 0."""
    prompt_to_patch = torch.zeros(1, T, N_V, 4)
    for p in range(N_V):
        prompt_to_patch[0, :, p, p] = 0.5
    temporal = torch.zeros(1, T * N_TP, T, 10)
    for t in range(T):
        for p in range(N_TP):
            k = (t + p) % T
            temporal[0, t * N_TP + p, k, 1 + 3] = 0.8
            temporal[0, t * N_TP + p, 1 - k, 1 + 0] = 0.2
    blocks = 2
    return {"prompt_to_patch": [prompt_to_patch] * blocks, "temporal": [temporal] * blocks,
            "stage1": [None] * blocks, "cls_to_patch": [None] * blocks, "layout": LAYOUT}


@pytest.fixture
def inspector():
    referent = np.zeros((T, 8, 8), bool)
    referent[:, :4, :4] = True  # patch 0
    objects = referent.astype(np.uint8)
    objects[:, 4:, 4:] = 2  # patch 3: a distractor
    frames = np.full((T, 8, 8, 3), 90, np.uint8)
    return PromptInspector(recording(), frames, referent, objects, gates={0: 0.0, 1: 0.25})


def test_vision_selection_numbers(inspector):
    view = inspector.select(KINDS[0], 1, 0, 1)
    assert view.maps.shape == (1, 2, 2) and view.map_frames == [1]
    torch.testing.assert_close(view.mass, torch.tensor([1.0, 0.0, 0.0]))  # all its patch attention on patch 0
    torch.testing.assert_close(view.lift, torch.tensor([4.0, 0.0, 0.0]))
    assert view.patch_share == pytest.approx(0.5) and view.gate == 0.25
    assert view.distance == pytest.approx(1.0)  # the other prompts look at other patches
    other = inspector.select(KINDS[0], 1, 2, 1)
    torch.testing.assert_close(other.mass, torch.tensor([0.0, 0.0, 1.0]))  # patch 2: background
    assert "referent 100.0% (lift 4.00)" in view.readout()


def test_temporal_selection_follows_the_frame(inspector):
    own = inspector.select(KINDS[1], 0, 1, 0)  # prompt 1 of frame 0 looks mostly at frame 1
    torch.testing.assert_close(own.frame_share, torch.tensor([0.2, 0.8]))
    torch.testing.assert_close(own.mass, torch.tensor([0.2, 0.8, 0.0]))  # patch 0 referent, patch 3 distractor
    assert own.maps.shape == (T, 2, 2) and own.kind_share["patches"] == pytest.approx(1.0)
    later = inspector.select(KINDS[1], 0, 1, 1)  # the same prompt of frame 1 looks at frame 0
    torch.testing.assert_close(later.frame_share, torch.tensor([0.8, 0.2]))
    assert own.distance == pytest.approx(1.0)  # prompt 0 of frame 0 reads frame 0 patch 3 and frame 1 patch 0: disjoint
    assert "t=0 20.0% | t=1 80.0%" in own.readout()


def test_out_of_range_selections_raise_instead_of_wrapping(inspector):
    assert inspector.counts == {KINDS[0]: N_V, KINDS[1]: N_TP}
    with pytest.raises(ValueError, match="prompt 2 is out of range"):
        inspector.select(KINDS[1], 0, 2, 0)  # a vision prompt index, not a temporal one
    with pytest.raises(ValueError, match="block"):
        inspector.select(KINDS[0], 2, 0, 0)
    with pytest.raises(ValueError, match="kind"):
        inspector.select("history", 0, 0, 0)


def test_a_grid_that_does_not_fit_the_recording_is_refused(inspector):
    with pytest.raises(ValueError, match="grid"):
        PromptInspector(recording(), inspector.frames, inspector.referent, inspector.referent, grid=(1, 3))
    wide = PromptInspector(recording(), inspector.frames, inspector.referent, inspector.referent, grid=(1, 4))
    assert wide.select(KINDS[0], 0, 0, 0).maps.shape == (1, 1, 4)


def test_figure_has_raw_grid_beside_each_map_and_a_colour_bar(inspector):
    fig = inspector.figure(inspector.select(KINDS[1], 0, 0, 0))
    assert sum(1 for ax in fig.axes if ax.images) == 2 * T and len(fig.axes) == 2 * T + 1


def test_widget_controls_each_change_the_picture_or_readout(inspector):
    box = inspector_widget(inspector)
    c = box.controls
    assert c["kind"].value == KINDS[1] and c["prompt"].max == N_TP - 1
    shown = {(c["image"].value, c["readout"].value)}

    def changed():
        state = (c["image"].value, c["readout"].value)
        new = state not in shown
        shown.add(state)
        return new

    c["frame"].value = 1
    assert changed()
    c["prompt"].value = 1
    assert changed()
    c["block"].value = 0
    assert changed()  # the readout names the block and its gate
    c["kind"].value = KINDS[0]
    assert changed() and c["prompt"].max == N_V - 1
    c["prompt"].value = 2
    assert changed()
    c["kind"].value = KINDS[1]  # back to 2 temporal prompts: the slider is clamped, not wrapped
    assert c["prompt"].max == N_TP - 1 and c["prompt"].value == N_TP - 1
    assert f"temporal prompt {N_TP - 1} of frame 1" in c["readout"].value
