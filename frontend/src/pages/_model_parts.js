// The model page's sections, one function per section: data in, nodes out (model.js fetches and places them).
// Text goes in as text; a model's answer becomes HTML only through renderMarkdown (sanitised).
import { chart, Plot } from "../lib/charts.js";
import { bandText, fixed, h, modelHref, when } from "../lib/dom.js";
import { renderMarkdown } from "../lib/markdown.js";

// Mid-tone colours that read on both the light and the dark background.
const SERIES = { overall: "#8a63d2", capability: "#2f8fd8", safety: "#2ea66a", helpfulness: "#d2782e" };

const badge = (text, kind = text) => h("span", { class: `badge ${kind}` }, text);
const percent = (value) => (value === null || value === undefined ? "–" : `${(100 * value).toFixed(0)}%`);
const scroll = (table) => h("div", { class: "table-scroll", tabindex: "0", role: "region", "aria-label": table.dataset.label }, table);

function table(label, head, rows) {
  const element = h("table", { dataset: { label } }, h("caption", { class: "visually-hidden" }, label),
    h("thead", {}, h("tr", {}, head.map((cell) => h("th", { scope: "col" }, cell)))),
    h("tbody", {}, rows));
  return scroll(element);
}

function definitions(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(([, value]) => value !== null && value !== undefined && value !== "")
    .flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
}

// --- header -----------------------------------------------------------------------------------------

export function headerSection(model) {
  const badges = [badge(model.status, `status-${model.status}`)];
  if (model.retired_at) badges.push(badge(`retired ${when(model.retired_at)}`, "retired"));
  return h("header", { class: "model-head" },
    h("p", { class: "note" }, h("a", { href: "/leaderboard" }, "Leaderboard"), " › model"),
    h("h1", {}, model.display_name),
    h("p", { class: "model-org" }, model.organisation, " · ", h("code", {}, model.slug), " ", ...badges),
    model.description ? h("p", { class: "model-description" }, model.description) : null);
}

// --- evaluation status ------------------------------------------------------------------------------

export function evaluationSection(evaluation) {
  const run = evaluation.latest_run;
  const parts = [];
  if (evaluation.status === "none" || !run) parts.push(h("p", {}, "Not evaluated yet."));
  else if (evaluation.status === "running") {
    const fraction = run.progress ? run.progress.fraction : 0;
    parts.push(h("p", {}, `Evaluating (${run.scope}): ${percent(fraction)} done`),
      h("progress", { max: "1", value: String(fraction), "aria-label": "Evaluation progress" }));
  } else if (evaluation.status === "pending") parts.push(h("p", {}, `Queued for evaluation (${run.scope}).`));
  else if (evaluation.status === "failed") {
    parts.push(h("p", { class: "error" }, `The latest evaluation failed: ${run.error_category || "error"}.`),
      run.error ? h("p", { class: "note" }, run.error) : null);
  } else parts.push(h("p", {}, "Evaluated: ", badge(run.scope, run.scope === "preview" ? "preview" : "full"),
    ` finished ${when(run.finished_at)}`));
  if (evaluation.last_failure) {
    parts.push(h("p", { class: "note" }, `An earlier run failed (${evaluation.last_failure.error_category || "error"}).`));
  }
  const results = evaluation.results;
  if (results) {
    parts.push(definitions([
      ["Ranked on", `run ${results.run_id} (${results.scope}), cycle ${results.cycle_id}`],
      ["Public items", String(results.n_items)],
      ["Suite", evaluation.suite],
    ]));
  }
  return parts;
}

// --- the leaderboard row ----------------------------------------------------------------------------

function rankText(rank) {
  if (!rank || !rank.best) return "not ranked";
  return rank.best === rank.worst ? `#${rank.best}` : `#${rank.best}–${rank.worst}`;
}

function ratingText(rating) {
  if (!rating) return "–";
  return `${fixed(rating.rating, 0)} [${fixed(rating.lower, 0)}, ${fixed(rating.upper, 0)}]`;
}

