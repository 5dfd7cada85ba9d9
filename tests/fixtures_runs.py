"""Test helpers of the runs area: hypothesis strategies for run records, synthetic runs."""
from __future__ import annotations

from hypothesis import strategies as st

from core.records import MATCH_TIERS, DocMatch, Generation, GenKey, NVResult, Prompt, Span, TraceResult
from core.results import RunResults

texts = st.text(max_size=40)  # hypothesis' default alphabet: any unicode except surrogates
ids = st.lists(st.integers(0, 2**40), max_size=8).map(tuple)
small = st.integers(0, 10_000)


@st.composite
def nv_results(draw) -> NVResult:
    blocks = draw(st.lists(st.tuples(small, small, st.integers(1, 50)), max_size=4).map(tuple))
    return NVResult(draw(st.floats(0, 1)), draw(small), draw(small), draw(small), blocks)


@st.composite
def doc_matches(draw) -> DocMatch:
    return DocMatch(draw(small), draw(texts), draw(st.sampled_from(MATCH_TIERS)), draw(texts),
                    draw(small), draw(small), draw(nv_results()))


@st.composite
def spans(draw) -> Span:
    start = draw(st.integers(0, 500))
    return Span(start, start + draw(st.integers(1, 300)), draw(texts), draw(small), draw(small), draw(small),
                tuple(draw(st.lists(doc_matches(), max_size=3))))


@st.composite
def runs(draw, max_generations: int = 6) -> RunResults:
    """Random runs: unique keys, unicode everywhere, duplicate completions under different keys,
    some generations untraced, traces in an order of their own."""
    keys = draw(st.lists(st.tuples(st.sampled_from(["prefix", "generic", "specific", "my set"]), texts,
                                   st.integers(0, 3)), max_size=max_generations, unique=True))
    shared = draw(texts)  # a completion that several keys produce
    gens, traces = [], []
    for setting, pid, si in keys:
        prompt = Prompt(setting, pid, draw(texts), draw(st.none() | ids), draw(st.none() | texts),
                        draw(st.none() | texts), draw(st.none() | small), draw(st.none() | texts),
                        draw(st.none() | ids))
        completion = shared if draw(st.booleans()) else draw(texts)
        key = GenKey(setting, pid, si)
        gens.append(Generation(key, prompt, completion, draw(ids), draw(st.sampled_from(["length", "eos"]))))
        if draw(st.booleans()):
            trace_completion = completion if draw(st.integers(0, 4)) else draw(texts)
            traces.append(TraceResult(key, trace_completion, draw(st.integers(0, 300)),
                                      tuple(draw(st.lists(spans(), max_size=3))), draw(st.integers(0, 11))))
    traces = draw(st.permutations(traces)) if traces else []
    manifest = {"run_name": draw(texts), "seeds": {"decoding": 42}}
    return RunResults(None, manifest, tuple(gens), tuple(traces))
