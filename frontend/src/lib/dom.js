// Small DOM helpers. Text always goes in as text (textContent), never as HTML: model answers and
// anything else from the server reach the page as HTML only through lib/markdown.js.

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

/** h("a", {href, class: "x", onclick}, "text", child...) → an element. Attributes starting with "on"
 *  become listeners; `dataset` and boolean attributes are handled; children may be strings or nodes. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (name === "class") element.className = value;
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

/** Says `text` to screen readers through the page's polite live region (#announcer). */
export function announce(text) {
  const region = document.getElementById("announcer");
  if (!region) return;
  region.textContent = "";
  // A fresh text node after a tick, so that the same sentence twice is announced twice.
  setTimeout(() => { region.textContent = text; }, 30);
}

export function fixed(value, digits = 3) {
  return value === null || value === undefined || Number.isNaN(value) ? "–" : Number(value).toFixed(digits);
}

/** "0.712 [0.690, 0.733]" from a band {value, lower, upper}. */
export function bandText(band, digits = 3) {
  if (!band || band.value === null || band.value === undefined) return "–";
  const interval = band.lower === null || band.lower === undefined ? "" : ` [${fixed(band.lower, digits)}, ${fixed(band.upper, digits)}]`;
  return `${fixed(band.value, digits)}${interval}`;
}

export function when(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** The model page's address for a slug. */
export const modelHref = (slug) => `/models/${encodeURIComponent(slug)}`;
