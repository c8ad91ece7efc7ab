// The model page (/models/<slug>): who the model is, where it stands, and the evidence behind it.
// Each part loads on its own (its own endpoint), so a slow or failed part never blanks the others.
import "../lib/shell.js";
import { api, explain } from "../lib/api.js";
import { $, announce, h } from "../lib/dom.js";
import {
  arenaSection, evaluationSection, headerSection, historySection, rowSection, samplesSection, scoresSection,
} from "./_model_parts.js";

/** The slug from /models/<slug>; null when the address has none. */
function slugFromPath() {
  const match = location.pathname.match(/^\/models\/([^/]+)\/?$/);
  return match ? decodeURIComponent(match[1]) : null;
}

function placeholder(id, title) {
  return h("section", { id, "aria-labelledby": `${id}-title`, "aria-busy": "true" },
    h("h2", { id: `${id}-title` }, title), h("p", { class: "note" }, "Loading…"));
}

/** Fills one section from its request; on failure the section says why, the rest of the page stays. */
async function fill(id, load, render) {
  const section = document.getElementById(id);
  const title = section.querySelector("h2");
  try {
    const parts = await load();
    section.replaceChildren(title, ...[render(...parts)].flat().filter(Boolean));
  } catch (error) {
    section.replaceChildren(title, h("p", { class: "error", role: "alert" }, explain(error)));
  }
  section.removeAttribute("aria-busy");
}

function noSuchModel(root, slug) {
  document.title = "No such model · Model · Libra Arena";
  root.replaceChildren(h("section", { class: "model-missing" },
    h("h1", {}, "No such model"),
    h("p", {}, slug ? `No model is registered as “${slug}”.` : "This address names no model."),
    h("p", {}, h("a", { href: "/leaderboard" }, "See every ranked model on the leaderboard"))));
  announce("No such model");
}

async function main() {
  const root = $("#model-root");
  const slug = slugFromPath();
  if (!slug) return noSuchModel(root, null);
  const path = `/models/${encodeURIComponent(slug)}`;
  // The registry's list rather than GET /models/<slug>: an unknown slug is then a page state, not a 404
  // that the browser would log as a console error.
  let model;
  try {
    model = (await api("/models")).find((m) => m.slug === slug);
  } catch (error) {
    root.replaceChildren(h("p", { class: "error", role: "alert" }, explain(error)));
    return;
  }
  if (!model) return noSuchModel(root, slug);
  document.title = `${model.display_name} · Model · Libra Arena`;
  const evaluation = api(`${path}/evaluation`);
  root.replaceChildren(
    headerSection(model),
    placeholder("model-evaluation", "Evaluation"),
    placeholder("model-standing", "On the leaderboard"),
    placeholder("model-scores", "Scores by category and task"),
    placeholder("model-history", "History across snapshots"),
    placeholder("model-arena", "Arena record"),
    placeholder("model-samples", "Sample answers"),
  );
  const board = api("/leaderboard");
  await Promise.all([
    fill("model-evaluation", async () => [await evaluation], evaluationSection),
    fill("model-standing", async () => [await board, slug], rowSection),
    fill("model-scores", async () => [await api(`${path}/scores`)], scoresSection),
    fill("model-history", async () => [await api(`${path}/history?limit=100`)], historySection),
    fill("model-arena", async () => [await api(`${path}/arena`)], arenaSection),
    fill("model-samples", async () => [await api(`${path}/samples?limit=6`)], samplesSection),
  ]);
  announce(`${model.display_name}: page loaded`);
}

main();
