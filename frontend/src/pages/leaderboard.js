// The leaderboard page (issue 12): the ranking table (sortable, filterable), the capability-versus-
// safety scatter, the heat map by category or attack, evaluation progress and the methodology.
//
// The page arrives with the ranking already in the table and the board's JSON in a data block
// (server/leaderboard/page.py): the script adopts those rows as they are, and renders the table itself
// only on a sort, a filter, a progress change or a new version.
//
// It keeps itself current without a reload: it asks for the snapshot with If-None-Match every 15 s
// (every 3 s while evaluations run) and whenever the tab becomes visible again; a 304 costs nothing,
// a new version is re-rendered in place, keeping the visitor's filters and sort, and announced.
import "../lib/shell.js";
import { api } from "../lib/api.js";
import { $, announce, h, when } from "../lib/dom.js";
import { isRanked, label } from "./_leaderboard_format.js";
import { renderMethodology, renderProgress, whyUnranked } from "./_leaderboard_method.js";
import { columns, matches, renderBody, renderHeader, sorted } from "./_leaderboard_table.js";

const POLL_MS = 15000;
const FAST_MS = 3000; // while evaluations run, and a minute after (for the snapshot that follows them)
const SETTLE_MS = 60000;

const state = {
  etag: null, data: null, progress: null, progressKey: "", lastActive: 0, timer: null, busy: false,
  sort: { id: "rank", direction: "asc" },
  view: { text: "", organisation: "", status: "", category: "", attack: "", provisional: false },
  cols: null, // the table's columns as last rendered (the header's clicks look them up)
  chartWidth: 0,
  seen: new Set(), // the chart sections that have come near the viewport
  watching: false,
  methodology: null, // its request, once made
};

// --- fetching ---------------------------------------------------------------------------------------

/** The latest snapshot, or null when it has not changed since the one shown (304). Plain fetch, not
 *  lib/api.js: the ETag header is what makes polling cheap. */
async function fetchBoard() {
  const headers = state.etag ? { "If-None-Match": state.etag } : {};
  const response = await fetch("/api/v1/leaderboard", { headers, cache: "no-store", credentials: "same-origin" });
  if (response.status === 304) return null;
  if (!response.ok) throw new Error(`the server answered ${response.status}`);
  state.etag = response.headers.get("ETag");
  return response.json();
}

async function refresh() {
  if (state.busy) return;
  state.busy = true;
  clearTimeout(state.timer);
  try {
    // Both at once, and the board drawn as soon as it is here: the progress (a few queries) must not
    // hold it back; when the progress changes the reasons on unranked rows, the table is redrawn.
    const settle = (promise) => promise.then((value) => ({ status: "fulfilled", value }),
      (reason) => ({ status: "rejected", reason }));
    const progress = settle(api("/evaluations/progress"));
    applyBoard(await settle(fetchBoard()));
    if (applyProgress(await progress) && state.data && !rows().every(isRanked)) renderTable();
  } finally {
    state.busy = false;
    const fast = Date.now() - state.lastActive < SETTLE_MS;
    state.timer = setTimeout(refresh, fast ? FAST_MS : POLL_MS);
  }
}

/** Returns true when the progress changed: the reasons on unranked rows ("evaluating 40%") follow it. */
function applyProgress(result) {
  // On failure the board still shows; the next round tries again.
  state.progress = result.status === "fulfilled" ? result.value : null;
  renderProgress(state.progress);
  if (state.progress && state.progress.active) state.lastActive = Date.now();
  const key = JSON.stringify(state.progress && state.progress.models);
  const changed = key !== state.progressKey;
  state.progressKey = key;
  return changed;
}

function applyBoard(result) {
  const error = $("#board-error");
  if (result.status === "rejected") {
    error.textContent = `Could not load the leaderboard: ${result.reason.message}. Retrying…`;
    error.hidden = false;
    return;
  }
  error.hidden = true;
  const fresh = result.value;
  if (fresh) {
    const previous = state.data ? state.data.version : undefined;
    state.data = fresh;
    renderAll();
    if (previous !== undefined && fresh.version !== previous) announce(`Leaderboard updated to version ${fresh.version}`);
  }
}

// --- rendering --------------------------------------------------------------------------------------

const rows = () => (state.data ? state.data.models : []);
const visible = () => rows().filter((r) => matches(r, state.view));

