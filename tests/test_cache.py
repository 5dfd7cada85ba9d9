import logging
import multiprocessing as mp
import sqlite3
import threading

import pytest
from hypothesis import HealthCheck, given, settings

from core.config import DecodingConfig, TraceConfig
from core.errors import CacheError
from core.records import Generation, GenKey, Prompt
from core.runs.cache import ResultCache, default_cache_path, generation_key, summary_key, trace_key
from tests.fixtures_runs import runs


def _gen(i: int) -> Generation:
    key = GenKey("generic", f"p{i}", 0)
    return Generation(key, Prompt("generic", f"p{i}", f"prompt {i} ü"), f"completion {i} ✓", (i, i + 1))


def test_default_path_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("PROPME_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_path() == tmp_path / "c" / "cache.sqlite"
    assert ResultCache().path == tmp_path / "c" / "cache.sqlite"
    assert ResultCache(tmp_path / "d").path == tmp_path / "d" / "cache.sqlite"
    assert ResultCache(tmp_path / "x.sqlite").path == tmp_path / "x.sqlite"


def test_keys_depend_on_what_changes_the_output():
    p = Prompt("generic", "a", "Hello", (1, 2, 3))
    base = generation_key("m@1", "tok", p, DecodingConfig(), 0)
    assert base == generation_key("m@1", "tok", p, DecodingConfig(batch_size=3), 0)  # batch size: no effect
    assert base == generation_key("m@1", "tok", Prompt("specific", "zz", "Hello", (1, 2, 3)), DecodingConfig(), 0)
    for other in (generation_key("m@2", "tok", p, DecodingConfig(), 0),
                  generation_key("m@1", "tok2", p, DecodingConfig(), 0),
                  generation_key("m@1", "tok", Prompt("generic", "a", "Hello", (1, 2, 4)), DecodingConfig(), 0),
                  generation_key("m@1", "tok", p, DecodingConfig(seed=1), 0),
                  generation_key("m@1", "tok", p, DecodingConfig(max_new_tokens=5), 0),
                  generation_key("m@1", "tok", p, DecodingConfig(), 1)):
        assert other != base
    t = trace_key(base, "text", "fp", TraceConfig())
    assert t != trace_key(base, "text!", "fp", TraceConfig())
    assert t != trace_key(base, "text", "fp2", TraceConfig())
    assert t != trace_key(base, "text", "fp", TraceConfig(mode="text"))
    assert summary_key({"a": 1}) != summary_key({"a": 2})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(run=runs())
def test_records_round_trip(run, tmp_path):
    cache = ResultCache(tmp_path / "c.sqlite")
    cache.put_generations((f"g{i}", g) for i, g in enumerate(run.generations))
    cache.put_traces((f"t{i}", t) for i, t in enumerate(run.traces))
    got = cache.get_generations([f"g{i}" for i in range(len(run.generations))] + ["missing"])
    assert [got[f"g{i}"] for i in range(len(run.generations))] == list(run.generations)
    traces = cache.get_traces([f"t{i}" for i in range(len(run.traces))])
    assert [traces[f"t{i}"] for i in range(len(run.traces))] == list(run.traces)
    cache.clear()


def test_size_report_and_clear(tmp_path):
    cache = ResultCache(tmp_path / "c.sqlite")
    cache.put_generations((f"k{i}", _gen(i)) for i in range(5))
    cache.put_summary("s", {"prefix": {"als": 1.5}})
    rep = cache.size_report()
    assert rep["tables"]["generations"]["entries"] == 5 and rep["tables"]["summaries"]["entries"] == 1
    assert rep["tables"]["traces"] == {"entries": 0, "bytes": 0}
    assert rep["tables"]["generations"]["bytes"] > 0 and rep["disk_bytes"] > 0
    assert cache.get_summary("s") == {"prefix": {"als": 1.5}}
    cache.clear("summaries")
    assert cache.get_summary("s") is None and cache.size_report()["tables"]["generations"]["entries"] == 5
    cache.clear()
    assert all(t["entries"] == 0 for t in cache.size_report()["tables"].values())


@pytest.mark.parametrize("damage", ["checksum", "json", "shape"])
def test_damaged_entry_is_deleted_not_returned(tmp_path, caplog, damage):
    cache = ResultCache(tmp_path / "c.sqlite")
    cache.put_generations([("a", _gen(1)), ("b", _gen(2))])
    raw = sqlite3.connect(tmp_path / "c.sqlite")
    if damage == "checksum":
        raw.execute("UPDATE generations SET value = replace(value, 'completion 1', 'completion X') WHERE key='a'")
    elif damage == "json":  # truncated value with a checksum that matches it
        import hashlib
        v = raw.execute("SELECT value FROM generations WHERE key='a'").fetchone()[0][:20]
        raw.execute("UPDATE generations SET value=?, checksum=? WHERE key='a'",
                    (v, hashlib.sha256(v.encode()).hexdigest()))
    else:  # valid JSON, wrong shape
        import hashlib
        v = '{"key": 3}'
        raw.execute("UPDATE generations SET value=?, checksum=? WHERE key='a'",
                    (v, hashlib.sha256(v.encode()).hexdigest()))
    raw.commit()
    raw.close()
    with caplog.at_level(logging.WARNING, logger="core.runs.cache"):
        got = cache.get_generations(["a", "b"])
    assert list(got) == ["b"] and got["b"] == _gen(2)
    assert "damaged" in caplog.text or "does not decode" in caplog.text
    assert cache.size_report()["tables"]["generations"]["entries"] == 1  # deleted
    cache.put_generations([("a", _gen(1))])  # recomputed value is stored again
    assert cache.get_generations(["a"])["a"] == _gen(1)


def test_garbage_file_is_moved_aside(tmp_path, caplog):
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"this is not a database at all" * 100)
    with caplog.at_level(logging.WARNING, logger="core.runs.cache"):
        cache = ResultCache(path)
    assert "moved it to" in caplog.text
    assert len(list(tmp_path.glob("c.sqlite.corrupt-*"))) == 1
    cache.put_generations([("a", _gen(1))])
    assert cache.get_generations(["a"]) == {"a": _gen(1)}


