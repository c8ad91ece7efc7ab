// The conversation on the page: one block per turn (the prompt, then answer A beside answer B).
// Answers arrive as Markdown text in pieces; each side's text is re-rendered through renderMarkdown (the
// only way model text becomes HTML; raw HTML escaped, see _arena_markdown.js) at most every RENDER_MS,
// so that a fast stream does not re-parse the whole answer for every tick of the service's pacer.
import { h } from "../lib/dom.js";
import { renderAnswer } from "./_arena_markdown.js";

const RENDER_MS = 60;
export const SIDES = ["a", "b"];
export const sideName = (side) => `Model ${side.toUpperCase()}`;

class AnswerView {
  constructor(turn, side) {
    this.side = side;
    this.text = "";
    this.state = "waiting"; // waiting → streaming → ok | failed
    this.timer = null;
    const id = `turn-${turn}-${side}`;
    this.body = h("div", { class: "answer-body", id: `${id}-body` });
    this.status = h("p", { class: "answer-state" });
    this.element = h("article", { class: "answer", dataset: { side }, "aria-labelledby": `${id}-title`,
      "aria-busy": "true" }, h("h4", { id: `${id}-title` }, sideName(side)), this.body, this.status);
    this.showTyping();
  }

  showTyping() {
    // The dots are decoration; the words say it to everyone, screen readers included.
    const dots = h("span", { class: "typing", "aria-hidden": "true" }, h("span"), h("span"), h("span"));
    this.status.replaceChildren(dots,
      h("span", { class: "typing-text" }, `${sideName(this.side)} is typing…`));
    this.status.hidden = false;
  }

  append(text) {
    this.text += text;
    this.state = "streaming";
    if (!this.timer) this.timer = setTimeout(() => this.render(), RENDER_MS);
  }

  render() {
    clearTimeout(this.timer);
    this.timer = null;
    this.body.replaceChildren(renderAnswer(this.text));
  }

  /** The side is complete: its full text (when the service replayed it) and no more typing. */
  finish(text) {
    if (text !== undefined) this.text = text;
    this.state = "ok";
    this.render();
    this.status.hidden = true;
    this.element.setAttribute("aria-busy", "false");
  }

  fail(message) {
    this.state = "failed";
    this.message = message;
    this.render();
    this.element.classList.add("failed");
    this.element.setAttribute("aria-busy", "false");
    this.status.replaceChildren(`${sideName(this.side)} could not answer: ${message}.`);
    this.status.hidden = false;
  }

  /** A regeneration or a fresh stream: the turn's text starts over. */
  reset() {
    clearTimeout(this.timer);
    this.timer = null;
    this.text = "";
    this.state = "waiting";
    this.body.replaceChildren();
    this.element.classList.remove("failed");
    this.element.setAttribute("aria-busy", "true");
    this.showTyping();
  }

  get ended() {
    return this.state === "ok" || this.state === "failed";
  }
}

export class TurnView {
  constructor(number, prompt) {
    this.number = number;
    this.answers = Object.fromEntries(SIDES.map((side) => [side, new AnswerView(number, side)]));
    this.promptText = h("p", { class: "turn-prompt-text" }, prompt);
    this.element = h("div", { class: "turn", dataset: { turn: String(number) }, tabindex: "-1",
      "aria-labelledby": `turn-${number}-title` },
    h("h3", { id: `turn-${number}-title` }, `Turn ${number}`),
    h("div", { class: "turn-prompt" }, h("span", { class: "who" }, "You asked"), this.promptText),
    h("div", { class: "answers" }, ...SIDES.map((side) => this.answers[side].element)));
  }

  /** The text the models were really sent (an attack rewrites it): the service's word is the last one. */
  setPrompt(prompt) {
    this.promptText.textContent = prompt;
  }

  get ended() {
    return SIDES.every((side) => this.answers[side].ended);
  }

  reset() {
    for (const side of SIDES) this.answers[side].reset();
  }

  /** Show what the service stored for this turn (after a reconnect that could not resume). */
  showStored(turn) {
    for (const answer of turn.answers) {
      const view = this.answers[answer.side];
      if (answer.status === "ok") view.finish(answer.text);
      else view.fail(answer.error || "no answer");
    }
  }
}