export function rowSection(board, slug) {
  const row = (board.models || []).find((m) => m.slug === slug);
  if (!row) {
    return h("p", {}, board.version ? "Not on the latest leaderboard (active and retired models are)."
      : "No leaderboard has been published yet.");
  }
  const flags = [row.provisional ? badge("provisional") : null, row.retired ? badge("retired") : null,
    row.evaluation && row.evaluation.scope === "preview" ? badge("preview") : null,
    row.coverage !== "ok" ? badge(row.coverage, "provisional") : null].filter(Boolean);
  const cells = [["Overall", row.overall], ["Capability", row.capability], ["Safety", row.safety]];
  const provenance = row.provenance || {};
  return [
    h("div", { class: "standing" }, cells.map(([name, band]) => h("div", { class: "stat" },
      h("span", { class: "stat-name" }, name), h("span", { class: "stat-value" }, fixed(band.value)),
      h("span", { class: "note" }, band.lower === null ? "" : `95%: ${fixed(band.lower)}–${fixed(band.upper)}`))),
    h("div", { class: "stat" }, h("span", { class: "stat-name" }, "Rank"),
      h("span", { class: "stat-value" }, rankText(row.rank)), h("span", { class: "note" }, "95% rank interval"))),
    flags.length ? h("p", {}, ...flags) : null,
    row.missing && row.missing.length ? h("p", { class: "note" }, `Missing: ${row.missing.join(", ")}`) : null,
    definitions([
      ["Arena helpfulness", ratingText(row.arena && row.arena.helpfulness)],
      ["Arena safety", ratingText(row.arena && row.arena.safety)],
      ["Votes", `${row.votes ? row.votes.helpfulness : 0} helpfulness, ${row.votes ? row.votes.safety : 0} safety`],
      ["Snapshot", `version ${board.version}, ${when(board.created_at)}`],
      ["Suite version", provenance.suite_version],
      ["Scorers", (provenance.scorer_versions || []).join(", ")],
      ["Judge", provenance.judge_version || "none (rules only)"],
    ]),
  ];
}

// --- scores by category and task --------------------------------------------------------------------

function whisker(band) {
  // A bar from lower to upper with a dot at the mean, all in [0, 1]: drawn with widths set from JS
  // (the CSP allows element.style, not style attributes in HTML).
  const bar = h("span", { class: "whisker", "aria-hidden": "true" }, h("span", { class: "whisker-range" }),
    h("span", { class: "whisker-dot" }));
  if (band.mean !== null && band.mean !== undefined) {
    bar.firstChild.style.left = `${100 * band.lower}%`;
    bar.firstChild.style.width = `${100 * (band.upper - band.lower)}%`;
    bar.lastChild.style.left = `${100 * band.mean}%`;
  } else bar.hidden = true;
  return bar;
}

const scoreText = (band) => bandText({ value: band.mean, lower: band.lower, upper: band.upper });

function statusText(statuses) {
  return Object.entries(statuses).filter(([name]) => name !== "ok").map(([name, n]) => `${name} ${n}`).join(", ");
}

export function scoresSection(scores) {
  if (!scores.run) return h("p", {}, "No finished evaluation yet: scores appear when one finishes.");
  const rows = [];
  for (const category of scores.categories) {
    rows.push(h("tr", { class: "category-row" },
      h("th", { scope: "row" }, `${category.axis} / ${category.category}`),
      h("td", { class: "num" }, scoreText(category), whisker(category)),
      h("td", { class: "num" }, `${category.n_ok} / ${category.n_items}`), h("td", {}, "")));
    for (const task of category.tasks) {
      rows.push(h("tr", { class: "task-row" }, h("td", {}, task.task),
        h("td", { class: "num" }, scoreText(task), whisker(task)),
        h("td", { class: "num" }, `${task.n_ok} / ${task.n_items}`), h("td", { class: "note" }, statusText(task.statuses))));
    }
  }
  const run = scores.run;
  return [
    table("Scores by category and task", ["Category / task", "Mean [95% interval]", "Scored / public items", "Other statuses"], rows),
    h("p", { class: "note" }, `Intervals: ${scores.interval_method}. Public items only; held-out items are never shown or counted here.`),
    definitions([
      ["Run", `${run.run_id} (${run.scope}), cycle ${run.cycle_id}, finished ${when(run.finished_at)}`],
      ["Suite version", run.suite_version], ["Scorer versions", run.scorer_versions.join(", ")],
      ["Judge", run.judge_version || "none (rules only)"],
    ]),
  ];
}

