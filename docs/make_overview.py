"""Make docs/overview.png: a bundled synthetic clip, two sentences and the shipped tiny model's masks.

Run from the repository root: python docs/make_overview.py
"""

import numpy as np

from rvoslib import viz
from rvoslib.inference import segment_video
from rvoslib.io import read_video
from rvoslib.runtime import TINY_RVOS_CHECKPOINT

CLIP = "data_samples/synthetic/valid/JPEGImages/valid_00000"
CHECKPOINT = TINY_RVOS_CHECKPOINT
SENTENCES = ["the small triangle", "the red shape that moves up"]
SHOWN = [0, 4, 8, 11]

frames, _ = read_video(CLIP)
result = segment_video(CLIP, SENTENCES, CHECKPOINT, progress=False)
rows, titles = [], []
for k, sentence in enumerate(SENTENCES):
    overlaid = viz.overlay_masks(frames[SHOWN], result.masks[k][SHOWN], colors=np.array([[0, 255, 255]]))
    rows.extend(overlaid)
    titles.extend([f'"{sentence}" t={t}' for t in SHOWN])
fig = viz.show_frames(np.stack(rows), titles=titles, ncols=len(SHOWN), figsize=(10, 5.6))
viz.save_figure(fig, "docs/overview.png")
