"""Bounded input: how much of a corpus (or prompt) file is read before the reader stops.

A 3 MB ``.jsonl.zst`` can unpack to 100 GB of one line; a CSV can have a million columns. Without caps
such a file drives the process out of memory and the user learns only that it was killed. With them the
read stops at once with one :class:`~core.errors.CorpusError` line naming the file and the limit.

Defaults (each can be changed by an environment variable, or by ``python -m core index build`` flags):

=====================  ==========  ===============================  =================================
limit                  default     environment variable             what it bounds
=====================  ==========  ===============================  =================================
max_unpacked_bytes     1 GiB       PROPME_MAX_CORPUS_BYTES          bytes read from one file, after
                                                                    unpacking .gz/.zst
max_line_bytes         16 MiB      PROPME_MAX_LINE_BYTES            bytes of one JSONL line or CSV header
max_doc_bytes          16 MiB      PROPME_MAX_DOC_BYTES             UTF-8 bytes of one document's text
max_csv_columns        10,000      PROPME_MAX_CSV_COLUMNS           columns of a CSV file
=====================  ==========  ===============================  =================================
"""
from __future__ import annotations

import io
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from core.errors import ConfigError, CorpusError

ENV = {"max_unpacked_bytes": "PROPME_MAX_CORPUS_BYTES", "max_line_bytes": "PROPME_MAX_LINE_BYTES",
       "max_doc_bytes": "PROPME_MAX_DOC_BYTES", "max_csv_columns": "PROPME_MAX_CSV_COLUMNS"}


def size_text(n: int) -> str:
    """``16 MiB`` / ``1 GiB`` / ``123 bytes``: a limit in words."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n:,} bytes"


@dataclass(frozen=True)
class InputLimits:
    max_unpacked_bytes: int = 1 << 30
    max_line_bytes: int = 16 << 20
    max_doc_bytes: int = 16 << 20
    max_csv_columns: int = 10_000

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{f.name} ({ENV[f.name]}) must be a whole number of at least 1, got {value!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **override: int | None) -> InputLimits:
        """The defaults, changed by the environment variables of :data:`ENV`, then by ``override`` (not None)."""
        env = os.environ if environ is None else environ
        kw: dict[str, int] = {}
        for name, var in ENV.items():
            text = env.get(var, "").strip()
            if text:
                try:
                    kw[name] = int(text.replace("_", ""))
                except ValueError:
                    raise ConfigError(f"{var} = {text[:40]!r}: expected a whole number (bytes or columns)") from None
        kw.update({k: v for k, v in override.items() if v is not None})
        return cls(**kw)


def too_big(shown: str, what: str, limit_name: str, limit: int, unit: str = "bytes") -> CorpusError:
    """The one-line error for a limit reached while reading ``shown`` (the file as the user named it)."""
    amount = size_text(limit) if unit == "bytes" else f"{limit:,} {unit}"
    return CorpusError(f"{shown}: {what} is over the limit of {amount} ({limit_name}); the read stopped there. "
                       f"Split the file, or raise the limit with {ENV[limit_name]} (or the index build flag "
                       f"--{limit_name.replace('_', '-')})")


class CappedReader(io.RawIOBase):
    """A binary stream that raises :func:`too_big` once more than ``limit`` bytes were read from it."""

    def __init__(self, inner, limit: int, shown: str):
        super().__init__()
        self.inner, self.limit, self.shown, self.count = inner, limit, shown, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        view = memoryview(buffer)
        want = min(len(view), self.limit + 1 - self.count)
        if want <= 0:
            raise too_big(self.shown, "the file once unpacked", "max_unpacked_bytes", self.limit)
        data = self.inner.read(want)
        n = len(data)
        view[:n] = data
        self.count += n
        if self.count > self.limit:
            raise too_big(self.shown, "the file once unpacked", "max_unpacked_bytes", self.limit)
        return n

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            super().close()
