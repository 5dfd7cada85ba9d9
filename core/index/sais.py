"""Suffix arrays of u16 token files with libsais (vendored C source, compiled on first use).

infini-gram's ``rust_indexing`` sorts every *byte* suffix of a token file and keeps the aligned ones
(about 0.6 us and 20 bytes of RAM per u16 token). libsais sorts the token suffixes directly over a
16-bit alphabet (``libsais16``: about 0.17 us and 8 bytes per token). The order is the same: suffixes
are compared as the bytes of the little-endian file, which for u16 tokens is the order of their
byte-swapped values with a suffix that runs out first sorting first, which is libsais's order of the
byte-swapped tokens (tests/test_index_sais.py checks the tables byte for byte against rust_indexing).

The C source is vendored in ``vendor/libsais`` (Apache 2.0; its README names the upstream version).
:func:`build` compiles it once per source version with the system C compiler into ``native/`` under
:func:`core.paths.cache_root`; :func:`library` runs that build on first use (never at import) and
returns None without a compiler, and builds then use rust_indexing. ``python -m core.index.sais``
builds it ahead of time. Files under :data:`MIN_TOKENS` tokens (the demo, the app's small indexes,
most tests) are sorted by rust_indexing, so they never wait for the compiler.
"""
from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

from core.errors import IndexNotBuilt
from core.index import layout as fmt
from core.paths import cache_root

log = logging.getLogger(__name__)

SOURCE = Path(__file__).resolve().parents[2] / "vendor" / "libsais"  # the vendored C source
RAM_PER_TOKEN = 8  # peak RAM of one sort per token: the byte-swapped tokens (2), the int32 suffix array (4), slack
MAX_TOKENS = 2**31 - 1  # libsais16 indexes with int32
MIN_TOKENS = 1 << 20  # smaller files sort in well under a second with rust_indexing: no compiler needed for them
_LOCK = threading.Lock()
_LIB: list = []  # [CDLL or None] once tried


def library_path() -> Path:
    """Where the compiled library of this source version lives: ``native/`` under the cache root."""
    digest = hashlib.sha256((SOURCE / "libsais16.c").read_bytes() + (SOURCE / "libsais16.h").read_bytes())
    return cache_root() / "native" / f"libsais16-{digest.hexdigest()[:16]}.so"


def build() -> Path | None:
    """Compile libsais16 into :func:`library_path` unless it is there; its path, or None without a
    working C compiler."""
    path = library_path()
    try:
        return path if path.exists() or _compile(path) else None
    except OSError as e:  # an unwritable cache folder
        log.warning("cannot build libsais in %s (%s); index builds sort with rust_indexing", path.parent, e)
        return None


def _compile(out: Path) -> bool:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        log.info("no C compiler: index builds sort with rust_indexing")
        return False
    out.parent.mkdir(parents=True, exist_ok=True)
    base = [cc, "-O2", "-shared", "-fPIC", f"-I{SOURCE}", str(SOURCE / "libsais16.c")]
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        part = Path(tmp) / out.name
        for extra in (["-fopenmp", "-DLIBSAIS_OPENMP"], []):  # OpenMP when the compiler has it
            res = subprocess.run([*base, *extra, "-o", str(part)], capture_output=True, check=False)
            if res.returncode == 0:
                os.replace(part, out)  # atomic: a concurrent build sees the old file or the new one
                return True
        log.warning("compiling libsais failed (%s); index builds sort with rust_indexing",
                    res.stderr.decode(errors="replace")[-500:])
    return False


def library():
    """The compiled libsais16 (a ctypes CDLL; :func:`build` on first use), or None when it cannot be built here."""
    with _LOCK:
        if _LIB:
            return _LIB[0]
        lib = None
        try:
            if (path := build()) is not None:
                lib = ctypes.CDLL(str(path))
                lib.libsais16.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32,
                                          ctypes.c_void_p]
                lib.libsais16.restype = ctypes.c_int32
        except OSError as e:  # a library that does not load: rust_indexing sorts
            log.warning("libsais unavailable (%s); index builds sort with rust_indexing", e)
            lib = None
        _LIB.append(lib)
        return lib


def usable(token_width: int, num_tokens: int) -> bool:
    """Whether :func:`suffix_array` can sort this file here (u16 tokens, int32 range, compiled library)."""
    return token_width == 2 and 0 < num_tokens <= MAX_TOKENS and library() is not None


def suffix_array(token_file: Path, table_file: Path, chunk: int = 1 << 24, sample_step: int | None = None):
    """Write the suffix array of a u16 token file as infini-gram's ``table`` (byte offsets, ptr_size
    bytes each, little endian): the same bytes rust_indexing writes. Returns the packed prefixes of
    every ``sample_step``-th suffix (:func:`core.index.sa_search.write_sample`'s sample, taken here
    from the sorted arrays in RAM rather than from the written files), or None without a step."""
    from core.index.sa_search import PREFIX, pack
    lib = library()
    ds_size = token_file.stat().st_size
    n = ds_size // 2
    if lib is None or not 0 < n <= MAX_TOKENS:
        raise IndexNotBuilt(f"libsais cannot sort {token_file} ({n} tokens) here")
    keys = np.fromfile(token_file, dtype="<u2")
    keys.byteswap(inplace=True)  # the byte order of the little-endian file
    sa = np.empty(n, dtype=np.int32)
    rc = lib.libsais16(keys.ctypes.data, sa.ctypes.data, n, 0, None)
    if rc != 0:
        raise IndexNotBuilt(f"libsais16 failed on {token_file} (code {rc})")
    sample = None
    if sample_step:
        at = sa[::sample_step].astype(np.int64)[:, None] + np.arange(PREFIX)
        sample = pack(np.where(at < n, keys[np.minimum(at, n - 1)].astype(np.int64), -1))
    del keys
    ptr_size = fmt.ptr_size_for(ds_size)
    with open(table_file, "wb") as out:
        for lo in range(0, n, chunk):
            ptrs = sa[lo:lo + chunk].astype("<u8") * 2
            out.write(np.ascontiguousarray(ptrs.view(np.uint8).reshape(-1, 8)[:, :ptr_size]).tobytes())
    return sample


if __name__ == "__main__":  # python -m core.index.sais: build the library ahead of its first use
    built = build()
    print(built if built is not None else "no C compiler here: index builds sort with rust_indexing")
    raise SystemExit(0 if built is not None else 1)
