"""Tracing on every core: completions traced in worker processes, results identical to one process.

Workers are fresh interpreters (``python -c "...serve()"``: no ``fork`` of a possibly multi-threaded
parent such as the Streamlit app, and no re-import of the parent's ``__main__`` as multiprocessing's
spawn and forkserver do). Each opens the index folders itself: token files and suffix arrays are
memory-mapped, so all workers share one copy in the page cache and nothing of the index is pickled.
Of the tokenizer a worker gets the Rust backend (fast tokenizers; no transformers import) or a pickle.
Chunks of completions go over the worker's stdin and TraceResults come back pickled on its stdout.
The pool of the last (index, tokenizer, workers) is kept, so repeated calls (a run traces chunk by
chunk, the app re-traces) pay the start-up (about a second) once.

Results do not depend on the number of workers: every random choice of tracing is seeded by the
span's tokens and the run seed (:func:`core.tracing.windows.occurrence_seed`), never by the order of
work, and the caches of :class:`core.tracing.trace._Tracer` only remember pure results.
"""
from __future__ import annotations

import atexit
import logging
import math
import os
import pickle
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

MIN_CHUNK = 8  # completions per task: fewer and the vectorised span search loses its batching
MAX_CHUNK = 128  # at most: many tasks balance the workers and report progress on a long run


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    count = getattr(os, "process_cpu_count", None)  # Python >= 3.13
    if count is not None:
        return max(1, count() or 1)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int) -> int:
    """``TraceConfig.workers``: 0 means every available core.

    >>> resolve_workers(3)
    3
    >>> resolve_workers(0) == available_cores()
    True
    """
    return available_cores() if workers == 0 else workers


def plan_chunks(n: int, workers: int) -> list[tuple[int, int]]:
    """[start, end) ranges of ``n`` completions for ``workers`` processes; one range when it is not
    worth a second process (fewer than 2 * MIN_CHUNK completions, or one worker). Chunks are as large
    as the work allows (one per worker, at most MAX_CHUNK): each is traced in batches whose span and
    document lookups are vectorised together, so small chunks cost more per completion.

    >>> plan_chunks(10, 4)
    [(0, 10)]
    >>> plan_chunks(100, 2)
    [(0, 50), (50, 100)]
    >>> len(plan_chunks(1000, 2)), plan_chunks(1000, 2)[-1]
    (8, (896, 1000))
    """
    if workers <= 1 or n < 2 * MIN_CHUNK:
        return [(0, n)] if n else []
    size = min(MAX_CHUNK, max(MIN_CHUNK, math.ceil(n / workers)))
    return [(i, min(n, i + size)) for i in range(0, n, size)]


# ---- worker side ---------------------------------------------------------------------------------
_STATE: dict = {}
class FastBackend:
    """All that tracing uses of a fast tokenizer (:func:`core.index.tokenizer.fast_backend`): its Rust
    ``tokenizers.Tokenizer``, which pickles without importing transformers (seconds per worker)."""

    is_fast = True

    def __init__(self, backend):
        self.backend_tokenizer = backend


def worker_tokenizer(tokenizer):
    """What a worker gets of ``tokenizer``: the Rust backend of a fast one, else the tokenizer itself."""
    from core.index.tokenizer import fast_backend

    backend = fast_backend(tokenizer)
    return tokenizer if backend is None else FastBackend(backend)


def _init_worker(dirs: list[str], open_kwargs: dict, tokenizer) -> None:
    from core.index.corpus_index import CorpusIndex

    _STATE["index"] = CorpusIndex.open(dirs, **open_kwargs)
    _STATE["tokenizer"] = tokenizer
    _STATE["tracer"] = None


def worker_state() -> dict:
    """This worker's opened index, tokenizer and kept tracer (set up by the "init" command)."""
    return _STATE


