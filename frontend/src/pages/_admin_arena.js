// The admin page's arena controls: models paused after failing in a row (resume), and pairing weights.
import { $, h, when } from "../lib/dom.js";
import { busy, confirmAction, labelCells } from "./_admin_forms.js";

const MAX_WEIGHT = 1000; // arena/pairing_admin.py MAX_WEIGHT
const slugPath = (slug) => encodeURIComponent(slug);

function pausedCard(ctx, paused) {
  return h("li", { class: "model-card compact", dataset: { slug: paused.slug } },
    h("h3", {}, h("code", {}, paused.slug)),
    h("p", {}, `Paused ${when(paused.paused_at)} after ${paused.failures_in_row} failures in a row.`),
    paused.last_error && h("p", { class: "run-error" }, `Last error: ${paused.last_error}`),
    h("div", { class: "actions" },
      h("button", { type: "button", onclick: (e) => resume(ctx, paused.slug, e.currentTarget) },
        `Resume ${paused.slug}`)));
}

export async function loadPaused(ctx) {
  const paused = await ctx.call("/admin/arena/paused");
  $("#paused").replaceChildren(...paused.map((p) => pausedCard(ctx, p)));
  $("#paused-empty").hidden = paused.length > 0;
}

async function resume(ctx, slug, button) {
  await busy(button, () => ctx.act("paused", async () => {
    await ctx.call(`/admin/arena/paused/${slugPath(slug)}/resume`, { method: "POST" });
    return `Resumed ${slug}: it can be drawn into battles again.`;
  }, ["weights"]));
}

function weightRow(ctx, row) {
  const id = `weight-${row.slug}`;
  const input = h("input", { id, type: "number", min: "0", max: String(MAX_WEIGHT), step: "any",
    value: String(row.weight), class: "weight", inputmode: "decimal" });
  const save = h("button", { type: "button", class: "quiet", "aria-label": `Save the weight of ${row.slug}`,
    onclick: (e) => setWeight(ctx, row.slug, input, e.currentTarget) }, "Save");
  return h("tr", { dataset: { slug: row.slug } },
    h("th", { scope: "row" }, h("label", { for: id }, row.slug), row.paused ? h("span", { class: "badge" }, "paused") : null),
    h("td", {}, h("div", { class: "inline" }, input, save)),
    h("td", {}, String(row.counted_votes)), h("td", {}, `×${row.boost.toFixed(2)}`),
    h("td", {}, `${(row.draw_share * 100).toFixed(1)}%`));
}

export async function loadWeights(ctx) {
  const rows = await ctx.call("/admin/arena/weights");
  $("#weights tbody").replaceChildren(...rows.map((r) => weightRow(ctx, r)));
  labelCells($("#weights"));
}

async function setWeight(ctx, slug, input, button) {
  const weight = Number(input.value);
  if (input.value === "" || !Number.isFinite(weight) || weight < 0 || weight > MAX_WEIGHT) {
    ctx.fail("weights", `The weight of ${slug} must be a number from 0 to ${MAX_WEIGHT}.`);
    input.focus();
    return;
  }
  if (weight === 0 && !(await confirmAction({
    title: `Never draw ${slug}?`, text: "A weight of 0 keeps the model out of every new battle until it is raised.",
    confirm: "Set to 0",
  }))) return;
  await busy(button, () => ctx.act("weights", async () => {
    const saved = await ctx.call(`/admin/arena/weights/${slugPath(slug)}`, { method: "PUT", body: { weight } });
    return `${slug}: weight ${saved.weight}, drawn in ${(saved.draw_share * 100).toFixed(1)}% of battles.`;
  }, []));
}
