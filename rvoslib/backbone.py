"""The frozen CLIP towers: creation through open_clip, weight resolution, freezing, tokenizer.

``create_clip(cfg)`` builds an open_clip ``CLIP`` exactly the way a user would with
``open_clip.create_model(name, pretrained=..., force_image_size=S)``, with three
additions:

1. the tiny preset's architecture ("rvos-tiny", ``rvoslib/model_configs/rvos-tiny.json``)
   is registered with open_clip on first use (never at import);
2. an open_clip tag ("openai", "laion2b_s34b_b88k", ...) is resolved to a local file
   *before* open_clip is called: first the Hugging Face cache and open_clip's URL cache,
   then (only if the host answers within a few seconds) open_clip's own downloader.
   Offline with nothing cached, this fails in about a second with one
   :class:`WeightsUnavailableError` instead of huggingface_hub's ~45 s retry loop;
3. a local checkpoint of the wrong architecture, or an unreadable file, raises one
   :class:`CheckpointError` naming the file and summarising the mismatch;
4. the MLP activation matches the weights (:func:`use_quick_gelu`): OpenAI's CLIP weights
   were trained with QuickGELU, while open_clip's ``ViT-B-16`` / ``ViT-L-14`` configs say
   GELU. With a tag open_clip knows it; a local file does not say, so rvoslib recognises
   the cached copy of a tag by its path (e.g. ``models--timm--vit_base_patch16_clip_224.openai``),
   and otherwise builds GELU with a warning unless ``backbone.quick_gelu`` is set.

Checkpoints are read by open_clip's ``load_checkpoint`` with ``weights_only=True``
(safetensors files through safetensors); open_clip resizes the vision position
embedding when ``S`` differs from the checkpoint's image size.

Both towers are frozen: ``requires_grad_(False)`` and eval mode. A module that holds
CLIP parts and must keep them in eval when its parent calls ``.train()`` can use
:class:`FrozenCLIP`, or :func:`keep_frozen_eval` in its own ``train`` override (the
prompted encoders do the latter).
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import os
import re
import socket
import threading
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from .config import BackboneConfig

logger = logging.getLogger(__name__)

TINY_MODEL_NAME = "rvos-tiny"
TINY_SCENES_MODEL_NAME = "rvos-tiny2"  # the grown tiny CLIP pretrained on scenes (rvoslib.pretrain)
TINY_MODEL_NAMES = (TINY_MODEL_NAME, TINY_SCENES_MODEL_NAME)  # rvoslib's configs in model_configs/
_MODEL_CONFIG_DIR = Path(__file__).parent / "model_configs"
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".npz", ".ckpt")
PROBE_TIMEOUT_S = 3.0  # how long the network probe may take before weights count as unreachable


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights named by an open_clip tag are neither cached nor downloadable."""


class CheckpointError(ValueError):
    """A local checkpoint cannot be read or does not fit the requested architecture."""


# --------------------------------------------------------------------------- model configs


def register_tiny_config() -> None:
    """Register rvoslib's model configs (``rvos-tiny``, ``rvos-tiny2``) with open_clip; idempotent."""
    import open_clip

    for name in TINY_MODEL_NAMES:
        if name not in open_clip.list_models():
            open_clip.add_model_config(_MODEL_CONFIG_DIR / f"{name}.json")


def model_config(model_name: str) -> dict:
    """open_clip's architecture dict for ``model_name``; ``ValueError`` with suggestions if unknown."""
    import open_clip

    register_tiny_config()
    cfg = open_clip.get_model_config(model_name)
    if cfg is None:
        known = open_clip.list_models()
        close = difflib.get_close_matches(model_name, known, n=5)
        hint = f" Did you mean {close}?" if close else ""
        raise ValueError(
            f"backbone.model_name={model_name!r} is not an open_clip architecture.{hint} "
            f"See open_clip.list_models() ({len(known)} names) or use {TINY_MODEL_NAME!r}."
        )
    return cfg


def _check_image_size(model_name: str, cfg: dict, image_size: int) -> None:
    """Raise ``ValueError`` unless S is a positive multiple of the ViT patch size."""
    vision = cfg.get("vision_cfg", {})
    if "timm_model_name" in vision or isinstance(vision.get("layers"), (list, tuple)):
        raise ValueError(
            f"backbone.model_name={model_name!r} is not a plain open_clip ViT "
            "(timm or ResNet tower); rvoslib's prompted encoders need a ViT."
        )
    patch = vision.get("patch_size", 16)
    if not isinstance(image_size, int) or image_size <= 0 or image_size % patch:
        nearest = max(1, round(image_size / patch)) * patch if isinstance(image_size, (int, float)) else patch
        raise ValueError(
            f"backbone.image_size S={image_size!r} must be a positive multiple of the patch size "
            f"{patch} of {model_name!r} (e.g. S={nearest})."
        )


