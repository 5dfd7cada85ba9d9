"""core.prompts.build: prefix prompts checked against the raw documents re-tokenized independently,
prompt files, unconditional and minimal-cue prompts."""
from __future__ import annotations

import json
import random

import pytest

from core.config import SettingConfig
from core.errors import PromptSetError
from core.prompts.build import CONTINUATION_TOKENS, build_prompts
from tests.fixtures_index import build_tiny_index, train_tiny_tokenizer
from tests.fixtures_model import make_tiny_tokenizer

WORDS = ["alpha", "beta", "gamma", "delta", "river", "stone", "cloud", "paper", "seven", "lantern", "orbit", "marble", "quiet", "harbor"]


def _docs(n: int, seed: int = 3) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        length = rng.choice([5, 20, 40, 80, 200])  # words: short and long documents
        out.append((f"doc{i}", " ".join(rng.choice(WORDS) for _ in range(length)) + "."))
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    docs = _docs(40)
    tmp = tmp_path_factory.mktemp("prefix")
    tok = train_tiny_tokenizer([t for _, t in docs], 300, tmp / "tok")
    return docs, tok, build_tiny_index(docs, tmp / "index", tokenizer=tok)


def test_prefix_takes_first_p_tokens_of_long_enough_docs(corpus):
    docs, tok, index = corpus
    text_of = dict(docs)
    ids_of = {d: tok(t, add_special_tokens=False)["input_ids"] for d, t in docs}
    eligible = {d for d, ids in ids_of.items() if len(ids) >= 60}
    setting = SettingConfig("prefix", n_prompts=10, prefix_tokens=25, min_doc_tokens=60, seed=1)
    prompts = build_prompts(setting, tok, index)
    assert len(prompts) == 10 and len({p.prompt_id for p in prompts}) == 10
    for p in prompts:
        ids = ids_of[p.source_doc_id]
        assert p.source_doc_id in eligible and p.prompt_id == f"prefix-{p.source_doc_id}"
        assert list(p.token_ids) == ids[:25]
        assert list(p.true_continuation_ids) == ids[25:25 + CONTINUATION_TOKENS]
        assert text_of[p.source_doc_id].startswith(p.text + p.true_continuation)
        assert index.doc_id(p.source_doc_ix) == p.source_doc_id
    again = build_prompts(setting, tok, index)
    assert again == prompts  # seeded
    other = build_prompts(SettingConfig("prefix", n_prompts=10, prefix_tokens=25, min_doc_tokens=60, seed=2), tok, index)
    assert [p.prompt_id for p in other] != [p.prompt_id for p in prompts]
    everything = build_prompts(SettingConfig("prefix", n_prompts=len(eligible), prefix_tokens=25,
                                             min_doc_tokens=60), tok, index)
    assert {p.source_doc_id for p in everything} == eligible


def test_prefix_with_too_few_documents_says_how_many(corpus):
    docs, tok, index = corpus
    n_long = sum(len(tok(t, add_special_tokens=False)["input_ids"]) >= 60 for _, t in docs)
    with pytest.raises(PromptSetError, match=f"has {n_long} of 40 document\\(s\\) of at least"):
        build_prompts(SettingConfig("prefix", n_prompts=n_long + 1, prefix_tokens=10, min_doc_tokens=60), tok, index)
    with pytest.raises(PromptSetError, match="needs a corpus index"):
        build_prompts(SettingConfig("prefix"), tok, None)


