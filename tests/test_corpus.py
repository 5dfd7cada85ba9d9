"""Corpus loading: every format round-trips, every bad row is reported with its line, sampling is
seeded, and whole-file problems raise CorpusError with what to do."""
from __future__ import annotations

import gzip
import hashlib
import json
import re
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.config import CorpusConfig
from core.corpus.load import Document, RenamedId, RowProblem, corpus_fingerprint, load_corpus
from core.errors import BadRowsError, ConfigError, CorpusError
from tests.fixtures_corpus import WRITABLE, write_corpus, write_lines

ROOT = Path(__file__).resolve().parents[1]
ROWS = [
    {"id": "doc-a", "text": "The cat sat on the mat.", "lang": "en", "n": 3},
    {"id": "doc-b", "text": "Ünïcödé: naïve café, 東京, emoji 🐍, e\u0301 combining", "lang": "xx", "n": 1},
    {"id": "doc-c", "text": "line one\nline two\r\n\ttabbed \"quoted\", comma", "lang": "en", "n": 7},
]


def _load(path, **kw):
    return load_corpus(CorpusConfig(path=str(path), **kw))


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("fmt", WRITABLE)
def test_every_format_round_trips(tmp_path, fmt):
    rows = [dict(r, id=f"sub/{r['id']}.txt") for r in ROWS] if fmt == "txt" else ROWS
    path = write_corpus(tmp_path, fmt, rows)
    out = _load(path)
    assert [(d.doc_id, d.text) for d in out.documents] == sorted((r["id"], r["text"]) for r in rows)
    assert out.problems == () and out.rows_read == len(rows) and out.source == str(path)
    if fmt == "txt":  # a .txt file has no other fields
        assert all(d.metadata == {} for d in out.documents)
    elif fmt == "csv":  # CSV cells are strings
        assert [dict(d.metadata) for d in out.documents] == [{"lang": r["lang"], "n": str(r["n"])} for r in rows]
    else:
        assert [dict(d.metadata) for d in out.documents] == [{"lang": r["lang"], "n": r["n"]} for r in rows]
    assert corpus_fingerprint(out.documents) == corpus_fingerprint(Document(d.doc_id, d.text) for d in out.documents)


def test_format_given_explicitly_overrides_the_suffix(tmp_path):
    path = write_corpus(tmp_path, "jsonl", ROWS)
    renamed = path.rename(tmp_path / "corpus.data")
    assert len(_load(renamed, format="jsonl").documents) == 3
    with pytest.raises(CorpusError, match=r"cannot tell the format of .*corpus\.data.*set the corpus format"):
        _load(renamed)


def test_custom_text_and_id_fields_and_metadata(tmp_path):
    rows = [{"body": "alpha", "key": 7, "x": [1, 2]}, {"body": "beta", "key": "k2", "x": None}]
    path = write_corpus(tmp_path, "jsonl", rows)
    docs = _load(path, text_field="body", id_field="key").documents
    assert docs == (Document("7", "alpha", {"x": [1, 2]}), Document("k2", "beta", {"x": None}))


def test_without_id_field_ids_are_line_numbers(tmp_path):
    path = write_lines(tmp_path / "c.jsonl", ['{"text": "a", "id": "x"}', "", '{"text": "b", "id": "y"}'])
    docs = _load(path, id_field=None).documents
    assert [(d.doc_id, d.metadata) for d in docs] == [("1", {"id": "x"}), ("3", {"id": "y"})]
    missing = write_lines(tmp_path / "m.jsonl", ['{"text": "a"}', '{"text": "b", "id": null}', '{"text": "c", "id": "z"}'])
    assert [d.doc_id for d in _load(missing).documents] == ["1", "2", "z"]


def test_txt_folder_is_recursive_sorted_and_ignores_other_files(tmp_path):
    root = tmp_path / "docs"
    for rel, text in [("b.txt", "bee"), ("a/z.txt", "zed"), ("a/b/c.txt", "\ufeffsee"), ("notes.md", "no")]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    out = _load(root)
    assert [(d.doc_id, d.text) for d in out.documents] == [("a/b/c.txt", "see"), ("a/z.txt", "zed"), ("b.txt", "bee")]


