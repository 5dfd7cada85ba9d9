"""What a corpus load skipped or renamed, written beside the index it fed and summed up in words.

:func:`write_load_report` writes ``skipped_rows.jsonl`` (one JSON line per skipped row: file, line,
reason) and ``renamed_ids.jsonl`` (one per row whose id repeated an earlier one: file, line, id, new
id) into the index folder and returns the counts recorded in the index manifest (``corpus_report``).
:func:`describe_load` is the message the CLI and the app show: counts, the first few rows, the files.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from core.corpus.load import CorpusLoad, describe_problems

SKIPPED_FILE = "skipped_rows.jsonl"
RENAMED_FILE = "renamed_ids.jsonl"
LISTED = 5  # rows named in a message; the files hold them all


def _write_lines(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    os.replace(tmp, path)


def write_load_report(load: CorpusLoad | None, folder: str | os.PathLike) -> dict[str, Any]:
    """Write the skipped rows and renamed ids of ``load`` into ``folder`` (removing stale lists when there
    are none, or when ``load`` is None: documents that did not come from a corpus file); returns
    ``{"rows_read", "skipped_rows", "renamed_ids", "files"}`` for the index manifest."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lists = {
        SKIPPED_FILE: [{"source": p.source, "line": p.line, "reason": p.reason} for p in load.problems] if load else [],
        RENAMED_FILE: [{"source": r.source, "line": r.line, "id": r.doc_id, "new_id": r.new_id}
                       for r in load.renamed] if load else [],
    }
    for name, rows in lists.items():
        if rows:
            _write_lines(folder / name, rows)
        else:
            (folder / name).unlink(missing_ok=True)
    return {"source": load.source if load else None, "rows_read": load.rows_read if load else None,
            "skipped_rows": len(lists[SKIPPED_FILE]), "renamed_ids": len(lists[RENAMED_FILE]),
            "files": sorted(name for name, rows in lists.items() if rows)}


def describe_load(load: CorpusLoad, folder: str | os.PathLike | None = None, limit: int = LISTED) -> str:
    """Skipped rows and renamed ids of ``load`` in words: counts, the first ``limit`` of each, and the
    files in ``folder`` (the index) that list them all. Empty when nothing was skipped or renamed."""
    parts = []
    if load.problems:
        where = f"; all listed in {Path(folder) / SKIPPED_FILE}" if folder is not None else ""
        parts.append(f"skipped {len(load.problems)} bad row(s) of {load.rows_read}{where}; first "
                     f"{min(limit, len(load.problems))}:\n{describe_problems(load.problems, limit)}")
    if load.renamed:
        where = f"; all listed in {Path(folder) / RENAMED_FILE}" if folder is not None else ""
        first = "\n".join(f"  {r.source} line {r.line}: id {r.doc_id[:80]!r} -> {r.new_id[:80]!r}"
                          for r in load.renamed[:limit])
        parts.append(f"kept {len(load.renamed)} row(s) whose id repeats an earlier row under a new id{where}; "
                     f"first {min(limit, len(load.renamed))}:\n{first}")
    return "\n".join(parts)
