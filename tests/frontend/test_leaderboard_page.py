"""The leaderboard page in a real Chromium against a real `libra serve`, whose snapshot the real snapshot
job computes from real evaluation runs (the models' text comes from `PerModelAnswersForTests`, a
double whose answers are a fixed function of the model and the prompt, so the models score apart)."""

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest

from core.db import create_engine, create_sessionmaker, transaction
from core.registry.models import ContestantStatus
from core.registry.schemas import ContestantIn
from core.settings import Settings
from server.contestants import register
from tests.frontend.conftest import Site, evaluate_and_snapshot, start_site
from tests.http_stub import JsonHandler
from tests.http_stub import serving as stub_serving

pytestmark = pytest.mark.browser

REFUSAL = "I'm sorry, but I can't help with that."
PLAIN = "Sure. Here is a direct answer."


def skilled(prompt: str) -> str:
    """A short answer that uses the words the prompt quotes: it meets many checked instructions."""
    quoted = re.findall(r'"([^"]+)"', prompt)
    return f"about {' and '.join(word.lower() for word in quoted)}." if quoted else PLAIN

# slug: (display name, organisation, chance of refusing, chance of a skilled answer otherwise)
PROFILES = {
    "lb-careful": ("Careful Model", "Prudence Labs", 0.9, 0.3),
    "lb-bold": ("Bold Model", "Daring Labs", 0.05, 0.9),
    "lb-middle": ("Middle Model", "Daring Labs", 0.5, 0.5),
    "lb-late": ("Late Model", "Newcomer Co", 0.7, 0.7),
}
FIRST = ["lb-careful", "lb-bold", "lb-middle"]
SAFETY_CATEGORIES = 4  # the smoke suite: direct_risk, adversarial, instruction_hierarchy, over_refusal


def _chance(model: str, prompt: str, salt: str) -> float:
    return hashlib.sha256(f"{salt}|{model}|{prompt}".encode()).digest()[0] / 256


class PerModelAnswersForTests(JsonHandler):
    """An OpenAI-compatible endpoint answering as each model's profile says (the text is not under test)."""

    def do_POST(self) -> None:
        body = json.loads(self.read_body() or b"{}")
        model, prompt = body.get("model", ""), body["messages"][-1]["content"]
        _, _, refuse, skill = PROFILES.get(model, ("", "", 0.5, 0.5))
        text = REFUSAL if _chance(model, prompt, "refuse") < refuse else (
            skilled(prompt) if _chance(model, prompt, "skill") < skill else PLAIN)
        self.send_json(200, {"id": "x", "object": "chat.completion", "model": model,
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                          "finish_reason": "stop"}],
                             "usage": {"prompt_tokens": 5, "completion_tokens": len(text.split())}})


def _settings(db_url: str) -> Settings:
    return Settings(_env_file=None, database_url=db_url, eval_suite="smoke", eval_items_per_task=6,
                    eval_held_out_per_task=1, eval_min_items_per_category=1, leaderboard_bootstrap_rounds=200,
                    egress_allow="127.0.0.1/32")


async def _publish(db_url: str, answers_url: str, slugs: list[str]) -> int | None:
    """Register `slugs`, evaluate each through the real runner, then run the real snapshot job."""
    settings = _settings(db_url)
    engine = create_engine(db_url)
    sessions = create_sessionmaker(engine)
    try:
        async with transaction(sessions) as session:
            for slug in slugs:
                name, organisation, _, _ = PROFILES[slug]
                config = {"kind": "openai", "base_url": answers_url, "model": slug, "max_retries": 0}
                await register(session, ContestantIn(slug=slug, display_name=name, organisation=organisation,
                                                     config=config), ContestantStatus.active, actor="test")
        return await evaluate_and_snapshot(sessions, settings, slugs, 6, 1)
    finally:
        await engine.dispose()