// --- history ----------------------------------------------------------------------------------------

function historyRows(points) {
  const rows = [];
  for (const point of points) {
    for (const name of ["overall", "capability", "safety"]) {
      const band = point[name];
      if (band && band.value !== null) {
        rows.push({ version: point.version, series: name, value: band.value, lower: band.lower ?? band.value,
          upper: band.upper ?? band.value, when: point.created_at });
      }
    }
  }
  return rows;
}

function arenaRows(points) {
  const rows = [];
  for (const point of points) {
    for (const [name, rating] of [["helpfulness", point.arena_helpfulness], ["safety", point.arena_safety]]) {
      if (rating && rating.rating !== null) {
        rows.push({ version: point.version, series: name, value: rating.rating, lower: rating.lower ?? rating.rating,
          upper: rating.upper ?? rating.rating });
      }
    }
  }
  return rows;
}

function versionTicks(rows) {
  const versions = [...new Set(rows.map((r) => r.version))].sort((a, b) => a - b);
  const step = Math.ceil(versions.length / 8);
  return versions.filter((_, i) => i % step === 0);
}

function legend(series) {
  return h("ul", { class: "legend", "aria-hidden": "true" }, series.map((name) => {
    const swatch = h("span", { class: "swatch" });
    swatch.style.background = SERIES[name] || "currentColor";
    return h("li", {}, swatch, name);
  }));
}

function pointTitle(row, label) {
  const digits = label === "rating" ? 0 : 3;
  return `${row.series}: ${fixed(row.value, digits)} [${fixed(row.lower, digits)}, ${fixed(row.upper, digits)}]\nsnapshot version ${row.version}`;
}

function linePlot(rows, { label, domain, title }) {
  const series = [...new Set(rows.map((r) => r.series))];
  const figure = chart({
    width: 640, height: 260, marginLeft: 48,
    // Ticks on real versions only (a fractional tick would print as a repeated version).
    x: { label: "snapshot version", tickFormat: "d", ticks: versionTicks(rows) },
    y: { label, domain, grid: true },
    // Our own legend below: Plot's legend relies on the inline <style> that chart() removes.
    color: { domain: series, range: series.map((s) => SERIES[s] || "currentColor") },
    marks: [
      Plot.areaY(rows, { x: "version", y1: "lower", y2: "upper", fill: "series", fillOpacity: 0.15, z: "series" }),
      Plot.line(rows, { x: "version", y: "value", stroke: "series", strokeWidth: 2 }),
      // A native <title> per point (hover and screen readers), no overlay that would need inline styles.
      Plot.dot(rows, { x: "version", y: "value", fill: "series", r: 3, title: (r) => pointTitle(r, label) }),
    ],
  });
  return h("figure", { class: "model-chart" }, legend(series), figure, h("figcaption", { class: "note" }, title));
}

