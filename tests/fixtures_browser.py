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


def colours_by_setting(figures) -> dict[str, set]:
    """{setting: colours} of every trace of ``figures`` (each a list of (meta, marker colour, line colour) per
    trace, as the tests' page scripts read them); asserts one colour per setting, the palette's."""
    from core.reports.palette import setting_color

    seen: dict[str, set] = {}
    for traces in figures:
        for meta, marker, line in traces:
            if isinstance(meta, list):
                for s, c in zip(meta, marker):
                    seen.setdefault(s, set()).add(c)
            elif meta is not None:
                seen.setdefault(meta, set()).add(marker if isinstance(marker, str) else line)
    assert seen and seen == {s: {setting_color(s)} for s in seen}, seen
    return seen
