"""CLI progress: a first line at once, and rate and ETA that agree in every event."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.progress import rated_event

ROOT = Path(__file__).resolve().parents[1]


@given(st.integers(0, 10_000), st.integers(0, 10_000), st.floats(0, 1e6, allow_nan=False))
def test_rate_and_eta_agree(done, extra, elapsed):
    e = rated_event("generate", done, done + extra, "generations", elapsed)
    if e.rate is None:
        assert e.eta_s is None and (done == 0 or elapsed == 0)
    else:
        assert e.rate == pytest.approx(done / elapsed)
        assert e.eta_s == pytest.approx(extra / e.rate)


def test_run_says_what_it_loads_before_anything_else(tmp_path):
    """The first stderr line names the experiment file, written before the engine's imports (which
    take seconds: torch, transformers) and before the file is even read."""
    missing = tmp_path / "nowhere.toml"
    out = subprocess.run([sys.executable, "-m", "core", "run", str(missing)], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, check=False)
    lines = out.stderr.splitlines()
    assert out.returncode == 2
    assert lines[0] == f"loading {missing} ..." and lines[-1].startswith("error: ")
