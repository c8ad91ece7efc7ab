// The submit page (issue 12, item 4): with a submitter key, register an OpenAI-compatible endpoint,
// follow one's own models (status, place in the evaluation queue, progress, errors in full), update or
// withdraw them. Everything goes through the public API with the key as a bearer token.
import "../lib/shell.js";
import { api } from "../lib/api.js";
import { $, announce, h, modelHref, when } from "../lib/dom.js";
import {
  busy, checkForm, clearErrors, confirmAction, formBody, report, showApiError, showError,
} from "./_admin_forms.js";
import { keySession } from "./_admin_key.js";

const REFRESH_MS = 4000; // while something is queued or running; nothing polls once all is settled
const STATUS_WORDS = {
  pending: "pending: waiting for its evaluation",
  evaluating: "evaluating",
  evaluated: "evaluated: waiting for a maintainer's approval",
  active: "active: in the arena and on the leaderboard",
  retired: "retired",
};

let session = null;
let models = [];
let timer = null;
let editing = null;

// --- the list of one's own models -------------------------------------------------------------------

const ordinal = (n) => `${n}${["th", "st", "nd", "rd"][(n % 100 > 10 && n % 100 < 14) || n % 10 > 3 ? 0 : n % 10]}`;

/** The evaluation in a sentence, from GET /me/models (the queue place is this page's addition to it). */
function evaluationLine(entry) {
  const run = entry.evaluation.latest_run;
  if (!run) return "No evaluation yet.";
  const scope = run.scope === "preview" ? "preview evaluation" : "evaluation";
  if (run.status === "pending") {
    if (!entry.queue) return `The ${scope} is starting.`;
    const { position, waiting, queue } = entry.queue;
    return position === 1 ? `The ${scope} is next in the ${queue} queue (${waiting} waiting).`
      : `The ${scope} is ${ordinal(position)} in the ${queue} queue, ${position - 1} ahead of it.`;
  }
  if (run.status === "running") return `The ${scope} is running.`;
  if (run.status === "finished") return `The ${scope} finished ${when(run.finished_at)}.`;
  return `The ${scope} failed ${when(run.finished_at)}.`;
}

function progressPart(run) {
  if (!run || !run.progress || run.status !== "running") return null;
  const { fraction, generated, scored, total } = run.progress;
  const percent = Math.round(fraction * 100);
  return h("div", { class: "progress" },
    h("progress", { max: "1", value: String(fraction), "aria-label": `Evaluation progress, ${percent}%` }),
    h("span", {}, `${percent}%: ${generated} of ${total} items answered, ${scored} scored`));
}

function errorPart(entry) {
  const run = entry.evaluation.latest_run;
  const failure = run?.status === "failed" ? run : entry.evaluation.last_failure;
  if (!failure || !failure.error) return null;
  const title = run?.status === "failed" ? "Why it failed" : "An earlier run failed";
  return h("div", { class: "run-error" }, h("strong", {}, `${title}: `), h("span", {}, failure.error));
}

function resultsPart(results) {
  if (!results) return null;
  const axes = results.axes.map((a) => `${a.axis} ${a.score === null ? "–" : a.score.toFixed(3)}`).join(", ");
  return h("p", { class: "note" }, `Latest ${results.scope} results: ${axes || "no score yet"}.`);
}

function modelCard(entry) {
  const { model } = entry;
  const live = model.status !== "retired";
  return h("li", { class: "model-card", dataset: { slug: model.slug } },
    h("h3", {}, h("a", { href: modelHref(model.slug) }, model.display_name), " ", h("code", {}, model.slug)),
    h("p", {}, h("span", { class: `status status-${model.status}` }, STATUS_WORDS[model.status] || model.status)),
    h("p", { class: "evaluation-line" }, evaluationLine(entry)),
    progressPart(entry.evaluation.latest_run),
    errorPart(entry),
    resultsPart(entry.evaluation.results),
    live && h("div", { class: "actions" },
      h("button", { type: "button", class: "quiet", onclick: () => startEdit(model) }, "Update"),
      h("button", { type: "button", class: "danger-quiet", onclick: (e) => withdraw(model, e.currentTarget) },
        "Withdraw")));
}

const settled = (entry) => !["pending", "evaluating"].includes(entry.model.status) &&
  !["pending", "running"].includes(entry.evaluation.latest_run?.status);

function render() {
  const list = $("#mine");
  list.replaceChildren(...models.map(modelCard));
  $("#mine-empty").hidden = models.length > 0;
}