# --------------------------------------------------------------------------- weight resolution


def _looks_like_path(value: str) -> bool:
    return os.sep in value or "/" in value or value.endswith(_CHECKPOINT_SUFFIXES) or value.startswith("~")


def _hf_candidates(hf_hub: str) -> tuple[str, list[str]]:
    """(repo id, file names open_clip would fetch) for a tag's ``hf_hub`` entry, safetensors first."""
    repo_id, filename = os.path.split(hf_hub)  # "org/repo/" -> ("org/repo", "")
    if not filename or filename == "open_clip_pytorch_model.bin":
        return repo_id, ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    if filename.endswith((".bin", ".pth")):
        return repo_id, [filename[:-4] + ".safetensors", filename]
    return repo_id, [filename]


def _cached_weights(tag_cfg: dict, cache_dir: Optional[str], tried: list[str]) -> Optional[str]:
    """Path of an already cached weight file for an open_clip tag config, or None (no network)."""
    if tag_cfg.get("file"):
        tried.append(f"file {tag_cfg['file']}")
        return tag_cfg["file"] if os.path.isfile(tag_cfg["file"]) else None
    if tag_cfg.get("hf_hub"):
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            try_to_load_from_cache = None
        if try_to_load_from_cache is not None:
            repo_id, names = _hf_candidates(tag_cfg["hf_hub"])
            for name in names:
                tried.append(f"Hugging Face cache{f' in {cache_dir}' if cache_dir else ''}: {repo_id}/{name}")
                found = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir)
                if isinstance(found, str) and os.path.isfile(found):
                    return found
    if tag_cfg.get("url"):
        folder = cache_dir or os.path.expanduser("~/.cache/clip")
        target = os.path.join(folder, os.path.basename(tag_cfg["url"]))
        tried.append(f"open_clip URL cache: {target}")
        if os.path.isfile(target):
            return target
    return None


def _hf_offline() -> bool:
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def _download_hosts(tag_cfg: dict) -> list[tuple[str, int]]:
    """(host, port) pairs open_clip would contact for this tag (a proxy replaces them)."""
    urls = []
    if tag_cfg.get("hf_hub"):
        try:
            from huggingface_hub import constants

            urls.append(constants.ENDPOINT)
        except ImportError:
            pass
    if tag_cfg.get("url"):
        urls.append(tag_cfg["url"])
    proxy = urllib.request.getproxies().get("https")
    if proxy:
        urls = [proxy]
    hosts = []
    for url in urls:
        parts = urllib.parse.urlsplit(url if "//" in url else f"//{url}")
        if parts.hostname:
            hosts.append((parts.hostname, parts.port or (80 if parts.scheme == "http" else 443)))
    return hosts


