"""Progress reporting for long steps (index build, generation, tracing, scoring).

Long functions take ``progress: ProgressFn | None`` and call it with a :class:`ProgressEvent`.
The CLI renders events as a text bar, the app as ``st.progress``; tests collect them in a list.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressEvent:
    stage: str  # e.g. "tokenize", "suffix-array", "generate", "trace", "score"
    done: int  # units finished so far
    total: int  # units in all (0 when unknown)
    unit: str = "items"  # what a unit is: documents, prompts, tokens, completions
    rate: float | None = None  # units (or tokens, see message) per second
    eta_s: float | None = None  # seconds left, when known
    message: str = ""

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0


ProgressFn = Callable[[ProgressEvent], None]


def rated_event(stage: str, done: int, total: int, unit: str, elapsed_s: float, message: str = "") -> ProgressEvent:
    """An event whose rate is ``done / elapsed_s`` in the event's own unit and whose ETA is
    ``(total - done) / rate``, so the two always agree (tokens/s and the like go in ``message``).

    >>> e = rated_event("generate", 16, 60, "generations", 4.0, "200 tokens/s")
    >>> e.rate, e.eta_s
    (4.0, 11.0)
    >>> rated_event("generate", 0, 60, "generations", 0.0).eta_s is None
    True
    """
    rate = done / elapsed_s if elapsed_s > 0 and done else None
    eta = (total - done) / rate if rate and total else None
    return ProgressEvent(stage, done, total, unit, rate, eta, message)


class Cancelled(Exception):
    """Raised by a progress callback to stop a long step; work done so far stays cached."""


class Tracker:
    """Turns (done, total) updates into events with a rate and an ETA.

    >>> events = []
    >>> t = Tracker("trace", 4, events.append, unit="completions")
    >>> t.advance(2); t.advance(2)
    >>> [e.done for e in events], events[-1].fraction
    ([2, 4], 1.0)
    """

    def __init__(self, stage: str, total: int, progress: ProgressFn | None, unit: str = "items"):
        self.stage, self.total, self.progress, self.unit = stage, total, progress, unit
        self.done = 0
        self._t0 = time.perf_counter()

    def advance(self, n: int = 1, message: str = "") -> None:
        self.done += n
        if self.progress is None:
            return
        elapsed = time.perf_counter() - self._t0
        rate = self.done / elapsed if elapsed > 0 else None
        eta = (self.total - self.done) / rate if rate and self.total else None
        self.progress(ProgressEvent(self.stage, self.done, self.total, self.unit, rate, eta, message))


class ChunkedStage:
    """One stage done in chunks whose own events count from 0 (e.g. ``trace_many`` called per chunk of
    completions): pass this as each chunk's ProgressFn and call :meth:`chunk_done` after each chunk; events
    are re-counted over the whole stage, with rate and ETA from the stage's start (:func:`rated_event`).

    >>> seen = []
    >>> stage = ChunkedStage(seen.append, 64)
    >>> stage(ProgressEvent("trace", 32, 32, "completions")); stage.chunk_done(32)
    >>> stage(ProgressEvent("trace", 16, 32, "completions"))
    >>> [(e.done, e.total) for e in seen]
    [(32, 64), (48, 64)]
    """

    def __init__(self, progress: ProgressFn | None, total: int):
        self.progress, self.total, self.before = progress, total, 0
        self._t0 = time.perf_counter()

    def __call__(self, e: ProgressEvent) -> None:
        if self.progress is not None:
            self.progress(rated_event(e.stage, self.before + e.done, self.total, e.unit,
                                      time.perf_counter() - self._t0, e.message))

    def chunk_done(self, n: int) -> None:
        self.before += n
