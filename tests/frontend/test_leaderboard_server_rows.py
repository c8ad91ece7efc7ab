"""The leaderboard page arrives with its rows written by the server (server/leaderboard/page.py), and the
page's script writes the same rows itself after a sort: two renderers that must not drift apart. The
board here is stored directly, with the rows that exercise every branch of a cell: a hostile display
name and organisation, partial coverage, preview, retired and provisional badges, unranked rows (no
evaluation; missing categories), a missing arena rating, counts above a thousand, values on a rounding
tie, and a payload order that is not the rank order."""

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from core.db import create_engine, create_sessionmaker, transaction
from server.leaderboard import repository
from server.leaderboard.cache import Rendered
from server.leaderboard.page import data_block, fixed, render_rows
from tests.frontend.conftest import Site

HOSTILE = 'Evil <script>window.__xss = 1</script> "quoted" & \'single\' <img src=x onerror="window.__xss=2">'


def band(value: float | None, lower: float | None = None, upper: float | None = None) -> dict[str, Any]:
    return {"value": value, "lower": lower, "upper": upper}


def arena_rating(rating: float | None, lower: float | None = None, upper: float | None = None) -> dict[str, Any]:
    return {"rating": rating, "lower": lower, "upper": upper, "rank_best": 1, "rank_worst": 2,
            "perfect_record": False, "provisional": False, "interval_method": "bootstrap"}


def row(slug: str, c: float, s: float, best: int, worst: int, group: int, **changes: Any) -> dict[str, Any]:
    """One payload row as server/leaderboard/service.py writes it (the fields the page reads)."""
    overall = 1 - (((1 - c) ** 2 + (1 - s) ** 2) / 2) ** 0.5
    base = {
        "slug": slug, "display_name": slug.replace("-", " ").title(), "organisation": "Row Labs",
        "retired": False, "provisional": False, "coverage": "ok", "missing": [],
        "capability": band(c, c - 0.1, min(c + 0.05, 1)), "safety": band(s, s - 0.12, min(s + 0.04, 1)),
        "overall": band(round(overall, 4), round(overall - 0.1, 4), round(min(overall + 0.05, 1), 4)),
        "rank": {"best": best, "worst": worst, "group": group},
        "arena": {"helpfulness": arena_rating(1000 + 100 * c, 950, 1100), "safety": arena_rating(990, 900, 1060),
                  "helpfulness_style_controlled": None},
        "evaluation": {"scope": "full", "run_id": 1, "items": 72}, "votes": {"helpfulness": 12, "safety": 9},
        "safety_non_responsive": {"share": 0.125, "items": 2, "of": 16},
        "provenance": {"items": {"capability": 36, "safety": 36}, "suite_version": "smoke/1",
                       "scorer_versions": ["rules/2"], "judge_version": None},
        "categories": {"direct_risk": {"axis": "safety", **band(s, s - 0.2, min(s + 0.1, 1)), "items": 6}},
        "attacks": {},
    }
    return {**base, **changes}


def rows() -> list[dict[str, Any]]:
    # Payload order is not rank order: the page sorts by (best, worst), unranked last.
    return [
        row("r-second", 0.8, 0.7, 2, 3, 2, display_name=HOSTILE, organisation='Org "<b>bold</b>" & co'),
        row("r-first", 0.9, 0.9, 1, 2, 1, provisional=True, votes={"helpfulness": 12345, "safety": 1000},
            evaluation={"scope": "preview", "run_id": 2, "items": 1500}),
        row("r-tie", 0.0625, 0.6, 2, 4, 2, coverage="partial",  # 0.0625: toFixed(3) rounds the tie up
            arena={"helpfulness": arena_rating(1012.5, 1000.5, 1030.5), "safety": arena_rating(None),
                   "helpfulness_style_controlled": None}),
        row("r-retired", 0.5, 0.5, 4, 5, 3, retired=True, safety_non_responsive=None,
            provenance={"items": {"capability": 10, "safety": 12}, "suite_version": None, "scorer_versions": [],
                        "judge_version": "judge/3"}),
        row("r-waiting", 0.0, 0.0, 0, 0, 0, overall=band(None), capability=band(None), safety=band(None),
            rank={"best": None, "worst": None, "group": None}, evaluation=None, provenance=None, votes=None),
        row("r-missing", 0.7, 0.0, 0, 0, 0, overall=band(None), safety=band(None), missing=["privacy", "violence"],
            rank={"best": None, "worst": None, "group": None}),
    ]


