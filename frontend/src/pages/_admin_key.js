// The API key of the submit and admin pages. It is kept in sessionStorage only: it lives as long as the
// tab, is never written to localStorage or a cookie, and is sent only as `Authorization: Bearer` to this
// site's API. A key the service refuses (wrong, revoked, expired: 401) or one of the wrong scope (403) is
// forgotten at once, with a sentence that says which.
import { ApiError, api, explain } from "../lib/api.js";
import { $, announce } from "../lib/dom.js";
import { clearErrors, showError } from "./_admin_forms.js";

/** What a person reads when the key does not do: says whether it is refused or only lacks the scope. */
export function keyProblem(error, needs) {
  if (error instanceof ApiError && error.status === 401) {
    return `This key was refused (${error.message}): it is wrong, revoked or expired. Check it, or ask a ` +
      "maintainer for a new one.";
  }
  if (error instanceof ApiError && error.status === 403) return `This key works, but it is not ${needs}.`;
  return explain(error);
}

/** The key panel (#key-form, #api-key, #key-in-use, #key-prefix, #forget-key in the page's HTML).
 *  `probe(key)` is a cheap request the key must pass; `onKey(key)` runs once a key passed it,
 *  `onForget()` when it is forgotten. Returns {key(), call(path, options), refused(error)}. */
export function keySession({ slot, needs, probe, onKey, onForget }) {
  const form = $("#key-form");
  const input = $("#api-key");
  let key = null;

  const show = () => {
    form.hidden = Boolean(key);
    $("#key-in-use").hidden = !key;
    $("#key-prefix").textContent = key ? `${key.split("_").slice(0, 2).join("_")}_…` : "";
  };

  const forget = () => {
    key = null;
    sessionStorage.removeItem(slot);
    show();
    onForget();
  };

  const refused = (error) => {
    forget();
    clearErrors(form);
    showError(form, "api_key", keyProblem(error, needs));
  };

  async function accept(candidate) {
    try {
      await probe(candidate);
    } catch (error) {
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) refused(error);
      else showError(form, "api_key", explain(error));
      return;
    }
    key = candidate;
    sessionStorage.setItem(slot, key);
    input.value = "";
    await onKey(key); // the page loads what the key shows first, so that it appears at once
    show();
    announce("Key accepted.");
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const candidate = input.value.trim();
    if (!candidate) return showError(form, "api_key", "Enter your key: it starts with libra_.");
    await accept(candidate);
  });
  $("#forget-key").addEventListener("click", () => {
    forget();
    announce("Key forgotten. It is no longer kept in this tab.");
    input.focus();
  });

  show();
  const saved = sessionStorage.getItem(slot);
  if (saved) accept(saved);

  /** api() with the key; a 401 (the key was revoked meanwhile) forgets it and says so, then rethrows. */
  async function call(path, options = {}) {
    try {
      return await api(path, { ...options, key });
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) refused(error);
      throw error;
    }
  }

  return { key: () => key, call, refused };
}
