// Builds the pages into frontend/dist (never committed): one bundle per page from src/pages, one
// stylesheet (src/style.css and the per-page files it imports), the HTML pages with their shared parts
// put in (html/_head.html where a page says <!-- libra:head -->, html/_header.html, the site's header and
// navigation, where it says <!-- libra:header -->), and the favicon. `npm run build`
// (scripts/build-frontend.sh); about a second.
//
// It builds into a fresh folder and swaps it in at the end, so a running `libra serve` never serves a
// half-written page. Each bundle builds on its own: a mistake in one page fails the build (exit 1) but
// still leaves the other pages up to date.
import { build } from "esbuild";
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");
const fresh = join(here, `dist.building-${process.pid}`);
const pages = readdirSync(join(here, "src", "pages")).filter((f) => f.endsWith(".js") && !f.startsWith("_"));
const entries = [...pages.map((f) => join(here, "src", "pages", f)), join(here, "src", "style.css")];

// The whiskers' positions (css/leaderboard.css): one class per whole percent for each of the three custom
// properties, because neither the server's markup nor the CSP may carry them in a style attribute.
const whiskerSteps = {
  name: "whisker-steps",
  setup(b) {
    b.onResolve({ filter: /^libra:whisker-steps$/ }, (args) => ({ path: args.path, namespace: "libra" }));
    b.onLoad({ filter: /.*/, namespace: "libra" }, () => {
      const steps = Array.from({ length: 101 }, (_, i) => i);
      const rules = [["wl", "lower"], ["wu", "upper"], ["wv", "value"]].flatMap(([prefix, name]) =>
        steps.map((i) => `.${prefix}${i}{--${name}:${i}%}`));
      return { contents: rules.join("\n"), loader: "css" };
    });
  },
};

mkdirSync(join(fresh, "assets"), { recursive: true });
const results = await Promise.allSettled(entries.map((entry) => build({
  entryPoints: [entry],
  outdir: join(fresh, "assets"),
  entryNames: "[name]",
  splitting: true, // a page's dynamic import() (e.g. the charts) becomes a chunk loaded when needed
  chunkNames: "chunks/[name]-[hash]",
  bundle: true,
  format: "esm",
  minify: true,
  sourcemap: true,
  target: ["es2020"],
  legalComments: "linked", // the bundled libraries' licence texts travel with the bundles
  logLevel: "error",
  plugins: [whiskerSteps],
})));
const partial = (name) => readFileSync(join(here, "html", `_${name}.html`), "utf8").trimEnd();
const partials = { head: partial("head"), header: partial("header") };
for (const file of readdirSync(join(here, "html")).filter((f) => f.endsWith(".html") && !f.startsWith("_"))) {
  const page = readFileSync(join(here, "html", file), "utf8");
  writeFileSync(join(fresh, file), page.replace(/^ *<!-- libra:(head|header) -->$/gm, (_, name) => partials[name]));
}
cpSync(join(here, "favicon.svg"), join(fresh, "favicon.svg"));

const retired = join(here, `dist.old-${process.pid}`);
if (existsSync(dist)) renameSync(dist, retired);
renameSync(fresh, dist);
rmSync(retired, { recursive: true, force: true });

const failed = results.filter((r) => r.status === "rejected");
if (failed.length) {
  console.error(`frontend build: ${failed.length} of ${entries.length} bundles failed`);
  process.exit(1);
}
