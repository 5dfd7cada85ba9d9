"""Loading a causal language model + tokenizer from a local folder, a GGUF file or a hub id, safely.

What ``ModelConfig.name_or_path`` may name (the model-folder contract, also in docs/experiment.md):

* a Hugging Face folder: ``config.json``, weights (``model.safetensors``, sharded ``model-*.safetensors``
  with ``model.safetensors.index.json``, or ``pytorch_model*.bin``) and tokenizer files
  (``tokenizer.json`` and/or ``tokenizer_config.json``, ...), as written by ``save_pretrained``;
* a ``.gguf`` file (llama.cpp format, e.g. a 4-bit quantized model), or a folder holding exactly one
  ``.gguf`` file and no ``config.json``: transformers de-quantizes it to ``dtype`` on load (needs the
  ``gguf`` package) and its tokenizer comes from the same file;
* a hub id (``org/name``), pinned by ``revision``.

``load_model`` is the only function here that touches disk or the hub. Safety: weights are read from
``.safetensors`` when the folder has them; a pickled ``.bin`` checkpoint is only ever read with
``torch.load(weights_only=True)`` (tensors and plain containers, no code), checked by us before
transformers sees it, so a malicious pickle is refused with :class:`ModelLoadError`. Remote code
runs only when ``ModelConfig.trust_remote_code`` is set (and a warning is logged).
"""
from __future__ import annotations

import logging
import pickle
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.config import ModelConfig
from core.errors import ModelLoadError
from core.generation.model_identity import model_identity
from core.index.gguf_reads import shared_reads
from core.index.tokenizer import gguf_location, load_tokenizer

log = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to generate: in eval mode, on ``device``, with a left-padding tokenizer."""

    model: Any  # transformers PreTrainedModel (causal LM)
    tokenizer: Any  # PreTrainedTokenizerBase, padding_side="left", pad token set
    identity: str  # model_identity(): changes when the weights or tokenizer files change
    device: str  # "cpu", "cuda", "cuda:1", "mps"
    dtype: str  # "float32" | "bfloat16" | "float16"
    config: ModelConfig


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> cuda if available, else mps, else cpu; other values are checked and returned."""
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} requested but CUDA is not available; use device = \"auto\" or \"cpu\"")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelLoadError("device 'mps' requested but MPS is not available; use device = \"auto\" or \"cpu\"")
    if device != "cpu" and not device.startswith("cuda") and device != "mps":
        raise ModelLoadError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps")
    return device


def resolve_dtype(dtype: str, device: str) -> str:
    """``auto`` -> bfloat16 on CUDA GPUs that support it, float32 elsewhere (CPU, MPS, older GPUs)."""
    if dtype == "auto":
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return "bfloat16"
        return "float32"
    if dtype not in _DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r}: use auto, {', '.join(_DTYPES)}")
    return dtype


