"""Prompt-tuned forward over open_clip's frozen text transformer (CoOp-style language prompts).

The token sequence fed to CLIP's text transformer is

    [SOT | N_l language prompts | words ... | EOT | padding]

built from open_clip's frozen ``token_embedding`` (the prompts are already embeddings),
plus CLIP's ``positional_embedding`` over every position, then CLIP's own blocks with
the causal mask, then ``ln_final``. If a sentence plus the prompts no longer fits the
context length, its last words are dropped (the EOT token is kept) and a warning is
issued once per process.

Where the prompts sit. The paper's figure draws the language prompts after the words;
here they sit after the start token, before the words (CoOp's layout). CLIP's text
transformer is causal: a token attends only to the tokens before it. Prompts after the
words could still change the sentence feature (the EOT token reads everything before it)
but not a single word feature, and the word features are what stages 1-3 read (stage-1
cross-attention, stage-2 fusion, the stage-3 decoder). Before the words, every word
feature and the sentence feature see the prompts. It also gives each prompt a fixed
position (1..N_l, so the same positional embedding) for every sentence, where after the
words its position would move with the sentence's length.

Outputs (see :meth:`PromptedTextEncoder.forward`):

- ``words (B, L, D_t)``: features after ``ln_final`` of the word tokens only: no SOT, no
  prompts, no EOT. L is the number of words of the longest sentence in the batch (not
  the context length); shorter sentences are zero-filled and flagged in ``word_pad``.
- ``word_pad (B, L)`` bool, True at padding.
- ``sentence (B, D_t)``: the EOT-position feature after ``ln_final`` (CLIP's sentence
  feature before its projection), as DESIGN section 5 states.
- ``sentence_proj (B, embed_dim)``: ``sentence @ text_projection``; with no prompts it
  equals ``clip.encode_text(tokens)``.

Because attention is causal, positions after the longest EOT never influence the
outputs, so the transformer runs only over ``max(EOT position) + 1`` tokens.

Lexical path (``prompts.lexical_words``, off in every preset; not in the paper). A trainable
Linear (D_t -> D_t, identity at init) of each word's own token embedding, layer-normalised, is
added to its word feature: ``words += W_lex LN(E[token])``. The sentence feature stays CLIP's,
unless ``prompts.lexical_sentence`` also adds the mean of those vectors over the sentence's words
(a bag of words): ``sentence += mean_w W_lex LN(E[w])``. Measured on motion-only hard videos
(docs/toy_scale_findings.md, "The text path, tested with an oracle"): with either form the tiny model stays at chance
on held-out motion sentences, where an oracle code per motion word lifts it well above.

Why: a frozen text tower passes on only the distinctions it learned. The shipped tiny CLIP
was pretrained on still scenes whose captions never say "moving", "up", "down", "still" or
"bouncing". Its word features for "the circle moving left" and "... moving right" have
cosine 0.9998 (0.996 with the shipped model's language prompts), so no module downstream
can tell which way a sentence asks for. The token embeddings themselves still differ
(cosine 0.71 for left/right, 0.20 for up/down), and this path hands them on. Real CLIP
towers have read such words in captions; the proper toy fix is a tiny CLIP pretrained with
them.

Why identity and not zero at init: from zero, nothing downstream can profit from the words'
differences yet, so the gradient never opens the path (measured: after 1500 steps the motion
phrases' word features were *more* alike).

Word codes (``prompts.word_codes``, off in every preset; not in the paper). A table of trainable
codes, N(0, s^2) at init (``s = prompts.word_code_std``, default 1), indexed by token id modulo its
size. Unlike the lexical path, two words start with codes that are nearly orthogonal however alike
the tower or the token embeddings make them, the same contrast the oracle of
``benchmarks.motion_oracle`` gives, but learned per word and parsed from nothing.
``prompts.word_code_spread`` says where they go:

- ``"own"``: ``words += C[token % rows]``, ``sentence += mean_w C[w % rows]``;
- ``"bag"``: the bag ``b = sum_w C[w % rows] / sqrt(#words)`` is also added to every word, and
  ``sentence += b``, so every word position carries the motion word's code, as the oracle's code
  sits on every position.

Measured on motion-only hard videos, 1500 steps, held-out right object (docs/toy_scale_findings.md, "Word codes, a
strict control, and order-only videos"): "own" stays at chance (36.5%, chance 41.8%), "bag" gives
45.8%, and the oracle code on every word but not the sentence 53.1%. What counts is that the code
reaches every word position. At 4000 steps "bag" reaches 54.2%, and 0.469 hard-motion J&F on a
fresh split (motion-blind reference 0.454). In ``rvoslib train`` on order-only motion sentences
(docs/toy_scale_findings.md, "Which part of `rvoslib train` stops the order") "bag" learns the
order later than the oracle code: at chance after 8000 steps, 77.9% right object after 16000 (its
loss drops at step ~10700, the oracle runs' at 3000-4400); seed 0. With ``word_code_std=2.5`` the
motion word's share of the bag is about the oracle code's scale, and the drop came sooner (same
section; one run each).
Words whose ids share a row share a code (the toy world's vocabulary is collision-free at 4093
rows; a test checks it). At real scale a pretrained tower already separates such words; this is a
toy-scale stand-in for that knowledge.
"""

