"""Configuration dataclasses for every component, and the presets.

A config is plain data: the builders (``build_model``, the engines) are the only
readers, and the whole ``Config`` is saved inside every checkpoint as a dict
(``to_dict`` / ``from_dict``). Presets are small functions that return a fresh
``Config``; ``get_preset(name)`` picks one by name.

Shapes are named as in the package docstring (B, T, H, W, h, w, N, D_v, D_t, d, L, P).
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Optional


@dataclass
class BackboneConfig:
    """The frozen CLIP towers, created through open_clip."""

    model_name: str = "ViT-B-16"  # open_clip architecture; "rvos-tiny" and "rvos-tiny2" are registered by rvoslib at run time
    pretrained: Optional[str] = "openai"  # open_clip tag, local checkpoint path, or None (random init)
    image_size: int = 352  # S: square input side in pixels; a multiple of the patch size
    cache_dir: Optional[str] = None  # open_clip's weight cache folder (None: its default)
    grad_checkpointing: bool = False  # recompute frozen CLIP blocks in backward to save activation memory
    # MLP activation of the CLIP towers: None = decide (the open_clip tag's setting; for a local file, the
    # tag it is a cached copy of, else the architecture's default GELU with a warning) | True = QuickGELU
    # (what OpenAI's CLIP weights were trained with) | False = the architecture's GELU
    quick_gelu: Optional[bool] = None


@dataclass
class PromptConfig:
    """Prompt generator and history tokens."""

    num_vision: int = 10  # N_v vision prompts appended to every frame's tokens
    num_temporal: int = 4  # N_tp temporal prompts per frame
    num_language: int = 8  # N_l language prompts inserted after the start token
    num_history: int = 4  # N_h history tokens carried from the previous clip
    generator_dim: int = 256  # width of the small shared Transformer that generates prompts
    generator_layers: int = 1  # depth of that Transformer
    generator_heads: int = 4  # heads of that Transformer
    max_frames: int = 64  # largest T the temporal prompts have a frame embedding for
    use_temporal: bool = True  # False: no temporal prompts and no temporal capture (ablation)
    use_history: bool = True  # False: no history tokens (ablation)
    use_vision: bool = True  # False: no vision prompts
    use_language: bool = True  # False: no language prompts
    # add a trainable Linear (identity at init) of each word's layer-normalised token embedding to its text
    # feature: a lexical path around the frozen text transformer (rvoslib.text_encoder, "Lexical path"); off
    # in every preset (it is not in the paper)
    lexical_words: bool = False
    # also add the mean of those lexical vectors over the sentence's words to the sentence feature (needs
    # lexical_words): the frozen tower's sentence feature is the only text the similarity head and stage 2's
    # sentence-level gate read (rvoslib.text_encoder, "Lexical path")
    lexical_sentence: bool = False
    # > 0: a trainable code per word, N(0, 1) at init, from a table of this many rows indexed by token id
    # modulo the size, added to the word's feature and (their mean) to the sentence feature: words the frozen
    # tower cannot tell apart get codes that differ (rvoslib.text_encoder, "Word codes"); 0 (every preset) is off
    word_codes: int = 0
    # how the codes reach the text features: "own" adds each word's code to that word and their mean to the
    # sentence; "bag" also adds the bag b = sum of the sentence's codes / sqrt(words) to every word, and b (not the
    # mean) to the sentence, so every word position carries every word's code (rvoslib.text_encoder, "Word codes")
    word_code_spread: str = "own"
    # the codes' standard deviation at init (1.0: the oracle code's scale); with "bag" a word's share of the bag
    # is its code / sqrt(words), so a larger scale gives each word a share closer to the oracle's whole code
    word_code_std: float = 1.0


@dataclass
class VisionConfig:
    """Prompt-tuned vision encoder over open_clip's ViT blocks."""

    stage1: bool = True  # stage-1 VL cross-attention (visual tokens -> words) inside the encoder
    stage1_layers: Optional[tuple] = None  # block indices with stage-1 cross-attention; None = every block
    stage1_heads: int = 8  # heads of the stage-1 cross-attention
    # inner width r of the stage-1 cross-attention (a bottleneck adapter: D_v -> r queries, words D_t -> r,
    # attend, r -> D_v); None = D_v // 4. Set it to D_v for the full-width cross-attention.
    stage1_dim: Optional[int] = None
    tap_layers: tuple = (3, 7, 9, 11)  # 0-based block indices whose patch tokens are tapped (first = shallow)
    # time code of the temporal capture, so it sees the frames' order, not just their set:
    # "learned" (per-frame key and query codes, zero at init) | "sine" (fixed sine codes times a learned
    # scale, zero at init) | "none" (no code: the capture cannot tell frame order)
    capture_time_code: str = "learned"
    # where the temporal capture runs in each block: "attention" (folded into the block's own attention
    # step, reusing its q/k/v; cheaper) | "after-mlp" (a separate step after the MLP, as the paper's figure)
    capture_placement: str = "attention"


