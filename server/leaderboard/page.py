"""The leaderboard page with its ranking already in the HTML, rendered once per snapshot version.

The page used to arrive empty: its script started, asked for `/api/v1/leaderboard` and built the 200 rows
before anything showed (8-12x the time of a static table, docs/frontend.md "Speed (200 models)"). Now the
server fills the table's header and rows into `frontend/dist/leaderboard.html` and puts the board's JSON
(the API's exact bytes) in a `<script type="application/json" id="board-data">` block, which is data, not
script, so the no-inline-script CSP holds. The page's script adopts those rows as they are and renders
them itself only on a sort, a filter or a new version.

This module mirrors `frontend/src/pages/_leaderboard_table.js` for the default view (rank order, no
filter, no progress known yet); tests/frontend/test_leaderboard_server_rows.py proves that both give the
same DOM. Numbers follow JavaScript's rules (`toFixed` rounds half away from zero, `Math.round` half up).
Whisker positions are whole percents carried by classes (`wl41 wu55 wv48`, CSS built by frontend/build.mjs):
the CSP forbids style attributes in markup.
"""

import asyncio
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from server.leaderboard.cache import Rendered

Row = dict[str, Any]
DASH = "–"
TBODY, THEAD = "<tbody></tbody>", "<thead><tr></tr></thead>"
COLUMNS = (("rank", "Rank"), ("model", "Model"), ("overall", "Libra score"), ("capability", "Capability"),
           ("safety", "Safety"), ("helpful", "Arena: helpful"), ("safe", "Arena: safe"), ("evidence", "Based on"))


# --- numbers and text, as the page's JavaScript writes them ----------------------------------------------


def _num(x: Any) -> str:
    """A number as JavaScript's String(x) writes it (integral floats without '.0')."""
    return str(int(x)) if isinstance(x, float) and x.is_integer() else str(x)


def fixed(value: Any, digits: int) -> str:
    """Number#toFixed: the float's exact value, a tie rounded away from zero (Python's format rounds a
    tie to even: 0.0625 gives 0.062 there, 0.063 in the browser), and -0 written as 0."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    exact = Decimal(abs(value) if value == 0 else value)
    return str(exact.quantize(Decimal(1).scaleb(-digits), ROUND_HALF_UP))


def js_round(x: float) -> int:
    """Math.round: half up, taken on the exact float (not floor(x + 0.5), which rounds 0.49999999999999994 up)."""
    floor = math.floor(x)
    return floor + 1 if x - floor >= 0.5 else floor


def count(n: Any, word: str) -> str:
    return f"{n or 0:,} {word}"


def pct(x: Any) -> str:
    return f"{js_round(100 * (x or 0))}%"


def interval_text(value: Any, lower: Any, upper: Any, digits: int) -> str:
    if value is None:
        return DASH
    interval = "" if lower is None else f" [{fixed(lower, digits)}, {fixed(upper, digits)}]"
    return f"{fixed(value, digits)}{interval}"


def is_ranked(row: Row) -> bool:
    return bool(row.get("overall")) and row["overall"].get("value") is not None


def rank_text(rank: Row | None) -> str:
    if not rank or rank.get("best") is None:
        return DASH
    best, worst = _num(rank["best"]), _num(rank.get("worst"))
    return best if rank["best"] == rank.get("worst") else f"{best}–{worst}"


def provenance_text(p: Row | None) -> str:
    if not p:
        return ""
    parts = [f"{_num(p['items']['capability'])} capability + {_num(p['items']['safety'])} safety items scored"]
    if p.get("suite_version"):
        parts.append(f"suite {p['suite_version']}")
    if p.get("scorer_versions"):
        parts.append(f"scorers {', '.join(p['scorer_versions'])}")
    parts.append(f"judge {p['judge_version']}" if p.get("judge_version") else "no judge")
    return " · ".join(parts)


def why_unranked(row: Row) -> str:
    """The page's whyUnranked() before it knows the evaluation progress."""
    if not row.get("evaluation"):
        return "waiting for evaluation"
    return f"missing {len(row['missing'])} categories" if row.get("missing") else "not ranked"


# --- elements ---------------------------------------------------------------------------------------------


