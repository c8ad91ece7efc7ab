import "../lib/shell.js";
// The walking-skeleton page: list contestants, run one battle, vote, reveal.

const $ = (id) => document.getElementById(id);
let battleId = null;

async function api(path, options = {}) {
  const response = await fetch(`/api/v1${path}`, {
    headers: { "Content-Type": "application/json" }, ...options,
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error ? body.error.message : `HTTP ${response.status}`);
  return body;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

async function loadModels() {
  const rows = await api("/models");
  const body = $("models").querySelector("tbody");
  body.replaceChildren(...rows.map((m) => {
    const tr = document.createElement("tr");
    tr.append(cell(m.display_name), cell(m.organisation), cell(m.status), cell(m.description));
    return tr;
  }));
}

function showBattle(battle) {
  for (const answer of battle.answers) {
    $(`answer-${answer.side}`).textContent = answer.status === "ok" ? answer.text : `(failed: ${answer.error})`;
    $(`answer-${answer.side}`).parentElement.classList.toggle("failed", answer.status !== "ok");
  }
  $("answers").hidden = false;
  $("vote-form").hidden = battle.status !== "ready";
  if (battle.status === "failed") showError("A model failed to answer, so this battle cannot be voted on. Try again.");
}

$("battle-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("");
  $("start").disabled = true;
  $("busy").hidden = false;
  $("revealed").hidden = true;
  $("name-a").textContent = $("name-b").textContent = "";
  try {
    const battle = await api("/battles", { method: "POST", body: JSON.stringify({ prompt: $("prompt").value }) });
    battleId = battle.id;
    $("vote-form").reset();
    showBattle(battle);
  } catch (err) {
    showError(err.message);
  } finally {
    $("start").disabled = false;
    $("busy").hidden = true;
  }
});

$("vote-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData($("vote-form"));
  const vote = { helpfulness: form.get("helpfulness") };
  if (form.get("safety")) vote.safety = form.get("safety");
  try {
    const battle = await api(`/battles/${battleId}/vote`, { method: "POST", body: JSON.stringify(vote) });
    $("name-a").textContent = `— ${battle.model_a.display_name}`;
    $("name-b").textContent = `— ${battle.model_b.display_name}`;
    $("revealed").textContent = "Thanks! Your vote is recorded.";
    $("revealed").hidden = false;
    $("vote-form").hidden = true;
  } catch (err) {
    showError(err.message);
  }
});

const fmt = (x, digits = 3) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits));

function band(b, digits = 3) {
  if (!b || b.value === null) return "–";
  return `${fmt(b.value, digits)} [${fmt(b.lower, digits)}, ${fmt(b.upper, digits)}]`;
}

function rating(r) {
  if (!r) return "–";
  const text = `${fmt(r.rating, 0)} [${fmt(r.lower, 0)}, ${fmt(r.upper, 0)}]`;
  return r.provisional ? `${text} (provisional)` : text;
}

function rankText(rank) {
  if (!rank || rank.best === null) return "–";
  return rank.best === rank.worst ? `${rank.best}` : `${rank.best}–${rank.worst}`;
}

// The leaderboard and the evaluation progress refresh by themselves: every few seconds while
// evaluations are queued or running (and a minute after, for the last snapshot), less often otherwise.
// The board is asked with If-None-Match, so an unchanged snapshot costs a 304 and no new rows.
const FAST_MS = 3000;
const SLOW_MS = 30000;
const SETTLE_MS = 60000;
const board = { etag: null, data: null };
let progress = null;
let lastActive = 0;

const pct = (x) => `${Math.round(100 * (x || 0))}%`;
const count = (n, word) => `${Number(n || 0).toLocaleString()} ${word}`;

async function fetchBoard() {
  const headers = board.etag ? { "If-None-Match": board.etag } : {};
  const response = await fetch("/api/v1/leaderboard", { headers, cache: "no-store" });
  if (response.status === 304) return false;
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  board.etag = response.headers.get("ETag");
  board.data = await response.json();
  return true;
}

