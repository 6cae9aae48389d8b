"""prompts.lexical_words: a trainable path from each word's own token embedding to its text feature."""

import pytest
import torch
import torch.nn.functional as F

from rvoslib.backbone import create_clip, get_tokenizer
from rvoslib.config import tiny
from rvoslib.runtime import TINY_CLIP_CHECKPOINT, find_sample
from rvoslib.text_encoder import PromptedTextEncoder, tokenize

SENTENCES = ["the circle moving left", "the circle moving right", "a square"]


@pytest.fixture(scope="module")
def clip_and_tokens():
    """The shipped tiny CLIP (pretrained on still scenes) and the test sentences."""
    backbone = tiny().model.backbone
    backbone.pretrained = str(find_sample(TINY_CLIP_CHECKPOINT))
    return create_clip(backbone), tokenize(SENTENCES, get_tokenizer(backbone))


def encoder(clip, lexical, sentence=False):
    cfg = tiny().model.prompts
    cfg.lexical_words, cfg.lexical_sentence = lexical, sentence
    return PromptedTextEncoder(clip, cfg)


def test_lexical_path_adds_the_normalised_embeddings_of_the_words(clip_and_tokens):
    clip, tokens = clip_and_tokens
    out, plain = encoder(clip, True)(tokens), encoder(clip, False)(tokens)
    own = clip.token_embedding(tokens)[:, 1: 1 + out["words"].shape[1]]  # the word tokens after SOT
    expected = (plain["words"] + F.layer_norm(own, own.shape[-1:])).masked_fill(out["word_pad"][..., None], 0.0)
    assert torch.allclose(out["words"], expected, atol=1e-5)
    assert torch.equal(out["sentence"], plain["sentence"])  # the sentence feature stays CLIP's own


def test_the_frozen_tower_hides_the_direction_and_the_path_shows_it(clip_and_tokens):
    clip, tokens = clip_and_tokens
    left_right = {}
    for lexical in (False, True):
        words = encoder(clip, lexical)(tokens)["words"]
        left_right[lexical] = F.cosine_similarity(words[0, 3], words[1, 3], dim=0).item()  # "left" vs "right"
    assert left_right[False] > 0.98  # what the shipped tiny CLIP's text tower makes of the two words
    # the path moves them apart: 1 - cos grows >50x (7200-step CLIP: 1.3e-4 -> 0.042; 1800-step: 2.0e-4 -> 0.168);
    # the absolute change depends on the CLIP's word-feature norm, against which the path's unit-scale term adds
    assert (1 - left_right[True]) > 50 * (1 - left_right[False]) and left_right[True] < left_right[False] - 0.02


def test_only_the_lexical_linear_is_new_and_it_trains(clip_and_tokens):
    clip, tokens = clip_and_tokens
    enc = encoder(clip, True)
    words = enc(tokens)["words"]
    (words[0, 3] - words[1, 3]).square().sum().backward()
    assert enc.lexical[1].weight.grad.abs().sum() > 0
    trainable = {name for name, p in enc.named_parameters() if p.requires_grad}
    assert trainable == {"lexical.1.weight", "lexical.1.bias"}


def test_lexical_sentence_adds_the_mean_lexical_vector_of_the_words(clip_and_tokens):
    clip, tokens = clip_and_tokens
    out, plain = encoder(clip, True, sentence=True)(tokens), encoder(clip, False)(tokens)
    lexical = out["words"] - plain["words"]  # (B, L, D_t), zero on padding
    counts = (~out["word_pad"]).sum(1, keepdim=True)
    assert torch.allclose(out["sentence"], plain["sentence"] + lexical.sum(1) / counts, atol=1e-5)


def test_the_frozen_sentence_hides_the_direction_and_the_lexical_sentence_shows_it(clip_and_tokens):
    clip, tokens = clip_and_tokens
    cos = {}
    for sentence in (False, True):
        out = encoder(clip, True, sentence=sentence)(tokens)["sentence"]
        cos[sentence] = F.cosine_similarity(out[0], out[1], dim=0).item()  # "... moving left" vs "... right"
    assert cos[False] > 0.99
    # 1 - cos grows >50x (7200-step CLIP: 2.5e-5 -> 3.2e-3)
    assert (1 - cos[True]) > 50 * (1 - cos[False]) and cos[True] < cos[False] - 0.002


def test_lexical_sentence_without_the_lexical_words_is_refused(clip_and_tokens):
    clip, _ = clip_and_tokens
    with pytest.raises(ValueError, match="lexical_sentence needs prompts.lexical_words"):
        encoder(clip, False, sentence=True)
