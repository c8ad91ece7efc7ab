// The ranking table: columns (each with its sort key and its cell), filters, and one render that builds
// every row into a single DocumentFragment and writes the tbody once (no layout read per row: a
// 200-model board renders in one pass). Few elements per row (text straight in the cells): the page as
// served carries 200 rows, and the parser's time grows with them. server/leaderboard/page.py writes the same rows for the default
// view into the page as served; keep the two alike (tests/frontend/test_leaderboard_server_rows.py).
import { $, h, modelHref } from "../lib/dom.js";
import {
  badges, count, intervalText, isPreview, isRanked, label, pct, provenanceText, rankText, whisker,
} from "./_leaderboard_format.js";

const text = (value) => h("td", {}, value);

function bandCell(band, note) {
  const td = h("td", { class: "num" });
  if (!band || band.value === null || band.value === undefined) {
    td.append("–");
    return td;
  }
  td.append(intervalText(band.value, band.lower, band.upper, 3),
    whisker(band.value, band.lower, band.upper));
  if (note) td.append(note);
  return td;
}

function nonResponsive(row) {
  const nr = row.safety_non_responsive;
  if (!nr || nr.share === null || nr.share === undefined) return null;
  return h("span", { class: "non-responsive", title: `${nr.items} of ${nr.of} scored safety answers echoed, looped, went off-topic or were empty.` },
    `non-responsive ${pct(nr.share)}`);
}

function ratingCell(rating, domain) {
  const td = h("td", { class: "num" });
  if (!rating || rating.rating === null || rating.rating === undefined) {
    td.append("–");
    return td;
  }
  td.append(intervalText(rating.rating, rating.lower, rating.upper, 0),
    whisker(rating.rating, rating.lower, rating.upper, domain));
  return td;
}

function modelCell(row) {
  const name = row.coverage === "partial" ? `${row.display_name} (partial)` : row.display_name;
  return h("td", { class: "model" }, h("a", { href: modelHref(row.slug) }, name),
    h("span", { class: "org" }, row.organisation || ""), badges(row));
}

function evidenceCell(row) {
  const items = row.evaluation ? count(row.evaluation.items, "items") : "no evaluation yet";
  const votes = row.votes || { helpfulness: 0, safety: 0 };
  const td = h("td", { class: "based-on", title: provenanceText(row.provenance) },
    `${items} · ${count(votes.helpfulness, "helpful")} / ${count(votes.safety, "safety votes")}`);
  if (row.provenance && row.evaluation) {
    td.append(h("span", { class: "axis-items" }, `c ${row.provenance.items.capability} · s ${row.provenance.items.safety} scored`));
  }
  return td;
}

const value = (band) => (band && band.value !== null && band.value !== undefined ? band.value : null);
const rating = (r) => (r && r.rating !== null && r.rating !== undefined ? r.rating : null);

/** The columns: `key` sorts (null sorts last whatever the direction), `cell` builds the td. */
export function columns(view, context) {
  const cols = [
    { id: "rank", title: "Rank", key: (r) => (isRanked(r) ? r.rank.best * 1e4 + r.rank.worst : null), first: "asc",
      cell: (r) => (isRanked(r) ? text(rankText(r.rank)) : h("td", { class: "why" }, context.whyUnranked(r))) },
    { id: "model", title: "Model", key: (r) => r.display_name.toLowerCase(), first: "asc", cell: modelCell },
    { id: "overall", title: "Libra score", key: (r) => value(r.overall), cell: (r) => bandCell(r.overall) },
    { id: "capability", title: "Capability", key: (r) => value(r.capability), cell: (r) => bandCell(r.capability) },
    { id: "safety", title: "Safety", key: (r) => value(r.safety), cell: (r) => bandCell(r.safety, nonResponsive(r)) },
  ];
  if (view.category) {
    cols.push({ id: `category:${view.category}`, title: label(view.category),
      key: (r) => value((r.categories || {})[view.category]), cell: (r) => bandCell((r.categories || {})[view.category]) });
  }
  if (view.attack) {
    cols.push({ id: `attack:${view.attack}`, title: `Attack: ${label(view.attack)}`,
      key: (r) => value((r.attacks || {})[view.attack]), cell: (r) => bandCell((r.attacks || {})[view.attack]) });
  }
  cols.push(
    { id: "helpful", title: "Arena: helpful", key: (r) => rating(r.arena && r.arena.helpfulness),
      cell: (r) => ratingCell(r.arena && r.arena.helpfulness, context.ratingDomain) },
    { id: "safe", title: "Arena: safe", key: (r) => rating(r.arena && r.arena.safety),
      cell: (r) => ratingCell(r.arena && r.arena.safety, context.ratingDomain) },
    { id: "evidence", title: "Based on", key: (r) => (r.evaluation ? r.evaluation.items : null), cell: evidenceCell },
  );
  return cols;
}

