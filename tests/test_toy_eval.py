"""benchmarks/toy_eval.py (fresh-split scoring), benchmarks/ship_tiny_rvos.py (export + sidecar) and the README's
copy of the committed before/after table."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks import ship_tiny_rvos, toy_eval
from rvoslib import engine
from rvoslib.checkpoint import load_checkpoint, model_from_checkpoint
from rvoslib.config import get_preset
from rvoslib.data.synthetic import write_synthetic_dataset


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 2-step tiny run (random CLIP, T=2) that evaluated once, so it has a best.pt."""
    root = tmp_path_factory.mktemp("shapes")
    write_synthetic_dataset(root / "train", 3, seed=1, split="train", max_expressions=2)
    write_synthetic_dataset(root / "valid", 1, seed=1, split="valid", max_expressions=2)
    cfg = get_preset("tiny")
    cfg.model.num_frames = 2
    cfg.data.root = str(root)
    cfg.train.out_dir = str(tmp_path_factory.mktemp("run"))
    cfg.train.steps, cfg.train.batch_size, cfg.train.warmup_steps = 2, 2, 1
    cfg.train.eval_every, cfg.train.ckpt_every, cfg.train.log_every = 2, 2, 1
    cfg.train.history_training = "off"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        engine.train(cfg, device="cpu", progress=False)
    finally:
        torch.set_num_threads(threads)
    return cfg


def test_make_split_is_reused_and_never_overwrites_another(tmp_path):
    folder = toy_eval.make_split(tmp_path / "std", videos=2, seed=5, hard=False)
    meta = folder / "valid" / "meta_expressions.json"
    stamp = meta.stat().st_mtime_ns
    assert toy_eval.make_split(tmp_path / "std", videos=2, seed=5, hard=False) == folder
    assert meta.stat().st_mtime_ns == stamp  # reused, not rewritten
    with pytest.raises(FileExistsError, match="another split"):
        toy_eval.make_split(tmp_path / "std", videos=2, seed=6, hard=False)
    assert meta.stat().st_mtime_ns == stamp


def test_checkpoint_arguments_are_checked(tmp_path):
    good = tmp_path / "a.pt"
    good.write_bytes(b"x")
    assert toy_eval.checkpoints([f"mine={good}"]) == {"mine": str(good)}
    with pytest.raises(SystemExit, match="NAME=PATH"):
        toy_eval.checkpoints([str(good)])
    with pytest.raises(SystemExit, match="no such file"):
        toy_eval.checkpoints([f"mine={tmp_path / 'missing.pt'}"])


def test_scores_and_table_on_a_fresh_split(run, tmp_path):
    best = f"{run.train.out_dir}/best.pt"
    out = tmp_path / "eval.json"
    assert toy_eval.main(["--checkpoint", f"run={best}", "--std-seed", "7", "--hard-seed", "8", "--videos", "2",
                          "--work", str(tmp_path / "splits"), "--out", str(out), "--threads", "1"]) == 0
    results = json.loads(out.read_text())
    assert results["seeds"] == {"standard": 7, "hard": 8}
    hard = results["models"]["run"]["hard"]
    sentences = sum(v for k, v in results["counts"]["hard"].items() if k != "videos")
    assert hard["num_objects"] == sentences  # every sentence of the split was scored
    assert results["reference"]["J&F/motion"] < 1.0  # a random look-alike is sometimes the wrong one
    table = out.with_suffix(".md").read_text()
    assert "| run |" in table and "seed 7" in table and "seed 8" in table
    assert f"{results['models']['run']['standard']['J&F']:.3f}" in table


def test_ship_exports_best_with_a_sidecar(run, tmp_path):
    scores = {"seeds": {"standard": 1, "hard": 2}, "counts": {}, "reference": {"J&F": 0.5},
              "models": {"after": {"standard": {"J&F": 0.4}, "hard": {"J&F": 0.3}}}}
    (tmp_path / "eval.json").write_text(json.dumps(scores))
    out = tmp_path / "ship" / "model.pt"
    assert ship_tiny_rvos.main([run.train.out_dir, "--out", str(out), "--eval", str(tmp_path / "eval.json"),
                                "--name", "after", "--command", "rvoslib train ..."]) == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())
    state = load_checkpoint(out)
    assert state["optimizer"] is None and all(v.dtype == torch.float16 for v in state["model"].values()
                                              if v.is_floating_point())
    assert sidecar["step"] == state["step"] == 2
    assert sidecar["checkpoint"]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert [v["step"] for v in sidecar["curve"]["validation"]] == [2]
    assert sidecar["fresh_splits"]["scores"] == scores["models"]["after"]
    assert sidecar["commands"] == ["rvoslib train ..."]
    model, _ = model_from_checkpoint(out)
    assert model.cfg.num_frames == 2
    with pytest.raises(SystemExit, match="not a row"):
        ship_tiny_rvos.main([run.train.out_dir, "--out", str(out), "--eval", str(tmp_path / "eval.json"),
                             "--name", "before"])


def test_ship_exports_a_named_checkpoint_with_the_init_runs_curve(run, tmp_path):
    out = tmp_path / "ship" / "model.pt"
    with pytest.raises(SystemExit, match="--checkpoint: .*nope.pt not found"):
        ship_tiny_rvos.main([run.train.out_dir, "--out", str(out), "--checkpoint", "nope.pt"])
    with pytest.raises(SystemExit, match="--init-run: .*log.jsonl not found"):
        ship_tiny_rvos.main([run.train.out_dir, "--out", str(out), "--checkpoint", "last.pt",
                             "--init-run", str(tmp_path / "missing")])
    assert not out.exists()  # a refused call writes nothing
    assert ship_tiny_rvos.main([run.train.out_dir, "--out", str(out), "--checkpoint", "last.pt",
                                "--init-run", run.train.out_dir]) == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["what"].split("; ")[1].startswith("last.pt of the run,")
    assert sidecar["init_run_curve"] == sidecar["curve"] and sidecar["curve"]["loss_curve"]
    assert "fresh_splits" not in sidecar


