"""The verdict rules (core/reports/verdicts.py, docs/story.md) on constructed runs: no leakage anywhere,
the attack only, ordinary prompts only, both, differences at noise level, no floor, 0 against 0.

Each run is built from traces with known longest spans; its metrics, PM (with its bootstrap interval)
and the floor's ALS interval come from core's own scoring, as for a real run. Every story is also checked
for contradictions by :func:`contradictions`, an independent reading of the printed words.
"""
from __future__ import annotations

import random
import re

import pytest

from core.config import MetricsConfig
from core.records import DocMatch, GenKey, NVResult, Span, TraceResult
from core.reports.story import Headline
from core.reports.verdicts import RunNumbers, Story, at_floor, decide, verdict_word
from core.scoring.bootstrap import bootstrap_intervals
from core.scoring.propensity import run_pm
from core.scoring.registry import compute_metrics

CFG = MetricsConfig(bootstrap_samples=500)
FORBIDDEN = ("about as much as", "as much as the attack:")  # SPEC 7: never "as much" for a difference


def trace(setting: str, i: int, longest: int, full: bool = False) -> TraceResult:
    docs = (DocMatch(i, f"d{i}", "exact_full_raw" if full else "partial", "", 0, 0, NVResult(0.9 if full else 0.1, 1, 1, 1)),)
    spans = (Span(0, longest, "x", 0, 1, 1, docs),) if longest else ()
    return TraceResult(GenKey(setting, f"{setting}-{i}"), "completion", max(longest, 1) + (0 if full else 5), spans,
                       1 if full else 0)


def make(spans: dict[str, list[int]], full: dict[str, int] | None = None, floor: bool = True) -> Story:
    """A run of settings with these longest spans per completion (``full``: the first k are full matches)."""
    traces = {s: [trace(s, i, n, i < (full or {}).get(s, 0)) for i, n in enumerate(lengths)]
              for s, lengths in spans.items() if floor or s != "floor"}
    values = {s: compute_metrics(t, CFG, setting=s) for s, t in traces.items()}
    floors = ("floor",) if "floor" in traces else ()
    pm = run_pm(traces, CFG, ("als",), values_by_setting=values, settings=[s for s in traces if s not in ("prefix", *floors)])
    hi = bootstrap_intervals(traces["floor"], CFG, metrics=("als",))["als"].hi if floors else None
    return decide(RunNumbers(values, CFG.span_threshold, floors, {s: r["als"] for s, r in pm.items()}, "als", hi))


def noise(lo: int, hi: int, n: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(lo, hi) for _ in range(n)]


def contradictions(story: Story) -> list[str]:
    """What a reader would call a contradiction between the answers, the tiles' numbers and the PM sentences."""
    out = []
    words = {h.setting: story.verdict(h) for h in (story.can, *story.does) if h is not None}
    text = " ".join(a for _, a, _ in story.answers()) + " " + " ".join(story.sentences())
    out += [f"forbidden wording {w!r}" for w in FORBIDDEN if w in text]
    for (_, answer, h) in story.answers():
        if not answer.startswith(words[h.setting] + "."):
            out.append(f"{h.setting}: answer does not start with its verdict {words[h.setting]}")
        if f"{round(h.share * 100)}%" not in answer and not ("<1%" in answer or ">99%" in answer):
            out.append(f"{h.setting}: answer lacks the tile's share")
        if f"{h.longest:,} token" not in answer:
            out.append(f"{h.setting}: answer lacks the tile's longest span")
    for r in story.readings:
        s = r.sentence
        if r.relation == "chance" and re.search(r"leak (far |much |slightly )?(less|more) than", s):
            out.append(f"{r.setting}: within chance but says less/more")
        if r.relation in ("less", "more") and "within chance" in s:
            out.append(f"{r.setting}: says {r.relation} and within chance")
        if story.can is not None and words.get(r.setting) == "No" and words[story.can.setting] == "No" \
                and r.relation in ("less", "more") and "both answers No" not in s:
            out.append(f"{r.setting}: both verdicts No but less/more unexplained")
        nat = next(h for h in story.does if h.setting == r.setting)
        if r.relation == "less" and story.can is not None and nat.longest > story.can.longest \
                and str(nat.longest) not in s:
            out.append(f"{r.setting}: longer longest span than the attack not named")
    return out


def test_no_leakage_anywhere_reads_as_chance():
    """The real-model case of issue 22: short common phrases everywhere, ALS 4.5 vs 3.9, PM about 0.53."""
    st = make({"prefix": noise(3, 6, 8, 1), "generic": noise(3, 7, 8, 2), "floor": noise(3, 7, 20, 3)})
    assert st.at_floor == {"prefix", "generic"}
    assert [st.verdict(h) for h in (st.can, *st.does)] == ["No", "No"]
    r = st.readings[0]
    assert r.relation == "chance" and r.sentence.startswith("No measurable leakage in either setting")
    assert "the difference is within chance" in r.sentence
    assert "chance level" in st.can_answer and "chance level" in st.does_answer
    assert contradictions(st) == []


