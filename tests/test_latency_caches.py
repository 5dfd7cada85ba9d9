"""The speed-ups of issue 16 change no value: the per-type decoders of core/runs/codec.py against a
reflective decoder written out here (the one they replaced), and the app's metrics cached apart by the
thresholds they read against one ``compute_metrics`` call, on the demo results under random thresholds."""
from __future__ import annotations

import dataclasses
import logging
import math
import types
import typing
from dataclasses import replace
from typing import Any, Union

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.config import AdaptiveParam
from core.records import Generation, Prompt, Span, TraceResult
from core.runs import codec
from core.runs.demo import demo_results_dir
from core.runs.results import load_results
from core.scoring import registry


def reference_decode(tp: Any, data: Any) -> Any:
    """The reflective decoder: reads the type hints for every value (what codec did before)."""
    if data is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return reference_decode(args[0], data) if len(args) == 1 else data
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(reference_decode(args[0], v) for v in data)
        return tuple(reference_decode(a, v) for a, v in zip(args, data))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return tp(**{f.name: reference_decode(hints[f.name], data[f.name])
                     for f in dataclasses.fields(tp) if f.init and f.name in data})
    if tp is float and isinstance(data, int) and not isinstance(data, bool):
        return float(data)
    return data


@pytest.fixture(scope="module")
def demo_run():
    folder = demo_results_dir()
    assert (folder / "manifest.json").is_file(), f"the shipped demo results are tracked in git: {folder}"
    return load_results(folder)


@pytest.mark.slow  # every record of the shipped demo run
def test_codec_decodes_every_demo_record_as_the_reflective_decoder(demo_run):
    for g, t in zip(demo_run.generations, demo_run.traces):
        for tp, value in ((Generation, g), (Prompt, g.prompt), (TraceResult, t), (tuple[Span, ...], t.spans)):
            data = codec.to_jsonable(value)
            got = codec.from_jsonable(tp, data)
            assert got == reference_decode(tp, data) == value


@given(st.lists(st.one_of(st.none(), st.integers(-5, 5), st.floats(allow_nan=False)), max_size=6),
       st.lists(st.one_of(st.none(), st.integers(0, 3)), max_size=4))
def test_codec_containers_and_none_as_the_reflective_decoder(items, pair):
    for tp, data in ((tuple[float | None, ...], items), (tuple[int, ...] | None, [i for i in items if i is not None]),
                     (tuple[int | None, int | None], pair), (float, items[0] if items else 3), (dict[str, int], {"a": 1})):
        got, want = codec.from_jsonable(tp, data), reference_decode(tp, data)
        assert got == want and type(got) is type(want)


def _same(a: dict, b: dict) -> bool:
    def nan(x: Any) -> bool:
        return isinstance(x, float) and math.isnan(x)

    return list(a) == list(b) and all(x == y or (nan(x) and nan(y)) for x, y in zip(a.values(), b.values()))


@pytest.mark.slow  # every record of the shipped demo run
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 120), nv=st.sampled_from([0.1, 0.3, 0.5, 0.8]), loops=st.booleans(),
       l1=st.sampled_from([0.05, 0.15, 0.3]), disc=st.sampled_from([10, 50]))
def test_metrics_cached_by_thresholds_read_equal_one_compute_metrics_call(demo_run, n, nv, loops, l1, disc):
    logging.getLogger("streamlit").setLevel(logging.ERROR)  # caches used outside a running app warn
    from app import cached

    base = demo_run.manifest.metrics
    cfg = replace(base, span_threshold=n, nv_threshold=nv, exclude_degenerate=loops, discoverable_tokens=disc,
                  nv_blocks=replace(base.nv_blocks, l1=AdaptiveParam(l1, base.nv_blocks.l1.lo, base.nv_blocks.l1.hi)))
    ident = f"test:{demo_run.path}"
    for s in demo_run.settings():
        gens, traces = demo_run.by_setting(s)
        want = registry.compute_metrics(traces, cfg, gens, setting=s)
        assert _same(cached.setting_metrics(ident, s, cfg, demo_run), want)
        some = ("r_n", "als", "max_nv_recall")
        assert _same(registry.compute_metrics(traces, cfg, gens, setting=s, names=some),
                     {k: v for k, v in want.items() if k in some})
