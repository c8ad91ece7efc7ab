"""Browser tests: Debian's Chromium driven by Playwright against a real `libra serve` with embedded Postgres.

`site` is one running service per test module (starting one takes seconds), with stub OpenAI-compatible
models that stream their answers (`StubModelsForTests`: the test is about the pages, not the models'
text), an admin key and a submitter key. `open_page` gives a page that fails the test on any console
error, failed script or CSP violation, and saves a screenshot under LIBRA_SCREENSHOT_DIR (scripts/test.sh
points it at out/screenshots, which CI keeps) when the test ends.
"""

import asyncio
import json
import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import create_engine, create_sessionmaker, libpq_url, transaction
from core.keys.models import KeyScope
from core.keys.service import create_key
from core.registry import repository as registry
from core.registry.models import ContestantStatus
from core.registry.schemas import ContestantIn
from core.settings import Settings
from evaluation import service as eval_service
from evaluation.models import RunReason, RunScope, RunStatus
from inference import BackendPool
from server.contestants import register
from server.leaderboard.jobs import take_snapshot
from tests.conftest import TEMPLATE, database_url
from tests.http_stub import JsonHandler, StreamingHandler
from tests.http_stub import serving as stub_serving
from tests.server.livesite import serving as libra_serving

CHROMIUM = Path("/usr/bin/chromium")
API_ERROR_LOG = re.compile(r"^Failed to load resource: the server responded with a status of (\d{3})")
pytestmark = pytest.mark.browser

# Each stub model's answer, streamed word by word. The last one is hostile: a page must show its
# script and its javascript: link as harmless text or drop them (tests/frontend/test_xss.py).
STUB_ANSWERS = {
    "stub-alpha": "Plants make food by **photosynthesis**: light, water and carbon dioxide become sugar.",
    "stub-beta": "Here are three steps:\n\n1. Light is absorbed\n2. Water is split\n3. Sugar is made",
    "stub-gamma": "I can't help with that part, but here is a safe summary of the idea.",
    "stub-evil": 'Hello <script>window.__xss = 1</script><img src=x onerror="window.__xss = 2"> '
                 '[click me](javascript:window.__xss=3) <a href="javascript:window.__xss=4">or me</a>',
}


class StubModelsForTests(StreamingHandler):
    """An OpenAI-compatible endpoint that streams each model's canned answer (the text is not under test)."""

    delay_s = 0.01

    def do_POST(self) -> None:
        request = json.loads(self.read_body() or b"{}")
        text = STUB_ANSWERS.get(request.get("model"), "A plain answer.")
        if not request.get("stream"):
            self.send_json(200, {"id": "x", "object": "chat.completion", "model": request.get("model"),
                                 "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                              "finish_reason": "stop"}],
                                 "usage": {"prompt_tokens": 5, "completion_tokens": len(text.split())}})
            return
        self.stream(re.findall(r"\S+\s*", text), self.delay_s)


