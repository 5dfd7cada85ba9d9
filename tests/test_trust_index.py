"""A damaged index is refused, never traced (issue 21, items 1, 9 and 12).

Damage is done as an attacker or a failing disk would: a table.0 overwritten with random bytes of the
same size or with 0xFF, a damaged tail of offset.0, a damaged region of tokenized.0; on a copy of the
demo index and on a freshly built small index. With checksums (our builds) the first open names the
file ("does not match its checksum"); without them (a prebuilt infini-gram index) the structural
checks name it. Nothing loads a model before the refusal.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xxhash

from core.errors import IndexDamaged, IndexNotBuilt
from core.index import layout as fmt
from core.index import verify
from core.index.corpus_index import CorpusIndex
from tests.fixtures_index import build_tiny_index

ROOT = Path(__file__).resolve().parents[1]
DAMAGE = ("table_random", "table_ff", "offset_tail", "tokenized_region")
FILE_OF = {"table_random": "table.0", "table_ff": "table.0", "offset_tail": "offset.0",
           "tokenized_region": "tokenized.0"}


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    """Every test of this module records verified files in its own cache root."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PROPME_CACHE_DIR", str(root))
        yield root


@pytest.fixture(scope="module")
def demo_index(cache_root, tmp_path_factory) -> Path:
    from core.runs.demo import ensure_demo_index

    out = tmp_path_factory.mktemp("demo") / "index"
    ensure_demo_index(index_dir=out)
    return out


@pytest.fixture(scope="module")
def small_index(cache_root, tmp_path_factory) -> Path:
    rng = np.random.default_rng(3)
    words = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta", "iota", "kappa"]
    docs = [" ".join(rng.choice(words, size=int(rng.integers(20, 80)))) for _ in range(300)]
    out = tmp_path_factory.mktemp("small") / "index"
    build_tiny_index(docs, out)
    return out


def _copy(src: Path, dst: Path, prebuilt: bool = False) -> Path:
    shutil.copytree(src, dst)
    if prebuilt:  # what a prebuilt infini-gram index looks like: no manifest, none of our files
        for name in (fmt.MANIFEST, fmt.COUNTS):
            (dst / name).unlink()
    return dst