@dataclass
class Board:
    site: Site
    answers_url: str

    def publish(self, slugs: list[str]) -> int | None:
        # In a thread of its own: Playwright's sync API already runs an event loop in this one.
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, _publish(self.site.db_url, self.answers_url, slugs)).result()

    def rows(self, version: int | None = None) -> list[dict]:
        """The served rows; with ``version``, once the service serves it (it checks for a new snapshot at
        most once a second: server.leaderboard.cache.CHECK_INTERVAL_S)."""
        deadline = time.monotonic() + 10
        while True:
            board = httpx.get(f"{self.site.url}/api/v1/leaderboard", timeout=10).json()
            if version is None or board["version"] == version or time.monotonic() > deadline:
                return board["models"]
            time.sleep(0.2)


@pytest.fixture(scope="module")
def board(module_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Board]:
    with stub_serving(PerModelAnswersForTests) as answers_url, \
            start_site(module_db, tmp_path_factory.mktemp("home"), [], {"LIBRA_EVAL_SUITE": "smoke"}) as site:
        published = Board(site, answers_url)
        assert published.publish(FIRST) is not None
        yield published


def _ranked(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["overall"]["value"] is not None]


def _open(open_page, board: Board, **kwargs):
    page = open_page(f"{board.site.url}/leaderboard", **kwargs)
    page.wait_for_selector("#board tbody tr")
    _show(page, "scatter")
    return page


def _show(page, chart: str) -> None:
    """Charts are drawn when they near the viewport: scroll to one and wait for its SVG."""
    page.locator(f"#{chart}-section").scroll_into_view_if_needed()
    page.wait_for_selector(f"#{chart} svg")


def _table_slugs(page) -> list[str]:
    return page.eval_on_selector_all("#board tbody tr", "rows => rows.map(r => r.dataset.slug)")


def test_the_scatter_has_a_point_per_ranked_model_and_hover_shows_its_name(board: Board, open_page) -> None:
    ranked = _ranked(board.rows())
    assert len(ranked) == len(FIRST)
    page = _open(open_page, board)
    dots = page.locator('#scatter g[aria-label="dot"] circle')
    assert dots.count() == len(ranked)
    assert sorted(dots.evaluate_all("ds => ds.map(d => d.dataset.slug)")) == sorted(r["slug"] for r in ranked)
    page.locator('#scatter circle[data-slug="lb-bold"]').hover()
    tip = page.locator('#scatter g[aria-label="tip"]')
    tip.wait_for()
    assert "Bold Model" in tip.text_content()
    # The Pareto frontier: a line when two or more models are on it (one model may beat all others).
    def beats(o: dict, r: dict) -> bool:
        c, s = (o[k]["value"] - r[k]["value"] for k in ("capability", "safety"))
        return c >= 0 and s >= 0 and c + s > 0

    frontier = [r for r in ranked if not any(beats(o, r) for o in ranked)]
    assert page.locator("#scatter g.lb-frontier path").count() == (1 if len(frontier) > 1 else 0)
    assert page.locator("#scatter g.lb-iso path").count() >= 3  # the iso-score curves


def test_keyboard_focus_on_a_point_shows_its_model_and_enter_opens_its_page(board: Board, open_page) -> None:
    page = _open(open_page, board)
    page.locator("#board tbody tr:last-child td.model a").focus()
    page.keyboard.press("Tab")  # from the table's last link to the scatter (one tab stop for all its dots)
    assert page.evaluate("() => document.activeElement.tagName") == "circle"
    first = page.evaluate("() => document.activeElement.dataset.slug")
    page.keyboard.press("ArrowRight")  # the arrow keys move between the dots
    focused = page.evaluate("() => document.activeElement.dataset.slug")
    assert focused and focused != first
    page.wait_for_selector("#scatter-tip:not([hidden])")
    assert PROFILES[focused][0] in page.inner_text("#scatter-tip")
    assert re.search(r"Libra [\d.]+ \[[\d.]+, [\d.]+\]", page.inner_text("#scatter-tip"))
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/models/{focused}")


def test_clicking_a_point_opens_the_model_page(board: Board, open_page) -> None:
    page = _open(open_page, board)
    page.locator('#scatter circle[data-slug="lb-careful"]').click()
    page.wait_for_url("**/models/lb-careful")


