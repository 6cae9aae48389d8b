"""Shared fixtures: paths to the shipped samples and a writer of tiny Ref-YouTube-VOS sets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data_samples"


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op torch thread for a module's tests (tiny tensors: as fast, and immune to
    oversubscribed cores); the previous setting is restored after the module. Use it with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def samples() -> Path:
    """The repository's data_samples/ folder."""
    return SAMPLES


def _save_rgb(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array).astype(np.uint8)).save(path)


def _save_palette(path: Path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(np.asarray(ids).astype(np.uint8), mode="P")
    image.putpalette([0] * 768)
    image.save(path)


@pytest.fixture
def save_rgb():
    """save_rgb(path, (H, W, 3) array): write an RGB image (format from the extension)."""
    return _save_rgb


@pytest.fixture
def save_palette():
    """save_palette(path, (H, W) ids): write a palette PNG whose pixel values are the ids."""
    return _save_palette


@pytest.fixture
def tiny_ytvos(tmp_path: Path):
    """Write a 2-video Ref-YouTube-VOS set (3 frames of 6 x 8, objects 1 and 2, void in one
    frame); returns (root, id_maps) with id_maps[video] of shape (3, 6, 8)."""
    root = tmp_path / "ytvos"
    id_maps, meta = {}, {"videos": {}}
    for v, video in enumerate(("vid_a", "vid_b")):
        maps = np.zeros((3, 6, 8), dtype=np.uint8)
        for t in range(3):
            maps[t, 1:3, t : t + 2] = 1  # object 1 moves right
            maps[t, 4:6, 5:8] = 2
            _save_rgb(root / "JPEGImages" / video / f"{t:05d}.jpg", np.full((6, 8, 3), 40 * t + v, np.uint8))
        maps[2, 0, 0] = 255  # void pixel
        for t in range(3):
            _save_palette(root / "Annotations" / video / f"{t:05d}.png", maps[t])
        id_maps[video] = maps
        meta["videos"][video] = {
            "expressions": {
                "0": {"exp": f"the left thing {v}", "obj_id": "1", "kind": "motion"},
                "1": {"exp": "the right block", "obj_id": "2"},
            },
            "frames": ["00000", "00001", "00002"],
        }
    (root / "meta_expressions.json").write_text(json.dumps(meta))
    return root, id_maps
