// The leaderboard's two pictures, drawn by Observable Plot through lib/charts.js (one SVG each):
// capability versus safety (intervals, iso-score curves, Pareto frontier) and the heat map of models by
// category or attack. Colours of marks come from the page's CSS (currentColor and classes), so the
// theme switch needs no redraw.
import { chart, Plot } from "../lib/charts.js";
import { fixed, h, modelHref } from "../lib/dom.js";
import { intervalText, label, summary } from "./_leaderboard_format.js";

const LEVELS = [0.5, 0.6, 0.7, 0.8, 0.9];
const TEXT_CELLS = 240;

/** Points of the iso-score curve of `level`: a quarter circle around (1, 1) of radius (1 - level)·√2,
 *  cut to the unit square. */
function isoCurve(level) {
  const radius = (1 - level) * Math.SQRT2;
  const points = [];
  for (let k = 0; k <= 48; k += 1) {
    const angle = (Math.PI / 2) * (k / 48);
    const x = 1 - radius * Math.cos(angle);
    const y = 1 - radius * Math.sin(angle);
    if (x >= 0 && y >= 0) points.push({ level, x, y });
  }
  return points;
}

/** The models no other model beats on both axes, in capability order: the Pareto frontier. */
export function paretoFrontier(rows) {
  const byCapability = [...rows].sort((a, b) => b.capability.value - a.capability.value
    || b.safety.value - a.safety.value);
  const frontier = [];
  let bestSafety = -Infinity;
  for (const row of byCapability) {
    if (row.safety.value > bestSafety) {
      frontier.push(row);
      bestSafety = row.safety.value;
    }
  }
  return frontier.reverse();
}

const scattered = (row) => [row.overall, row.capability, row.safety].every((b) => b && b.value !== null && b.value !== undefined);

const go = (row) => window.location.assign(modelHref(row.slug));

/** Puts the focus tip over the focused dot: the SVG is drawn at the container's width, so its
 *  coordinates are CSS pixels and no layout needs reading. */
function showFocusTip(tip, circle, row) {
  tip.textContent = summary(row);
  tip.hidden = false;
  tip.style.left = `${Number(circle.getAttribute("cx"))}px`;
  tip.style.top = `${Number(circle.getAttribute("cy")) + 12}px`;
}

/** Each dot becomes a focusable link: focus shows the model's numbers, Enter or a click opens its page.
 *  One tab stop for the whole chart (a roving tabindex): arrow keys move between the dots, in rank order,
 *  so that 200 models do not mean 200 presses of Tab. */
function wireDots(figure, data, tip) {
  const svg = figure.tagName.toLowerCase() === "svg" ? figure : figure.querySelector("svg");
  const dots = [...svg.querySelectorAll('g[aria-label="dot"] circle')].filter((c) => data[c.__data__]);
  const move = (from, step) => {
    const next = dots[(from + step + dots.length) % dots.length];
    for (const dot of dots) dot.setAttribute("tabindex", dot === next ? "0" : "-1");
    next.focus();
  };
  dots.forEach((circle, i) => {
    const row = data[circle.__data__]; // Plot binds each element to its datum's index
    circle.dataset.slug = row.slug;
    circle.setAttribute("tabindex", i === 0 ? "0" : "-1");
    circle.setAttribute("role", "link");
    circle.setAttribute("aria-label", summary(row));
    circle.addEventListener("focus", () => showFocusTip(tip, circle, row));
    circle.addEventListener("blur", () => { tip.hidden = true; });
    circle.addEventListener("click", (event) => { event.stopPropagation(); go(row); });
    circle.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[event.key];
      if (event.key === "Enter") go(row);
      else if (step) {
        event.preventDefault();
        move(i, step);
      }
    });
  });
  // A click goes to the model the pointer tip shows (Plot sets the figure's value to it).
  figure.addEventListener("click", () => { if (figure.value) go(figure.value); });
}

