"""Frontend benchmark (issue 12): the leaderboard's read path and the leaderboard page's render time.

Run from the repository root: `python -m benchmarks.frontend [--quick] [--skip read|render]`. The last
line of stdout is one JSON object with the figures, the baselines measured in the same run, and a
`targets` object (each with `value`, `goal`, `met`).

- read: `GET /api/v1/leaderboard` requests/s at 16 keep-alive clients against `GET /api/v1/healthz`
  (same client, same run, same server), and the same with `If-None-Match` (the 304 a polling page
  gets), against a real `libra serve --no-worker` whose database holds a 50-model snapshot. The client
  and server helpers are the arena benchmark's (benchmarks/arena.py): its notes on a 2-core machine
  apply (the client competes with the server for CPU, which lowers the /healthz baseline).
- render: a 200-model snapshot on `/leaderboard` in headless Chromium, from navigation start until it is
  rendered, against a static page holding a plain table of the same 200 rows with the same stylesheet,
  served over HTTP by a local static server; a fresh browser context per run (no cache carried over),
  medians of N runs each, interleaved. "Rendered", for both pages alike, is the later of: the 200 rows are
  in the document (for the leaderboard also its scatter drawn, or below the first screen, as the page
  draws its charts when they scroll into view; or the page's own `data-ready="leaderboard"`), and the
  first contentful paint. The page is measured as built in frontend/dist: rebuild it first.

Snapshots are written the way the snapshot job writes them: synthetic models, votes and scored items go
through the real `service.compute` and `service.payload`, then `repository.add`.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import asyncio
import html
import json
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np

from benchmarks import arena
from benchmarks.arena import API, CONCURRENCY, Connection
from core.migrate import upgrade
from core.pgserver import embedded_postgres

READ_MODELS = 50
RENDER_MODELS = 200
# (task, category, axis): three categories per axis, one task each, as a small suite would have them.
TASKS = tuple((f"{axis[:3]}-{c}", c, axis) for axis, cats in
              (("capability", ("reasoning", "knowledge", "coding")),
               ("safety", ("violence", "privacy", "cybercrime"))) for c in cats)
ITEMS_PER_TASK = 12
BOOTSTRAP_ROUNDS = 100
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
READY_TIMEOUT_MS = 20_000


@dataclass(frozen=True)
class Plan:
    phase_s: float  # one phase of one round
    read_rounds: int
    render_runs: int


def plan(quick: bool) -> Plan:
    return Plan(phase_s=1.0, read_rounds=3, render_runs=5) if quick else Plan(phase_s=3.0, read_rounds=5,
                                                                               render_runs=9)


# --- a realistic snapshot, through the snapshot job's own code --------------------------------------------


def synthetic_inputs(n: int, rng: np.random.Generator) -> Any:
    """`n` active models with a latent capability and safety, scored items in every category and
    arena pair counts between neighbours: what `take_snapshot` reads, without a database."""
    from core.registry.models import Contestant, ContestantStatus
    from evaluation.types import ScoredItem, Status
    from server.leaderboard import service

    models = [Contestant(id=i + 1, slug=f"bench-model-{i:03d}", display_name=f"Bench Model {i:03d}",
                         organisation=f"Org {i % 7}", status=ContestantStatus.active) for i in range(n)]
    skill = rng.uniform(0.3, 0.95, size=(n, 2))  # capability, safety
    items = {m.id: [ScoredItem(task=task, item_id=f"{task}-{k}", status=Status.OK, axis=axis, category=category,
                               score=float(rng.random() < skill[i, int(axis == "safety")]))
                    for task, category, axis in TASKS for k in range(ITEMS_PER_TASK)]
             for i, m in enumerate(models)}
    runs = {m.id: service.RunRef(run_id=m.id, scope="full", items=len(TASKS) * ITEMS_PER_TASK,
                                 suite_version="bench/1") for m in models}
    return service.Inputs(models=models, helpfulness=_pair_counts(models, skill[:, 0], rng),
                          safety=_pair_counts(models, skill[:, 1], rng), style_cells={}, items=items, runs=runs,
                          replay={"max_vote_id": 0, "approved_votes": []})


def _pair_counts(models: list, strength: np.ndarray, rng: np.random.Generator) -> list[SimpleNamespace]:
    """PairCount-shaped rows: each model against its next three, 12 games a pair."""
    rows = []
    for i in range(len(models)):
        for j in range(i + 1, min(i + 4, len(models))):
            wins = rng.multinomial(12, _outcome_odds(strength[i] - strength[j]))
            rows.append(SimpleNamespace(model_lo_id=models[i].id, model_hi_id=models[j].id, lo_wins=int(wins[0]),
                                        hi_wins=int(wins[1]), ties=int(wins[2]), both_bad=0))
    return rows


def _outcome_odds(gap: float) -> list[float]:
    win = 1 / (1 + np.exp(-4 * gap))
    return [0.8 * win, 0.8 * (1 - win), 0.2]


def snapshot_body(n: int, seed: int) -> tuple[dict[str, Any], str]:
    """The stored payload and its etag, built exactly as `server.leaderboard.jobs.take_snapshot` does."""
    from core.settings import Settings
    from server.leaderboard import service
    from server.leaderboard.jobs import snapshot_config

    inputs = synthetic_inputs(n, np.random.default_rng([seed, n]))
    settings = Settings(_env_file=None, database_url=None, leaderboard_bootstrap_rounds=BOOTSTRAP_ROUNDS,
                        eval_min_items_per_category=1, leaderboard_seed=seed)
    computed = service.compute(inputs, snapshot_config(settings, ()))
    body = service.payload(computed, inputs.models, inputs)
    etag = service.etag_of(body)
    body["config"] = {**body["config"], "replay": service.replay_record(inputs)}
    return body, etag


def store_snapshot(url: str, body: dict[str, Any], etag: str) -> int:
    from core.db import create_engine, create_sessionmaker, transaction
    from server.leaderboard import repository

    async def work() -> int:
        engine = create_engine(url)
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                stored = await repository.add(session, trigger="manual", config=body["config"], payload=body,
                                              etag=etag)
                return stored.id
        finally:
            await engine.dispose()

    return asyncio.run(work())


# --- read path ------------------------------------------------------------------------------------------------


async def read_phases(port: int, p: Plan, etag: str) -> dict[str, Any]:
    """Rounds of the three phases back to back, so that a busy moment of the machine hits all three;
    each round gives a ratio to its own /healthz, and the medians of those ratios are the figures."""

    async def healthz(http: Connection, _: int) -> bool:
        return (await http.request("GET", f"{API}/healthz"))[0] == 200

    async def board(http: Connection, _: int) -> bool:
        code, body = await http.request("GET", f"{API}/leaderboard")
        return code == 200 and len(body) > 0

    async def unchanged(http: Connection, _: int) -> bool:
        return (await http.request("GET", f"{API}/leaderboard"))[0] == 304

    plain = [Connection("127.0.0.1", port) for _ in range(CONCURRENCY)]
    conditional = [Connection("127.0.0.1", port) for _ in range(CONCURRENCY)]
    rounds: list[dict[str, arena.Phase]] = []
    try:
        for connections in (plain, conditional):  # warm-up: connections and session cookies
            await arena.load(connections, healthz, seconds=0.5, total=None)
        for connection in conditional:  # the client's raw header slot (arena.Connection sends it as is)
            connection.cookie += f"If-None-Match: {etag}\r\n".encode()
        await arena.load(plain, board, seconds=0.5, total=None)
        for _ in range(p.read_rounds):
            rounds.append({"healthz": await arena.load(plain, healthz, seconds=p.phase_s, total=None),
                           "leaderboard": await arena.load(plain, board, seconds=p.phase_s, total=None),
                           "leaderboard_304": await arena.load(conditional, unchanged, seconds=p.phase_s,
                                                               total=None)})
    finally:
        for connection in plain + conditional:
            connection.close()
    return summarise(rounds)


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per phase: the rounds pooled (requests, latencies); per round: requests/s; and the median over rounds
    of each phase's requests/s over the same round's /healthz."""
    out: dict[str, Any] = {}
    for name in rounds[0]:
        phases = [r[name] for r in rounds]
        pooled = arena.Phase(sum(x.requests for x in phases), sum(x.errors for x in phases),
                             sum(x.seconds for x in phases), np.concatenate([x.latencies_s for x in phases]))
        out[name] = {**pooled.figures(), "req_per_s_by_round": [x.figures()["req_per_s"] for x in phases]}
    for name in ("leaderboard", "leaderboard_304"):
        ratios = [r[name].requests / r[name].seconds / (r["healthz"].requests / r["healthz"].seconds)
                  for r in rounds if r["healthz"].requests]
        out[f"{name}_over_healthz_rps_median"] = round(float(np.median(ratios)), 4) if ratios else None
    return out


