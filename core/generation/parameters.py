"""How many parameters a model has, read from its weight files' headers (no tensor is loaded).

``*.safetensors``: the JSON header's tensor shapes. ``.gguf``: the tensor-info table after the
metadata (GGUF v2/v3, little-endian: magic, version, tensor count, metadata count, the metadata
key/values, then per tensor its name, dimensions, type and offset). Reading only the headers keeps
it to milliseconds, so the Overview and the report can name a model's size on their first screen.
"""
from __future__ import annotations

import math
import mmap
import struct
from pathlib import Path

from core.jsonio import json_problem

_SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}  # GGUF value type -> bytes
_STRING, _ARRAY = 8, 9


class _Cursor:
    def __init__(self, buf):
        self.buf, self.pos = buf, 0

    def take(self, fmt: str):
        out = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return out[0] if len(out) == 1 else out

    def skip_string(self) -> None:
        self.pos += 8 + self.take("Q")

    def string(self) -> str:
        n = self.take("Q")
        self.pos += n
        return bytes(self.buf[self.pos - n:self.pos]).decode("utf-8", "replace")

    def skip_value(self, vtype: int) -> None:
        if vtype in _SCALAR:
            self.pos += _SCALAR[vtype]
        elif vtype == _STRING:
            self.skip_string()
        elif vtype == _ARRAY:
            item, count = self.take("I"), self.take("Q")
            if item in _SCALAR:
                self.pos += _SCALAR[item] * count
            else:
                for _ in range(count):
                    self.skip_value(item)
        else:
            raise ValueError(f"unknown GGUF value type {vtype}")


def gguf_parameters(path: str | Path) -> int | None:
    """Total elements of every tensor of a GGUF file; None when it is not a readable GGUF (v2 or v3)."""
    try:
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            c = _Cursor(buf)
            if bytes(buf[:4]) != b"GGUF":
                return None
            c.pos = 4
            if c.take("I") not in (2, 3):
                return None
            n_tensors, n_kv = c.take("Q"), c.take("Q")
            for _ in range(n_kv):
                c.skip_string()
                c.skip_value(c.take("I"))
            total = 0
            for _ in range(n_tensors):
                c.skip_string()
                dims = [c.take("Q") for _ in range(c.take("I"))]
                c.pos += 4 + 8  # type, offset
                total += math.prod(dims)
            return total
    except (OSError, ValueError, struct.error):
        return None


def safetensors_parameters(folder: str | Path) -> int | None:
    """Parameters of the ``*.safetensors`` weights in ``folder`` from their headers; None when there are
    none or a header is unreadable."""
    total, found = 0, False
    try:
        files = sorted(Path(folder).glob("*.safetensors"))
    except OSError:
        return None
    for f in files:
        try:
            with open(f, "rb") as fh:
                (size,) = struct.unpack("<Q", fh.read(8))
                if size > 100_000_000:
                    return None
                header, problem = json_problem(fh.read(size))
                if problem or not isinstance(header, dict):
                    return None
        except (OSError, ValueError, struct.error):
            return None
        for name, meta in header.items():
            if name != "__metadata__" and isinstance(meta, dict) and isinstance(meta.get("shape"), list):
                total += math.prod(int(x) for x in meta["shape"])
                found = True
    return total if found else None


def model_parameters(name_or_path: str | None) -> int | None:
    """Parameters of a local model: a ``.gguf`` file, a folder holding one ``.gguf``, or a folder of
    ``*.safetensors``; None for a hub id, a served model or unreadable weights."""
    if not name_or_path:
        return None
    p = Path(name_or_path)
    try:
        if p.is_file() and p.suffix.lower() == ".gguf":
            return gguf_parameters(p)
        if p.is_dir():
            found = safetensors_parameters(p)
            if found is not None:
                return found
            ggufs = sorted(p.glob("*.gguf"))
            return gguf_parameters(ggufs[0]) if len(ggufs) == 1 else None
    except OSError:
        return None
    return None
