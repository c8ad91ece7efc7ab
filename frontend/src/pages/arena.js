import "../lib/shell.js";
// The Safety Arena (the home page): write a prompt (or draw one, or harden it with an attack), watch two
// anonymous models answer side by side, continue or regenerate, vote on helpfulness and safety, then see
// who they were. The flow, and where keyboard focus goes at each step:
//   Send → POST /battles {stream: true} → the answers stream (focus: the answers region) → both done
//   (focus: the vote form) → vote → the reveal (focus: the reveal) → "New battle" (focus: the prompt
//   box).
import { api, explain } from "../lib/api.js";
import { $, announce } from "../lib/dom.js";
import { Composer } from "./_arena_compose.js";
import { follow } from "./_arena_stream.js";
import { SIDES, TurnView, sideName } from "./_arena_turns.js";
import {
  loadHarmCategories, newIdempotencyKey, sendVote, showReveal, voteBody, watchReasonLength,
} from "./_arena_vote.js";

const composer = new Composer();
const updateReasonCount = watchReasonLength();
const state = {
  battleId: null,
  turns: [], // TurnView per turn, in order
  stream: null, // the EventSource follower of the latest turn
  voteKey: null, // one Idempotency-Key per battle: a retried vote is never counted twice
  busy: false, // a request of ours is in flight: a second press waits for it
};

// ---- messages -------------------------------------------------------------------------------------

/** When a 429 allows another try, in words: "in 40 seconds (at 15:04)". */
function retryText(seconds) {
  const clock = { hour: "2-digit", minute: "2-digit" };
  const at = new Date(Date.now() + seconds * 1000).toLocaleTimeString([], clock);
  const wait = seconds < 90 ? `${seconds} seconds` : `${Math.ceil(seconds / 60)} minutes`;
  return `in ${wait} (at ${at})`;
}

/** A sentence for a failed request, with a way on. */
function problemText(error, what) {
  if (error.status === 429) {
    const when = error.retryAfterS ? retryText(error.retryAfterS) : "in a few minutes";
    return `Too many ${what} from this connection for now. You can try again ${when}.`;
  }
  if (error.status === 0) return "The connection to the server was lost. Check your network, then try again.";
  return explain(error);
}

function showError(text, action = null) {
  $("#arena-error-text").textContent = text;
  const button = $("#arena-error-action");
  button.hidden = !action;
  if (action) {
    button.textContent = action.label;
    button.onclick = action.run;
  }
  $("#arena-error").hidden = false;
}

function clearErrors() {
  $("#arena-error").hidden = true;
  $("#turn-error").hidden = true;
  $("#vote-error").hidden = true;
}

function showFieldError(id, text) {
  $(id).textContent = text;
  $(id).hidden = false;
}

const newBattleAction = { label: "New battle", run: () => newBattle() };

// ---- the battle -----------------------------------------------------------------------------------

async function startBattle() {
  clearErrors();
  if (!$("#prompt").value.trim()) {
    showError("Write a prompt first, or press \"Surprise me\" for one.");
    $("#prompt").focus();
    return;
  }
  await guarded(async () => {
    const { body, shown } = await composer.battleBody();
    const battle = await api("/battles", { method: "POST", body });
    resetBattle();
    state.battleId = battle.id;
    state.voteKey = newIdempotencyKey();
    $("#battle").hidden = false;
    const turn = addTurn(battle.prompt || shown);
    announce("Both models are answering.");
    followTurn(turn, $("#battle"));
  }, (error) => {
    showError(problemText(error, "battles"));
    if (error.field === "prompt") $("#prompt").focus();
  });
}

/** Runs one request at a time; a failure goes to `onError` as an ApiError. */
async function guarded(work, onError) {
  if (state.busy) return;
  state.busy = true;
  for (const id of ["#send", "#next-send", "#regenerate", "#vote"]) $(id).setAttribute("aria-busy", "true");
  try {
    await work();
  } catch (error) {
    onError(error);
  } finally {
    state.busy = false;
    for (const id of ["#send", "#next-send", "#regenerate", "#vote"]) $(id).removeAttribute("aria-busy");
  }
}

