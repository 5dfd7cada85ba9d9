"""Prompt echo: spans a completion copies from its own prompt are marked, shown apart and, by default,
not counted. Checked against a brute-force scan of the prompt text on seeded random completions that
mix prompt copies with corpus text."""
from __future__ import annotations

import random
import re

import pytest

from core.config import MetricsConfig
from core.records import GenKey
from core.reports.highlight import ECHO_CLASS, SPAN_CLASS, highlight_html
from core.scoring.registry import compute_metrics
from core.tracing.echo import drop_echo, mark_echoes
from core.tracing.trace import trace_many
from tests.fixtures_index import build_tiny_index, train_tiny_tokenizer

WORDS = ("river", "stone", "lamp", "orange", "quiet", "window", "paper", "seven", "garden", "copper", "bright",
         "winter", "table", "honest", "signal", "yellow", "mirror", "forest", "ladder", "candle")


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    rng = random.Random(3)
    docs = [_sentence(rng, 60) for _ in range(12)]
    tok = train_tiny_tokenizer(docs, 300)
    index = build_tiny_index(docs, tmp_path_factory.mktemp("echo") / "index", tokenizer=tok)
    items, prompts = [], {}
    for i in range(40):
        doc = rng.choice(docs).split()
        a = rng.randrange(0, 30)
        copied = " ".join(doc[a:a + rng.randint(6, 14)])  # corpus text that the prompt holds too
        other = rng.choice(docs).split()
        b = rng.randrange(0, 30)
        fresh = " ".join(other[b:b + rng.randint(6, 14)])  # corpus text the prompt does not hold
        prompt = f"Please repeat: {copied}?" if i % 3 else f"Tell me about {_sentence(rng, 3)}."
        parts = [copied, "zq xv", fresh] if i % 2 else [fresh, "zq xv", copied]
        key = GenKey("generic", f"g{i}")
        items.append((key, " ".join(parts)))
        prompts[key] = prompt
    traces = mark_echoes(trace_many(index, tok, items), prompts)
    return traces, prompts


def _brute_echo(span_text: str, prompt: str) -> bool:
    n = len(span_text)
    return bool(span_text.strip()) and any(prompt[i:i + n] == span_text for i in range(len(prompt) - n + 1))


def test_echo_marks_equal_a_brute_force_scan_of_the_prompt(traced):
    traces, prompts = traced
    flags = [(s.echo, _brute_echo(s.text, prompts[t.key])) for t in traces for s in t.spans]
    assert [f for f, _ in flags] == [b for _, b in flags]
    assert sum(f for f, _ in flags) >= 5 and sum(not f for f, _ in flags) >= 5  # both kinds occur


def test_echo_spans_are_not_counted_by_default(traced):
    traces, _ = traced

    def brute_als(count_echo: bool) -> float:
        return sum(max((s.length for s in t.spans if count_echo or not s.echo), default=0) for t in traces) / len(traces)

    assert MetricsConfig().count_echo is False
    assert compute_metrics(traces)["als"] == pytest.approx(brute_als(False))
    assert compute_metrics(traces, MetricsConfig(count_echo=True))["als"] == pytest.approx(brute_als(True))
    assert brute_als(True) > brute_als(False)
    assert all(not s.echo for t in drop_echo(traces) for s in t.spans)


def test_explore_shows_echo_spans_in_their_own_class(traced):
    traces, _ = traced
    for t in traces:
        html = highlight_html(t.completion, t.spans)
        marks = re.findall(r'<mark class="([^"]+)" data-span-ix="(\d+)"', html)
        assert marks
        for cls, ix in marks:
            assert cls.split()[0] == SPAN_CLASS
            assert (ECHO_CLASS in cls.split()) == t.spans[int(ix)].echo
