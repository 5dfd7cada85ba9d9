"""Upper bounds of every config value, checked where a config is built (so when a TOML file is read, and
as the Run form is filled), before any model loads.

Each bound says why it exists. A value above it is one :class:`~core.errors.ConfigError` line that states
the limit and the reason: ``DecodingConfig.num_samples = 1000000000 is above its limit of 1000: ...``.

- :data:`UPPER` bounds single fields (:func:`check_upper`, called by :func:`core.config.checks.check_fields`
  for every config dataclass); a numeric field it does not list gets :data:`DEFAULT_MAX`.
- :func:`check_products` bounds what drives memory and time across fields: the bootstrap's draw
  matrix (samples x prompts per setting), the number of generations (prompts x samples), the tokens
  one generation batch holds (batch size x (prompt + new tokens)).
- :func:`check_model_context` compares ``max_new_tokens`` with the context of a local model folder (its
  config.json), without loading the model.
"""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from core.errors import ConfigError, PropMeError

DEFAULT_MAX = 10 ** 9  # any other count: no setting needs more, and a typo of many zeros is caught
_SEED = (2 ** 63 - 1, "a seed is a 64-bit number")
_TOKENS = (131_072, "no model has a longer context than this")
UPPER: dict[str, tuple[float, str]] = {
    # decoding
    "DecodingConfig.num_samples": (1_000, "each sample is a full generation of every prompt; the paper's re-run used 10"),
    "DecodingConfig.max_new_tokens": _TOKENS,
    "DecodingConfig.max_prompt_tokens": _TOKENS,
    "DecodingConfig.batch_size": (4_096, "a forward batch this wide already fills the largest GPU"),
    "DecodingConfig.top_k": (1_000_000, "no vocabulary is larger"),
    "DecodingConfig.temperature": (100.0, "above this sampling is uniform noise"),
    "DecodingConfig.repetition_penalty": (100.0, "above this every repeated token is forbidden anyway"),
    "DecodingConfig.seed": _SEED,
    # settings
    "SettingConfig.n_prompts": (1_000_000, "every prompt is generated, traced and held in memory"),
    "SettingConfig.prefix_tokens": _TOKENS,
    "SettingConfig.min_doc_tokens": (10 ** 9, "no document is longer"),
    "SettingConfig.seed": _SEED,
    # trace
    "TraceConfig.workers": (1_024, "more tracing processes than cores only add memory (each maps the index)"),
    "TraceConfig.docs_per_span": (1_000, "each retrieved document is a window of text held per span"),
    "TraceConfig.window_factor": (100, "a window is window_factor x the completion length, held per document"),
    "TraceConfig.anchor_spans": (1_000, "each anchor is one more index query per completion"),
    "TraceConfig.min_anchor_tokens": _TOKENS,
    "TraceConfig.eidetic_cap": (10_000, "distinct documents counted per completion"),
    "TraceConfig.seed": _SEED,
    # metrics
    "MetricsConfig.bootstrap_samples": (1_000_000, ("100x the paper's 10,000; more replicates do not change "
                                                    "the interval's digits but cost memory and time")),
    "MetricsConfig.span_threshold": _TOKENS,
    "MetricsConfig.discoverable_tokens": _TOKENS,
    "MetricsConfig.seed": _SEED,
    "MetricsConfig.k_values": (10_000, "k-eidetic counts at most eidetic_cap documents"),
    # model (openai backend)
    "ModelConfig.concurrency": (1_024, "requests in flight to one server"),
    "ModelConfig.max_retries": (100, "retries back off exponentially: more would wait for days"),
    # corpus
    "CorpusConfig.sample_size": (10 ** 12, "no corpus has more documents"),
    "CorpusConfig.seed": _SEED,
    # the index's held-out chance floor
    "HoldoutConfig.docs": (100_000, "each held-out text is traced as a completion of every run on the index"),
    "HoldoutConfig.max_tokens": _TOKENS,
    "HoldoutConfig.seed": _SEED,
    # near-verbatim recall thresholds
    "AdaptiveParam.frac": (1_000.0, "a fraction of the reference length"),
    "AdaptiveParam.lo": (10 ** 6, "words of one completion"),
    "AdaptiveParam.hi": (10 ** 6, "words of one completion"),
}

