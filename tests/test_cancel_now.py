"""Cancel ends a run in a process at once (issue 21 item 8, issue 23 item 1): the Cancel call itself kills
the run's process group and records "cancelled" before it returns. That is safe because the result cache
commits each batch in one SQLite transaction: a writer killed in the middle of a batch loses that batch
only, and the cache reopens intact (checked here with a real kill -9 in the middle of a real write)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from app import run_worker
from core.progress import ProgressEvent
from core.runs.cache import ResultCache
from tests.test_trust_worker import _gone, _start_spinner, _wait_file

ROOT = Path(__file__).resolve().parents[1]
BATCH = 200

WRITER = """
import sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from core.runs.cache import ResultCache

real = ResultCache._put_rows
def put_rows(self, table, rows, batch=[0]):
    batch[0] += 1
    def rows_then_stall():  # the real transaction, stalled halfway through the third batch's inserts
        for i, row in enumerate(rows):
            if batch[0] == 3 and i == len(rows) // 2:
                Path({marker!r}).write_text(str(i))
                time.sleep(3600)
            yield row
    real(self, table, rows_then_stall())
ResultCache._put_rows = put_rows

cache = ResultCache({db!r})
for b in range(5):
    cache.put_many("generations", [(f"k{{b}}-{{i}}", {{"batch": b, "i": i, "text": "x" * 200}}) for i in range({n})])
"""


def test_a_writer_killed_mid_batch_loses_that_batch_only_and_the_cache_reopens(tmp_path):
    db, marker = tmp_path / "cache.sqlite", tmp_path / "mid-write"
    child = subprocess.Popen([sys.executable, "-c", WRITER.format(root=str(ROOT), marker=str(marker), db=str(db),
                                                                 n=BATCH)], cwd=ROOT)
    try:
        assert _wait_file(marker) == str(BATCH // 2)  # inside the third batch's open transaction
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    finally:
        child.kill()
    cache = ResultCache(db)
    assert cache.size_report()["tables"]["generations"]["entries"] == 2 * BATCH  # batches 0 and 1, none of 2
    keys = [f"k{b}-{i}" for b in range(3) for i in range(BATCH)]
    got = cache.get_many("generations", keys)
    assert sorted(got) == sorted(keys[:2 * BATCH]) and cache.corrupt_entries == 0
    assert all(got[f"k{b}-{i}"] == {"batch": b, "i": i, "text": "x" * 200} for b in range(2) for i in range(BATCH))
    cache.put_many("generations", [("after", {"ok": True})])  # the lock the killed writer held is free
    assert cache.get_many("generations", ["after"]) == {"after": {"ok": True}}


def test_cancel_records_cancelled_before_it_returns_and_the_group_is_gone(tmp_path):
    """A run busy in Python between events, with a child of its own: no waiting for its next event."""
    job, worker, grandchild = _start_spinner(tmp_path)
    t0 = time.monotonic()
    assert run_worker.cancel(job)
    took = time.monotonic() - t0
    s = run_worker.job_status(job)  # no wait: already recorded
    assert s.state == run_worker.CANCELLED and "cancelled during load-model" in s.message, s
    assert _gone(worker) and _gone(grandchild)
    assert took < run_worker.CANCEL_WAIT_S, took  # the reader thread recorded it, not the fallback
    assert not run_worker.cancel(job)
    print(f"cancel took {took:.3f} s")


def test_cancel_before_the_process_started_never_starts_it(tmp_path):
    from tests import fixtures_worker

    pidfile = tmp_path / "pids"
    job = run_worker.start(run_worker.ProcessWork(fixtures_worker.spin, (str(pidfile), False)),
                           ProgressEvent("starting", 0, 1))
    assert run_worker.cancel(job)  # the page has not drawn its status yet: the process is not started
    run_worker.shown(job)
    s = run_worker.wait(job, 10)
    assert s.state == run_worker.CANCELLED and "cancelled before it started" in s.message, s
    time.sleep(0.5)
    assert not pidfile.exists()
