"""Shared fixtures. Helpers that build things (tiny corpora, indexes, models, browser helpers) live in
tests/fixtures_*.py."""
import pytest

from tests.fixtures_browser import CHROMIUM


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu",
                                                              "--disable-background-networking"])
        yield b
        b.close()

