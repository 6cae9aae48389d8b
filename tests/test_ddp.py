"""DistributedDataParallel training with the gloo backend in two CPU processes.

Two ranks with one clip each must end with identical weights, different from the
initial ones, and equal (to float tolerance) to one process training on batches of two:
the (seed, step) sampler gives the ranks the two halves of the same global batch.
"""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from rvoslib.config import Config, get_preset
from rvoslib.data import write_synthetic_dataset
from rvoslib.engine import train
from rvoslib.model import build_model
from rvoslib.runtime import seed_everything

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ddp_worker(rank: int, world_size: int, port: int, cfg_dict: dict, out_dir: str) -> None:
    """One torchrun-like process: the environment torchrun would set, then ``train``."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world_size),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    summary = train(Config.from_dict(cfg_dict), device="cpu", progress=False)
    torch.save(summary["model"].trainable_state_dict(), os.path.join(out_dir, f"rank{rank}.pt"))


def test_ddp_gloo_two_processes(tmp_path):
    root = tmp_path / "shapes"
    write_synthetic_dataset(root / "train", 4, seed=2, split="train", max_expressions=2)
    cfg = get_preset("tiny")
    cfg.model.num_frames = 2
    cfg.data.root = str(root)
    cfg.train.steps, cfg.train.batch_size, cfg.train.warmup_steps = 3, 1, 1
    cfg.train.eval_every, cfg.train.ckpt_every, cfg.train.log_every = 0, 3, 1
    cfg.train.out_dir = str(tmp_path / "ddp")

    mp.start_processes(ddp_worker, args=(2, free_port(), cfg.to_dict(), str(tmp_path)), nprocs=2, join=True,
                       start_method="spawn")
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    seed_everything(cfg.train.seed)
    initial = build_model(cfg.model).trainable_state_dict()
    assert ranks[0].keys() == ranks[1].keys() == initial.keys()
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in initial)  # DDP keeps the replicas identical
    assert sum(not torch.equal(ranks[0][k], initial[k]) for k in initial) > 0.9 * len(initial)
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == ["config.json", "last.pt", "log.jsonl"]

    # one process with the same global batch (2 clips) takes the same steps
    cfg.train.batch_size, cfg.train.out_dir = 2, str(tmp_path / "single")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as fast for the tiny model, and immune to oversubscribed cores
    try:
        single = train(cfg, device="cpu", progress=False)["model"].trainable_state_dict()
    finally:
        torch.set_num_threads(threads)
    # Adam turns float noise in (exactly) zero gradients, e.g. attention key biases, into lr-sized steps,
    # so compare the whole update: the runs differ by float noise, not by data (wrong shards give ~1)
    flat = {name: torch.cat([w[k].flatten() for k in sorted(initial)]) for name, w in
            (("ddp", ranks[0]), ("single", single), ("initial", initial))}
    ratio = (flat["single"] - flat["ddp"]).norm() / (flat["ddp"] - flat["initial"]).norm()
    print("ratio", float(ratio))
    assert ratio < 1e-3