from __future__ import annotations

import logging
import warnings
from typing import Optional, Sequence, Union

import torch
from torch import nn

from .backbone import keep_frozen_eval, unwrap_clip
from .config import PromptConfig

WORD_CODE_SPREADS = ("own", "bag")  # values of prompts.word_code_spread

logger = logging.getLogger(__name__)

_truncation_warned = False  # truncation is reported once per process


def _warn_truncation_once(message: str) -> None:
    global _truncation_warned
    if not _truncation_warned:
        _truncation_warned = True
        warnings.warn(message, UserWarning, stacklevel=3)
    else:
        logger.debug(message)


def tokenize(sentences: Union[str, Sequence[str]], tokenizer, num_prompts: int = 0) -> torch.Tensor:
    """Validate and tokenize sentences with an open_clip tokenizer.

    Args:
        sentences: one string or B strings.
        tokenizer: from ``rvoslib.backbone.get_tokenizer`` (open_clip ``SimpleTokenizer``).
        num_prompts: N_l language prompts that will be inserted; only used to warn about
            truncation early (the encoder truncates).

    Returns:
        ``LongTensor (B, L_ctx)``: SOT, word ids, EOT, zeros.

    Raises ``ValueError`` naming the index of an empty or whitespace-only sentence (or a
    non-string). Warns once per process when a sentence will be truncated.
    """
    if isinstance(sentences, str):
        sentences = [sentences]
    sentences = list(sentences)
    if not sentences:
        raise ValueError("tokenize: got no sentences")
    for i, sentence in enumerate(sentences):
        if not isinstance(sentence, str):
            raise ValueError(f"sentence {i} must be a str, got {type(sentence).__name__}")
        if not sentence.strip():
            raise ValueError(f"sentence {i} is empty or whitespace only ({sentence!r}); "
                             "a referring expression must contain words")
    ctx = getattr(tokenizer, "context_length", None)
    if ctx and hasattr(tokenizer, "encode"):
        room = ctx - 2 - num_prompts
        for i, sentence in enumerate(sentences):
            n = len(tokenizer.encode(sentence))
            if n > room:
                _warn_truncation_once(
                    f"sentence {i} ({sentence[:60]!r}...) has {n} tokens; with {num_prompts} language prompts "
                    f"only {room} fit the context length {ctx}: the last words are dropped")
    return tokenizer(sentences)


