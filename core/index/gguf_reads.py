"""Reading a GGUF file through transformers without its repeated work.

Loading a GGUF model with transformers parses the file's metadata once for the config and again for the weights
(``gguf.GGUFReader``, about 4 s each for SmolLM2-135M's 49k-token vocabulary), and builds the same tensor-name
map once per tensor (``gguf.get_tensor_name_map``, 397 times, 5.5 s): most of a 13 s load, in which
de-quantizing takes 1.4 s (cProfile, one torch thread). Inside :func:`shared_reads` a file is parsed once (one
reader per file and mode, shared by every read of that load) and each name map is built once per process.

What loads is what transformers builds without it: on SmolLM2-135M all 273 tensors, the config and the
tokenizer's ids for a licence text were equal, and tokenizer and model loaded in 7.3 s against 15.7 s
(2026-12-06, one torch thread). tests/test_gguf_reads.py checks the sharing itself on a small GGUF file.

Both names are looked up on the ``gguf`` module when transformers calls them, so they are swapped there for the
duration of a load and put back after it. Loads that share them run one at a time (a lock); nested uses share the
outer one's readers.
"""
from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_LOCK = threading.RLock()
_active: list = []  # while a load runs: the originals (GGUFReader, get_tensor_name_map)


@functools.cache
def _name_map(arch, n_blocks):
    return _active[0][1](arch, n_blocks)


@contextmanager
def shared_reads() -> Iterator[None]:
    """Within: each GGUF file is parsed once (per mode) and each tensor-name map built once. Without the
    ``gguf`` package this does nothing (the load then says what is missing)."""
    try:
        import gguf
    except ImportError:
        yield
        return
    with _LOCK:
        if _active:  # nested in another load: its readers serve this one too
            yield
            return
        original = (gguf.GGUFReader, gguf.get_tensor_name_map)
        readers: dict[tuple[str, str], object] = {}

        def reader(path, mode="r"):
            key = (str(path), mode)
            if key not in readers:
                readers[key] = original[0](path, mode)
            return readers[key]

        _active.append(original)
        gguf.GGUFReader, gguf.get_tensor_name_map = reader, _name_map
        try:
            yield
        finally:
            gguf.GGUFReader, gguf.get_tensor_name_map = original
            _active.clear()
            readers.clear()
