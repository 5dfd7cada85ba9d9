"""Results folders on disk: which folders this tool wrote, which may be replaced, and the temporary
folders an interrupted write left behind.

A write replaces only a results folder this tool wrote (:func:`is_results_folder`: its manifest
carries ``format = "propme-results"``): any other folder of that name is refused, untouched
(:func:`check_replaceable`). Files the user added to a results folder are moved into its replacement,
never deleted (:func:`keep_user_files`). Temporary folders left by a killed write are removed by the next write
into the same output folder (:func:`clean_stale_temp_folders`).
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import time
from pathlib import Path

from core.errors import PropMeError, ResultsError
from core.jsonio import read_json
from core.paths import child

log = logging.getLogger(__name__)

RESULTS_FORMAT = "propme-results"  # manifest.format: marks a folder this tool wrote (and may replace)
REQUIRED_FILES = ("manifest.json", "generations.parquet", "spans.parquet", "docs.parquet",
                  "summary.json", "pm.json")
OUR_FILES = frozenset((*REQUIRED_FILES, "config.toml"))  # everything save_results writes into a folder
# our temporary folders: .NAME.tmp-PID-HEX (being written) and .NAME.old-PID-HEX (replaced, being removed);
# folders written before the pid was part of the .old name have only the hex
_TEMP_DIR = re.compile(r"\.(?P<name>.+)\.(?P<kind>tmp|old)-(?:(?P<pid>\d{1,10})-)?[0-9a-f]{8}")
STALE_TEMP_S = 24 * 3600  # a temp folder this old is stale even when its writer's pid is in use again


def results_folder(output_dir: str | os.PathLike, name: str) -> Path:
    """``output_dir/name`` for a run name that is one safe folder name (:func:`core.paths.safe_name`).

    Refuses (ConfigError) an empty name, ``.``, ``..``, separators, absolute paths, control
    characters and a link in that place, so the folder always lies directly inside ``output_dir``.
    """
    return child(output_dir, name)


def is_results_folder(folder: str | os.PathLike) -> bool:
    """True when ``folder`` holds a manifest this tool wrote (``format`` marker, or the format 1 layout
    written before the marker existed: ``format_version``, ``run_name`` and ``n_generations``)."""
    try:
        manifest = read_json(Path(folder) / "manifest.json")
    except (OSError, PropMeError):
        return False
    if not isinstance(manifest, dict):
        return False
    return manifest.get("format") == RESULTS_FORMAT or (
        "format" not in manifest and isinstance(manifest.get("format_version"), int)
        and {"run_name", "n_generations"} <= manifest.keys())


def check_replaceable(folder: str | os.PathLike) -> None:
    """Raise ResultsError unless writing results at ``folder`` loses nothing: it does not exist, is an
    empty folder, or is a results folder this tool wrote (:func:`is_results_folder`)."""
    folder = Path(folder)
    if folder.is_symlink():
        raise ResultsError(f"{folder} is a symbolic link: results are never written through a link; remove it "
                           "or choose another run name")
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ResultsError(f"{folder} is a file, not a results folder: it was left untouched; choose another run "
                           "name or output folder")
    if any(folder.iterdir()) and not is_results_folder(folder):
        raise ResultsError(f"{folder} already exists and is not a results folder written by PropMe (no manifest.json "
                           f"with format {RESULTS_FORMAT!r}): it was left untouched; choose another run name or "
                           "output folder, or move that folder away")


def keep_user_files(old: Path, new: Path) -> list[str]:
    """Move everything in the replaced results folder ``old`` that this tool did not write (not in
    ``OUR_FILES``) into the new folder ``new``, then remove ``old`` if only our files were left in it.

    Nothing of the user's is ever deleted: an entry whose name is taken in ``new`` stays in ``old``, and
    ``old`` (named ``.NAME.old-...``) then stays too, with a warning naming it. Returns the moved names."""
    moved, left = [], []
    for entry in sorted(old.iterdir()):
        if entry.name in OUR_FILES and entry.is_file() and not entry.is_symlink():
            continue
        target = new / entry.name
        if os.path.lexists(target):
            left.append(entry.name)
            continue
        try:
            os.rename(entry, target)
            moved.append(entry.name)
        except OSError as e:
            log.warning("could not move %s into %s (%s)", entry, new, e.strerror or e)
            left.append(entry.name)
    if left:
        log.warning("kept %s in %s: they were in the earlier results folder and could not be moved into %s",
                    ", ".join(left), old, new)
        return moved
    for name in OUR_FILES:
        with contextlib.suppress(FileNotFoundError):
            (old / name).unlink()
    try:
        old.rmdir()
    except OSError as e:  # something appeared meanwhile: keep it
        log.warning("kept %s (%s)", old, e.strerror or e)
    if moved:
        log.info("kept the user's %s in %s", ", ".join(moved), new)
    return moved


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # this process (another thread may be writing)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError, OSError):
        return True  # someone else's process, or not a pid we can ask about: assume it is writing
    return True


def clean_stale_temp_folders(output_dir: str | os.PathLike, *, now: float | None = None) -> list[Path]:
    """Remove our temporary folders in ``output_dir`` left by killed writes; returns what was removed.

    Only folders named like ours (``.NAME.tmp-PID-HEX``, ``.NAME.old-PID-HEX``) that hold nothing but
    files a results folder holds are touched. A ``.tmp`` folder is stale when the process that wrote it
    is gone or it is older than ``STALE_TEMP_S``; an ``.old`` folder (a replaced results folder that its
    writer was about to delete) always is.
    """
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(Path(output_dir).iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP_DIR.fullmatch(entry.name)
        if not m or entry.is_symlink() or not entry.is_dir():
            continue
        try:
            inside = list(entry.iterdir())
            age = now - entry.stat().st_mtime
        except OSError:
            continue
        if any(p.name not in OUR_FILES or p.is_symlink() or not p.is_file() for p in inside):
            log.warning("left %s in place: it is named like a PropMe temporary folder but holds other files", entry)
            continue
        if m["kind"] == "tmp" and m["pid"] and _pid_alive(int(m["pid"])) and age < STALE_TEMP_S:
            continue
        shutil.rmtree(entry, ignore_errors=True)
        log.info("removed the stale temporary folder %s (left by an interrupted write)", entry)
        removed.append(entry)
    return removed
