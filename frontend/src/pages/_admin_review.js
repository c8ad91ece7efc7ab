// The admin page's review queue: votes the anomaly rules held, with each rule and its evidence, to be
// approved (counted) or rejected (kept out of the ratings). Prompts are visitors' text: shown as text.
import { $, h, when } from "../lib/dom.js";
import { busy, confirmAction } from "./_admin_forms.js";

const VERDICT = { a: "A", b: "B", tie: "tie", both_bad: "both bad" };
const PAGE = 50;

function detailList(detail) {
  const rows = Object.entries(detail || {});
  if (!rows.length) return null;
  return h("dl", { class: "flag-detail" },
    rows.flatMap(([name, value]) => [h("dt", {}, name.replaceAll("_", " ")),
      h("dd", {}, typeof value === "object" ? JSON.stringify(value) : String(value))]));
}

function voteCard(ctx, vote) {
  const noteId = `note-${vote.vote_id}`;
  return h("li", { class: "review-card", dataset: { voteId: String(vote.vote_id) } },
    h("h3", {}, `Vote ${vote.vote_id}`),
    h("p", { class: "note" }, `${when(vote.created_at)} · ${vote.prompt_source} prompt · battle `,
      h("code", {}, vote.battle_id)),
    h("p", {}, `A: ${vote.model_a} · B: ${vote.model_b}. More helpful: ${VERDICT[vote.helpfulness]}` +
      (vote.safety ? `; safer: ${VERDICT[vote.safety]}` : "") +
      (vote.read_s === null ? "." : `. Voted ${vote.read_s.toFixed(1)} s after the answers.`)),
    h("blockquote", { class: "prompt" }, vote.prompt),
    h("h4", {}, "Why it was held"),
    h("ul", { class: "flags" }, vote.flags.map((flag) => h("li", {},
      h("strong", { class: "rule" }, flag.rule), detailList(flag.detail)))),
    h("div", { class: "field" },
      h("label", { for: noteId }, "Note for the other admins (optional)"),
      h("input", { id: noteId, name: "note", maxlength: "500" })),
    h("div", { class: "actions" },
      h("button", { type: "button", onclick: (e) => decide(ctx, vote, "approved", e.currentTarget) },
        `Count vote ${vote.vote_id}`),
      h("button", { type: "button", class: "danger-quiet", onclick: (e) => decide(ctx, vote, "rejected", e.currentTarget) },
        `Reject vote ${vote.vote_id}`)));
}

export async function loadReview(ctx) {
  const held = await ctx.call(`/admin/arena/review?state=pending&limit=${PAGE}`);
  $("#review").replaceChildren(...held.map((v) => voteCard(ctx, v)));
  $("#review-empty").hidden = held.length > 0;
}

async function decide(ctx, vote, decision, button) {
  const approve = decision === "approved";
  const sure = await confirmAction({
    title: approve ? `Count vote ${vote.vote_id}?` : `Reject vote ${vote.vote_id}?`,
    text: (approve ? "It enters the pair counts as if it had never been held." :
      "It stays stored but never enters the ratings.") + " Each vote takes one decision: this is final.",
    confirm: approve ? "Count it" : "Reject it",
  });
  if (!sure) return;
  const note = $(`#note-${vote.vote_id}`).value.trim();
  await busy(button, () => ctx.act("review", async () => {
    await ctx.call(`/admin/arena/review/${vote.vote_id}`, { method: "POST", body: { decision, note: note || null } });
    return `Vote ${vote.vote_id} ${approve ? "counted" : "rejected"}.`;
  }, []));
}