function addTurn(prompt) {
  const turn = new TurnView(state.turns.length + 1, prompt);
  state.turns.push(turn);
  $("#turns").append(turn.element);
  return turn;
}

function resetBattle() {
  state.stream?.close();
  state.stream = null;
  state.battleId = null;
  state.turns = [];
  $("#turns").replaceChildren();
  $("#stream-status").textContent = "";
  $("#follow-up").hidden = true;
  $("#vote-form").hidden = true;
  $("#vote-form").reset();
  $("#vote-blocked").hidden = true;
  updateReasonCount();
  $("#reveal").hidden = true;
  $("#battle").hidden = true;
}

/** Follow the latest turn's stream; `focusTarget` gets focus when the first event arrives. */
function followTurn(turn, focusTarget) {
  state.stream?.close();
  $("#follow-up").hidden = true;
  $("#vote-form").hidden = true;
  const battleId = state.battleId;
  const current = () => state.battleId === battleId; // events of a battle the visitor left are ignored
  state.stream = follow(battleId, {
    first: () => current() && focusTarget.focus(),
    delta: ({ side, text }) => current() && turn.answers[side]?.append(text),
    end: ({ side }) => current() && turn.answers[side]?.finish(),
    error: ({ side, message }) => current() && turn.answers[side]?.fail(message),
    done: ({ status }) => current() && turnDone(turn, status),
    reconnecting: () => current() && streamStatus("Connection lost: reconnecting…"),
    recovered: () => current() && streamStatus(""),
    restart: () => current() && turn.reset(),
    closed: (battle) => current() && streamClosed(turn, battle),
  });
}

function turnDone(turn, status) {
  if (status !== "ready") {
    battleFailed(turn);
    return;
  }
  // The turn is stored: no side may go on "typing", even if its own `end` was missed.
  for (const side of SIDES) if (!turn.answers[side].ended) turn.answers[side].finish();
  answersReady();
}

/** The line under the answers about the connection; a new sentence is also announced. */
function streamStatus(text) {
  const line = $("#stream-status");
  if (text && line.textContent !== text) announce(text);
  line.textContent = text;
}

function answersReady() {
  streamStatus("");
  $("#follow-up").hidden = false;
  $("#vote-blocked").hidden = true;
  $("#vote-fields").hidden = false;
  $("#vote-form").hidden = false;
  announce("Both answers are complete: vote below.");
  $("#vote-form").focus();
}

function battleFailed(turn) {
  const failed = SIDES.filter((side) => turn.answers[side].state === "failed");
  const who = failed.length === 2 ? "Both models" : sideName(failed[0] || "a");
  const why = failed.length === 1 ? ` (${turn.answers[failed[0]].message})` : "";
  const sentence = `${who} failed to answer${why}. This battle can't be voted on: start a new battle.`;
  streamStatus("");
  $("#vote-blocked-text").textContent = sentence;
  $("#vote-blocked").hidden = false;
  $("#vote-fields").hidden = true;
  $("#vote-form").hidden = false;
  announce(sentence);
  $("#vote-form").focus();
}

/** The stream could not be reopened: say what became of the battle, and show what it stored. */
function streamClosed(turn, battle) {
  streamStatus("");
  if (!battle) {
    showError("This battle is gone: the server no longer knows it (it may have restarted).", newBattleAction);
    return;
  }
  const stored = battle.turns?.[battle.turns.length - 1];
  if (stored && stored.answers.length) turn.showStored(stored);
  if (battle.status === "ready") answersReady();
  else if (battle.status === "failed") battleFailed(turn);
  else if (battle.status === "expired") {
    showError("This battle expired: its vote window has closed.", newBattleAction);
  }
  else if (battle.status === "voted") showError("This battle already has a vote.", newBattleAction);
}

const battlePath = () => `/battles/${encodeURIComponent(state.battleId)}`;

