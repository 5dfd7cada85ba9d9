"""Test helpers of the runs area: hypothesis strategies for run records, synthetic runs."""
from __future__ import annotations

from pathlib import Path

from hypothesis import strategies as st

from core.records import MATCH_TIERS, DocMatch, Generation, GenKey, NVResult, Prompt, Span, TraceResult
from core.runs.manifest import Manifest
from core.runs.results import RunResults

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
    manifest = Manifest(run_name=draw(texts), seeds={"decoding": 42})
    return RunResults(None, manifest, tuple(gens), tuple(traces))


# -- a tiny experiment on disk: toy model, tiny index, a prompt file, a TOML config -----------------
CORPUS = [
    "The quick brown fox jumps over the lazy dog. The cat sat on the mat and looked at the sea shore.",
    "It was the best of times, it was the worst of times. She sells sea shells by the sea shore today.",
    "A memorization audit asks whether a model can reproduce its training data under ordinary use.",
    "Numbers like 12345 and 67890 appear in code: def f(x): return x + 1. Hello world! Hello again.",
    "Hello world! The quick brown fox jumps over the lazy dog again and again, said the old cat.",
    "The cat sat on the mat. It was the best of times. A model can reproduce its training data.",
    "She sells sea shells by the sea shore. Numbers like 12345 appear in code: def f(x): return x.",
    "Whether it does so under ordinary use is the question of propensity, not of capability at all.",
]
GENERIC_PROMPTS = ["Tell me about the sea.", "Write a short poem.", "What is a fox?", "Explain code to me."]


def make_tiny_experiment(folder, *, name: str = "tiny", batch_size: int = 2, extra: str = "",
                         build_index: bool = True) -> Path:
    """Write a complete tiny experiment under ``folder`` (model, index, prompts, TOML); return the TOML path.

    With ``build_index=False`` the caller builds ``folder/index`` (e.g. with the CLI) from :data:`CORPUS`.
    Settings: prefix (6 prompts of 8 tokens) and generic (4 prompts from a file); greedy, 12 new tokens.
    """
    import json

    from core.index.tokenizer import load_tokenizer
    from tests.fixtures_index import build_tiny_index
    from tests.fixtures_model import make_tiny_model_dir

    folder = Path(folder)
    model_dir = folder / "model"
    if not model_dir.exists():
        make_tiny_model_dir(model_dir)
    if build_index and not (folder / "index").exists():
        build_tiny_index(CORPUS, folder / "index", tokenizer=load_tokenizer(str(model_dir)))
    (folder / "generic.jsonl").write_text(
        "".join(json.dumps({"id": f"g{i}", "text": t}) + "\n" for i, t in enumerate(GENERIC_PROMPTS)))
    toml = folder / f"{name}.toml"
    toml.write_text(f"""name = "{name}"
output_dir = "results"
cache_dir = "cache"
index_dirs = ["index"]

[model]
name_or_path = "model"
device = "cpu"
dtype = "float32"

[decoding]
max_new_tokens = 12
batch_size = {batch_size}

[trace]
mode = "text"

[metrics]
bootstrap_samples = 200

[[settings]]
name = "prefix"
n_prompts = 6
prefix_tokens = 8
min_doc_tokens = 16

[[settings]]
name = "generic"
prompts_path = "generic.jsonl"
{extra}""")
    return toml
