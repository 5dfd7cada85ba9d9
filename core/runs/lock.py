"""One writer per results folder: a lock held for the length of a run, by the CLI and the app alike.

The lock is a file ``OUTPUT_DIR/.NAME.lock`` beside the results folder ``OUTPUT_DIR/NAME`` (never inside
it: the folder is replaced when the run ends). The run holds an exclusive ``fcntl.flock`` on it and
writes its pid, run name, host and start time into it. The kernel drops the lock when the process ends
however it ends (kill -9 included), so a lock file left by a dead process is simply taken over; a second
run started while the first is alive is refused at once with :class:`RunInProgress`, one line naming the
run in progress and its pid.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from core.errors import ResultsError
from core.jsonio import json_problem


class RunInProgress(ResultsError):
    """Another run is writing this results folder right now."""


def lock_path(folder: str | os.PathLike) -> Path:
    """The lock file of results folder ``folder``: ``.NAME.lock`` beside it."""
    folder = Path(folder)
    return folder.parent / f".{folder.name}.lock"


def _holder_text(path: Path) -> str:
    try:
        info, _ = json_problem(path.read_bytes()[:4096])
        return (f"run {str(info.get('run'))[:100]!r} (pid {int(info.get('pid'))}, started {info.get('started')}"
                f" on {str(info.get('host'))[:64]})")
    except (OSError, ValueError, TypeError, AttributeError):
        return "another run (its lock file cannot be read)"


def _refusal(folder: Path, path: Path) -> RunInProgress:
    return RunInProgress(f"results folder {folder} is being written by {_holder_text(path)}: wait for it to finish, "
                         "cancel it, or choose another run name")


def holder(folder: str | os.PathLike) -> str | None:
    """Who holds the lock of ``folder`` (words), or None when no live run does (a check, takes nothing)."""
    path = lock_path(folder)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder_text(path)
    except OSError:
        return None
    finally:
        os.close(fd)
    return None


def check_free(folder: str | os.PathLike) -> None:
    """Raise :class:`RunInProgress` when a live run holds the lock of ``folder``."""
    if holder(folder) is not None:
        raise _refusal(Path(folder), lock_path(folder))


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; the folders created, outermost first."""
    missing = []
    here = folder
    while not here.exists() and here != here.parent:
        missing.append(here)
        here = here.parent
    folder.mkdir(parents=True, exist_ok=True)
    return list(reversed(missing))


def _flock_soon(fd: int, tries: int = 5, pause_s: float = 0.02) -> bool:
    """An exclusive lock on ``fd``, retried briefly (a :func:`holder` check holds a shared lock for an instant)."""
    for i in range(tries):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if i + 1 < tries:
                time.sleep(pause_s)
    return False


@contextlib.contextmanager
def results_lock(folder: str | os.PathLike, run_name: str) -> Iterator[Path]:
    """Hold the lock of results folder ``folder`` for the ``with`` block; RunInProgress when a live run has it.

    A lock file whose process is gone is taken over (the kernel released its lock). The file is removed
    when the block ends.
    """
    folder = Path(folder)
    path = lock_path(folder)
    made = _make_parents(path.parent)  # removed again at the end if the run left them empty
    for _ in range(20):  # the file may be removed by its releasing owner between our open and our lock
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        if not _flock_soon(fd):
            os.close(fd)
            raise _refusal(folder, path)
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    else:
        raise RunInProgress(f"results folder {folder}: its lock file {path} keeps changing; another run is starting "
                            "there: try again")
    try:
        info = {"pid": os.getpid(), "run": run_name, "host": socket.gethostname(),
                "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode("utf-8"), 0)
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)
        for d in reversed(made):  # a run that failed before writing leaves no empty output folder behind
            with contextlib.suppress(OSError):
                d.rmdir()
