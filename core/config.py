"""Frozen, typed configuration values passed explicitly through the engine.

Every knob of a run lives here, with its paper default and a one-line why. Configs hash by value,
so they serve as cache keys (``st.cache_data``, :mod:`core.runs.cache`) and are recorded in results.
"""
from __future__ import annotations

import functools
import math
import re
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any

from core.errors import ConfigError

CAPABILITY = "prefix"  # the capability (attack) setting every natural setting is compared against (PM)
SETTINGS = (CAPABILITY, "generic", "specific", "unconditional", "minimal-cue")
NATURAL_SETTINGS = ("generic", "specific", "unconditional", "minimal-cue")
TRACE_MODES = ("text", "mixed")
PROMPT_FORMATS = ("auto", "raw", "chat")
SETTING_KINDS = ("prompts", "floor")  # floor: a chance baseline of texts known not to be in the corpus (SPEC 6)
MERGE_POLICIES = ("union", "always", "none")
BUILT_IN_SETTINGS = ("prefix", "unconditional", "minimal-cue")  # prompts made by the tool: no prompts_path
CORPUS_FORMATS = ("auto", "jsonl", "parquet", "csv", "txt", "hf")
BAD_ROW_POLICIES = ("skip", "stop")
BACKENDS = ("hf", "openai")
SERVER_APIS = ("openai", "llama.cpp")
DTYPES = ("auto", "float32", "bfloat16", "float16")
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
# C0/C1 control characters (tab and newline too: no config string needs them) and lone surrogates
_BAD_CHARS = re.compile("[\u0000-\u001f\u007f-\u009f\ud800-\udfff]")


# -- validation where a config is built (every __post_init__) ----------------------------------------
def _type_name(tp: Any) -> str:
    args = typing.get_args(tp)
    if typing.get_origin(tp) is tuple:
        return f"a list of {_type_name(args[0])}s"
    if args:
        return " or ".join(_type_name(a) for a in args)
    return {type(None): "null", bool: "bool", int: "integer", float: "number", str: "string"}.get(
        tp, getattr(tp, "__name__", str(tp)))


def _is_a(value: Any, tp: Any) -> bool:
    """``value`` has type ``tp``: bool is not an int, an int is a float, tuples are checked item by item."""
    return _checker(tp)(value)


