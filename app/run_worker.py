"""Runs of the Run page in the background: a run keeps going while its browser session visits other pages.

A job runs ``work(progress)`` (the Run page's experiment, see :func:`app.runner.plan`) in a process of its own
(:class:`ProcessWork`: corpus loading, tokenizing and prompt building are Python that would hold the
server's GIL and delay every page, the run's own status included), or in a thread for light work.
Its state lives here, in a module-level registry guarded by a lock, not in the page script: the page
keeps only the job id (in ``st.session_state[JOB_KEY]``, so other sessions never see it; the Run page's
URL carries it too, so a reload of that page finds the job again) and polls :func:`job_status`. The progress callback records the latest :class:`core.progress.ProgressEvent` per stage
and raises :class:`core.progress.Cancelled` once :func:`cancel` was called, so the run stops at its next
event with its finished work in the result cache; :func:`kept_text` says how much that is. No Streamlit
here: the work never touches a session.

A run's process never outlives the server nor a Cancel (see :mod:`app.process_guard`): it asks the kernel
for SIGKILL when the server dies (Linux ``PR_SET_PDEATHSIG``) and a watchdog thread ends it and the
trace workers it started when its parent is gone. Cancel of a run in a process does not wait for the
run's next event (a model still loading, a long generation batch or trace chunk may be minutes away): the
Cancel call itself kills the whole process group at once, reads the events already sent, and records the
job as cancelled before it returns, so the page that clicked shows it at its next rerun. That is safe
because what the run finished is already in the result cache (generations batch by batch, traces chunk by
chunk, each one SQLite transaction committed before its progress event): a killed writer loses only its
open transaction (tests/test_cancel_now.py kills one mid-write and reopens the cache).
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from app import process_guard
from core.errors import PropMeError
from core.progress import Cancelled, ProgressEvent, ProgressFn
from core.runs.experiment import CACHE_STAGE
from core.runs.process_exit import describe_exit

log = logging.getLogger(__name__)

JOB_KEY = "propme_run_job"  # session state: the id of this session's latest job
SHOW_WAIT_S = 2.0  # a new job waits this long at most for its page to draw its status before it starts working
MAX_FINISHED = 64  # finished jobs kept for their sessions to read; older ones are forgotten
CANCEL_WAIT_S = 2.0  # Cancel waits this long for the job's reader thread to record the end, then records it itself
RUNNING, CANCELLING, DONE, CANCELLED, FAILED = "running", "cancelling", "done", "cancelled", "failed"


@dataclass(frozen=True)
class JobResult:
    path: str  # the results folder written
    completions: int
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobStatus:
    job_id: str
    state: str  # running | cancelling | done | cancelled | failed
    stages: tuple[ProgressEvent, ...]  # the latest event of each stage, in the order the stages began
    elapsed_s: float
    message: str  # done: where the results are; cancelled: what was kept; failed: the error
    result: JobResult | None = None

    @property
    def active(self) -> bool:
        return self.state in (RUNNING, CANCELLING)


def kept_text(stages: Mapping[str, ProgressEvent], cache: Mapping[str, ProgressEvent]) -> str:
    """What a stopped run left in the result cache, from its events.

    Generations are persisted batch by batch before each ``generate`` event, traces chunk by chunk
    (the ``cache`` events after each chunk).

    >>> gen = ProgressEvent("generate", 32, 280, "generations")
    >>> cache = {"generations": ProgressEvent("cache", 20, 300, "generations")}
    >>> kept_text({"generate": gen}, cache)
    'kept in the result cache: 52 of 300 completions, traces of 0'
    """
    g = cache.get("generations")
    if g is None:
        return "nothing new was kept in the result cache (the run stopped before generating)"
    made = stages["generate"].done if "generate" in stages else 0
    t = cache.get("traces")
    return (f"kept in the result cache: {min(g.done + made, g.total)} of {g.total} completions, "
            f"traces of {t.done if t else 0}")


class _Job:
    def __init__(self, job_id: str):
        self.id, self.lock, self.cancel = job_id, threading.Lock(), threading.Event()
        self.stages: dict[str, ProgressEvent] = {}
        self.cache: dict[str, ProgressEvent] = {}
        self.state, self.message, self.result = RUNNING, "", None
        self.t0, self.t1 = time.monotonic(), None
        self.shown = threading.Event()  # the page drew the job's status (the work starts then, or after SHOW_WAIT_S)
        self.in_process = False  # a ProcessWork job
        self.proc = None  # its process, once started
        self.ended = threading.Event()  # set by the first finish

    def record(self, e: ProgressEvent) -> None:
        with self.lock:
            if e.stage == CACHE_STAGE:
                self.cache[e.unit] = e
            else:
                self.stages[e.stage] = e

    def progress(self, e: ProgressEvent) -> None:
        self.record(e)  # first: a generate or cache event reports work already in the cache
        if self.cancel.is_set():
            raise Cancelled(f"cancelled during {e.stage} at {e.done}/{e.total} {e.unit}")

    def finish(self, state: str, message: str, result: JobResult | None = None) -> None:
        """Record the job's end; the first call wins (Cancel and the reader thread may both get here)."""
        with self.lock:
            if self.ended.is_set():
                return
            if state == CANCELLED:
                message = (f"Run {message}; {kept_text(self.stages, self.cache)}. Press Run again with the same "
                           "choices to resume from there.")
            elif state == DONE:
                message = f"Done: {result.completions} completions in {result.path}."
            self.state, self.message, self.result, self.t1 = state, message, result, time.monotonic()
            self.ended.set()

    def run(self, work: Callable[[ProgressFn], JobResult]) -> None:
        """In a thread of this process (light work, tests)."""
        self.shown.wait(SHOW_WAIT_S)
        self.finish(*_outcome(work, self.progress))

    def run_process(self, work: ProcessWork) -> None:
        """In a spawned process: its Python never holds this server's GIL; events come back through a queue."""
        self.shown.wait(SHOW_WAIT_S)
        if self.cancel.is_set():
            self.finish(CANCELLED, "cancelled before it started")
            return
        ctx = mp.get_context("spawn")
        events = ctx.Queue()
        proc = ctx.Process(target=_child, args=(work.target, work.args, events, self.cancel, os.getpid()),
                           daemon=True, name=f"propme-run-{self.id[:8]}")
        proc.start()
        self.proc = proc
        while True:
            if self.cancel.is_set() and not self.ended.is_set():
                process_guard.end_process_group(proc)  # usually done already by stop(); harmless twice
                self._drain(events)  # what it sent before it died: the cache events say what was kept
                self.finish(CANCELLED, f"cancelled during {self._stage_text()}")
            if self.ended.is_set():
                break
            try:
                kind, value = events.get(timeout=0.2)
            except queue.Empty:
                if proc.is_alive() or self.cancel.is_set():
                    continue
                try:  # the process ended: whatever it sent last may still be in the pipe
                    kind, value = events.get(timeout=2)
                except queue.Empty:
                    self.finish(FAILED, describe_exit(proc.exitcode))  # -9: out of memory, said so
                    break
            if kind == "event":
                self.record(value)
                continue
            self.finish(kind, *(value if kind == DONE else (value,)))
            break
        proc.join(timeout=30)

    def _drain(self, events) -> None:
        """Record the events a killed process had sent; its outcome too, if it got that far (done wins)."""
        while True:
            try:
                kind, value = events.get(timeout=0.05)
            except (queue.Empty, EOFError, OSError):
                return
            if kind == "event":
                self.record(value)
            else:
                self.finish(kind, *(value if kind == DONE else (value,)))

    def stop(self) -> None:
        """Cancel at once: a process run's whole group is killed now and the job recorded as cancelled
        before this returns; a run in a thread stops at its next progress event."""
        t0 = time.monotonic()
        self.cancel.set()
        if not self.in_process:
            return
        if self.proc is not None:
            process_guard.end_process_group(self.proc)
        else:  # not started yet: its thread, waiting for the page, records the cancel instead of starting it
            self.shown.set()
        killed = time.monotonic() - t0
        if not self.ended.wait(CANCEL_WAIT_S):  # the reader thread is starved: record it from here
            self.finish(CANCELLED, f"cancelled during {self._stage_text()}")
        log.info("cancel of job %s: process group killed in %.3f s, recorded as %s in %.3f s", self.id[:8], killed,
                 self.state, time.monotonic() - t0)

    def _stage_text(self) -> str:
        with self.lock:
            e = next(reversed(self.stages.values()), None)
        return f"{e.stage} at {e.done}/{e.total} {e.unit}" if e else "its start"

    def status(self) -> JobStatus:
        with self.lock:
            state = CANCELLING if self.state == RUNNING and self.cancel.is_set() else self.state
            end = self.t1 if self.t1 is not None else time.monotonic()
            return JobStatus(self.id, state, tuple(self.stages.values()), end - self.t0, self.message, self.result)


