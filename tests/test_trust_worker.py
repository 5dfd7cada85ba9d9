"""A run's worker process never outlives the server, and Cancel stops a run within 5 s wherever it is
(issue 21, item 8): model load, a generation batch, tracing; what was finished stays in the cache."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app import run_worker, runner
from core.config import DecodingConfig, ExperimentConfig, ModelConfig, SettingConfig, TraceConfig
from core.progress import ProgressEvent
from core.runs.demo import demo_model_dir

ROOT = Path(__file__).resolve().parents[1]
CANCEL_LIMIT_S = 5.0


def _gone(pid: int) -> bool:
    """No such process, or a zombie nobody reaped yet (it runs no more)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def _wait_file(path: Path, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    return path.read_text()


PARENT = """
import sys, time
sys.path.insert(0, {root!r})
from app import run_worker
from core.progress import ProgressEvent
from tests import fixtures_worker
job = run_worker.start(run_worker.ProcessWork(fixtures_worker.spin, ({pidfile!r}, True)), ProgressEvent("starting", 0, 1))
run_worker.shown(job)
time.sleep(600)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_worker_and_its_children_exit_when_the_server_is_killed(tmp_path):
    pidfile = tmp_path / "pids"
    parent = subprocess.Popen([sys.executable, "-c", PARENT.format(root=str(ROOT), pidfile=str(pidfile))], cwd=ROOT)
    try:
        worker, grandchild = map(int, _wait_file(pidfile).split())
        time.sleep(0.5)
        assert not _gone(worker) and not _gone(grandchild)  # both busy at full CPU
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        t0 = time.monotonic()
        while not (_gone(worker) and _gone(grandchild)):
            assert time.monotonic() - t0 < 5, "the run's worker outlived the server"
            time.sleep(0.05)
    finally:
        parent.kill()
        for pid in locals().get("worker", None), locals().get("grandchild", None):
            if pid and not _gone(pid):
                os.kill(pid, signal.SIGKILL)


def _start_spinner(tmp_path: Path) -> tuple[str, int, int]:
    """A job whose process spins in Python between events, with a child of its own, once it reached
    load-model: (job, worker pid, grandchild pid)."""
    from tests import fixtures_worker

    pidfile = tmp_path / "pids"
    job = run_worker.start(run_worker.ProcessWork(fixtures_worker.spin, (str(pidfile), True)),
                           ProgressEvent("starting", 0, 1))
    run_worker.shown(job)
    worker, grandchild = map(int, _wait_file(pidfile).split())
    _until_stage(job, "load-model")
    return job, worker, grandchild


def test_cancel_ends_a_worker_stuck_between_events(tmp_path):
    """A pure-Python loop that holds the GIL and never reports: Cancel still ends it (and its child)."""
    job, worker, grandchild = _start_spinner(tmp_path)
    t0 = time.monotonic()
    assert run_worker.cancel(job)
    s = run_worker.wait(job, 30)
    took = time.monotonic() - t0
    assert s.state == run_worker.CANCELLED and took < CANCEL_LIMIT_S, (s, took)
    assert "cancelled during load-model" in s.message
    deadline = time.monotonic() + 5
    while not (_gone(worker) and _gone(grandchild)):
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.fixture(scope="module")
def demo_ix(tmp_path_factory) -> Path:
    from core.runs.demo import ensure_demo_index

    out = tmp_path_factory.mktemp("demo") / "index"
    ensure_demo_index(index_dir=out)
    return out


def _cfg(tmp_path: Path, index: Path, n_prompts: int, batch: int, max_new: int) -> ExperimentConfig:
    return ExperimentConfig(
        name="cancel", model=ModelConfig(str(demo_model_dir()), device="cpu", dtype="float32"),
        index_dirs=(str(index),), settings=(SettingConfig("prefix", n_prompts=n_prompts),),
        decoding=DecodingConfig(max_new_tokens=max_new, batch_size=batch), trace=TraceConfig(workers=1),
        output_dir=str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"))


def _until_stage(job: str, stage: str, done: int = 0, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while True:
        s = run_worker.job_status(job)
        if any(e.stage == stage and e.done >= done for e in s.stages):
            return
        assert s.active, s.message
        assert time.monotonic() < deadline, f"never reached {stage}: {s}"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("stage,wait_for,done", [("load", "load-model", 0), ("generate", "generate", 4),
                                                 ("trace", "trace", 1)])
def test_cancel_stops_a_real_run_within_5_s_keeping_what_was_finished(stage, wait_for, done, demo_ix, tmp_path):
    from core.runs.cache import ResultCache
    from tests import fixtures_worker

    cfg = (_cfg(tmp_path, demo_ix, n_prompts=40, batch=40, max_new=2) if stage == "trace"  # 2 trace chunks
           else _cfg(tmp_path, demo_ix, n_prompts=8, batch=4, max_new=8))
    job = run_worker.start(run_worker.ProcessWork(fixtures_worker.slow_run,
                                                  (stage, cfg, runner.CorpusChoice("index", str(demo_ix)), None)),
                           ProgressEvent("starting", 0, 1))
    run_worker.shown(job)
    _until_stage(job, wait_for, done)
    if stage == "trace":  # the first chunk (32) traced (its cache write follows at once); the second is stuck
        _until_stage(job, "trace", 32)
        time.sleep(0.5)
    t0 = time.monotonic()
    assert run_worker.cancel(job)
    s = run_worker.wait(job, 30)
    took = time.monotonic() - t0
    assert s.state == run_worker.CANCELLED and took < CANCEL_LIMIT_S, (s.state, s.message, took)
    tables = ResultCache(cfg.cache_dir).size_report()["tables"]
    kept = (tables["generations"]["entries"], tables["traces"]["entries"])
    if stage == "load":
        assert kept == (0, 0) and "cancelled during load-model" in s.message
    elif stage == "generate":  # the first batch of 4 is in the cache, and the page says so
        assert kept == (4, 0) and "kept in the result cache: 4 of 8 completions, traces of 0" in s.message, s.message
    else:
        assert kept == (40, 32) and "kept in the result cache: 40 of 40 completions, traces of 32" in s.message, \
            s.message
