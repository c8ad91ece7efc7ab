// Charts are Observable Plot (https://observablehq.com/plot/), drawn through `chart()` so that they keep
// to the page's Content-Security-Policy: Plot puts a <style> element in each SVG, which the policy
// (no inline styles) would refuse with a console error; `chart()` removes it before the SVG reaches the
// document, and style.css carries the same rules (.libra-plot).
import * as Plot from "@observablehq/plot";

export { Plot };

export const PLOT_CLASS = "libra-plot";

/** Plot.plot(options) without its inline <style>; colours follow the page's theme via currentColor. */
export function chart(options) {
  const figure = Plot.plot({ className: PLOT_CLASS, ...options });
  for (const style of figure.querySelectorAll("style")) style.remove();
  return figure;
}

/** The Libra score: 1 - sqrt(((1 - c)^2 + (1 - s)^2) / 2). */
export function libraScore(capability, safety) {
  return 1 - Math.sqrt(((1 - capability) ** 2 + (1 - safety) ** 2) / 2);
}
