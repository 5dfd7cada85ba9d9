"""Seeds of generation, without torch: one per (prompt, sample), so a sample never depends on its batch."""
from __future__ import annotations

import hashlib


def row_seed(seed: int, prompt_id: str, sample_index: int) -> int:
    """A stable 63-bit seed for one (prompt, sample); independent of batch, order and process.

    >>> row_seed(42, "prefix-7", 0) == row_seed(42, "prefix-7", 0)
    True
    >>> row_seed(42, "prefix-7", 0) != row_seed(42, "prefix-7", 1)
    True
    >>> 0 <= row_seed(1, "a", 0) < 2**63
    True
    """
    digest = hashlib.sha256(f"{seed}\x1f{prompt_id}\x1f{sample_index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1