def _host_reachable(host: str, port: int = 443, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True if a TCP connection to host:port opens within ``timeout`` s (DNS included)."""
    result = {"ok": False}

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result["ok"] = True
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)  # getaddrinfo ignores socket timeouts
    thread.start()
    thread.join(timeout)
    return result["ok"]


def _unavailable_message(model_name: str, tag: str, tried: list[str], why: str) -> str:
    lines = "\n  - ".join(tried) if tried else "(nothing)"
    return (
        f"Pretrained weights for model {model_name!r} with open_clip tag {tag!r} are not available: {why}\n"
        f"Tried:\n  - {lines}\n"
        "How to fix: on a machine with internet, run\n"
        f"    python -c \"import open_clip; open_clip.create_model('{model_name}', pretrained='{tag}', "
        "cache_dir='CACHE')\"\n"
        "and copy CACHE here, then set backbone.cache_dir=CACHE; or save the weights to a file and set "
        "backbone.pretrained=/path/to/weights (.safetensors / .bin / .pt state dict)"
        f"{_quick_gelu_hint(model_name, tag)}; or use backbone.pretrained=None for random weights."
    )


def _quick_gelu_hint(model_name: str, tag: str) -> str:
    """For a tag trained with QuickGELU: the reminder that a local copy of it needs backbone.quick_gelu=True."""
    import open_clip

    if not (open_clip.get_pretrained_cfg(model_name, tag) or {}).get("quick_gelu"):
        return ""
    return (f" and backbone.quick_gelu=True (the {tag!r} weights were trained with QuickGELU; a local file "
            f"does not say so, and {model_name!r} would otherwise be built with GELU)")


def resolve_pretrained(model_name: str, pretrained: Optional[str], cache_dir: Optional[str] = None
                       ) -> tuple[Optional[str], dict]:
    """Turn ``backbone.pretrained`` into (local checkpoint path or None, open_clip tag config).

    None -> (None, {}) random weights. An existing file -> (path, {}). An open_clip tag
    -> a cached file, else open_clip's downloader if the host answers within
    ``PROBE_TIMEOUT_S`` s, else :class:`WeightsUnavailableError` (no retry loop).
    """
    import open_clip

    if pretrained is None or pretrained == "":
        return None, {}
    expanded = os.path.expanduser(pretrained)
    if os.path.isfile(expanded):
        return expanded, {}
    tag_cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
    if not tag_cfg:
        if _looks_like_path(pretrained):
            raise FileNotFoundError(f"backbone.pretrained: checkpoint file {pretrained!r} does not exist "
                                    "(or is not a file)")
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        raise ValueError(
            f"backbone.pretrained={pretrained!r} is neither an existing file nor an open_clip tag for "
            f"{model_name!r}; known tags: {tags or 'none (use a local checkpoint path or None)'}"
        )
    tried: list[str] = []
    cached = _cached_weights(tag_cfg, cache_dir, tried)
    if cached:
        logger.info("using cached weights %s for %s/%s", cached, model_name, pretrained)
        return cached, tag_cfg
    if _hf_offline():
        raise WeightsUnavailableError(_unavailable_message(
            model_name, pretrained, tried, "not cached, and HF_HUB_OFFLINE is set"))
    hosts = _download_hosts(tag_cfg)
    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:  # probes in parallel: <= PROBE_TIMEOUT_S
        reachable = list(pool.map(lambda hp: _host_reachable(*hp), hosts))
    for (host, port), ok in zip(hosts, reachable):
        tried.append(f"network: {host}:{port} {'reachable' if ok else f'unreachable within {PROBE_TIMEOUT_S:g} s'}")
    if not any(reachable):
        raise WeightsUnavailableError(_unavailable_message(
            model_name, pretrained, tried, "not cached, and the download host cannot be reached (offline?)"))
    try:
        path = open_clip.download_pretrained(tag_cfg, cache_dir=cache_dir)
    except Exception as err:  # any download failure becomes the one clear error
        raise WeightsUnavailableError(_unavailable_message(
            model_name, pretrained, tried, f"download failed: {err}")) from err
    return path, tag_cfg


# --------------------------------------------------------------------------- the MLP activation


def tag_of_file(model_name: str, path: str) -> Optional[tuple[str, dict]]:
    """``(tag, tag config)`` of the open_clip tag whose cached weights ``path`` is, judged by its path.

    A file from open_clip's Hugging Face downloads sits under a folder named after the
    repository (``models--timm--vit_base_patch16_clip_224.openai/snapshots/...``); a path
    holding that repository name (case-insensitive) is taken as that tag's weights. None
    when no tag of ``model_name`` matches.
    """
    import open_clip

    text = os.path.abspath(os.path.expanduser(path)).lower()  # not resolve(): HF snapshots link into blobs/
    for tag in open_clip.list_pretrained_tags_by_model(model_name):
        tag_cfg = open_clip.get_pretrained_cfg(model_name, tag) or {}
        if not tag_cfg.get("hf_hub"):
            continue
        repo_id, _ = _hf_candidates(tag_cfg["hf_hub"])
        if repo_id and (repo_id.replace("/", "--").lower() in text or repo_id.split("/")[-1].lower() in text):
            return tag, tag_cfg
    return None


def use_quick_gelu(cfg: BackboneConfig, arch: dict, checkpoint: Optional[str], tag_cfg: dict) -> bool:
    """Whether the CLIP MLPs use QuickGELU (see ``BackboneConfig.quick_gelu`` and the module docstring).

    Raises ``ValueError`` for ``quick_gelu=False`` on an architecture that is QuickGELU by
    name (open_clip cannot switch it off); warns when an explicit value contradicts the tag,
    and when a local file's activation cannot be told and the architecture has QuickGELU tags.
    """
    import open_clip

    arch_quick = bool(arch.get("quick_gelu", False))
    if cfg.quick_gelu is False and arch_quick:
        raise ValueError(f"backbone.quick_gelu=False: {cfg.model_name!r} is a QuickGELU architecture; use the "
                         "name without '-quickgelu' for GELU")
    if cfg.quick_gelu is not None:
        if tag_cfg and bool(tag_cfg.get("quick_gelu", False)) != cfg.quick_gelu and not arch_quick:
            logger.warning("backbone.quick_gelu=%s, but the %r weights were trained with %s", cfg.quick_gelu,
                           cfg.pretrained, "QuickGELU" if tag_cfg.get("quick_gelu") else "GELU")
        return cfg.quick_gelu
    if arch_quick or tag_cfg:
        return arch_quick or bool(tag_cfg.get("quick_gelu", False))
    if checkpoint is None:
        return False
    found = tag_of_file(cfg.model_name, checkpoint)
    if found is not None:
        tag, found_cfg = found
        quick = bool(found_cfg.get("quick_gelu", False))
        logger.info("local weights %s are open_clip's %r weights of %s: %s", checkpoint, tag, cfg.model_name,
                    "QuickGELU" if quick else "GELU")
        return quick
    quick_tags = [t for t in open_clip.list_pretrained_tags_by_model(cfg.model_name)
                  if (open_clip.get_pretrained_cfg(cfg.model_name, t) or {}).get("quick_gelu")]
    if quick_tags:
        logger.warning("backbone.pretrained=%s is a local file: rvoslib cannot tell which activation its weights "
                       "were trained with and builds %s with GELU. If these are OpenAI CLIP weights (tags %s), "
                       "set backbone.quick_gelu=True (--set model.backbone.quick_gelu=True); set it to False to "
                       "silence this warning.", checkpoint, cfg.model_name, quick_tags)
    return False


# --------------------------------------------------------------------------- checkpoint diagnostics


def _read_error_summary(err: Exception) -> str:
    """One informative line from a torch.load / safetensors error, with a hint where one helps."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if "Weights only load failed" in text:
        detail = next((line for line in lines if "Unsupported global" in line or "Unsupported operand" in line), "")
        summary = ("the file pickles objects other than tensors, refused by torch.load(weights_only=True)"
                   + (f": {detail}" if detail else ""))
    else:
        summary = lines[0][:300] if lines else "unknown error"
    if "torchscript" in text.lower():
        summary += (". It is a TorchScript archive (e.g. OpenAI's original .pt), which weights_only=True cannot "
                    "load; use the open_clip tag (a Hugging Face state dict) or save a plain state dict")
    return summary


def _checkpoint_mismatch(model: nn.Module, path: str, limit: int = 5) -> str:
    """A short description of how the state dict in ``path`` differs from ``model``'s."""
    from open_clip.factory import load_state_dict  # open_clip's reader: torch.load(weights_only=True) / safetensors

    try:
        state = load_state_dict(path, weights_only=True)
    except Exception as err:  # unreadable: say why
        return f"it could not be read as a checkpoint ({type(err).__name__}: {_read_error_summary(err)})"
    if not isinstance(state, dict) or not state:
        return f"it holds {type(state).__name__}, not a state dict"
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and hasattr(state[k], "shape") and state[k].shape != own[k].shape
              and k not in ("visual.positional_embedding", "positional_embedding")]
    parts = []
    if shapes:
        parts.append(f"{len(shapes)} shape mismatches (first: {'; '.join(shapes[:limit])})")
    if missing:
        parts.append(f"{len(missing)} keys missing from the file (first: {missing[:limit]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (first: {unexpected[:limit]})")
    return "; ".join(parts) or "the state dict matches by key and shape, but loading failed"


