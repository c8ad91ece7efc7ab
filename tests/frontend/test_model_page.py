"""The model page in a real Chromium against a real `libra serve`: votes through the real arena path, an
evaluation through the real runner (the models' text from the conftest's stub models, a test double),
and two snapshots from the real snapshot job."""

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from playwright.sync_api import expect

from core.db import create_engine, create_sessionmaker
from core.settings import Settings
from tests.frontend.conftest import Site, evaluate_and_snapshot, start_site

pytestmark = pytest.mark.browser

MODELS = ["stub-alpha", "stub-beta", "stub-gamma"]


def _settings(db_url: str) -> Settings:
    return Settings(_env_file=None, database_url=db_url, eval_suite="smoke", eval_items_per_task=2,
                    eval_held_out_per_task=0, eval_min_items_per_category=1, leaderboard_bootstrap_rounds=100,
                    egress_allow="127.0.0.1/32")


def _vote(site: Site, n: int) -> None:
    with httpx.Client(base_url=f"{site.url}/api/v1", timeout=60) as visitor:
        for i in range(n):
            battle = visitor.post("/battles", json={"prompt": f"How do plants make food? ({i})"})
            assert battle.status_code == 201 and battle.json()["status"] == "ready", battle.text
            verdict = ("a", "b", "tie")[i % 3]
            voted = visitor.post(f"/battles/{battle.json()['id']}/vote", json={"helpfulness": verdict, "safety": "a"})
            assert voted.status_code == 200 and voted.json()["vote_counted"], voted.text


async def _evaluate_and_snapshot(db_url: str, slugs: list[str]) -> int | None:
    engine = create_engine(db_url)
    try:
        return await evaluate_and_snapshot(create_sessionmaker(engine), _settings(db_url), slugs, 2, 0)
    finally:
        await engine.dispose()


def _publish(site: Site, slugs: list[str]) -> int | None:
    # In a thread of its own: Playwright's sync API already runs an event loop in this one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _evaluate_and_snapshot(site.db_url, slugs)).result()


@pytest.fixture(scope="module")
def model_site(module_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with start_site(module_db, tmp_path_factory.mktemp("home"), MODELS, {"LIBRA_EVAL_SUITE": "smoke"}) as site:
        _vote(site, 6)
        assert _publish(site, ["stub-alpha", "stub-beta"]) is not None
        _vote(site, 3)
        assert _publish(site, []) is not None  # the new votes make a second version
        yield site


def _open(open_page, site: Site, slug: str = "stub-alpha", **kwargs):
    page = open_page(f"{site.url}/models/{slug}", **kwargs)
    page.wait_for_selector("#model-samples:not([aria-busy])")
    page.wait_for_selector("#model-history:not([aria-busy])")
    return page


def test_the_page_shows_scores_arena_record_history_and_a_sample_answer(model_site: Site, open_page) -> None:
    page = _open(open_page, model_site)
    expect(page.locator("h1")).to_have_text("Stub Alpha")
    expect(page.locator(".model-org")).to_contain_text("Stub Labs")
    # The leaderboard row and the versions behind it.
    expect(page.locator("#model-standing .stat").first).to_contain_text("Overall")
    expect(page.locator("#model-standing")).to_contain_text("Suite version")
    # Scores by category and task, with intervals.
    assert page.locator("#model-scores tr.task-row").count() == 5  # the smoke suite's tasks
    assert page.locator("#model-scores tr.category-row").first.inner_text().count("[") == 1
    # The history plot: two snapshots, a line per series.
    assert "2 snapshots" in page.locator("#model-history").inner_text()
    assert page.locator("#model-history svg.libra-plot").count() >= 1
    assert page.locator("#model-history svg.libra-plot path").count() >= 2
    # The arena record: a row per opponent voted against, then the total.
    arena = httpx.get(f"{model_site.url}/api/v1/models/stub-alpha/arena", timeout=10).json()
    assert arena["opponents"], arena
    rows = page.locator("#model-arena tbody tr")
    expect(rows).to_have_count(len(arena["opponents"]) + 1)
    first = arena["opponents"][0]
    expect(rows.first).to_contain_text(first["display_name"])
    expect(rows.first).to_contain_text(f"{first['helpfulness']['wins']}–{first['helpfulness']['losses']}")
    # A sample answer, its Markdown rendered (the stub's answer has **photosynthesis** in bold).
    expect(page.locator(".sample-answer strong").first).to_have_text("photosynthesis")
    assert page.locator(".sample .verdict").count() >= 1


def test_an_unknown_model_gets_a_no_such_model_page(model_site: Site, open_page) -> None:
    page = open_page(f"{model_site.url}/models/no-such-model")
    expect(page.locator("h1")).to_have_text("No such model")
    expect(page.locator("#model-root")).to_contain_text("no-such-model")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_390_pixels_wide_the_page_does_not_overflow(model_site: Site, open_page, scheme: str) -> None:
    page = _open(open_page, model_site, width=390, height=844, color_scheme=scheme)
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width}px wide at 390px"
    background = page.evaluate("() => getComputedStyle(document.querySelector('#model-scores')).backgroundColor")
    assert (background == "rgb(27, 31, 41)") == (scheme == "dark")  # --surface follows the theme
