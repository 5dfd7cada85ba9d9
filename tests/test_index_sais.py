"""libsais (core/index/sais.py) writes the same suffix-array table as infini-gram's rust_indexing,
byte for byte, on token files with tricky ids (byte-order ties, long repeats, separators), and an
index sorted by it answers like a brute-force count. The library is built on first use (the fixture below),
never while pytest collects, into the cache root of core/paths.py."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.index import layout as fmt
from core.index import sais
from core.index.build import build_index_from_ids, build_suffix_array
from core.paths import cache_root
from tests.fixtures_index import brute_count

TRICKY = [0, 1, 0x00FF, 0x0100, 0x0101, 0xFF00, 0xFFFE, 0x7F80, 0x807F]  # ties between byte and value order


@pytest.fixture(scope="module")
def libsais():
    """The compiled library: built here on first use (not at collection); skip without a C compiler."""
    if sais.library() is None:
        pytest.skip("no C compiler here: libsais is not built")


def test_importing_builds_nothing_and_the_library_lives_under_the_cache_root(tmp_path):
    env = {**os.environ, "PROPME_CACHE_DIR": str(tmp_path / "cache")}
    code = "import core.index.sais as s, core.index.build; print(s.library_path())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                         cwd=sais.SOURCE.parents[1]).stdout.strip()
    assert not (tmp_path / "cache").exists()  # no compiler ran on import
    assert os.path.dirname(out) == str(tmp_path / "cache" / "native")
    assert sais.library_path().parent == cache_root() / "native"
    assert {"libsais16.c", "libsais16.h", "LICENSE", "README.md"} <= {p.name for p in sais.SOURCE.iterdir()}


def _token_file(folder, docs) -> tuple:
    folder.mkdir(parents=True, exist_ok=True)
    sep = fmt.separator_id("u16")
    flat = np.concatenate([np.concatenate([[sep], d]) for d in docs]).astype("<u2")
    path = folder / fmt.TOKENS
    path.write_bytes(flat.tobytes())
    return path


def _both_tables(tmp_path, docs) -> tuple[bytes, bytes]:
    a = _token_file(tmp_path / "rust", docs)
    b = tmp_path / "sais"
    b.mkdir(exist_ok=True)
    shutil.copy(a, b / fmt.TOKENS)
    steps_rust = build_suffix_array(a, 2, cpus=1, engine="rust")
    steps_sais = build_suffix_array(b / fmt.TOKENS, 2, engine="libsais")
    assert (steps_rust["engine"], steps_sais["engine"]) == ("rust_indexing", "libsais16")
    return (a.parent / fmt.TABLE).read_bytes(), (b / fmt.TABLE).read_bytes()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(st.sampled_from(TRICKY), min_size=0, max_size=40), min_size=1, max_size=12))
def test_same_table_as_rust_indexing(libsais, tmp_path_factory, docs):
    docs = [np.array(d, dtype=np.int64) for d in docs]
    rust, ours = _both_tables(tmp_path_factory.mktemp("sa"), docs)
    assert rust == ours


def test_same_table_on_a_larger_file_with_long_repeats(libsais, tmp_path):
    rng = np.random.default_rng(4)
    base = rng.integers(0, 3000, size=20_000)
    docs = [base[a:a + n] for a, n in zip(rng.integers(0, 15_000, 300), rng.integers(50, 4000, 300))]
    docs += [np.full(3000, 0x0100), np.tile([0x00FF, 0xFF00], 900)]
    rust, ours = _both_tables(tmp_path, docs)
    assert len(ours) > 1_000_000 and rust == ours


def test_an_index_sorted_by_libsais_counts_like_brute_force(libsais, tmp_path, monkeypatch):
    monkeypatch.setattr(sais, "MIN_TOKENS", 0)  # this small file is sorted by libsais too
    rng = np.random.default_rng(9)
    lists = [rng.integers(0, 300, size=int(rng.integers(1, 80))).tolist() for _ in range(60)]
    lists += [lists[3], lists[3][5:], [0x0100] * 50]
    docs = ((f"d{i}", np.asarray(t), {}) for i, t in enumerate(lists))
    index = build_index_from_ids(docs, tmp_path / "ix", vocab_size=0x0101 + 1000, eos_token_id=0, cpus=1)
    assert index.manifest["build_seconds"]["suffix_array_steps"]["engine"] == "libsais16"
    for d in range(0, len(lists), 7):
        for n in (1, 2, 5):
            q = lists[d][:n]
            assert index.count(q) == brute_count(lists, q), q
    assert index.count([0x0100] * 3) == 48