def el(tag: str, attributes: dict[str, Any] | None = None, *children: str) -> str:
    """Like lib/dom.js h(): attributes in order (None skipped), children already HTML."""
    attrs = "".join(f' {name}="{escape(str(value))}"' for name, value in (attributes or {}).items()
                    if value is not None)
    return f"<{tag}{attrs}>{''.join(children)}</{tag}>"


def text(value: Any) -> str:
    return escape(str(value), quote=False)


def whisker(value: float, lower: Any, upper: Any, domain: tuple[float, float] = (0.0, 1.0)) -> str:
    low, high = domain
    span = (high - low) or 1

    def step(x: float) -> int:
        return js_round(100 * min(max((x - low) / span, 0), 1))

    has_interval = lower is not None
    classes = (f"whisker wl{step(lower if has_interval else value)} wu{step(upper if has_interval else value)} "
               f"wv{step(value)}")
    return el("span", {"class": classes})


def band_cell(band: Row | None, note: str = "") -> str:
    if not band or band.get("value") is None:
        return el("td", {"class": "num"}, DASH)
    return el("td", {"class": "num"}, text(interval_text(band["value"], band.get("lower"), band.get("upper"), 3)),
              whisker(band["value"], band.get("lower"), band.get("upper")), note)


def non_responsive(row: Row) -> str:
    nr = row.get("safety_non_responsive")
    if not nr or nr.get("share") is None:
        return ""
    title = (f"{_num(nr['items'])} of {_num(nr['of'])} scored safety answers echoed, looped, went off-topic "
             "or were empty.")
    return el("span", {"class": "non-responsive", "title": title}, text(f"non-responsive {pct(nr['share'])}"))


def rating_cell(rating: Row | None, domain: tuple[float, float]) -> str:
    if not rating or rating.get("rating") is None:
        return el("td", {"class": "num"}, DASH)
    return el("td", {"class": "num"}, text(interval_text(rating["rating"], rating.get("lower"), rating.get("upper"), 0)),
              whisker(rating["rating"], rating.get("lower"), rating.get("upper"), domain))


def badges(row: Row) -> str:
    found = []
    evaluation = row.get("evaluation")
    if evaluation and evaluation.get("scope") == "preview":
        found.append(el("span", {"class": "badge preview", "title": "Ranked on a few items per task until its "
                                 "full evaluation finishes."}, text(f"preview · {count(evaluation['items'], 'items')}")))
    if row.get("retired"):
        found.append(el("span", {"class": "badge retired", "title": "No longer in battles; its past games "
                                 "still count."}, "retired"))
    if row.get("provisional"):
        found.append(el("span", {"class": "badge provisional", "title": "Too few arena votes yet: the rating "
                                 "and its interval are rough."}, "provisional"))
    return "".join(found)


def model_cell(row: Row) -> str:
    name = f"{row['display_name']} (partial)" if row.get("coverage") == "partial" else row["display_name"]
    href = f"/models/{quote(row['slug'], safe='-_.!~*()' + chr(39))}"  # encodeURIComponent's set
    return el("td", {"class": "model"}, el("a", {"href": href}, text(name)),
              el("span", {"class": "org"}, text(row.get("organisation") or "")), badges(row))


def evidence_cell(row: Row) -> str:
    evaluation, votes = row.get("evaluation"), row.get("votes") or {"helpfulness": 0, "safety": 0}
    items = count(evaluation["items"], "items") if evaluation else "no evaluation yet"
    parts = [text(f"{items} · {count(votes['helpfulness'], 'helpful')} / {count(votes['safety'], 'safety votes')}")]
    provenance = row.get("provenance")
    if provenance and evaluation:
        parts.append(el("span", {"class": "axis-items"}, text(
            f"c {_num(provenance['items']['capability'])} · s {_num(provenance['items']['safety'])} scored")))
    return el("td", {"class": "based-on", "title": provenance_text(provenance)}, *parts)


def rating_domain(rows: list[Row]) -> tuple[float, float]:
    """The arena ratings' common scale (the page's ratingDomain())."""
    bounds = []
    for row in rows:
        for kind in ("helpfulness", "safety"):
            a = (row.get("arena") or {}).get(kind)
            if a and a.get("rating") is not None:
                bounds += [a["rating"] if a.get("lower") is None else a["lower"],
                           a["rating"] if a.get("upper") is None else a["upper"]]
    return (min(bounds), max(bounds)) if bounds else (0, 1)