def test_txt_folder_reports_bad_files_by_path(tmp_path):
    root = tmp_path / "docs"
    root.mkdir()
    (root / "1.txt").write_text("good", encoding="utf-8")
    (root / "2.txt").write_bytes(b"abc\0def")
    (root / "3.txt").write_bytes(b"caf\xe9")
    (root / "4.txt").write_text("  \n\t", encoding="utf-8")
    out = _load(root)
    assert [d.doc_id for d in out.documents] == ["1.txt"]
    got = [(Path(p.source).name, p.line, p.reason) for p in out.problems]
    assert [g[:2] for g in got] == [("2.txt", 2), ("3.txt", 3), ("4.txt", 4)]
    assert "NUL" in got[0][2] and "UTF-8 (byte 3)" in got[1][2] and "whitespace-only" in got[2][2]


def test_saved_dataset_dict_uses_the_split(tmp_path):
    import datasets

    path = tmp_path / "dd"
    datasets.DatasetDict({
        "train": datasets.Dataset.from_list(ROWS[:2]), "test": datasets.Dataset.from_list(ROWS[2:]),
    }).save_to_disk(str(path))
    assert [d.doc_id for d in _load(path, split="test").documents] == ["doc-c"]
    with pytest.raises(CorpusError, match=r"no split 'valid'; splits present: \['train', 'test'\]"):
        _load(path, split="valid")


