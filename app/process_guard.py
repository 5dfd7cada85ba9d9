"""A run's worker process never outlives the server that started it, nor a Cancel.

- :func:`die_with_parent` (called first thing in the worker): the worker becomes the leader of a
  process group of its own (the trace workers it starts join it), asks the kernel for a SIGTERM when
  its parent dies (Linux ``prctl(PR_SET_PDEATHSIG)``), which it answers by SIGKILLing its whole group,
  and starts a watchdog thread that does the same once the parent is gone (``os.getppid()`` changed:
  the worker was re-parented; also where there is no prctl).
  Without the watchdog a kill -9 of the Streamlit server left the run computing at full CPU with no
  reader; the kernel signal covers a worker whose threads are all stuck in C code.
- :func:`end_process_group` (the server side of Cancel): SIGKILL to the worker's whole group at once (a
  SIGTERM would only be answered by the same SIGKILL, and not at all while the worker's main thread is in
  C code, e.g. loading a model). Whatever the run finished is already committed in the result cache
  (SQLite: a killed writer loses only its open transaction).
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # linux/prctl.h
WATCH_INTERVAL_S = 0.5  # how often the watchdog looks for the parent


def _set_parent_death_signal(sig: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _kill_group() -> None:
    try:
        if os.getpgrp() == os.getpid():  # only a group of our own (never the server's)
            os.killpg(os.getpid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)
    finally:
        os._exit(137)  # not reached when the signal lands first


def die_with_parent(parent_pid: int, interval_s: float = WATCH_INTERVAL_S) -> None:
    """Make this process (and the processes it starts) end when ``parent_pid`` is gone."""
    try:
        os.setpgrp()  # our own group: the server's Cancel and our watchdog end the trace workers with us
    except OSError:
        pass
    if threading.current_thread() is threading.main_thread():  # a SIGTERM (server gone, or Cancel) ends the group
        signal.signal(signal.SIGTERM, lambda *_: _kill_group())
    _set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != parent_pid:  # the parent died before the signal was asked for
        _kill_group()

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            if os.getppid() != parent_pid:
                log.warning("the server (pid %d) is gone: ending this run's process", parent_pid)
                _kill_group()

    threading.Thread(target=watch, name="propme-parent-watch", daemon=True).start()


def end_process_group(proc, wait_s: float = 5.0) -> None:
    """End a worker started with :func:`die_with_parent` (a ``multiprocessing.Process``) and its group now,
    then reap it (waiting at most ``wait_s``)."""
    pid = proc.pid
    if pid is None:
        return
    try:
        os.killpg(pid, signal.SIGKILL)  # the worker leads its own group (pgid == pid)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGKILL)  # not (yet) leading a group of its own
        except ProcessLookupError:
            pass
    proc.join(timeout=wait_s)
