"""Tests of rvoslib.viz: numpy overlays, the J/F boundary picture, figures and the frame slider."""

import subprocess
import sys

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from rvoslib import viz  # noqa: E402
from rvoslib.metrics import binary_dilate_disk, seg2bmap  # noqa: E402


def square(shape, top, left, size):
    """Bool mask with a size x size square whose top-left pixel is (top, left)."""
    m = np.zeros(shape, bool)
    m[top : top + size, left : left + size] = True
    return m


@pytest.fixture
def frames():
    """(4, 24, 32, 3) uint8 random frames."""
    return np.random.default_rng(0).integers(0, 256, (4, 24, 32, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- overlay_masks


def test_overlay_keeps_shape_dtype_and_outside_pixels(frames):
    masks = np.stack([square((24, 32), 2 + t, 3, 6) for t in range(4)])  # (4, 24, 32)
    out = viz.overlay_masks(frames, masks, draw_boundary=False)
    assert out.shape == frames.shape and out.dtype == np.uint8
    assert np.array_equal(out[~masks], frames[~masks])
    assert not np.array_equal(out[masks], frames[masks])


def test_overlay_boundary_stays_inside_mask(frames):
    masks = np.stack([square((24, 32), 5, 5, 8)] * 4)
    out = viz.overlay_masks(frames, masks, draw_boundary=True)
    assert np.array_equal(out[~masks], frames[~masks])
    color = viz.palette(1)[0]
    assert np.array_equal(out[0, 5, 5], color)  # corner: outline in full colour
    blend = frames[0, 8, 8] / 2 + color / 2  # interior: 50 % blend
    assert np.abs(out[0, 8, 8] - blend).max() <= 0.5


def test_overlay_uses_a_distinct_colour_per_mask():
    frame = np.zeros((20, 20, 3), np.uint8)  # single (H, W, 3) frame
    masks = [square((20, 20), 0, 0, 5), square((20, 20), 10, 10, 5), square((20, 20), 0, 10, 5)]
    out = viz.overlay_masks(frame, masks, alpha=1.0, draw_boundary=False)
    assert out.shape == frame.shape
    colours = {tuple(out[2, 2]), tuple(out[12, 12]), tuple(out[2, 12])}
    assert len(colours) == 3 and (0, 0, 0) not in colours
    assert tuple(out[7, 7]) == (0, 0, 0)


def test_overlay_explicit_colours_and_errors(frames):
    mask = square((24, 32), 0, 0, 4)
    out = viz.overlay_masks(frames[0], mask, colors=(10, 20, 30), alpha=1.0)
    assert tuple(out[1, 1]) == (10, 20, 30)
    with pytest.raises(ValueError, match="shape"):
        viz.overlay_masks(frames, mask)  # (H, W) mask for (T, H, W, 3) frames
    with pytest.raises(TypeError, match="uint8"):
        viz.overlay_masks(frames.astype(np.float32), mask)
    with pytest.raises(ValueError, match="colour"):
        viz.overlay_masks(frames[0], [mask, mask], colors=[(1, 2, 3)])


def test_inner_boundary_ignores_image_border():
    mask = square((6, 6), 0, 0, 3)
    b = viz.inner_boundary(mask)
    assert b[2, :3].all() and b[:3, 2].all()
    assert not b[0, 0] and not b[1, 1] and not (b & ~mask).any()


# --------------------------------------------------------------------------- heat maps


def test_heatmap_shape_and_hottest_region():
    frame = np.full((64, 48, 3), 128, np.uint8)
    heat = np.zeros((8, 6), np.float32)
    heat[2, 4] = 5.0  # patch covering rows 16-23, cols 32-39
    out = viz.heatmap_overlay(frame, heat, alpha=1.0, cmap="jet")
    assert out.shape == (64, 48, 3) and out.dtype == np.uint8
    red = out[..., 0].astype(int) - out[..., 2].astype(int)  # jet: hot = red, cold = blue
    y, x = np.unravel_index(np.argmax(red), red.shape)
    assert 16 <= y < 24 and 32 <= x < 40
    assert tuple(out[0, 0]) == tuple(viz.colormap(np.array(0.0), "jet"))  # coldest = jet's dark blue


def test_default_colour_map_is_perceptual_viridis():
    frame = np.full((16, 16, 3), 128, np.uint8)
    heat = np.zeros((2, 2), np.float32)
    heat[1, 1] = 1.0
    out = viz.heatmap_overlay(frame, heat, alpha=1.0)
    import matplotlib

    viridis = matplotlib.colormaps["viridis"]
    assert tuple(out[15, 15]) == tuple(np.round(np.asarray(viridis(1.0))[:3] * 255).astype(np.uint8))  # yellow
    assert tuple(out[0, 0]) == tuple(np.round(np.asarray(viridis(0.0))[:3] * 255).astype(np.uint8))  # dark purple
    # viridis rises in lightness from 0 to 1, so a hotter patch is always a lighter one
    luma = viz.grayscale(viz.colormap(np.linspace(0, 1, 11)[None]))[0, :, 0].astype(int)
    assert (np.diff(luma) > 0).all()


def test_resize_bilinear_matches_torch():
    torch = pytest.importorskip("torch")
    heat = np.random.default_rng(1).random((5, 7)).astype(np.float32)
    ref = torch.nn.functional.interpolate(torch.from_numpy(heat)[None, None], size=(13, 22), mode="bilinear",
                                          align_corners=False)[0, 0].numpy()
    np.testing.assert_allclose(viz.resize_bilinear(heat, (13, 22)), ref, atol=1e-5)


def test_colormap_jet_endpoints_and_matplotlib_names():
    jet = viz.colormap(np.array([0.0, 0.5, 1.0]), "jet")
    assert jet[0].argmax() == 2 and jet[2].argmax() == 0  # blue -> red
    gray = viz.colormap(np.array([0.0, 1.0]), "gray")
    assert tuple(gray[0]) == (0, 0, 0) and tuple(gray[1]) == (255, 255, 255)
    with pytest.raises(ValueError, match="colormap"):
        viz.colormap(np.array([0.5]), "no-such-map")


def test_normalize_constant_and_nan():
    assert not viz.normalize(np.full((3, 3), 2.0)).any()
    out = viz.normalize(np.array([[0.0, np.nan], [1.0, 2.0]]))
    assert np.isfinite(out).all() and out.max() == 1.0


# --------------------------------------------------------------------------- J/F picture


def test_boundary_picture_colours_at_known_pixels():
    gt = square((40, 40), 10, 10, 10)  # boundary ring: rows/cols 9..19 (seg2bmap rule)
    pred = square((40, 40), 10, 10, 10) | square((40, 40), 30, 30, 4)  # GT plus a stray blob
    out = viz.draw_boundaries(pred, gt, radius=2)
    c = {k: tuple(v) for k, v in viz.BOUNDARY_COLORS.items()}
    assert out.shape == (40, 40, 3) and out.dtype == np.uint8
    assert tuple(out[9, 9]) == c["both"]  # on both boundaries
    assert tuple(out[9, 12]) == c["both"]
    assert tuple(out[8, 12]) == c["band"]  # 1 px outside the GT boundary: in the band
    assert tuple(out[14, 14]) == (0, 0, 0)  # inside the object, far from boundaries
    assert tuple(out[29, 31]) == c["pred_miss"]  # the stray blob's boundary, outside the band
    assert tuple(out[0, 0]) == (0, 0, 0)


def test_boundary_picture_recall_miss_and_default_radius():
    gt = square((40, 40), 10, 10, 10)
    pred = square((40, 40), 10, 10, 5)  # covers only the top-left quarter
    out = viz.draw_boundaries(pred, gt)  # radius = ceil(0.008 * 56.6) = 1
    c = {k: tuple(v) for k, v in viz.BOUNDARY_COLORS.items()}
    assert tuple(out[19, 19]) == c["gt_miss"]  # far corner of the GT: no predicted boundary near
    assert tuple(out[9, 9]) == c["both"]
    assert tuple(out[14, 12]) == c["pred_miss"]  # pred's lower edge, 3 px from the GT boundary
    assert tuple(out[14, 10]) == c["pred_hit"]  # pred's lower edge, 1 px from the GT's left edge
    # colours match the metric's own sets
    band = binary_dilate_disk(seg2bmap(gt), 1)
    pred_b = seg2bmap(pred)
    is_miss = np.all(out == c["pred_miss"], axis=-1)
    assert np.array_equal(is_miss, pred_b & ~band & ~seg2bmap(gt))


def test_boundary_picture_over_frame_and_errors():
    frame = np.full((12, 12, 3), 200, np.uint8)
    out = viz.draw_boundaries(np.zeros((12, 12)), np.zeros((12, 12)), frame=frame)
    assert tuple(out[5, 5]) == (80, 80, 80)  # darkened frame, nothing drawn
    with pytest.raises(ValueError, match="shape"):
        viz.draw_boundaries(np.zeros((12, 12)), np.zeros((12, 13)))


# --------------------------------------------------------------------------- figures


def test_show_frames_axes_count(frames, tmp_path):
    masks = np.stack([square((24, 32), 4, 4, 6)] * 4)
    fig = viz.show_frames(frames[:3], masks[:3], titles=["a", "b", "c"], ncols=2)
    assert len(fig.axes) == 3
    assert [ax.get_title() for ax in fig.axes] == ["a", "b", "c"]
    path = viz.save_figure(fig, tmp_path / "deep" / "dir" / "frames.png")
    assert path.exists() and path.stat().st_size > 0
    assert len(viz.show_frames(frames[0]).axes) == 1  # a single (H, W, 3) frame


def test_attention_grid_axes_count(frames):
    maps = np.random.default_rng(2).random((5, 3, 4))
    assert len(viz.attention_grid(maps, ncols=3).axes) == 5
    assert len(viz.attention_grid(maps, frames=frames[0], shared_scale=True).axes) == 5
    assert len(viz.attention_grid(maps[:4], frames=frames, titles=list("wxyz")).axes) == 4
    with pytest.raises(ValueError, match="frames"):
        viz.attention_grid(maps, frames=frames)  # 4 frames for 5 maps


def test_figures_are_closed_in_pyplot(frames):
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    viz.show_frames(frames)
    viz.attention_grid(np.ones((2, 3, 3)))
    assert len(plt.get_fignums()) == before


def test_plot_curves_list_of_dicts_and_dict_of_lists():
    rows = [{"step": s, "loss": 1.0 / (s + 1), "lr": 1e-4} for s in range(10)]
    rows[4]["J&F"] = 0.3
    rows[9]["J&F"] = 0.5
    fig = viz.plot_curves(rows, keys=[["loss", "lr"], "J&F"])
    assert len(fig.axes) == 2
    xs, ys = fig.axes[1].lines[0].get_data()
    assert list(xs) == [4, 9] and list(ys) == [0.3, 0.5]
    assert len(viz.plot_curves(rows).axes) == 3  # default: every numeric key but x
    fig = viz.plot_curves({"epoch": [0, 1, 2], "J": [0.1, 0.2, 0.3]}, keys="J", x="epoch")
    assert len(fig.axes) == 1 and list(fig.axes[0].lines[0].get_data()[0]) == [0, 1, 2]
    with pytest.raises(ValueError, match="nothing to plot"):
        viz.plot_curves([])


# --------------------------------------------------------------------------- widget


def test_frame_slider_updates_image_on_value_change(frames):
    pytest.importorskip("ipywidgets")
    masks = np.stack([square((24, 32), 2 * t, 2 * t, 6) for t in range(4)])
    box = viz.frame_slider(frames, masks, titles=["f0", "f1", "f2", "f3"])
    slider, label, image = box.children
    assert (slider.min, slider.max, slider.value) == (0, 3, 0)
    first = image.value
    assert first == viz.to_png(viz.overlay_masks(frames[0], masks[0]))
    slider.value = 2  # the observer runs synchronously
    assert image.value != first and label.value == "f2"
    assert image.value == viz.to_png(viz.overlay_masks(frames[2], masks[2]))
    slider.value = 0
    assert image.value == first


# --------------------------------------------------------------------------- lazy imports


def test_import_does_not_load_matplotlib_or_ipywidgets():
    code = (
        "import sys, rvoslib.viz\n"
        "bad = [m for m in ('matplotlib', 'ipywidgets', 'IPython') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_figures_module_imports_first_and_viz_reexports_it():
    code = (
        "import rvoslib.figures as figures\n"  # figures imports viz, which must not import figures back
        "from rvoslib import viz\n"
        "from rvoslib.viz import attention_grid\n"
        "assert attention_grid is figures.attention_grid and viz.save_figure is figures.save_figure\n"
        "try:\n    viz.no_such_function\nexcept AttributeError as error:\n    assert 'no_such_function' in str(error)\n"
        "else:\n    raise AssertionError('viz invented an attribute')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- attention figures


def test_grayscale_and_gray_background():
    frame = np.zeros((4, 4, 3), np.uint8)
    frame[..., 0] = 255  # pure red
    gray = viz.grayscale(frame)
    assert (gray == 76).all()  # round(0.299 * 255): the same value in all three channels
    out = viz.heatmap_overlay(frame, np.ones((2, 2)), alpha=0.0, background="gray")
    assert np.array_equal(out, gray)  # alpha 0: only the (grey) frame is left
    with pytest.raises(ValueError, match="background"):
        viz.heatmap_overlay(frame, np.ones((2, 2)), background="sepia")


def test_patch_grid_image_is_one_flat_colour_per_patch():
    heat = np.array([[0.0, 1.0], [2.0, 4.0]], np.float32)
    image = viz.patch_grid_image(heat, (8, 6), cmap="magma", vmin=0.0, vmax=4.0)
    assert image.shape == (8, 6, 3)
    for (i, j), value in np.ndenumerate(heat):
        block = image[4 * i:4 * i + 4, 3 * j:3 * j + 3].reshape(-1, 3)
        assert (block == block[0]).all()  # nearest: nothing smoothed inside a patch
        assert tuple(block[0]) == tuple(viz.colormap(np.array(value / 4.0), "magma"))
    with pytest.raises(ValueError, match="multiple"):
        viz.patch_grid_image(heat, (7, 6))


def test_outline_draws_only_the_boundary():
    image = np.full((10, 10, 3), 50, np.uint8)
    mask = square((10, 10), 2, 2, 5)
    out = viz.outline(image, mask)
    ring = viz.inner_boundary(mask)
    assert (out[ring] == (0, 255, 255)).all()  # cyan, the first outline colour
    assert np.array_equal(out[~ring], image[~ring])  # interior and outside untouched


def test_attention_grid_raw_beside_outline_and_colour_bars(frames):
    maps = np.random.default_rng(3).random((4, 3, 4)).astype(np.float32)  # 3 x 4 grid on 24 x 32 frames
    referent = np.stack([square((24, 32), 8, 8, 8)] * 4)
    fig = viz.attention_grid(maps, frames, raw_beside=True, outlines=referent, colorbar=True, shared_scale=True,
                             cmap="magma")
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 8 and len(fig.axes) == 9  # raw + smoothed per map, one shared colour bar
    raw = images[0].images[0].get_array()
    expected = viz.outline(viz.patch_grid_image(maps[0], (24, 32), "magma", maps.min(), maps.max()), referent[0])
    assert np.array_equal(np.asarray(raw), expected)  # the raw grid, on the shared scale, outlined
    smoothed = np.asarray(images[1].images[0].get_array())
    assert (smoothed[viz.inner_boundary(referent[0])] == (0, 255, 255)).all()
    per_map = viz.attention_grid(maps, frames, colorbar=True)
    assert len(per_map.axes) == 8  # one colour bar per map
    bars = [ax for ax in per_map.axes if not ax.images]
    assert bars[0].get_ylim() == pytest.approx((maps[0].min(), maps[0].max()))  # in the map's own units
    with pytest.raises(ValueError, match="outlines"):
        viz.attention_grid(maps, frames, outlines=referent[:3])