def _outcome(work, progress) -> tuple:
    """(state, message[, result]) of ``work(progress)``: done, cancelled, or failed with the error's words."""
    try:
        result = work(progress)
    except Cancelled as e:
        return CANCELLED, str(e)
    except PropMeError as e:
        return FAILED, str(e)
    except Exception as e:  # shown on the page (a worker has no page to raise into); logged in full
        log.exception("a run failed")
        return FAILED, f"unexpected error: {type(e).__name__}: {e}"
    return DONE, "", result


def _child(target, args, events, cancel, parent_pid: int | None = None) -> None:
    """A run's process: ``target(*args, progress)``; every event, then the outcome, goes to ``events``.
    It ends when ``parent_pid`` (the server) is gone (:func:`app.process_guard.die_with_parent`)."""
    if parent_pid is not None:
        process_guard.die_with_parent(parent_pid)
    def progress(e: ProgressEvent) -> None:
        events.put(("event", e))
        if cancel.is_set():
            raise Cancelled(f"cancelled during {e.stage} at {e.done}/{e.total} {e.unit}")

    state, message, *result = _outcome(lambda p: target(*args, p), progress)
    events.put((state, (message, result[0]) if result else message))


_JOBS: dict[str, _Job] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class ProcessWork:
    """Work for a process of its own: ``target(*args, progress) -> JobResult``, ``target`` a module-level
    function and ``args`` picklable (a run's Python-heavy steps would otherwise starve the server's threads)."""

    target: Callable
    args: tuple


