"""Targets for run-worker processes in tests (module-level: a spawned process imports them by name).

Each stands for a real run stuck somewhere between two progress events: a pure-Python loop that holds
the GIL, a C call that never returns, or the real run (demo model, real index) with one step made slow
the way a big model or a big corpus makes it slow."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from core.progress import ProgressEvent

FOREVER = 3600


def spin(pidfile: str, grandchild: bool, progress):
    """Busy forever after one event (and, with ``grandchild``, a busy child process of its own, as the
    trace workers are): its pids go to ``pidfile``."""
    pids = [os.getpid()]
    if grandchild:
        pids.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]).pid)
    Path(pidfile + ".tmp").write_text(" ".join(map(str, pids)))
    os.replace(pidfile + ".tmp", pidfile)
    progress(ProgressEvent("load-model", 0, 1, "models"))
    while True:
        pass


def stuck_in_the_model() -> None:
    """Never returns. Decoded interleaved with another batch (core/generation/interleave.py: a greenlet
    below the one running the batches), it hands over at every turn as a batch stuck in the model would,
    so the other batch ends and is saved, and naps a millisecond per turn so that it does not hold a core
    (the test suite's other worker runs timing tests); decoded alone, it sleeps."""
    import greenlet

    while True:
        parent = greenlet.getcurrent().parent
        if parent is None:
            time.sleep(FOREVER)
        parent.switch()
        time.sleep(0.001)


def slow_run(stage: str, cfg, corpus, root, progress):
    """The Run page's real work (:func:`app.runner.execute`) with ``stage`` slow: "load" (the model loads,
    then as long as a huge model would), "generate" (the first batch is generated and cached, the next one
    never ends), "trace" (the first chunk is traced and cached, the next never ends)."""
    import core.generation.generate as gen_mod
    import core.generation.model as model_mod
    import core.tracing.trace as trace_mod
    from app import runner

    if stage == "load":
        real_load = model_mod.load_model

        def load(cfg_):
            lm = real_load(cfg_)
            time.sleep(FOREVER)
            return lm
        model_mod.load_model = load
    elif stage == "generate":
        real_batch = gen_mod._generate_batch
        batches = []

        def batch(*a, **kw):
            batches.append(1)
            if len(batches) > 1:  # the second batch: stuck in the model
                stuck_in_the_model()
            return real_batch(*a, **kw)
        gen_mod._generate_batch = batch
    elif stage == "trace":
        real_trace = trace_mod.trace_many
        calls = []

        def trace_many(*a, **kw):
            calls.append(1)
            if len(calls) > 1:
                time.sleep(FOREVER)
            return real_trace(*a, **kw)
        trace_mod.trace_many = trace_many
    return runner.execute(cfg, corpus, root, progress)