def test_hub_dataset_goes_through_load_dataset(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(name, split):
        calls.append((name, split))
        if name == "offline/none":
            raise ConnectionError("Couldn't reach the Hub")
        return datasets.Dataset.from_list(ROWS)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    out = load_corpus(CorpusConfig(path="hf:org/corpus", split="validation"))
    assert calls == [("org/corpus", "validation")] and len(out.documents) == 3
    with pytest.raises(CorpusError, match=r"cannot load the Hugging Face dataset hf:offline/none.*network"):
        load_corpus(CorpusConfig(path="hf:offline/none"))


# ---------------------------------------------------------------- bad rows

BAD_LINES = [
    ('{"id": "ok1", "text": "fine"}', None),
    ("{not json", r"invalid JSON at column 2"),
    (b'{"id": "u", "text": "caf\xe9"}', r"not valid UTF-8 \(byte 24 of the line\)"),
    ('["a", "list"]', r"expected a JSON object per line, got a list"),
    ('{"id": "m"}', r"missing text field 'text'"),
    ('{"id": "n", "text": 5}', r"text field 'text' is a number, expected a string"),
    ('{"id": "e", "text": ""}', r"empty or whitespace-only"),
    ('{"id": "w", "text": " \\n\\t\\u3000"}', r"empty or whitespace-only"),
    ('{"id": "s", "text": "x\\ud800y"}', r"lone surrogate '\\ud800' at character 1"),
    ('{"id": "ok1", "text": "again"}', None),  # a repeated id keeps its text, renamed ok1#2
    ('{"id": ["l"], "text": "t"}', r"id field 'id' is a list"),
    ('{"id": "ok2", "text": "also fine"}', None),
]


def test_each_bad_row_kind_is_reported_with_its_line(tmp_path):
    path = write_lines(tmp_path / "bad.jsonl", [line for line, _ in BAD_LINES])
    out = _load(path)
    assert [(d.doc_id, d.text) for d in out.documents] == [("ok1", "fine"), ("ok1#2", "again"), ("ok2", "also fine")]
    assert out.renamed == (RenamedId(str(path), 10, "ok1", "ok1#2"),)
    expected = [(i, pat) for i, (_, pat) in enumerate(BAD_LINES, 1) if pat]
    assert [p.line for p in out.problems] == [i for i, _ in expected]
    for problem, (_, pattern) in zip(out.problems, expected):
        assert problem.source == str(path)
        assert re.search(pattern, problem.reason), (pattern, problem)
    assert out.rows_read == len(out.documents) + len(out.problems) == len(BAD_LINES)


def test_stop_raises_naming_file_line_and_remedy(tmp_path):
    path = write_lines(tmp_path / "bad.jsonl", [line for line, _ in BAD_LINES])
    with pytest.raises(BadRowsError, match=r"(?s)bad\.jsonl line 2: invalid JSON.*on_bad_rows='skip'") as info:
        _load(path, on_bad_rows="stop")
    assert [p.line for p in info.value.problems] == [2, 3, 4, 5, 6, 7, 8, 9, 11]


def test_stop_reads_no_further_than_the_listed_problems(tmp_path):
    path = write_lines(tmp_path / "bad.jsonl", ["{oops"] * 50 + ['{"text": "late"}'])
    with pytest.raises(BadRowsError, match=r"(?s)10 bad row\(s\).*stopped reading after the first 10") as info:
        _load(path, on_bad_rows="stop")
    assert len(info.value.problems) == 10


def test_parquet_and_csv_bad_rows_use_row_numbers(tmp_path):
    rows = [{"id": "a", "text": "ok"}, {"id": "b", "text": ""}, {"id": "a", "text": "dup"}, {"id": "c", "text": None}]
    pq = _load(write_corpus(tmp_path, "parquet", rows))
    assert [(p.line, p.reason[:12]) for p in pq.problems] == [(2, "text field '"), (4, "text field '")]
    assert "is null" in pq.problems[1].reason
    assert [(d.doc_id, d.text) for d in pq.documents] == [("a", "ok"), ("a#2", "dup")]
    assert [(r.line, r.doc_id, r.new_id) for r in pq.renamed] == [(3, "a", "a#2")]
    csv = _load(write_corpus(tmp_path, "csv", rows[:3]))
    assert [p.line for p in csv.problems] == [2] and [d.doc_id for d in csv.documents] == ["a", "a#2"]


def test_unknown_on_bad_rows_and_sample_size_are_config_errors(tmp_path):
    path = write_corpus(tmp_path, "jsonl", ROWS)
    with pytest.raises(ConfigError, match=r"on_bad_rows must be one of \('skip', 'stop'\), got 'ignore'"):
        _load(path, on_bad_rows="ignore")
    with pytest.raises(ConfigError, match="sample_size must be at least 1"):
        _load(path, sample_size=0)


# ---------------------------------------------------------------- whole-file problems


def test_whole_file_problems_raise_corpus_error(tmp_path):
    cases = {
        "missing": (tmp_path / "nope.jsonl", r"nope\.jsonl does not exist"),
        "missing_folder": (tmp_path / "no_such_folder", r"no_such_folder does not exist"),
        "empty": (tmp_path / "empty.jsonl", r"empty\.jsonl is empty"),
        "blank": (tmp_path / "blank.jsonl", r"blank\.jsonl holds no rows"),
        "binary": (tmp_path / "bin.jsonl", r"bin\.jsonl looks binary"),
        "utf16": (tmp_path / "u16.jsonl", r"u16\.jsonl looks binary.*UTF-16"),
        "array": (tmp_path / "arr.json", r"(?s)arr\.json: no valid.*line 1: .*got a list \(a JSON array file must be rewritten as JSONL"),
        "badgz": (tmp_path / "bad.jsonl.gz", r"bad\.jsonl\.gz cannot be decompressed"),
        "badzst": (tmp_path / "bad.jsonl.zst", r"bad\.jsonl\.zst cannot be decompressed"),
        "notparquet": (tmp_path / "x.parquet", r"x\.parquet is not a readable Parquet file"),
        "emptycsv": (tmp_path / "e.csv", r"e\.csv is empty"),
        "allbad": (tmp_path / "allbad.jsonl", r"(?s)no valid documents in 2 row\(s\).*line 2: missing text"),
        "notxt": (tmp_path / "folder", r"folder holds no \.txt files"),
    }
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "blank.jsonl").write_bytes(b"\n  \n\n")
    (tmp_path / "bin.jsonl").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "u16.jsonl").write_bytes('{"text": "hi"}\n'.encode("utf-16"))
    (tmp_path / "arr.json").write_text('[{"text": "a"}]', encoding="utf-8")
    (tmp_path / "bad.jsonl.gz").write_bytes(b"definitely not gzip")
    (tmp_path / "bad.jsonl.zst").write_bytes(b"definitely not zstd")
    (tmp_path / "x.parquet").write_bytes(b"PAR1 but not really")
    (tmp_path / "e.csv").write_bytes(b"")
    write_lines(tmp_path / "allbad.jsonl", ['{"text": ""}', '{"txt": "x"}'])
    (tmp_path / "folder" / "sub").mkdir(parents=True)
    (tmp_path / "folder" / "sub" / "a.md").write_text("x", encoding="utf-8")
    for path, pattern in cases.values():
        with pytest.raises(CorpusError, match=pattern):
            _load(path)