@functools.cache
def _checker(tp: Any):
    """A predicate for type ``tp`` (built once per type: configs are built often)."""
    args, origin = typing.get_args(tp), typing.get_origin(tp)
    if origin is tuple:
        item = _checker(args[0])
        return lambda v: isinstance(v, tuple) and all(item(x) for x in v)
    if args:  # a union
        parts = tuple(_checker(a) for a in args)
        return lambda v: any(p(v) for p in parts)
    if tp is type(None):
        return lambda v: v is None
    if tp is bool:
        return lambda v: isinstance(v, bool)
    if tp is int:
        return lambda v: isinstance(v, int) and not isinstance(v, bool)
    if tp is float:
        return lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    return lambda v: isinstance(v, tp)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _check_fields(obj: Any) -> None:
    """Every field of dataclass ``obj`` holds a value of its annotated type; numbers are finite and
    strings hold no control characters or lone surrogates. Raises a one-line ConfigError naming it."""
    cls = type(obj)
    hints = _hints(cls)
    for f in fields(obj):
        value, tp = getattr(obj, f.name), hints[f.name]
        where = f"{cls.__name__}.{f.name}"
        if not _is_a(value, tp):
            raise ConfigError(f"{where} = {_short(value)}: expected {_type_name(tp)}")
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"{where} = {v}: expected a finite number")
            if isinstance(v, str) and _BAD_CHARS.search(v):
                raise ConfigError(f"{where} = {_short(v)}: contains a control character or invalid unicode")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _at_least(obj: Any, minimum: int, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        _require(value >= minimum, f"{type(obj).__name__}.{name} must be at least {minimum}, got {value}")


def _one_of(obj: Any, name: str, allowed: tuple[str, ...]) -> None:
    value = getattr(obj, name)
    _require(value in allowed, f"{type(obj).__name__}.{name} must be one of {allowed}, got {value!r}")


def _non_empty(obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        _require(value is None or value.strip() != "", f"{type(obj).__name__}.{name} must not be empty")


@dataclass(frozen=True)
class AdaptiveParam:
    """A threshold that scales with the reference length n: clamp(round(frac * n), lo, hi).

    ``round`` is Python's (half to even), as in the authors' code. A fixed value v is
    ``AdaptiveParam(0.0, v, v)``.
    """

    frac: float
    lo: int
    hi: int

    def __post_init__(self):
        _check_fields(self)
        _require(self.frac >= 0, f"AdaptiveParam.frac must be >= 0, got {self.frac}")
        _at_least(self, 0, "lo")
        _require(self.hi >= self.lo, f"AdaptiveParam: hi ({self.hi}) must be >= lo ({self.lo})")

    def __call__(self, n: int) -> int:
        return max(self.lo, min(self.hi, round(self.frac * n)))

    @classmethod
    def fixed(cls, value: int) -> AdaptiveParam:
        return cls(0.0, value, value)


@dataclass(frozen=True)
class NVBlocksConfig:
    """Near-verbatim recall block thresholds (SPEC section 5); defaults are the authors'. A scoring
    parameter: traces store the matching blocks, and scoring re-applies these (core.scoring.metrics.score_traces)."""

    l1: AdaptiveParam = AdaptiveParam(0.15, 2, 20)  # min matched words after merge pass 1
    l2: AdaptiveParam = AdaptiveParam(0.35, 4, 100)  # min matched words after merge pass 2
    gap1: AdaptiveParam = AdaptiveParam(0.02, 1, 6)  # max gap (words) merged in pass 1
    align1: AdaptiveParam = AdaptiveParam(0.01, 1, 3)  # max |gap_ref - gap_cand| in pass 1
    gap2: AdaptiveParam = AdaptiveParam(0.08, 2, 12)  # max gap (words) merged in pass 2
    align2: AdaptiveParam = AdaptiveParam(0.03, 1, 5)  # max |gap_ref - gap_cand| in pass 2

    def __post_init__(self):
        _check_fields(self)


@dataclass(frozen=True)
class CorpusConfig:
    """Where the training corpus (or a sample of it) is and how to read it."""

    path: str  # file, folder of .txt, saved HF dataset folder, or "hf:<name>" for the hub
    format: str = "auto"  # auto | jsonl | parquet | csv | txt | hf
    text_field: str = "text"  # column/key holding the document text
    id_field: str | None = "id"  # column/key holding the document id (None: line/row number)
    sample_size: int | None = None  # None: the whole corpus; else a seeded sample of N documents
    seed: int = 42  # seed of the sample
    on_bad_rows: str = "skip"  # skip (count and report) | stop (raise BadRowsError)
    split: str = "train"  # split of a Hugging Face dataset

    def __post_init__(self):
        _check_fields(self)
        _non_empty(self, "path", "text_field", "id_field", "split")
        _require(self.format in CORPUS_FORMATS, f"unknown corpus format {self.format!r}: use one of {CORPUS_FORMATS}")
        _one_of(self, "on_bad_rows", BAD_ROW_POLICIES)
        _require(self.sample_size is None or self.sample_size >= 1,
                 f"sample_size must be at least 1 or None (whole corpus), got {self.sample_size}")


@dataclass(frozen=True)
class TraceConfig:
    """SimpleTrace parameters (SPEC section 4); defaults are the paper's."""

    mode: str = "mixed"  # mixed (a verbatim copy across a line or sentence end still counts) | text (the paper's prose rule)
    rarity_fraction: float = 0.05  # K = max(ceil(fraction * L), 1) rarest spans are kept
    docs_per_span: int = 10  # documents retrieved per kept span
    window_factor: int = 5  # document window = window_factor * L tokens centred on the match
    merge: str = "union"  # union: merge overlaps only if the union occurs | always | none
    anchor_spans: int = 8  # mixed mode: anchors queried for normalized full matches
    min_anchor_tokens: int = 4  # mixed mode: shortest anchor span
    eidetic_cap: int = 11  # distinct documents counted for k-eidetic (enough for k <= 10)
    seed: int = 42  # seed of the occurrence sample when a span occurs more than docs_per_span times
    workers: int = 0  # tracing processes; 0 = every core this process may use (results do not depend on it)

    def __post_init__(self):
        _check_fields(self)
        _require(self.workers >= 0, f"TraceConfig.workers must be >= 0 (0: every available core), got {self.workers}")
        if self.mode not in TRACE_MODES:
            raise ConfigError(f"trace mode must be one of {TRACE_MODES}, got {self.mode!r}")
        if self.merge not in MERGE_POLICIES:
            raise ConfigError(f"merge must be one of {MERGE_POLICIES}, got {self.merge!r}")
        if not 0 < self.rarity_fraction <= 1:
            raise ConfigError(f"rarity_fraction must be in (0, 1], got {self.rarity_fraction}")
        if self.docs_per_span < 1 or self.window_factor < 1:
            raise ConfigError("docs_per_span and window_factor must be at least 1")
        _at_least(self, 1, "anchor_spans", "min_anchor_tokens", "eidetic_cap")


@dataclass(frozen=True)
class DecodingConfig:
    """How completions are generated (SPEC section 3); defaults are the paper's (greedy)."""

    temperature: float = 0.0  # 0 => greedy
    top_p: float = 1.0  # nucleus sampling mass (1.0: off)
    top_k: int = 0  # top-k sampling (0: off)
    repetition_penalty: float = 1.0  # 1.0: off
    num_samples: int = 1  # completions per prompt (sample index 0..n-1)
    max_new_tokens: int = 256  # completion budget
    max_prompt_tokens: int = 256  # prompts are truncated (keeping their start) to this many tokens
    batch_size: int = 16  # prompts per forward batch (halved on CUDA out-of-memory)
    seed: int = 42  # base seed; each (prompt, sample index) derives its own

    def __post_init__(self):
        _check_fields(self)
        if self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.num_samples < 1 or self.max_new_tokens < 1 or self.batch_size < 1:
            raise ConfigError("num_samples, max_new_tokens and batch_size must be at least 1")
        _at_least(self, 0, "top_k")
        _at_least(self, 1, "max_prompt_tokens")
        _require(self.repetition_penalty > 0, f"repetition_penalty must be > 0 (1.0: off), got {self.repetition_penalty}")
        if self.temperature == 0 and self.num_samples > 1:
            raise ConfigError("greedy decoding (temperature 0) gives identical samples: use num_samples = 1 or a temperature > 0")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass(frozen=True)
class ModelConfig:
    """Which model generates, and where it runs."""

    name_or_path: str  # local folder or hub id (or the served model name for the openai backend)
    revision: str | None = None  # hub revision (branch, tag or commit)
    device: str = "auto"  # auto (cuda, then mps, then cpu) | cuda | cuda:N | mps | cpu
    dtype: str = "auto"  # auto (bf16 on capable GPUs, else fp32) | float32 | bfloat16 | float16
    trust_remote_code: bool = False  # runs code from the model folder: only for models you trust
    backend: str = "hf"  # hf (transformers in-process) | openai (an OpenAI-compatible server)
    base_url: str | None = None  # openai backend: e.g. http://127.0.0.1:8000/v1
    api_key_env: str = "OPENAI_API_KEY"  # openai backend: environment variable holding the key
    concurrency: int = 8  # openai backend: requests in flight
    max_retries: int = 5  # openai backend: retries with exponential backoff
    server_api: str = "openai"  # openai backend: "openai" (vLLM, core.generation.server) | "llama.cpp" (llama-cpp-python's server)

    def __post_init__(self):
        _check_fields(self)
        _non_empty(self, "name_or_path", "revision", "api_key_env")
        _one_of(self, "backend", BACKENDS)
        _one_of(self, "server_api", SERVER_APIS)
        _one_of(self, "dtype", DTYPES)
        _require(bool(_DEVICE.fullmatch(self.device)),
                 f"ModelConfig.device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")
        _at_least(self, 1, "concurrency")
        _at_least(self, 0, "max_retries")
        _require(self.backend != "openai" or bool(self.base_url),
                 "the openai backend needs model.base_url, e.g. http://127.0.0.1:8000/v1")
        _require(self.base_url is None or self.base_url.startswith(("http://", "https://")),
                 f"model.base_url must start with http:// or https://, got {self.base_url!r}")


@dataclass(frozen=True)
class SettingConfig:
    """One prompting regime (SPEC section 2)."""

    name: str  # prefix | generic | specific | unconditional | minimal-cue | any name for a file
    n_prompts: int = 100  # prompts drawn (all of a file when it holds fewer)
    prompts_path: str | None = None  # JSONL prompt set (text, optional domain, optional id)
    prefix_tokens: int = 50  # prefix: P tokens of the document form the prompt
    min_doc_tokens: int = 100  # prefix: only documents with at least M tokens
    cue_words: tuple[str, ...] = ("The",)  # minimal-cue: one frequent word after the start token
    seed: int = 42  # seed of the prompt/document sample
    prompt_format: str = "auto"  # auto (chat for prompt-file settings when the tokenizer has a chat template, else raw) | raw | chat
    system_prompt: str | None = None  # chat format: the system turn (None: the template's own default, if any)
    kind: str = "prompts"  # prompts (the model completes them) | floor (the prompts_path texts ARE the completions: texts known not to be in the corpus, a chance baseline; nothing is generated)

    def __post_init__(self):
        _check_fields(self)
        _require(self.prompt_format in PROMPT_FORMATS,
                 f"SettingConfig.prompt_format must be one of {PROMPT_FORMATS}, got {self.prompt_format!r}")
        _non_empty(self, "name", "prompts_path")
        _at_least(self, 1, "n_prompts", "prefix_tokens")
        _at_least(self, 0, "min_doc_tokens")
        _require(bool(self.cue_words) and all(w.strip() for w in self.cue_words),
                 "SettingConfig.cue_words must hold at least one non-empty word")
        _require(not (self.name in BUILT_IN_SETTINGS and self.prompts_path), (
            f"setting {self.name!r} builds its own prompts and cannot read prompts_path = {self.prompts_path!r}; "
            "remove prompts_path, or give the setting another name to use the file"))
        _require(self.kind in SETTING_KINDS, f"SettingConfig.kind must be one of {SETTING_KINDS}, got {self.kind!r}")
        _require(self.kind != "floor" or (bool(self.prompts_path) and self.name not in BUILT_IN_SETTINGS), (
            f"setting {self.name!r} of kind 'floor' needs prompts_path (a JSONL of texts known not to be in "
            "the corpus) and a name other than the built-in settings"))


@dataclass(frozen=True)
class MetricsConfig:
    """Scoring thresholds (SPEC section 6): all can change without re-tracing."""

    span_threshold: int = 50  # R_N: share of generations with a final span >= N tokens
    nv_threshold: float = 0.5  # generations/docs with nv_recall above this
    k_values: tuple[int, ...] = (1, 5, 10)  # k-eidetic rates
    discoverable_tokens: int = 50  # prefix: completion reproduces the true next N tokens
    exclude_degenerate: bool = False  # drop degenerate repetition loops before scoring
    loop_zlib_ratio: float = 0.1  # degenerate: zlib ratio (compressed/raw) below this ...
    loop_letter_share: float = 0.5  # ... and under this share of letters
    bootstrap_samples: int = 10_000  # B of the percentile bootstrap over prompts
    confidence: float = 0.95  # interval coverage
    seed: int = 42  # bootstrap seed
    nv_blocks: NVBlocksConfig = NVBlocksConfig()  # near-verbatim recall block thresholds (TOML [metrics.nv_blocks])
    count_echo: bool = False  # count spans the completion copied from its own prompt as leaks (False: the prompt, not the corpus, is their source)

    def __post_init__(self):
        _check_fields(self)
        _at_least(self, 1, "span_threshold", "discoverable_tokens", "bootstrap_samples")
        _require(0 < self.confidence < 1, f"MetricsConfig.confidence must be in (0, 1), e.g. 0.95; got {self.confidence}")
        _require(0 <= self.nv_threshold <= 1, f"MetricsConfig.nv_threshold must be in [0, 1], got {self.nv_threshold}")
        _require(bool(self.k_values) and min(self.k_values) >= 1,
                 f"MetricsConfig.k_values must be one or more integers >= 1, got {list(self.k_values)}")
        _require(self.loop_zlib_ratio >= 0 and self.loop_letter_share >= 0,
                 "MetricsConfig.loop_zlib_ratio and loop_letter_share must be >= 0")


@dataclass(frozen=True)
class ExperimentConfig:
    """One run: model x corpus index x settings, decoded, traced and scored."""

    name: str
    model: ModelConfig
    index_dirs: tuple[str, ...]  # one folder per shard
    settings: tuple[SettingConfig, ...]
    decoding: DecodingConfig = DecodingConfig()
    trace: TraceConfig = TraceConfig()
    metrics: MetricsConfig = MetricsConfig()
    output_dir: str = "results"  # the results folder is output_dir/name
    cache_dir: str | None = None  # None: $PROPME_CACHE_DIR or ~/.cache/propme
    index_tokenizer: str | None = None  # None: the model's own tokenizer

    def __post_init__(self):
        _check_fields(self)
        _require(self.name.strip() not in ("", ".", "..") and not any(c in self.name for c in "/\\"),
                 f"run name {self.name!r} must be one folder name: not empty, '.' or '..', and without / or \\")
        _non_empty(self, "output_dir", "cache_dir", "index_tokenizer")
        _require(bool(self.index_dirs) and all(d.strip() for d in self.index_dirs),
                 "ExperimentConfig.index_dirs must name one or more index folders")
        _require(bool(self.settings), "ExperimentConfig.settings must hold one or more settings")
        names = [s.name for s in self.settings]
        _require(len(set(names)) == len(names), f"setting names must be unique, got {names}")
        _require(max(self.metrics.k_values) < self.trace.eidetic_cap,
                 f"k_values {list(self.metrics.k_values)} need trace.eidetic_cap > {max(self.metrics.k_values)} "
                 f"(it is {self.trace.eidetic_cap}): raise eidetic_cap or lower k_values")


_OLD_METRICS_KEYS = {"nvr": "nv_blocks"}  # renamed MetricsConfig fields: old name -> new name


def upgrade_metrics_table(data: Any, where: str = "metrics") -> tuple[Any, list[str]]:
    """A ``[metrics]`` table (TOML or manifest) with renamed keys moved to their new names, and a
    deprecation message per renamed key. Both names at once is an error.

    >>> upgrade_metrics_table({"nvr": {}, "seed": 1})
    ({'seed': 1, 'nv_blocks': {}}, ['metrics.nvr is deprecated: rename it to metrics.nv_blocks'])
    """
    if not isinstance(data, dict):
        return data, []
    out, notes = dict(data), []
    for old, new in _OLD_METRICS_KEYS.items():
        if old in out:
            if new in out:
                raise ConfigError(f"{where} has both {old!r} (old name) and {new!r}: keep only {new!r}")
            out[new] = out.pop(old)
            notes.append(f"{where}.{old} is deprecated: rename it to {where}.{new}")
    return out, notes


def to_dict(cfg: Any) -> Any:
    """A JSON-ready dict of a (nested) config, tuples as lists."""
    if is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    return cfg


def from_dict(cls: type, data: dict) -> Any:
    """Build config ``cls`` from a dict, recursing into nested configs; unknown keys are errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{cls.__name__}: expected a table of fields, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(map(str, set(data) - set(known)))
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown field(s) {unknown}; valid fields: {sorted(known)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        inner = (typing.get_args(tp) or (None,))[0] if typing.get_origin(tp) is tuple else None
        if is_dataclass(tp) and isinstance(value, dict):  # a nested config given as a table
            value = from_dict(tp, value)
        elif isinstance(value, list):
            value = tuple(from_dict(inner, v) if is_dataclass(inner) and isinstance(v, dict) else v for v in value)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{cls.__name__}: {e}") from None


# -- type checks of a TOML table (core.config_file.load_experiment) --------------------------------
def _check_value(value: Any, tp: Any, where: str) -> None:
    """Raise ConfigError when ``value`` is not of the basic type (str/int/float/bool/None) ``tp`` names."""
    allowed = tuple(a for a in (typing.get_args(tp) or (tp,)) if isinstance(a, type))
    if not allowed or any(a in (tuple, list, dict) or is_dataclass(a) for a in allowed):
        return
    ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
    if float in allowed and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        names = " or ".join("null" if a is type(None) else a.__name__ for a in allowed)
        raise ConfigError(f"{where} = {value!r}: expected {names}")


def check_table(cls: type, data: Any, where: str) -> None:
    """Check the basic types of a TOML table's values BEFORE ``cls`` is built, so a wrong type is
    reported by its key (``experiment.decoding.temperature = 'hot': expected float``) and not by whatever
    comparison in ``__post_init__`` it trips over. Unknown keys are left to :func:`from_dict`."""
    if not isinstance(data, dict):
        return
    hints = typing.get_type_hints(cls)
    for name, value in data.items():
        if name not in hints:
            continue
        default = getattr(cls, name, None)
        if is_dataclass(default):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.{name} = {value!r}: expected a table of fields "
                                  f"{sorted(f.name for f in fields(default))}")
            check_table(type(default), value, f"{where}.{name}")
        else:
            _check_value(value, hints[name], f"{where}.{name}")


def check_types(obj: Any, where: str) -> None:
    """Raise ConfigError when a field holds a value of the wrong basic type (str/int/float/bool)."""
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        value, tp = getattr(obj, f.name), hints[f.name]
        if typing.get_origin(tp) in (tuple, list, dict):
            for i, item in enumerate(value if isinstance(value, (tuple, list)) else ()):
                if is_dataclass(item):
                    check_types(item, f"{where}.{f.name}[{i}]")
            continue
        if is_dataclass(value):
            check_types(value, f"{where}.{f.name}")
            continue
        _check_value(value, tp, f"{where}.{f.name}")


__all__ = [n for n in dir() if n[0].isupper()] + ["to_dict", "from_dict", "check_table", "check_types", "asdict", "field",
                                                          "upgrade_metrics_table"]
