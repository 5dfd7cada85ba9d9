"""Byte-table decoding (core/index/byte_decode.py) against the tokenizer's own decode."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import AddedToken

from core.index.byte_decode import byte_decoder
from tests.fixtures_trace import byte_bpe_tokenizer, metaspace_tokenizer

_BYTE = byte_bpe_tokenizer(["naïve café — “quoted” 日本語 ünïcödé " * 3], vocab_size=420)
_BYTE.add_tokens([AddedToken("<added>", special=False), AddedToken("ünï", special=False)])
_BYTE.add_special_tokens({"additional_special_tokens": ["<sp>"]})
_DEC = byte_decoder(_BYTE)
_VOCAB = len(_BYTE)


def _want(ids: list[int]) -> str:
    return _BYTE.backend_tokenizer.decode(ids, skip_special_tokens=False)


def test_only_byte_level_tokenizers_get_one():
    assert _DEC is not None
    assert byte_decoder(metaspace_tokenizer()) is None  # Metaspace/ByteFallback decoders: the tokenizer decodes


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, _VOCAB - 1), max_size=60), st.data())
def test_equals_tokenizer_decode_on_any_ids(ids, data):
    # single byte tokens make broken UTF-8 likely; added and special tokens fall back to the tokenizer
    cuts = data.draw(st.lists(st.integers(0, len(ids)), max_size=3))
    got = _DEC.decode_prefixes(ids, cuts)
    assert got == [_want(ids)] + [_want(ids[:c]) for c in cuts]


@pytest.mark.parametrize("text", ["naïve café — “quoted” 日本語", "x<added>y ünï <sp> z", "\x00\x7f\u00ff\U0001F600"])
def test_round_trip_of_text_and_cut_characters(text):
    ids = _BYTE(text, add_special_tokens=False)["input_ids"]
    cuts = list(range(len(ids) + 1))
    assert _DEC.decode_prefixes(ids, cuts) == [_want(ids)] + [_want(ids[:c]) for c in cuts]
    if "<" not in text:  # (the library itself garbles the added token "ünï" in a byte-level vocabulary)
        assert _DEC.decode(ids) == text
