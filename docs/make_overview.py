"""Make docs/overview.png: a bundled synthetic clip, two sentences and the shipped tiny model's masks.

The same panels as ``rvoslib segment --panels`` (``rvoslib.panels.compose_panels``): one per
sentence, with the sentence written above it, enlarged with nearest-neighbour; four frames of
the clip on a 2 x 2 grid. Run from the repository root: python docs/make_overview.py
"""

import numpy as np

from rvoslib.inference import segment_video
from rvoslib.io import read_video, write_image
from rvoslib.panels import compose_panels
from rvoslib.runtime import TINY_RVOS_CHECKPOINT

CLIP = "data_samples/synthetic/valid/JPEGImages/valid_00000"
CHECKPOINT = TINY_RVOS_CHECKPOINT
SENTENCES = ["the small triangle", "the red shape that moves up"]
SHOWN = [0, 4, 8, 11]
COLUMNS = 2
GAP = 12  # white pixels between the frames of the grid
OUT = "docs/overview.png"


def grid(images: np.ndarray, columns: int, gap: int) -> np.ndarray:
    """(n, H, W, 3) uint8 -> one image, ``columns`` per row, ``gap`` white pixels between them."""
    n, height, width = images.shape[:3]
    rows = -(-n // columns)
    out = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap, 3), 255, np.uint8)
    for k, image in enumerate(images):
        y, x = (k // columns) * (height + gap), (k % columns) * (width + gap)
        out[y:y + height, x:x + width] = image
    return out


frames, _ = read_video(CLIP)
result = segment_video(CLIP, SENTENCES, CHECKPOINT, progress=False)
labels = [f"frame {t + 1} / {len(frames)}" for t in SHOWN]
panels = compose_panels(frames[SHOWN], result.masks[:, SHOWN], SENTENCES, frame_labels=labels)  # (4, H', W', 3)
write_image(OUT, grid(panels, COLUMNS, GAP))