MAX_BOOTSTRAP_CELLS = 250_000_000  # bootstrap_samples x prompts of a setting: a B x P draw matrix, ~24 bytes a cell
MAX_GENERATIONS = 5_000_000  # prompts x samples over all settings: each generation and trace is held in memory
MAX_BATCH_TOKENS = 4_194_304  # batch_size x (max_prompt_tokens + max_new_tokens): the tokens one forward batch holds


def _numbers(value: Any) -> tuple:
    if isinstance(value, bool):
        return ()
    if isinstance(value, int | float):
        return (value,)
    if isinstance(value, tuple):
        return tuple(v for v in value if isinstance(v, int | float) and not isinstance(v, bool))
    return ()


def check_upper(obj: Any) -> None:
    """Every numeric field of config dataclass ``obj`` is at most its bound (:data:`UPPER` or ``DEFAULT_MAX``)."""
    cls = type(obj).__name__
    for f in fields(obj):
        values = _numbers(getattr(obj, f.name))
        if not values:
            continue
        limit, why = UPPER.get(f"{cls}.{f.name}", (DEFAULT_MAX, "no setting needs more"))
        worst = max(values)
        if worst > limit:
            raise ConfigError(f"{cls}.{f.name} = {worst} is above its limit of {limit:,}: {why}")


def _fmt(n: float) -> str:
    return f"{n:,.0f}"


def check_products(cfg: Any) -> None:
    """Bounds across fields of an ExperimentConfig ``cfg``: what drives memory and time, checked at once."""
    prompts = [s.n_prompts for s in cfg.settings]
    most = max(prompts)
    cells = cfg.metrics.bootstrap_samples * most
    if cells > MAX_BOOTSTRAP_CELLS:
        raise ConfigError(
            f"metrics.bootstrap_samples x prompts of a setting = {_fmt(cfg.metrics.bootstrap_samples)} x {_fmt(most)} "
            f"= {_fmt(cells)} is above its limit of {_fmt(MAX_BOOTSTRAP_CELLS)}: the bootstrap holds one draw per "
            f"replicate and prompt (about {cells * 24 / 2 ** 30:.1f} GiB here); lower bootstrap_samples or n_prompts")
    gens = cfg.decoding.num_samples * sum(prompts)
    if gens > MAX_GENERATIONS:
        raise ConfigError(
            f"prompts x decoding.num_samples = {_fmt(sum(prompts))} x {_fmt(cfg.decoding.num_samples)} = {_fmt(gens)} "
            f"generations is above its limit of {_fmt(MAX_GENERATIONS)}: every generation is keyed, cached, traced "
            "and held in memory; split the run or lower n_prompts or num_samples")
    dec = cfg.decoding
    tokens = dec.batch_size * (dec.max_prompt_tokens + dec.max_new_tokens)
    if tokens > MAX_BATCH_TOKENS:
        raise ConfigError(
            f"decoding.batch_size x (max_prompt_tokens + max_new_tokens) = {dec.batch_size} x "
            f"{dec.max_prompt_tokens + dec.max_new_tokens} = {_fmt(tokens)} tokens is above its limit of "
            f"{_fmt(MAX_BATCH_TOKENS)}: one forward batch holds them all (and their attention cache); lower batch_size")


CONTEXT_KEYS = ("n_positions", "max_position_embeddings", "n_ctx", "seq_length", "max_sequence_length")


def model_context(folder: str | Path) -> tuple[int, str] | None:
    """(context length, the config.json key it came from) of a local model folder, or None when unknown."""
    from core.jsonio import read_json

    path = Path(folder) / "config.json"
    try:
        conf = read_json(path) if path.is_file() else None
    except (OSError, PropMeError):  # a damaged config.json is the model loader's to report
        return None
    if not isinstance(conf, dict):
        return None
    for source in (conf, conf.get("text_config") if isinstance(conf.get("text_config"), dict) else {}):
        for key in CONTEXT_KEYS:
            value = source.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value, key
    return None


def check_model_context(cfg: Any) -> None:
    """``decoding.max_new_tokens`` must be shorter than a local model's context (read from its config.json,
    nothing loaded); a hub id or a served model is not checked here."""
    if not cfg.model.local_model:  # a served model's context is the server's to check
        return
    found = model_context(cfg.model.name_or_path)
    if found is None:
        return
    ctx, key = found
    if cfg.decoding.max_new_tokens >= ctx:
        raise ConfigError(
            f"decoding.max_new_tokens = {cfg.decoding.max_new_tokens} is above its limit of {ctx - 1}: the model's "
            f"context holds {ctx} tokens (config.json {key}) and the prompt needs at least one; lower max_new_tokens")

