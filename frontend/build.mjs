// Builds the pages into frontend/dist (never committed): one bundle per page from src/pages, one
// stylesheet, and the HTML pages and the favicon copied as they are. `npm run build`; under a second.
import { build } from "esbuild";
import { cpSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");
const pages = readdirSync(join(here, "src", "pages")).filter((f) => f.endsWith(".js") && !f.startsWith("_"));

rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, "assets"), { recursive: true });
await build({
  entryPoints: [...pages.map((f) => join(here, "src", "pages", f)), join(here, "src", "style.css")],
  outdir: join(dist, "assets"),
  entryNames: "[name]",
  bundle: true,
  format: "esm",
  minify: true,
  sourcemap: true,
  target: ["es2020"],
  legalComments: "linked", // the vendored libraries' licences travel with the bundles
  logLevel: "warning",
});
for (const file of readdirSync(join(here, "html"))) cpSync(join(here, "html", file), join(dist, file));
cpSync(join(here, "favicon.svg"), join(dist, "favicon.svg"));