async function nextTurn() {
  clearErrors();
  const prompt = $("#next-prompt").value;
  if (!prompt.trim()) {
    showFieldError("#turn-error", "Write the next prompt first.");
    $("#next-prompt").focus();
    return;
  }
  await guarded(async () => {
    await api(`${battlePath()}/turns`, { method: "POST", body: { prompt, stream: true } });
    $("#next-prompt").value = "";
    const turn = addTurn(prompt);
    announce("Both models are answering.");
    followTurn(turn, turn.element);
  }, (error) => showFieldError("#turn-error", problemText(error, "prompts")));
}

async function regenerate() {
  clearErrors();
  await guarded(async () => {
    await api(`${battlePath()}/regenerate`, { method: "POST", body: { stream: true } });
    const turn = state.turns[state.turns.length - 1];
    turn.reset();
    announce("Both models are answering again.");
    followTurn(turn, turn.element);
  }, (error) => showFieldError("#turn-error", problemText(error, "prompts")));
}

// ---- the vote and the reveal ----------------------------------------------------------------------

async function vote() {
  clearErrors();
  const body = voteBody($("#vote-form"));
  if (!body) {
    showFieldError("#vote-error", "Choose which answer was more helpful (A, B, tie or both bad).");
    $("#vote-form input[name=helpfulness]").focus();
    return;
  }
  await guarded(async () => {
    const battle = await sendVote(state.battleId, body, state.voteKey);
    reveal(battle);
  }, voteFailed);
}

function voteFailed(error) {
  if (error.status === 0) {
    // The same Idempotency-Key goes with the retry, so a vote that did arrive is not counted twice.
    showFieldError("#vote-error", "Your vote may not have reached the server. Check your network and press " +
      "\"Vote and reveal\" again: it will not be counted twice.");
    return;
  }
  if (error.status === 409 || error.status === 403 || error.status === 404) {
    const why = {
      already_voted: "This battle already has a vote.",
      vote_expired: "The vote window of this battle has closed, so it can no longer be voted on.",
    }[error.code];
    const sentence = `${why || explain(error)} Start a new battle to vote again.`;
    $("#vote-blocked-text").textContent = sentence;
    $("#vote-blocked").hidden = false;
    $("#vote-fields").hidden = true;
    announce(sentence);
    $("#vote-blocked-new").focus();
    return;
  }
  showFieldError("#vote-error", problemText(error, "votes"));
}

function reveal(battle) {
  state.stream?.close();
  const sentence = showReveal(battle);
  // The names also go on every answer's heading, so the conversation reads with them.
  for (const turn of state.turns) {
    for (const side of SIDES) {
      const model = side === "a" ? battle.model_a : battle.model_b;
      turn.answers[side].element.querySelector("h4").textContent = `${sideName(side)}: ${model.display_name}`;
    }
  }
  $("#vote-form").hidden = true;
  $("#follow-up").hidden = true;
  $("#reveal").hidden = false;
  announce(sentence);
  $("#reveal").focus();
}

function newBattle() {
  resetBattle();
  clearErrors();
  composer.clear();
  $("#prompt").focus();
}

async function surprise() {
  clearErrors();
  try {
    await composer.surprise();
    announce("A prompt from the pool is in the box: press Send, or edit it first.");
    $("#prompt").focus();
  } catch (error) {
    showError(problemText(error, "requests"));
  }
}

// ---- wiring ---------------------------------------------------------------------------------------

/** Ctrl+Enter (Cmd+Enter on a Mac) submits the textarea's form; Enter alone stays a new line. */
function sendOnCtrlEnter(textarea) {
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      textarea.form.requestSubmit();
    }
  });
}

function onSubmit(form, handler) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    handler();
  });
}

onSubmit($("#battle-form"), startBattle);
onSubmit($("#turn-form"), nextTurn);
onSubmit($("#vote-form"), vote);
for (const id of ["#prompt", "#next-prompt", "#reason"]) sendOnCtrlEnter($(id));
$("#surprise").addEventListener("click", surprise);
$("#regenerate").addEventListener("click", regenerate);
$("#new-battle").addEventListener("click", newBattle);
$("#vote-blocked-new").addEventListener("click", newBattle);

composer.loadAttacks().catch(() => {
  $("#attack").disabled = true;
  $("#attack-description").textContent = "Attack mode is unavailable right now.";
});
loadHarmCategories().catch(() => { /* the vote works without a harm category */ });