function entryOf(slug) {
  return progress ? progress.models.find((m) => m.slug === slug) : undefined;
}

function phaseText(entry) {
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

// Why a row has no rank: its evaluation is waiting or running, or its results miss categories.
function whyUnranked(m) {
  const entry = entryOf(m.slug);
  if (entry && entry.phase !== "finished") return phaseText(entry);
  if (!m.evaluation) return entry && entry.ranked_on ? "results being published" : "waiting for evaluation";
  return m.missing && m.missing.length ? `missing ${m.missing.length} categories` : "not ranked";
}

function badge(kind, text, title) {
  const span = document.createElement("span");
  span.className = `badge ${kind}`;
  span.textContent = text;
  span.title = title;
  return span;
}

function nameCell(m) {
  const td = cell(m.coverage === "partial" ? `${m.display_name} (partial)` : m.display_name);
  if (m.evaluation && m.evaluation.scope === "preview") {
    td.append(" ", badge("preview", `preview · ${count(m.evaluation.items, "items")}`,
      "Ranked on a few items per task until its full evaluation finishes."));
  }
  if (m.retired) td.append(" ", badge("retired", "retired", "No longer in battles; its past games still count."));
  if (m.provisional) {
    td.append(" ", badge("provisional", "provisional", "Too few arena votes yet: the rating and its interval are rough."));
  }
  return td;
}

// Safety with the share of answers that did not respond at all: incapacity is not safety.
function safetyCell(m) {
  const td = cell(band(m.safety));
  const nr = m.safety_non_responsive;
  if (nr && nr.share !== null && nr.share !== undefined) {
    const note = document.createElement("span");
    note.className = "non-responsive";
    note.textContent = `non-responsive ${pct(nr.share)}`;
    note.title = `${nr.items} of ${nr.of} scored safety answers echoed, looped, went off-topic or were empty.`;
    td.append(document.createElement("br"), note);
  }
  return td;
}

function provenanceText(p) {
  if (!p) return "";
  const parts = [`${p.items.capability} capability + ${p.items.safety} safety items scored`];
  if (p.suite_version) parts.push(`suite ${p.suite_version}`);
  if (p.scorer_versions && p.scorer_versions.length) parts.push(`scorers ${p.scorer_versions.join(", ")}`);
  parts.push(p.judge_version ? `judge ${p.judge_version}` : "no judge");
  return parts.join(" · ");
}

// What a row rests on: its evaluation's items, and its arena votes (helpfulness / safety).
function basedOnCell(m) {
  const items = m.evaluation ? count(m.evaluation.items, "items") : "no evaluation yet";
  const votes = m.votes || { helpfulness: 0, safety: 0 };
  const td = cell(`${items} · `);
  td.className = "based-on";
  td.title = provenanceText(m.provenance);
  td.append(document.createElement("wbr"), `${count(votes.helpfulness, "helpful")} / ${count(votes.safety, "safety votes")}`);
  if (m.provenance && m.evaluation) {
    const axes = document.createElement("span");
    axes.className = "axis-items";
    axes.textContent = `c ${m.provenance.items.capability} · s ${m.provenance.items.safety} scored`;
    td.append(document.createElement("br"), axes);
  }
  return td;
}

function rankCell(m) {
  if (m.overall && m.overall.value !== null) return cell(rankText(m.rank));
  const td = cell(whyUnranked(m));
  td.className = "why";
  return td;
}

function renderBoard() {
  const data = board.data;
  if (!data) return;
  $("board-empty").hidden = data.models.length > 0;
  $("board-version").textContent = data.version ? `Snapshot ${data.version}, ${new Date(data.created_at).toLocaleString()}.` : "";
  $("board").querySelector("tbody").replaceChildren(...data.models.map((m) => {
    const tr = document.createElement("tr");
    tr.dataset.slug = m.slug;
    tr.append(rankCell(m), nameCell(m), cell(band(m.overall)), cell(band(m.capability)),
      safetyCell(m), cell(rating(m.arena.helpfulness)), cell(rating(m.arena.safety)), basedOnCell(m));
    return tr;
  }));
}

function renderProgress() {
  const wave = progress && progress.active ? progress.wave : null;
  $("eval-progress").hidden = !wave;
  if (!wave) return;
  const started = wave.models - wave.queued;
  const kind = wave.scope === "preview" ? "quick previews first" : "full evaluations";
  $("progress-line").textContent = `Evaluating ${started} of ${wave.models} models · ${pct(wave.fraction)} (${kind})`;
  $("progress-bar").value = wave.fraction;
  $("progress-models").replaceChildren(...progress.models.filter((m) => m.phase !== "none").map((m) => {
    const li = document.createElement("li");
    const scope = m.scope === "preview" ? "preview" : "full run";
    li.textContent = `${m.display_name}: ${scope}, ${m.phase === "finished" ? "done" : phaseText(m)}`;
    li.dataset.phase = m.phase;
    return li;
  }));
}

async function refresh() {
  try {
    progress = await api("/evaluations/progress");
    renderProgress();
  } catch (err) {
    progress = null; // the board still shows; the next round tries again
  }
  try {
    await fetchBoard();
    renderBoard();
  } catch (err) {
    showError(`Could not load the leaderboard: ${err.message}`);
  }
  if (progress && progress.active) lastActive = Date.now();
  setTimeout(refresh, Date.now() - lastActive < SETTLE_MS ? FAST_MS : SLOW_MS);
}

function percent(x) {
  return x === null || x === undefined ? "–" : x.toFixed(3);
}

function renderMethodology(m) {
  const r = m.rules;
  document.getElementById("method-rules").textContent =
    `Rules ${r.rules_version} first; on the ${r.held_out_split} part of the hand-labelled gold set (split before ` +
    `any tuning) they agree with people ${percent(r.held_out_accuracy)} of the time (κ ${percent(r.held_out_kappa)}). ` +
    r.note;
  const judges = document.querySelector("#method-judges tbody");
  judges.replaceChildren(...m.judges.map((j) => {
    const tr = document.createElement("tr");
    tr.append(cell(j.judge_version), cell(percent(j.heldout_accuracy)), cell(percent(j.heldout_kappa)),
      cell(`${j.n_abstained} of ${j.n_items}`), cell(new Date(j.measured_at).toLocaleString()));
    return tr;
  }));
  document.getElementById("method-judges").hidden = m.judges.length === 0;
  document.getElementById("method-no-judge").hidden = Boolean(m.configured_judge);
  const expectations = ["refuse", "comply", "care"];
  const scores = document.querySelector("#method-scores tbody");
  scores.replaceChildren(...Object.keys(m.verdict_scores.refuse || {}).map((verdict) => {
    const tr = document.createElement("tr");
    tr.append(cell(verdict.replace("_", " ")),
      ...expectations.map((e) => cell(scoreText(m.verdict_scores, e, verdict))));
    return tr;
  }));
  const held = m.held_out;
  document.getElementById("method-heldout").textContent = held.private_heldout
    ? `Private held-out set: ${held.mode}. Its items are never shown.`
    : `No private held-out set: every item this deployment asks is public.`;
}

function scoreText(table, expectation, verdict) {
  const value = (table[expectation] || {})[verdict];
  if (value === null || value === undefined) return "no score (a status)";
  const referral = expectation === "care" ? (table["care+referral"] || {})[verdict] : undefined;
  return referral !== undefined && referral !== value ? `${value} (with a referral: ${referral})` : String(value);
}

api("/methodology").then(renderMethodology).catch(() => {
  document.getElementById("methodology").hidden = true; // the page works without it
});
refresh();
loadModels().catch((err) => showError(`Could not load the models: ${err.message}`));
