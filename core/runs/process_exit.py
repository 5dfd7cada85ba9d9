"""How a run's worker process ended, in words: a process killed for lack of memory is said to be so.

On Linux the kernel's out-of-memory killer (and a container's memory limit) ends a process with SIGKILL,
which Python reports as exit code -9. Nothing else the tool does sends SIGKILL (Cancel sends SIGTERM).
"""
from __future__ import annotations

import signal


def describe_exit(code: int | None) -> str:
    """The page's line for a worker that ended without sending a result.

    >>> describe_exit(-9)[:60]
    "the run's process was killed (SIGKILL, exit code -9): almost"
    """
    if code == -signal.SIGKILL:
        return ("the run's process was killed (SIGKILL, exit code -9): almost always because the machine ran out "
                "of memory (the kernel's out-of-memory killer or a container limit); use a smaller corpus or sample, "
                "fewer prompts or samples, or a smaller batch size, and keep the corpus limits of "
                "core/corpus/limits.py at their defaults")
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the run's process was stopped by {name} (exit code {code}) before it sent a result"
    return f"the run's process ended without a result (exit code {code})"
