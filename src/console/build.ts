/**
 * Builds the console's front end (`npm run build` runs it after tsc): Preact + the pages in
 * src/console/web bundled and minified by esbuild into content-hashed files in dist/console/web,
 * an index.html that loads them, and a gzip copy of each (the daemon sends those to browsers
 * that accept gzip). Prints the sizes; `--json` prints them as JSON.
 */
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import { ASSETS_DIR } from './assets.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const source = join(root, 'src/console/web');

const ICON = `data:image/svg+xml,${encodeURIComponent('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#152033"/><text x="16" y="22" font-size="16" text-anchor="middle" fill="#fff" font-family="sans-serif">K</text></svg>')}`;

const page = (js: string, css: string) => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Kennel console</title>
<link rel="icon" href="${ICON}">
<link rel="stylesheet" href="/assets/${css}">
<script type="module" src="/assets/${js}"></script>
</head>
<body>
<div id="app"></div>
<noscript>The Kennel console needs JavaScript.</noscript>
</body>
</html>
`;

export async function buildConsole(): Promise<{ dir: string; files: Array<{ name: string; bytes: number; gzipBytes: number }> }> {
  rmSync(ASSETS_DIR, { recursive: true, force: true });
  mkdirSync(ASSETS_DIR, { recursive: true });
  const result = await build({
    entryPoints: { app: join(source, 'main.tsx'), style: join(source, 'app.css') },
    bundle: true,
    minify: true,
    format: 'esm',
    target: 'es2020',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    entryNames: '[name]-[hash]',
    outdir: ASSETS_DIR,
    metafile: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p));
  const js = outputs.find((f) => f.startsWith('app-') && f.endsWith('.js'));
  const css = outputs.find((f) => f.startsWith('style-') && f.endsWith('.css'));
  if (!js || !css) throw new Error(`esbuild produced ${outputs.join(', ')}, not app-*.js and style-*.css`);
  writeFileSync(join(ASSETS_DIR, 'index.html'), page(js, css));
  const files = readdirSync(ASSETS_DIR)
    .sort()
    .map((name) => {
      const body = readFileSync(join(ASSETS_DIR, name));
      const gz = gzipSync(body, { level: 9 });
      writeFileSync(join(ASSETS_DIR, `${name}.gz`), gz);
      return { name, bytes: body.length, gzipBytes: gz.length };
    });
  return { dir: ASSETS_DIR, files };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = await buildConsole();
  if (process.argv.includes('--json')) process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  else for (const f of out.files) process.stdout.write(`console: ${f.name} ${(f.bytes / 1024).toFixed(1)} KiB (${(f.gzipBytes / 1024).toFixed(1)} KiB gzipped)\n`);
}