/** The capability-versus-safety scatter of the ranked rows, `width` CSS pixels wide. */
export function drawScatter(container, tip, rows, width) {
  const data = rows.filter(scattered);
  tip.hidden = true;
  if (!data.length) {
    container.replaceChildren(h("p", { class: "note" }, "No ranked model to draw yet."));
    return;
  }
  const size = Math.max(260, Math.min(width, 600));
  const iso = LEVELS.flatMap(isoCurve);
  const isoLabels = LEVELS.map((level) => ({ level, ...isoCurve(level)[24] })).filter((d) => d.x !== undefined);
  const frontier = paretoFrontier(data);
  const figure = chart({
    width: size, height: size, marginLeft: 48, marginBottom: 44, marginRight: 16, marginTop: 16,
    x: { domain: [0, 1], label: "Capability →", grid: true },
    y: { domain: [0, 1], label: "↑ Safety", grid: true },
    ariaLabel: "Capability versus safety of the ranked models",
    marks: [
      Plot.line(iso, { x: "x", y: "y", z: "level", className: "lb-iso" }),
      Plot.text(isoLabels, { x: "x", y: "y", text: (d) => `${d.level}`, className: "lb-iso-label", dx: -2, dy: -2 }),
      Plot.line(frontier, { x: (d) => d.capability.value, y: (d) => d.safety.value, className: "lb-frontier" }),
      Plot.ruleY(data, { y: (d) => d.safety.value, x1: (d) => d.capability.lower, x2: (d) => d.capability.upper,
        className: "lb-interval" }),
      Plot.ruleX(data, { x: (d) => d.capability.value, y1: (d) => d.safety.lower, y2: (d) => d.safety.upper,
        className: "lb-interval" }),
      Plot.dot(data, { x: (d) => d.capability.value, y: (d) => d.safety.value, r: 6, className: "lb-dot" }),
      Plot.tip(data, Plot.pointer({ x: (d) => d.capability.value, y: (d) => d.safety.value,
        title: (d) => [d.display_name, `Libra ${intervalText(d.overall.value, d.overall.lower, d.overall.upper, 3)}`,
          `capability ${intervalText(d.capability.value, d.capability.lower, d.capability.upper, 3)}`,
          `safety ${intervalText(d.safety.value, d.safety.lower, d.safety.upper, 3)}`].join("\n") })),
    ],
  });
  wireDots(figure, data, tip);
  container.replaceChildren(figure);
}

/** The heat map's cells: one per model and column that has a score. */
export function heatCells(rows, dimension) {
  const cells = [];
  for (const row of rows) {
    const source = dimension === "attacks" ? row.attacks : row.categories;
    for (const [column, band] of Object.entries(source || {})) {
      if (dimension !== "attacks" && band.axis !== dimension) continue;
      if (band.value === null || band.value === undefined) continue;
      cells.push({ row, column: label(column), model: row.display_name, ...band });
    }
  }
  return cells;
}

/** Models by categories (or attacks), colour = mean score. Wider than the screen on a phone: it scrolls
 *  in its own box, never the page. */
export function drawHeatmap(container, rows, dimension, width) {
  const cells = heatCells(rows, dimension);
  if (!cells.length) {
    container.replaceChildren(h("p", { class: "note" }, dimension === "attacks"
      ? "No attack-type scores in this snapshot." : "No category scores in this snapshot."));
    return;
  }
  const models = [...new Set(cells.map((c) => c.model))];
  const columns = [...new Set(cells.map((c) => c.column))].sort();
  const longest = Math.max(...models.map((m) => m.length));
  const marginLeft = Math.min(180, 16 + 7 * longest);
  const figure = chart({
    width: Math.max(width, marginLeft + 44 * columns.length + 16),
    height: 110 + 26 * models.length, marginLeft, marginBottom: 100, marginTop: 8,
    x: { domain: columns, label: null, tickRotate: -35 },
    y: { domain: models, label: null },
    color: { type: "linear", domain: [0, 1], scheme: "viridis", legend: false },
    ariaLabel: `Scores of ${models.length} models by ${dimension === "attacks" ? "attack type" : "category"}`,
    marks: [
      Plot.cell(cells, { x: "column", y: "model", fill: "value", inset: 1, className: "lb-cell",
        ariaLabel: (d) => `${d.model}, ${d.column}: ${fixed(d.value, 2)}` }),
      // Numbers in the cells only while they are few: on a big board they would double the SVG's size.
      cells.length <= TEXT_CELLS ? Plot.text(cells, { x: "column", y: "model", text: (d) => fixed(d.value, 2),
        className: "lb-cell-text", fill: (d) => (d.value > 0.55 ? "black" : "white") }) : null,
      Plot.tip(cells, Plot.pointer({ x: "column", y: "model",
        title: (d) => `${d.model}\n${d.column}: ${intervalText(d.value, d.lower, d.upper, 3)}\n${d.items} items` })),
    ],
  });
  container.replaceChildren(figure);
}