/** The arena ratings' common scale, so that whiskers compare across rows. */
function ratingDomain() {
  const bounds = rows().flatMap((r) => ["helpfulness", "safety"].flatMap((k) => {
    const a = r.arena && r.arena[k];
    return a && a.rating !== null ? [a.lower ?? a.rating, a.upper ?? a.rating] : [];
  }));
  return bounds.length ? [Math.min(...bounds), Math.max(...bounds)] : [0, 1];
}

function tableColumns() {
  const context = { whyUnranked: (r) => whyUnranked(r, state.progress), ratingDomain: ratingDomain() };
  state.cols = columns(state.view, context);
  if (!state.cols.some((c) => c.id === state.sort.id)) state.sort = { id: "rank", direction: "asc" };
  return state.cols;
}

function renderTable() {
  const cols = tableColumns();
  const table = $("#board");
  // A re-render (new snapshot, progress) must not take the focus away from a sort button.
  const focused = document.activeElement && document.activeElement.closest("#board th button");
  renderHeader(table, cols, state.sort);
  table.style.setProperty("--bands", String(cols.length - 5)); // the grid's score columns (css/leaderboard.css)
  if (focused) $(`#board th button[data-column="${CSS.escape(focused.dataset.column)}"]`)?.focus();
  const shown = sorted(visible(), cols, state.sort);
  renderBody(table, shown, cols, { byRank: state.sort.id === "rank" && state.sort.direction === "asc" });
  showCount(shown.length);
}

function showCount(shown) {
  const total = rows().length;
  $("#board-empty").hidden = total > 0;
  $("#filter-count").textContent = shown === total ? `${total} models` : `${shown} of ${total} models shown`;
}

/** The rows the server wrote are the default view's (rank order, no filter, no progress yet): kept as they
 *  are unless the visitor's view differs (a browser may restore the filters' values on "back"). */
function adoptTable() {
  const defaultView = Object.values(state.view).every((v) => !v) && state.sort.id === "rank"
    && state.sort.direction === "asc";
  if (!defaultView || $("#board tbody").rows.length !== rows().length) {
    renderTable();
    return;
  }
  tableColumns();
  showCount(rows().length);
}

function onHeaderClick(event) {
  const button = event.target.closest("button.sort");
  const column = button && state.cols && state.cols.find((c) => c.id === button.dataset.column);
  if (column) onSort(column);
}

function onSort(column) {
  const same = state.sort.id === column.id;
  const first = column.first || "desc";
  const flipped = state.sort.direction === "asc" ? "desc" : "asc";
  state.sort = { id: column.id, direction: same ? flipped : first };
  renderTable();
  $(`#board th button[data-column="${CSS.escape(column.id)}"]`).focus(); // the header was rebuilt
  announce(`Sorted by ${column.title}, ${state.sort.direction === "asc" ? "ascending" : "descending"}`);
}

// Each chart is drawn once it nears the viewport, and redrawn on new data from then on: on a long board
// the table paints first and a chart below the fold costs nothing until someone scrolls to it.
//
// The charts' module (Observable Plot and d3, most of the bundle) is imported on first use: esbuild
// keeps it in this bundle but defers running its top level, so the table never waits for it.
let charts = null;

async function renderCharts() {
  if (!state.seen.has("scatter-section") && !state.seen.has("heatmap-section")) return;
  charts = charts || import("./_leaderboard_charts.js");
  const { drawHeatmap, drawScatter } = await charts;
  // The ResizeObserver has given the width by now (it reports before the IntersectionObserver does):
  // reading clientWidth here would force a layout of the whole table.
  const width = state.chartWidth || $("#scatter").clientWidth;
  state.chartWidth = width;
  if (state.seen.has("scatter-section")) drawScatter($("#scatter"), $("#scatter-tip"), visible().filter(isRanked), width);
  if (state.seen.has("heatmap-section")) drawHeatmap($("#heatmap"), visible(), $("#heatmap-dimension").value, width);
}

// The methodology sits at the bottom: it is asked for when it nears the viewport, off the first paint.
function loadMethodology() {
  state.methodology = api("/methodology").then(renderMethodology).catch(() => {
    $("#methodology").hidden = true; // the page works without it
  });
}