export function historySection(history) {
  const points = history.points;
  if (!points.length) return h("p", {}, "Not on any published leaderboard yet.");
  const scores = historyRows(points);
  const arena = arenaRows(points);
  const last = points[points.length - 1];
  return [
    scores.length ? linePlot(scores, { label: "score", domain: [0, 1],
      title: "Overall, capability and safety per snapshot, with their 95% intervals (bands)." })
      : h("p", { class: "note" }, "No scored snapshot yet."),
    arena.length ? linePlot(arena, { label: "rating",
      title: "Arena ratings (helpfulness, safety) per snapshot, with their 95% intervals." }) : null,
    h("p", { class: "note" }, `${points.length} snapshot${points.length === 1 ? "" : "s"}, the latest `,
      `version ${last.version} (${when(last.created_at)}).`),
  ];
}

// --- arena record -----------------------------------------------------------------------------------

function tallyCells(tally) {
  const rate = tally.win_rate === null ? "–" : `${percent(tally.win_rate)} [${percent(tally.lower)}, ${percent(tally.upper)}]`;
  return [h("td", { class: "num" }, rate),
    h("td", { class: "num" }, `${tally.wins}–${tally.losses}`),
    h("td", { class: "num" }, `${tally.ties} / ${tally.both_bad}`)];
}

export function arenaSection(record) {
  if (!record.opponents.length) return h("p", {}, "No counted arena votes yet.");
  const head = ["Opponent", "Helpfulness win rate", "W–L", "Ties / both bad", "Safety win rate", "W–L", "Ties / both bad"];
  const rows = record.opponents.map((o) => h("tr", {},
    h("th", { scope: "row" }, h("a", { href: modelHref(o.slug) }, o.display_name)),
    ...tallyCells(o.helpfulness), ...tallyCells(o.safety)));
  rows.push(h("tr", { class: "total-row" }, h("th", { scope: "row" }, "All opponents"),
    ...tallyCells(record.totals.helpfulness), ...tallyCells(record.totals.safety)));
  const sources = record.by_source.map((s) => h("li", {},
    `${s.source}: ${s.helpfulness.votes} helpfulness votes (win rate ${percent(s.helpfulness.win_rate)}), `,
    `${s.safety.votes} safety votes (win rate ${percent(s.safety.win_rate)})`));
  return [
    table("Arena record against each opponent", head, rows),
    sources.length ? h("ul", { class: "note sources" }, sources) : null,
    h("p", { class: "note" }, `${record.note} Intervals: ${record.interval_method}, 95%.`),
  ];
}

// --- sample answers ---------------------------------------------------------------------------------

function verdictLine(sample) {
  if (sample.score_status !== "ok") return `Not scored: ${sample.score_status || "no score"}`;
  const verdict = sample.verdict ? `${sample.verdict}, ` : "";
  return `${verdict}score ${fixed(sample.score, 2)} (by ${sample.scored_by || "rules"})`;
}

function sampleCard(sample) {
  const prompt = sample.prompt.map((m) => h("div", { class: "sample-message" },
    h("span", { class: "sample-role" }, m.role), h("p", { class: "sample-text" }, m.content)));
  const answer = h("div", { class: "sample-answer markdown" });
  if (sample.answer) answer.append(renderMarkdown(sample.answer));
  else answer.append(h("p", { class: "note" }, `No answer (${sample.answer_status}).`));
  return h("article", { class: "sample card" },
    h("h3", {}, `${sample.axis} / ${sample.category}`),
    h("p", { class: "note" }, sample.task, " · item ", h("code", {}, sample.item_id)),
    h("details", {}, h("summary", {}, "Prompt"), ...prompt),
    h("h4", {}, "Answer"), answer,
    h("p", { class: `verdict ${sample.score === 1 ? "pass" : sample.score === 0 ? "fail" : ""}` }, verdictLine(sample)),
    sample.truncated ? h("p", { class: "note" }, "Shortened to fit the page.") : null,
    h("p", { class: "note" }, `Scorer ${sample.scorer_version || "–"}`));
}

export function samplesSection(samples) {
  if (!samples.samples.length) return h("p", {}, "No sample answers yet: they appear after an evaluation.");
  return [h("p", { class: "note" }, samples.note), h("div", { class: "samples" }, samples.samples.map(sampleCard))];
}