def _damage(folder: Path, kind: str, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path = folder / FILE_OF[kind]
    data = bytearray(path.read_bytes())
    if kind == "table_random":
        data[:] = rng.integers(0, 256, size=len(data), dtype=np.uint8).tobytes()
    elif kind == "table_ff":
        data[:] = b"\xff" * len(data)
    elif kind == "offset_tail":
        data[-64:] = rng.integers(0, 256, size=64, dtype=np.uint8).tobytes()
    else:  # 4 KB of random bytes in the middle of the token file
        mid = len(data) // 2 & ~1
        data[mid:mid + 4096] = rng.integers(0, 256, size=4096, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def _one_line(e: Exception) -> str:
    text = str(e)
    assert "\n" not in text
    return text


# -- checksums -----------------------------------------------------------------------------------------
def test_build_records_a_checksum_of_every_index_file(demo_index, small_index):
    for folder in (demo_index, small_index):
        sums = fmt.read_manifest(folder)["checksums"]
        assert sums["algo"] == "xxh3_128"
        expected = {*fmt.SHARD_FILES, fmt.COUNTS, "sa-sample.0.npy"}
        assert set(sums["files"]) == expected
        for name, digest in sums["files"].items():  # independent: the whole file hashed in one call
            assert xxhash.xxh3_128((folder / name).read_bytes()).hexdigest() == digest


@pytest.mark.parametrize("kind", DAMAGE)
@pytest.mark.parametrize("source", ["demo", "small"])
def test_damaged_file_is_refused_naming_it(kind, source, demo_index, small_index, tmp_path):
    folder = _copy(demo_index if source == "demo" else small_index, tmp_path / "ix")
    CorpusIndex.open(folder)  # whole: it opens
    path = _damage(folder, kind)
    with pytest.raises(IndexDamaged) as err:
        CorpusIndex.open(folder)
    assert _one_line(err.value) == (f"{path} does not match its checksum: the index is damaged; rebuild it "
                                    f"(python -m core index build ... --out {folder})")


@pytest.mark.parametrize("kind", DAMAGE)
@pytest.mark.parametrize("source", ["demo", "small"])
def test_structural_checks_catch_damage_without_checksums(kind, source, demo_index, small_index, tmp_path):
    """A prebuilt-style index (no manifest, no checksums): the checks of every open find the damage."""
    folder = _copy(demo_index if source == "demo" else small_index, tmp_path / "ix", prebuilt=True)
    whole = CorpusIndex.open(folder)
    assert whole.manifest == {}
    _damage(folder, kind)
    with pytest.raises(IndexDamaged) as err:
        CorpusIndex.open(folder)
    text = _one_line(err.value)
    assert text.startswith(str(folder / FILE_OF[kind]) + " ") and "the index is damaged; rebuild it" in text


def test_structural_checks_pass_whole_indexes(demo_index, small_index, tmp_path):
    """No false alarms: every sampled pair of the real suffix arrays is in order, at every sample seed."""
    from core.index.shards import Shard, shard_paths

    for folder in (demo_index, small_index):
        shard = Shard(*shard_paths(folder)[0], "u16")
        for seed in range(5):
            verify.check_structure(shard, fmt.read_manifest(folder)["vocab_size"], pairs=1 << 14, seed=seed)


def test_a_damaged_metadata_line_says_the_index_is_damaged(small_index, tmp_path):
    """A prebuilt-style index has no checksums; a metadata line that is not JSON is refused when a document's
    id is read, naming the file and the document, in one line (never a JSONDecodeError)."""
    from core.index.shards import Shard, shard_paths

    folder = _copy(small_index, tmp_path / "ix", prebuilt=True)
    index = CorpusIndex.open(folder)
    assert index.doc_id(5) == Shard(*shard_paths(folder)[0], "u16").meta_of(5)["doc_id"]
    shard = Shard(*shard_paths(folder)[0], "u16")
    start = int(shard.metaoff[5])
    data = bytearray((folder / "metadata.0").read_bytes())
    data[start:start + 2] = b"{{"  # the line of document 5 no longer parses
    (folder / "metadata.0").write_bytes(bytes(data))
    with pytest.raises(IndexDamaged) as err:
        CorpusIndex.open(folder).doc_id(5)
    text = _one_line(err.value)
    assert str(folder / "metadata.0") in text and "document 5" in text and "rebuild it" in text
    assert CorpusIndex.open(folder).doc_id(4) == index.doc_id(4)  # its neighbours still read


def test_swapped_suffix_array_entries_are_found(small_index, tmp_path):
    """Two adjacent suffix-array entries swapped (sizes, ranges and alignment all still fine) break the order."""
    folder = _copy(small_index, tmp_path / "ix", prebuilt=True)
    table = folder / "table.0"
    ptr = fmt.ptr_size_for((folder / "tokenized.0").stat().st_size)
    raw = bytearray(table.read_bytes())
    n = len(raw) // ptr
    for r in range(0, n - 1, 2):  # swap every pair: any sampled pair then sees the damage
        a, b = raw[r * ptr:(r + 1) * ptr], raw[(r + 1) * ptr:(r + 2) * ptr]
        raw[r * ptr:(r + 1) * ptr], raw[(r + 1) * ptr:(r + 2) * ptr] = b, a
    table.write_bytes(bytes(raw))
    with pytest.raises(IndexDamaged, match=r"table\.0 is out of order at ranks"):
        CorpusIndex.open(folder)


def test_a_sharded_index_checks_every_shard(cache_root, tmp_path):
    from core.index.sharded import build_sharded_index_from_ids

    rng = np.random.default_rng(1)
    docs = [(f"d{i}", rng.integers(1, 50, size=40), {}) for i in range(60)]
    build_sharded_index_from_ids(iter(docs), tmp_path / "sh", vocab_size=50, eos_token_id=0, shard_tokens=600,
                                 parallel=1)
    shards = sorted(p for p in (tmp_path / "sh").iterdir() if p.is_dir())
    assert len(shards) >= 3
    path = _damage(shards[-1], "table_ff")
    with pytest.raises(IndexDamaged, match="does not match its checksum") as err:
        CorpusIndex.open(tmp_path / "sh")
    assert str(path) in str(err.value)


# -- the record of verified files: a warm open hashes nothing ------------------------------------------
def _age(folder: Path, seconds: float = 60) -> None:
    """Files written long enough ago that their mtime can be trusted (not 'racy', see verify.RACY_NS)."""
    past = time.time() - seconds
    for p in folder.iterdir():
        os.utime(p, (past, past))


def _count_hashes(monkeypatch) -> list[str]:
    hashed: list[str] = []
    real = verify.hash_file
    monkeypatch.setattr(verify, "hash_file", lambda path, algo=None: hashed.append(Path(path).name) or real(path, algo))
    return hashed


def test_the_record_stays_within_its_limit_forgetting_removed_folders_first(small_index, tmp_path, monkeypatch):
    """The record of verified files holds at most RECORD_MAX files: over it, files of folders that are gone are
    dropped first, then the longest-checked; a folder still remembered opens without hashing."""
    import json

    monkeypatch.setenv("PROPME_CACHE_DIR", str(tmp_path / "cache"))
    per_folder = len(fmt.read_manifest(small_index)["checksums"]["files"])
    monkeypatch.setattr(verify, "RECORD_MAX", 2 * per_folder)
    folders = [_copy(small_index, tmp_path / name) for name in ("a", "b", "c")]
    for f in folders:
        _age(f)
    CorpusIndex.open(folders[0])
    CorpusIndex.open(folders[1])
    shutil.rmtree(folders[0])  # gone, but still in the record (pruning waits until the record is full)
    assert len(json.loads(verify._record_path().read_text())) == 2 * per_folder
    CorpusIndex.open(folders[2])  # over the limit: a's files go, b's and c's stay
    kept = json.loads(verify._record_path().read_text())
    assert len(kept) == 2 * per_folder
    assert {Path(k).parent.name for k in kept} == {"b", "c"}
    hashed = _count_hashes(monkeypatch)
    CorpusIndex.open(folders[1])
    assert hashed == []


def test_warm_open_is_instant_and_a_changed_file_is_checked_again(demo_index, tmp_path, monkeypatch):
    folder = _copy(demo_index, tmp_path / "ix")
    _age(folder)
    hashed = _count_hashes(monkeypatch)
    CorpusIndex.open(folder)
    assert sorted(hashed) == sorted(fmt.read_manifest(folder)["checksums"]["files"])  # first use: all of them
    hashed.clear()
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        CorpusIndex.open(folder)
        times.append(time.perf_counter() - t0)
    assert hashed == []
    assert min(times) < 0.1, times
    # a new mtime: that file (only) is hashed again
    os.utime(folder / "offset.0", None)
    CorpusIndex.open(folder)
    assert hashed == ["offset.0"]
    hashed.clear()
    _age(folder)  # (offset.0 was "racy": changed just before its check; old again, it is hashed once more)
    CorpusIndex.open(folder)
    hashed.clear()
    # the same bytes under a new inode (and an old mtime): hashed again, and fine
    shutil.copy2(folder / "table.0", tmp_path / "t")
    os.replace(tmp_path / "t", folder / "table.0")
    CorpusIndex.open(folder)
    assert hashed == ["table.0"]
    # damage after a warm open is found: the write changes the mtime
    _damage(folder, "table_random")
    with pytest.raises(IndexDamaged, match="table.0 does not match its checksum"):
        CorpusIndex.open(folder)


def test_a_file_changed_within_the_clock_tick_of_its_check_is_checked_again(demo_index, tmp_path, monkeypatch):
    """Racy files (modified just before they were checked) are never trusted from the record."""
    monkeypatch.setattr(verify, "RACY_NS", 600 * 10**9)  # "just before": however loaded the machine is
    folder = _copy(demo_index, tmp_path / "ix")
    for p in folder.iterdir():
        os.utime(p, None)  # just written
    CorpusIndex.open(folder)
    hashed = _count_hashes(monkeypatch)
    CorpusIndex.open(folder)
    assert len(hashed) == len(fmt.read_manifest(folder)["checksums"]["files"])


def test_verify_command_checks_in_full_and_ignores_the_record(demo_index, tmp_path, capsys):
    from core.cli import main

    folder = _copy(demo_index, tmp_path / "ix")
    _age(folder)
    assert main(["index", "verify", str(folder)]) == 0
    assert "7 files" in capsys.readouterr().out
    CorpusIndex.open(folder)  # now remembered as verified
    tokens = folder / "tokenized.0"
    st = tokens.stat()
    ids = np.fromfile(tokens, dtype="<u2")
    at = int(np.flatnonzero(ids[1000:] != 0xFFFF)[0]) + 1000  # one token inside a document
    ids[at] = 7 if ids[at] != 7 else 8
    with open(tokens, "r+b") as f:  # in place: same inode and size; then the old mtime back
        f.seek(2 * at)
        f.write(ids[at:at + 1].tobytes())
    os.utime(tokens, ns=(st.st_atime_ns, st.st_mtime_ns))
    CorpusIndex.open(folder)  # a warm open trusts the record and its sample misses one token
    assert main(["index", "verify", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {tokens} does not match its checksum: the index is damaged; rebuild it " \
                  f"(python -m core index build ... --out {folder})"


# -- refused before the model loads: CLI, ensure_index, app -------------------------------------------
def _experiment(tmp_path: Path, index: Path) -> Path:
    demo = ROOT / "demo"
    cfg = tmp_path / "exp.toml"
    cfg.write_text(f'''name = "damaged"
output_dir = "{tmp_path / 'results'}"
index_dirs = ["{index}"]
cache_dir = "{tmp_path / 'cache'}"
[model]
name_or_path = "{demo / 'model'}"
device = "cpu"
dtype = "float32"
[decoding]
max_new_tokens = 4
[[settings]]
name = "prefix"
n_prompts = 2
''')
    return cfg


@pytest.mark.parametrize("kind", DAMAGE)
def test_cli_run_refuses_before_the_model_loads(kind, demo_index, tmp_path, capsys, monkeypatch):
    from core.generation import model

    def no_model(*a, **k):
        raise AssertionError("the model was loaded from a damaged index's run")

    monkeypatch.setattr(model, "load_model", no_model)
    folder = _copy(demo_index, tmp_path / "ix")
    path = _damage(folder, kind)
    from core.cli import main

    assert main(["run", str(_experiment(tmp_path, folder))]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and "load-model" not in err
    assert [x for x in err.splitlines() if x.startswith("error")] == [err.splitlines()[-1]]
    assert err.splitlines()[-1] == f"error: {path} does not match its checksum: the index is damaged; rebuild it " \
                  f"(python -m core index build ... --out {folder})"
    assert not (tmp_path / "results" / "damaged").exists()


def test_cli_run_exit_2_one_line_in_a_real_process(demo_index, tmp_path):
    folder = _copy(demo_index, tmp_path / "ix")
    _damage(folder, "offset_tail")
    env = {**os.environ, "PROPME_CACHE_DIR": str(tmp_path / "c")}
    res = subprocess.run([sys.executable, "-m", "core", "run", str(_experiment(tmp_path, folder))], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, env=env, check=False)
    assert res.returncode == 2, res.stderr
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert "Traceback" not in res.stderr and "load-model" not in res.stderr
    assert [x for x in lines if x.startswith("error")] == lines[-1:]
    assert lines[-1:] == [(f"error: {folder / 'offset.0'} does not match its checksum: the index is damaged; rebuild it "
                     f"(python -m core index build ... --out {folder})")]


def test_ensure_index_refuses_a_damaged_index_instead_of_rebuilding(demo_index, tmp_path):
    from core.runs.demo import ensure_demo_index

    folder = _copy(demo_index, tmp_path / "ix")
    path = _damage(folder, "tokenized_region")
    before = (folder / fmt.MANIFEST).read_bytes()
    with pytest.raises(IndexDamaged, match="tokenized.0 does not match its checksum"):
        ensure_demo_index(index_dir=folder)
    assert (folder / fmt.MANIFEST).read_bytes() == before and path.exists()


def test_app_run_refuses_a_damaged_index_folder_in_one_line(demo_index, tmp_path, monkeypatch):
    """The Run page's work (app.runner.execute, what its background process runs): a failed job whose
    message is the one line naming the file; no model is loaded."""
    from app import run_worker, runner
    from core.config.file import load_experiment
    from core.generation import model

    monkeypatch.setattr(model, "load_model", lambda *a, **k: pytest.fail("model loaded"))
    folder = _copy(demo_index, tmp_path / "ix")
    _damage(folder, "table_ff")
    cfg = load_experiment(_experiment(tmp_path, folder))
    job = run_worker.start(lambda p: runner.execute(cfg, runner.CorpusChoice("index", str(folder)), None, p),
                           run_worker.ProgressEvent("starting", 0, 1))
    run_worker.shown(job)
    status = run_worker.wait(job, 120)
    assert status.state == run_worker.FAILED
    assert status.message == (f"{folder / 'table.0'} does not match its checksum: the index is damaged; rebuild it "
                              f"(python -m core index build ... --out {folder})")


def test_app_tracing_refuses_a_damaged_index(demo_index, tmp_path):
    """Re-tracing from the app opens the run's index folders through app.cached: refused, one line."""
    from app import retrace
    from core.runs.demo import demo_results_dir
    from core.runs.results import load_results

    run = load_results(demo_results_dir())
    folder = _copy(demo_index, tmp_path / "ix")
    _damage(folder, "offset_tail")
    index_meta = run.manifest.index
    import dataclasses

    moved = dataclasses.replace(run, path=str(tmp_path / "elsewhere"),
                                manifest=dataclasses.replace(run.manifest, index=dataclasses.replace(
                                    index_meta, dirs=(str(folder),))))
    with pytest.raises(IndexDamaged, match=r"offset\.0 does not match its checksum"):
        retrace.run_index(moved)


# -- item 12: abandoned temporary build folders --------------------------------------------------------
def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_next_build_removes_folders_of_killed_builds(tmp_path):
    from core.index.ensure import ensure_index
    from tests.fixtures_index import as_docs, train_tiny_tokenizer

    docs = as_docs(["one two three four five six"] * 3 + ["seven eight nine ten"])
    tok = train_tiny_tokenizer([d.text for d in docs], 300, tmp_path / "tok")
    target = tmp_path / "ix"
    killed = tmp_path / f"ix.tmp-{_dead_pid()}"  # a build killed mid-way: marker, half the files
    killed.mkdir()
    (killed / fmt.BUILDING).write_text("build in progress\n")
    (killed / "tokenized.0").write_bytes(b"\0" * 100)
    running = tmp_path / f"ix.tmp-{os.getppid()}"  # a live process's build: left alone
    running.mkdir()
    (running / fmt.BUILDING).write_text("build in progress\n")
    other = tmp_path / f"ixx.tmp-{_dead_pid()}"  # another index's folder: left alone
    other.mkdir()
    (other / fmt.BUILDING).write_text("x")
    ensure_index(docs, tok, target)
    assert not killed.exists()
    assert running.exists() and other.exists()
    assert CorpusIndex.open(target).num_docs == 4
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("ix.tmp-")) == [running.name]


def test_an_unfinished_build_is_not_damage(tmp_path):
    """A build marker still means 'not built' (rebuilt by ensure_index), not 'damaged'."""
    folder = tmp_path / "ix"
    folder.mkdir()
    (folder / fmt.BUILDING).write_text("x")
    with pytest.raises(IndexNotBuilt):
        CorpusIndex.open(folder)


def test_large_offset_tables_are_sampled_and_still_checked_at_both_ends(cache_root, tmp_path, monkeypatch):
    """Past FULL_OFFSETS entries the offsets are checked at both ends and in windows, separators in a
    sample: a whole index passes at every seed, damage at the tail is always found."""
    from core.index.shards import Shard, shard_paths
    from tests.fixtures_index import build_ids_index

    monkeypatch.setattr(verify, "FULL_OFFSETS", 2048)
    rng = np.random.default_rng(5)
    lists = [rng.integers(1, 40, size=int(rng.integers(1, 5))).tolist() for _ in range(12000)]
    folder = tmp_path / "many"
    build_ids_index(lists, folder, vocab_size=40)
    _copy(folder, tmp_path / "pre", prebuilt=True)
    shard = Shard(*shard_paths(tmp_path / "pre")[0], "u16")
    for seed in range(5):
        verify.check_structure(shard, 40, seed=seed)
    offsets = np.fromfile(tmp_path / "pre" / "offset.0", dtype="<u8")
    tokens = np.fromfile(tmp_path / "pre" / "tokenized.0", dtype="<u2")
    tokens[int(offsets[-7]) // 2] = 3  # the separator of the 7th-last document
    tokens.tofile(tmp_path / "pre" / "tokenized.0")
    with pytest.raises(IndexDamaged, match=r"tokenized\.0 holds no document separator .* document 11993 starts"):
        verify.check_structure(Shard(*shard_paths(tmp_path / "pre")[0], "u16"), 40)
    offsets[-3] = offsets[-4]  # offsets that stop rising near the end
    offsets.tofile(tmp_path / "pre" / "offset.0")
    with pytest.raises(IndexDamaged, match=r"offset\.0 does not rise at entry 11997"):
        verify.check_structure(Shard(*shard_paths(tmp_path / "pre")[0], "u16"), 40)
