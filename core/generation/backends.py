"""Model backends: one interface, one module per backend, chosen by ``ModelConfig.backend`` here only.

A backend turns prompts into :class:`~core.records.Generation` records (:class:`Backend`), names the model
it generates with (``identity``: part of every generation's cache key, computed without loading anything)
and says what it reads of :class:`~core.config.ModelConfig` (:class:`BackendSpec`; what its ``name_or_path``
means, a model it loads or a served name, is the config's ``ModelConfig.local_model``). Each backend module
has ``identity(cfg) -> str`` and ``start(cfg, tokenizer, progress) -> Backend`` (which loads the model or
opens the client; a fully cached run never calls it):

- ``hf``: transformers in-process (:mod:`core.generation.hf_backend`);
- ``openai``: an OpenAI-compatible ``/v1/completions`` server (:mod:`core.generation.openai_backend`).

The names a config may use are :data:`core.config.BACKENDS` (tests/test_backends.py holds the two equal).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Protocol

from core.config import BACKENDS, LOCAL_MODEL_BACKENDS, DecodingConfig, ModelConfig
from core.errors import ConfigError
from core.progress import ProgressFn
from core.records import Generation, Prompt


class Backend(Protocol):
    def generate(self, prompts: Sequence[Prompt], cfg: DecodingConfig, **kw) -> list[Generation]:
        """Completions of ``prompts`` under ``cfg`` (``n_samples`` each), as in-process generation makes them."""


def _hf() -> ModuleType:
    from core.generation import hf_backend
    return hf_backend


def _openai() -> ModuleType:
    from core.generation import openai_backend
    return openai_backend


@dataclass(frozen=True)
class BackendSpec:
    name: str  # the value of ModelConfig.backend
    module: Callable[[], ModuleType]  # its module (imported on first use: torch only when in-process)
    reads: tuple[str, ...]  # the ModelConfig fields it reads besides name_or_path

    @property
    def local_model(self) -> bool:
        """Whether its name_or_path is a model folder or hub id it loads (the config says: ``ModelConfig.local_model``)."""
        return self.name in LOCAL_MODEL_BACKENDS


SPECS: dict[str, BackendSpec] = {s.name: s for s in (
    BackendSpec("hf", _hf, ("revision", "device", "dtype", "trust_remote_code")),
    BackendSpec("openai", _openai, ("base_url", "api_key_env", "concurrency", "max_retries", "server_api")),
)}


def spec(cfg: ModelConfig) -> BackendSpec:
    """The backend ``cfg`` names.

    >>> spec(ModelConfig("demo/model")).local_model, spec(ModelConfig("m", backend="openai", base_url="http://x")).name
    (True, 'openai')
    """
    try:
        return SPECS[cfg.backend]
    except KeyError:
        raise ConfigError(f"model.backend = {cfg.backend!r}: expected one of {', '.join(BACKENDS)}") from None


def identity(cfg: ModelConfig) -> str:
    """The generating model's identity for cache keys (file hashes in-process, server + name for a server)."""
    return spec(cfg).module().identity(cfg)


def start(cfg: ModelConfig, tokenizer=None, progress: ProgressFn | None = None) -> Backend:
    """The backend ready to generate: the model loaded (in-process) or the client set up (server)."""
    return spec(cfg).module().start(cfg, tokenizer, progress)
