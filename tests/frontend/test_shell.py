"""Every page loads in a real browser against the real service: its own title and the shared navigation,
the favicon, no console error; and the light and dark themes."""

import pytest

from tests.frontend.conftest import Site

PAGES = [("/", "Libra Arena"), ("/leaderboard", "Leaderboard"), ("/models/stub-alpha", "Model"),
         ("/submit", "Submit a model"), ("/admin", "Admin")]


@pytest.mark.parametrize(("path", "title"), PAGES)
def test_every_page_loads_with_the_navigation(site: Site, open_page, path: str, title: str) -> None:
    page = open_page(site.url + path)
    page.wait_for_load_state("networkidle")
    assert title in page.title()
    assert page.locator("header.site nav a").count() == 4
    icon = page.request.get(site.url + "/favicon.svg")
    assert icon.status == 200 and icon.headers["content-type"].startswith("image/svg+xml")


def test_the_theme_button_switches_to_dark_and_back(site: Site, open_page) -> None:
    page = open_page(site.url + "/leaderboard")
    toggle = page.locator("#theme-toggle")
    background = page.evaluate("() => getComputedStyle(document.body.parentElement).backgroundColor")
    toggle.click()
    assert page.evaluate("() => document.documentElement.dataset.theme") == "dark"
    assert page.evaluate("() => getComputedStyle(document.body.parentElement).backgroundColor") != background
    page.reload()
    assert page.evaluate("() => document.documentElement.dataset.theme") == "dark"  # remembered