@dataclass
class FusionConfig:
    """Stage 2: dual propagation between word and video tokens, then sentence gating."""

    heads: int = 8  # heads of both cross-attentions
    # "clip": the words read the tokens of all T frames at once (the paper's stage 2); "frame": they read each
    # frame on its own, and every frame's video tokens read that frame's words (rvoslib.fusion, "Scope"); with
    # spatiotemporal.decoder_words="text" no part of stage 2 then sees two frames together (the strict
    # no-temporal-pathway control)
    scope: str = "clip"
    # how the sentence feature s reaches every fused token: "gate" (the paper's F_f = V' * sigmoid(W s) + V');
    # "add" (F_f = V' + W s, no gate: behind it stage 3 learns the frames' order more reliably in
    # benchmarks/motion_probe.py; rvoslib.fusion, "Sentence")
    sentence: str = "gate"


@dataclass
class SpatioTemporalConfig:
    """Stage 3: cube-frame attention encoder and the shallow-feature/text decoder."""

    layers: int = 4  # N_st encoder layers (and decoder layers)
    heads: int = 8  # attention heads
    cube_size: int = 4  # k: a cube is a k x k spatial window through all T frames
    attention: str = "cube-frame"  # "cube-frame" | "full" | "frame" | "cube" | "shifted-cube"
    ffn_dim: int = 1024  # hidden width of the feed-forward blocks
    # where the attention's values say they came from (queries and keys always carry the 3-D sine code):
    # "none" (content only) | "absolute" (the sine code added to the values too) | "relative" (a learned
    # vector per (dt, dy, dx) offset inside a cube, rvoslib.relative_values; needs a cube block)
    value_position: str = "none"
    # "relative" only: the std of the offset table's N(0, s^2) init; 0 (default) starts at zero, so a new model
    # computes plain cube attention; the shipped tiny model used 0.5 (rvoslib.relative_values says why)
    relative_init_std: float = 0.0
    dropout: float = 0.0  # dropout inside attention and FFN
    decoder: bool = True  # the parallel decoder where the shallow feature queries the words
    # the words that decoder reads: "fused" (stage-2's updated words E', (B, L, d)) | "text" (the text
    # encoder's word features (B, L, D_t), projected to d by a new Linear, as the paper's figure draws it)
    decoder_words: str = "fused"


@dataclass
class HeadConfig:
    """Mask head and pixel-text similarity."""

    hidden: int = 256  # channels of the upsampling conv stack
    groups: int = 32  # GroupNorm groups
    output_stride: int = 4  # the conv stack upsamples x2 until this stride, then bilinear to S
    sim_dim: int = 256  # projection width for the pixel-text cosine map
    pixel_dim: int = 0  # channels of a conv path from the RGB frame into the head's last stage (0 = off)