def test_truncated_gzip_raises_after_the_rows_read(tmp_path):
    data = gzip.compress(b"".join(b'{"text": "row %d"}\n' % i for i in range(5000)))
    (tmp_path / "t.jsonl.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorpusError, match=r"t\.jsonl\.gz cannot be decompressed after line \d+"):
        _load(tmp_path / "t.jsonl.gz")


@pytest.mark.parametrize("fmt", ["parquet", "csv", "hf"])
def test_missing_text_column_lists_the_columns(tmp_path, fmt):
    path = write_corpus(tmp_path, fmt, [{"id": "a", "body": "x", "meta": 1}])
    with pytest.raises(CorpusError, match=r"no text column 'text'; columns present: \['id', 'body', 'meta'\]"):
        _load(path)


def test_unknown_format_name_is_rejected(tmp_path):
    path = write_corpus(tmp_path, "jsonl", ROWS)
    with pytest.raises(ConfigError, match=r"unknown corpus format 'xml': use one of \('auto', 'jsonl'"):
        _load(path, format="xml")


# ---------------------------------------------------------------- long lines, progress


def test_a_50mb_line_loads_with_bounded_memory(tmp_path):
    big = "word " * 10_000_000  # 50 MB
    path = tmp_path / "big.jsonl"
    with path.open("w", encoding="utf-8") as f:
        f.write('{"id": "small", "text": "before"}\n')
        f.write('{"id": "big", "text": "' + big + '"}\n')
        f.write('{"id": "broken", "text": "' + big + "\n")  # 50 MB of invalid JSON
        f.write('{"id": "after", "text": "after"}\n')
    from core.corpus.limits import InputLimits

    tracemalloc.start()
    try:  # over the default 16 MiB line and document caps (issue 21): raised for this file
        out = load_corpus(CorpusConfig(path=str(path)), limits=InputLimits(max_line_bytes=64 << 20,
                                                                           max_doc_bytes=64 << 20))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [d.doc_id for d in out.documents] == ["small", "big", "after"]
    assert out.documents[1].text == big
    assert [(p.line, p.reason[:12]) for p in out.problems] == [(3, "invalid JSON")]
    # the loaded 50 MB document, plus one line (bytes + str) in flight: no quadratic buffering
    assert peak < 5 * len(big), peak


def test_progress_reports_load_of_documents(tmp_path):
    rows = [{"id": str(i), "text": f"t{i}"} for i in range(2500)]
    events = []
    out = load_corpus(CorpusConfig(path=str(write_corpus(tmp_path, "parquet", rows))), progress=events.append)
    assert {(e.stage, e.unit, e.total) for e in events} == {("load", "documents", 2500)}
    assert [e.done for e in events] == sorted(e.done for e in events) and events[-1].done == out.rows_read == 2500


# ---------------------------------------------------------------- sampling


def _numbered(tmp_path, n, bad_every=0):
    lines = ['{"text": ""}' if bad_every and i % bad_every == 0 else json.dumps({"id": f"d{i}", "text": f"doc {i}"})
             for i in range(1, n + 1)]
    return write_lines(tmp_path / "n.jsonl", lines)


def test_sample_is_seeded_reproducible_ordered_subset(tmp_path):
    path = _numbered(tmp_path, 100, bad_every=10)
    full = _load(path)
    a = _load(path, sample_size=20, seed=7)
    assert _load(path, sample_size=20, seed=7) == a
    assert len(a.documents) == 20 and a.problems == full.problems and a.rows_read == 100
    positions = [full.documents.index(d) for d in a.documents]
    assert positions == sorted(positions) and len(set(positions)) == 20
    assert _load(path, sample_size=20, seed=8).documents != a.documents
    assert _load(path, sample_size=500).documents == full.documents


def test_sample_picks_every_document_with_equal_chance(tmp_path):
    path = _numbered(tmp_path, 20)
    counts = dict.fromkeys(range(1, 21), 0)
    for seed in range(400):
        for d in _load(path, sample_size=5, seed=seed).documents:
            counts[int(d.doc_id[1:])] += 1
    # each document is in a sample with probability 5/20: 100 of 400, binomial sd ~8.7
    assert all(60 <= c <= 140 for c in counts.values()), counts


# ---------------------------------------------------------------- fingerprint


def test_fingerprint_is_sha256_over_length_prefixed_ids_and_texts():
    docs = [Document("a", "héllo"), Document("b", "")]
    h = hashlib.sha256()
    for d in docs:
        for s in (d.doc_id.encode(), d.text.encode()):
            h.update(len(s).to_bytes(8, "little") + s)
    assert corpus_fingerprint(docs) == h.hexdigest()
    assert corpus_fingerprint([Document("ab", "c")]) != corpus_fingerprint([Document("a", "bc")])
    assert corpus_fingerprint([Document("a", "x", {"m": 1})]) == corpus_fingerprint([Document("a", "x")])


def test_fingerprint_is_stable_across_processes(tmp_path):
    path = write_corpus(tmp_path, "jsonl", ROWS)
    code = ("import sys; from core.config import CorpusConfig; from core.corpus.load import load_corpus, corpus_fingerprint;"
            "print(corpus_fingerprint(load_corpus(CorpusConfig(sys.argv[1])).documents))")
    prints = {subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, capture_output=True, text=True,
                             env={"PYTHONHASHSEED": seed}, check=True).stdout.strip() for seed in ("1", "2")}
    assert prints == {corpus_fingerprint(_load(path).documents)}