def serve(trace_chunk: Callable[..., list]) -> None:
    """A worker's main loop: read (command, args) pickles on stdin until it closes, answer each with
    ("ok", value) or ("error", exception) on the original stdout. "trace" calls ``trace_chunk(*args)``
    (the tracing module's entry point hands it in: this module does not import the tracer)."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print must not corrupt the answers
    stdin = sys.stdin.buffer
    while True:
        try:
            command, args = pickle.load(stdin)
        except EOFError:
            return
        try:
            value = _init_worker(*args) if command == "init" else trace_chunk(*args)
            answer = ("ok", value)
        except Exception as e:  # noqa: BLE001 - sent back and raised in the parent, as one process would
            answer = ("error", e)
        pickle.dump(answer, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()


# ---- parent side ---------------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[2]  # the folder holding the core package


class WorkerDied(RuntimeError):
    """A worker process ended or its pipe broke (the caller then traces in its own process)."""


class _Worker:
    def __init__(self, entry: str, init_args: tuple):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        env["TOKENIZERS_PARALLELISM"] = "false"  # one core per worker
        module, func = entry.split(":")
        self.proc = subprocess.Popen([sys.executable, "-c", f"from {module} import {func}; {func}()"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.lock = threading.Lock()
        self._send(("init", init_args))
        self._initialised = False  # its answer is read before the first task's (start-up overlaps)

    def _send(self, msg) -> None:
        try:
            pickle.dump(msg, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise WorkerDied(f"tracing worker {self.proc.pid} is gone: {e}") from e

    def _answer(self):
        try:
            status, value = pickle.load(self.proc.stdout)
        except (EOFError, OSError, pickle.UnpicklingError) as e:
            raise WorkerDied(f"tracing worker {self.proc.pid} ended (exit {self.proc.poll()})") from e
        if status == "error":
            raise value
        return value

    def call(self, msg):
        with self.lock:
            self._send(msg)
            if not self._initialised:
                try:
                    self._answer()
                except WorkerDied:
                    raise
                except Exception as e:  # the worker cannot trace: the caller falls back
                    pickle.load(self.proc.stdout)  # the task's answer (an error as well)
                    raise WorkerDied(f"tracing worker {self.proc.pid} could not start: {e!r}") from e
                self._initialised = True
            return self._answer()

    def close(self) -> None:
        try:
            self.proc.stdin.close()  # the worker's loop ends at EOF
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


class _Pool:
    def __init__(self, key: tuple, workers: list[_Worker]):
        self.key, self.workers = key, workers


_POOL: _Pool | None = None
_POOL_LOCK = threading.Lock()


def shutdown() -> None:
    """Stop the worker processes (the next parallel trace starts new ones)."""
    global _POOL
    with _POOL_LOCK:
        pool, _POOL = _POOL, None
    for w in pool.workers if pool else []:
        w.close()


atexit.register(shutdown)


def _pool_for(index, tokenizer, workers: int, entry: str) -> list[_Worker]:
    global _POOL
    key = (tuple(str(d) for d in index.dirs), index.fingerprint, id(tokenizer), len(tokenizer), workers, entry)
    with _POOL_LOCK:
        if _POOL is not None and _POOL.key == key:
            return _POOL.workers
    shutdown()
    open_kwargs = {"eos_token_id": index.eos_token_id, "vocab_size": index.vocab_size,
                   "token_dtype": index.token_dtype}
    init = ([str(d) for d in index.dirs], open_kwargs, worker_tokenizer(tokenizer))
    pool = _Pool(key, [_Worker(entry, init) for _ in range(workers)])
    with _POOL_LOCK:
        _POOL = pool
    return pool.workers


def can_run(index) -> bool:
    """Only a real :class:`~core.index.corpus_index.CorpusIndex` can be reopened by a worker (a
    wrapper or a test double is traced in this process)."""
    from core.index.corpus_index import CorpusIndex

    return type(index) is CorpusIndex


def trace_parallel(index, tokenizer, cfg, nvr, work: Sequence[tuple], workers: int,
                   on_done: Callable[[int], None], entry: str) -> list | None:
    """TraceResults of ``work`` = [(key, text, ids, bounds)] in order, traced by ``workers`` processes
    started with ``entry`` ("module:function", which calls :func:`serve`); ``on_done(n)`` (in this
    thread) after every finished chunk. An error of tracing is raised as in one process. None when a
    worker died: the caller then traces in its own process (nothing lost)."""
    chunks = plan_chunks(len(work), workers)
    pool = _pool_for(index, tokenizer, workers, entry)
    todo: queue.SimpleQueue = queue.SimpleQueue()
    for i in range(len(chunks)):
        todo.put(i)
    done: queue.SimpleQueue = queue.SimpleQueue()
    stop = threading.Event()

    def run(worker: _Worker) -> None:
        while not stop.is_set():
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            a, b = chunks[i]
            try:
                done.put((i, True, worker.call(("trace", (cfg, nvr, list(work[a:b]))))))
            except BaseException as e:  # noqa: BLE001 - handed to the calling thread
                done.put((i, False, e))
                return

    threads = [threading.Thread(target=run, args=(w,), daemon=True) for w in pool]
    for t in threads:
        t.start()
    out: list = [None] * len(work)
    try:
        for _ in range(len(chunks)):
            i, ok, value = done.get()
            if not ok:
                raise value
            a, b = chunks[i]
            out[a:b] = value
            on_done(b - a)
    except WorkerDied as e:
        stop.set()
        log.warning("%s; tracing in this process instead", e)
        shutdown()
        return None
    except BaseException:  # an error of tracing, or Cancelled from the progress callback
        stop.set()
        raise
    return out
