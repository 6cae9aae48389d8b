"""Export a trained tiny VLP-RVOS run as the shipped sample, with its JSON sidecar.

    python -m benchmarks.ship_tiny_rvos runs/tiny3k --eval benchmarks/toy_eval.json --name "after"

Writes ``data_samples/tiny_rvos/rvos-tiny-synthetic.pt`` (``best.pt`` of the run, or the file
that ``--checkpoint`` names; float16 weights, config and step; no optimizer) and
``rvos-tiny-synthetic.json`` beside it: the commands that made the data and the run
(``--command``, repeatable), the run's config, its validation curve, loss curve and training
time from ``log.jsonl`` (and those of ``--init-run``, the run it started from with ``--init``,
for a model trained in two stages), the checkpoint's sha256, and the scores that
``benchmarks.toy_eval`` measured for it on fresh splits (with their seeds).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Optional, Sequence

from benchmarks.ablations import write_text
from benchmarks.common import cpu_name

DEFAULT_OUT = "data_samples/tiny_rvos/rvos-tiny-synthetic.pt"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_curve(log_path: Path) -> dict:
    """Validation J&F per evaluated step, the last training-loss lines' time, from ``log.jsonl``."""
    from rvoslib.engine import read_log

    lines = read_log(log_path)
    val = [{"step": r["step"], "minutes": round(r["time"] / 60, 2), **{k: round(v, 4) for k, v in r["val"].items()
                                                                    if k != "num_objects"}}
           for r in lines if "val" in r]
    train = [r for r in lines if "loss" in r]
    return {"validation": val, "train_minutes": round(train[-1]["time"] / 60, 2) if train else None,
            "train_cpu_minutes": round(train[-1]["cpu_s"] / 60, 2) if train else None,
            "loss_curve": [[r["step"], round(r["loss_avg"], 4)] for r in train]}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="the run folder (best.pt, log.jsonl, config.json)")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"exported checkpoint (default: {DEFAULT_OUT})")
    parser.add_argument("--checkpoint", default="best.pt",
                        help="which checkpoint of the run to ship (default: best.pt, picked by validation J&F)")
    parser.add_argument("--init-run", help="the run folder this run started from (rvoslib train --init); its "
                                           "curve goes in the sidecar too")
    parser.add_argument("--eval", help="benchmarks.toy_eval JSON that scored the checkpoint shipped")
    parser.add_argument("--name", help="the row of --eval that is this run")
    parser.add_argument("--command", action="append", default=[], help="a command that made the data or the run")
    args = parser.parse_args(argv)

    from rvoslib.checkpoint import export_weights, load_checkpoint

    run, out = Path(args.run), Path(args.out)
    chosen = run / args.checkpoint
    if not chosen.is_file():
        hint = (": the run must have evaluated at least once (train.eval_every > 0)" if args.checkpoint == "best.pt"
                else "")
        raise SystemExit(f"--checkpoint: {chosen} not found{hint}")
    if args.init_run and not (Path(args.init_run) / "log.jsonl").is_file():
        raise SystemExit(f"--init-run: {Path(args.init_run) / 'log.jsonl'} not found")
    which = ("best.pt of the run by validation J&F" if args.checkpoint == "best.pt"
             else f"{args.checkpoint} of the run")
    export_weights(chosen, out, half=True)
    state = load_checkpoint(out)
    sidecar = {
        "what": f"tiny VLP-RVOS (rvoslib tiny preset with the overrides in \"config\") trained on synthetic "
                f"shapes videos; {which}, weights exported as float16",
        "commands": args.command,
        "step": state["step"],
        "config": state["config"],
        "curve": run_curve(run / "log.jsonl"),
        **({"init_run_curve": run_curve(Path(args.init_run) / "log.jsonl")} if args.init_run else {}),
        "machine": cpu_name(),
        "checkpoint": {"file": out.name, "bytes": out.stat().st_size, "sha256": sha256(out)},
    }
    if args.eval:
        scores = json.loads(Path(args.eval).read_text(encoding="utf-8"))
        if args.name not in scores["models"]:
            raise SystemExit(f"--name {args.name!r} is not a row of {args.eval}: {sorted(scores['models'])}")
        sidecar["fresh_splits"] = {"seeds": scores["seeds"], "counts": scores["counts"],
                                   "scores": scores["models"][args.name], "reference": scores["reference"]}
    write_text(out.with_suffix(".json"), json.dumps(sidecar, indent=1) + "\n")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
