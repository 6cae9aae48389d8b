"""Tests of rvoslib.panels: one labelled panel per sentence (``rvoslib segment --panels``)."""

import numpy as np
import pytest

from rvoslib import panels
from rvoslib.panels import GAP, compose_panels, upscale_factor


def square_masks(p: int, t: int, h: int, w: int, size: int = 8) -> np.ndarray:
    """(p, t, h, w) bool: mask k is a size x size square, further right for larger k."""
    masks = np.zeros((p, t, h, w), bool)
    for k in range(p):
        masks[k, :, 4:4 + size, 4 + 24 * k:4 + 24 * k + size] = True
    return masks


def gray(t: int, h: int, w: int, value: int = 100) -> np.ndarray:
    return np.full((t, h, w, 3), value, np.uint8)


def header_height(out: np.ndarray, frame_height: int, footer: int = 0) -> int:
    return out.shape[1] - frame_height - footer


def panel(out: np.ndarray, p: int, scale: int, h: int, w: int) -> np.ndarray:
    """(T, s*h, s*w, 3): the frame part of panel p (no text)."""
    top, left = header_height(out, scale * h), p * (scale * w + GAP)
    return out[:, top:top + scale * h, left:left + scale * w]


# --------------------------------------------------------------------------- size


def test_upscale_factor_enlarges_small_frames_only():
    assert upscale_factor(64, 64) == 4
    assert upscale_factor(64, 100, 256) == 4  # the short side decides
    assert upscale_factor(100, 100, 256) == 3  # a whole factor: 300 >= 256
    assert upscale_factor(480, 854, 256) == 1  # never shrunk
    assert upscale_factor(64, 64, 512) == 8
    with pytest.raises(ValueError, match="panel_size"):
        upscale_factor(64, 64, 0)


def test_small_frames_give_p_panels_of_at_least_256_pixels():
    out = compose_panels(gray(3, 64, 64), square_masks(2, 3, 64, 64), ["the small triangle", "the red shape"])
    assert out.dtype == np.uint8 and out.ndim == 4 and out.shape[0] == 3 and out.shape[3] == 3
    assert out.shape[2] == 2 * 256 + GAP  # exactly two panels wide
    assert out.shape[1] > 256  # the 256 px frame plus the sentence above it
    assert out.shape[1] % 2 == 0 and out.shape[2] % 2 == 0  # H.264 wants even sizes


def test_panel_size_option_and_nearest_neighbour():
    frames = np.random.default_rng(0).integers(0, 256, (2, 20, 30, 3), dtype=np.uint8)
    masks = np.zeros((1, 2, 20, 30), bool)
    out = compose_panels(frames, masks, ["nothing"], panel_size=100)  # factor 5
    assert out.shape[2] == 150
    image = panel(out, 0, 5, 20, 30)
    assert np.array_equal(image, np.repeat(np.repeat(frames, 5, axis=1), 5, axis=2))  # no mask: the frames


def test_large_frame_is_not_upscaled():
    frames = gray(1, 480, 854)
    masks = np.zeros((2, 1, 480, 854), bool)
    masks[0, 0, 100:200, 100:300] = True
    out = compose_panels(frames, masks, ["a black swan", "the water"])
    assert out.shape[2] == 2 * 854 + GAP
    assert header_height(out, 480) < 100  # just the text line: the frame keeps its 480 rows
    assert np.array_equal(panel(out, 1, 1, 480, 854), frames)  # empty mask: the frame, untouched


# --------------------------------------------------------------------------- colours and outlines


def test_mask_pixels_get_each_sentences_colour():
    h = w = 64
    masks = square_masks(2, 1, h, w, size=16)
    out = compose_panels(gray(1, h, w), masks, ["one", "two"], alpha=0.5)
    colours = panels.panel_colors(2).astype(int)
    assert not np.array_equal(colours[0], colours[1])
    for p in range(2):
        image = panel(out, p, 4, h, w)[0].astype(int)  # (256, 256, 3)
        big = np.repeat(np.repeat(masks[p, 0], 4, axis=0), 4, axis=1)
        y, x = np.argwhere(big).mean(axis=0).astype(int)  # centre of the square: fill
        assert np.abs(image[y, x] - (100 + colours[p]) / 2).max() <= 1
        top, left = np.argwhere(big).min(axis=0)
        assert np.array_equal(image[top, left + 8], colours[p])  # outline: the colour itself
        assert np.array_equal(image[top - 1, left + 8], panels.HALO)  # halo just outside
        assert np.array_equal(image[0, 0], [100, 100, 100])  # far from every mask: the frame
    # each sentence's mask only in its own panel
    other = panel(out, 1, 4, h, w)[0].astype(int)
    big0 = np.repeat(np.repeat(masks[0, 0], 4, axis=0), 4, axis=1)
    assert (other[big0] == 100).all()


