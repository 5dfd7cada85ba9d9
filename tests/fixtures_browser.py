"""What every real-browser test shares: headless Chromium through Playwright, waiting for a Streamlit
rerun to finish, and screenshots into test-artifacts/ (look at them). The ``browser`` fixture (headless
Chromium, one per test module) is in tests/conftest.py."""
from __future__ import annotations

from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
IDLE = '[data-testid="stStatusWidget"]'  # Streamlit's "running" indicator: detached once a rerun is done


def settle(page, ms: int = 700) -> None:
    """Wait for the rerun a click started to finish, then ``ms`` more for the page to draw."""
    page.wait_for_timeout(300)
    page.wait_for_selector(IDLE, state="detached", timeout=60_000)
    page.wait_for_timeout(ms)


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=False)
