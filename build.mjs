// Bundles js/ into deepvis_widgets/static/: one ES module per view, the
// save_html runtime, the shared stylesheet (js/style.css followed by every
// js/css/*.css, one file per view), and the vendored files that offline
// notebook export needs. Run by `npm run build` (and by the hatch build hook
// on `pip install`); `npm run build -- heatmap` rebuilds only the named entries.
import * as esbuild from "esbuild";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const OUT = "deepvis_widgets/static";
const VIEWS = readdirSync("js").filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts")).map((f) => f.slice(0, -3));
const watch = process.argv.includes("--watch");
const only = process.argv.slice(2).filter((a) => !a.startsWith("--"));
for (const name of only) if (!VIEWS.includes(name)) throw new Error(`no entry js/${name}.ts (entries: ${VIEWS.join(", ")})`);
const ENTRIES = only.length ? only : VIEWS;

mkdirSync(join(OUT, "vendor"), { recursive: true });

const options = {
  entryPoints: Object.fromEntries(ENTRIES.map((v) => [v, `js/${v}.ts`])),
  outdir: OUT,
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: !watch,
  sourcemap: false,
  legalComments: "none",
  logLevel: "warning",
};

// Offline notebook export: the ipywidgets HTML manager and require.js (see deepvis_widgets/export.py).
const VENDOR = {
  "embed-amd.js": "node_modules/@jupyter-widgets/html-manager/dist/embed-amd.js",
  "require.js": "node_modules/requirejs/require.js",
};

function finish() {
  const sheets = ["js/style.css", ...(existsSync("js/css") ? readdirSync("js/css").filter((f) => f.endsWith(".css")).sort().map((f) => `js/css/${f}`) : [])];
  writeFileSync(join(OUT, "style.css"), sheets.map((f) => `/* ${f} */\n${readFileSync(f, "utf8")}`).join("\n"));
  for (const [name, src] of Object.entries(VENDOR)) copyFileSync(src, join(OUT, "vendor", name));
  const files = {};
  for (const f of [...VIEWS.filter((v) => existsSync(join(OUT, `${v}.js`))).map((v) => `${v}.js`), "style.css", ...Object.keys(VENDOR).map((n) => `vendor/${n}`)]) {
    files[f] = createHash("sha256").update(readFileSync(join(OUT, f))).digest("hex").slice(0, 16);
  }
  writeFileSync(join(OUT, "manifest.json"), JSON.stringify({ views: VIEWS, files }, null, 2));
}

if (watch) {
  const ctx = await esbuild.context({ ...options, plugins: [{ name: "finish", setup: (b) => b.onEnd(finish) }] });
  await ctx.watch();
} else {
  await esbuild.build(options);
  finish();
}