# ---------------------------------------------------------------- property: JSONL round trip

_texts = st.one_of(
    st.text(),  # any code points, lone surrogates included
    st.sampled_from(["", " ", "\t\n", "\u3000", "e\u0301", "\u0301\u0302", "a\u2028b", "\ufeffbom", "x\ud800"]),
    st.text(alphabet=st.characters(categories=["Mn", "Zs", "Cc"]), max_size=5),
)
_row = st.one_of(
    st.tuples(st.just("doc"), st.sampled_from(["a", "b", "c", "d", None]), _texts, st.booleans()),
    st.tuples(st.just("raw"), st.sampled_from([b"{", b"[1, 2]", b"42", b'"str"', b"\xff\xfe{}", b"null"]),
              st.none(), st.none()),
)


def _expected_valid(text: str) -> bool:
    return text.strip() != "" and not any(0xD800 <= ord(c) <= 0xDFFF for c in text)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(_row, max_size=12))
def test_random_jsonl_round_trip(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("prop") / "c.jsonl"
    lines, valid, invalid, renamed, seen = [], [], [], [], set()
    for line_no, (kind, doc_id, text, ascii_only) in enumerate(rows, 1):
        if kind == "raw":
            lines.append(doc_id)
            invalid.append(line_no)
            continue
        obj = {"text": text} if doc_id is None else {"id": doc_id, "text": text}
        lines.append(json.dumps(obj, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass"))
        final_id = str(line_no) if doc_id is None else doc_id
        if _expected_valid(text):
            if final_id in seen:  # a repeated id keeps its text under the first free id#k, k >= 2
                new_id = next(f"{final_id}#{k}" for k in range(2, len(rows) + 3) if f"{final_id}#{k}" not in seen)
                renamed.append((line_no, final_id, new_id))
                final_id = new_id
            seen.add(final_id)
            valid.append((final_id, text))
        else:
            invalid.append(line_no)
    write_lines(path, lines)
    if not valid:
        with pytest.raises(CorpusError):
            _load(path)
        return
    out = _load(path)
    assert [(d.doc_id, d.text) for d in out.documents] == valid
    assert [p.line for p in out.problems] == invalid
    assert [(r.line, r.doc_id, r.new_id) for r in out.renamed] == renamed
    assert all(isinstance(p, RowProblem) and p.reason for p in out.problems)
    assert out.rows_read == len(out.documents) + len(out.problems) == len(rows)
