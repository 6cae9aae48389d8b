"""rvoslib: referring video object segmentation with a frozen, prompt-tuned CLIP (VLP-RVOS).

Importing this package does no work: no model is built, no config is registered,
no heavy optional dependency (decord, matplotlib, ipywidgets) is imported.

Shape glossary used in every docstring and shape comment:

    B   clips in a batch             T   frames per clip
    H,W input pixels (square S)      h,w patch grid (S / patch)
    N   h*w patches                  L   text tokens
    D_v vision width                 D_t text width
    d   internal width (256)         P   prompts (N_v vision, N_tp temporal, N_l language, N_h history)
"""

__version__ = "0.1.0"