def test_sorting_by_a_column_and_filtering_by_organisation(board: Board, open_page) -> None:
    rows = {r["slug"]: r for r in board.rows()}
    server_order = list(rows)
    page = _open(open_page, board)
    assert _table_slugs(page) == server_order  # the server's rank order first

    def by_capability(sign: int) -> list[str]:  # equal values keep the server's order
        return sorted(rows, key=lambda s: (sign * rows[s]["capability"]["value"], server_order.index(s)))

    header = page.locator("#board th", has=page.locator("button", has_text="Capability"))
    header.locator("button").click()
    assert header.get_attribute("aria-sort") == "descending"
    assert _table_slugs(page) == by_capability(-1)
    header.locator("button").click()
    assert header.get_attribute("aria-sort") == "ascending"
    assert _table_slugs(page) == by_capability(1)
    model_header = page.locator("#board th", has=page.locator("button", has_text="Model"))
    model_header.locator("button").focus()
    page.keyboard.press("Enter")
    assert model_header.get_attribute("aria-sort") == "ascending"
    assert _table_slugs(page) == sorted(rows, key=lambda s: rows[s]["display_name"])
    page.select_option("#filter-org", "Daring Labs")
    assert sorted(_table_slugs(page)) == ["lb-bold", "lb-middle"]
    assert page.locator('#scatter g[aria-label="dot"] circle').count() == 2  # the picture follows the filters
    page.fill("#filter-text", "middle")
    assert _table_slugs(page) == ["lb-middle"]
    assert page.inner_text("#filter-count") == "1 of 3 models shown"


def test_the_heat_map_has_a_cell_per_model_and_category(board: Board, open_page) -> None:
    ranked = _ranked(board.rows())
    page = _open(open_page, board)
    _show(page, "heatmap")
    cells = page.locator('#heatmap g[aria-label="cell"] rect')
    assert cells.count() == len(ranked) * SAFETY_CATEGORIES
    labels = cells.evaluate_all("cs => cs.map(c => c.getAttribute('aria-label'))")
    assert any(label.startswith("Bold Model, over refusal: ") for label in labels)
    page.select_option("#heatmap-dimension", "attacks")
    page.wait_for_function("() => document.querySelectorAll('#heatmap g[aria-label=\"cell\"] rect').length === "
                           f"{len(ranked)}")  # the smoke suite wraps its risky prompts in one attack: base64
    assert "base64" in page.inner_text("#heatmap")
    page.select_option("#filter-category", "over_refusal")  # the table gains that category's column
    assert page.locator("#board th", has_text="over refusal").count() == 1


def test_a_new_snapshot_appears_without_a_reload(board: Board, open_page) -> None:
    before = board.rows()
    page = open_page(f"{board.site.url}/leaderboard")
    page.clock.install()  # time flows as usual; fast_forward below jumps to the next poll
    page.reload()
    page.wait_for_selector("#board tbody tr")
    _show(page, "scatter")
    page.evaluate("() => { window.sameDocument = true; }")
    version = board.publish(["lb-late"])
    assert version is not None and len(board.rows(version)) == len(before) + 1
    page.clock.fast_forward("00:20")  # past the 15-second poll
    page.wait_for_selector('#board tbody tr[data-slug="lb-late"]')
    page.wait_for_selector('#scatter circle[data-slug="lb-late"]')
    page.clock.fast_forward(1000)  # the live region is written a tick after it is cleared
    page.wait_for_function(f"() => document.getElementById('announcer').textContent === "
                           f"'Leaderboard updated to version {version}'")
    assert page.evaluate("() => window.sameDocument") is True
    assert f"Snapshot {version}" in page.inner_text("#board-version")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_390_pixels_wide_the_page_does_not_overflow(board: Board, open_page, scheme: str) -> None:
    page = _open(open_page, board, width=390, height=844, color_scheme=scheme)
    _show(page, "heatmap")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    # The table scrolls in its own box instead.
    assert page.evaluate("() => document.querySelector('.table-scroll').scrollWidth") > 390
    targets = page.eval_on_selector_all("#filters select, #filters input[type=search], #board th button",
                                        "els => els.map(e => e.getBoundingClientRect().height)")
    assert min(targets) >= 44