function watchCharts() {
  state.watching = true;
  const observer = new IntersectionObserver((entries) => {
    const near = entries.filter((e) => e.isIntersecting);
    for (const entry of near) {
      state.seen.add(entry.target.id);
      observer.unobserve(entry.target);
    }
    if (state.seen.has("methodology") && !state.methodology) loadMethodology();
    const drawn = near.some((e) => e.target.id !== "methodology") && state.data ? renderCharts() : null;
    // The first call reports every section: once the charts in view are drawn, the table and they are
    // on the page, which is what benchmarks/frontend.py waits for.
    Promise.resolve(drawn).finally(() => { document.body.dataset.ready = "leaderboard"; });
  }, { rootMargin: "300px 0px" });
  for (const id of ["scatter-section", "heatmap-section", "methodology"]) observer.observe(document.getElementById(id));
}

function renderMeta() {
  const data = state.data;
  $("#board-version").textContent = data.version
    ? `Snapshot ${data.version}, published ${when(data.created_at)} (${data.trigger || "scheduled"}).`
    : "No snapshot has been published yet.";
  const config = data.config || {};
  const entries = Object.entries(config).filter(([key]) => key !== "replay");
  $("#board-config").hidden = entries.length === 0;
  $("#board-config-list").replaceChildren(...entries.flatMap(([key, value]) => [
    h("dt", {}, label(key)), h("dd", {}, typeof value === "object" ? JSON.stringify(value) : String(value))]));
}

/** The filter choices that the data offers (organisations, categories, attacks), keeping the chosen. */
function fillChoices(select, values, current) {
  const options = [h("option", { value: "" }, "All"), ...values.map((v) => h("option", { value: v }, label(v)))];
  select.replaceChildren(...options);
  select.value = values.includes(current) ? current : "";
}

function renderFilters() {
  const all = rows();
  const unique = (pick) => [...new Set(all.flatMap(pick))].filter(Boolean).sort();
  fillChoices($("#filter-org"), unique((r) => [r.organisation]), state.view.organisation);
  fillChoices($("#filter-category"), unique((r) => Object.keys(r.categories || {})), state.view.category);
  fillChoices($("#filter-attack"), unique((r) => Object.keys(r.attacks || {})), state.view.attack);
  $("#filter-attack").closest("label").hidden = $("#filter-attack").options.length <= 1;
  readFilters();
}

// Marks for the render benchmark (benchmarks measure table and charts apart; they cost nothing here).
function renderAll() {
  performance.mark("leaderboard:render-start");
  renderMeta();
  renderFilters();
  renderTable();
  performance.mark("leaderboard:table");
  if (!state.watching) watchCharts(); // after the first table, so that it has pushed the charts down
  renderCharts();
  performance.mark("leaderboard:charts");
}

// --- wiring -----------------------------------------------------------------------------------------

function readFilters() {
  state.view = {
    text: $("#filter-text").value.trim(), organisation: $("#filter-org").value, status: $("#filter-status").value,
    category: $("#filter-category").value, attack: $("#filter-attack").value,
    provisional: $("#filter-provisional").checked,
  };
}

function onFilter() {
  readFilters();
  renderTable();
  renderCharts();
}

function watchWidth() {
  let frame = 0;
  new ResizeObserver((entries) => {
    const width = Math.round(entries[0].contentRect.width);
    if (!state.chartWidth) state.chartWidth = width; // the first report: nothing is drawn yet
    if (!state.data || Math.abs(width - state.chartWidth) < 8) return;
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(() => { state.chartWidth = width; renderCharts(); });
  }).observe($("#scatter"));
}

/** The board the server put in the page, if it did: shown at once, and the first poll is a 304. */
function adopt() {
  const block = document.getElementById("board-data");
  if (!block) return false;
  state.data = JSON.parse(block.textContent);
  state.etag = block.dataset.etag || null;
  block.remove(); // its text is parsed: no need to keep a second copy in the document
  performance.mark("leaderboard:render-start");
  renderMeta();
  renderFilters();
  adoptTable();
  performance.mark("leaderboard:table");
  watchCharts();
  return true;
}

function start() {
  const form = $("#filters");
  form.addEventListener("input", onFilter);
  form.addEventListener("submit", (event) => event.preventDefault());
  $("#board thead").addEventListener("click", onHeaderClick);
  $("#heatmap-dimension").addEventListener("change", () => { if (state.data) renderCharts(); });
  document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") refresh(); });
  watchWidth();
  adopt();
  refresh();
}

start();