def test_truncated_database_is_moved_aside(tmp_path, caplog):
    path = tmp_path / "c.sqlite"
    cache = ResultCache(path)
    cache.put_generations((f"k{i}", _gen(i)) for i in range(300))
    cache._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    cache.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with caplog.at_level(logging.WARNING, logger="core.runs.cache"):
        cache = ResultCache(path)
        got = cache.get_generations([f"k{i}" for i in range(300)])
    assert got == {} or all(got[k] == _gen(int(k[1:])) for k in got)  # never a wrong value
    assert "damaged" in caplog.text
    cache.put_generations([("z", _gen(9))])
    assert cache.get_generations(["z"]) == {"z": _gen(9)}


def test_unknown_table_is_an_error(tmp_path):
    with pytest.raises(CacheError, match="unknown cache table 'nope'"):
        ResultCache(tmp_path / "c.sqlite").get_many("nope", ["a"])


def _writer(path: str, worker: int, n: int) -> None:
    cache = ResultCache(path)
    for b in range(0, n, 10):
        # overlapping keys: half are shared between workers (same value), half are the worker's own
        items = [(f"shared{i}", _gen(i)) for i in range(b, b + 5)] + \
                [(f"w{worker}-{i}", _gen(i)) for i in range(b, b + 5)]
        cache.put_generations(items)
        assert len(cache.get_generations([k for k, _ in items])) == 10


def _check_all(path, workers, n):
    cache = ResultCache(path)
    shared = [f"shared{i}" for b in range(0, n, 10) for i in range(b, b + 5)]
    own = [f"w{w}-{i}" for w in range(workers) for b in range(0, n, 10) for i in range(b, b + 5)]
    got = cache.get_generations(shared + own)
    assert set(got) == set(shared + own)
    assert all(got[k] == _gen(int(k.split("-")[-1].removeprefix("shared"))) for k in got)
    assert cache.size_report()["tables"]["generations"]["entries"] == len(shared) + len(own)


def test_two_threads_write_at_once(tmp_path):
    path = str(tmp_path / "c.sqlite")
    errors: list[BaseException] = []

    def writer(w):  # an assert failing inside a thread only prints: collect it and re-raise here
        try:
            _writer(path, w, 200)
        except BaseException as e:  # noqa: BLE001 - re-raised in the test's thread below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    _check_all(path, 2, 200)


def test_two_processes_write_at_once(tmp_path):
    path = str(tmp_path / "c.sqlite")
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(path, w, 200)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    _check_all(path, 2, 200)


def test_one_cache_object_shared_by_threads(tmp_path):
    cache = ResultCache(tmp_path / "c.sqlite")
    errors = []

    def work(w):
        try:
            cache.put_generations((f"t{w}-{i}", _gen(i)) for i in range(50))
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert errors == [] and cache.size_report()["tables"]["generations"]["entries"] == 200
