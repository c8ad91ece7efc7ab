"""The submit and admin pages in Chromium against a real `libra serve` on the embedded Postgres: a submitter
registers a model through the form and follows it, an admin approves it, revokes a key, resumes a paused
model and decides a vote the anomaly rules held; wrong keys; the 390-px layout.

The service runs without a worker, so a submitted model's evaluation stays queued (its place in the queue is
what the page shows); where a test needs a model past its first evaluation, it calls the same repository
function the evaluation worker calls when the first run finishes."""

import asyncio
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from playwright.sync_api import Page, expect

from arena import health
from core.db import create_engine, create_sessionmaker, transaction
from core.keys.models import KeyScope
from core.keys.service import create_key
from core.registry import repository as registry
from core.settings import Settings
from evaluation import repository as eval_repo
from tests.frontend.conftest import Site, start_site

pytestmark = pytest.mark.browser

# What a submitter key may register: a public https endpoint. It is never called here (no worker runs),
# and registration checks only the address's form (tests/server/test_submission_security.py).
PUBLIC_ENDPOINT = "https://api.example.com/v1"
MOBILE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def site(module_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The three stub models; readers so slow that every vote is too fast and held for review; room in
    the submitter key's quotas for every test's submission (the queue never drains: no worker runs)."""
    extra = {"LIBRA_ARENA_READ_WORDS_PER_S": "0.001", "LIBRA_QUOTA_MODELS_PER_DAY": "50",
             "LIBRA_QUOTA_EVALS_IN_FLIGHT": "50"}
    with start_site(module_db, tmp_path_factory.mktemp("home"), ["stub-alpha", "stub-beta", "stub-gamma"],
                    extra) as running:
        yield running


def _in_db(site: Site, work):
    """Runs `work` in one committed transaction on the site's database (in a thread: Playwright's sync
    API owns this thread's event loop)."""
    async def go():
        engine = create_engine(site.db_url)
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                return await work(session)
        finally:
            await engine.dispose()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()


def _api(site: Site, method: str, path: str, key: str | None = None, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.request(method, f"{site.url}/api/v1{path}", headers=headers, timeout=30, **kwargs)


def _enter_key(page: Page, key: str) -> None:
    page.get_by_label(re.compile("^(Submitter|Admin) key$")).fill(key)
    page.get_by_role("button", name="Use this key").click()
    expect(page.locator("#key-in-use")).to_be_visible()


def _submit_by_api(site: Site, slug: str) -> None:
    body = {"slug": slug, "display_name": slug.title(), "organisation": "Test Lab",
            "config": {"kind": "openai", "base_url": PUBLIC_ENDPOINT, "model": "m"}}
    response = _api(site, "POST", "/models", site.submitter_key, json=body)
    assert response.status_code == 201, response.text


def _confirm(page: Page, label: str) -> None:
    dialog = page.locator("dialog.confirm")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name=label).click()
    expect(dialog).to_be_hidden()


def test_a_submitter_registers_a_model_and_sees_it_queued(site: Site, open_page) -> None:
    page = open_page(site.url + "/submit", expect_api_errors=(422,))
    _enter_key(page, site.submitter_key)
    assert page.evaluate("() => sessionStorage.getItem('libra:submitter-key')") == site.submitter_key
    assert site.submitter_key not in page.evaluate("() => JSON.stringify(localStorage)")
    form = page.locator("#register-form")
    form.get_by_label("Slug").fill("page-model")
    form.get_by_label("Display name").fill("Page Model")
    form.get_by_label("Organisation").fill("Test Lab")
    form.get_by_label("Model name at the endpoint").fill("m")
    # The browser accepts an http address; the API refuses it, and the page puts that at the field.
    base_url = form.get_by_label("Base URL")
    base_url.fill("http://api.example.com/v1")
    page.get_by_role("button", name="Register the model").click()
    expect(page.locator("#base-url-error")).to_contain_text("https")
    expect(base_url).to_be_focused()
    expect(base_url).to_have_attribute("aria-invalid", "true")
    assert "base-url-error" in base_url.get_attribute("aria-describedby")
    base_url.fill(PUBLIC_ENDPOINT)
    page.get_by_role("button", name="Register the model").click()
    expect(page.locator("#register-status")).to_contain_text("Registered page-model")
    card = page.locator('#mine [data-slug="page-model"]')
    expect(card).to_contain_text("pending")
    expect(card.locator(".evaluation-line")).to_contain_text(re.compile(r"(next|\d+(st|nd|rd|th)) in the cpu queue"))
    mine = _api(site, "GET", "/me/models", site.submitter_key).json()
    assert [m["model"]["slug"] for m in mine] == ["page-model"] and mine[0]["queue"]["queue"] == "cpu"


def test_the_form_checks_the_apis_limits_before_sending(site: Site, open_page) -> None:
    page = open_page(site.url + "/submit", expect_api_errors=(409,))
    _enter_key(page, site.submitter_key)
    form = page.locator("#register-form")
    slug = form.get_by_label("Slug")
    slug.fill("Bad Slug!")
    page.get_by_role("button", name="Register the model").click()
    expect(page.locator("#slug-error")).to_contain_text("lowercase letters")
    expect(slug).to_be_focused()
    # A taken slug is the API's answer (409), shown at the top of the form.
    slug.fill("stub-alpha")
    for label, value in (("Display name", "X"), ("Organisation", "Y"), ("Base URL", PUBLIC_ENDPOINT),
                         ("Model name at the endpoint", "m")):
        form.get_by_label(label).fill(value)
    page.get_by_role("button", name="Register the model").click()
    expect(page.locator("#register-form .form-error")).to_contain_text("already exists")


def test_the_owner_updates_and_withdraws_a_model(site: Site, open_page) -> None:
    _submit_by_api(site, "owned-model")
    page = open_page(site.url + "/submit")
    _enter_key(page, site.submitter_key)
    card = page.locator('#mine [data-slug="owned-model"]')
    card.get_by_role("button", name="Update").click()
    expect(page.locator("#edit-title")).to_be_focused()
    page.locator("#edit-display-name").fill("Owned Model Renamed")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#mine-status")).to_contain_text("Updated owned-model")
    expect(card).to_contain_text("Owned Model Renamed")
    card.get_by_role("button", name="Withdraw").click()
    _confirm(page, "Withdraw")
    expect(page.locator("#mine-status")).to_contain_text("retired")
    assert _api(site, "GET", "/models/owned-model").json()["status"] == "retired"


def test_an_admin_approves_a_submission_and_it_becomes_active(site: Site, open_page) -> None:
    _submit_by_api(site, "approve-me")

    async def first_run_finished(session) -> None:
        model = await registry.get_by_slug(session, "approve-me")
        await eval_repo.finish_first_evaluation(session, model.id, auto_approve=False)

    _in_db(site, first_run_finished)
    assert _api(site, "GET", "/models/approve-me").json()["status"] == "evaluated"
    page = open_page(site.url + "/admin")
    _enter_key(page, site.admin_key)
    card = page.locator('#approval [data-slug="approve-me"]')
    expect(card).to_contain_text("Evaluation: pending")
    card.get_by_role("button", name="Approve approve-me").click()
    expect(page.locator("#approval-status")).to_contain_text("Approved approve-me")
    expect(page.locator("#announcer")).to_contain_text("Approved approve-me")
    expect(card).to_have_count(0)
    assert _api(site, "GET", "/models/approve-me").json()["status"] == "active"


def test_an_admin_re_evaluates_retires_and_sets_a_weight(site: Site, open_page) -> None:
    _submit_by_api(site, "retire-me")
    page = open_page(site.url + "/admin")
    _enter_key(page, site.admin_key)
    card = page.locator('#models [data-slug="retire-me"]')
    card.get_by_role("button", name="Re-evaluate").click()  # its first run still waits: that one is kept
    expect(page.locator("#models-status")).to_contain_text("retire-me: run")
    expect(page.locator("#models-status")).to_contain_text("already queued or running")
    card.get_by_role("button", name="Retire").click()
    _confirm(page, "Retire")
    expect(page.locator("#models-status")).to_contain_text("Retired retire-me")
    expect(card).to_have_count(0)
    assert _api(site, "GET", "/models/retire-me").json()["status"] == "retired"
    page.locator("#weights").get_by_label("stub-beta", exact=True).fill("2")
    page.get_by_role("button", name="Save the weight of stub-beta").click()
    expect(page.locator("#weights-status")).to_contain_text("stub-beta: weight 2")
    weights = {w["slug"]: w["weight"] for w in _api(site, "GET", "/admin/arena/weights", site.admin_key).json()}
    assert weights["stub-beta"] == 2


def test_an_admin_revokes_a_key_after_confirming(site: Site, open_page) -> None:
    async def new_key(session) -> tuple[int, str]:
        issued = await create_key(session, "to-revoke", KeyScope.submitter, actor="test")
        return issued.id, issued.plaintext

    key_id, plaintext = _in_db(site, new_key)
    assert _api(site, "GET", "/me/models", plaintext).status_code == 200
    page = open_page(site.url + "/admin")
    _enter_key(page, site.admin_key)
    row = page.locator(f'#keys tr[data-key-id="{key_id}"]')
    row.get_by_role("button", name=re.compile("^Revoke key")).click()
    page.locator("dialog.confirm").get_by_role("button", name="Cancel").click()  # nothing happens
    assert _api(site, "GET", "/me/models", plaintext).status_code == 200
    row.get_by_role("button", name=re.compile("^Revoke key")).click()
    _confirm(page, "Revoke")
    expect(page.locator("#keys-status")).to_contain_text(f"Revoked key {key_id}")
    expect(row).to_contain_text("revoked")
    refused = _api(site, "GET", "/me/models", plaintext)
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]


