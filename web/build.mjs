// Builds the screens into web/dist: each page's main.js bundled (with ECharts from node_modules) by esbuild,
// its HTML and CSS copied. Nothing is fetched at run time: the pages load only what dist/ holds.
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from "node:fs";
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
    filter: (from) => !from.endsWith(".js"),  // (grid/sw.js, the service worker, is built below)
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

// The coordinator's page works without signal: its service worker keeps the page's shell (the files below; the
// stylesheets are the ones grid/index.html links). The cache's name is a hash of their contents, so a new build
// is a new worker that replaces the kept shell.
const shell = ["/grid/", "/grid/style.css", "/owner/style.css", "/assets/grid.js"];
const hash = createHash("sha256");
for (const url of shell) hash.update(readFileSync(join(dist, url.endsWith("/") ? `${url}index.html` : url)));
const version = hash.digest("hex").slice(0, 16);
await build({
  entryPoints: [join(src, "grid", "sw.js")],
  outfile: join(dist, "grid", "sw.js"),
  bundle: true,
  minify: true,
  format: "iife",
  target: ["chrome110"],
  define: { __SHELL__: JSON.stringify(shell), __VERSION__: JSON.stringify(version) },
  logLevel: "warning",
});
console.log(`built ${pages.length} page(s) into ${dist}: ${pages.join(", ")}`);
