// Small pieces of the leaderboard page: numbers, rank text, badges and the interval whiskers. Everything
// is built with DOM calls (text only); whiskers are placed by classes, as the CSP allows no style
// attribute in the markup the server writes.
import { fixed, h } from "../lib/dom.js";

export const pct = (x) => `${Math.round(100 * (x || 0))}%`;
// One formatter for the page: Number#toLocaleString builds a new one per call, which dominated the
// table's render time (three counts per row). English, as the page is: the server writes the first
// rows (server/leaderboard/page.py) and must write the same digits.
const integers = new Intl.NumberFormat("en");
export const count = (n, word) => `${integers.format(Number(n || 0))} ${word}`;
export const label = (name) => String(name).replaceAll("_", " ");

export const isRanked = (row) => row.overall && row.overall.value !== null && row.overall.value !== undefined;
export const isPreview = (row) => Boolean(row.evaluation && row.evaluation.scope === "preview");

export function rankText(rank) {
  if (!rank || rank.best === null || rank.best === undefined) return "–";
  return rank.best === rank.worst ? `${rank.best}` : `${rank.best}–${rank.worst}`;
}

/** "0.712 [0.690, 0.733]" for a score band, "1012 [980, 1040]" for an arena rating. */
export function intervalText(value, lower, upper, digits) {
  if (value === null || value === undefined) return "–";
  const interval = lower === null || lower === undefined ? "" : ` [${fixed(lower, digits)}, ${fixed(upper, digits)}]`;
  return `${fixed(value, digits)}${interval}`;
}

/** A small horizontal whisker: the interval as a bar and the value as a tick, on the scale [min, max].
 *  One element: CSS draws the bar and the tick from three custom properties, in whole percents, which
 *  classes set (`wl41 wu55 wv48`; frontend/build.mjs writes their rules), so that it needs no layout read,
 *  scales with its cell, and the server can write the same markup under a CSP without inline styles. */
export function whisker(value, lower, upper, [min, max] = [0, 1]) {
  const step = (x) => Math.round(100 * Math.min(Math.max((x - min) / (max - min || 1), 0), 1));
  const hasInterval = lower !== null && lower !== undefined;
  const classes = `whisker wl${step(hasInterval ? lower : value)} wu${step(hasInterval ? upper : value)} wv${step(value)}`;
  return h("span", { class: classes }); // empty: nothing for a screen reader to skip
}

export function badge(kind, text, title) {
  return h("span", { class: `badge ${kind}`, title }, text);
}

/** The badges of a row: preview (with its item count), retired, provisional. */
export function badges(row) {
  const found = [];
  if (isPreview(row)) {
    found.push(badge("preview", `preview · ${count(row.evaluation.items, "items")}`,
      "Ranked on a few items per task until its full evaluation finishes."));
  }
  if (row.retired) found.push(badge("retired", "retired", "No longer in battles; its past games still count."));
  if (row.provisional) {
    found.push(badge("provisional", "provisional", "Too few arena votes yet: the rating and its interval are rough."));
  }
  return found;
}

/** What a row's scores rest on, as one line for a title attribute. */
export function provenanceText(p) {
  if (!p) return "";
  const parts = [`${p.items.capability} capability + ${p.items.safety} safety items scored`];
  if (p.suite_version) parts.push(`suite ${p.suite_version}`);
  if (p.scorer_versions && p.scorer_versions.length) parts.push(`scorers ${p.scorer_versions.join(", ")}`);
  parts.push(p.judge_version ? `judge ${p.judge_version}` : "no judge");
  return parts.join(" · ");
}

/** The numbers of a ranked row in one sentence (scatter tips, focus text). */
export function summary(row) {
  const band = (b) => intervalText(b.value, b.lower, b.upper, 3);
  return `${row.display_name}: Libra ${band(row.overall)} · capability ${band(row.capability)} · ` +
    `safety ${band(row.safety)} · rank ${rankText(row.rank)}`;
}
