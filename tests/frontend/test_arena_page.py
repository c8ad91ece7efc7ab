"""The arena page (/) in a real Chromium against a real `libra serve`: a streamed multi-turn battle and its
vote, attack mode, "surprise me", keyboard-only use, the 390-pixel layout and a rate-limited battle.

The models are `StubModelsForTests` (canned Markdown), with one addition here: a prompt that contains
HOLD makes both stubs stop after their first word until the test releases them, so the test can see a
half-streamed answer without guessing at timings."""

import json
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

import psycopg
import pytest

from core.db import libpq_url
from tests.frontend import conftest
from tests.frontend.conftest import STUB_ANSWERS, Site, screenshot_dir, start_site
from tests.server.livesite import serving as libra_serving

pytestmark = pytest.mark.browser

HOLD = "HOLD"
FAIL_ONE = "FAIL-ONE"
MODEL_NAMES = {slug: slug.replace("-", " ").title() for slug in ("stub-alpha", "stub-beta", "stub-gamma")}


class HeldStubModelsForTests(conftest.StubModelsForTests):
    """The canned stub, except that on a prompt containing HOLD it sends one word, then waits for `release`,
    and that the first request whose prompt contains FAIL-ONE gets an HTTP 500 (one side fails)."""

    release = threading.Event()
    failed: ClassVar[set[str]] = set()
    lock = threading.Lock()

    def _data(self, payload: dict) -> None:
        super()._data(payload)
        if self._held and payload["choices"][0]["delta"].get("content"):
            self._held = False  # one word out: now wait (at most 20 s, so a failing test cannot hang)
            type(self).release.wait(20)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        messages = json.loads(body or b"{}").get("messages") or [{}]
        prompt = str(messages[-1].get("content", ""))
        self._held = HOLD in prompt
        if FAIL_ONE in prompt:
            with self.lock:
                first = prompt not in self.failed
                self.failed.add(prompt)
            if first:
                self.send_json(500, {"error": {"message": "the stub fails this one on purpose"}})
                return
        self.read_body = lambda: body  # the parent reads the body again
        super().do_POST()


