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
    """Once the experiment file is read, the first stderr line names it, before the engine's heavy imports
    (torch, transformers: seconds) and before any tokenizer, index or model is opened."""
    (tmp_path / "model").mkdir()  # exists, but holds no tokenizer: the run fails when it opens it
    toml = tmp_path / "x.toml"
    toml.write_text('name = "x"\nindex_dirs = ["index"]\n[model]\nname_or_path = "model"\n'
                    '[[settings]]\nname = "unconditional"\n')
    out = subprocess.run([sys.executable, "-m", "core", "run", str(toml)], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, check=False)
    lines = out.stderr.splitlines()
    assert out.returncode == 2
    assert lines[0] == f"loading {toml} ..." and lines[-1].startswith("error: No tokenizer files in")
