"""Every field of every config dataclass is validated where it is built (issue 10, item 7).

The property tests throw arbitrary values of arbitrary types at every field of every config class in
core.config (found by introspection, so a field added later is covered too) and require either a config
that an independent checker written here from the documented ranges accepts, or a ConfigError: never
another exception, never a bad value let through."""
from __future__ import annotations

import dataclasses
import inspect
import math
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import config
from core.config import (
    AdaptiveParam,
    DecodingConfig,
    ExperimentConfig,
    MetricsConfig,
    ModelConfig,
    SettingConfig,
)
from core.config.file import load_experiment
from core.config.tables import from_dict, to_dict
from core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CONFIG_CLASSES = sorted((c for _, c in inspect.getmembers(config, inspect.isclass)
                         if dataclasses.is_dataclass(c) and c.__module__ == "core.config.schema"), key=lambda c: c.__name__)

# the smallest valid table of each class (its required fields), as from_dict takes it
BASE: dict[str, dict] = {
    "AdaptiveParam": {"frac": 0.1, "lo": 1, "hi": 4},
    "CorpusConfig": {"path": "corpus.jsonl"},
    "ModelConfig": {"name_or_path": "org/model"},
    "SettingConfig": {"name": "generic", "prompts_path": "p.jsonl"},
    "ExperimentConfig": {"name": "run", "model": {"name_or_path": "org/model"}, "index_dirs": ["idx"],
                         "settings": [{"name": "prefix"}]},
}


# -- an independent checker of a built config, from the documented ranges -------------------------------
def _int(x) -> bool:
    return type(x) is int


def _num(x) -> bool:
    return type(x) in (int, float) and math.isfinite(x)


def _text(x, empty_ok: bool = False) -> bool:
    return type(x) is str and (empty_ok or x.strip() != "") and not any(
        ord(c) < 32 or 127 <= ord(c) < 160 or 0xD800 <= ord(c) < 0xE000 for c in x)


def _opt_text(x) -> bool:
    return x is None or _text(x)


def _adaptive(a) -> bool:
    return type(a) is AdaptiveParam and _num(a.frac) and a.frac >= 0 and _int(a.lo) and _int(a.hi) and 0 <= a.lo <= a.hi


CHECKS = {
    "AdaptiveParam": _adaptive,
    "NVBlocksConfig": lambda c: all(_adaptive(getattr(c, f.name)) for f in dataclasses.fields(c)),
    "CorpusConfig": lambda c: _text(c.path) and c.format in ("auto", "jsonl", "parquet", "csv", "txt", "hf")
    and _text(c.text_field) and _opt_text(c.id_field) and (c.sample_size is None or _int(c.sample_size)
                                                            and c.sample_size >= 1)
    and _int(c.seed) and c.on_bad_rows in ("skip", "stop") and _text(c.split),
    "TraceConfig": lambda c: c.mode in ("text", "mixed") and _num(c.rarity_fraction) and 0 < c.rarity_fraction <= 1
    and all(_int(v) and v >= 1 for v in (c.docs_per_span, c.window_factor, c.anchor_spans, c.min_anchor_tokens,
                                         c.eidetic_cap)) and c.merge in ("union", "always", "none") and _int(c.seed),
    "DecodingConfig": lambda c: _num(c.temperature) and c.temperature >= 0 and _num(c.top_p) and 0 < c.top_p <= 1
    and _int(c.top_k) and c.top_k >= 0 and _num(c.repetition_penalty) and c.repetition_penalty > 0
    and all(_int(v) and v >= 1 for v in (c.num_samples, c.max_new_tokens, c.max_prompt_tokens, c.batch_size))
    and _int(c.seed) and not (c.temperature == 0 and c.num_samples > 1),
    "ModelConfig": lambda c: _text(c.name_or_path) and _opt_text(c.revision)
    and (c.device in ("auto", "cpu", "mps", "cuda") or (c.device.startswith("cuda:") and c.device[5:].isascii()
                                                         and c.device[5:].isdigit()))
    and c.dtype in ("auto", "float32", "bfloat16", "float16") and type(c.trust_remote_code) is bool
    and c.backend in ("hf", "openai") and (c.backend == "hf" or bool(c.base_url))
    and (c.base_url is None or _text(c.base_url) and c.base_url.startswith(("http://", "https://")))
    and _text(c.api_key_env) and _int(c.concurrency) and c.concurrency >= 1 and _int(c.max_retries)
    and c.max_retries >= 0 and c.server_api in ("openai", "llama.cpp"),
    "SettingConfig": lambda c: _text(c.name) and _int(c.n_prompts) and c.n_prompts >= 1 and _opt_text(c.prompts_path)
    and not (c.name in ("prefix", "unconditional", "minimal-cue") and c.prompts_path)
    and _int(c.prefix_tokens) and c.prefix_tokens >= 1 and _int(c.min_doc_tokens) and c.min_doc_tokens >= 0
    and type(c.cue_words) is tuple and len(c.cue_words) >= 1 and all(_text(w) for w in c.cue_words) and _int(c.seed),
    "MetricsConfig": lambda c: all(_int(v) and v >= 1 for v in (c.span_threshold, c.discoverable_tokens,
                                                                c.bootstrap_samples))
    and _num(c.nv_threshold) and 0 <= c.nv_threshold <= 1 and type(c.k_values) is tuple and len(c.k_values) >= 1
    and all(_int(k) and k >= 1 for k in c.k_values) and type(c.exclude_degenerate) is bool
    and _num(c.loop_zlib_ratio) and c.loop_zlib_ratio >= 0 and _num(c.loop_letter_share) and c.loop_letter_share >= 0
    and _num(c.confidence) and 0 < c.confidence < 1 and _int(c.seed)
    and all(valid(getattr(c, f.name)) for f in dataclasses.fields(c) if dataclasses.is_dataclass(getattr(c, f.name))),
    "ExperimentConfig": lambda c: _text(c.name) and c.name not in (".", "..") and "/" not in c.name
    and "\\" not in c.name and valid(c.model) and type(c.index_dirs) is tuple and len(c.index_dirs) >= 1
    and all(_text(d) for d in c.index_dirs) and type(c.settings) is tuple and len(c.settings) >= 1
    and all(valid(s) for s in c.settings) and len({s.name for s in c.settings}) == len(c.settings)
    and valid(c.decoding) and valid(c.trace) and valid(c.metrics) and _text(c.output_dir)
    and _opt_text(c.cache_dir) and _opt_text(c.index_tokenizer) and max(c.metrics.k_values) < c.trace.eidetic_cap
    and valid(c.floor),
    "FloorConfig": lambda c: type(c.holdout) is bool and _text(c.name)
    and c.name not in ("prefix", "unconditional", "minimal-cue"),
}