@dataclass
class Site:
    url: str  # e.g. http://127.0.0.1:PORT
    db_url: str
    admin_key: str
    submitter_key: str
    models: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Per module, not per session: Playwright's sync API runs an event loop in this thread while it is
    open, and the async tests of later modules (pytest-asyncio) could not run theirs."""
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


@pytest.fixture(scope="module")
def module_db(pg_server: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A database of its own for a test module (its `site` outlives one test)."""
    name = "m_" + re.sub(r"\W", "_", request.module.__name__.rsplit(".", 1)[-1])[:40] + f"_{os.getpid()}"
    with psycopg.connect(libpq_url(pg_server), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    yield database_url(pg_server, name)
    with psycopg.connect(libpq_url(pg_server), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


async def _prepare(db_url: str, base_url: str, models: list[str]) -> tuple[str, str]:
    engine = create_engine(db_url)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            for slug in models:
                config = {"kind": "openai", "base_url": base_url, "model": slug, "max_retries": 0}
                await register(session, ContestantIn(slug=slug, display_name=slug.replace("-", " ").title(),
                                                     organisation="Stub Labs", config=config),
                               ContestantStatus.active, actor="test")
            admin = await create_key(session, "browser-admin", KeyScope.admin, actor="test")
            submitter = await create_key(session, "browser-submitter", KeyScope.submitter, actor="test")
        return admin.plaintext, submitter.plaintext
    finally:
        await engine.dispose()


async def evaluate_and_snapshot(sessions: async_sessionmaker[AsyncSession], settings: Settings, slugs: list[str],
                                items_per_task: int, held_out_per_task: int) -> int | None:
    """Evaluates each registered model on the smoke suite through the real runner, then runs the real
    snapshot job; its new version (None when nothing changed)."""
    backends = BackendPool(egress_allow=settings.egress_allow)
    try:
        for slug in slugs:
            async with transaction(sessions) as session:
                model = await registry.get_by_slug(session, slug)
                run = await eval_service.create_run(session, model, "smoke", RunReason.cli, "test",
                                                    items_per_task, held_out_per_task, RunScope.full)
            done = await eval_service.execute_run(eval_service.EvalDeps(sessions, settings, backends), run.id)
            assert done.status == RunStatus.finished, done.error
        return await take_snapshot(sessions, settings, "manual")
    finally:
        await backends.aclose()


@contextmanager
def start_site(db_url: str, home: Path, models: list[str], extra_env: dict[str, str] | None = None,
               handler: type[JsonHandler] | None = None) -> Iterator[Site]:
    """The stub models (`handler`, by default StubModelsForTests), their registration, and `libra serve
    --no-worker` on them."""
    with stub_serving(handler or StubModelsForTests) as stub_url:
        # In a thread of its own: Playwright's sync API already runs an event loop in this one.
        with ThreadPoolExecutor(1) as pool:
            admin, submitter = pool.submit(asyncio.run, _prepare(db_url, stub_url, models)).result()
        env = {"LIBRA_DATABASE_URL": db_url, "LIBRA_HOME": str(home), "LIBRA_EGRESS_ALLOW": "127.0.0.1/32",
               "LIBRA_SEED_DEFAULTS": "false", "LIBRA_FIRST_RUN_EVALUATIONS": "false",
               "LIBRA_ARENA_READ_WORDS_PER_S": "1000000", **(extra_env or {})}
        with libra_serving(env, "--no-worker") as (url, _):
            yield Site(url=url, db_url=db_url, admin_key=admin, submitter_key=submitter, models=models)



@pytest.fixture(scope="module")
def site(module_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One `libra serve` for the module, with three ordinary stub models (no hostile one)."""
    with start_site(module_db, tmp_path_factory.mktemp("home"), ["stub-alpha", "stub-beta", "stub-gamma"]) as s:
        yield s


def screenshot_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("LIBRA_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def open_page(browser, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable]:
    """open_page(url, width=1280, height=900) -> a Playwright page. At the end of the test every page is
    screenshotted and must have logged no console error, page error or refused request."""
    opened: list[tuple] = []

    def make(url: str, *, width: int = 1280, height: int = 900, color_scheme: str = "light",
             expect_api_errors: tuple[int, ...] = ()):
        """`expect_api_errors`: statuses of the API (/api/v1/...) the test provokes on purpose (a wrong
        key's 401, a 429): Chromium logs every error answer to fetch() as a console error, though the
        page handles it. Any other console error still fails the test."""
        context = browser.new_context(viewport={"width": width, "height": height}, color_scheme=color_scheme)
        page = context.new_page()
        problems: list[str] = []
        def on_console(message) -> None:
            logged = API_ERROR_LOG.match(message.text)
            expected = (logged and int(logged.group(1)) in expect_api_errors
                        and "/api/v1/" in message.location.get("url", ""))
            if message.type == "error" and not expected:
                problems.append(f"console.{message.type}: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.goto(url)
        opened.append((context, page, problems))
        return page

    yield make
    folder = screenshot_dir(tmp_path)
    name = re.sub(r"\W+", "_", request.node.name)[:80]
    failures = []
    for i, (context, page, problems) in enumerate(opened):
        try:
            page.screenshot(path=str(folder / f"{name}{'_' + str(i) if i else ''}.png"), full_page=True)
        except Exception:  # noqa: BLE001, S110 - a screenshot is a courtesy; the test's own result stands
            pass
        failures += problems
        context.close()
    assert not failures, "the page logged errors:\n" + "\n".join(failures)
