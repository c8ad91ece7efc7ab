// The two-axis vote (helpfulness, safety), its optional harm category and reason, and the reveal.
import { api } from "../lib/api.js";
import { $, h, modelHref } from "../lib/dom.js";

// The service's limit on a vote's reason (arena/schemas.py, MAX_REASON_CHARS); the textarea's maxlength
// says the same in index.html.
export const MAX_REASON_CHARS = 500;

const VERDICTS = { a: "A", b: "B", tie: "a tie", both_bad: "both bad" };
const SAFETY_VERDICTS = { a: "A", b: "B", tie: "a tie", both_bad: "both unsafe" };

/** A key for Idempotency-Key: random, printable, and available outside secure contexts too
 *  (crypto.randomUUID is not, e.g. on http://192.168.x.y). */
export function newIdempotencyKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function loadHarmCategories() {
  const categories = await api("/battles/harm-categories");
  const select = $("#harm-category");
  for (const [slug, label] of Object.entries(categories)) select.append(h("option", { value: slug }, label));
}

export function watchReasonLength() {
  const reason = $("#reason");
  const update = () => {
    const left = MAX_REASON_CHARS - reason.value.length;
    $("#reason-count").textContent = `${reason.value.length} of ${MAX_REASON_CHARS} characters` +
      (left <= 50 ? ` (${left} left)` : "");
  };
  reason.addEventListener("input", update);
  update();
  return update;
}

/** The vote's body from the form, or null when helpfulness is not chosen yet. */
export function voteBody(form) {
  const data = new FormData(form);
  const helpfulness = data.get("helpfulness");
  if (!helpfulness) return null;
  const body = { helpfulness };
  if (data.get("safety")) body.safety = data.get("safety");
  if (data.get("harm_category")) body.harm_category = data.get("harm_category");
  const reason = String(data.get("reason") || "").trim();
  if (reason) {
    body.reason = reason;
    body.reason_public = data.get("reason_public") === "on";
  }
  return body;
}

export function sendVote(battleId, body, key) {
  return api(`/battles/${encodeURIComponent(battleId)}/vote`, { method: "POST", body,
    headers: { "Idempotency-Key": key } });
}

function countedText(battle) {
  if (battle.vote_counted) return "Your vote counts toward the leaderboard.";
  if (battle.vote_excluded_reason === "review") {
    return "Your vote was recorded and is held for review: it counts once a maintainer approves it.";
  }
  if (battle.vote_excluded_reason === "identity_leak") {
    return "Your vote was recorded but stays out of the ratings: an answer gave away which model it was.";
  }
  return "Your vote was recorded but does not count toward the ratings.";
}

function harmLabel(slug) {
  const option = [...$("#harm-category").options].find((o) => o.value === slug);
  return option ? option.textContent : slug;
}

function voteText(vote) {
  const parts = [`More helpful: ${VERDICTS[vote.helpfulness] || vote.helpfulness}`];
  parts.push(vote.safety ? `safer: ${SAFETY_VERDICTS[vote.safety] || vote.safety}` : "safety not judged");
  if (vote.harm_category) parts.push(`harm: ${harmLabel(vote.harm_category)}`);
  return `You voted: ${parts.join(" · ")}.`;
}

function showModel(side, model) {
  const link = $(`#reveal-${side}`);
  link.textContent = model.display_name;
  link.href = modelHref(model.slug);
  $(`#reveal-${side}-org`).textContent = model.organisation ? `· ${model.organisation}` : "";
}

/** Fill the reveal from the vote's answer; returns the sentence to announce. */
export function showReveal(battle) {
  showModel("a", battle.model_a);
  showModel("b", battle.model_b);
  $("#reveal-vote").textContent = battle.vote ? voteText(battle.vote) : "";
  $("#reveal-counted").textContent = countedText(battle);
  const [a, b] = [battle.model_a.display_name, battle.model_b.display_name];
  return `Your vote was recorded: A was ${a}, B was ${b}.`;
}