@pytest.fixture(scope="module")
def site(module_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with start_site(module_db, tmp_path_factory.mktemp("home"), list(MODEL_NAMES),
                    handler=HeldStubModelsForTests) as running:
        yield running
    HeldStubModelsForTests.release.set()


def query(site: Site, sql: str, *args: object) -> list[tuple]:
    with psycopg.connect(libpq_url(site.db_url)) as conn:
        return conn.execute(sql, args).fetchall()


def answer_text(page, turn: int, side: str) -> str:
    return page.inner_text(f".turn[data-turn='{turn}'] .answer[data-side='{side}'] .answer-body")


def wait_for_vote_form(page) -> None:
    page.wait_for_selector("#vote-form:not([hidden]) #vote-fields:not([hidden])")


def canned_words(text: str) -> set[str]:
    return re.findall(r"[A-Za-z']+", text)  # the words, without Markdown's marks or list numbers


def test_a_streamed_multi_turn_battle_and_a_vote(site: Site, open_page) -> None:
    HeldStubModelsForTests.release.clear()
    page = open_page(site.url + "/")
    page.fill("#prompt", f"How do plants make food? {HOLD}")
    page.click("#send")
    # Both sides show their first word while they are still typing, and there is nothing to vote on yet.
    for side in "ab":
        page.wait_for_function(
            "side => document.querySelector(`.turn[data-turn='1'] .answer[data-side='${side}'] .answer-body`)"
            "?.textContent.trim().length > 0", arg=side)
    assert page.locator(".turn[data-turn='1'] .typing").count() == 2
    assert page.locator(".turn[data-turn='1'] .answer[aria-busy='true']").count() == 2
    assert page.locator("#vote-form").is_hidden()
    assert page.evaluate("() => document.activeElement.id") == "battle"  # focus went to the answers
    partial = answer_text(page, 1, "a")
    HeldStubModelsForTests.release.set()
    wait_for_vote_form(page)
    full = answer_text(page, 1, "a")
    assert len(full) > len(partial) and full.startswith(partial.strip())
    assert canned_words(full) in [canned_words(t) for t in STUB_ANSWERS.values()]
    assert page.locator(".turn[data-turn='1'] .typing:visible").count() == 0
    assert page.locator("#reveal").is_hidden()

    # A second turn: its own block, under the first, each side streaming again.
    page.fill("#next-prompt", f"And at night? {HOLD}")  # released already: it streams straight through
    page.click("#next-send")
    page.wait_for_selector(".turn[data-turn='2']")
    wait_for_vote_form(page)
    assert page.locator(".turn").count() == 2
    assert page.inner_text(".turn[data-turn='2'] .turn-prompt-text") == f"And at night? {HOLD}"
    for side in "ab":
        assert answer_text(page, 2, side).strip()

    # Regenerate the last turn: its answers start over (held again, so the test sees them restart).
    HeldStubModelsForTests.release.clear()
    page.click("#regenerate")
    page.wait_for_selector(".turn[data-turn='2'] .answer[aria-busy='true'] .typing")
    assert page.locator("#vote-form").is_hidden()
    assert page.locator(".turn[data-turn='1'] .typing:visible").count() == 0
    HeldStubModelsForTests.release.set()
    wait_for_vote_form(page)
    assert query(site, "SELECT t.turn, t.regenerations FROM battle_turns t "
                       "JOIN battles b ON b.id = t.battle_id "
                       "ORDER BY b.created_at DESC, t.turn LIMIT 2") == [(1, 0), (2, 1)]

    # The vote, with a harm category and a reason (and its counter).
    page.check("input[name=helpfulness][value=a]")
    page.check("input[name=safety][value=tie]")
    page.select_option("#harm-category", "privacy_violation")
    page.fill("#reason", "A was clearer.")
    assert page.inner_text("#reason-count").startswith("14 of 500")
    page.click("#vote")
    page.wait_for_selector("#reveal:not([hidden])")
    assert page.evaluate("() => document.activeElement.id") == "reveal"
    names = [page.inner_text("#reveal-a"), page.inner_text("#reveal-b")]
    assert set(names) <= set(MODEL_NAMES.values()) and names[0] != names[1]
    slugs = {v: k for k, v in MODEL_NAMES.items()}
    for side, name in zip("ab", names, strict=True):
        assert page.get_attribute(f"#reveal-{side}", "href") == f"/models/{slugs[name]}"
    assert "counts toward the leaderboard" in page.inner_text("#reveal-counted")
    assert page.locator("#reveal a[href='/leaderboard']").count() == 1

    battle_id, turns, helpfulness, safety, harm, reason = query(
        site, "SELECT b.id, b.turns, v.helpfulness, v.safety, v.harm_category, v.reason "
              "FROM votes v JOIN battles b ON b.id = v.battle_id ORDER BY v.id DESC LIMIT 1")[0]
    assert (turns, helpfulness, safety) == (2, "a", "tie")
    assert (harm, reason) == ("privacy_violation", "A was clearer.")
    slug_a, slug_b = query(site, "SELECT ma.slug, mb.slug FROM battles b "
                                 "JOIN models ma ON ma.id = b.model_a_id "
                                 "JOIN models mb ON mb.id = b.model_b_id "
                                 "WHERE b.id = %s", battle_id)[0]
    assert [slug_a, slug_b] == [slugs[n] for n in names]

    page.click("#new-battle")
    assert page.locator("#battle").is_hidden() and page.input_value("#prompt") == ""
    assert page.evaluate("() => document.activeElement.id") == "prompt"


def latest_battle(site: Site) -> dict:
    row = query(site, "SELECT b.prompt, b.prompt_source, b.attack, b.attack_seed, b.pool_item, t.prompt "
                      "FROM battles b JOIN battle_turns t ON t.battle_id = b.id AND t.turn = 1 "
                      "ORDER BY b.created_at DESC LIMIT 1")[0]
    names = ["prompt", "source", "attack", "attack_seed", "pool_item", "turn_prompt"]
    return dict(zip(names, row, strict=True))


def shown_attack_text(page) -> str:
    return page.evaluate("() => document.getElementById('attack-text').textContent")


def test_an_attack_mode_battle_sends_exactly_the_previewed_text(site: Site, open_page) -> None:
    page = open_page(site.url + "/")
    page.wait_for_selector("#attack option[value=roleplay_persona]", state="attached")
    page.fill("#prompt", "Explain how locks are picked.")
    page.select_option("#attack", "roleplay_persona")
    assert page.inner_text("#attack-description") == "Casts the model as an unrestricted persona."
    page.wait_for_function("() => document.getElementById('attack-text').textContent"
                           ".includes('locks are picked')")
    first = shown_attack_text(page)
    assert first != "Explain how locks are picked."
    # Edited and sent at once: the page previews the new text (same seed) before sending, so what the
    # models get is still exactly what the page shows.
    page.fill("#prompt", "Explain how safes are cracked.")
    page.press("#prompt", "Control+Enter")
    wait_for_vote_form(page)
    shown = shown_attack_text(page)
    assert "safes are cracked" in shown
    stored = latest_battle(site)
    assert stored["prompt"] == stored["turn_prompt"] == shown
    assert (stored["source"], stored["attack"], stored["pool_item"]) == ("attack", "roleplay_persona", None)
    assert stored["attack_seed"] is not None
    assert page.evaluate("() => document.querySelector('.turn-prompt-text').textContent") == shown


def test_surprise_me_fills_the_prompt_and_the_battle_records_the_pool(site: Site, open_page) -> None:
    page = open_page(site.url + "/")
    page.click("#surprise")
    page.wait_for_function("() => document.getElementById('prompt').value.trim().length > 0")
    assert page.evaluate("() => document.activeElement.id") == "prompt"
    note = page.inner_text("#pool-note")
    assert note.startswith("From the prompt pool: ") and "source: " in note
    drawn = page.input_value("#prompt")
    page.click("#send")
    page.wait_for_selector("#vote-form:not([hidden])")
    stored = latest_battle(site)
    assert (stored["source"], stored["prompt"]) == ("pool", drawn)
    assert stored["pool_item"] and stored["attack"] is None


def focused(page) -> str:
    """The focused element as `tag#id` or `tag[name=value]`, for keyboard-only tests."""
    return page.evaluate("""() => { const e = document.activeElement; const tag = e.tagName.toLowerCase();
        return e.id ? `${tag}#${e.id}` : `${tag}[${e.name}=${e.value}]`; }""")


def tab_to(page, target: str, *, limit: int = 30) -> list[str]:
    """Press Tab until `target` has focus; returns every stop on the way (each must be visible)."""
    stops = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        stops.append(focused(page))
        visible = page.evaluate("() => document.activeElement.getClientRects().length > 0")
        assert visible, f"{stops[-1]} has focus but is hidden"
        if stops[-1] == target:
            return stops
    raise AssertionError(f"{target} not reached by Tab: {stops}")


def wait_for_focus(page, element_id: str) -> None:
    page.wait_for_function("id => document.activeElement && document.activeElement.id === id", arg=element_id)


def test_a_keyboard_only_battle_and_vote(site: Site, open_page) -> None:
    page = open_page(site.url + "/")
    page.wait_for_selector("#harm-category option[value=violence]", state="attached")
    tab_to(page, "textarea#prompt")
    page.keyboard.type("Name a fruit.")
    page.keyboard.press("Enter")  # Enter alone is a new line, not a send
    page.keyboard.type("Just one.")
    assert page.input_value("#prompt") == "Name a fruit.\nJust one."
    assert page.locator("#battle").is_hidden()
    page.keyboard.press("Control+Enter")
    wait_for_focus(page, "battle")  # once streaming starts
    wait_for_focus(page, "vote-form")  # once both answers are in
    page.wait_for_function("() => document.getElementById('announcer').textContent.includes('vote below')")
    page.keyboard.press("Tab")
    assert focused(page) == "input[helpfulness=a]"
    page.keyboard.press("Space")
    stops = tab_to(page, "button#vote")
    assert "select#harm-category" in stops and "textarea#reason" in stops
    page.keyboard.press("Enter")
    wait_for_focus(page, "reveal")
    page.wait_for_function("() => document.getElementById('announcer').textContent"
                           ".startsWith('Your vote was recorded: A was ')")
    assert page.inner_text("#reveal-a") in MODEL_NAMES.values()
    tab_to(page, "a#reveal-a")
    tab_to(page, "button#new-battle")
    page.keyboard.press("Enter")
    wait_for_focus(page, "prompt")
    assert query(site, "SELECT helpfulness FROM votes ORDER BY id DESC LIMIT 1") == [("a",)]


def test_the_arena_at_390_pixels_does_not_overflow(site: Site, open_page) -> None:
    page = open_page(site.url + "/", width=390, height=844, color_scheme="dark")
    page.wait_for_selector("#attack option[value=base64]", state="attached")
    long_word = "pneumonoultramicroscopicsilicovolcanoconiosis"
    page.fill("#prompt", "A long prompt to see wrapping: " + f"{long_word} " * 5)
    page.select_option("#attack", "base64")
    page.wait_for_function("() => document.getElementById('attack-text').textContent.length > 40")
    page.click("#send")
    wait_for_vote_form(page)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    a = page.locator(".turn[data-turn='1'] .answer[data-side='a']").bounding_box()
    b = page.locator(".turn[data-turn='1'] .answer[data-side='b']").bounding_box()
    assert b["y"] >= a["y"] + a["height"]  # stacked, not side by side
    for control in page.locator("main button:visible, main select:visible, #vote-form .choices label").all():
        assert control.bounding_box()["height"] >= 44, control.evaluate("e => e.outerHTML")
    background = page.evaluate("() => getComputedStyle(document.getElementById('battle')).backgroundColor")
    assert background != "rgb(255, 255, 255)"  # dark mode reaches the arena's cards


@contextmanager
def page_expecting(browser, url: str, shot: Path, expected: re.Pattern) -> Iterator:
    """Like `open_page`, except that Chromium's own console lines for refused requests matching `expected`
    are expected here (it logs every failed request as an error); any other console error or page error
    still fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" and not expected.search(m.text)
            else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.goto(url)
    try:
        yield page
    finally:
        page.screenshot(path=str(shot), full_page=True)
        context.close()
    assert not problems, "the page logged errors:\n" + "\n".join(problems)


REFUSED = "Failed to load resource: the server responded with a status of "
EXPECTED_429 = re.compile("^" + re.escape(REFUSED + "429 (Too Many Requests)") + "$")


def use_up_battle_limit(page, base_url: str) -> int:
    """Spend this browser session's battle allowance (LIBRA_RATE_BATTLES per window) on the real limit:
    a regeneration counts against it before the battle is even looked up. Returns the Retry-After."""
    for _ in range(500):
        answer = page.request.post(f"{base_url}/api/v1/battles/{uuid.uuid4()}/regenerate", data={})
        if answer.status == 429:
            return int(answer.headers["retry-after"])
        assert answer.status == 404, answer.status
    raise AssertionError("no rate limit after 500 requests")


def test_a_rate_limited_battle_says_when_to_retry(site: Site, tmp_path: Path, browser) -> None:
    shot = screenshot_dir(tmp_path) / "test_a_rate_limited_battle_says_when_to_retry.png"
    with page_expecting(browser, site.url + "/", shot, EXPECTED_429) as page:
        page.fill("#prompt", "First prompt.")
        page.click("#send")
        wait_for_vote_form(page)
        assert use_up_battle_limit(page, site.url) > 0
        # The next prompt of this battle counts against the same limit.
        page.fill("#next-prompt", "Second prompt.")
        page.click("#next-send")
        page.wait_for_selector("#turn-error:not([hidden])")
        assert re.fullmatch(r"Too many prompts from this connection for now\. You can try again in \d+ "
                            r"(seconds|minutes) \(at \d\d:\d\d( [AP]M)?\)\.", page.inner_text("#turn-error"))
        page.fill("#prompt", "Another battle.")
        page.click("#send")
        page.wait_for_selector("#arena-error:not([hidden])")
        assert page.inner_text("#arena-error-text").startswith(
            "Too many battles from this connection for now. You can try again in ")
        assert page.locator(".turn").count() == 1  # the battle on screen is still there, and still votable
        page.check("input[name=helpfulness][value=tie]")
        page.click("#vote")
        page.wait_for_selector("#reveal:not([hidden])")


def test_a_failed_side_blocks_the_vote_and_says_why(site: Site, open_page) -> None:
    page = open_page(site.url + "/")
    page.fill("#prompt", f"One of you will fail. {FAIL_ONE}")
    page.click("#send")
    page.wait_for_selector("#vote-blocked:not([hidden])")
    wait_for_focus(page, "vote-form")
    assert page.locator(".answer.failed").count() == 1
    sentence = page.inner_text("#vote-blocked-text")
    assert re.fullmatch(r"Model [AB] failed to answer \(.+\)\. "
                        r"This battle can't be voted on: start a new battle\.", sentence), sentence
    assert page.locator("#vote-fields").is_hidden() and page.locator("#follow-up").is_hidden()
    page.wait_for_function("s => document.getElementById('announcer').textContent === s", arg=sentence)
    page.click("#vote-blocked-new")
    assert page.locator("#battle").is_hidden() and page.locator("#vote-form").is_hidden()
    assert page.evaluate("() => document.activeElement.id") == "prompt"


EXPECTED_ABORT = re.compile(r"^Failed to load resource: net::ERR_FAILED$")


def test_a_lost_stream_reconnects_and_recovers(site: Site, tmp_path: Path, browser) -> None:
    """The first stream request fails as a dropped connection would: the page says it is reconnecting,
    the browser's EventSource reconnects by itself, and the battle completes."""
    shot = screenshot_dir(tmp_path) / "test_a_lost_stream_reconnects_and_recovers.png"
    with page_expecting(browser, site.url + "/", shot, EXPECTED_ABORT) as page:
        dropped = []

        def drop_first(route) -> None:
            if dropped:
                route.continue_()
            else:
                dropped.append(route.request.url)
                route.abort()

        page.route("**/api/v1/battles/*/stream", drop_first)
        page.fill("#prompt", "Tell me about rain.")
        page.click("#send")
        page.wait_for_selector("#stream-status:has-text('Connection lost: reconnecting…')")
        wait_for_vote_form(page)
        assert dropped and page.inner_text("#stream-status") == ""
        for side in "ab":
            assert answer_text(page, 1, side).strip()


EXPECTED_404 = re.compile("^" + re.escape(REFUSED + "404 (Not Found)") + "$")
BATTLE_PATH = re.compile(r"/api/v1/battles/[0-9a-f-]{36}(/stream)?$")


def test_a_battle_the_server_lost_says_so(site: Site, tmp_path: Path, browser) -> None:
    """A server that no longer knows the battle (as after a restart with the row gone): its stream and the
    battle itself answer 404, and the page says so with a way on instead of waiting forever."""
    shot = screenshot_dir(tmp_path) / "test_a_battle_the_server_lost_says_so.png"
    with page_expecting(browser, site.url + "/", shot, EXPECTED_404) as page:
        def gone(route) -> None:
            if route.request.method == "GET" and BATTLE_PATH.search(route.request.url):
                route.fulfill(status=404, content_type="application/json",
                              body=json.dumps({"error": {"code": "not_found", "message": "no such battle"}}))
            else:
                route.continue_()

        page.route("**/api/v1/battles/**", gone)
        page.fill("#prompt", "Hello?")
        page.click("#send")
        page.wait_for_selector("#arena-error:not([hidden])")
        assert page.inner_text("#arena-error-text").startswith("This battle is gone")
        page.click("#arena-error-action")
        assert page.locator("#battle").is_hidden() and page.locator("#arena-error").is_hidden()
        assert page.evaluate("() => document.activeElement.id") == "prompt"


EXPECTED_409 = re.compile("^" + re.escape(REFUSED + "409 (Conflict)") + "$")


def test_a_refused_vote_says_why_and_offers_a_new_battle(site: Site, tmp_path: Path, browser) -> None:
    shot = screenshot_dir(tmp_path) / "test_a_refused_vote_says_why_and_offers_a_new_battle.png"
    with page_expecting(browser, site.url + "/", shot, EXPECTED_409) as page:
        page.fill("#prompt", "Vote twice?")
        def created(response) -> bool:
            return response.url.endswith("/api/v1/battles") and response.request.method == "POST"

        with page.expect_response(created) as made:
            page.click("#send")
        battle_id = made.value.json()["id"]
        wait_for_vote_form(page)
        # The same browser session votes first through the API (as from another tab).
        first = page.request.post(f"{site.url}/api/v1/battles/{battle_id}/vote", data={"helpfulness": "b"})
        assert first.status == 200
        page.check("input[name=helpfulness][value=a]")
        page.click("#vote")
        page.wait_for_selector("#vote-blocked:not([hidden])")
        assert page.inner_text("#vote-blocked-text") == ("This battle already has a vote. "
                                                         "Start a new battle to vote again.")
        assert page.locator("#vote-fields").is_hidden() and page.locator("#reveal").is_hidden()
        assert page.evaluate("() => document.activeElement.id") == "vote-blocked-new"
        page.keyboard.press("Enter")
        assert page.evaluate("() => document.activeElement.id") == "prompt"
        assert query(site, "SELECT helpfulness FROM votes WHERE battle_id = %s", battle_id) == [("b",)]


@pytest.mark.model
def test_a_battle_between_the_real_embedded_models(db_url: str, tmp_path: Path, open_page) -> None:
    """The shipped models (no stubs): a short battle streams, takes a vote and reveals two of them."""
    env = {"LIBRA_DATABASE_URL": db_url, "LIBRA_HOME": str(tmp_path / "home"), "LIBRA_BATTLE_MAX_TOKENS": "24",
           "LIBRA_FIRST_RUN_EVALUATIONS": "false", "LIBRA_ARENA_READ_WORDS_PER_S": "1000000"}
    with libra_serving(env, "--no-worker") as (url, _):
        page = open_page(url + "/")
        page.fill("#prompt", "Name one fruit.")
        page.press("#prompt", "Control+Enter")
        page.wait_for_selector("#vote-form:not([hidden]) #vote-fields:not([hidden])", timeout=180_000)
        for side in "ab":
            assert answer_text(page, 1, side).strip()
        assert page.locator(".answer h4").all_inner_texts() == ["Model A", "Model B"]  # still anonymous
        page.check("input[name=helpfulness][value=a]")
        page.click("#vote")
        page.wait_for_selector("#reveal:not([hidden])")
        hrefs = [page.get_attribute(f"#reveal-{side}", "href") for side in "ab"]
        assert all(h.startswith("/models/") for h in hrefs) and hrefs[0] != hrefs[1]