def start(work: Callable[[ProgressFn], JobResult] | ProcessWork, first: ProgressEvent) -> str:
    """Run ``work(progress)``, a ProcessWork in a spawned process, any other callable in a thread; returns the
    job id. ``first`` is shown at once (before the work has done anything: e.g. "starting: loading model")."""
    job = _Job(uuid.uuid4().hex)
    job.stages[first.stage] = first
    if isinstance(work, ProcessWork):
        job.cancel, job.in_process = mp.get_context("spawn").Event(), True
    with _LOCK:
        finished = [j for j in _JOBS.values() if j.state not in (RUNNING,)]
        for old in sorted(finished, key=lambda j: j.t0)[:max(0, len(finished) - MAX_FINISHED + 1)]:
            del _JOBS[old.id]
        _JOBS[job.id] = job
    target = job.run_process if isinstance(work, ProcessWork) else job.run
    threading.Thread(target=target, args=(work,), name=f"propme-run-{job.id[:8]}", daemon=True).start()
    return job.id


def shown(job_id: str | None) -> None:
    """The page drew the job's status: its work may start (starting a process and loading a corpus take the
    CPU and the GIL, which would hold back the very status that says the run has begun)."""
    with _LOCK:
        job = _JOBS.get(job_id) if job_id else None
    if job is not None:
        job.shown.set()


def is_job_id(text: str) -> bool:
    """Whether ``text`` has the form of a job id (32 lowercase hex digits, as :func:`start` makes them)."""
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)


def job_status(job_id: str | None) -> JobStatus | None:
    """The job's status, or None for no job (or one forgotten)."""
    with _LOCK:
        job = _JOBS.get(job_id) if job_id else None
    return job.status() if job else None


def cancel(job_id: str | None) -> bool:
    """Stop the job (:meth:`_Job.stop`: a run in a process is ended and recorded as cancelled before this
    returns, one in a thread stops at its next progress event); False when there is no such running job."""
    with _LOCK:
        job = _JOBS.get(job_id) if job_id else None
    if job is None or job.state != RUNNING:
        return False
    job.stop()
    return True


def wait(job_id: str, timeout_s: float) -> JobStatus | None:
    """Poll until the job has finished or ``timeout_s`` passed (tests and scripts)."""
    deadline = time.monotonic() + timeout_s
    while (s := job_status(job_id)) is not None and s.active and time.monotonic() < deadline:
        time.sleep(0.05)
    return s
