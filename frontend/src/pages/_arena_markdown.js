// Model answers as sanitised Markdown, raw HTML shown as text: lib/markdown.js (kept as the arena's name).
export { renderMarkdown as renderAnswer } from "../lib/markdown.js";
