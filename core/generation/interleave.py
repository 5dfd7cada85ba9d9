"""Forward passes of several batches through one model, interleaved weight by weight.

A decode step of a small model on a CPU is bound by reading its weights from memory: SmolLM2-135M in
float32 reads 0.54 GB per step, whether the step has 1 row (59 ms here) or 8 (77 ms). Two batches
decoded one after the other read every weight twice. :func:`run_interleaved` runs them in turns instead:
batch A runs up to the next weight-holding module of the decoder layers (a linear projection), batch B
runs up to the same module, then A applies it, then B, while its weights are still in the CPU cache.
Each batch makes exactly the forward calls it would make alone, with the same shapes and the same
kernels, so its logits (and tokens) are bit-identical; only the order of the work changes
(tests/test_interleave.py checks the order and the equality). ``bench/bench_generate.py --steps``
measures it on the 2-core machine: an MLP projection of 3.5 MB applied to 8 rows takes 0.35 ms cold and
0.19 ms hot, so two batches take 0.72 ms one after the other and 0.53 ms interleaved (1.31-1.46x over
runs: the ceiling); single decode steps gain less (the 113 MB output projection cannot stay in the
cache) and swing with the machine (0.95-1.41x by round); whole generations of short uniform prompts
ran 1.04-1.25x transformers' ``generate`` in all 17 runs (BENCHMARKS.md).

The jobs are greenlets (one OS thread, so torch's thread-local modes and its OpenMP pool are shared,
and no other thread spins while one batch computes). The hand-over points are forward pre-hooks on the
weight-holding modules of the model's longest ``ModuleList`` (its decoder layers), registered for the
run only; a model without one runs its jobs one after the other.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
from greenlet import GreenletExit, getcurrent, greenlet

T = TypeVar("T")


def handover_points(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The modules before which a job hands over: the leaf modules holding a 2-D weight (linear
    projections, GPT-2's Conv1D) inside the model's longest ``ModuleList``; [] when it has none."""
    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    if not lists:
        return []
    layers = max(lists, key=len)
    return [m for m in layers.modules()
            if not list(m.children()) and any(p.dim() == 2 for p in m.parameters(recurse=False))]


def run_interleaved(model: torch.nn.Module, jobs: Sequence[Callable[[], T]],
                    on_done: Callable[[int, T], None] | None = None) -> list[T]:
    """Run ``jobs`` (each making forward calls of ``model``) in turns at the model's :func:`handover_points`;
    returns their results in order. ``on_done(i, result)`` is called as soon as job ``i`` returns, while
    the others go on (so finished work can be saved at once). An exception in a job or in ``on_done``
    stops the other jobs (unwound where they wait) and is raised here. Runs under
    ``torch.inference_mode`` (the jobs share the thread's autograd mode)."""
    done = on_done or (lambda i, result: None)
    points = handover_points(model) if len(jobs) > 1 else []
    results: list = [None] * len(jobs)
    if not points:
        with torch.inference_mode():
            for i, job in enumerate(jobs):
                results[i] = job()
                done(i, results[i])
        return results
    main = getcurrent()
    workers = [greenlet(job) for job in jobs]
    waiting = set(workers)

    def hand_over(_module, _args):
        if getcurrent() in waiting:
            main.switch()

    handles = [m.register_forward_pre_hook(hand_over) for m in points]
    try:
        with torch.inference_mode():
            alive = list(range(len(workers)))
            while alive:
                for i in list(alive):
                    value = workers[i].switch()
                    if workers[i].dead:
                        results[i] = value
                        alive.remove(i)
                        done(i, value)
    finally:
        for h in handles:
            h.remove()
        for w in workers:  # after an error: unwind the jobs still waiting at a hand-over point
            if not w.dead:
                try:
                    w.throw(GreenletExit)
                except GreenletExit:
                    pass
    return results
