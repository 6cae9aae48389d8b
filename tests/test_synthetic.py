"""Synthetic shapes: determinism, exact masks, unique expressions, export, CLI, caption pairs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rvoslib.cli import main
from rvoslib.data import make_caption_pairs, read_ref_youtube_vos, write_synthetic_dataset
from rvoslib.data.expressions import referents
from rvoslib.data.synthetic import (
    COLOURS,
    SHAPES,
    SyntheticOptions,
    all_captions,
    generate_videos,
    render_frames,
    shape_mask,
)


@pytest.fixture(scope="module")
def videos():
    return generate_videos(30, seed=3, split="train")


@pytest.fixture(scope="module")
def hard_videos():
    return generate_videos(20, seed=3, split="valid", hard=True)


def test_deterministic_and_prefix_stable():
    a, b = generate_videos(3, seed=7), generate_videos(3, seed=7)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.frames, y.frames)
        assert [e["text"] for e in x.expressions] == [e["text"] for e in y.expressions]
    np.testing.assert_array_equal(generate_videos(1, seed=7)[0].id_maps, a[0].id_maps)
    assert not np.array_equal(generate_videos(1, seed=8)[0].frames, a[0].frames)
    assert not np.array_equal(generate_videos(1, seed=7, split="valid")[0].frames, a[0].frames)


def test_video_structure_and_exact_masks(videos):
    for video in videos:
        assert video.frames.shape == (12, 64, 64, 3) and video.id_maps.shape == (12, 64, 64)
        assert 2 <= len(video.objects) <= 4
        frames, id_maps = render_frames(video.objects, 64, video.frames[0, 0, 0])
        np.testing.assert_array_equal(id_maps, video.id_maps)
        for obj in video.objects:
            visible = video.id_maps == obj.obj_id  # (F, S, S)
            assert (video.frames[visible] == COLOURS[obj.colour]).all()
            for t in range(12):  # light occlusion: >= 60% visible; never cut by the border
                full = shape_mask(obj.shape, obj.centres[t], obj.radius, 64)
                assert visible[t].sum() >= 0.6 * full.sum()
                assert not (full[0].any() or full[-1].any() or full[:, 0].any() or full[:, -1].any())
        assert (video.frames[video.id_maps == 0] == video.frames[0, 0, 0]).all()


def test_every_expression_refers_to_exactly_one_object(videos, hard_videos):
    kinds = set()
    for video in videos + hard_videos:
        assert 1 <= len(video.expressions) <= 8
        for expression in video.expressions:
            assert referents(expression["spec"], video.objects) == [expression["obj_id"]]
            kinds.add(expression["kind"])
    assert kinds == {"appearance", "motion", "relation"}


def test_motion_expressions_need_several_frames(videos, hard_videos):
    count = 0
    for video in videos + hard_videos:
        for expression in (e for e in video.expressions if e["kind"] == "motion"):
            target = next(o for o in video.objects if o.obj_id == expression["obj_id"])
            twins = [o for o in video.objects if o.appearance() == target.appearance() and o is not target]
            assert twins and all(o.motion != target.motion for o in twins)
            static_spec = dict(expression["spec"], motion=None)  # what a single frame can check
            assert len(referents(static_spec, video.objects)) >= 2
            count += 1
    assert count > 10


def test_motions_are_visible(videos):
    for obj in (o for v in videos for o in v.objects):
        dx, dy = obj.centres[-1] - obj.centres[0]
        if obj.motion == "left":
            assert dx < -15 and dy == 0
        elif obj.motion == "down":
            assert dy > 15 and dx == 0
        elif obj.motion == "static":
            assert dx == dy == 0
        elif obj.motion == "bouncing":
            assert np.ptp(obj.centres[:, 1]) > 6 and np.ptp(obj.centres[:, 0]) == 0


def test_hard_split_has_twins_and_more_motion(videos, hard_videos):
    for video in hard_videos:
        appearances = [o.appearance() for o in video.objects]
        assert len(set(appearances)) < len(appearances)

    def motion_share(vs):
        kinds = [e["kind"] for v in vs for e in v.expressions]
        return kinds.count("motion") / len(kinds)

    assert motion_share(hard_videos) > 0.5 > motion_share(videos)


def test_write_and_read_back_with_the_real_reader(tmp_path):
    out = write_synthetic_dataset(tmp_path / "syn", num_videos=3, seed=1, split="valid", num_frames=5, size=48)
    generated = generate_videos(3, seed=1, split="valid", num_frames=5, size=48)
    records = read_ref_youtube_vos(out)
    assert [r.video_id for r in records] == ["valid_00000", "valid_00001", "valid_00002"]
    for record, video in zip(records, generated):
        assert record.frame_names == [f"{t:05d}" for t in range(5)] and record.has_masks
        np.testing.assert_array_equal(record.load_frames(), video.frames)  # PNG frames: exact
        for expression, source in zip(record.expressions, video.expressions):
            assert (expression.text, expression.obj_ids) == (source["text"], [source["obj_id"]])
            assert expression.kind == source["kind"]
            np.testing.assert_array_equal(record.load_mask(4, expression.obj_ids), video.id_maps[4] == source["obj_id"])
        assert set(record.extra["objects"]) == {str(o.obj_id) for o in video.objects}
    with pytest.raises(FileExistsError, match="not empty"):
        write_synthetic_dataset(out, 1, seed=0)
    jpeg = write_synthetic_dataset(tmp_path / "jpeg", 1, seed=0, image_format="jpg")
    assert read_ref_youtube_vos(jpeg)[0].frame_paths[0].suffix == ".jpg"


def test_bad_options():
    with pytest.raises(ValueError, match="num_frames must be >= 2"):
        generate_videos(1, seed=0, num_frames=1)
    with pytest.raises(ValueError, match="image_format"):
        SyntheticOptions(image_format="gif").check()


def test_cli_make_synthetic(tmp_path, capsys):
    out = tmp_path / "shapes"
    args = ["make-synthetic", str(out), "--videos", "2", "--seed", "4", "--frames", "4", "--size", "40", "--hard"]
    assert main(args) == 0
    meta = json.loads((out / "meta_expressions.json").read_text())
    assert list(meta["videos"]) == ["train_00000", "train_00001"]
    assert (out / "JPEGImages/train_00000/00003.png").is_file()
    assert (out / "Annotations/train_00001/00000.png").is_file()
    assert main(["make-synthetic", str(out), "--videos", "1"]) == 2
    assert "is not empty" in capsys.readouterr().err and len(meta["videos"]) == 2
    assert main(["make-synthetic", str(out), "--videos", "1", "--overwrite"]) == 0
    assert list(json.loads((out / "meta_expressions.json").read_text())["videos"]) == ["train_00000"]
    assert [p.name for p in tmp_path.iterdir()] == ["shapes"]  # no temporary folder left
    with pytest.raises(SystemExit) as exit_info:
        main(["make-synthetic", "--help"])
    assert exit_info.value.code == 0 and "--hard" in capsys.readouterr().out


def test_shipped_synthetic_samples_are_reproducible(samples):
    train = read_ref_youtube_vos(samples / "synthetic/train")
    valid = read_ref_youtube_vos(samples / "synthetic/valid")
    assert len(train) == 24 and len(valid) == 8 and all(r.has_masks for r in valid)
    first = generate_videos(1, seed=0, split="valid")[0]
    np.testing.assert_array_equal(valid[0].load_frames(), first.frames)
    assert [e.text for e in valid[0].expressions] == [e["text"] for e in first.expressions]


def test_caption_pairs():
    images, captions, labels = make_caption_pairs(50, seed=2, size=32)
    again = make_caption_pairs(50, seed=2, size=32)
    assert images.shape == (50, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, again[0])
    assert captions == again[1]
    for image, caption, label in zip(images, captions, labels):
        assert caption == f"a {label['size']} {label['colour']} {label['shape']}" and caption in all_captions()
        assert (image.reshape(-1, 3) == COLOURS[label["colour"]]).all(axis=1).sum() > 10
    assert len(all_captions()) == 2 * len(COLOURS) * len(SHAPES)
    assert {label["shape"] for label in labels} == set(SHAPES)


def _twin_axes(video) -> list[set[str]]:
    """For each group of two or three look-alikes: the axes of its motions (``motion_axis``)."""
    from rvoslib.data.shapes import motion_axis

    groups: dict[tuple, list[str]] = {}
    for obj in video.objects:
        groups.setdefault((obj.size, obj.colour, obj.shape), []).append(obj.motion)
    return [{motion_axis(m) for m in motions} for motions in groups.values() if 1 < len(motions) <= 3]


def test_same_axis_puts_every_twin_group_on_one_axis(hard_videos):
    same = generate_videos(20, seed=3, split="valid", hard=True, same_axis=True)
    assert sum(len(axes) > 1 for v in hard_videos for axes in _twin_axes(v)) >= 5  # plain hard mixes axes
    groups = [axes for v in same for axes in _twin_axes(v)]
    assert len(groups) >= 20 and all(len(axes) == 1 and "still" not in axes for axes in groups)
    for video in same:  # and the sentences still refer to exactly one object
        for expression in video.expressions:
            assert referents(expression["spec"], video.objects) == [expression["obj_id"]]


def test_same_axis_needs_hard():
    with pytest.raises(ValueError, match="same_axis needs hard=True"):
        generate_videos(1, seed=0, same_axis=True)