def valid(cfg) -> bool:
    """Independent check of a built config; a class without a checker here (added later) is checked
    field by field for finite numbers and strings without control characters only."""
    check = CHECKS.get(type(cfg).__name__)
    if check is not None:
        return bool(check(cfg))
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if isinstance(v, float) and not math.isfinite(v) or isinstance(v, str) and not _text(v, empty_ok=True):
            return False
    return True


# -- arbitrary values -------------------------------------------------------------------------------------
ANY_CHAR = st.characters(codec=None, categories=None)  # control characters and lone surrogates included
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-2, max_value=12),
    st.integers(min_value=2 ** 62, max_value=2 ** 200), st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1.5, max_value=1.5), st.text(ANY_CHAR, max_size=12),
    st.sampled_from(["", " ", ".", "..", "/", "a/b", "prefix", "generic", "auto", "cpu", "cuda:0", "cuda:x",
                     "float32", "openai", "hf", "llama.cpp", "text", "mixed", "union", "skip", "stop", "jsonl",
                     "http://127.0.0.1:8000/v1", "ftp://x", "\x00", "a\x1b[2J", "\ud800", "\u202e", "The"]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=3),
    st.tuples(inner, inner)), max_leaves=8)


def _nested_table(cls_name: str) -> st.SearchStrategy:
    """A table for a nested config: its base with arbitrary values in some of its fields."""
    cls = getattr(config, cls_name)
    names = [f.name for f in dataclasses.fields(cls)]
    return st.dictionaries(st.sampled_from(names), VALUES, max_size=3).map(lambda d: {**BASE.get(cls_name, {}), **d})


def _field_value(cls, f) -> st.SearchStrategy:
    hints = __import__("typing").get_type_hints(cls)
    tp = hints[f.name]
    if dataclasses.is_dataclass(tp):
        return st.one_of(VALUES, _nested_table(tp.__name__))
    return VALUES


def _build(cls, table: dict):
    """Build through from_dict and through the constructor; both must agree."""
    try:
        got = from_dict(cls, table)
    except ConfigError as e:
        assert str(e) and "\n" not in str(e)  # one line
        return None
    assert isinstance(got, cls) and valid(got), f"{cls.__name__} accepted a bad value: {got!r}"
    assert from_dict(cls, to_dict(got)) == got  # what is written to a manifest reads back the same
    return got


FIELDS = [(cls, f) for cls in CONFIG_CLASSES for f in dataclasses.fields(cls)]