class PromptedTextEncoder(nn.Module):
    """CLIP's frozen text tower with CoOp-style language prompts.

    Args:
        clip_model: open_clip ``CLIP`` (or ``CustomTextCLIP`` / :class:`~rvoslib.backbone.FrozenCLIP`)
            with a causal, argmax-pooled text transformer.
        prompt_cfg: ``PromptConfig``; ``num_language`` bounds the words that fit the context.

    The CLIP modules are shared, frozen and kept in eval mode by ``train()``.
    """

    def __init__(self, clip_model: nn.Module, prompt_cfg: PromptConfig):
        super().__init__()
        clip_model = unwrap_clip(clip_model)
        tower = getattr(clip_model, "text", clip_model)  # CustomTextCLIP keeps a TextTransformer in .text
        for name in ("token_embedding", "positional_embedding", "transformer", "ln_final", "attn_mask"):
            if getattr(tower, name, None) is None:
                raise ValueError(f"PromptedTextEncoder needs an open_clip causal text transformer; "
                                 f"the model has no {name!r}")
        if getattr(tower, "cls_emb", None) is not None or getattr(tower, "text_pool_type",
                                                                   getattr(tower, "pool_type", "argmax")) != "argmax":
            raise ValueError("PromptedTextEncoder supports CLIP-style text towers (argmax/EOT pooling, no CLS token)")
        self.token_embedding = tower.token_embedding
        self.positional_embedding = tower.positional_embedding  # (L_ctx, D_t), frozen, shared
        self.transformer = tower.transformer
        self.ln_final = tower.ln_final
        self.text_projection = tower.text_projection  # (D_t, embed_dim) Parameter, Linear or None
        self.register_buffer("attn_mask", tower.attn_mask, persistent=False)  # (L_ctx, L_ctx) causal
        self.num_prompts = prompt_cfg.num_language if prompt_cfg.use_language else 0
        self.context_length = self.positional_embedding.shape[0]
        self.lexical = None  # LayerNorm then Linear (D_t -> D_t, identity at init) of the words' own embeddings
        if prompt_cfg.lexical_words:
            width = self.positional_embedding.shape[1]
            self.lexical = nn.Sequential(nn.LayerNorm(width, elementwise_affine=False), nn.Linear(width, width))
            nn.init.eye_(self.lexical[1].weight)
            nn.init.zeros_(self.lexical[1].bias)
        self.lexical_sentence = prompt_cfg.lexical_sentence
        if self.lexical_sentence and self.lexical is None:
            raise ValueError("prompts.lexical_sentence needs prompts.lexical_words=True")
        if prompt_cfg.word_code_spread not in WORD_CODE_SPREADS:
            raise ValueError(f"prompts.word_code_spread must be one of {WORD_CODE_SPREADS}, "
                             f"got {prompt_cfg.word_code_spread!r}")
        self.word_code_spread = prompt_cfg.word_code_spread
        if prompt_cfg.word_codes < 0:
            raise ValueError(f"prompts.word_codes must be >= 0 (0 = off), got {prompt_cfg.word_codes}")
        if not prompt_cfg.word_code_std > 0:
            raise ValueError(f"prompts.word_code_std must be > 0, got {prompt_cfg.word_code_std}")
        self.word_codes = None  # (rows, D_t) trainable codes, N(0, word_code_std^2) at init, row = token id % rows
        if prompt_cfg.word_codes:
            self.word_codes = nn.Embedding(prompt_cfg.word_codes, self.positional_embedding.shape[1])
            nn.init.normal_(self.word_codes.weight, std=prompt_cfg.word_code_std)
        if self.context_length - 2 - self.num_prompts < 1:
            raise ValueError(f"prompts.num_language={self.num_prompts} leaves no room for words in the "
                             f"context length {self.context_length}")

    def _add_word_codes(self, word_tokens, words, word_pad, sentence):
        """Add the word codes (module docstring, "Word codes"): word_tokens (B, L) ids of the words,
        words (B, L, D_t), word_pad (B, L), sentence (B, D_t) -> (words, sentence)."""
        codes = self.word_codes(word_tokens % self.word_codes.num_embeddings)  # (B, L, D_t)
        codes = codes.to(words.dtype).masked_fill(word_pad[..., None], 0.0)
        counts = (~word_pad).sum(1, keepdim=True).to(codes.dtype)  # (B, 1) words per sentence
        if self.word_code_spread == "own":
            return words + codes, sentence + codes.sum(1) / counts
        bag = codes.sum(1) / counts.sqrt()  # (B, D_t)
        words = (words + codes + bag[:, None]).masked_fill(word_pad[..., None], 0.0)
        return words, sentence + bag

    @property
    def text_width(self) -> int:
        """D_t."""
        return self.positional_embedding.shape[1]

    def train(self, mode: bool = True) -> "PromptedTextEncoder":
        super().train(mode)
        keep_frozen_eval(self.token_embedding, self.transformer, self.ln_final)
        return self

    def project(self, sentence: torch.Tensor) -> torch.Tensor:
        """(B, D_t) -> (B, embed_dim) with CLIP's frozen text projection (identity if it has none)."""
        if self.text_projection is None:
            return sentence
        if isinstance(self.text_projection, nn.Linear):
            return self.text_projection(sentence)
        return sentence @ self.text_projection

    def _truncate(self, tokens: torch.Tensor, num_prompts: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Drop words that do not fit next to the prompts; returns (tokens, EOT index (B,))."""
        eot_idx = tokens.argmax(dim=-1)  # (B,), EOT has the largest id
        max_eot = self.context_length - 1 - num_prompts
        too_long = eot_idx > max_eot
        if too_long.any():
            rows = too_long.nonzero().flatten().tolist()
            _warn_truncation_once(
                f"sentences {rows} do not fit the context length {self.context_length} with {num_prompts} "
                f"language prompts: keeping their first {max_eot - 1} words and the end token")
            eot_id = tokens.gather(1, eot_idx[:, None])  # (B, 1)
            tokens = tokens.clone()
            tokens[too_long, max_eot] = eot_id[too_long, 0]
            tokens[too_long, max_eot + 1:] = 0
            eot_idx = torch.where(too_long, torch.full_like(eot_idx, max_eot), eot_idx)
        return tokens, eot_idx

    def forward(self, tokens: torch.Tensor, language_prompts: Optional[torch.Tensor] = None) -> dict:
        """Encode tokenized sentences with optional language prompts.

        Args:
            tokens: ``(B, L_ctx)`` from :func:`tokenize` (L_ctx <= CLIP's context length).
            language_prompts: ``(N_l, D_t)`` from the prompt generator, or None.

        Returns:
            dict ``words (B, L, D_t)``, ``word_pad (B, L)`` bool, ``sentence (B, D_t)``,
            ``sentence_proj (B, embed_dim)`` (see the module docstring).
        """
        if tokens.dim() != 2 or tokens.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"tokens must be an integer tensor (B, L_ctx), got {tuple(tokens.shape)} {tokens.dtype}")
        if tokens.shape[1] > self.context_length:
            raise ValueError(f"tokens have length {tokens.shape[1]} > the context length {self.context_length}")
        n_p = 0 if language_prompts is None else language_prompts.shape[0]
        if language_prompts is not None and language_prompts.shape != (n_p, self.text_width):
            raise ValueError(f"language_prompts must be (N_l, D_t={self.text_width}), "
                             f"got {tuple(language_prompts.shape)}")
        tokens, eot_idx = self._truncate(tokens.long(), n_p)
        num_words = eot_idx - 1  # (B,)
        if (num_words < 1).any():
            rows = (num_words < 1).nonzero().flatten().tolist()
            raise ValueError(f"sentences {rows} have no words (empty sentence?); use rvoslib.text_encoder.tokenize")
        seq_len = int(eot_idx.max()) + 1 + n_p
        embedded = self.token_embedding(tokens[:, : seq_len - n_p])  # (B, seq_len - N_l, D_t)
        x = embedded
        dtype = self.positional_embedding.dtype
        x = x.to(dtype)
        if n_p:
            prompts = language_prompts.to(dtype).unsqueeze(0).expand(x.shape[0], -1, -1)  # (B, N_l, D_t)
            x = torch.cat([x[:, :1], prompts, x[:, 1:]], dim=1)  # (B, seq_len, D_t)
        x = x + self.positional_embedding[:seq_len]
        x = self.transformer(x, attn_mask=self.attn_mask[:seq_len, :seq_len])
        x = self.ln_final(x)  # (B, seq_len, D_t)

        batch = torch.arange(x.shape[0], device=x.device)
        sentence = x[batch, eot_idx + n_p]  # (B, D_t)
        max_words = int(num_words.max())
        words = x[:, 1 + n_p: 1 + n_p + max_words]  # (B, L, D_t)
        word_pad = torch.arange(max_words, device=x.device)[None] >= num_words[:, None]  # (B, L)
        if self.lexical is not None:
            lexical = self.lexical(embedded[:, 1: 1 + max_words].to(words.dtype))  # (B, L, D_t)
            lexical = lexical.masked_fill(word_pad[..., None], 0.0)
            words = words + lexical
            if self.lexical_sentence:
                sentence = sentence + lexical.sum(1) / num_words[:, None].to(lexical.dtype)  # (B, D_t)
        if self.word_codes is not None:
            words, sentence = self._add_word_codes(tokens[:, 1: 1 + max_words], words, word_pad, sentence)
        words = words.masked_fill(word_pad[..., None], 0.0)
        return {"words": words, "word_pad": word_pad, "sentence": sentence,
                "sentence_proj": self.project(sentence)}