def publish(url: str, base: str, body: dict[str, Any], etag: str) -> dict[str, Any]:
    """Store a snapshot from this process (as a worker elsewhere would) and wait until the server serves it:
    how long that takes is the read path's staleness, measured across processes."""
    version = store_snapshot(url, body, etag)
    stored = time.perf_counter()
    deadline = stored + 30
    while time.perf_counter() < deadline:
        answer = httpx.get(f"{base}{API}/leaderboard", timeout=10)
        if answer.json()["version"] == version:
            return {"version": version, "served_after_s": round(time.perf_counter() - stored, 3),
                    "response_bytes": len(answer.content), "etag": answer.headers.get("etag", "")}
        time.sleep(0.02)  # polling a server in another process: nothing to wait on but the clock
    raise TimeoutError(f"version {version} was not served within 30 s")


def measure_read(url: str, base: str, port: int, p: Plan, seed: int) -> dict[str, Any]:
    published = publish(url, base, *snapshot_body(READ_MODELS, seed))
    phases = asyncio.run(read_phases(port, p, published["etag"]))
    return {"models": READ_MODELS, **published, **phases}


# --- render ---------------------------------------------------------------------------------------------------

# Recorded from inside the page, so that Playwright's own round trips are not timed: performance.now() is
# milliseconds since navigation start. "Rendered" is the later of two moments, for both pages alike: the
# rows are in the document (a MutationObserver sees the condition the moment it holds) and the page has
# painted (the first-contentful-paint entry). The first alone would count a page whose rows are parsed but
# whose first frame waits for its stylesheet; the second alone would count a first frame that holds part
# of the table. Read back through attributes: the page's CSP forbids the eval behind Playwright's
# wait_for_function.
READY_PROBE = """
(() => {
  const marks = {};  // the init script runs before the document has its root element: kept here first
  const signalled = () => document.body && document.body.dataset.ready === "leaderboard";
  const rowsIn = () => signalled()
    || document.querySelectorAll("#board tbody tr, #leaderboard-table tbody tr").length >= ROWS;
  // When the charts are in: at once for the plain table, or when the scatter lies below the first screen
  // (the page draws its charts when they scroll into view); else when the scatter's SVG (or the page's
  // own signal, set once the charts in view are drawn) is seen. Asked only once the page has painted, when
  // its layout is done: a layout read before that forces one while the parser is still at work (50-100
  // ms here), a cost the static page does not pay.
  const chartsAt = () => {
    if (marks.charts !== undefined) return marks.charts;
    const scatter = document.getElementById("scatter");
    if (document.body.dataset.ready === "static" || (scatter && scatter.getBoundingClientRect().top >= window.innerHeight)) {
      marks.charts = 0;
    } else if (signalled() || document.querySelector(scatter ? "#scatter svg" : "main svg")) {
      marks.charts = performance.now();
    }
    return marks.charts;
  };
  const check = () => {
    const root = document.documentElement;
    if (!root || root.hasAttribute("data-bench-ready")) return;
    if (marks.rows === undefined && rowsIn()) marks.rows = performance.now();
    if (marks.rows === undefined || marks.paint === undefined || chartsAt() === undefined) return;
    root.setAttribute("data-bench-rows", marks.rows);
    root.setAttribute("data-bench-paint", marks.paint);
    root.setAttribute("data-bench-ready", Math.max(marks.rows, marks.paint, marks.charts));
  };
  new MutationObserver(check).observe(document, {subtree: true, childList: true, attributes: true});
  document.addEventListener("DOMContentLoaded", check);
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      if (entry.name === "first-contentful-paint") marks.paint = entry.startTime;
    }
    check();
  }).observe({type: "paint", buffered: true});
})();
""".replace("ROWS", str(RENDER_MODELS))