@pytest.mark.parametrize("cls, f", FIELDS, ids=[f"{c.__name__}.{f.name}" for c, f in FIELDS])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_value_in_any_field_gives_a_valid_config_or_a_config_error(cls, f, data):
    value = data.draw(_field_value(cls, f), label=f.name)
    _build(cls, {**BASE.get(cls.__name__, {}), f.name: value})


@pytest.mark.parametrize("cls", CONFIG_CLASSES, ids=[c.__name__ for c in CONFIG_CLASSES])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_values_in_several_fields_give_a_valid_config_or_a_config_error(cls, data):
    names = [f.name for f in dataclasses.fields(cls)]
    table = data.draw(st.dictionaries(st.sampled_from(names), VALUES, min_size=1, max_size=4))
    _build(cls, {**BASE.get(cls.__name__, {}), **table})


def test_every_config_class_has_an_independent_checker():
    assert sorted(c.__name__ for c in CONFIG_CLASSES if c.__name__ not in CHECKS) == []


def test_defaults_are_valid():
    for cls in CONFIG_CLASSES:
        assert valid(from_dict(cls, dict(BASE.get(cls.__name__, {})))), cls.__name__


# -- the cases from the issue, each exactly ---------------------------------------------------------------
@pytest.mark.parametrize("cls, table, match", [
    (MetricsConfig, {"confidence": 2.0}, r"confidence must be in \(0, 1\)"),
    (MetricsConfig, {"confidence": 0}, r"confidence must be in \(0, 1\)"),
    (MetricsConfig, {"bootstrap_samples": 0}, "bootstrap_samples must be at least 1"),
    (MetricsConfig, {"bootstrap_samples": -5}, "bootstrap_samples must be at least 1"),
    (MetricsConfig, {"span_threshold": -3}, "span_threshold must be at least 1"),
    (SettingConfig, {"name": "generic", "n_prompts": -1}, "n_prompts must be at least 1"),
    (SettingConfig, {"name": "prefix", "prompts_path": "p.jsonl"}, "builds its own prompts"),
    (ModelConfig, {"name_or_path": "m", "backend": "tgi"}, "backend must be one of"),
    (ModelConfig, {"name_or_path": "m", "backend": "openai"}, "needs model.base_url"),
    (DecodingConfig, {"temperature": float("nan")}, "finite"),
    (DecodingConfig, {"repetition_penalty": 0}, "repetition_penalty must be > 0"),
    (ExperimentConfig, {**BASE["ExperimentConfig"], "name": "a\x00b"}, "control character"),
    (ExperimentConfig, {**BASE["ExperimentConfig"], "name": "../x"}, "one folder name"),
])
def test_issue_cases_are_one_config_error(cls, table, match):
    with pytest.raises(ConfigError, match=match) as e:
        from_dict(cls, table)
    assert "\n" not in str(e.value)


TOML = """name = "x"
index_dirs = "idx"
[model]
name_or_path = "org/model"
[[settings]]
name = "generic"
prompts_path = "p.jsonl"
"""


@pytest.mark.parametrize("extra, match", [
    ("[metrics]\nconfidence = 2.0\n", "confidence must be in"),
    ("[metrics]\nbootstrap_samples = 0\n", "bootstrap_samples must be at least 1"),
    ("[metrics]\nspan_threshold = -3\n", "span_threshold must be at least 1"),
    ("[[settings]]\nname = \"prefix\"\nprompts_path = \"p.jsonl\"\n", "builds its own prompts"),
    ("[[settings]]\nname = \"other\"\nn_prompts = -1\nprompts_path = \"o.jsonl\"\n", "n_prompts must be at least 1"),
])
def test_toml_issue_cases_are_one_config_error_naming_the_file(tmp_path, extra, match):
    path = tmp_path / "exp.toml"
    path.write_text(TOML + extra, encoding="utf-8")
    with pytest.raises(ConfigError, match=match) as e:
        load_experiment(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_unknown_backend_is_refused_at_load_before_the_cache_is_opened(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text(TOML.replace('name_or_path = "org/model"', 'name_or_path = "org/model"\nbackend = "magic"'))
    out = subprocess.run([sys.executable, "-m", "core", "run", str(path), "--cache-dir", str(tmp_path / "cache")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "backend must be one of" in out.stderr
    assert not (tmp_path / "cache").exists()  # refused before the cache is even opened


def test_a_toml_file_with_a_utf8_bom_loads(tmp_path):
    plain, bom = tmp_path / "plain.toml", tmp_path / "bom.toml"
    plain.write_text(TOML, encoding="utf-8")
    bom.write_bytes(b"\xef\xbb\xbf" + TOML.encode("utf-8"))
    assert load_experiment(bom) == load_experiment(plain)
    assert load_experiment(bom).name == "x"
