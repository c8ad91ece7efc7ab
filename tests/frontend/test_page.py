"""The pages of `libra serve` in a real headless Chromium: the API docs with every request that would leave
the host blocked, and the leaderboard page's evaluation progress and methodology against a service of their
own (tests/frontend/test_leaderboard_page.py has the rest of that page; the arena's battles are in the
arena's own tests)."""

import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.server.livesite import serving

pytestmark = pytest.mark.browser
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def _offline_page(browser):
    """A page on which any request to another host is aborted and remembered."""
    page, left = browser.new_page(), []

    def route(request_route) -> None:
        url = request_route.request.url
        if urlsplit(url).hostname in LOCAL_HOSTS or url.startswith(("data:", "blob:")):
            request_route.continue_()
        else:
            left.append(url)
            request_route.abort()

    page.route("**/*", route)
    return page, left


def test_api_docs_render_with_no_internet(browser, db_url: str, tmp_path: Path) -> None:
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


def test_the_leaderboard_shows_evaluation_progress_then_ranked_preview_rows(
    open_page, db_url: str, tmp_path: Path
) -> None:
    """Canned models (no real inference): while previews run, a progress line above the leaderboard and
    a reason on each unranked row; then, without a reload, ranked rows with the preview badge."""
    import json
    import re
    import time

    import httpx

    from tests.evaluation.canned import canned_server
    from tests.server.test_cli import run

    env = {"LIBRA_DATABASE_URL": db_url, "LIBRA_SEED_DEFAULTS": "false", "LIBRA_EVAL_SUITE": "smoke",
           "LIBRA_EVAL_ITEMS_PER_TASK": "3", "LIBRA_EVAL_HELD_OUT_PER_TASK": "1", "LIBRA_EVAL_MAX_TOKENS": "16",
           "LIBRA_LEADERBOARD_BOOTSTRAP_ROUNDS": "200",
           # Two preview items per task in a one-task-per-category suite: below the default minimum of 5.
           "LIBRA_EVAL_MIN_ITEMS_PER_CATEGORY": "1"}
    shots = Path(os.environ.get("LIBRA_SCREENSHOT_DIR", tmp_path))
    with canned_server(delay_s=0.5) as canned:
        for name in ("canned-a", "canned-b"):
            added = run("models", "add", name, "--config", json.dumps(canned.config(model=name, max_concurrency=1)),
                        env=env)
            assert added.returncode == 0, added.stderr
        admin = {"Authorization": f"Bearer {run('keys', 'create', '--scope', 'admin', '--name', 't', env=env).stdout.split()[0]}"}
        with serving(env) as (base_url, _):
            httpx.post(f"{base_url}/api/v1/admin/leaderboard/recompute", headers=admin, timeout=10)
            deadline = time.monotonic() + 30
            while httpx.get(f"{base_url}/api/v1/leaderboard", timeout=10).json()["version"] is None:
                assert time.monotonic() < deadline, "no first snapshot"
                time.sleep(0.2)
            for name in ("canned-a", "canned-b"):
                queued = httpx.post(f"{base_url}/api/v1/admin/models/{name}/evaluate", json={"items_per_task": 2},
                                    headers=admin, timeout=10)
                assert queued.status_code == 202 and queued.json()["latest_run"]["scope"] == "preview"
            page = open_page(f"{base_url}/leaderboard")
            page.wait_for_selector("#eval-progress:not([hidden])", timeout=30_000)
            assert re.fullmatch(r"Evaluating [0-2] of 2 models · \d+% \(quick previews first\)",
                                page.inner_text("#progress-line")), page.inner_text("#progress-line")
            assert page.locator("#progress-models li").count() == 2
            page.wait_for_function("() => [...document.querySelectorAll('#board td.why')].some("
                                   "td => /^(waiting for evaluation|evaluating \\d+%)$/.test(td.textContent))")
            page.screenshot(path=str(shots / "progress.png"), full_page=True)
            page.wait_for_function("() => document.querySelectorAll('#board tbody tr .badge.preview').length === 2",
                                   timeout=90_000)
            page.wait_for_selector("#eval-progress", state="hidden", timeout=30_000)
            rows = page.locator("#board tbody tr")
            for i in range(2):
                cells = rows.nth(i).locator("td")
                assert re.fullmatch(r"\d(–\d)?", cells.nth(0).inner_text()), cells.nth(0).inner_text()
                assert re.fullmatch(r"preview · \d+ items", cells.nth(1).locator(".badge").inner_text())
                assert re.fullmatch(r"\d+ items · 0 helpful / 0 safety votes\nc \d+ · s \d+ scored",
                                    cells.nth(7).inner_text()), cells.nth(7).inner_text()
                # Safety is shown with its interval (numbers and a whisker) and its share of non-responsive
                # answers beside it.
                assert re.fullmatch(r"[\d.]+ \[[\d.]+, [\d.]+\]\n+non-responsive \d+%", cells.nth(4).inner_text())
                # Its position comes from classes (whole percents; no style attribute under the CSP).
                assert re.fullmatch(r"whisker wl\d+ wu\d+ wv\d+", cells.nth(4).locator(".whisker").get_attribute("class"))
                assert cells.nth(4).locator(".whisker").evaluate("e => getComputedStyle(e).getPropertyValue('--lower')")
            page.screenshot(path=str(shots / "preview-board.png"), full_page=True)
            page.goto("about:blank")  # stop its polling before the service stops


def test_the_leaderboard_says_how_safety_answers_are_judged(open_page, db_url: str, tmp_path: Path) -> None:
    env = {"LIBRA_DATABASE_URL": db_url, "LIBRA_SEED_DEFAULTS": "false", "LIBRA_FIRST_RUN_EVALUATIONS": "false"}
    with serving(env, "--no-worker") as (base_url, _):
        page = open_page(f"{base_url}/leaderboard")
        page.locator("#methodology").scroll_into_view_if_needed()  # it loads when it nears the viewport
        page.wait_for_selector("#method-scores tbody tr")
        rules = page.inner_text("#method-rules")
        assert "refusal-rules/" in rules and "agree with people" in rules
        rows = {r.split("\t")[0]: r for r in page.locator("#method-scores tbody tr").all_inner_texts()}
        assert "no score" in rows["unclear"] and rows["non responsive"].count("0") >= 3
        assert page.is_visible("#method-no-judge")  # LIBRA_EVAL_JUDGE unset
        assert "No private held-out set" in page.inner_text("#method-heldout")
        page.screenshot(path=str(Path(os.environ.get("LIBRA_SCREENSHOT_DIR", tmp_path)) / "methodology.png"),
                        full_page=True)
        page.goto("about:blank")  # stop its polling before the service stops