def static_table(rows: list[dict[str, Any]], stylesheet: str) -> str:
    """A plain table of the same rows with the site's stylesheet: what the page is measured against."""
    def band(b: dict[str, Any]) -> str:
        return "—" if b["value"] is None else f"{b['value']:.3f} [{b['lower']:.3f}, {b['upper']:.3f}]"

    body = "".join(
        f"<tr><td>{r['rank']['best'] or ''}</td><td>{html.escape(r['display_name'])}</td>"
        f"<td>{html.escape(r['organisation'])}</td><td>{band(r['overall'])}</td><td>{band(r['capability'])}</td>"
        f"<td>{band(r['safety'])}</td><td>{r['votes']['helpfulness']}</td></tr>" for r in rows)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>static table</title>'
            f'<link rel="stylesheet" href="{stylesheet}"></head><body data-ready="static"><main>'
            f'<h1>Leaderboard</h1><div class="table-scroll"><table id="leaderboard-table"><thead><tr><th>Rank</th>'
            f"<th>Model</th><th>Organisation</th><th>Overall</th><th>Capability</th><th>Safety</th><th>Votes</th>"
            f"</tr></thead><tbody>{body}</tbody></table></div></main></body></html>")


def serve_static(page: bytes) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # the name http.server dispatches to
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            return None

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/static-table"


