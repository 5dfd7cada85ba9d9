"""What the command line prints: every line made safe for a terminal first (:func:`say`, log lines), and
progress as a one-line text bar on stderr (:class:`TextProgress`)."""
from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from core.progress import ProgressEvent
from core.reports.text import terminal_text


def say(*parts: object, file: TextIO | None = None, end: str = "\n") -> None:
    """``print`` for every CLI output: the text is made safe for a terminal first."""
    print(terminal_text(" ".join(str(p) for p in parts)), file=file or sys.stdout, end=end)


class SafeFormatter(logging.Formatter):
    """Log lines on stderr are terminal-safe too (they carry paths, names and messages from files)."""

    def format(self, record: logging.LogRecord) -> str:
        return terminal_text(super().format(record))


class TextProgress:
    """Renders progress events as a one-line text bar on a stream (redrawn in place on a terminal)."""

    def __init__(self, stream: TextIO | None = None, width: int = 30, min_interval_s: float = 0.2):
        self.stream = stream or sys.stderr
        self.width, self.min_interval_s = width, min_interval_s
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._stage, self._last = None, 0.0

    def line(self, e: ProgressEvent) -> str:
        """The bar for one event.

        >>> TextProgress(width=10).line(ProgressEvent("trace", 5, 10, "completions", 2.5, 2.0))
        'trace        [#####.....]  5/10 completions  2.5/s  eta 2s'
        """
        bar = "#" * round(e.fraction * self.width) if e.total else ""
        text = f"{e.stage:<12} [{bar.ljust(self.width, '.')}]  {e.done}/{e.total or '?'} {e.unit}"
        if e.rate:
            text += f"  {e.rate:.3g}/s"
        if e.eta_s is not None:
            text += f"  eta {e.eta_s:.0f}s"
        return text + (f"  {e.message}" if e.message else "")

    def __call__(self, e: ProgressEvent) -> None:
        now = time.monotonic()
        finished = bool(e.total) and e.done >= e.total
        if e.stage == self._stage and not finished and now - self._last < self.min_interval_s:
            return
        if self._stage is not None and e.stage != self._stage and self.tty:
            self.stream.write("\n")
        self._stage, self._last = e.stage, now
        line = terminal_text(self.line(e))
        if self.tty:
            self.stream.write("\r" + line + ("\n" if finished else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