def test_motion_stride_scores_a_perfect_prediction_as_right_and_exact():
    from benchmarks.motion_stride import score_video
    from rvoslib.data.synthetic import generate_videos

    video = generate_videos(1, seed=3, split="valid", hard=True)[0]
    kept = [0, 2, 4]
    truth = np.stack([video.id_maps[kept] == e["obj_id"] for e in video.expressions])  # (K, 3, H, W)
    rows = score_video(video, truth, kept, probs=truth.astype(np.float32))
    assert [r[0] for r in rows] == [e["kind"] for e in video.expressions]
    assert all(j == 1.0 and right and choice for _, j, right, choice in rows)
    background = np.zeros_like(truth)
    background[:, :, 0, 0] = True  # one pixel of the corner, on no object
    rows = score_video(video, background, kept)
    assert all(j == 0.0 and not right and choice is None for _, j, right, choice in rows)
    wrong = np.stack([video.id_maps[kept] == next(o.obj_id for o in video.objects if o.obj_id != e["obj_id"])
                      for e in video.expressions])  # another object, perfectly segmented
    rows = score_video(video, wrong, kept, probs=wrong.astype(np.float32))
    assert not any(right or choice for _, _, right, choice in rows)


def test_look_alike_chance_counts_the_objects_a_motion_blind_reader_cannot_tell_apart():
    from benchmarks.motion_stride import look_alike_chance
    from rvoslib.data.synthetic import generate_videos

    for video in generate_videos(4, seed=3, split="valid", hard=True):
        for expression, chance in zip(video.expressions, look_alike_chance(video)):
            assert (chance == 1.0) == (expression["kind"] == "appearance")  # appearance sentences need no motion
            if expression["kind"] == "motion":  # the referent has at least one twin that moves differently
                referent = next(o for o in video.objects if o.obj_id == expression["obj_id"])
                twins = [o for o in video.objects if o.appearance() == referent.appearance()]
                assert len(twins) >= 2 and chance <= 1.0 / len(twins) + 1e-9


def test_order_needed_marks_look_alikes_that_move_along_the_same_axis():
    from benchmarks.motion_stride import needs_order, set_reader_chance
    from rvoslib.data.synthetic import generate_videos

    seen = {True: 0, False: 0}
    for video in generate_videos(30, seed=12, split="valid", hard=True):
        objects = {o.obj_id: o for o in video.objects}
        for e in video.expressions:
            if e["kind"] != "motion":
                assert not needs_order(video, e)
                continue
            own = objects[e["obj_id"]]
            alikes = [o for o in video.objects if o is not own
                      and all(getattr(o, k) == v for k, v in e["spec"]["attrs"].items())]
            axis = {"static": 0, "left": 1, "right": 1, "up": 2, "down": 2, "bouncing": 2}
            same_axis = [o for o in alikes if axis[o.motion] == axis[own.motion]]
            assert needs_order(video, e) == bool(same_axis)
            assert set_reader_chance(video, e) == 1 / (1 + len(same_axis))
            seen[bool(same_axis)] += 1
    assert seen[True] > 5 and seen[False] > 5  # both cases occur in hard videos


# ----------------------------------------------------------------------------- the README's copy


def _readme_row(section: str, prefix: str) -> list[str]:
    """The cells after the name of the one table row of ``section`` whose name starts with ``prefix``."""
    rows = [line for line in section.splitlines() if line.startswith(f"| {prefix}")]
    assert len(rows) == 1, f"{len(rows)} table rows start with {prefix!r}"
    return [c.strip() for c in rows[0].strip("|").split("|")[1:]]


def test_readme_before_after_is_the_committed_result():
    """The toy-scale section's before/after table and its target rows are read off the committed
    benchmarks/toy_eval_issue11_seeds9941.json: re-scoring a model without updating the README fails."""
    repo = Path(__file__).resolve().parents[1]
    results = json.loads((repo / "benchmarks/toy_eval_issue11_seeds9941.json").read_text())
    readme = (repo / "README.md").read_text(encoding="utf-8")
    start = readme.index("### Before and after, on fresh splits")
    readme = readme[start:readme.index("\n### ", start + 1)]  # this section only
    table = toy_eval.markdown(results)  # the committed file's own table
    for prefix in ("before", "after", "lead, not shipped", "*motion-blind reference*"):
        assert _readme_row(readme, prefix) == _readme_row(table, prefix), prefix
    assert f"seeds {results['seeds']['standard']} / {results['seeds']['hard']}" in readme
    shipped = next(m for name, m in results["models"].items() if name.startswith("after"))
    targets = {"standard split J&F >= 0.85": (shipped["standard"]["J&F"], 0.85),
               "standard split appearance J&F >= 0.90": (shipped["standard"]["J&F/appearance"], 0.90),
               "`--hard` motion J&F >= 0.60": (shipped["hard"]["J&F/motion"], 0.60)}
    for target, (value, threshold) in targets.items():
        measured, status = _readme_row(readme, target)
        assert measured.startswith(f"{value:.3f}"), target  # the first number given is this split's
        assert ("met" in status and "missed" not in status) == (value >= threshold), target