def test_an_admin_resumes_a_paused_model(site: Site, open_page) -> None:
    async def pause(session) -> None:
        model = await registry.get_by_slug(session, "stub-gamma")
        await health.record_answer(session, model.id, False, "the model timed out",
                                   Settings(_env_file=None, arena_failures_to_pause=1))

    _in_db(site, pause)
    page = open_page(site.url + "/admin")
    _enter_key(page, site.admin_key)
    card = page.locator('#paused [data-slug="stub-gamma"]')
    expect(card).to_contain_text("the model timed out")
    card.get_by_role("button", name="Resume stub-gamma").click()
    expect(page.locator("#paused-status")).to_contain_text("Resumed stub-gamma")
    expect(page.locator("#paused-empty")).to_be_visible()
    assert _api(site, "GET", "/admin/arena/paused", site.admin_key).json() == []


def _held_vote(site: Site) -> int:
    """A battle and a vote through the real arena path; at this site's reading speed the vote is held.
    Only the stub models answer: a submission another test approved (its endpoint is never reachable
    here) is retired first."""
    for model in _api(site, "GET", "/models?status=active").json():
        if model["slug"] not in site.models:
            assert _api(site, "POST", f"/models/{model['slug']}/retire", site.admin_key).status_code == 200
    with httpx.Client(base_url=f"{site.url}/api/v1", timeout=60) as visitor:
        battle = visitor.post("/battles", json={"prompt": "How do plants make food?"})
        assert battle.status_code == 201 and battle.json()["status"] == "ready", battle.text
        voted = visitor.post(f"/battles/{battle.json()['id']}/vote", json={"helpfulness": "a", "safety": "tie"})
    assert voted.status_code == 200 and voted.json()["vote_excluded_reason"] == "review", voted.text
    held = _api(site, "GET", "/admin/arena/review", site.admin_key).json()
    return held[0]["vote_id"]