async function refresh() {
  clearTimeout(timer);
  try {
    models = await session.call("/me/models");
  } catch (error) {
    if (session.key()) report($("#mine-status"), `Could not load your models: ${error.message}`, { error: true });
    return;
  }
  render();
  // Poll only while something moves, and not while the tab is hidden (visibilitychange resumes it).
  if (models.some((m) => !settled(m)) && !document.hidden) timer = setTimeout(refresh, REFRESH_MS);
}

// --- register, update, withdraw -----------------------------------------------------------------------

async function register(event) {
  event.preventDefault();
  const form = event.currentTarget;
  $("#register-status").hidden = true;
  if (!checkForm(form)) return;
  const body = formBody(form);
  body.config = { kind: "openai", ...body.config };
  await busy($("#register"), async () => {
    try {
      const model = await session.call("/models", { method: "POST", body });
      form.reset();
      report($("#register-status"), `Registered ${model.slug}: ${model.status}. Its evaluation is queued.`);
      await refresh();
    } catch (error) {
      showApiError(form, error);
    }
  });
}

function startEdit(model) {
  editing = model;
  const form = $("#edit-form");
  form.reset();
  clearErrors(form);
  $("#edit-slug").textContent = model.slug;
  $("#edit-display-name").value = model.display_name;
  $("#edit-organisation").value = model.organisation;
  $("#edit-description").value = model.description;
  $("#edit-section").hidden = false;
  $("#edit-title").focus();
}

function stopEdit() {
  const slug = editing?.slug;
  editing = null;
  $("#edit-section").hidden = true;
  if (slug) document.querySelector(`[data-slug="${CSS.escape(slug)}"] button`)?.focus();
}

/** The shown fields (the description always, so that emptying it clears it), and a new config only
 *  when a new endpoint was given. */
function updateBody(form) {
  const body = formBody(form, ["display_name", "organisation"]);
  body.description = $("#edit-description").value.trim();
  const endpoint = formBody(form, ["config."]);
  if (endpoint.config) body.config = { kind: "openai", ...endpoint.config };
  return body;
}

async function saveEdit(event) {
  event.preventDefault();
  const form = event.currentTarget;
  if (!checkForm(form)) return;
  const endpoint = formBody(form, ["config."]).config;
  if (endpoint && (!endpoint.base_url || !endpoint.model)) {
    const missing = endpoint.base_url ? "config.model" : "config.base_url";
    showError(form, missing, "A new endpoint needs both its base URL and its model name.");
    return;
  }
  const slug = editing.slug;
  await busy($("#edit-save"), async () => {
    try {
      const model = await session.call(`/models/${encodeURIComponent(slug)}`, { method: "PUT", body: updateBody(form) });
      report($("#mine-status"), `Updated ${slug}: ${model.status}; a new evaluation is queued.`);
      stopEdit();
      await refresh();
    } catch (error) {
      showApiError(form, error);
    }
  });
}

async function withdraw(model, button) {
  const sure = await confirmAction({
    title: `Withdraw ${model.slug}?`,
    text: "It leaves the arena and the leaderboard for good (retired). Its history stays. This cannot be undone here.",
    confirm: "Withdraw",
  });
  if (!sure) return;
  await busy(button, async () => {
    try {
      await session.call(`/models/${encodeURIComponent(model.slug)}/withdraw`, { method: "POST" });
      report($("#mine-status"), `Withdrew ${model.slug}: it is retired.`);
    } catch (error) {
      report($("#mine-status"), `Could not withdraw ${model.slug}: ${error.message}`, { error: true });
    }
    await refresh();
  });
}

// --- wiring -------------------------------------------------------------------------------------------

function setUp() {
  session = keySession({
    slot: "libra:submitter-key",
    needs: "a submitter key",
    probe: (key) => api("/me/models", { key }),
    onKey: async () => {
      await refresh();
      $("#with-key").hidden = false;
      $("#mine-title").focus();
    },
    onForget: () => {
      clearTimeout(timer);
      models = [];
      $("#with-key").hidden = true;
      $("#mine").replaceChildren();
    },
  });
  $("#register-form").addEventListener("submit", register);
  $("#edit-form").addEventListener("submit", saveEdit);
  $("#edit-cancel").addEventListener("click", () => {
    stopEdit();
    announce("Update cancelled.");
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && session.key()) refresh();
  });
}

setUp();
