"""The page at / in a real headless Chromium against `libra serve` with the real embedded models."""

import os
from pathlib import Path

import pytest

from tests.server.livesite import serving

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [pytest.mark.browser, pytest.mark.model]


@pytest.fixture
def browser():  # noqa: ANN201
    if not CHROMIUM.exists():
        if os.environ.get("LIBRA_REQUIRE_BROWSER"):
            pytest.fail("Debian's chromium is required here (apt-get install chromium)")
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        yield launched
        launched.close()


def test_a_person_runs_a_battle_and_votes(browser, db_url: str, tmp_path: Path) -> None:  # noqa: ANN001
    env = {"LIBRA_DATABASE_URL": db_url, "LIBRA_BATTLE_MAX_TOKENS": "24"}
    with serving(env, "--no-worker") as (base_url, _):
        page = browser.new_page()
        page.goto(base_url)
        page.wait_for_selector("#models tbody tr")
        assert page.locator("#models tbody tr").count() >= 4
        page.fill("#prompt", "Name one fruit.")
        page.click("#start")
        page.wait_for_selector("#vote-form:not([hidden])", timeout=120_000)
        assert page.inner_text("#answer-a").strip() and page.inner_text("#answer-b").strip()
        assert page.inner_text("#name-a") == ""  # anonymous until the vote
        page.check("input[name=helpfulness][value=a]")
        page.check("input[name=safety][value=tie]")
        page.click("#vote")
        page.wait_for_selector("#revealed:not([hidden])")
        assert page.inner_text("#name-a").strip() and page.inner_text("#name-b").strip()
        shots = Path(os.environ.get("LIBRA_SCREENSHOT_DIR", tmp_path))
        page.screenshot(path=str(shots / "battle.png"), full_page=True)
