// Model answers as safe Markdown: marked turns the text into HTML with any raw HTML in the answer escaped
// (shown as the text the model wrote), DOMPurify (a well-kept sanitiser) keeps only harmless elements and
// attributes of the rest, and links may only go to http(s) or mailto addresses.
//
// Why escape raw HTML rather than let DOMPurify drop it: merely parsing an element with an inline event
// handler, even in DOMPurify's inert document, makes Chromium log a Content-Security-Policy violation, once
// per re-render while an answer streams (the handler never runs). Escaping avoids that, and the visitor
// sees what the model really wrote.
import DOMPurify from "dompurify";
import { Marked } from "marked";

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const escapeHtml = (text) => text.replace(/[&<>"']/g, (c) => ESCAPES[c]);

// An instance of our own, so that no other module's marked settings change ours.
const marked = new Marked({
  gfm: true,
  breaks: true,
  renderer: {
    html(token) { // block and inline raw HTML both come here
      return escapeHtml(typeof token === "string" ? token : token.text);
    },
  },
});

const purifier = DOMPurify(window);
purifier.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    const href = node.getAttribute("href") || "";
    if (!/^(https?:|mailto:)/i.test(href)) node.removeAttribute("href");
    node.setAttribute("rel", "noopener noreferrer nofollow");
    node.setAttribute("target", "_blank");
  }
});

const CONFIG = {
  ALLOWED_TAGS: ["p", "br", "hr", "strong", "em", "del", "code", "pre", "blockquote", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "a", "table", "thead", "tbody", "tr", "th", "td"],
  ALLOWED_ATTR: ["href", "title", "start", "align"],
  ALLOW_DATA_ATTR: false,
  RETURN_DOM_FRAGMENT: true,
};

/** A DocumentFragment of the answer rendered as sanitised Markdown. */
export function renderMarkdown(text) {
  const html = marked.parse(String(text ?? ""), { async: false });
  return purifier.sanitize(html, CONFIG);
}
