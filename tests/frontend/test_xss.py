"""A hostile model's answer on the arena page: its <script>, its onerror attribute and its javascript: links
must do nothing, while its words stay readable (answers go through lib/markdown.js: marked + DOMPurify).

The site has two contestants, `stub-evil` and `stub-alpha`, so every battle includes the hostile one."""

from collections.abc import Iterator

import pytest

from tests.frontend.conftest import Site, start_site

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def evil_site(module_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with start_site(module_db, tmp_path_factory.mktemp("home"), ["stub-evil", "stub-alpha"]) as running:
        yield running


def test_a_hostile_answer_is_shown_as_harmless_text(evil_site: Site, open_page) -> None:
    page = open_page(evil_site.url + "/")
    page.fill("#prompt", "Say hello.")
    page.click("#send")
    page.wait_for_selector("#vote-form:not([hidden]) #vote-fields:not([hidden])")
    evil = page.locator(".answer", has_text="Hello")
    assert evil.count() == 1
    body = evil.locator(".answer-body")
    assert body.is_visible()
    text = body.inner_text()
    # The words survive; raw HTML is shown as the text the model wrote, never as elements.
    assert "Hello" in text and "click me" in text and "or me" in text
    assert "<script>window.__xss = 1</script>" in text
    assert page.evaluate("() => window.__xss") is None
    answers = page.locator("#turns")
    assert answers.locator("script").count() == 0
    assert answers.locator("img").count() == 0
    assert answers.locator("[onerror], [onclick], [onload]").count() == 0
    # The Markdown link keeps its words and loses its javascript: target; the raw <a> is text.
    hrefs = answers.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert hrefs == [None]
    targets = answers.evaluate("e => [...e.querySelectorAll('[href], [src]')]"
                               ".map(n => n.getAttribute('href') || n.getAttribute('src')).join(' ')")
    assert "javascript:" not in targets

    before = page.url
    for name in ("click me", "or me"):
        answers.get_by_text(name).click()
    assert page.evaluate("() => window.__xss") is None
    assert page.url == before and len(page.context.pages) == 1  # nothing ran, nothing opened
