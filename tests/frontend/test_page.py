"""The pages of `libra serve` in a real headless Chromium: / with the real embedded models, and the API docs
with every request that would leave the host blocked."""

import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.server.livesite import serving

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.browser
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


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


@pytest.mark.model
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


def _offline_page(browser):  # noqa: ANN001, ANN202
    """A page on which any request to another host is aborted and remembered."""
    page, left = browser.new_page(), []

    def route(request_route) -> None:  # noqa: ANN001
        url = request_route.request.url
        if urlsplit(url).hostname in LOCAL_HOSTS or url.startswith(("data:", "blob:")):
            request_route.continue_()
        else:
            left.append(url)
            request_route.abort()

    page.route("**/*", route)
    return page, left


def test_api_docs_render_with_no_internet(browser, db_url: str, tmp_path: Path) -> None:  # noqa: ANN001
    shots = Path(os.environ.get("LIBRA_SCREENSHOT_DIR", tmp_path))
    with serving({"LIBRA_DATABASE_URL": db_url}, "--no-worker") as (base_url, _):
        page, left = _offline_page(browser)
        page.goto(f"{base_url}/docs")
        page.wait_for_selector(".swagger-ui .opblock")
        assert page.locator(".swagger-ui .opblock").count() >= 10
        assert "Libra Arena" in page.inner_text(".swagger-ui .info .title")
        assert page.locator(".swagger-ui .btn.authorize").is_visible()  # the bearer scheme is declared
        page.screenshot(path=str(shots / "docs.png"), full_page=True)
        page.goto(f"{base_url}/redoc")
        page.wait_for_selector("h1:has-text('Libra Arena')")
        assert page.get_by_text("/api/v1/models/{slug}/retire").count() >= 1
        page.screenshot(path=str(shots / "redoc.png"), full_page=True)
        assert left == []
