"""Datasets: one in-memory form (records.py), readers (formats.py dispatches; davis.py, a2d.py, jhmdb.py,
refcoco.py; files.py holds what they share), synthetic shapes videos (synthetic.py; the shapes
world in shapes.py, the referring expressions in expressions.py), clip transforms (transforms.py),
the torch Dataset and collate (dataset.py).

Importing this package imports numpy, torch and PIL only; open_clip (for CLIP's mean/std)
and pycocotools (for MeViS RLE masks) are imported on first use.
"""

from rvoslib.data.a2d import read_a2d_sentences
from rvoslib.data.dataset import RVOSDataset, collate_clips, eval_windows, sample_train_indices
from rvoslib.data.davis import read_ref_davis17
from rvoslib.data.formats import READERS, read_dataset, read_mevis, read_ref_youtube_vos
from rvoslib.data.jhmdb import read_jhmdb_sentences
from rvoslib.data.records import DatasetFormatError, Expression, MasksUnavailableError, VideoRecord
from rvoslib.data.refcoco import read_refcoco
from rvoslib.data.synthetic import make_caption_pairs, write_synthetic_dataset

__all__ = [
    "READERS",
    "DatasetFormatError",
    "Expression",
    "MasksUnavailableError",
    "RVOSDataset",
    "VideoRecord",
    "collate_clips",
    "eval_windows",
    "make_caption_pairs",
    "read_a2d_sentences",
    "read_jhmdb_sentences",
    "read_dataset",
    "read_mevis",
    "read_ref_davis17",
    "read_ref_youtube_vos",
    "read_refcoco",
    "sample_train_indices",
    "write_synthetic_dataset",
]