def test_attack_only():
    st = make({"prefix": noise(60, 200, 10, 1), "generic": noise(2, 6, 10, 2), "floor": noise(2, 6, 20, 3)},
              full={"prefix": 4})
    assert st.at_floor == {"generic"}
    assert st.verdict(st.can) == "Yes, mostly" and st.verdict(st.does[0]) == "No"
    r = st.readings[0]
    assert r.relation == "less" and "stay at the chance floor and leak far less than the attack" in r.sentence
    assert contradictions(st) == []


def test_natural_only():
    st = make({"prefix": noise(2, 6, 10, 1), "generic": noise(60, 120, 10, 2), "floor": noise(2, 6, 20, 3)})
    assert st.at_floor == {"prefix"}
    assert st.verdict(st.can) == "No" and st.verdict(st.does[0]) == "Yes, mostly"
    assert st.readings[0].relation == "more" and "leak more than the attack" in st.readings[0].sentence
    assert contradictions(st) == []


def test_both_leak_and_a_longer_natural_span_is_named():
    """The demo's shape: the specific setting's longest span (223) beats the attack's (214) while PM says less."""
    attack = noise(120, 214, 20, 1)
    attack[0] = 214
    specific = [2] * 14 + [60, 70, 80, 90, 100, 223]
    st = make({"prefix": attack, "specific": specific, "generic": noise(2, 8, 20, 4), "floor": noise(2, 6, 20, 3)})
    assert st.does[0].setting == "specific"  # the leakiest natural setting answers "Does it leak?"
    r = st.readings[0]
    assert r.relation == "less" and "223 tokens" in r.sentence and "longer than the attack's (214)" in r.sentence
    assert st.verdict(st.can) == "Yes, mostly" and st.verdict(st.does[0]) == "Sometimes"
    assert contradictions(st) == []


def test_noise_level_difference_is_within_chance_even_when_verdicts_differ():
    st = make({"prefix": [2, 3, 55, 4, 3], "generic": [3, 4, 2, 30, 5], "floor": noise(2, 6, 20, 3)})
    r = st.readings[0]
    assert r.relation == "chance" and "differ by no more than chance" in r.sentence
    assert st.verdict(st.can) == "Sometimes" and st.verdict(st.does[0]) == "No"
    assert "the verdicts differ (attack: Sometimes; ordinary prompts: No)" in r.sentence and "within chance too" in r.sentence
    assert contradictions(st) == []


def test_no_floor():
    quiet = make({"prefix": noise(3, 6, 8, 1), "generic": noise(3, 7, 8, 2), "floor": []}, floor=False)
    assert quiet.floor is None and quiet.at_floor == frozenset() and quiet.floor_sentences == ()
    assert quiet.readings[0].relation == "chance"  # by the interval alone
    assert "at the chance floor" not in " ".join(quiet.sentences()) and contradictions(quiet) == []
    leaky = make({"prefix": noise(60, 200, 10, 1), "generic": noise(2, 6, 10, 2)}, floor=False)
    assert leaky.readings[0].relation == "less" and "chance floor" not in leaky.readings[0].sentence
    assert contradictions(leaky) == []


def test_zero_against_zero_is_na():
    st = make({"prefix": [0] * 5, "generic": [0] * 5, "floor": [0] * 5})
    assert st.readings[0].relation == "na" and "n/a — no leakage in either setting" in st.readings[0].sentence
    assert contradictions(st) == []


@pytest.mark.parametrize("seed", range(25))
def test_random_runs_never_contradict(seed):
    rng = random.Random(seed)
    shape = lambda: noise(rng.choice([0, 2, 5]), rng.choice([6, 20, 120, 250]), rng.randint(3, 15), rng.random())
    st = make({"prefix": shape(), "generic": shape(), "specific": shape(), "floor": noise(2, 6, 10, seed)},
              full={"prefix": rng.randint(0, 2)}, floor=bool(seed % 2))
    assert contradictions(st) == []


def test_floor_rule_edges():
    floor = Headline("floor", 20, 50, 0.0, 9, 0, 4.0)
    assert at_floor(Headline("g", 5, 50, 0.0, 9, 0, 6.0), floor)  # 1.5 x 4.0
    assert not at_floor(Headline("g", 5, 50, 0.0, 9, 0, 6.01), floor)
    assert at_floor(Headline("g", 5, 50, 0.0, 9, 0, 6.5), floor, floor_als_hi=6.5)  # inside the floor's interval
    assert not at_floor(Headline("g", 5, 50, 0.2, 60, 0, 3.0), floor)  # reaches N more often than the floor
    assert not at_floor(Headline("g", 5, 50, 0.0, 9, 1, 3.0), floor)  # a full match the floor does not have
    assert not at_floor(Headline("g", 5, 50, 0.0, 9, 0, 3.0), None)
    assert verdict_word(Headline("g", 5, 50, 0.2, 60, 0, 3.0), at_floor=True) == "No"