def test_an_admin_decides_a_held_vote_with_its_rule_shown(site: Site, open_page) -> None:
    vote_id = _held_vote(site)
    page = open_page(site.url + "/admin")
    _enter_key(page, site.admin_key)
    card = page.locator(f'#review [data-vote-id="{vote_id}"]')
    expect(card.locator(".rule")).to_contain_text("too_fast")
    expect(card.locator(".flag-detail")).to_contain_text("needed s")
    expect(card.locator(".prompt")).to_have_text("How do plants make food?")
    card.get_by_label("Note for the other admins (optional)").fill("read far too fast")
    card.get_by_role("button", name=f"Reject vote {vote_id}").click()
    _confirm(page, "Reject it")
    expect(page.locator("#review-status")).to_contain_text(f"Vote {vote_id} rejected")
    expect(card).to_have_count(0)
    decided = _api(site, "GET", "/admin/arena/review?state=decided", site.admin_key).json()
    mine = next(v for v in decided if v["vote_id"] == vote_id)
    assert mine["review"]["decision"] == "rejected" and mine["review"]["note"] == "read far too fast"


@pytest.mark.parametrize(("path", "key_attr", "needs"), [("/submit", None, "refused"),
                                                          ("/admin", "submitter_key", "not an admin key")])
def test_a_wrong_key_says_why_and_is_forgotten(site: Site, open_page, path: str, key_attr: str | None,
                                               needs: str) -> None:
    page = open_page(site.url + path, expect_api_errors=(401, 403))
    page.get_by_label(re.compile("^(Submitter|Admin) key$")).fill(
        getattr(site, key_attr) if key_attr else "libra_wrong_key")
    page.get_by_role("button", name="Use this key").click()
    error = page.locator("#api-key-error")
    expect(error).to_contain_text(needs)
    expect(page.locator("#api-key")).to_be_focused()
    expect(page.locator("#with-key")).to_be_hidden()
    assert page.evaluate("() => sessionStorage.length") == 0


def test_forget_key_removes_it_from_the_tab(site: Site, open_page) -> None:
    page = open_page(site.url + "/submit")
    _enter_key(page, site.submitter_key)
    page.reload()  # kept for the tab's life
    expect(page.locator("#key-in-use")).to_be_visible()
    page.get_by_role("button", name="Forget key").click()
    expect(page.locator("#with-key")).to_be_hidden()
    expect(page.locator("#api-key")).to_be_focused()
    assert page.evaluate("() => sessionStorage.length") == 0


@pytest.mark.parametrize(("path", "key_attr", "scheme"), [("/submit", "submitter_key", "light"),
                                                          ("/admin", "admin_key", "dark")])
def test_both_pages_fit_390_px_without_horizontal_overflow(site: Site, open_page, path: str, key_attr: str,
                                                           scheme: str) -> None:
    _submit_by_api(site, f"narrow-{scheme}")  # something in the lists
    page = open_page(site.url + path, **MOBILE, color_scheme=scheme)
    _enter_key(page, getattr(site, key_attr))
    expect(page.locator("#with-key li").first).to_be_visible()
    page.wait_for_load_state("networkidle")
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= MOBILE["width"], f"{path} is {width} px wide at {MOBILE['width']} px"
    small = page.evaluate("""() => [...document.querySelectorAll('#main button')]
        .filter((b) => b.offsetParent && b.getBoundingClientRect().height < 44).map((b) => b.textContent)""")
    assert small == [], f"tap targets under 44 px: {small}"
