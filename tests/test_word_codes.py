"""prompts.word_codes: a trainable code per word (hashed by token id) added to the text features."""

import pytest
import torch
import torch.nn.functional as F

from rvoslib.backbone import create_clip, get_tokenizer
from rvoslib.config import tiny
from rvoslib.data.expressions import motion_phrases
from rvoslib.data.shapes import COLOURS, MOTIONS, SHAPES, SIZES
from rvoslib.runtime import TINY_CLIP_CHECKPOINT, find_sample
from rvoslib.text_encoder import PromptedTextEncoder, tokenize

SENTENCES = ["the circle moving left", "the circle moving right", "a square"]
ROWS = 4093  # the row count the README's runs use


@pytest.fixture(scope="module")
def clip_and_tokens():
    """The shipped tiny CLIP (pretrained on still scenes) and the test sentences."""
    backbone = tiny().model.backbone
    backbone.pretrained = str(find_sample(TINY_CLIP_CHECKPOINT))
    return create_clip(backbone), tokenize(SENTENCES, get_tokenizer(backbone))


def encoder(clip, rows, spread="own", std=1.0):
    cfg = tiny().model.prompts
    cfg.word_codes, cfg.word_code_spread, cfg.word_code_std = rows, spread, std
    torch.manual_seed(0)
    return PromptedTextEncoder(clip, cfg)


def test_codes_are_added_per_word_and_their_mean_to_the_sentence(clip_and_tokens):
    clip, tokens = clip_and_tokens
    enc, plain = encoder(clip, ROWS), encoder(clip, 0)(tokens)
    out = enc(tokens)
    pad = out["word_pad"]
    codes = enc.word_codes.weight[tokens[:, 1: 1 + pad.shape[1]] % ROWS].masked_fill(pad[..., None], 0.0)
    assert torch.allclose(out["words"], plain["words"] + codes, atol=1e-5)
    assert torch.allclose(out["sentence"], plain["sentence"] + codes.sum(1) / (~pad).sum(1, keepdim=True), atol=1e-5)
    assert out["words"][2, 2:].abs().max() == 0  # "a square" has two words: the rest is padding, still zero


def test_the_bag_spread_puts_every_code_on_every_word(clip_and_tokens):
    clip, tokens = clip_and_tokens
    enc, plain = encoder(clip, ROWS, "bag"), encoder(clip, 0)(tokens)
    out = enc(tokens)
    pad = out["word_pad"]
    codes = enc.word_codes.weight[tokens[:, 1: 1 + pad.shape[1]] % ROWS].masked_fill(pad[..., None], 0.0)
    bag = codes.sum(1) / (~pad).sum(1, keepdim=True).sqrt()  # (B, D_t)
    expected = (plain["words"] + codes + bag[:, None]).masked_fill(pad[..., None], 0.0)
    assert torch.allclose(out["words"], expected, atol=1e-5)
    assert torch.allclose(out["sentence"], plain["sentence"] + bag, atol=1e-5)
    # "the circle moving left": the code of "left" (last word) now also reaches the first word
    left = enc.word_codes.weight[tokens[0, 4] % ROWS]
    assert F.cosine_similarity(out["words"][0, 0] - plain["words"][0, 0], left, dim=0) > 0.3


def test_words_the_tower_merges_get_codes_that_differ(clip_and_tokens):
    clip, tokens = clip_and_tokens
    cos = {}
    for rows in (0, ROWS):
        out = encoder(clip, rows)(tokens)
        cos[rows] = (F.cosine_similarity(out["words"][0, 3], out["words"][1, 3], dim=0).item(),  # left vs right
                     F.cosine_similarity(out["sentence"][0], out["sentence"][1], dim=0).item())
    assert cos[0][0] > 0.98 and cos[0][1] > 0.99  # the shipped tiny CLIP's tower: the direction is lost
    assert cos[ROWS][0] < 0.5 and cos[ROWS][1] < 0.95


def test_only_the_code_table_is_new_and_it_trains(clip_and_tokens):
    clip, tokens = clip_and_tokens
    enc = encoder(clip, ROWS)
    out = enc(tokens)
    (out["sentence"][0] - out["sentence"][1]).square().sum().backward()
    assert enc.word_codes.weight.grad[tokens[0, 4] % ROWS].abs().sum() > 0  # "left" gets a gradient
    assert enc.word_codes.weight.grad[tokens[2, 2] % ROWS].abs().sum() == 0  # "square" was not in the loss
    assert {name for name, p in enc.named_parameters() if p.requires_grad} == {"word_codes.weight"}


def test_the_synthetic_vocabulary_has_no_shared_rows(clip_and_tokens):
    clip, _ = clip_and_tokens
    tokenizer = get_tokenizer(tiny().model.backbone)
    words = [*COLOURS, *SHAPES, *SIZES, "the", "shape", "object", "to", "of", "left", "right", "above",
             "below", "under", *(w for m in MOTIONS for p in motion_phrases(m) for w in p.split())]
    ids = {int(t) for t in tokenize(words, tokenizer).flatten() if 0 < t < 49406}  # no SOT/EOT/padding
    assert len({i % ROWS for i in ids}) == len(ids)


def test_a_negative_row_count_or_an_unknown_spread_is_refused(clip_and_tokens):
    clip, _ = clip_and_tokens
    with pytest.raises(ValueError, match="prompts.word_codes must be >= 0"):
        encoder(clip, -1)
    with pytest.raises(ValueError, match="prompts.word_code_spread must be one of"):
        encoder(clip, ROWS, "everywhere")


def test_word_code_std_sets_the_codes_scale_at_init(clip_and_tokens):
    clip, _ = clip_and_tokens
    for std in (1.0, 2.5):
        measured = encoder(clip, ROWS, "bag", std).word_codes.weight.std().item()  # 4093 x 64 draws
        assert abs(measured - std) < 0.02 * std


def test_a_word_code_std_that_is_not_positive_is_refused(clip_and_tokens):
    clip, _ = clip_and_tokens
    with pytest.raises(ValueError, match="prompts.word_code_std must be > 0"):
        encoder(clip, ROWS, "bag", 0.0)
