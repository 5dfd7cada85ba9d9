"""User prompt sets: JSONL with text, optional domain and id; bad rows reported with their line."""
from __future__ import annotations

import gzip
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.corpus.load import RowProblem
from core.errors import ConfigError, PromptSetError
from core.prompts.sets import load_prompt_set
from core.records import Prompt
from tests.fixtures_corpus import write_lines


def test_prompts_keep_text_domain_and_ids(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", [
        '{"text": "Write a poem about the sea.", "domain": "creative"}',
        "",
        '{"text": "Explain TCP.", "id": "net-1", "extra": 1}',
        '{"text": "What is 2+2?", "id": 42}',
    ])
    out = load_prompt_set(path, "generic")
    assert out.problems == ()
    assert out.prompts == (
        Prompt("generic", "generic-0001", "Write a poem about the sea.", domain="creative"),
        Prompt("generic", "net-1", "Explain TCP."),
        Prompt("generic", "42", "What is 2+2?"),
    )


def test_gzip_prompt_set_is_read(tmp_path):
    path = tmp_path / "p.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"text": "hello"}\n'))
    assert [p.prompt_id for p in load_prompt_set(path, "mine").prompts] == ["mine-0001"]


BAD = [
    ('{"text": "ok", "id": "a"}', None),
    ("not json", r"invalid JSON"),
    ('{"prompt": "x"}', r"missing field 'text' \(fields present: \['prompt'\]\)"),
    ('{"text": ""}', r"field 'text' is empty or whitespace-only"),
    ('{"text": "  "}', r"field 'text' is empty or whitespace-only"),
    ('{"text": ["x"]}', r"field 'text' is a list, expected a string"),
    ('{"text": "t", "domain": 3}', r"field 'domain' is a number, expected a string"),
    ('{"text": "t", "id": "a"}', r"duplicate id 'a' \(first seen at line 1\)"),
    ('{"text": "t", "id": "s-0001"}', None),
    ('{"text": "t"}', None),  # default id s-0010
    ('{"text": "t", "id": "s-0010"}', r"duplicate id 's-0010' \(first seen at line 10\)"),
    ('{"text": "t", "id": {"x": 1}}', r"field 'id' is an object"),
    ("[1]", r"got a list"),
]


def test_bad_rows_are_reported_with_their_lines(tmp_path):
    path = write_lines(tmp_path / "bad.jsonl", [line for line, _ in BAD])
    out = load_prompt_set(path, "s")
    assert [p.prompt_id for p in out.prompts] == ["a", "s-0001", "s-0010"]
    expected = [(i, pat) for i, (_, pat) in enumerate(BAD, 1) if pat]
    assert [p.line for p in out.problems] == [i for i, _ in expected]
    for problem, (_, pattern) in zip(out.problems, expected):
        assert isinstance(problem, RowProblem) and problem.source == str(path)
        assert re.search(pattern, problem.reason), (pattern, problem.reason)


def test_stop_raises_naming_the_file_and_line(tmp_path):
    path = write_lines(tmp_path / "bad.jsonl", [line for line, _ in BAD])
    with pytest.raises(PromptSetError, match=r"(?s)bad row\(s\) in prompt set .*bad\.jsonl.*line 2: invalid JSON.*'skip'"):
        load_prompt_set(path, "s", on_bad_rows="stop")
    with pytest.raises(ConfigError, match="on_bad_rows must be one of"):
        load_prompt_set(path, "s", on_bad_rows="drop")


@pytest.mark.parametrize(("content", "pattern"), [
    (None, r"prompt set .*gone\.jsonl: .*does not exist"),
    (b"", r"prompt set .*p\.jsonl: .*is empty"),
    (b"\n\n", r"prompt set .*p\.jsonl holds no valid prompt \(only blank lines\)"),
    (b'{"text": ""}\n{"x": 1}\n', r"(?s)prompt set .*p\.jsonl holds no valid prompt; first problems:.*line 2: missing"),
    (b"\x00\x01\x02", r"prompt set .*p\.jsonl: .*looks binary"),
])
def test_unusable_files_raise_prompt_set_error(tmp_path, content, pattern):
    path = tmp_path / ("gone.jsonl" if content is None else "p.jsonl")
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(PromptSetError, match=pattern):
        load_prompt_set(path, "generic")


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(st.tuples(st.text(max_size=20), st.one_of(st.none(), st.sampled_from(["x", "y", "z"])),
                                st.one_of(st.none(), st.sampled_from(["law", "code"]))), max_size=10))
def test_random_prompt_sets_round_trip(tmp_path_factory, items):
    path = tmp_path_factory.mktemp("ps") / "p.jsonl"
    lines, valid, invalid, seen = [], [], [], set()
    for line, (text, pid, domain) in enumerate(items, 1):
        obj = {"text": text} | ({"id": pid} if pid else {}) | ({"domain": domain} if domain else {})
        lines.append(json.dumps(obj))  # ASCII: lone surrogates are escaped
        final = pid or f"g-{line:04d}"
        ok = text.strip() != "" and not any(0xD800 <= ord(c) <= 0xDFFF for c in text) and final not in seen
        if ok:
            seen.add(final)
            valid.append(Prompt("g", final, text, domain=domain))
        else:
            invalid.append(line)
    write_lines(path, lines)
    if not valid:
        with pytest.raises(PromptSetError):
            load_prompt_set(path, "g")
        return
    out = load_prompt_set(path, "g")
    assert list(out.prompts) == valid and [p.line for p in out.problems] == invalid
