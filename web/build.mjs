// Builds the screens into web/dist: each page's main.js bundled (with ECharts from node_modules) by esbuild,
// its HTML and CSS copied. Nothing is fetched at run time: the pages load only what dist/ holds.
import { build } from "esbuild";
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";

const src = new URL("./src/", import.meta.url).pathname;
const dist = new URL("./dist/", import.meta.url).pathname;
// One folder per page under src/ (common/ holds what the pages share and is not a page).
const pages = readdirSync(src, { withFileTypes: true })
  .filter((d) => d.isDirectory() && d.name !== "common" && existsSync(join(src, d.name, "main.js")))
  .map((d) => d.name);

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });
for (const page of pages) {
  // index.html, *.css and any static files of the page; main.js and its imports are bundled below.
  cpSync(join(src, page), join(dist, page), {
    recursive: true,
    filter: (from) => !from.endsWith(".js"),
  });
}
await build({
  entryPoints: Object.fromEntries(pages.map((p) => [p, join(src, p, "main.js")])),
  outdir: join(dist, "assets"),
  bundle: true,
  minify: true,
  sourcemap: true,
  format: "esm",
  target: ["chrome110"],
  logLevel: "warning",
});
console.log(`built ${pages.length} page(s) into ${dist}: ${pages.join(", ")}`);
