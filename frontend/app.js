"use strict";
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
  return r ? `${fmt(r.rating, 0)} [${fmt(r.lower, 0)}, ${fmt(r.upper, 0)}]` : "–";
}

function rankText(rank) {
  if (!rank || rank.best === null) return "–";
  return rank.best === rank.worst ? `${rank.best}` : `${rank.best}–${rank.worst}`;
}

async function loadBoard() {
  const board = await api("/leaderboard");
  $("board-empty").hidden = board.models.length > 0;
  $("board-version").textContent = board.version ? `Snapshot ${board.version}, ${new Date(board.created_at).toLocaleString()}.` : "";
  $("board").querySelector("tbody").replaceChildren(...board.models.map((m) => {
    const tr = document.createElement("tr");
    const name = m.coverage === "ok" ? m.display_name : `${m.display_name} (${m.coverage})`;
    tr.append(cell(rankText(m.rank)), cell(name), cell(band(m.overall)), cell(band(m.capability)),
      cell(band(m.safety)), cell(rating(m.arena.helpfulness)), cell(rating(m.arena.safety)));
    return tr;
  }));
}

loadBoard().catch((err) => showError(`Could not load the leaderboard: ${err.message}`));
loadModels().catch((err) => showError(`Could not load the models: ${err.message}`));