def test_prefix_skips_documents_that_repeat_an_earlier_prefix(tmp_path):
    docs = _docs(30, seed=5)
    long_docs = [(d, t) for d, t in docs if len(t.split()) >= 80]
    copies = [(f"{d}-copy{k}", t) for d, t in long_docs for k in range(3)]  # every long document three times
    tok = train_tiny_tokenizer([t for _, t in docs], 300, tmp_path / "tok")
    index = build_tiny_index(docs + copies, tmp_path / "index", tokenizer=tok)
    distinct = {tuple(tok(t, add_special_tokens=False)["input_ids"][:25]) for _, t in docs + copies
                if len(tok(t, add_special_tokens=False)["input_ids"]) >= 60}
    prompts = build_prompts(SettingConfig("prefix", n_prompts=len(distinct), prefix_tokens=25, min_doc_tokens=60), tok, index)
    assert {p.token_ids for p in prompts} == distinct and len(prompts) == len(distinct)  # each attack once
    with pytest.raises(PromptSetError, match=r"repeated an earlier document's first P tokens"):
        build_prompts(SettingConfig("prefix", n_prompts=len(distinct) + 1, prefix_tokens=25, min_doc_tokens=60), tok, index)


def test_prefix_with_another_model_tokenizer_re_tokenizes(corpus):
    docs, index_tok, index = corpus
    model_tok = make_tiny_tokenizer()  # trained on other text: other ids, other lengths
    with pytest.raises(PromptSetError, match="pass index_tokenizer"):
        build_prompts(SettingConfig("prefix", n_prompts=3, prefix_tokens=10, min_doc_tokens=60), model_tok, index)
    ids_of = {d: model_tok(t, add_special_tokens=False)["input_ids"] for d, t in docs}
    setting = SettingConfig("prefix", n_prompts=5, prefix_tokens=30, min_doc_tokens=120, seed=4)
    prompts = build_prompts(setting, model_tok, index, index_tokenizer=index_tok)
    assert len(prompts) == 5
    for p in prompts:
        ids = ids_of[p.source_doc_id]
        assert len(ids) >= 120 and list(p.token_ids) == ids[:30]
        assert list(p.true_continuation_ids) == ids[30:30 + CONTINUATION_TOKENS]


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_prompt_files_all_or_seeded_subset_in_file_order(tmp_path):
    path = _write_jsonl(tmp_path / "generic.jsonl",
                        [{"text": f"Tell me about topic {i}.", "domain": f"d{i % 3}", "id": f"g{i:02d}"}
                         for i in range(12)])
    all_prompts = build_prompts(SettingConfig("generic", n_prompts=100, prompts_path=str(path)), None)
    assert [p.prompt_id for p in all_prompts] == [f"g{i:02d}" for i in range(12)]
    assert all_prompts[4].text == "Tell me about topic 4." and all_prompts[4].domain == "d1"
    subset = build_prompts(SettingConfig("generic", n_prompts=5, prompts_path=str(path), seed=9), None)
    ids = [p.prompt_id for p in subset]
    assert len(ids) == 5 and ids == sorted(ids) and set(ids) <= {p.prompt_id for p in all_prompts}
    assert subset == build_prompts(SettingConfig("generic", n_prompts=5, prompts_path=str(path), seed=9), None)
    other = build_prompts(SettingConfig("generic", n_prompts=5, prompts_path=str(path), seed=10), None)
    assert [p.prompt_id for p in other] != ids
    custom = build_prompts(SettingConfig("my-set", n_prompts=2, prompts_path=str(path)), None)
    assert all(p.setting == "my-set" for p in custom)
    with pytest.raises(PromptSetError, match="set prompts_path"):
        build_prompts(SettingConfig("specific"), None)


def test_unconditional_and_minimal_cue_start_with_the_start_token():
    tok = make_tiny_tokenizer()
    (u,) = build_prompts(SettingConfig("unconditional"), tok)
    assert u.token_ids == (tok.eos_token_id,) and u.prompt_id == "unconditional"
    cues = build_prompts(SettingConfig("minimal-cue", cue_words=("The", "She", "It")), tok)
    assert [p.prompt_id for p in cues] == ["cue-The", "cue-She", "cue-It"]
    for p, word in zip(cues, ("The", "She", "It")):
        assert p.token_ids[0] == tok.bos_token_id
        assert tok.decode(p.token_ids[1:]) == word and p.text == word
    assert len(build_prompts(SettingConfig("minimal-cue", n_prompts=2, cue_words=("The", "She", "It")), tok)) == 2