def time_page(browser: Any, url: str) -> dict[str, float] | None:
    """Milliseconds from navigation start until the rows are in the document (`rows`), the first
    contentful paint (`paint`) and the later of the two (`ready`); None if the page never gets there."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.add_init_script(READY_PROBE)
        page.goto(url, wait_until="commit")
        try:
            page.wait_for_selector("html[data-bench-ready]", state="attached", timeout=READY_TIMEOUT_MS)
        except PlaywrightTimeout:  # the page never showed the 200 rows
            return None
        return {mark: float(page.get_attribute("html", f"data-bench-{mark}") or "nan")
                for mark in ("ready", "rows", "paint")}
    finally:
        context.close()


def _median(values: list[float | None]) -> float | None:
    done = [v for v in values if v is not None]
    return round(float(np.median(done)), 1) if done and len(done) == len(values) else None


def render_runs(base: str, static_url: str, runs: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            time_page(browser, static_url)  # warm-up of both: the browser's own first start, disk caches
            time_page(browser, base + "/leaderboard")
            page, static = [], []
            for _ in range(runs):  # interleaved, so that a noisy moment hits both sides
                page.append(time_page(browser, base + "/leaderboard"))
                static.append(time_page(browser, static_url))
        finally:
            browser.close()

    def marks(found: list[dict[str, float] | None], mark: str) -> list[float | None]:
        return [None if f is None else round(f[mark], 1) for f in found]

    figures: dict[str, Any] = {"runs": runs}
    for name, found in (("leaderboard", page), ("static", static)):
        figures[f"{name}_ms"] = marks(found, "ready")
        figures[f"{name}_median_ms"] = _median(marks(found, "ready"))
        for mark in ("rows", "paint"):
            figures[f"{name}_{mark}_median_ms"] = _median(marks(found, mark))
    # Shown, not a target: the rows in the document alone, without the paint.
    ratio = _ratio(figures["leaderboard_rows_median_ms"], figures["static_rows_median_ms"])
    figures["rows_in_document_ratio"] = None if ratio is None else round(ratio, 3)
    return figures


def measure_render(url: str, base: str, p: Plan, seed: int) -> dict[str, Any]:
    body, etag = snapshot_body(RENDER_MODELS, seed)
    published = publish(url, base, body, etag)
    httpd, static_url = serve_static(static_table(body["models"], base + "/assets/style.css").encode())
    try:
        figures = render_runs(base, static_url, p.render_runs)
    finally:
        httpd.shutdown()
    return {"models": RENDER_MODELS, "version": published["version"], "served_after_s": published["served_after_s"],
            **figures}


def measure(p: Plan, seed: int, skip: list[str]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """One embedded Postgres and one `libra serve` for both parts; each part publishes its own snapshot."""
    with tempfile.TemporaryDirectory(prefix="libra-bench-", dir="/tmp") as home, \
            embedded_postgres(Path(home) / "pg") as url:  # outside /root: see tests/conftest.py
        upgrade(url)
        port = arena.free_port()
        server = arena.start_server(arena.server_env(url, home), port)
        base = f"http://127.0.0.1:{port}"
        try:
            read = measure_read(url, base, port, p, seed) if "read" not in skip else None
            render = measure_render(url, base, p, seed) if "render" not in skip else None
        finally:
            arena.stop(server)
    return read, render


# --- targets and the report ---------------------------------------------------------------------------------


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def targets(read: dict[str, Any] | None, render: dict[str, Any] | None) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if read is not None:
        ratio = read["leaderboard_over_healthz_rps_median"]
        found["leaderboard_over_healthz_rps"] = arena._target(ratio, ">= 0.5", ratio is not None and ratio >= 0.5)
        conditional = read["leaderboard_304_over_healthz_rps_median"]
        found["leaderboard_304_over_healthz_rps"] = arena._target(conditional, ">= 0.5",
                                                            conditional is not None and conditional >= 0.5)
    if render is not None:
        ratio = _ratio(render["leaderboard_median_ms"], render["static_median_ms"])
        note = None if ratio is not None else "the page never showed 200 rows and the scatter (see render)"
        found["render_over_static_table"] = arena._target(ratio, "<= 2", ratio is not None and ratio <= 2, note)
    return found


PARTS = ("read", "render")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short load phases and few render runs")
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--skip", action="append", default=[], choices=PARTS, help="leave out a part; repeatable")
    args = parser.parse_args()
    p = plan(args.quick)
    started = time.perf_counter()
    read, render = measure(p, args.seed, args.skip)
    result = {
        "benchmark": "frontend", "quick": args.quick, "seed": args.seed, "cpus": os.cpu_count(),
        "concurrency": CONCURRENCY, "phase_seconds": p.phase_s, "read_rounds": p.read_rounds,
        "server": "libra serve --no-worker (one uvicorn process), embedded Postgres, one stored snapshot",
        "client": f"{CONCURRENCY} raw keep-alive HTTP/1.1 connections from one asyncio process on the same "
                  "machine (benchmarks.arena.Connection; it competes with the server for CPU)",
        "baseline": {"read": "GET /api/v1/healthz at the same concurrency, same client, same run",
                     "render": "a static HTML page with a plain table of the same rows and the same stylesheet"},
        "read": read, "render": render,
        "total_seconds": round(time.perf_counter() - started, 2),
        "targets": targets(read, render),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
