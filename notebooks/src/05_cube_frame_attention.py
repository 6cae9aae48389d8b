# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: -all
#     notebook_metadata_filter: kernelspec,language_info,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
#   language_info:
#     codemirror_mode:
#       name: ipython
#       version: 3
#     file_extension: .py
#     mimetype: text/x-python
#     name: python
#     nbconvert_exporter: python
#     pygments_lexer: ipython3
#     version: 3.11.7
# ---

# %% [markdown]
# # 05 · Cube-frame attention
#
# After stage 2 the clip is a grid of feature tokens, `(B, T, d, h, w)`: T frames of h x w tokens.
# Spatio-temporal reasoning needs tokens to exchange information **across space and time**. Full
# attention over all T·h·w tokens does that in one step, but costs `(T·h·w)^2` pairs: 15 million
# per head and layer for T = 8 frames of 22 x 22 tokens. VLP-RVOS factorises it:
#
# * **cube attention**: a *cube* is a k x k spatial window extended through **all T frames**; each
#   token attends to the T·k² tokens of its cube (local in space, global in time);
# * **frame attention**: each token attends to the h·w tokens of its own frame (global in space).
#
# One layer runs cube then frame attention (then an FFN). This is the paper's **cube-frame
# attention**, the spatio-temporal reasoning block that VLP-RVOS puts after the multi-stage
# vision-language relation modelling and before the mask head. This notebook
#
# 1. draws cubes and frames on the token grid, including the padding when h is not a multiple of k,
#    and re-derives the partition by hand (asserting it equals `rvoslib.cubes`);
# 2. shows, for a chosen query token, which keys it can reach under each mode (full / frame / cube /
#    shifted cube / a whole cube-frame layer), computed from the library's layers with autograd;
# 3. compares the cost (`rvoslib.spatiotemporal.attention_cost`) and the **measured** time and
#    memory of one layer against full attention as T grows;
# 4. checks two equivalences on small inputs: frame mode is per-frame attention, and a cube that
#    covers the whole grid is full attention.
#
# **Needs:** CPU in fast mode; no data, no weights (the layers are randomly initialised: cost and
# reachability do not depend on weights). Full mode (`RVOSLIB_MODE=full`) measures the paper's
# layer (d = 256, 8 heads, 22 x 22 grid) on a GPU, up to T = 16; it could not be run where this
# notebook was written (no GPU), the code path is the same with bigger numbers.
#
# **Time:** about 30 s in fast mode on 2 CPU cores (measured with `pytest --nbval` while other
# programs shared the cores; mostly the timing loop); under a minute in full mode on a GPU. Timings
# on a shared or busy CPU are noisy: we take the best of several runs, and no check depends on them.
#
# ## The equations
#
# Write one layer's input as $X \in \mathbb{R}^{B \times T \times h \times w \times d}$ and the fixed 3-D sine
# position code as $P \in \mathbb{R}^{T \times h \times w \times d}$. Each attention block is pre-norm and
# residual; queries and keys see the position, values do not:
#
# $$
# \operatorname{Attn}(Y, P) = \operatorname{softmax}\!\left(\frac{(Y+P)W_Q \,\big((Y+P)W_K\big)^{\top}}{\sqrt{d/H}} + M\right) Y W_V,
# \qquad Y \in \mathbb{R}^{n \times d},\; W_Q, W_K, W_V \in \mathbb{R}^{d \times d}
# $$
#
# per head ($H$ heads of width $d/H$, then an output projection), where $n$ is the number of tokens
# that may attend to each other and $M$ is $0$ for allowed pairs and $-\infty$ for masked ones
# (padding, other strips of a shifted cube). The two blocks differ only in **which $n$ tokens form a
# group**:
#
# * **cube attention**: pad $h, w$ up to multiples of $k$ and cut the grid into $n_C = \lceil h/k \rceil \lceil w/k \rceil$
#   cubes; group $c$ holds $Y_c \in \mathbb{R}^{T k^2 \times d}$ (all $T$ frames of one $k \times k$ window),
#   so the block runs on a batch of shape $(B\,n_C,\; T k^2,\; d)$;
# * **frame attention**: group $(b, t)$ holds the $h w$ tokens of one frame,
#   a batch of shape $(B\,T,\; h w,\; d)$.
#
# One layer (`SpatioTemporalLayer`, mode `cube-frame`):
#
# $$
# X' = X + \operatorname{Attn}_{\text{cube}}(\operatorname{LN}(X), P), \quad
# X'' = X' + \operatorname{Attn}_{\text{frame}}(\operatorname{LN}(X'), P), \quad
# X''' = X'' + \operatorname{FFN}(\operatorname{LN}(X''))
# $$
#
# **Cost** (query-key pairs per head and clip, padded cube tokens included, `attention_cost`):
#
# $$
# C_{\text{full}} = (T h w)^2, \qquad
# C_{\text{frame}} = T (h w)^2, \qquad
# C_{\text{cube}} = n_C (T k^2)^2 \approx T^2\, h w\, k^2, \qquad
# C_{\text{cube-frame}} = C_{\text{cube}} + C_{\text{frame}}
# $$
#
# $$
# \frac{C_{\text{full}}}{C_{\text{cube-frame}}} = \frac{T (hw)^2}{n_C k^4 T + (hw)^2}
# \;\xrightarrow{\,T \to \infty\,}\; \frac{(hw)^2}{n_C k^4}
# $$
#
# Full attention also stores a $(Thw) \times (Thw)$ weight matrix per head for the backward pass
# (with a kernel that materialises it); cube-frame stores $n_C$ matrices of $T k^2 \times T k^2$ and
# $T$ of $hw \times hw$: memory follows the same counts. Section 3 checks both.