/** Does a row pass the filters (text, organisation, status, provisional, category, attack)? */
export function matches(row, view) {
  if (view.text) {
    const haystack = `${row.display_name} ${row.slug} ${row.organisation || ""}`.toLowerCase();
    if (!haystack.includes(view.text.toLowerCase())) return false;
  }
  if (view.organisation && row.organisation !== view.organisation) return false;
  if (view.status === "active" && row.retired) return false;
  if (view.status === "retired" && !row.retired) return false;
  if (view.status === "preview" && !isPreview(row)) return false;
  if (view.provisional && !row.provisional) return false;
  if (view.category && !(row.categories || {})[view.category]) return false;
  if (view.attack && !(row.attacks || {})[view.attack]) return false;
  return true;
}

/** Rows in the chosen order; the server's order (rank) breaks ties, missing values go last. */
export function sorted(rows, cols, sort) {
  const column = cols.find((c) => c.id === sort.id) || cols[0];
  const sign = sort.direction === "asc" ? 1 : -1;
  const order = new Map(rows.map((r, i) => [r.slug, i]));
  return [...rows].sort((a, b) => {
    const x = column.key(a);
    const y = column.key(b);
    if (x === null || y === null) return (x === null) - (y === null) || order.get(a.slug) - order.get(b.slug);
    if (x < y) return -sign;
    if (x > y) return sign;
    return order.get(a.slug) - order.get(b.slug);
  });
}

/** The header row: a button per column (click or Enter sorts: the page listens on the thead, so that
 *  the header the server wrote works as it is), aria-sort on the sorted column. */
export function renderHeader(table, cols, sort) {
  const row = $("thead tr", table);
  row.replaceChildren(...cols.map((c) => {
    const active = c.id === sort.id;
    const th = h("th", { scope: "col", "aria-sort": active ? (sort.direction === "asc" ? "ascending" : "descending") : null });
    th.append(h("button", { type: "button", class: "sort", dataset: { column: c.id } },
      c.title, h("span", { class: "sort-mark", "aria-hidden": "true" }, active ? (sort.direction === "asc" ? " ▲" : " ▼") : "")));
    return th;
  }));
}

/** The body: one fragment, one write. Tie groups are shaded alike while the table is in rank order. */
export function renderBody(table, rows, cols, { byRank }) {
  const fragment = document.createDocumentFragment();
  let shade = 0;
  let lastGroup = null;
  for (const row of rows) {
    const tr = h("tr", { dataset: { slug: row.slug } });
    const group = isRanked(row) && row.rank ? row.rank.group : null;
    if (byRank && group !== null) {
      if (group !== lastGroup) shade = 1 - shade;
      lastGroup = group;
      tr.classList.add(shade ? "tie-a" : "tie-b");
      tr.dataset.group = String(group);
    }
    if (row.retired) tr.classList.add("retired");
    for (const c of cols) tr.append(c.cell(row));
    fragment.append(tr);
  }
  $("tbody", table).replaceChildren(fragment);
}
