"""CSV files that are safe to open in a spreadsheet: the one writer of every CSV the app or the CLI produces.

Completions, prompt ids and document ids come from a model and a corpus: a cell that starts with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return is run as a formula by Excel, LibreOffice and Google
Sheets (CSV injection, OWASP). As OWASP recommends, such a text cell is written with a leading single
quote ``'``, which spreadsheets show as text. A text cell that itself starts with ``'`` gets one more, so
:func:`unguard_cell` (drop one leading ``'``) gives back every original text exactly. Numbers and
booleans are written as they are. JSON and parquet exports keep the exact text: only CSV is guarded.
"""
from __future__ import annotations

import csv
import io
from typing import Any

import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # OWASP: cells starting with these run as formulas
GUARD = "'"
GUARD_NOTE = ("In every CSV file, a text cell that starts with = + - @, a tab or a carriage return (which a "
              "spreadsheet would run as a formula), or with ' itself, is written with one extra ' in front "
              "(OWASP's guard against CSV injection); remove that first ' to get the exact text. The JSON and "
              "parquet files hold the exact text.")


def guard_cell(value: Any) -> Any:
    """``value`` as written to a CSV cell: a text starting with a formula character or ``'`` gets a ``'`` in front.

    >>> [guard_cell(v) for v in ("=1+1", "-x", "'q", "plain", 3, None)]
    ["'=1+1", "'-x", "''q", 'plain', 3, None]
    """
    if isinstance(value, str) and value[:1] in (*FORMULA_START, GUARD):
        return GUARD + value
    return value


def unguard_cell(value: Any) -> Any:
    """The exact text of a cell written by :func:`guard_cell` (one leading ``'`` removed)."""
    if isinstance(value, str) and value.startswith(GUARD):
        return value[1:]
    return value


def guard_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with every text cell and column name guarded (numbers untouched)."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(guard_cell).astype(object)
    out.columns = [guard_cell(str(c)) for c in out.columns]
    return out


def to_csv(frame: pd.DataFrame) -> str:
    """``frame`` as CSV text (no index), every text cell guarded: what every CSV download and file uses."""
    # every text cell quoted: pandas' minimal quoting leaves a lone carriage return unquoted, which a reader
    # takes for the end of the row
    return guard_frame(frame).to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC)


def read_csv(source: str | io.TextIOBase) -> pd.DataFrame:
    """A CSV written by :func:`to_csv` read back with every text cell's exact text (guards removed)."""
    text = io.StringIO(source) if isinstance(source, str) else source
    frame = pd.read_csv(text, dtype=str, keep_default_na=False)
    frame.columns = [unguard_cell(c) for c in frame.columns]
    return frame.map(unguard_cell)
