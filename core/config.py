"""Frozen, typed configuration values passed explicitly through the engine.

Every knob of a run lives here, with its paper default and a one-line why. Configs hash by value,
so they serve as cache keys (``st.cache_data``, :mod:`core.runs.cache`) and are recorded in results.
"""
from __future__ import annotations

import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any

from core.errors import ConfigError

SETTINGS = ("prefix", "generic", "specific", "unconditional", "minimal-cue")
NATURAL_SETTINGS = ("generic", "specific", "unconditional", "minimal-cue")
TRACE_MODES = ("text", "mixed")
MERGE_POLICIES = ("union", "always", "none")


@dataclass(frozen=True)
class AdaptiveParam:
    """A threshold that scales with the reference length n: clamp(round(frac * n), lo, hi).

    ``round`` is Python's (half to even), as in the authors' code. A fixed value v is
    ``AdaptiveParam(0.0, v, v)``.
    """

    frac: float
    lo: int
    hi: int

    def __call__(self, n: int) -> int:
        return max(self.lo, min(self.hi, round(self.frac * n)))

    @classmethod
    def fixed(cls, value: int) -> AdaptiveParam:
        return cls(0.0, value, value)


@dataclass(frozen=True)
class NVRConfig:
    """Near-verbatim recall thresholds (SPEC section 5); defaults are the authors'."""

    l1: AdaptiveParam = AdaptiveParam(0.15, 2, 20)  # min matched words after merge pass 1
    l2: AdaptiveParam = AdaptiveParam(0.35, 4, 100)  # min matched words after merge pass 2
    gap1: AdaptiveParam = AdaptiveParam(0.02, 1, 6)  # max gap (words) merged in pass 1
    align1: AdaptiveParam = AdaptiveParam(0.01, 1, 3)  # max |gap_ref - gap_cand| in pass 1
    gap2: AdaptiveParam = AdaptiveParam(0.08, 2, 12)  # max gap (words) merged in pass 2
    align2: AdaptiveParam = AdaptiveParam(0.03, 1, 5)  # max |gap_ref - gap_cand| in pass 2


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


@dataclass(frozen=True)
class TraceConfig:
    """SimpleTrace parameters (SPEC section 4); defaults are the paper's."""

    mode: str = "text"  # text (prose admissibility) | mixed (code and mixed data)
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
        if self.workers < 0:
            raise ConfigError(f"workers must be >= 0 (0: every available core), got {self.workers}")
        if self.mode not in TRACE_MODES:
            raise ConfigError(f"trace mode must be one of {TRACE_MODES}, got {self.mode!r}")
        if self.merge not in MERGE_POLICIES:
            raise ConfigError(f"merge must be one of {MERGE_POLICIES}, got {self.merge!r}")
        if not 0 < self.rarity_fraction <= 1:
            raise ConfigError(f"rarity_fraction must be in (0, 1], got {self.rarity_fraction}")
        if self.docs_per_span < 1 or self.window_factor < 1:
            raise ConfigError("docs_per_span and window_factor must be at least 1")


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
        if self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.num_samples < 1 or self.max_new_tokens < 1 or self.batch_size < 1:
            raise ConfigError("num_samples, max_new_tokens and batch_size must be at least 1")
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
    nvr: NVRConfig = NVRConfig()  # near-verbatim recall block thresholds


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
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown field(s) {unknown}; valid fields: {sorted(known)}")
    kwargs = {}
    for name, value in data.items():
        default = getattr(cls, name, None) if name in cls.__dataclass_fields__ else None
        if is_dataclass(default) and isinstance(value, dict):
            value = from_dict(type(default), value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{cls.__name__}: {e}") from None


# -- type checks of a TOML table (core.runs.experiment.load_experiment) --------------------------------
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


__all__ = [n for n in dir() if n[0].isupper()] + ["to_dict", "from_dict", "check_table", "check_types", "asdict", "field"]
