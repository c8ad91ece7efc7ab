// Two panels beside the ranking: the evaluation progress (while evaluations run) and the methodology
// (how safety answers are judged, the judges' agreement with people, the held-out set).
import { $, h, when } from "../lib/dom.js";
import { pct } from "./_leaderboard_format.js";

const cell = (value) => h("td", {}, value);
const three = (x) => (x === null || x === undefined ? "–" : Number(x).toFixed(3));

export function phaseText(entry) {
  switch (entry.phase) {
    case "queued": return "waiting for evaluation";
    case "starting": return "evaluating 0%";
    case "generating":
    case "scoring": return `evaluating ${pct(entry.fraction)}`;
    case "failed": return "evaluation failed";
    case "none": return "not evaluated yet";
    default: return "evaluated";
  }
}

/** Why a row has no rank: its evaluation is waiting or running, or its results miss categories. */
export function whyUnranked(row, progress) {
  const entry = progress ? progress.models.find((m) => m.slug === row.slug) : undefined;
  if (entry && entry.phase !== "finished") return phaseText(entry);
  if (!row.evaluation) return entry && entry.ranked_on ? "results being published" : "waiting for evaluation";
  return row.missing && row.missing.length ? `missing ${row.missing.length} categories` : "not ranked";
}

export function renderProgress(progress) {
  const wave = progress && progress.active ? progress.wave : null;
  $("#eval-progress").hidden = !wave;
  if (!wave) return;
  const started = wave.models - wave.queued;
  const kind = wave.scope === "preview" ? "quick previews first" : "full evaluations";
  $("#progress-line").textContent = `Evaluating ${started} of ${wave.models} models · ${pct(wave.fraction)} (${kind})`;
  $("#progress-bar").value = wave.fraction;
  $("#progress-models").replaceChildren(...progress.models.filter((m) => m.phase !== "none").map((m) => h("li",
    { dataset: { phase: m.phase } },
    `${m.display_name}: ${m.scope === "preview" ? "preview" : "full run"}, ${m.phase === "finished" ? "done" : phaseText(m)}`)));
}

function scoreText(table, expectation, verdict) {
  const value = (table[expectation] || {})[verdict];
  if (value === null || value === undefined) return "no score (a status)";
  const referral = expectation === "care" ? (table["care+referral"] || {})[verdict] : undefined;
  return referral !== undefined && referral !== value ? `${value} (with a referral: ${referral})` : String(value);
}

export function renderMethodology(m) {
  const r = m.rules;
  $("#method-rules").textContent = `Rules ${r.rules_version} first; on the ${r.held_out_split} part of the `
    + `hand-labelled gold set (split before any tuning) they agree with people ${three(r.held_out_accuracy)} of the `
    + `time (κ ${three(r.held_out_kappa)}). ${r.note}`;
  $("#method-judges tbody").replaceChildren(...m.judges.map((j) => h("tr", {}, cell(j.judge_version),
    cell(three(j.heldout_accuracy)), cell(three(j.heldout_kappa)), cell(`${j.n_abstained} of ${j.n_items}`),
    cell(when(j.measured_at)))));
  $("#method-judges").hidden = m.judges.length === 0;
  $("#method-no-judge").hidden = Boolean(m.configured_judge);
  const expectations = ["refuse", "comply", "care"];
  $("#method-scores tbody").replaceChildren(...Object.keys(m.verdict_scores.refuse || {}).map((verdict) => h("tr", {},
    cell(verdict.replaceAll("_", " ")), ...expectations.map((e) => cell(scoreText(m.verdict_scores, e, verdict))))));
  const held = m.held_out;
  $("#method-heldout").textContent = held.private_heldout
    ? `Private held-out set: ${held.mode}. Its items are never shown.`
    : "No private held-out set: every item this deployment asks is public.";
}
