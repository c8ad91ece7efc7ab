// The prompt box's helpers: the attack picker with its preview, and "Surprise me".
//
// What a battle sends is decided here, in `battleBody()`:
//   - an attack: {prompt, attack, attack_seed} with the seed of the preview on screen, so the models get
//     exactly the text shown (the service applies the same transform with the same seed);
//   - a prompt drawn by "Surprise me" and left unchanged: {pool_item}, so the battle records its source;
//   - anything else: {prompt}, the visitor's own words.
import { api, explain } from "../lib/api.js";
import { $, h } from "../lib/dom.js";

const PREVIEW_DELAY_MS = 300;

export class Composer {
  constructor() {
    this.prompt = $("#prompt");
    this.attack = $("#attack");
    this.descriptions = new Map();
    this.preview = null; // {prompt, attack, attack_seed, text}: the preview on screen, if any
    this.pending = null; // the preview being fetched (a promise)
    this.pool = null; // {pool_item, prompt, ...} from "Surprise me", while the box still holds its text
    this.timer = null;
    this.attack.addEventListener("change", () => this.attackChanged());
    this.prompt.addEventListener("input", () => this.promptEdited());
    $("#attack-redraw").addEventListener("click", () => this.showPreview({ newSeed: true }));
  }

  async loadAttacks() {
    const attacks = await api("/arena/attacks");
    for (const attack of attacks) {
      this.descriptions.set(attack.name, attack.description);
      this.attack.append(h("option", { value: attack.name }, attack.name.replaceAll("_", " ")));
    }
  }

  attackChanged() {
    const name = this.attack.value;
    $("#attack-description").textContent = name ? this.descriptions.get(name) || "" : "";
    this.preview = null;
    this.showPreview({ newSeed: true });
  }

  promptEdited() {
    if (this.pool && this.prompt.value !== this.pool.prompt) this.forgetPool(true);
    clearTimeout(this.timer);
    if (this.attack.value) this.timer = setTimeout(() => this.showPreview(), PREVIEW_DELAY_MS);
  }

  /** Refresh the preview for the eyes only: a failure is already said in the preview's status line. */
  showPreview(options) {
    this.refreshPreview(options).catch(() => {});
  }

  /** Fetch the transformed text for the box's prompt; keep the seed unless a new variant was asked for. */
  refreshPreview({ newSeed = false } = {}) {
    clearTimeout(this.timer);
    const attack = this.attack.value;
    const prompt = this.prompt.value;
    $("#attack-preview").hidden = !attack;
    if (!attack) {
      this.preview = null;
      return Promise.resolve(null);
    }
    if (!prompt.trim()) {
      $("#attack-text").textContent = "";
      $("#attack-status").textContent = "Write a prompt to see how the attack rewrites it.";
      this.preview = null;
      return Promise.resolve(null);
    }
    const body = { prompt, attack };
    const keepSeed = !newSeed && this.preview && this.preview.attack === attack;
    if (keepSeed) body.attack_seed = this.preview.attack_seed;
    $("#attack-status").textContent = "Rewriting…";
    const request = api("/arena/attacks/preview", { method: "POST", body }).then((answer) => {
      if (this.pending !== request) return this.pending; // a newer request took over
      this.preview = { prompt, attack, attack_seed: answer.attack_seed, text: answer.prompt };
      $("#attack-text").textContent = answer.prompt;
      $("#attack-status").textContent = "";
      return this.preview;
    }).catch((error) => {
      if (this.pending === request) {
        this.preview = null;
        $("#attack-text").textContent = "";
        $("#attack-status").textContent = explain(error);
      }
      throw error;
    });
    this.pending = request;
    return request;
  }

  /** The body of POST /battles for what is on screen (awaiting a fresh preview if the shown one is stale). */
  async battleBody() {
    const prompt = this.prompt.value;
    const attack = this.attack.value;
    if (attack) {
      const fresh = this.preview && this.preview.prompt === prompt && this.preview.attack === attack;
      const preview = fresh ? this.preview : await this.refreshPreview();
      if (!preview) throw new Error("no preview"); // only for a blank prompt, which the page refuses first
      const body = { prompt, attack, attack_seed: preview.attack_seed, stream: true };
      return { body, shown: preview.text };
    }
    if (this.pool && this.pool.prompt === prompt) {
      return { body: { pool_item: this.pool.pool_item, stream: true }, shown: prompt };
    }
    return { body: { prompt, stream: true }, shown: prompt };
  }

  async surprise() {
    const item = await api("/arena/surprise");
    this.prompt.value = item.prompt;
    this.pool = item;
    const kind = item.kind === "risky" ? "a risky prompt" : "a harmless prompt that looks risky";
    const harm = item.harm_category ? `, harm: ${item.harm_category.replaceAll("_", " ")}` : "";
    const note = $("#pool-note");
    note.textContent = `From the prompt pool: ${kind} (source: ${item.source}, task ${item.task}${harm}). ` +
      "Edit it and it becomes your own prompt.";
    note.hidden = false;
    if (this.attack.value) this.showPreview({ newSeed: true });
    return item;
  }

  forgetPool(edited = false) {
    this.pool = null;
    const note = $("#pool-note");
    note.textContent = edited ? "Edited: it will be sent as your own prompt." : "";
    note.hidden = !edited;
  }

  clear() {
    this.prompt.value = "";
    this.forgetPool();
    this.preview = null;
    this.refreshPreview(); // with an empty box: hides the preview, or asks for a prompt in attack mode
  }
}
