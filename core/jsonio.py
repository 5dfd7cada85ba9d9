"""The one JSON reader: every JSON file or JSON text the project reads goes through here.

Manifests, summaries, index manifests, prompt files, corpus lines, uploads: a parse failure of any
kind (not UTF-8, not JSON, nested so deeply that the parser recurses out of the stack, too big, a
number Python cannot hold) becomes one :class:`~core.errors.DamagedFile` (or the caller's subclass of
:class:`~core.errors.PropMeError`) whose message is one line: ``damaged FILE: WHY; WHAT TO DO``.
Never a traceback, never a RecursionError or MemoryError reaching a page.

- :func:`read_json` reads a file (size-capped) and parses it;
- :func:`parse_json` parses text or bytes already read (a JSONL line, an uploaded file, a parquet cell);
- :func:`json_problem` is the non-raising form for per-line readers: the reason, or None.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from core.errors import DamagedFile, PropMeError

MAX_JSON_BYTES = 512 << 20  # a JSON file larger than this is refused before it is read (512 MiB)


class _Problem(ValueError):
    """A parse failure with its reason in words."""


def _loads(data: bytes | str) -> Any:
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            data = bytes(data).decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise _Problem(f"not valid UTF-8 (byte {e.start})") from None
    try:
        return json.loads(data)
    except json.JSONDecodeError as e:
        raise _Problem(f"not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except RecursionError:
        raise _Problem("nested too deeply to read") from None
    except MemoryError:
        raise _Problem("too large to read into memory") from None
    except ValueError as e:  # e.g. an integer of more than 4300 digits
        raise _Problem(f"not readable JSON ({str(e).splitlines()[0][:120]})") from None


def json_problem(data: bytes | str) -> tuple[Any, str | None]:
    """``(value, None)`` when ``data`` parses, else ``(None, reason)``; never raises."""
    try:
        return _loads(data), None
    except _Problem as e:
        return None, str(e)


def _message(name: str, reason: str, hint: str) -> str:
    return f"damaged {name}: {reason}" + (f"; {hint}" if hint else "")


def parse_json(data: bytes | str, *, name: str, hint: str = "",
               error: type[PropMeError] = DamagedFile) -> Any:
    """``data`` parsed as JSON; ``error`` (default :class:`DamagedFile`) naming ``name`` on any failure."""
    value, reason = json_problem(data)
    if reason is not None:
        raise _raise(error, _message(name, reason, hint), name)
    return value


def read_json(path: str | os.PathLike, *, name: str | None = None, hint: str = "",
              error: type[PropMeError] = DamagedFile, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """The JSON value in file ``path``; ``error`` saying ``damaged NAME: why; hint`` when it cannot be read
    (``name`` defaults to the path). A missing file is a ``FileNotFoundError`` for the caller to word."""
    path = Path(path)
    shown = name or str(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise _raise(error, _message(shown, f"{size} bytes, more than the {max_bytes} a JSON file may hold",
                                         hint), shown)
        data = path.read_bytes()
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise _raise(error, _message(shown, "is a folder, not a JSON file", hint), shown) from None
    except OSError as e:
        raise _raise(error, _message(shown, f"cannot be read ({e.strerror or e})", hint), shown) from None
    return parse_json(data, name=shown, hint=hint, error=error)


def _raise(error: type[PropMeError], message: str, name: str) -> PropMeError:
    e = error(message)
    e.damaged_file = name  # which file, for callers that list damaged folders
    return e