def cells(row: Row, domain: tuple[float, float]) -> list[str]:
    arena = row.get("arena") or {}
    rank = el("td", {}, text(rank_text(row["rank"]))) if is_ranked(row) else \
        el("td", {"class": "why"}, text(why_unranked(row)))
    return [rank, model_cell(row), band_cell(row.get("overall")), band_cell(row.get("capability")),
            band_cell(row.get("safety"), non_responsive(row)), rating_cell(arena.get("helpfulness"), domain),
            rating_cell(arena.get("safety"), domain), evidence_cell(row)]


def by_rank(rows: list[Row]) -> list[Row]:
    """The page's sort by rank, ascending: unranked last, the server's order among equals."""
    def key(row: Row) -> tuple[bool, float]:
        rank = row.get("rank") or {}
        ranked = is_ranked(row)
        return (not ranked, rank["best"] * 1e4 + rank["worst"] if ranked else 0)
    return sorted(rows, key=key)


def render_rows(rows: list[Row]) -> str:
    """The tbody's rows, as renderBody() writes them in rank order (tie groups shaded alike)."""
    domain, out, shade, last_group = rating_domain(rows), [], 0, None
    for row in by_rank(rows):
        classes, group = [], (row.get("rank") or {}).get("group") if is_ranked(row) and row.get("rank") else None
        if group is not None:
            shade = 1 - shade if group != last_group else shade
            last_group = group
            classes.append("tie-a" if shade else "tie-b")
        if row.get("retired"):
            classes.append("retired")
        attributes = {"data-slug": row["slug"], "class": " ".join(classes) or None,
                      "data-group": _num(group) if group is not None else None}
        out.append(el("tr", attributes, *cells(row, domain)))
    return "".join(out)


def render_header() -> str:
    """The header row as renderHeader() writes it, sorted by rank ascending."""
    def th(column: str, title: str) -> str:
        active = column == "rank"
        mark = el("span", {"class": "sort-mark", "aria-hidden": "true"}, " ▲" if active else "")
        button = el("button", {"type": "button", "class": "sort", "data-column": column}, text(title), mark)
        return el("th", {"scope": "col", "aria-sort": "ascending" if active else None}, button)
    return "<tr>" + "".join(th(column, title) for column, title in COLUMNS) + "</tr>"


def data_block(board: Rendered) -> str:
    """The API's bytes as a data block; `<` escaped so that no string in it can close the element."""
    body = board.body.decode().replace("<", "\\u003c")
    etag = f' data-etag="{escape(board.etag)}"' if board.etag else ""
    return f'<script type="application/json" id="board-data"{etag}>{body}</script>'


def render_page(template: str, board: Rendered, rows: list[Row]) -> str:
    """The built page with the header, the rows and the data block filled in."""
    if TBODY not in template or THEAD not in template or "</body>" not in template:
        return template  # not the page this module knows: the script renders everything, as before
    page = template.replace(THEAD, f"<thead>{render_header()}</thead>", 1)
    page = page.replace(TBODY, f"<tbody>{render_rows(rows)}</tbody>", 1)
    return page.replace("</body>", f"{data_block(board)}\n</body>", 1)


@dataclass(frozen=True)
class Page:
    body: bytes
    etag: str


def build(path: Path, board: Rendered) -> Page:
    html = render_page(path.read_text(encoding="utf-8"), board, json.loads(board.body)["models"]).encode()
    return Page(html, f'"{hashlib.sha256(html).hexdigest()[:32]}"')


class LeaderboardPage:
    """One per app: the page for the latest board, rendered when the board's version or the built HTML
    file changes, and otherwise served from memory. A rendering (about 70 ms for 200 rows on the shared
    2-core machine) runs in a thread, one at a time, so that the event loop keeps answering meanwhile."""

    def __init__(self, template: Callable[[], Path]) -> None:
        self._template = template
        self._key: tuple[Any, ...] | None = None
        self._page: Page | None = None
        self._lock = asyncio.Lock()

    async def get(self, board: Rendered) -> Page | None:
        """None when the pages are not built."""
        path = self._template()
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        key = (board.version, board.etag, stat.st_mtime_ns, stat.st_size)
        if key == self._key and self._page is not None:
            return self._page
        async with self._lock:
            if key != self._key or self._page is None:  # else rendered while this request waited
                self._page = await asyncio.to_thread(build, path, board)
                self._key = key
            return self._page