# %%
from rvoslib.runtime import setup

rt = setup(seed=0)  # reads RVOSLIB_MODE = fast | full | auto (auto = full when CUDA is present);
# progress bars become text, which stay readable after the notebook is saved and reopened

from pathlib import Path

ROOT = rt.root  # the repository folder (the one holding data_samples/)
print(f"mode={rt.mode}  device={rt.device}  repository={ROOT}")

import math
import time

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from IPython.display import display
from matplotlib.colors import ListedColormap
from torch.nn.attention import SDPBackend, sdpa_kernel
from tqdm.auto import tqdm

from rvoslib.config import SpatioTemporalConfig, get_preset
from rvoslib.cubes import cube_attention_mask, cube_partition, cube_unpartition, num_cubes, padded_size
from rvoslib.position import sine_position_3d
from rvoslib.spatiotemporal import ATTENTION_MODES, SpatioTemporalLayer, attention_cost

cfg = get_preset("tiny" if rt.fast else "clip-b16")
st = cfg.model.spatiotemporal
print(f"preset spatio-temporal stage: {st.layers} layers, {st.heads} heads, cube k={st.cube_size}, "
      f"attention={st.attention!r}, d={cfg.model.dim}")

# %% [markdown]
# ## 1. Cubes on the token grid
#
# We draw a small grid for clarity: T = 3 frames of 10 x 10 tokens with k = 4. Ten is not a multiple
# of four, so the grid is zero-padded at the bottom and right to 12 x 12 (dark hatched cells); the
# padded tokens are masked out as keys, so they never receive attention, and their outputs are
# dropped. Same colour = same cube: a cube reaches through every frame.

# %%
PT, PH, PW, K = 3, 10, 10, 4  # picture grid: frames, rows, columns, cube side


def cube_ids(T, h, w, k, shift=(0, 0)):
    # (T, Hp, Wp) id of the cube each position of the padded grid belongs to, from the library's partition
    hp, wp = padded_size(h, k), padded_size(w, k)
    windows, _ = cube_partition(torch.zeros(1, T, hp, wp, 1), k, shift)  # padded grid: every position shown
    ids = torch.arange(windows.shape[0], dtype=torch.float32)[:, None, None].expand_as(windows)
    return cube_unpartition(ids, k, T, hp, wp, shift)[0, ..., 0].long()


def draw_grid(ax, ids, h, w, title, cmap="tab20"):
    hp, wp = ids.shape
    ax.imshow(np.asarray(ids) % 20, cmap=cmap, vmin=0, vmax=19, interpolation="nearest")
    pad = np.zeros((hp, wp), bool)
    pad[h:, :] = pad[:, w:] = True
    ax.imshow(np.where(pad, 1.0, np.nan), cmap=ListedColormap(["#333333"]), alpha=0.75, interpolation="nearest")
    ys, xs = np.nonzero(pad)
    ax.scatter(xs, ys, marker="x", s=12, c="white", linewidths=0.6)
    ax.set_xticks(np.arange(-0.5, wp, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, hp, 1), minor=True)
    ax.grid(which="minor", color="white", linewidth=0.5)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    ids = np.asarray(ids)
    for y, x in zip(*np.nonzero(ids[:, 1:] != ids[:, :-1])):  # thick lines between windows
        ax.plot([x + 0.5, x + 0.5], [y - 0.5, y + 0.5], color="black", lw=2)
    for y, x in zip(*np.nonzero(ids[1:, :] != ids[:-1, :])):
        ax.plot([x - 0.5, x + 0.5], [y + 0.5, y + 0.5], color="black", lw=2)
    ax.set_title(title, fontsize=9)