def _check_local_folder(folder: Path) -> bool:
    """Raise ModelLoadError for a missing/partial/corrupt folder; return True when weights are safetensors."""
    if not (folder / "config.json").is_file():
        raise ModelLoadError(
            f"{folder}: no config.json and no .gguf file. Expected a Hugging Face model folder (config.json, "
            "model.safetensors and tokenizer files: the output of model.save_pretrained(folder) and "
            "tokenizer.save_pretrained(folder)) or a .gguf model file."
        )
    index = folder / "model.safetensors.index.json"
    shards = sorted(folder.glob("*.safetensors"))
    if index.is_file():
        from core.errors import DamagedFile
        from core.jsonio import read_json

        try:
            wanted = set(read_json(index)["weight_map"].values())
        except (DamagedFile, OSError, KeyError, TypeError, AttributeError) as e:
            raise ModelLoadError(f"{index}: unreadable shard index ({e}); re-save the model") from None
        missing = sorted(w for w in wanted if not (folder / w).is_file())
        if missing:
            raise ModelLoadError(f"{folder}: missing weight shard(s) {missing} listed in {index.name}; "
                                 "finish the download or re-save the model")
    if shards:
        from safetensors import SafetensorError, safe_open

        for shard in shards:
            try:
                with safe_open(str(shard), framework="pt") as f:
                    f.keys()
            except (SafetensorError, OSError) as e:
                raise ModelLoadError(f"{shard}: corrupt or truncated safetensors file ({e}); "
                                     "re-download or re-save the model") from None
        return True
    bins = sorted(folder.glob("pytorch_model*.bin"))
    if not bins:
        raise ModelLoadError(
            f"{folder}: no weights (model.safetensors, model-*.safetensors or pytorch_model.bin). "
            "Save the model with model.save_pretrained(folder)."
        )
    for b in bins:  # refuse anything but tensors before transformers unpickles it
        try:
            torch.load(b, map_location="meta", weights_only=True, mmap=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as e:
            raise ModelLoadError(
                f"{b}: refused to load this pickled checkpoint with weights_only=True ({type(e).__name__}: "
                f"{str(e).splitlines()[0][:200]}). It may run code when unpickled. Convert it to safetensors "
                "in a sandbox you trust (model.save_pretrained(folder, safe_serialization=True))."
            ) from None
    log.warning("%s: loading pickled .bin weights with weights_only=True; prefer safetensors", folder)
    return False


def load_model(cfg: ModelConfig) -> LoadedModel:
    """Load ``cfg.name_or_path`` (local folder or hub id) for generation; raises ModelLoadError."""
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    if cfg.trust_remote_code:
        log.warning("trust_remote_code is on: %s may run its own Python code", cfg.name_or_path)
    folder = Path(cfg.name_or_path).expanduser()
    kwargs: dict[str, Any] = {"revision": cfg.revision, "trust_remote_code": cfg.trust_remote_code}
    gguf = gguf_location(cfg.name_or_path)
    with shared_reads() if gguf is not None else nullcontext():  # a GGUF file is parsed once, not three times
        return _load(cfg, folder, gguf, kwargs, device, dtype)


def _load(cfg: ModelConfig, folder: Path, gguf: tuple[Path, str] | None, kwargs: dict[str, Any], device: str,
          dtype: str) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if gguf is not None:
        source = str(gguf[0])
        kwargs["gguf_file"] = gguf[1]
        tokenizer = load_tokenizer(cfg.name_or_path)
    else:
        if folder.exists():
            if not folder.is_dir():
                raise ModelLoadError(f"{folder} is a file but not a .gguf model file; give the model folder "
                                     "that holds config.json, or a .gguf file")
            kwargs["use_safetensors"] = _check_local_folder(folder)
            source = str(folder)
        else:
            source = cfg.name_or_path
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, revision=cfg.revision,
                                                      trust_remote_code=cfg.trust_remote_code)
        except (OSError, ValueError, TypeError) as e:
            raise ModelLoadError(f"{source}: cannot load the tokenizer ({e}). Save it next to the model with "
                                 "tokenizer.save_pretrained(folder), or check the hub id/revision.") from None
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=_DTYPES[dtype], **kwargs)
    except ImportError as e:
        raise ModelLoadError(f"{source}: loading needs a missing package ({e}); pip install -r requirements.txt") from None
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        what = f"the GGUF file {kwargs['gguf_file']}" if gguf else "the model"
        raise ModelLoadError(f"{source}: cannot load {what} ({type(e).__name__}: {e}). "
                             "Check the folder/hub id, revision and that the weights are complete.") from None
    model.to(device).eval()
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelLoadError(f"{source}: the tokenizer has neither a pad nor an eos token; set one in "
                                 "tokenizer_config.json (pad_token or eos_token)")
        tokenizer.pad_token = tokenizer.eos_token  # padding positions are masked out anyway
    tokenizer.padding_side = "left"
    return LoadedModel(model, tokenizer, model_identity(cfg.name_or_path, cfg.revision), device, dtype, cfg)


def context_length(model: Any) -> int | None:
    """Maximum positions of the model (n_positions / max_position_embeddings), None when unknown."""
    conf = model.config
    for name in ("n_positions", "max_position_embeddings", "n_ctx", "seq_length"):
        value = getattr(conf, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None
