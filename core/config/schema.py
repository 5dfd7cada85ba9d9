"""Frozen, typed configuration values passed explicitly through the engine.

Every knob of a run lives here, with its paper default and a one-line why. Configs hash by value,
so they serve as cache keys (``st.cache_data``, :mod:`core.runs.cache`) and are recorded in results.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from core.config.checks import at_least, check_fields, non_empty, one_of, require
from core.config.limits import check_products
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
BACKENDS = ("hf", "openai")  # implemented in core/generation/backends.py, one module each
LOCAL_MODEL_BACKENDS = ("hf",)  # name_or_path is a model folder or hub id it loads (else a served model's name)
SERVER_APIS = ("openai", "llama.cpp")
DTYPES = ("auto", "float32", "bfloat16", "float16")
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


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
        check_fields(self)
        require(self.frac >= 0, f"AdaptiveParam.frac must be >= 0, got {self.frac}")
        at_least(self, 0, "lo")
        require(self.hi >= self.lo, f"AdaptiveParam: hi ({self.hi}) must be >= lo ({self.lo})")

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
        check_fields(self)


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
        check_fields(self)
        non_empty(self, "path", "text_field", "id_field", "split")
        require(self.format in CORPUS_FORMATS, f"unknown corpus format {self.format!r}: use one of {CORPUS_FORMATS}")
        one_of(self, "on_bad_rows", BAD_ROW_POLICIES)
        require(self.sample_size is None or self.sample_size >= 1,
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
    ray_address: str = ""  # trace on a Ray cluster: "local", "auto" or host:port (docs/scale.md); "" = this machine

    def __post_init__(self):
        check_fields(self)
        require(self.workers >= 0, f"TraceConfig.workers must be >= 0 (0: every available core), got {self.workers}")
        if self.mode not in TRACE_MODES:
            raise ConfigError(f"trace mode must be one of {TRACE_MODES}, got {self.mode!r}")
        if self.merge not in MERGE_POLICIES:
            raise ConfigError(f"merge must be one of {MERGE_POLICIES}, got {self.merge!r}")
        if not 0 < self.rarity_fraction <= 1:
            raise ConfigError(f"rarity_fraction must be in (0, 1], got {self.rarity_fraction}")
        if self.docs_per_span < 1 or self.window_factor < 1:
            raise ConfigError("docs_per_span and window_factor must be at least 1")
        at_least(self, 1, "anchor_spans", "min_anchor_tokens", "eidetic_cap")


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
    batch_size: int = 16  # prompts per forward batch (halved on CUDA out-of-memory; a CPU decodes two at once, interleaved)
    seed: int = 42  # base seed; each (prompt, sample index) derives its own

    def __post_init__(self):
        check_fields(self)
        if self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.num_samples < 1 or self.max_new_tokens < 1 or self.batch_size < 1:
            raise ConfigError("num_samples, max_new_tokens and batch_size must be at least 1")
        at_least(self, 0, "top_k")
        at_least(self, 1, "max_prompt_tokens")
        require(self.repetition_penalty > 0, f"repetition_penalty must be > 0 (1.0: off), got {self.repetition_penalty}")
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
        check_fields(self)
        non_empty(self, "name_or_path", "revision", "api_key_env")
        one_of(self, "backend", BACKENDS)
        one_of(self, "server_api", SERVER_APIS)
        one_of(self, "dtype", DTYPES)
        require(bool(_DEVICE.fullmatch(self.device)),
                 f"ModelConfig.device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")
        at_least(self, 1, "concurrency")
        at_least(self, 0, "max_retries")
        require(self.backend != "openai" or bool(self.base_url),
                 "the openai backend needs model.base_url, e.g. http://127.0.0.1:8000/v1")
        require(self.base_url is None or self.base_url.startswith(("http://", "https://")),
                 f"model.base_url must start with http:// or https://, got {self.base_url!r}")

    @property
    def local_model(self) -> bool:
        """Whether ``name_or_path`` names a model folder or hub id the backend loads (a tokenizer comes from it,
        a relative path is read from the experiment file's folder, trust_remote_code applies), not a served name."""
        return self.backend in LOCAL_MODEL_BACKENDS


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
        check_fields(self)
        require(self.prompt_format in PROMPT_FORMATS,
                 f"SettingConfig.prompt_format must be one of {PROMPT_FORMATS}, got {self.prompt_format!r}")
        non_empty(self, "name", "prompts_path")
        at_least(self, 1, "n_prompts", "prefix_tokens")
        at_least(self, 0, "min_doc_tokens")
        require(bool(self.cue_words) and all(w.strip() for w in self.cue_words),
                 "SettingConfig.cue_words must hold at least one non-empty word")
        require(not (self.name in BUILT_IN_SETTINGS and self.prompts_path), (
            f"setting {self.name!r} builds its own prompts and cannot read prompts_path = {self.prompts_path!r}; "
            "remove prompts_path, or give the setting another name to use the file"))
        one_of(self, "kind", SETTING_KINDS)
        require(self.kind != "floor" or (bool(self.prompts_path) and self.name not in BUILT_IN_SETTINGS), (
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
        check_fields(self)
        at_least(self, 1, "span_threshold", "discoverable_tokens", "bootstrap_samples")
        require(0 < self.confidence < 1, f"MetricsConfig.confidence must be in (0, 1), e.g. 0.95; got {self.confidence}")
        require(0 <= self.nv_threshold <= 1, f"MetricsConfig.nv_threshold must be in [0, 1], got {self.nv_threshold}")
        require(bool(self.k_values) and min(self.k_values) >= 1,
                 f"MetricsConfig.k_values must be one or more integers >= 1, got {list(self.k_values)}")
        require(self.loop_zlib_ratio >= 0 and self.loop_letter_share >= 0,
                 "MetricsConfig.loop_zlib_ratio and loop_letter_share must be >= 0")


@dataclass(frozen=True)
class FloorConfig:
    """The run's chance floor (SPEC 2, ``floor``) when it has no setting of kind floor."""

    holdout: bool = True  # trace the documents the index held out at build time (`index build --holdout-docs`) as a setting "floor"
    name: str = "floor"  # name of that setting

    def __post_init__(self):
        check_fields(self)
        non_empty(self, "name")
        require(self.name not in BUILT_IN_SETTINGS, f"[floor] name must not be a built-in setting, got {self.name!r}")


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
    floor: FloorConfig = FloorConfig()  # the chance floor made from the index's held-out documents

    def __post_init__(self):
        check_fields(self)
        require(self.name.strip() not in ("", ".", "..") and not any(c in self.name for c in "/\\"),
                 f"run name {self.name!r} must be one folder name: not empty, '.' or '..', and without / or \\")
        non_empty(self, "output_dir", "cache_dir", "index_tokenizer")
        require(bool(self.index_dirs) and all(d.strip() for d in self.index_dirs),
                 "ExperimentConfig.index_dirs must name one or more index folders")
        require(bool(self.settings), "ExperimentConfig.settings must hold one or more settings")
        names = [s.name for s in self.settings]
        require(len(set(names)) == len(names), f"setting names must be unique, got {names}")
        check_products(self)  # what drives memory across fields: bootstrap draws, generations, batch tokens
        require(max(self.metrics.k_values) < self.trace.eidetic_cap,
                 f"k_values {list(self.metrics.k_values)} need trace.eidetic_cap > {max(self.metrics.k_values)} "
                 f"(it is {self.trace.eidetic_cap}): raise eidetic_cap or lower k_values")


__all__ = [n for n in dir() if n[0].isupper()] + ["asdict", "field"]
