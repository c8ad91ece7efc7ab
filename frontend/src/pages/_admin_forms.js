// Form helpers of the submit and admin pages: field errors tied to their inputs (aria-describedby,
// aria-invalid, focus on the first error), the body of a form as the API's nested JSON, a confirmation
// dialog, and a result line per section that is also announced.
//
// Each input's `name` is the API's field path ("config.base_url", "config.sampling.temperature"), so a
// 422's `field` finds its input without a table, and `formBody` builds the nested body from the names.
import { ApiError, explain } from "../lib/api.js";
import { $, $$, announce, h } from "../lib/dom.js";

/** The error element of an input: `#<id>-error`, which the HTML names in the input's aria-describedby. */
const errorSlot = (input) => document.getElementById(`${input.id}-error`);

export function clearErrors(form) {
  for (const input of $$("[aria-invalid]", form)) input.removeAttribute("aria-invalid");
  for (const slot of $$(".field-error, .form-error", form)) {
    slot.textContent = "";
    slot.hidden = true;
  }
}

/** Shows `message` under the input named `field` (or, if none has that name, at the top of the form)
 *  and moves focus there, so that a keyboard or screen-reader user lands on what to fix. */
export function showError(form, field, message) {
  const input = field ? form.querySelector(`[name="${CSS.escape(field)}"]`) : null;
  const slot = input ? errorSlot(input) : $(".form-error", form);
  if (input) input.setAttribute("aria-invalid", "true");
  if (input?.closest("details")) input.closest("details").open = true; // an advanced field: show it
  if (slot) {
    slot.textContent = message;
    slot.hidden = false;
  }
  (input || slot)?.focus();
}

/** A person's sentence for an input that fails the browser's own checks (the same limits as the API). */
function messageFor(input) {
  const v = input.validity;
  if (v.valueMissing) return "This field is required.";
  if (v.patternMismatch) return input.dataset.patternMessage || "This value does not have the expected form.";
  if (v.typeMismatch && input.type === "url") return "Enter a full address, such as https://api.example.com/v1.";
  if (v.tooLong) return `At most ${input.maxLength} characters.`;
  if (v.tooShort) return `At least ${input.minLength} characters.`;
  if (v.rangeUnderflow) return `At least ${input.min}.`;
  if (v.rangeOverflow) return `At most ${input.max}.`;
  if (v.stepMismatch) return input.step === "1" ? "A whole number." : "This number is not allowed here.";
  if (v.badInput) return "Enter a number.";
  return input.validationMessage;
}

/** The browser's checks (forms carry `novalidate` so that the page, not a tooltip, shows the message);
 *  false after showing the first problem. */
export function checkForm(form) {
  clearErrors(form);
  const invalid = $$("input, textarea, select", form).find((input) => !input.checkValidity());
  if (!invalid) return true;
  showError(form, invalid.name, messageFor(invalid));
  return false;
}

/** Shows an API error on the form: at its field when the API named one (422, and 403 for what a
 *  submitter key may not configure), else at the top. */
export function showApiError(form, error) {
  const field = error instanceof ApiError ? error.field : null;
  showError(form, field, explain(error));
}

function setPath(target, path, value) {
  const parts = path.split(".");
  let node = target;
  for (const part of parts.slice(0, -1)) node = node[part] ??= {};
  node[parts.at(-1)] = value;
}

/** The form's named fields as the API's nested JSON; empty fields are left out (the API's default
 *  applies), numbers are sent as numbers. `only` limits it to names starting with one of its prefixes. */
export function formBody(form, only = null) {
  const body = {};
  for (const input of $$("input[name], textarea[name], select[name]", form)) {
    if (only && !only.some((prefix) => input.name.startsWith(prefix))) continue;
    const raw = input.type === "password" ? input.value : input.value.trim();
    if (raw === "") continue;
    setPath(body, input.name, input.type === "number" ? Number(raw) : raw);
  }
  return body;
}

let dialog = null;

function confirmDialog() {
  if (dialog) return dialog;
  dialog = h("dialog", { class: "confirm", "aria-labelledby": "confirm-title", "aria-describedby": "confirm-text" },
    h("h2", { id: "confirm-title" }),
    h("p", { id: "confirm-text" }),
    h("form", { method: "dialog", class: "actions" },
      h("button", { type: "submit", value: "cancel", class: "quiet", id: "confirm-cancel" }, "Cancel"),
      h("button", { type: "submit", value: "ok", class: "danger", id: "confirm-ok" }, "Confirm")));
  document.body.append(dialog);
  return dialog;
}

/** A modal question (the native <dialog>: focus is trapped inside, Escape cancels) → true if confirmed.
 *  Focus goes to Cancel, so that Enter by habit does not destroy anything, and returns where it was. */
export function confirmAction({ title, text, confirm }) {
  const box = confirmDialog();
  const returnTo = document.activeElement;
  $("#confirm-title", box).textContent = title;
  $("#confirm-text", box).textContent = text;
  $("#confirm-ok", box).textContent = confirm;
  box.returnValue = "cancel";
  box.showModal();
  $("#confirm-cancel", box).focus();
  return new Promise((resolve) => {
    box.addEventListener("close", () => {
      if (returnTo && returnTo.isConnected) returnTo.focus();
      resolve(box.returnValue === "ok");
    }, { once: true });
  });
}

/** Writes an action's result into a section's status line (role=status) and announces it. */
export function report(line, text, { error = false } = {}) {
  line.textContent = text;
  line.classList.toggle("error", error);
  line.hidden = false;
  announce(text);
}

/** Disables `button` while `action` runs, so that a double click sends one request. */
export async function busy(button, action) {
  button.disabled = true;
  try {
    return await action();
  } finally {
    if (button.isConnected) button.disabled = false;
  }
}

/** Gives each cell of `table`'s body its column's header as data-label, which the narrow layout
 *  (admin.css, table.cards) shows beside the value when rows become cards. */
export function labelCells(table) {
  const headers = $$("thead th", table).map((th) => th.textContent.trim());
  for (const row of $$("tbody tr", table)) {
    [...row.children].forEach((cell, i) => { cell.dataset.label = headers[i] || ""; });
  }
}
