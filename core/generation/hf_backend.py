"""The in-process backend (``ModelConfig.backend = "hf"``): a transformers model loaded on this machine
(:func:`core.generation.model.load_model`) generating with :func:`core.generation.generate.generate`.

Its identity hashes the model's files (:func:`core.generation.model_identity.model_identity`); torch is
imported only when it starts.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.config import DecodingConfig, ModelConfig
from core.generation.model_identity import model_identity
from core.progress import ProgressEvent, ProgressFn
from core.records import Generation, Prompt


def identity(cfg: ModelConfig) -> str:
    """``<folder>@sha256:…`` of a local folder or file, ``hub:<id>@<revision>`` of a hub id."""
    return model_identity(cfg.name_or_path, cfg.revision)


@dataclass(frozen=True)
class HFBackend:
    lm: Any  # core.generation.model.LoadedModel

    def generate(self, prompts: Sequence[Prompt], cfg: DecodingConfig, **kw) -> list[Generation]:
        from core.generation.generate import generate
        return generate(self.lm, prompts, cfg, **kw)


def start(cfg: ModelConfig, tokenizer=None, progress: ProgressFn | None = None) -> HFBackend:
    """Load the model (the tokenizer is loaded with it); a big model takes a while, so say so first."""
    from core.generation import model

    if progress is not None:
        progress(ProgressEvent("load-model", 0, 1, "models", message=cfg.name_or_path))
    return HFBackend(model.load_model(cfg))
