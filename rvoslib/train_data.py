"""Training data order: the training dataset, and batches as a pure function of ``(seed, step)``.

:class:`StepBatchSampler` walks an epoch-wise permutation of the items (seeded by
``(seed, epoch)``) at position ``step x global batch``; every item's frame sampling and
augmentation is seeded by ``(seed, epoch, item)`` inside ``RVOSDataset`` (through
:class:`EpochItems`). So a run resumed at step k gets exactly the batches an
uninterrupted run gets, and the ranks of a DDP run share each global batch without overlap.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
from torch.utils.data import DataLoader, Dataset, Sampler

from rvoslib.config import Config
from rvoslib.distributed import DistContext


def read_split(cfg: Config, split: str) -> list:
    """Read one split of ``cfg.data`` (root, format) as ``VideoRecord`` s (``rvoslib.evaluate.read_split``)."""
    from rvoslib.evaluate import read_split as read_dataset_split

    return read_dataset_split(cfg.data.root, cfg.data.format, split)


def train_records(cfg: Config) -> list:
    """The training records: ``cfg.data``'s train split, plus the mix dataset for joint training.

    With ``data.mix_root`` set, records of ``(mix_root, mix_format, mix_split)`` join the
    training set so that about ``mix_fraction`` of the training items (expressions) come from
    them: the mix records are shuffled by ``train.seed`` and taken in that order, cycling
    when more are needed than there are. Images (RefCOCO) become static clips of repeated frames.
    """
    records = read_split(cfg, cfg.data.train_split)
    d = cfg.data
    if d.mix_root is None:
        return records
    if not 0 <= d.mix_fraction < 1:
        raise ValueError(f"data.mix_fraction must be in [0, 1), got {d.mix_fraction}")
    from rvoslib.evaluate import read_split as read_dataset_split

    extra = read_dataset_split(d.mix_root, d.mix_format, d.mix_split)
    mixed = mix_records(records, extra, d.mix_fraction, cfg.train.seed)
    return records + mixed


def mix_records(main: Sequence, extra: Sequence, fraction: float, seed: int) -> list:
    """Records of ``extra`` holding about ``fraction`` of the items of ``main + result`` (see :func:`train_records`).

    Returns:
        the chosen ``extra`` records (a record may repeat when ``extra`` has too few items).
    """
    main_items = sum(len(r.expressions) for r in main)
    target = round(fraction / (1 - fraction) * main_items)
    usable = [r for r in extra if r.expressions]
    if target == 0 or not usable:
        return []
    order = np.random.default_rng([seed, 7919]).permutation(len(usable))  # 7919: a stream of its own
    chosen, items = [], 0
    while items < target:
        for index in order:
            chosen.append(usable[int(index)])
            items += len(usable[int(index)].expressions)
            if items >= target:
                break
    return chosen


def train_clip_frames(cfg: Config) -> int:
    """Frames per training item: T, or 2T (clips A and B) with two-clip history training."""
    return cfg.model.num_frames * (1 if cfg.train.history_training == "off" else 2)


def make_train_dataset(records: Sequence, cfg: Config) -> Dataset:
    """``RVOSDataset`` in training mode for ``cfg``: items of :func:`train_clip_frames` frames (clips A
    and B, each sampled with its own gaps, with two-clip history training)."""
    from rvoslib.data import RVOSDataset

    jitter = (cfg.data.jitter,) * 3 if cfg.data.jitter > 0 else None
    clips = train_clip_frames(cfg) // cfg.model.num_frames
    return RVOSDataset(records, clip_len=cfg.model.num_frames, size=cfg.model.backbone.image_size, train=True,
                       max_skip=cfg.data.max_skip, flip_prob=cfg.data.flip_prob, jitter=jitter, seed=cfg.train.seed,
                       clips=clips, fixed_windows=cfg.data.fixed_windows)


class EpochItems(Dataset):
    """Index a training dataset by ``(item, epoch)``: sets the epoch, then returns ``base[item]``.

    The epoch travels with the index, so a DataLoader worker's copy of the dataset draws
    the same random clip as the main process would.
    """

    def __init__(self, base: Dataset):
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        item, epoch = key
        self.base.set_epoch(epoch)
        return self.base[item]


class StepBatchSampler(Sampler):
    """Micro-batches of ``(item, epoch)`` keys as a pure function of ``(seed, step)``.

    Item positions run through consecutive epochs; epoch ``e`` visits every item once in
    the order ``default_rng([seed, e]).permutation(num_items)``. Optimizer step ``s``
    (0-based) uses the global batch of positions ``[s G, (s + 1) G)`` with
    ``G = batch_size x grad_accum x world_size``; micro-batch ``m`` of rank ``r`` takes
    positions ``s G + (m world_size + r) batch_size + [0, batch_size)``. So the ranks
    share each global batch without overlap (DistributedSampler semantics), and a run
    resumed at step ``k`` gets exactly the batches an uninterrupted run gets.

    Args:
        num_items: dataset length.
        batch_size: clips per micro-batch per process.
        grad_accum: micro-batches per step.
        seed: base seed.
        start_step, end_step: yield the micro-batches of steps ``[start_step, end_step)``.
        rank, world_size: this process's slice.
    """

    def __init__(self, num_items: int, batch_size: int, grad_accum: int, seed: int, start_step: int, end_step: int,
                 rank: int = 0, world_size: int = 1):
        if num_items < 1:
            raise ValueError("the training set is empty")
        self.num_items, self.batch_size, self.grad_accum = num_items, batch_size, grad_accum
        self.seed, self.start_step, self.end_step = seed, start_step, end_step
        self.rank, self.world_size = rank, world_size
        self._cached: tuple[int, np.ndarray] = (-1, np.empty(0, dtype=np.int64))

    @property
    def global_batch(self) -> int:
        """G: clips per optimizer step over all processes and micro-batches."""
        return self.batch_size * self.grad_accum * self.world_size

    def permutation(self, epoch: int) -> np.ndarray:
        """Item order of one epoch, ``(num_items,)``."""
        if self._cached[0] != epoch:
            self._cached = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.num_items))
        return self._cached[1]

    def key(self, position: int) -> tuple[int, int]:
        """``(item, epoch)`` at a global position."""
        epoch, offset = divmod(position, self.num_items)
        return int(self.permutation(epoch)[offset]), epoch

    def micro_batches(self, step: int) -> list[list[tuple[int, int]]]:
        """The ``grad_accum`` micro-batches of this rank for 0-based step ``step``."""
        base = step * self.global_batch
        out = []
        for m in range(self.grad_accum):
            first = base + (m * self.world_size + self.rank) * self.batch_size
            out.append([self.key(first + b) for b in range(self.batch_size)])
        return out

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start_step, self.end_step):
            yield from self.micro_batches(step)

    def __len__(self) -> int:
        return max(0, self.end_step - self.start_step) * self.grad_accum


def make_train_loader(dataset: Dataset, cfg: Config, start_step: int, end_step: int, ctx: DistContext) -> DataLoader:
    """DataLoader over :class:`StepBatchSampler` micro-batches (collated by ``collate_clips``)."""
    from rvoslib.data import collate_clips

    sampler = StepBatchSampler(len(dataset), cfg.train.batch_size, cfg.train.grad_accum, cfg.train.seed,
                               start_step, end_step, ctx.rank, ctx.world_size)
    workers = cfg.data.num_workers
    return DataLoader(EpochItems(dataset), batch_sampler=sampler, collate_fn=collate_clips, num_workers=workers,
                      pin_memory=ctx.device.type == "cuda", persistent_workers=workers > 0)


def batch_ids(batch: dict) -> list[tuple[str, str]]:
    """``(video_id, exp_id)`` of every clip of a collated batch."""
    return [(str(m["video_id"]), str(m["exp_id"])) for m in batch["meta"]]
