"""Loading the index tokenizer and naming it: a stable fingerprint and a readable identity.

The index tokenizer decides what a "token" is in every span length (SPEC section 2), so an index
records the fingerprint of the tokenizer it was built with and refuses queries from another one.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from core.errors import ModelLoadError, PropMeError
from core.index.gguf_reads import shared_reads
from core.jsonio import read_json

log = logging.getLogger(__name__)

# Files of which at least one must be in a local tokenizer folder (or a .gguf file, which holds one).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model", "spiece.model")
_GGUF_CACHE: dict[tuple[str, int, int], object] = {}  # (path, size, mtime) -> tokenizer read from a GGUF file


def gguf_location(name_or_path: str) -> tuple[Path, str] | None:
    """(folder, file name) when ``name_or_path`` is a ``.gguf`` file or a folder holding exactly one
    and no ``config.json``; None otherwise (a Hugging Face folder or a hub id).

    Raises :class:`ModelLoadError` for a folder holding several ``.gguf`` files (which one is meant?).
    """
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return (path.parent, path.name) if path.suffix.lower() == ".gguf" else None
    if not path.is_dir() or (path / "config.json").is_file():
        return None
    ggufs = sorted(p.name for p in path.glob("*.gguf") if p.is_file())
    if len(ggufs) > 1:
        raise ModelLoadError(f"{path} holds {len(ggufs)} .gguf files ({', '.join(ggufs[:5])}); name one: "
                             f"name_or_path = \"{path / ggufs[0]}\"")
    return (path, ggufs[0]) if ggufs else None


def _load_gguf_tokenizer(folder: Path, name: str):
    """The tokenizer stored in a GGUF file, read once per process (reading converts the vocabulary,
    seconds); every call returns its own copy, so callers may set padding and pad tokens."""
    import copy

    from transformers import AutoTokenizer

    file = folder / name
    stat = file.stat()
    key = (str(file.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _GGUF_CACHE:
        try:
            with shared_reads():
                _GGUF_CACHE[key] = AutoTokenizer.from_pretrained(str(folder), gguf_file=name)
        except ImportError as e:
            raise ModelLoadError(f"{file}: reading a .gguf file needs the 'gguf' package ({e}); "
                                 "pip install -r requirements.txt") from None
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
            raise ModelLoadError(f"{file}: cannot read a tokenizer from this GGUF file ({type(e).__name__}: {e}); "
                                 "is it a complete llama.cpp model file?") from None
    return copy.deepcopy(_GGUF_CACHE[key])


def load_tokenizer(name_or_path: str, revision: str | None = None, trust_remote_code: bool = False):
    """Load a tokenizer from a local folder, a ``.gguf`` file (or a folder holding one) or a hub id
    (pinned by ``revision``).

    Raises :class:`ModelLoadError` when the folder holds no tokenizer files or the hub id cannot be
    fetched (offline, unknown id, gated). Remote code runs only with ``trust_remote_code=True``.
    """
    path = Path(name_or_path).expanduser()
    gguf = gguf_location(name_or_path)
    if gguf is not None:
        return _load_gguf_tokenizer(*gguf)
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"Tokenizer path {path} is a file; pass the folder that holds tokenizer.json "
                                 "or a .gguf model file")
        if not any((path / f).exists() for f in TOKENIZER_FILES):
            raise ModelLoadError(
                f"No tokenizer files in {path}: expected one of {', '.join(TOKENIZER_FILES)} or a .gguf file. "
                "Save one with tokenizer.save_pretrained(folder) or pass a hub id."
            )
        source = str(path)
    else:
        source = name_or_path
    try:
        if path.is_dir() and _plain_fast_tokenizer(path):
            # a plain tokenizers-backed folder: skip AutoTokenizer's config resolution, which imports
            # torch (about 1 s) though nothing model-specific is needed
            from transformers import PreTrainedTokenizerFast

            return PreTrainedTokenizerFast.from_pretrained(source)
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(source, revision=revision, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, ImportError, KeyError) as e:
        where = "folder" if path.exists() else "hub id (is the network reachable and the id right?)"
        raise ModelLoadError(f"Cannot load a tokenizer from {where} {name_or_path!r}: {e}") from e


def _plain_fast_tokenizer(folder: Path) -> bool:
    """Whether ``folder`` holds a tokenizer.json whose config names the generic fast tokenizer class."""
    config = folder / "tokenizer_config.json"
    if not (folder / "tokenizer.json").is_file() or not config.is_file():
        return False
    try:
        tokenizer_class = read_json(config).get("tokenizer_class")
    except (OSError, PropMeError, AttributeError):
        return False
    return tokenizer_class in ("PreTrainedTokenizerFast", "TokenizersBackend")


def fast_backend(tokenizer):
    """The Rust ``tokenizers.Tokenizer`` behind a fast tokenizer, else None (slow tokenizers)."""
    return getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None


def decode_many(tokenizer, seqs: Sequence[Sequence[int]]) -> list[str]:
    """Decode id sequences exactly: special tokens kept, no clean-up of spaces (batched when fast)."""
    backend = fast_backend(tokenizer)
    if backend is not None:
        return backend.decode_batch([list(q) for q in seqs], skip_special_tokens=False)
    return [tokenizer.decode(list(q), skip_special_tokens=False, clean_up_tokenization_spaces=False) for q in seqs]


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of a canonical dump of the tokenizer: the fast backend's JSON, else the sorted vocab.

    Two tokenizers with the same fingerprint split every text into the same ids.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        canon = json.dumps(json.loads(backend.to_str()), sort_keys=True, ensure_ascii=False)
    else:
        canon = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False)
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


def tokenizer_identity(tokenizer) -> str:
    """A readable name: the hub id or folder it was loaded from, else its class name."""
    name = getattr(tokenizer, "name_or_path", "") or ""
    return str(name) if name else type(tokenizer).__name__


def tokenizer_vocab_size(tokenizer) -> int:
    """Number of ids the tokenizer can emit (base vocab plus added tokens)."""
    return max(len(tokenizer), max(tokenizer.get_vocab().values(), default=-1) + 1)


def tokenizer_eos_id(tokenizer) -> int:
    """The EOS id, falling back to the last id when the tokenizer has none (infini-gram needs one)."""
    eos = getattr(tokenizer, "eos_token_id", None)
    return int(eos) if eos is not None else tokenizer_vocab_size(tokenizer) - 1
