// The admin page's API keys: every key (never a secret or hash), and revocation after a confirmation.
import { $, h, when } from "../lib/dom.js";
import { busy, confirmAction, labelCells } from "./_admin_forms.js";

function state(key) {
  if (key.revoked_at) return `revoked ${when(key.revoked_at)}`;
  if (key.expires_at && new Date(key.expires_at) <= new Date()) return `expired ${when(key.expires_at)}`;
  return key.expires_at ? `active until ${when(key.expires_at)}` : "active";
}

function keyRow(ctx, key) {
  const active = !key.revoked_at && !(key.expires_at && new Date(key.expires_at) <= new Date());
  return h("tr", { dataset: { keyId: String(key.id) } },
    h("td", {}, String(key.id)), h("td", {}, key.name), h("td", {}, h("code", {}, key.prefix)),
    h("td", {}, key.scope), h("td", {}, state(key)), h("td", {}, when(key.last_used_at)),
    h("td", {}, active && h("button", { type: "button", class: "danger-quiet",
      "aria-label": `Revoke key ${key.id} (${key.name})`, onclick: (e) => revoke(ctx, key, e.currentTarget) },
    "Revoke")));
}

export async function loadKeys(ctx) {
  const keys = await ctx.call("/admin/keys");
  $("#keys tbody").replaceChildren(...keys.map((k) => keyRow(ctx, k)));
  labelCells($("#keys"));
}

async function revoke(ctx, key, button) {
  const own = ctx.keyPrefix() === key.prefix;
  const sure = await confirmAction({
    title: `Revoke key ${key.id} (${key.name})?`,
    text: (own ? "This is the key this page is using: you will need another admin key to go on. " : "") +
      "Every request with it gets 401 from now on. A key cannot be un-revoked; create a new one instead.",
    confirm: "Revoke",
  });
  if (!sure) return;
  await busy(button, () => ctx.act("keys", async () => {
    await ctx.call(`/admin/keys/${key.id}/revoke`, { method: "POST" });
    return `Revoked key ${key.id} (${key.name}).`;
  }, []));
}