ids = cube_ids(PT, PH, PW, K)
print(f"{PH} x {PW} grid, k={K}: padded to {padded_size(PH, K)} x {padded_size(PW, K)}, "
      f"{num_cubes(PH, PW, K)} cubes of T*k*k = {PT * K * K} tokens")
fig, axes = plt.subplots(1, PT + 1, figsize=(3.2 * (PT + 1), 3.4))
for t in range(PT):
    draw_grid(axes[t], ids[t], PH, PW, f"frame {t}: cubes (colour) + padding (x)")
draw_grid(axes[PT], np.full((PH, PW), 2), PH, PW, "frame attention: one frame = one window\n(no padding needed)")
fig.tight_layout()
plt.show()


# %% [markdown]
# ### The partition, by hand
#
# `cube_partition(x, k)` with `x (B, T, h, w, C)` pads the grid to `(Hp, Wp)`, then cuts it into
# `nC = (Hp/k)·(Wp/k)` windows of `T·k·k` tokens, ordered `(b, cube row, cube column)` and, inside a
# window, `(t, row in cube, column in cube)`. With plain `pad` / `view` / `permute`:

# %%
def my_cube_partition(x, k):
    B, T, h, w, C = x.shape
    hp, wp = padded_size(h, k), padded_size(w, k)
    x = F.pad(x, (0, 0, 0, wp - w, 0, hp - h))  # zero-pad w then h: (B, T, Hp, Wp, C)
    x = x.view(B, T, hp // k, k, wp // k, k, C)  # (B, T, nh, kh, nw, kw, C)
    x = x.permute(0, 2, 4, 1, 3, 5, 6)  # (B, nh, nw, T, kh, kw, C)
    windows = x.reshape(B * (hp // k) * (wp // k), T * k * k, C)  # (B*nC, T*k*k, C)
    real = torch.zeros(hp, wp, dtype=torch.bool)
    real[:h, :w] = True
    real = real.view(hp // k, k, wp // k, k).permute(0, 2, 1, 3).reshape(-1, 1, k * k).expand(-1, T, -1)
    key_pad = ~real.reshape(-1, T * k * k).repeat(B, 1)  # (B*nC, T*k*k), True = padding
    return windows, key_pad


tokens = torch.randn(2, PT, PH, PW, 5)  # (B, T, h, w, C)
windows, key_pad = cube_partition(tokens, K)
mine, my_pad = my_cube_partition(tokens, K)
torch.testing.assert_close(mine, windows)
assert torch.equal(my_pad, key_pad)
print("windows", tuple(windows.shape), "= (B*nC, T*k*k, C); padding per window:", key_pad.sum(-1)[:num_cubes(PH, PW, K)].tolist())
print("our partition equals rvoslib.cubes.cube_partition")

# %% [markdown]
# ### Shifted cubes
#
# With fixed cubes, tokens on either side of a cube border never meet in cube attention (frame
# attention still connects them). The `shifted-cube` ablation (Swin-style) shifts the windows by
# k/2 on every other layer: the padded grid is rolled by (-k/2, -k/2) before cutting, and the cubes
# that wrap around are split into strips that are masked from each other. In the original
# coordinates that is simply cutting at k/2, k/2 + k, ... instead of 0, k, ...

# %%
shift = (K // 2, K // 2)
shifted = cube_ids(1, PH, PW, K, shift)[0]  # (Hp, Wp), after undoing the roll
windows_s, pad_s = cube_partition(torch.zeros(1, 1, PH, PW, 1), K, shift)
allowed = cube_attention_mask(pad_s, PH, PW, K, 1, shift)  # (nC, k*k, k*k) True = may attend
# effective windows: two positions are in the same effective window if they share a cube and may attend
effective = torch.full((padded_size(PH, K), padded_size(PW, K)), -1)
pos = cube_partition(torch.arange(effective.numel(), dtype=torch.float32).view(1, 1, *effective.shape, 1), K, shift)[0][..., 0]
for c in range(allowed.shape[0]):
    for q in range(allowed.shape[1]):
        group = int(allowed[c, q].nonzero()[0]) if allowed[c, q].any() else q
        effective.view(-1)[int(pos[c, q])] = c * 100 + group
_, effective = torch.unique(effective, return_inverse=True)
fig, axes = plt.subplots(1, 3, figsize=(10, 3.5))
draw_grid(axes[0], ids[0], PH, PW, "plain cubes (cut at 0, k, 2k)")
draw_grid(axes[1], shifted, PH, PW, "shifted: cubes of the rolled grid")
draw_grid(axes[2], effective, PH, PW, "shifted: effective windows\n(strips of a wrapped cube masked apart)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 2. Which keys can a query reach?
#
# Rather than re-deriving masks, we ask the library's own layers, with autograd: feed random
# tokens, take the output at one query position, backpropagate, and mark every input token with a
# non-zero gradient. A masked key gets an attention weight of exactly 0, hence a gradient of exactly
# 0, so this is the exact set of tokens the output depends on.
#
# Rows: one attention block of each mode (a single hop), then a **whole cube-frame layer** (cube
# attention, then frame attention, then the FFN): in two hops the query already depends on
# **every** token of the clip, at a fraction of full attention's cost.

# %%
PD = 16  # width of the toy layers used for pictures
pic_pos = sine_position_3d(PT, PH, PW, PD)


def toy_layer(mode, shift=0, k=K):
    torch.manual_seed(0)
    return SpatioTemporalLayer(PD, SpatioTemporalConfig(heads=2, attention=mode, cube_size=k, ffn_dim=32), shift=shift)


LAYERS = {
    "full attention": (toy_layer("full"), "full_attention"),
    "frame attention": (toy_layer("frame"), "frame_attention"),
    "cube attention": (toy_layer("cube"), "cube_attention"),
    "shifted cube attention": (toy_layer("shifted-cube", shift=K // 2), "cube_attention"),
    "cube-frame layer (2 hops)": (toy_layer("cube-frame"), None),
}


def reach(name, query):
    # (T, h, w) bool: input tokens the output at `query` = (t, y, x) depends on
    layer, block = LAYERS[name]
    x = torch.randn(1, PT, PH, PW, PD, requires_grad=True)
    y = layer(x, pic_pos)[0] if block is None else getattr(layer, block)(x, pic_pos)[0]
    y[(0, *query)].sum().backward()
    return x.grad[0].abs().sum(-1) > 0


def draw_reach(name, query, axes):
    r = reach(name, query).numpy()
    hp, wp = padded_size(PH, K), padded_size(PW, K)
    for t, ax in enumerate(axes):
        img = np.full((hp, wp, 3), 0.2)  # padding: dark
        img[:PH, :PW] = np.where(r[t][..., None], [1.0, 0.55, 0.1], [0.92, 0.92, 0.92])
        ax.imshow(img, interpolation="nearest")
        if t == query[0]:
            ax.plot(query[2], query[1], marker="*", color="blue", ms=12)
        ax.set_xticks(np.arange(-0.5, wp, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, hp, 1), minor=True)
        ax.grid(which="minor", color="white", linewidth=0.4)
        ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
        ax.set_title(f"frame {t}", fontsize=8)
    axes[0].set_ylabel(f"{name}\n{int(r.sum())} of {r.size} keys", fontsize=8)
    return r


QUERY = (1, 5, 6)  # (frame, row, column)
fig, axes = plt.subplots(len(LAYERS), PT, figsize=(2.6 * PT, 2.5 * len(LAYERS)))
reached = {name: draw_reach(name, QUERY, row) for name, row in zip(LAYERS, axes)}
fig.suptitle(f"keys reachable from the query * at frame {QUERY[0]}, row {QUERY[1]}, column {QUERY[2]} "
             "(orange = reached, dark = padding)", fontsize=9)
fig.tight_layout()
plt.show()


# %% [markdown]
# Move the query (live kernel needed); the static figure above is the default query.

# %%
def explore(mode, t, y, x):
    fig, axes = plt.subplots(1, PT, figsize=(2.6 * PT, 2.6))
    draw_reach(mode, (t, y, x), axes)
    fig.tight_layout()
    plt.show()


display(widgets.interactive(explore, mode=widgets.Dropdown(options=list(LAYERS), value="shifted cube attention"),
                            t=widgets.IntSlider(QUERY[0], 0, PT - 1), y=widgets.IntSlider(QUERY[1], 0, PH - 1),
                            x=widgets.IntSlider(QUERY[2], 0, PW - 1)))

# %% [markdown]
# ## 3. Cost
#
# Query-key pairs one layer computes, per clip and head: the formulas of the equations above
# ($C_{\text{full}}$, $C_{\text{frame}}$, $C_{\text{cube}}$), re-derived in `my_cost` and checked against
# `attention_cost`. Frame attention is linear in $T$; cube attention is quadratic in $T$ but with the
# small factor $k^2$ instead of $hw$. For the paper's 22 x 22 grid and k = 4:

# %%
GH = GW = 22
Ts = [1, 2, 4, 6, 8, 12, 16, 24, 32]


def my_cost(mode, T, h, w, k):
    cube = num_cubes(h, w, k) * (T * k * k) ** 2
    frame = T * (h * w) ** 2
    return {"full": (T * h * w) ** 2, "frame": frame, "cube": cube, "cube-frame": cube + frame,
            "shifted-cube": cube + frame}[mode]


costs = {m: [attention_cost(m, T, GH, GW, 4) for T in Ts] for m in ("full", "cube-frame", "frame", "cube")}
assert all(costs[m][i] == my_cost(m, T, GH, GW, 4) for m in costs for i, T in enumerate(Ts))
print(f"{'T':>3} {'full':>14} {'cube-frame':>12} {'ratio':>6}")
for i, T in enumerate(Ts):
    print(f"{T:3d} {costs['full'][i]:14,d} {costs['cube-frame'][i]:12,d} {costs['full'][i] / costs['cube-frame'][i]:6.1f}")

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
for m, c in costs.items():
    axes[0].plot(Ts, c, "o-", label=m)
axes[0].set(xscale="log", yscale="log", xlabel="T (frames)", ylabel="query-key pairs per head",
            title=f"one layer, {GH} x {GW} grid, k = 4")
axes[0].legend(fontsize=8)
axes[1].plot(Ts, np.array(costs["full"]) / np.array(costs["cube-frame"]), "o-")
axes[1].axhline(1, color="grey", lw=0.5)
axes[1].set(xlabel="T (frames)", ylabel="full / cube-frame", title="how much cheaper cube-frame is")
for ax in axes:
    ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()

# %% [markdown]
# At T = 1 cube-frame costs a little *more* than full attention (both of its blocks see the same
# single frame). The saving grows with T: $C_{\text{full}} / C_{\text{cube-frame}} = T (hw)^2 / (n_C k^4 T + (hw)^2)$,
# about 6x at T = 8 and tending to $(hw)^2 / (n_C k^4) = 484^2 / (36 \cdot 256) \approx 25$ for very long
# clips, where the cube term dominates. Counting is not timing, though. Next we **measure** one layer.

# %% [markdown]
# ### Measured time and memory of one layer
#
# One `SpatioTemporalLayer` (pre-norm attention block(s) + FFN), forward and backward, as in
# training. Fast mode: d = 64, 4 heads, a 12 x 12 grid, on the CPU. Full mode: the paper's layer,
# d = 256, 8 heads, 22 x 22, on the GPU.
#
# * **time**: best of several runs (`torch.cuda.synchronize` on a GPU; on the CPU with one thread,
#   which makes the numbers much less sensitive to other programs running at the same time);
# * **memory**: the bytes autograd keeps for the backward pass (measured with
#   `torch.autograd.graph.saved_tensors_hooks`, every stored tensor counted once; works on any
#   device), and on a GPU also the peak allocated memory (`torch.cuda.max_memory_allocated`).
#
# Memory is measured twice: with PyTorch's default attention kernel (on recent PyTorch a fused,
# flash-style kernel that never stores the full attention matrix) and with the plain **math**
# kernel, which materialises the `(queries x keys)` matrix, as any implementation that records or
# edits attention weights must.

# %%
if rt.fast:
    D, HEADS, G, T_LIST, REPEATS = 64, 4, 12, [1, 2, 4, 8, 16], 5
else:
    D, HEADS, G, T_LIST, REPEATS = 256, 8, 22, [1, 2, 4, 6, 8, 12, 16], 10
MODES = ["full", "cube-frame", "frame"]
device = rt.device
threads = torch.get_num_threads()
if device.type == "cpu":
    torch.set_num_threads(1)  # one CPU thread: timings far less disturbed by other busy processes (restored below)


def saved_bytes(fn):
    # bytes of the tensors autograd saves for backward while running fn(), each storage once
    storages = {}

    def pack(t):
        s = t.untyped_storage()
        storages[(s.data_ptr(), s.nbytes())] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return sum(storages.values()), out


def sync():
    if device.type == "cuda":
        torch.cuda.synchronize()


results = []
for mode in tqdm(MODES, desc="modes"):
    torch.manual_seed(0)
    layer = SpatioTemporalLayer(D, SpatioTemporalConfig(heads=HEADS, attention=mode, cube_size=4, ffn_dim=4 * D)).to(device)
    for T in T_LIST:
        x = torch.randn(1, T, G, G, D, device=device, requires_grad=True)
        pos = sine_position_3d(T, G, G, D, device=device)

        def step():
            y, _ = layer(x, pos)
            y.square().mean().backward()

        step()  # warm-up
        times = []
        for _ in range(REPEATS):
            sync()
            start = time.perf_counter()
            step()
            sync()
            times.append(time.perf_counter() - start)
        row = {"mode": mode, "T": T, "tokens": T * G * G, "ms": 1e3 * min(times)}
        row["saved_MB"] = saved_bytes(lambda: layer(x, pos))[0] / 2**20
        with sdpa_kernel(SDPBackend.MATH):
            row["saved_math_MB"] = saved_bytes(lambda: layer(x, pos))[0] / 2**20
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            step()
            row["peak_MB"] = (torch.cuda.max_memory_allocated() - base) / 2**20
        results.append(row)
        del x

torch.set_num_threads(threads)
print(f"{'mode':>10} {'T':>3} {'tokens':>7} {'ms':>9} {'saved MB':>9} {'math MB':>9}" + (f" {'peak MB':>9}" if device.type == "cuda" else ""))
for r in results:
    print(f"{r['mode']:>10} {r['T']:3d} {r['tokens']:7d} {r['ms']:9.2f} {r['saved_MB']:9.2f} {r['saved_math_MB']:9.2f}"
          + (f" {r['peak_MB']:9.1f}" if "peak_MB" in r else ""))


# %%
def series(mode, key):
    rows = [r for r in results if r["mode"] == mode]
    return [r["T"] for r in rows], [r[key] for r in rows]


panels = [("ms", "time per forward + backward (ms)"), ("saved_math_MB", "saved for backward, math kernel (MB)"),
          ("saved_MB", "saved for backward, default kernel (MB)")]
if device.type == "cuda":
    panels.append(("peak_MB", "peak GPU memory (MB)"))
fig, axes = plt.subplots(1, len(panels), figsize=(4.3 * len(panels), 3.6))
for ax, (key, title) in zip(axes, panels):
    for mode, style in zip(MODES, ("o-", "s-", "^--")):
        ax.plot(*series(mode, key), style, label=mode)
    ax.set(xlabel="T (frames)", title=title, xscale="log", yscale="log")
    ax.set_xticks(T_LIST, [str(t) for t in T_LIST])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
fig.suptitle(f"one layer, d={D}, {HEADS} heads, {G} x {G} grid, on {device.type.upper()}", fontsize=10)
fig.tight_layout()
plt.show()

last = {m: next(r for r in reversed(results) if r["mode"] == m) for m in MODES}
math_ratio = {T: series("full", "saved_math_MB")[1][i] / series("cube-frame", "saved_math_MB")[1][i]
              for i, T in enumerate(T_LIST)}  # measured memory ratio per T (math kernel)
pair_ratio = {T: attention_cost("full", T, G, G, 4) / attention_cost("cube-frame", T, G, G, 4) for T in T_LIST}
print("T:", T_LIST)
print("counted pairs, full / cube-frame:   ", [f"{pair_ratio[T]:.2f}" for T in T_LIST])
print("measured memory, full / cube-frame: ", [f"{math_ratio[T]:.2f}" for T in T_LIST])
print(f"at T={T_LIST[-1]}: full / cube-frame time {last['full']['ms'] / last['cube-frame']['ms']:.1f}x, "
      f"math-kernel memory {last['full']['saved_math_MB'] / last['cube-frame']['saved_math_MB']:.1f}x, "
      f"counted pairs {attention_cost('full', T_LIST[-1], G, G, 4) / attention_cost('cube-frame', T_LIST[-1], G, G, 4):.1f}x")

# %% [markdown]
# What the measurements say:
#
# * **time** follows the counted pairs once the attention dominates (large T): full attention grows
#   with (T·h·w)², cube-frame much more slowly. For small clips the fixed costs (projections, FFN,
#   two attention blocks instead of one, the partition's copies) make cube-frame no faster, or
#   slower;
# * **memory with the math kernel** is dominated by the stored attention matrices and follows the
#   counted pairs as well: this is the saving the paper's cost argument is about;
# * **memory with a fused kernel** is linear in the number of tokens for *every* mode (the kernel
#   recomputes the attention in the backward pass instead of storing it), and cube-frame keeps a
#   little *more* (two attention blocks). With modern kernels the gain of cube-frame is compute,
#   not memory.

# %% [markdown]
# ## 4. Two equivalences
#
# **Frame mode is per-frame attention.** We recompute a frame-attention block by hand: for each frame
# separately, project queries and keys from `tokens + position` and values from `tokens` with the
# block's own weights, and call `F.scaled_dot_product_attention`.
#
# **A cube as large as the grid is full attention.** With k >= h, w there is a single cube holding
# every token of every frame: cube attention must equal full attention with the same weights.

# %%
ET, EH, EW, ED = 3, 5, 6, 32
torch.manual_seed(1)
y = torch.randn(2, ET, EH, EW, ED)
pos = sine_position_3d(ET, EH, EW, ED)
frame_layer = SpatioTemporalLayer(ED, SpatioTemporalConfig(heads=4, attention="frame", ffn_dim=64))
mha = frame_layer.attns["frame"]

with torch.no_grad():
    library, _ = frame_layer.frame_attention(y, pos)
    by_hand = torch.empty_like(y)
    for b in range(y.shape[0]):
        for t in range(ET):
            tok = y[b, t].reshape(EH * EW, ED)  # one frame's tokens
            qk_in = (y[b, t] + pos[t]).reshape(EH * EW, ED)
            q, k, v = mha.q_proj(qk_in), mha.k_proj(qk_in), mha.v_proj(tok)
            q, k, v = (rearrange(z, "n (h c) -> h n c", h=mha.heads) for z in (q, k, v))
            out = F.scaled_dot_product_attention(q, k, v)  # (heads, h*w, c), this frame only
            by_hand[b, t] = mha.out_proj(rearrange(out, "h n c -> n (h c)")).reshape(EH, EW, ED)
frame_error = (library - by_hand).abs().max().item()
print(f"frame mode vs per-frame SDPA: max |diff| {frame_error:.1e}")

big = max(EH, EW)
cube_layer = SpatioTemporalLayer(ED, SpatioTemporalConfig(heads=4, attention="cube", cube_size=big, ffn_dim=64))
full_layer = SpatioTemporalLayer(ED, SpatioTemporalConfig(heads=4, attention="full", ffn_dim=64))
full_layer.attns["full"].load_state_dict(cube_layer.attns["cube"].state_dict())
with torch.no_grad():
    as_cube, _ = cube_layer.cube_attention(y, pos)
    as_full, _ = full_layer.full_attention(y, pos)
cube_error = (as_cube - as_full).abs().max().item()
print(f"one {big} x {big} cube (padded grid, {int((cube_partition(y, big)[1]).sum())} padded keys masked) "
      f"vs full attention: max |diff| {cube_error:.1e}")

# %% [markdown]
# ## Summary
#
# * Cube-frame attention factorises attention over the $T \times h \times w$ token grid into two grouped
#   attentions: **cubes** (a $k \times k$ window through all $T$ frames, batch $(B n_C, T k^2, d)$) and
#   **frames** (all $hw$ tokens of one frame, batch $(B T, hw, d)$). The partition pads $h, w$ up to a
#   multiple of $k$ and masks the padded keys; our hand-made partition equals `rvoslib.cubes`.
# * One cube-frame layer already lets every token depend on every other token of the clip (two hops),
#   which a single cube or frame block cannot.
# * Counted pairs: about 6x fewer than full attention at $T = 8$ on a 22 x 22 grid, tending to
#   $(hw)^2 / (n_C k^4) \approx 25$x. With a kernel that stores the attention matrix, the memory kept for
#   the backward pass grows the same way, though by less (at $T = 16$ on the 12 x 12 grid of fast mode:
#   about 3x measured vs 6x counted, since both layers also store the projections' and the FFN's
#   activations). With fused kernels the gain is compute, not memory.
# * Frame mode is exactly per-frame attention, and a cube covering the whole grid is exactly full
#   attention.
#
# ## Exercises
#
# 1. **Predict, then run.** With $k = 2$ instead of 4 on the 22 x 22 grid at $T = 8$, is cube-frame
#    cheaper or dearer than with $k = 4$, and by how much? Check with
#    `attention_cost("cube-frame", 8, 22, 22, 2)` against `attention_cost("cube-frame", 8, 22, 22, 4)`
#    and with `my_cost`.
# 2. **Change one field.** Add a cube layer with cube size 5,
#    `LAYERS["cube k=5"] = (toy_layer("cube", k=5), "cube_attention")`, and count the keys query
#    `QUERY` reaches: `reach("cube k=5", QUERY).sum()`. Predict it first from $T k^2$ (10 is a
#    multiple of 5, so there is no padding).
# 3. **Re-derive.** Write the limit $(hw)^2 / (n_C k^4)$ for a 16 x 16 grid with $k = 4$, then check it
#    against `attention_cost("full", T, 16, 16, 4) / attention_cost("cube-frame", T, 16, 16, 4)` for
#    $T = 1000$.
# 4. **Re-derive.** Build a `SpatioTemporalLayer` in `"frame"` mode with `record=True` and check that each
#    recorded frame map has shape $(B T, hw, hw)$ and rows that sum to 1.

# %%
# Exercise 1, a starting point: the two costs side by side
print({k: attention_cost("cube-frame", 8, 22, 22, k) for k in (2, 4)})

# %% [markdown]
# ## Checks

# %%
# partition: our derivation equals the library, and unpartition inverts it (plain and shifted)
torch.testing.assert_close(mine, windows)
assert torch.equal(my_pad, key_pad)
for s in [(0, 0), (K // 2, K // 2), (1, 3)]:
    w_, _ = cube_partition(tokens, K, s)
    assert w_.shape == (tokens.shape[0] * num_cubes(PH, PW, K), PT * K * K, tokens.shape[-1])
    torch.testing.assert_close(cube_unpartition(w_, K, PT, PH, PW, s), tokens)

# reachability from the query
n_frame = PH * PW
assert reached["full attention"].sum() == PT * n_frame
assert reached["frame attention"].sum() == n_frame and reached["frame attention"][QUERY[0]].all()
cube_of_query = (ids[:, :PH, :PW] == ids[QUERY]).numpy()
assert (reached["cube attention"] == cube_of_query).all(), "cube attention reaches exactly the query's cube"
assert reached["cube-frame layer (2 hops)"].all(), "one cube-frame layer already reaches every token"
window = (effective[:PH, :PW] == effective[QUERY[1], QUERY[2]]).numpy()  # the query's effective shifted window
assert (reached["shifted cube attention"] == window[None]).all(), "shifted cube = the query's effective window"
assert (reached["shifted cube attention"] != reached["cube attention"]).any()

# cost: library formula, the design's "about 6x less at T = 8, 22 x 22"
ratio8 = attention_cost("full", 8, 22, 22, 4) / attention_cost("cube-frame", 8, 22, 22, 4)
assert 5.5 < ratio8 < 6.5, ratio8
assert attention_cost("shifted-cube", 8, 22, 22, 4) == attention_cost("cube-frame", 8, 22, 22, 4)
limit = (22 * 22) ** 2 / (num_cubes(22, 22, 4) * 4**4)
ratios = [f / c for f, c in zip(costs["full"], costs["cube-frame"])]
assert ratios[0] < 1 and all(a < b < limit for a, b in zip(ratios, ratios[1:])), "the saving grows with T towards (hw)^2/(nC k^4)"

# measured memory (math kernel), not time: at the largest T cube-frame stores less than full attention,
# and the saving grows with T as the counted pairs say (times are reported, never asserted: they depend on load)
assert last["cube-frame"]["saved_math_MB"] < last["full"]["saved_math_MB"]
assert all(math_ratio[a] < math_ratio[b] for a, b in zip(T_LIST, T_LIST[1:])), math_ratio
assert all(pair_ratio[a] < pair_ratio[b] for a, b in zip(T_LIST, T_LIST[1:])), pair_ratio

# equivalences
assert frame_error < 1e-5 and cube_error < 1e-5
print("all checks passed")