def test_outline_visible_on_a_bright_background():
    frames = gray(1, 32, 32, value=255)
    masks = np.zeros((1, 1, 32, 32), bool)
    masks[0, 0, 8:24, 8:24] = True
    out = compose_panels(frames, masks, ["white"], colors=[(255, 255, 255)])  # colour = background
    image = panel(out, 0, 8, 32, 32)[0]
    assert (image[8 * 8 - 1, 100:150] == 0).all()  # the black halo still draws the edge


# --------------------------------------------------------------------------- text


def test_text_region_shows_the_sentence():
    masks = square_masks(1, 1, 64, 64)
    a = compose_panels(gray(1, 64, 64), masks, ["the small triangle"])
    b = compose_panels(gray(1, 64, 64), masks, ["a dog on the left"])
    c = compose_panels(gray(1, 64, 64), masks, ["the small triangle"])
    top = header_height(a, 256)
    assert top == header_height(b, 256)
    assert not np.array_equal(a[:, :top], b[:, :top])  # different sentences, different text
    assert np.array_equal(a, c)  # deterministic
    text = a[0, :top - panels.RULE]
    assert (np.abs(text.astype(int) - panels.BACKGROUND).sum(-1) > 100).sum() > 50  # letters drawn


def test_two_panels_differ_in_text_even_with_one_colour():
    masks = np.zeros((2, 1, 64, 64), bool)
    out = compose_panels(gray(1, 64, 64), masks, ["left one", "right one here"], colors=[(0, 255, 255)] * 2)
    top = header_height(out, 256)
    assert not np.array_equal(out[0, :top, :256], out[0, :top, 256 + GAP:])


def test_long_sentences_wrap_and_all_panels_share_the_header_height():
    long = "the large red circle in the top left corner that moves slowly to the right " * 2
    masks = square_masks(2, 1, 64, 64)
    short = compose_panels(gray(1, 64, 64), masks, ["a", "b"])
    wrapped = compose_panels(gray(1, 64, 64), masks, ["a", long])
    assert wrapped.shape[2] == short.shape[2]  # wrapped, not widened
    assert header_height(wrapped, 256) > 2 * header_height(short, 256)
    font = panels.load_font(18)
    for line in panels.wrap_text(long + " " + "x" * 80, font, 240):
        assert font.getlength(line) <= 240


def test_frame_labels_add_a_line_per_frame():
    masks = square_masks(1, 2, 64, 64)
    plain = compose_panels(gray(2, 64, 64), masks, ["x"])
    labelled = compose_panels(gray(2, 64, 64), masks, ["x"], frame_labels=["frame 1 / 2", "frame 2 / 2"])
    assert labelled.shape[1] > plain.shape[1] and labelled.shape[2] == plain.shape[2]
    assert np.array_equal(labelled[:, :plain.shape[1]], plain)
    assert not np.array_equal(labelled[0, plain.shape[1]:], labelled[1, plain.shape[1]:])


# --------------------------------------------------------------------------- errors


def test_clear_errors():
    frames, masks = gray(2, 16, 16), square_masks(2, 2, 16, 16, size=4)
    with pytest.raises(ValueError, match="3 sentence.*2 mask"):
        compose_panels(frames, masks, ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"masks must have shape \(P, T, H, W\) = \(P, 2, 16, 16\)"):
        compose_panels(frames, masks[:, :, :8], ["a", "b"])
    with pytest.raises(ValueError, match="masks must have shape"):
        compose_panels(frames, masks[0], ["a"])  # (T, H, W): one sentence still needs the P axis
    with pytest.raises(TypeError, match="uint8"):
        compose_panels(frames.astype(np.float32), masks, ["a", "b"])
    with pytest.raises(ValueError, match=r"frames must have shape \(T, H, W, 3\)"):
        compose_panels(frames[0], masks, ["a", "b"])
    with pytest.raises(ValueError, match="1 frame_labels for 2 frames"):
        compose_panels(frames, masks, ["a", "b"], frame_labels=["x"])
    with pytest.raises(TypeError, match="sentence 1 must be a str"):
        compose_panels(frames, masks, ["a", 3])
    with pytest.raises(ValueError, match="panel_size"):
        compose_panels(frames, masks, ["a", "b"], panel_size=-1)
    with pytest.raises(ValueError, match="colors"):
        compose_panels(frames, masks, ["a", "b"], colors=[(1, 2, 3)])


def test_list_of_masks_and_a_single_sentence_string():
    masks = square_masks(1, 2, 16, 16, size=4)
    out = compose_panels(gray(2, 16, 16), [masks[0]], "one sentence")
    assert out.shape[2] == 256