@dataclass
class ModelConfig:
    """Everything ``build_model`` reads."""

    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    prompts: PromptConfig = field(default_factory=PromptConfig)
    vision: VisionConfig = field(default_factory=VisionConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    spatiotemporal: SpatioTemporalConfig = field(default_factory=SpatioTemporalConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    dim: int = 256  # d: internal width after the tap projections
    num_frames: int = 6  # T: frames per training clip and per inference window


@dataclass
class LossConfig:
    """Loss terms and their weights (DESIGN section 6)."""

    mask_loss: str = "bce"  # "bce" | "focal"
    bce_weight: float = 2.0  # weight of BCE (or focal) on every mask
    dice_weight: float = 5.0  # weight of Dice on every mask
    dice_per: str = "clip"  # "clip": one Dice over all T frames of a clip; "frame": one per frame, averaged
    aux_weight: float = 1.0  # multiplies each auxiliary layer's terms
    sim_bce_weight: float = 2.0  # BCE on the pixel-text map
    sim_dice_weight: float = 5.0  # Dice on the pixel-text map
    sim_temperature: float = 0.1  # cosine / temperature gives the pixel-text logits
    focal_alpha: float = 0.25  # focal loss alpha
    focal_gamma: float = 2.0  # focal loss gamma


@dataclass
class DataConfig:
    """Which dataset to read and how to sample clips (T and S come from the model config)."""

    root: str = "data_samples/synthetic"  # dataset root folder
    format: str = "ytvos"  # ytvos | mevis | davis | a2d | jhmdb | refcoco | refcoco+ | refcocog | refcoco-all
    train_split: str = "train"  # sub-folder (or split name) for training
    val_split: str = "valid"  # sub-folder (or split name) for validation
    max_skip: int = 3  # largest gap between consecutive sampled training frames
    flip_prob: float = 0.5  # horizontal flip probability (swaps "left"/"right" in the sentence)
    jitter: float = 0.1  # photometric jitter strength (0 disables)
    # True: each training item keeps the frames (and flip, jitter) drawn for it in epoch 0, every epoch;
    # False: new ones every epoch. A diagnostic: one benchmarks.model_probe run learnt which way things
    # move with fixed windows and its twin with fresh ones did not; in rvoslib train fixed windows
    # were not enough alone (docs/toy_scale_findings.md, "Which part of rvoslib train stops the order")
    fixed_windows: bool = False
    num_workers: int = 0  # DataLoader workers
    # joint training: a second dataset mixed into the training set (e.g. RefCOCO images, which become
    # static clips of T repeated frames); None = no mix
    mix_root: Optional[str] = None
    mix_format: str = "refcoco-all"  # format of mix_root (any reader's format; refcoco-all: RefCOCO/+/g)
    mix_split: str = "train"  # split of mix_root
    mix_fraction: float = 0.5  # share of training items drawn from mix_root, in [0, 1)


@dataclass
class TrainConfig:
    """Optimisation, schedule, checkpoints and logging."""

    steps: int = 2000  # optimizer steps
    batch_size: int = 1  # clips per device per step
    grad_accum: int = 1  # micro-batches accumulated per optimizer step
    lr: float = 1e-4  # AdamW learning rate for most trainable parameters
    lr_prompt_head: float = 5e-5  # learning rate for the prompt generator and the mask head
    weight_decay: float = 5e-4  # AdamW weight decay
    clip_grad: float = 0.1  # max grad norm (0 disables)
    warmup_steps: int = 100  # linear warm-up steps
    lr_milestones: tuple = (0.8,)  # fractions of `steps` where the lr is multiplied by lr_gamma
    lr_gamma: float = 0.1  # step-decay factor
    amp: str = "auto"  # "auto" (bf16 on CUDA when supported) | "bf16" | "fp16" | "none"
    # two-clip history training: "off" | "one-step" | "two-step". On by default because inference feeds
    # pooled history to every window after the first; "off" never trains the pooling (such a checkpoint
    # is run with the learned initial tokens in every window)
    history_training: str = "two-step"
    ckpt_every: int = 500  # steps between checkpoints
    eval_every: int = 500  # steps between validation runs (0 disables)
    eval_max_videos: int = 0  # periodic validation scores the first this many videos with masks (0 = all)
    log_every: int = 10  # steps between log lines
    seed: int = 0  # seeds python, numpy and torch
    out_dir: str = "runs/default"  # run folder: checkpoints, log, config
    # checkpoint whose trained weights start a fresh run, e.g. image pretraining before video training
    # (its model config may differ in model.num_frames and the CLIP weights' source only); None = none
    init_from: Optional[str] = None
    save_full_model: bool = False  # also store frozen CLIP weights in checkpoints


@dataclass
class Config:
    """The whole experiment."""

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        """Nested plain dict (tuples become lists), safe for JSON and ``torch.save``."""
        return _to_plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> "Config":
        """Inverse of ``to_dict``; unknown keys raise ``ValueError`` naming them."""
        return _from_dict(cls, data, "config")


def _to_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


def _from_dict(cls: type, data: dict, where: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; known keys are {sorted(fields)}")
    kwargs = {}
    for name, value in data.items():
        default = getattr(cls(), name)
        if dataclasses.is_dataclass(default):
            kwargs[name] = _from_dict(type(default), value, f"{where}.{name}")
        elif isinstance(default, tuple) and isinstance(value, list):
            kwargs[name] = tuple(value)
        elif name == "stage1_layers" and isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Return a copy of ``cfg`` with ``"section.sub.field=value"`` overrides applied.

    Values are parsed as Python literals when possible (``3``, ``1e-4``, ``(0, 1)``,
    ``None``, ``True``), otherwise kept as strings, then checked against the field's type
    (``train.lr=abc`` is refused: ``train.lr`` is a number) and its allowed range
    (``model.num_frames=0`` is refused: at least 1). Raises ``ValueError`` naming the bad
    override and its key.
    """
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r}: expected KEY=VALUE, e.g. train.lr=1e-4")
        key, raw = item.split("=", 1)
        key = key.strip()
        *path, name = key.split(".")
        target: Any = cfg
        for part in path:
            if not dataclasses.is_dataclass(target) or not hasattr(target, part):
                raise ValueError(f"override {item!r}: no config section {part!r}")
            target = getattr(target, part)
        if not dataclasses.is_dataclass(target) or name not in {f.name for f in dataclasses.fields(target)}:
            raise ValueError(f"override {item!r}: no config field {key!r}")
        if dataclasses.is_dataclass(getattr(target, name)):
            raise ValueError(f"override {item!r}: {key} is a config section; set one of its fields, "
                             f"e.g. {key}.{dataclasses.fields(getattr(target, name))[0].name}=...")
        try:
            value = check_field(type(target), name, _parse_value(raw), key, raw=raw)
        except ValueError as error:
            raise ValueError(f"override {item!r}: {error}") from None
        setattr(target, name, value)
    return cfg


def _parse_value(raw: str) -> Any:
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return raw
    return tuple(value) if isinstance(value, list) else value


# Allowed ranges of numeric fields, by user-facing key: (lowest value, whether the lowest is allowed).
# A value outside gets an error naming the key here, not a deep error from whatever reads it later.
FIELD_RANGES: dict[str, tuple[float, bool]] = {
    "model.num_frames": (1, True), "model.dim": (1, True),
    "model.backbone.image_size": (1, True),
    "model.prompts.num_vision": (0, True), "model.prompts.num_temporal": (0, True),
    "model.prompts.num_language": (0, True), "model.prompts.num_history": (0, True),
    "model.prompts.generator_dim": (1, True), "model.prompts.generator_layers": (0, True),
    "model.prompts.generator_heads": (1, True), "model.prompts.max_frames": (1, True),
    "model.prompts.word_code_std": (0, False),
    "model.vision.stage1_heads": (1, True), "model.fusion.heads": (1, True),
    "model.spatiotemporal.layers": (0, True), "model.spatiotemporal.heads": (1, True),
    "model.spatiotemporal.cube_size": (1, True), "model.spatiotemporal.ffn_dim": (1, True),
    "model.spatiotemporal.dropout": (0, True), "model.spatiotemporal.relative_init_std": (0, True),
    "model.head.hidden": (1, True), "model.head.groups": (1, True), "model.head.output_stride": (1, True),
    "model.head.sim_dim": (1, True), "model.head.pixel_dim": (0, True),
    "loss.sim_temperature": (0, False),
    "data.max_skip": (1, True), "data.flip_prob": (0, True), "data.jitter": (0, True),
    "data.num_workers": (0, True), "data.mix_fraction": (0, True),
    "train.steps": (1, True), "train.batch_size": (1, True), "train.grad_accum": (1, True),
    "train.lr": (0, False), "train.lr_prompt_head": (0, False), "train.weight_decay": (0, True),
    "train.clip_grad": (0, True), "train.warmup_steps": (0, True), "train.lr_gamma": (0, False),
    "train.ckpt_every": (1, True), "train.eval_every": (0, True), "train.log_every": (1, True),
    "train.eval_max_videos": (0, True),
}


# string fields with a fixed set of values; each set is also defined where it is used
# (tests/test_cli_errors.py checks that the two agree), but an override is checked here, at once
FIELD_CHOICES: dict[str, tuple[str, ...]] = {
    "model.vision.capture_time_code": ("learned", "sine", "none"),
    "model.vision.capture_placement": ("attention", "after-mlp"),
    "model.prompts.word_code_spread": ("own", "bag"),
    "model.fusion.scope": ("clip", "frame"),
    "model.fusion.sentence": ("gate", "add"),
    "model.spatiotemporal.attention": ("cube-frame", "full", "frame", "cube", "shifted-cube"),
    "model.spatiotemporal.decoder_words": ("fused", "text"),
    "model.spatiotemporal.value_position": ("none", "absolute", "relative"),
    "loss.mask_loss": ("bce", "focal"),
    "loss.dice_per": ("clip", "frame"),
    "train.amp": ("auto", "bf16", "fp16", "none"),
    "train.history_training": ("off", "one-step", "two-step"),
}


def check_field(cls: type, name: str, value: Any, key: str, raw: Optional[str] = None) -> Any:
    """``value`` for field ``name`` of the config dataclass ``cls``, checked against its type.

    Args:
        cls: a config dataclass (e.g. ``TrainConfig``).
        name: the field's name.
        value: the parsed value.
        key: the user-facing key for messages, e.g. ``"train.lr"``.
        raw: the text the value was parsed from (a ``str`` field keeps it as written).
    Returns:
        the value to store: ints widen to float for float fields, lists become tuples, a str
        field keeps ``raw`` unless it was quoted.
    Raises:
        ValueError naming ``key``, the expected type and the value.
    """
    hint = typing.get_type_hints(cls)[name]
    optional = type(None) in typing.get_args(hint)
    base = next((a for a in typing.get_args(hint) if a is not type(None)), hint) if optional else hint
    shown = raw if raw is not None else repr(value)
    if value is None:
        if optional:
            return None
        raise ValueError(f"{key} cannot be None; it expects {_type_name(base)}")
    if base is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{key} expects True or False, got {shown}")
    elif base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key} expects an integer, got {shown}")
    elif base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{key} expects a number, got {shown}")
        value = float(value)
    elif base is str:
        if not isinstance(value, str):
            value = raw.strip() if raw is not None else str(value)
    elif base is tuple or typing.get_origin(base) is tuple:
        value = tuple(value) if isinstance(value, list) else value
        if not isinstance(value, tuple):
            raise ValueError(f"{key} expects a tuple such as (1, 2), got {shown}")
    _check_range(key, value, shown)
    if key in FIELD_CHOICES and value not in FIELD_CHOICES[key]:
        raise ValueError(f"{key} must be one of {list(FIELD_CHOICES[key])}, got {shown}")
    return value


def _type_name(kind: Any) -> str:
    return {bool: "True or False", int: "an integer", float: "a number", str: "a string"}.get(kind, str(kind))


def _check_range(key: str, value: Any, shown: str) -> None:
    if key not in FIELD_RANGES or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    low, inclusive = FIELD_RANGES[key]
    if value < low or (value == low and not inclusive) or value != value:  # value != value: NaN
        bound = f">= {low}" if inclusive else f"> {low}"
        raise ValueError(f"{key} must be {bound}, got {shown}")


def check_config(cfg: Config, where: str = "config") -> Config:
    """Check every field of ``cfg`` against its type and range (:func:`check_field`); returns ``cfg``.

    Raises ValueError naming ``where`` and the first bad key.
    """
    def visit(node: Any, prefix: str) -> None:
        for f in dataclasses.fields(node):
            value, key = getattr(node, f.name), f"{prefix}{f.name}"
            if dataclasses.is_dataclass(value):
                visit(value, f"{key}.")
                continue
            try:
                setattr(node, f.name, check_field(type(node), f.name, value, key))
            except ValueError as error:
                raise ValueError(f"{where}: {error}") from None

    visit(cfg, "")
    return cfg


def load_config_file(path: Any) -> Config:
    """A ``Config`` from a JSON file (e.g. a run's ``config.json``), checked field by field.

    Raises:
        FileNotFoundError if missing; ValueError naming the file when it is not valid JSON,
        has unknown keys, or holds a value of the wrong type or range.
    """
    import json
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"config file {str(path)!r} is not UTF-8 text: {error}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"config file {str(path)!r} is not valid JSON: {error}") from None
    try:
        cfg = Config.from_dict(data)
    except (TypeError, ValueError) as error:
        raise ValueError(f"config file {str(path)!r}: {error}") from None
    return check_config(cfg, where=f"config file {str(path)!r}")


# --------------------------------------------------------------------------- presets


def clip_b16() -> Config:
    """The paper's setting: open_clip ViT-B-16 with OpenAI weights, S=352 (22 x 22 grid), T=6."""
    return Config()


def clip_l14() -> Config:
    """ViT-L-14 with OpenAI weights at S=336 (24 x 24 grid); taps scaled to 24 blocks."""
    cfg = Config()
    cfg.model.backbone = BackboneConfig(model_name="ViT-L-14", pretrained="openai", image_size=336)
    cfg.model.vision.tap_layers = (7, 15, 19, 23)
    return cfg


def tiny() -> Config:
    """A CPU-sized model for tests, notebooks' fast mode and toy-scale studies.

    The CLIP is open_clip's own architecture at toy size ("rvos-tiny2": width 64,
    4 layers, patch 8, S=64 -> 8 x 8 grid; text width 32, 4 layers, context 32),
    the architecture of the shipped tiny CLIP pretrained on still scenes
    (``data_samples/tiny_clip/rvos-tiny-scenes.pt``). ``pretrained=None`` gives random
    CLIP weights; the engines point it at that checkpoint. History is trained with
    two clips per step (the default), as inference feeds it to every window after the first.
    """
    cfg = Config()
    m = cfg.model
    m.backbone = BackboneConfig(model_name="rvos-tiny2", pretrained=None, image_size=64)
    m.prompts = PromptConfig(num_vision=4, num_temporal=2, num_language=4, num_history=2,
                             generator_dim=64, generator_layers=1, generator_heads=2)
    m.vision = VisionConfig(stage1_heads=2, tap_layers=(0, 1, 2, 3))
    m.fusion = FusionConfig(heads=4)
    m.spatiotemporal = SpatioTemporalConfig(layers=2, heads=4, cube_size=4, ffn_dim=256)
    m.head = HeadConfig(hidden=64, groups=8, sim_dim=64)
    m.dim = 64
    m.num_frames = 4
    cfg.train = TrainConfig(steps=600, lr=1e-3, lr_prompt_head=5e-4, warmup_steps=20, batch_size=4,
                            clip_grad=1.0, ckpt_every=200, eval_every=200, out_dir="runs/tiny")
    return cfg


PRESETS: dict[str, Callable[[], Config]] = {"tiny": tiny, "clip-b16": clip_b16, "clip-l14": clip_l14}


def get_preset(name: str) -> Config:
    """A fresh ``Config`` for a preset name ("tiny", "clip-b16", "clip-l14")."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]()
