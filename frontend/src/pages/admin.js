// The admin page (issue 12, item 4): with an admin key, approve submissions, re-evaluate and retire
// models, revoke keys, decide held votes, resume paused models and set pairing weights. Each section
// loads on its own (one failing does not blank the others), and each action reports its result in the
// section's status line and the page's live region, then reloads what it changed.
import "../lib/shell.js";
import { api } from "../lib/api.js";
import { $, $$ } from "../lib/dom.js";
import { report } from "./_admin_forms.js";
import { keySession } from "./_admin_key.js";
import { loadKeys } from "./_admin_keys.js";
import { loadPaused, loadWeights } from "./_admin_arena.js";
import { loadModels } from "./_admin_models.js";
import { loadReview } from "./_admin_review.js";

const SECTIONS = { approval: loadModels, models: loadModels, review: loadReview, paused: loadPaused,
  keys: loadKeys, weights: loadWeights };

let session = null;

const statusLine = (section) => $(`#${section}-status`);

const ctx = {
  call: (path, options) => session.call(path, options),
  keyPrefix: () => (session.key() || "").split("_")[1] || null,
  fail: (section, text) => report(statusLine(section), text, { error: true }),
  /** Runs an action of `section`; its sentence goes to the section's status line; then the section
   *  and the `also` sections are loaded again, so the page shows what the service now holds. */
  async act(section, action, also) {
    try {
      report(statusLine(section), await action());
    } catch (error) {
      ctx.fail(section, `Not done: ${error.message}`);
    }
    if (session.key()) await reload([section, ...also]);
  },
};

async function load(section) {
  try {
    await SECTIONS[section](ctx);
  } catch (error) {
    if (session.key()) ctx.fail(section, `Could not load this list: ${error.message}`);
  }
}

/** Loads the given sections, each loader once (approval and models share one). */
async function reload(sections) {
  const loaders = new Map(sections.map((s) => [SECTIONS[s], s]));
  await Promise.all([...loaders.values()].map(load));
}

function setUp() {
  session = keySession({
    slot: "libra:admin-key",
    needs: "an admin key",
    probe: (key) => api("/admin/keys", { key }),
    onKey: async () => {
      await reload(Object.keys(SECTIONS));
      $("#with-key").hidden = false;
    },
    onForget: () => {
      $("#with-key").hidden = true;
      for (const list of $$("#with-key ul, #with-key tbody")) list.replaceChildren();
      for (const line of $$("#with-key .result")) line.hidden = true;
    },
  });
  for (const button of $$("[data-refresh]")) {
    button.addEventListener("click", async () => {
      await load(button.dataset.refresh);
      report(statusLine(button.dataset.refresh), "Refreshed.");
    });
  }
}

setUp();
