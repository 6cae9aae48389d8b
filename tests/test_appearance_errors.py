"""benchmarks/appearance_errors.py: which attribute a wrong appearance pick gets wrong."""

import numpy as np
import pytest

from benchmarks import appearance_errors as ae
from rvoslib.data.synthetic import generate_videos


@pytest.fixture(scope="module")
def video():
    """A standard validation video with an appearance sentence and at least one other object."""
    for v in generate_videos(40, seed=7, split="valid"):
        if any(e["kind"] == "appearance" for e in v.expressions) and len(v.objects) >= 3:
            return v
    raise AssertionError("no suitable video in 40")


def masks_on(video, pick) -> np.ndarray:
    """(K, T, H, W) masks that put every expression's mask on the object ``pick(expression)`` (None: empty)."""
    out = np.zeros((len(video.expressions),) + video.id_maps.shape, dtype=bool)
    for k, e in enumerate(video.expressions):
        target = pick(e)
        if target is not None:
            out[k] = video.id_maps == target
    return out


def test_the_referents_own_mask_is_right_with_j_one(video):
    rows = ae.score_appearance(video, masks_on(video, lambda e: e["obj_id"]), range(len(video.frames)))
    assert rows and all(r["right"] and r["j"] == 1.0 and r["differs"] is None for r in rows)
    assert len(rows) == sum(e["kind"] == "appearance" for e in video.expressions)


def test_a_wrong_pick_names_the_attributes_that_differ(video):
    objects = {o.obj_id: o for o in video.objects}

    def other(e):  # the first object that is not the referent
        return next(o.obj_id for o in video.objects if o.obj_id != e["obj_id"])

    rows = ae.score_appearance(video, masks_on(video, other), range(len(video.frames)))
    appearance = [e for e in video.expressions if e["kind"] == "appearance"]
    for row, e in zip(rows, appearance):
        referent, picked = objects[e["obj_id"]], objects[other(e)]
        expected = tuple(a for a in ("size", "colour", "shape") if getattr(referent, a) != getattr(picked, a))
        assert not row["right"] and row["differs"] == expected and row["j"] == 0.0
    empty = ae.score_appearance(video, masks_on(video, lambda e: None), range(len(video.frames)))
    assert all(r["differs"] == ("empty",) and not r["right"] for r in empty)


def test_summary_counts_wrong_picks_that_share_an_attribute():
    rows = [{"right": True, "j": 0.8, "differs": None},
            {"right": False, "j": 0.0, "differs": ("shape",)},
            {"right": False, "j": 0.0, "differs": ("colour", "shape")},
            {"right": False, "j": 0.0, "differs": ("empty",)}]
    s = ae.summarize(rows)
    assert (s["sentences"], s["right"], s["j_when_right"]) == (4, 1, 0.8)
    assert s["wrong_by_differing"] == {"shape": 1, "colour+shape": 1, "empty": 1}
    # the empty mask shares nothing; the shape-only miss shares size and colour; the other shares size
    assert s["wrong_with_same"] == {"size": 2, "colour": 1, "shape": 0}


def test_base_rates_match_a_direct_count(video):
    rates = ae.base_rates([video])
    objects = {o.obj_id: o for o in video.objects}
    pairs = [(objects[e["obj_id"]], o) for e in video.expressions if e["kind"] == "appearance"
             for o in video.objects if o.obj_id != e["obj_id"]]
    assert rates["shape"] == sum(r.shape == o.shape for r, o in pairs) / len(pairs)
    assert rates["colour"] == sum(r.colour == o.colour for r, o in pairs) / len(pairs)


def test_bad_checkpoint_argument_names_it(tmp_path, capsys):
    with pytest.raises(SystemExit):
        ae.main(["--checkpoint", f"x={tmp_path / 'missing.pt'}", "--seed", "1"])
    assert "missing.pt" in capsys.readouterr().err


def test_main_scores_the_shipped_model_and_leaves_logging_as_it_was(tmp_path):
    import json
    import logging
    from pathlib import Path

    from rvoslib.data.synthetic import generate_videos as make

    shipped = Path(__file__).resolve().parents[1] / "data_samples/tiny_rvos/rvos-tiny-synthetic.pt"
    library = logging.getLogger("rvoslib")
    before = library.level
    out = tmp_path / "ae.json"
    assert ae.main(["--checkpoint", f"shipped={shipped}", "--seed", "5", "--videos", "3", "--out", str(out),
                    "--threads", "1"]) == 0
    assert library.level == before
    results = json.loads(out.read_text())
    n = sum(e["kind"] == "appearance" for v in make(3, seed=5, split="valid") for e in v.expressions)
    assert results["models"]["shipped"]["sentences"] == n > 0
    assert "| shipped |" in out.with_suffix(".md").read_text()
