"""Is the text path what keeps the tiny VLP-RVOS at chance on motion sentences? An oracle test.

    python -m benchmarks.motion_oracle motion-only data/hard2k data/hard2k-motion   # keep motion sentences
    python -m benchmarks.motion_oracle train --data data/hard2k-motion --out runs/oracle --steps 1500 \\
        --threads 1 --set model.spatiotemporal.value_position=relative
    python -m benchmarks.motion_oracle stride --checkpoint runs/oracle/last.pt --videos 40 --seed 301 --strides 1

A diagnostic, not a model feature. ``train``, ``stride`` (``benchmarks.motion_stride``) and
``toy-eval`` (``benchmarks.toy_eval``) run the usual commands with the text encoder patched: every
sentence's word features and sentence feature get a learned vector (``nn.Embedding(7, D_t)``,
N(0, 1) at init) for the motion its words name, parsed from the tokens (one of the six motions of
``rvoslib.data.synthetic``, or "none"). So the model is told which motion is asked as clearly as a
text tower that had learned motion words would tell it; it must still find the object that moves
that way. The parse reads the sentence only, never the video or the answer ("left of" in a relation
sentence also reads as "left"). A checkpoint trained this way loads only through these commands, and
these commands score only such checkpoints (any other model would get an untrained random code).

``motion-only`` writes a copy of a Ref-YouTube-VOS-layout training split keeping only the motion
sentences (frames and masks are symlinked, not copied), and links the source's ``valid`` split
when it has one (training validates on it; without one, pass ``--set train.eval_every=0``).
"""

from __future__ import annotations

import functools
import json
import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Sequence

import torch
from torch import nn

CLASSES = ("static", "left", "right", "up", "down", "bouncing", "none")


def motion_class(text: str) -> int:
    """Index in CLASSES of the motion a sentence names (synthetic's phrases; "none" if it names none)."""
    text = text.lower()
    if "bounc" in text:  # "bouncing up and down" names up and down too
        return CLASSES.index("bouncing")
    if "still" in text or "not move" in text:
        return CLASSES.index("static")
    for word in ("left", "right", "down", "up"):
        if re.search(rf"\b{word}", text):
            return CLASSES.index(word)
    return CLASSES.index("none")


@functools.lru_cache(maxsize=1)
def _decoder():
    """open_clip's BPE tokenizer, built once (it reads its vocabulary file)."""
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()


def token_classes(tokens: torch.Tensor) -> torch.Tensor:
    """(B, L_ctx) open_clip tokens -> (B,) motion classes, read back from the decoded text."""
    decoder = _decoder()
    special = {0, decoder.sot_token_id, decoder.eot_token_id}
    texts = [decoder.decode([t for t in row if t not in special]) for row in tokens.tolist()]
    return torch.tensor([motion_class(t) for t in texts], device=tokens.device)


@contextmanager
def oracle_text() -> Iterator[None]:
    """Patch ``PromptedTextEncoder`` so built models carry the oracle motion code (restored on exit)."""
    from rvoslib.text_encoder import PromptedTextEncoder

    init, forward = PromptedTextEncoder.__init__, PromptedTextEncoder.forward

    def patched_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.oracle = nn.Embedding(len(CLASSES), self.text_width)
        nn.init.normal_(self.oracle.weight, std=1.0)

    def patched_forward(self, tokens, language_prompts=None):
        out = dict(forward(self, tokens, language_prompts))
        code = self.oracle(token_classes(tokens))  # (B, D_t)
        out["words"] = out["words"] + code[:, None]  # padded positions too; word_pad masks them downstream
        out["sentence"] = out["sentence"] + code
        return out

    PromptedTextEncoder.__init__, PromptedTextEncoder.forward = patched_init, patched_forward
    try:
        yield
    finally:
        PromptedTextEncoder.__init__, PromptedTextEncoder.forward = init, forward


def check_oracle_checkpoints(paths: Sequence[str]) -> None:
    """SystemExit naming a checkpoint that was not trained with the oracle code (no ``text.oracle.weight``)."""
    for path in paths:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if "text.oracle.weight" not in state.get("model", {}):
            raise SystemExit(f"{path!r} was not trained with the oracle motion code; score it with "
                             "benchmarks.motion_stride or benchmarks.toy_eval instead")


def checkpoint_args(argv: Sequence[str]) -> list[str]:
    """The checkpoint paths of a ``stride`` / ``toy-eval`` command line (``--checkpoint [NAME=]PATH``)."""
    paths = []
    for flag, value in zip(argv, argv[1:]):
        if flag == "--checkpoint":
            paths.append(value.partition("=")[2] if "=" in value else value)
    return paths


def write_motion_only(source: Path, target: Path, split: str = "train") -> int:
    """``target/split``: the meta of ``source/split`` with only its motion sentences, frames and masks
    symlinked. Returns the number of sentences kept."""
    src, dst = Path(source) / split, Path(target) / split
    meta_path = src / "meta_expressions.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"no {meta_path} (expected a split written by rvoslib make-synthetic)")
    if dst.exists():
        raise FileExistsError(f"{str(dst)!r} exists; pick another target")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    kept = 0
    for video in meta["videos"].values():
        video["expressions"] = {k: e for k, e in video["expressions"].items() if e.get("kind") == "motion"}
        kept += len(video["expressions"])
    dst.mkdir(parents=True)
    for folder in ("JPEGImages", "Annotations"):
        (dst / folder).symlink_to((src / folder).resolve(), target_is_directory=True)
    (dst / "meta_expressions.json").write_text(json.dumps(meta), encoding="utf-8")
    if split == "train" and (Path(source) / "valid").is_dir():
        (Path(target) / "valid").symlink_to((Path(source) / "valid").resolve(), target_is_directory=True)
    return kept


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = ("motion-only", "train", "stride", "toy-eval")
    if not argv or argv[0] not in commands:
        raise SystemExit(f"usage: python -m benchmarks.motion_oracle {{{','.join(commands)}}} ...")
    command, rest = argv[0], argv[1:]
    if command == "motion-only":
        if len(rest) != 2:
            raise SystemExit("usage: python -m benchmarks.motion_oracle motion-only SOURCE TARGET")
        print(f"kept {write_motion_only(Path(rest[0]), Path(rest[1]))} motion sentences in {rest[1]}/train")
        return 0
    if command in ("stride", "toy-eval"):
        check_oracle_checkpoints(checkpoint_args(rest))
    with oracle_text():
        if command == "train":
            from rvoslib.cli import main as cli

            return cli(["train", *rest])
        if command == "stride":
            from benchmarks.motion_stride import main as stride

            return stride(rest)
        from benchmarks.toy_eval import main as toy_eval

        return toy_eval(rest)


if __name__ == "__main__":
    raise SystemExit(main())
