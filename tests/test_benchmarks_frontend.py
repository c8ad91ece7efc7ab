"""The frontend benchmark's pure parts: the synthetic snapshot, the static table, the round summary and the
shape of its targets. No timings are asserted (the figures come from `python -m benchmarks.frontend`)."""

import json
from html.parser import HTMLParser

import numpy as np

from benchmarks import frontend
from benchmarks.arena import Phase
from server.leaderboard import service


def test_the_synthetic_snapshot_goes_through_the_job_code_and_is_replayable() -> None:
    body, etag = frontend.snapshot_body(6, seed=3)
    rows = body["models"]
    assert len(rows) == 6 and len({r["slug"] for r in rows}) == 6
    assert all(r["coverage"] == "ok" and r["overall"]["lower"] <= r["overall"]["value"] <= r["overall"]["upper"]
               for r in rows)
    assert all(r["arena"]["helpfulness"] is not None and r["evaluation"]["scope"] == "full" for r in rows)
    values = [r["overall"]["value"] for r in rows]
    assert values == sorted(values, reverse=True)  # payload() orders the board
    assert body["config"]["replay"]["models"] and body["config"]["bootstrap_rounds"] == frontend.BOOTSTRAP_ROUNDS
    without_replay = {**body, "config": {k: v for k, v in body["config"].items() if k != "replay"}}
    assert etag == service.etag_of(without_replay)  # the etag the job would store
    assert frontend.snapshot_body(6, seed=3) == (body, etag)  # same seed, same board


class _Rows(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows, self.stylesheets, self.in_body = 0, [], False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.in_body = self.in_body or tag == "tbody"
        self.rows += tag == "tr" and self.in_body
        if tag == "link":
            self.stylesheets.append(dict(attrs)["href"])


def test_the_static_table_has_one_row_per_model_and_the_sites_stylesheet() -> None:
    body, _ = frontend.snapshot_body(5, seed=1)
    body["models"][0]["display_name"] = "<script>alert(1)</script>"
    page = frontend.static_table(body["models"], "http://x/assets/style.css")
    parsed = _Rows()
    parsed.feed(page)
    assert parsed.rows == 5 and parsed.stylesheets == ["http://x/assets/style.css"]
    assert "<script>" not in page and 'data-ready="static"' in page


def _phase(requests: int, seconds: float = 1.0) -> Phase:
    return Phase(requests, 0, seconds, np.full(requests, 0.001))


def test_rounds_are_summarised_by_the_median_of_their_own_ratios() -> None:
    rounds = [{"healthz": _phase(1000), "leaderboard": _phase(800), "leaderboard_304": _phase(900)},
              {"healthz": _phase(200), "leaderboard": _phase(100), "leaderboard_304": _phase(190)},  # a busy moment
              {"healthz": _phase(1000), "leaderboard": _phase(700), "leaderboard_304": _phase(950)}]
    out = frontend.summarise(rounds)
    assert out["leaderboard_over_healthz_rps_median"] == 0.7
    assert out["leaderboard_304_over_healthz_rps_median"] == 0.95
    assert out["healthz"]["requests"] == 2200 and out["leaderboard"]["req_per_s_by_round"] == [800, 100, 700]


def test_targets_have_value_goal_and_met() -> None:
    read = {"leaderboard_over_healthz_rps_median": 0.7, "leaderboard_304_over_healthz_rps_median": 0.4}
    render = {"leaderboard_median_ms": 300.0, "static_median_ms": 100.0}
    found = frontend.targets(read, render)
    json.dumps(found)
    assert all({"value", "goal", "met"} <= set(t) for t in found.values())
    assert found["leaderboard_over_healthz_rps"]["met"] and not found["leaderboard_304_over_healthz_rps"]["met"]
    assert found["render_over_static_table"] == {"value": 3.0, "goal": "<= 2", "met": False}
    never = frontend.targets(None, {"leaderboard_median_ms": None, "static_median_ms": 100.0})
    assert never["render_over_static_table"]["value"] is None and not never["render_over_static_table"]["met"]
    assert "note" in never["render_over_static_table"] and "leaderboard_over_healthz_rps" not in never


def test_a_render_median_needs_every_run() -> None:
    assert frontend._median([3.0, 1.0, 2.0]) == 2.0
    assert frontend._median([3.0, None, 2.0]) is None  # a run that never got ready is not dropped silently


def _plain_rows(n: int) -> list[dict]:
    """The fields static_table reads, without a snapshot's cost."""
    band = {"value": 0.5, "lower": 0.4, "upper": 0.6}
    return [{"rank": {"best": i + 1}, "display_name": f"model {i}", "organisation": "org", "overall": band,
             "capability": band, "safety": band, "votes": {"helpfulness": i}} for i in range(n)]


def test_the_render_probe_waits_for_every_row_and_the_first_paint(monkeypatch) -> None:
    """In Chromium: "rendered" is the later of all rows in the document and the first contentful paint,
    and a page that says ready on its <body> but lacks rows is never ready (the probe used to accept the
    static page's <body> tag before any row was parsed)."""
    from playwright.sync_api import sync_playwright

    monkeypatch.setattr(frontend, "READY_TIMEOUT_MS", 2_000)
    pages = [frontend.static_table(_plain_rows(n), "data:text/css,") for n in (frontend.RENDER_MODELS, 10)]
    servers = [frontend.serve_static(page.encode()) for page in pages]
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=frontend.CHROMIUM, headless=True,
                                         args=frontend.CHROMIUM_ARGS)
            try:
                full = frontend.time_page(browser, servers[0][1])
                short = frontend.time_page(browser, servers[1][1])
            finally:
                browser.close()
    finally:
        for httpd, _ in servers:
            httpd.shutdown()
    assert full is not None and full["rows"] > 0 and full["paint"] > 0
    assert full["ready"] == max(full["rows"], full["paint"])
    assert short is None
