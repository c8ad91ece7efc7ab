// The admin page's models: submissions awaiting approval (approve), and every model not retired
// (re-evaluate, retire). Reads the public model list; every action takes the admin key.
import { $, h, modelHref, when } from "../lib/dom.js";
import { busy, confirmAction } from "./_admin_forms.js";

const path = (slug, action) => `/models/${encodeURIComponent(slug)}${action}`;

function title(model) {
  return h("h3", {}, h("a", { href: modelHref(model.slug) }, model.display_name), " ", h("code", {}, model.slug));
}

/** One line of the model's latest evaluation, read with the admin key (errors in full). */
async function evaluationSummary(ctx, slug) {
  try {
    const shown = await ctx.call(`${path(slug, "")}/evaluation`);
    const axes = shown.results?.axes?.map((a) => `${a.axis} ${a.score === null ? "–" : a.score.toFixed(3)}`);
    const scope = shown.results ? `${shown.results.scope} run of ${shown.results.items} items` : "no results";
    return `Evaluation: ${shown.status}; ${scope}${axes?.length ? `: ${axes.join(", ")}` : ""}.`;
  } catch (error) {
    return `Evaluation: could not be read (${error.message}).`;
  }
}

function approvalCard(ctx, model, summary) {
  return h("li", { class: "model-card", dataset: { slug: model.slug } },
    title(model),
    h("p", {}, `${model.organisation} · submitted ${when(model.created_at)}`),
    model.description && h("p", { class: "note" }, model.description),
    h("p", {}, summary),
    h("div", { class: "actions" },
      h("button", { type: "button", onclick: (e) => approve(ctx, model, e.currentTarget) }, `Approve ${model.slug}`)));
}

function modelRow(ctx, model) {
  return h("li", { class: "model-card compact", dataset: { slug: model.slug } },
    title(model),
    h("p", {}, h("span", { class: `status status-${model.status}` }, model.status), ` · ${model.organisation}`),
    h("div", { class: "actions" },
      h("button", { type: "button", class: "quiet", onclick: (e) => reevaluate(ctx, model, e.currentTarget) },
        "Re-evaluate"),
      h("button", { type: "button", class: "danger-quiet", onclick: (e) => retire(ctx, model, e.currentTarget) },
        "Retire")));
}

export async function loadModels(ctx) {
  const models = await ctx.call("/models");
  const waiting = models.filter((m) => m.status === "evaluated");
  const summaries = await Promise.all(waiting.map((m) => evaluationSummary(ctx, m.slug)));
  $("#approval").replaceChildren(...waiting.map((m, i) => approvalCard(ctx, m, summaries[i])));
  $("#approval-empty").hidden = waiting.length > 0;
  $("#models").replaceChildren(...models.filter((m) => m.status !== "retired").map((m) => modelRow(ctx, m)));
}

async function approve(ctx, model, button) {
  await busy(button, () => ctx.act("approval", async () => {
    const done = await ctx.call(`/admin${path(model.slug, "/approve")}`, { method: "POST" });
    return `Approved ${model.slug}: it is ${done.status} and can be drawn into battles.`;
  }, ["models", "weights"]));
}

async function reevaluate(ctx, model, button) {
  await busy(button, () => ctx.act("models", async () => {
    const run = await ctx.call(`/admin${path(model.slug, "/evaluate")}`, { method: "POST" });
    return run.already_active ? `${model.slug}: run ${run.run_id} was already queued or running; kept it.`
      : `${model.slug}: queued evaluation run ${run.run_id}.`;
  }, []));
}

async function retire(ctx, model, button) {
  const sure = await confirmAction({
    title: `Retire ${model.slug}?`,
    text: "It leaves the arena and the leaderboard for good; its votes and results stay on record.",
    confirm: "Retire",
  });
  if (!sure) return;
  await busy(button, () => ctx.act("models", async () => {
    const done = await ctx.call(path(model.slug, "/retire"), { method: "POST" });
    return `Retired ${model.slug}: it is ${done.status}.`;
  }, ["models", "weights"]));
}