# --------------------------------------------------------------------------- creation and freezing


def freeze_(module: nn.Module) -> nn.Module:
    """``requires_grad_(False)`` and eval mode, in place; returns ``module``."""
    module.requires_grad_(False)
    module.eval()
    return module


def keep_frozen_eval(*modules: nn.Module) -> None:
    """Put frozen modules back into eval mode (call from a ``train`` override)."""
    for module in modules:
        module.eval()


class FrozenCLIP(nn.Module):
    """Holds a frozen open_clip model that stays in eval mode whatever ``train()`` says.

    ``self.model`` is the open_clip ``CLIP``; ``encode_image`` / ``encode_text`` forward to it.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = freeze_(model)

    def train(self, mode: bool = True) -> "FrozenCLIP":
        super().train(mode)
        self.model.eval()
        return self

    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """(B, 3, S, S) -> (B, embed_dim)."""
        return self.model.encode_image(images, normalize=normalize)

    def encode_text(self, tokens: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """(B, L_ctx) -> (B, embed_dim)."""
        return self.model.encode_text(tokens, normalize=normalize)


def unwrap_clip(clip_model: nn.Module) -> nn.Module:
    """The open_clip model inside a :class:`FrozenCLIP`, or ``clip_model`` itself."""
    return clip_model.model if isinstance(clip_model, FrozenCLIP) else clip_model


def create_clip(cfg: BackboneConfig) -> nn.Module:
    """Build the frozen open_clip CLIP described by ``cfg`` (see the module docstring).

    Returns the open_clip ``CLIP`` (``.visual`` ViT at S x S, text tower), every
    parameter with ``requires_grad=False``, in eval mode. Wrap it in
    :class:`FrozenCLIP` to keep it in eval inside a training parent module.

    Raises ``ValueError`` (unknown model, S not a multiple of the patch, unknown tag),
    ``FileNotFoundError`` (a checkpoint path that does not exist),
    :class:`WeightsUnavailableError` (tag not cached and no network) and
    :class:`CheckpointError` (a file of another architecture, or unreadable).
    """
    import open_clip

    arch = model_config(cfg.model_name)
    _check_image_size(cfg.model_name, arch, cfg.image_size)
    checkpoint, tag_cfg = resolve_pretrained(cfg.model_name, cfg.pretrained, cfg.cache_dir)
    kwargs = dict(force_image_size=cfg.image_size, cache_dir=cfg.cache_dir)
    if use_quick_gelu(cfg, arch, checkpoint, tag_cfg) and not arch.get("quick_gelu", False):
        kwargs["force_quick_gelu"] = True  # e.g. OpenAI weights were trained with QuickGELU
    if tag_cfg:
        preprocess = {k: tag_cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in tag_cfg}
        kwargs["force_preprocess_cfg"] = preprocess
    try:
        with _quiet_random_weights_warning(enabled=checkpoint is None):
            model = open_clip.create_model(cfg.model_name, pretrained=checkpoint, weights_only=True, **kwargs)
    except Exception as err:
        if checkpoint is None:
            raise
        reference = open_clip.create_model(cfg.model_name, pretrained=None, **kwargs)
        raise CheckpointError(
            f"checkpoint {checkpoint!r} does not fit backbone.model_name={cfg.model_name!r} "
            f"(S={cfg.image_size}): {_checkpoint_mismatch(reference, checkpoint)}"
        ) from err
    if not hasattr(model, "visual") or not hasattr(model.visual, "conv1"):
        raise ValueError(f"backbone.model_name={cfg.model_name!r} has no open_clip ViT vision tower")
    logger.info("created %s (pretrained=%s%s) at S=%d", cfg.model_name, cfg.pretrained,
                ": random weights" if checkpoint is None else "", cfg.image_size)
    return freeze_(model)


class _RandomWeightsFilter(logging.Filter):
    """Drops open_clip's root-logger warning that no pretrained weights were loaded."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No pretrained weights loaded")


@contextlib.contextmanager
def _quiet_random_weights_warning(enabled: bool):
    """While creating a CLIP with ``pretrained=None`` on purpose, silence open_clip's warning about it.

    Random weights are a choice here (the tiny preset, tests, the random-init ablation); the
    INFO line of :func:`create_clip` records it instead.
    """
    if not enabled:
        yield
        return
    root, quiet = logging.getLogger(), _RandomWeightsFilter()
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)


def context_length(cfg: BackboneConfig) -> int:
    """The text context length of ``cfg.model_name`` (77 for OpenAI CLIP, 32 for rvos-tiny)."""
    return int(model_config(cfg.model_name)["text_cfg"].get("context_length", 77))


def get_tokenizer(cfg: BackboneConfig):
    """open_clip's tokenizer for ``cfg.model_name`` at its context length.

    Calling it on a list of B strings gives a ``LongTensor (B, L_ctx)``; prefer
    ``rvoslib.text_encoder.tokenize``, which rejects empty sentences and warns on truncation.
    """
    import open_clip

    return open_clip.get_tokenizer(cfg.model_name, context_length=context_length(cfg))