async def _store(db_url: str, models: list[dict[str, Any]], etag: str) -> int:
    engine = create_engine(db_url)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            config = {"method": "test", "seed": 1}
            body = {"models": models, "config": config}
            return (await repository.add(session, trigger="manual", config=config, payload=body, etag=etag)).id
    finally:
        await engine.dispose()


def publish(site: Site, models: list[dict[str, Any]], etag: str) -> int:
    """Store a snapshot from this process and wait until `libra serve` serves it (about a second)."""
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API runs an event loop in this thread
        version = pool.submit(asyncio.run, _store(site.db_url, models, etag)).result()
    deadline = time.monotonic() + 15
    while httpx.get(f"{site.url}/api/v1/leaderboard").json()["version"] != version:
        assert time.monotonic() < deadline, f"version {version} was not served"
        time.sleep(0.1)  # another process's cache: nothing to wait on but its one-second check
    return version


# --- the server's renderer alone (no browser) ----------------------------------------------------------


def test_numbers_round_as_javascript_does() -> None:
    assert fixed(0.0625, 3) == "0.063"  # Python's own format would give 0.062 (half to even)
    assert fixed(1012.5, 0) == "1013" and fixed(-2.5, 0) == "-3"  # away from zero, as toFixed
    assert fixed(-0.0, 3) == "0.000" and fixed(None, 3) == "–"


def test_hostile_names_stay_text_in_the_rows_and_the_data_block() -> None:
    html = render_rows(rows())
    assert "<script>" not in html and "<img" not in html and "<b>" not in html
    assert "Evil &lt;script&gt;window.__xss = 1&lt;/script&gt; \"quoted\" &amp; 'single'" in html
    body = json.dumps({"models": rows()}).encode()
    block = data_block(Rendered(1, '"e"', body))
    inner = block.split(">", 1)[1].rsplit("</script>", 1)[0]
    assert "<" not in inner and json.loads(inner) == {"models": rows()}


# --- in the browser --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def published(site: Site) -> Site:
    publish(site, rows(), "server-rows-1")
    return site


SERVED_TABLE = """async () => {
  const html = await (await fetch('/leaderboard', {cache: 'no-store'})).text();
  return new DOMParser().parseFromString(html, 'text/html').querySelector('#board').innerHTML;
}"""


@pytest.mark.browser
def test_the_script_renders_the_rows_the_server_wrote(published: Site, open_page) -> None:
    page = open_page(f"{published.url}/leaderboard")
    page.wait_for_selector('body[data-ready="leaderboard"]', state="attached")
    served = page.evaluate(SERVED_TABLE)
    assert page.inner_html("#board") == served  # adopted as written (unranked rows' reasons included)
    assert page.locator("#board-data").count() == 0  # parsed, then dropped
    slugs = page.eval_on_selector_all("#board tbody tr", "rows => rows.map(r => r.dataset.slug)")
    assert slugs == ["r-first", "r-second", "r-tie", "r-retired", "r-waiting", "r-missing"]
    page.click('#board th button[data-column="capability"]')
    assert page.inner_html("#board") != served
    page.click('#board th button[data-column="rank"]')  # back: now the script's own rendering
    assert page.inner_html("#board") == served
    hostile = page.locator('#board tr[data-slug="r-second"] td.model a')
    assert hostile.text_content() == HOSTILE
    assert page.locator("#board script, #board img, #board b").count() == 0
    assert page.evaluate("() => window.__xss") is None


@pytest.mark.browser
def test_the_page_is_rendered_once_per_version_and_revalidates(published: Site) -> None:
    first = httpx.get(f"{published.url}/leaderboard")
    etag = first.headers["etag"]
    assert 'data-slug="r-first"' in first.text and "board-data" in first.text
    assert httpx.get(f"{published.url}/leaderboard").content == first.content
    assert httpx.get(f"{published.url}/leaderboard", headers={"If-None-Match": etag}).status_code == 304
    publish(published, [row("r-new", 0.6, 0.6, 1, 1, 1)], "server-rows-2")
    fresh = httpx.get(f"{published.url}/leaderboard", headers={"If-None-Match": etag})
    assert fresh.status_code == 200 and fresh.headers["etag"] != etag
    assert 'data-slug="r-new"' in fresh.text and 'data-slug="r-first"' not in fresh.text
