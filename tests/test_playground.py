"""Tests of rvoslib.playground without a browser: the update step, its messages, and the widget."""

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from rvoslib.config import get_preset  # noqa: E402
from rvoslib.data.synthetic import generate_videos  # noqa: E402
from rvoslib.inference import segment_frames  # noqa: E402
from rvoslib.model import build_model  # noqa: E402
from rvoslib.playground import Playground, check_sentence, known_words, playground_widget  # noqa: E402


@pytest.fixture(scope="module")
def model():
    """The tiny preset with random weights (the plumbing does not depend on the weights)."""
    torch.manual_seed(0)
    return build_model(get_preset("tiny").model).eval()


def test_known_words_cover_every_generated_sentence():
    videos = generate_videos(40, seed=5) + generate_videos(40, seed=6, hard=True)
    words = {w for v in videos for e in v.expressions for w in e["text"].split()}
    assert words <= known_words()


@pytest.mark.parametrize("typed", ["", "   ", None])
def test_empty_sentence_gets_a_plain_message(typed):
    words, message = check_sentence(typed)
    assert words == [] and "Type a sentence" in message


def test_unknown_words_are_named_and_known_ones_accepted():
    words, message = check_sentence("the pink elephant")
    assert words == [] and "'elephant'" in message and "'pink'" in message and "'the'" not in message
    words, message = check_sentence("The Red circle, moving left!")
    assert message is None and words == ["the", "red", "circle", "moving", "left"]


def test_update_matches_segment_frames_and_reports_overlaps(model):
    pg = Playground(model, seed=3, num_frames=6)  # 6 frames: a full window of 4 and a padded one
    sentence = pg.examples[0]
    result = pg.update(sentence)
    assert result.ok and result.attention is None
    reference = segment_frames(pg.video.frames, sentence, model, progress=False, return_logits=True)
    # the same windows and history as inference (a random model sits near 0.5: compare probabilities)
    np.testing.assert_allclose(result.probabilities, reference.probabilities[0], atol=1e-5)
    assert [name for name, _ in result.overlaps] == sorted(
        [name for name, _ in result.overlaps], key=lambda n: -dict(result.overlaps)[n])
    best_iou = max(iou for _, iou in result.overlaps)
    assert result.overlaps[0][1] == best_iou and sentence in result.summary()


def test_attention_on_demand_is_each_windows_word_to_video_map(model):
    pg = Playground(model, seed=3, num_frames=6)
    plain = pg.update(pg.examples[0])
    result = pg.update(pg.examples[0], attention=True)
    h, w = model.vision.grid_size
    assert result.attention.shape == (6, h, w)
    np.testing.assert_allclose(result.probabilities, plain.probabilities, atol=1e-5)  # recording changes nothing
    # each window's T frames share one unit of the (word-averaged) word -> video attention
    np.testing.assert_allclose(result.attention[:4].sum(), 1.0, rtol=1e-4)
    fig = pg.figure(result)
    assert sum(1 for ax in fig.axes if ax.images) == 12  # masks row and attention row


def test_bad_sentences_do_not_run_the_model_and_still_draw(model):
    pg = Playground(model, seed=3, num_frames=4)
    for typed in ("", "the dog"):
        result = pg.update(typed)
        assert not result.ok and result.probabilities is None and result.summary() == result.message
        fig = pg.figure(result)
        assert sum(1 for ax in fig.axes if ax.images) == 4  # the frames alone, no stale masks


def test_new_clip_draws_the_next_seed(model):
    pg = Playground(model, seed=7, num_frames=4)
    pg.new_clip()
    assert pg.seed == 8
    assert np.array_equal(pg.video.frames, Playground(model, seed=8, num_frames=4).video.frames)


def test_widget_redraws_on_each_control(model):
    pg = Playground(model, seed=3, num_frames=4)
    box = playground_widget(pg)
    c = box.controls
    first_image = c["image"].value
    assert len(first_image) > 0 and "mask matches" in c["message"].value
    c["text"].value = "the banana"
    assert "'banana'" in c["message"].value
    c["text"].value = "the small shape"
    c["attention"].value = True
    with_attention = c["image"].value
    assert with_attention != first_image
    c["button"].click()
    assert pg.seed == 4 and c["image"].value != with_attention
