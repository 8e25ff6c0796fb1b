/**
 * The architecture rules of docs/ARCHITECTURE.md, checked on the real imports of src/ (reads
 * files only: no build, no processes). `src/<area>/` is an area; src/console/web is the console's
 * browser bundle, checked on its own.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

/** The areas that face users: they may import services, never the other way round. */
const INTERFACES = new Set(['cli', 'server', 'console']);
/** Pairs of areas that never import each other, directly or through other areas. */
const APART: Array<[string, string]> = [
  ['serving', 'training'],
  ['training', 'serving'],
];
/** Areas that may import only these (inference takes resolved models, so it sits under the registry). */
const ONLY: Record<string, string[]> = { inference: ['core', 'onnx', 'store'], core: [], store: ['core'], onnx: ['core'] };
/** The console's pages: a browser bundle that may import, besides itself, only this type-only module. */
const WEB = 'console/web/';
const WEB_TYPES = 'console/api-types.ts';

interface Import {
  from: string; // file, relative to src/
  to: string; // resolved file (or folder) relative to src/; outside src/ starts with ..
  typeOnly: boolean;
  line: number;
}

const IMPORT = /^\s*(import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/gm;

/** The relative imports (static, re-exports, dynamic) of a source text. */
export function importsOf(file: string, text: string): Import[] {
  const out: Import[] = [];
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[3] ?? m[4]!;
    const line = text.slice(0, m.index).split('\n').length;
    out.push({ from: file, to: resolveSpec(file, spec), typeOnly: !!m[2], line });
  }
  return out;
}

function resolveSpec(file: string, spec: string): string {
  const abs = path.posix.join(path.posix.dirname(file), spec);
  // ESM imports name the compiled .js; the bundle's name no extension
  const base = abs.replace(/\.js$/, '');
  for (const ext of ['.ts', '.tsx']) if (existsSync(path.join(SRC, base + ext))) return base + ext;
  return abs;
}

const areaOf = (p: string): string => p.split('/')[0]!;

/** The areas each area imports (the console's pages aside). */
export function areaEdges(imports: Import[]): Map<string, Set<string>> {
  const edges = new Map<string, Set<string>>();
  for (const i of imports) {
    const [a, b] = [areaOf(i.from), areaOf(i.to)];
    if (i.from.startsWith(WEB) || i.to.startsWith('..')) continue;
    if (!edges.has(a)) edges.set(a, new Set());
    if (a !== b) edges.get(a)!.add(b);
  }
  return edges;
}

/** Every rule broken by these imports, one line each. */
export function violations(imports: Import[]): string[] {
  const bad: string[] = [];
  const edges = areaEdges(imports);
  for (const i of imports) {
    const where = `src/${i.from}:${i.line} -> ${i.to}`;
    if (i.from.startsWith(WEB)) {
      if (!i.to.startsWith(WEB) && !(i.to === WEB_TYPES && i.typeOnly)) bad.push(`${where}: the console's pages import only their own files and, type-only, ${WEB_TYPES}`);
      continue;
    }
    if (i.to.startsWith('..')) {
      bad.push(`${where}: src/ imports nothing outside it by a relative path`);
      continue;
    }
    if (i.from === WEB_TYPES) bad.push(`${where}: ${WEB_TYPES} is type-only and imports nothing (the pages import it)`);
    if (i.to.startsWith(WEB)) bad.push(`${where}: the pages are a browser bundle; nothing imports them`);
    const [a, b] = [areaOf(i.from), areaOf(i.to)];
    if (a === b) continue;
    if (!/^[^/]+\/index\.ts$/.test(i.to)) bad.push(`${where}: import ${b}'s index.ts, not its internals`);
    if (INTERFACES.has(b) && !INTERFACES.has(a)) bad.push(`${where}: a service (${a}) never imports ${b}`);
    if (ONLY[a] && !ONLY[a].includes(b)) bad.push(`${where}: ${a} imports only ${ONLY[a].join(', ') || 'nothing of other areas'}`);
  }
  for (const [a, b] of APART) if (reaches(edges, a, b)) bad.push(`${a} imports ${b} (through ${pathTo(edges, a, b)!.join(' -> ')})`);
  for (const cycle of cycles(edges)) bad.push(`an import cycle between areas: ${cycle.join(', ')}`);
  return bad;
}

function pathTo(edges: Map<string, Set<string>>, from: string, to: string): string[] | undefined {
  const prev = new Map<string, string>([[from, '']]);
  const queue = [from];
  while (queue.length) {
    const v = queue.shift()!;
    if (v === to) {
      const p = [v];
      for (let w = prev.get(v)!; w; w = prev.get(w)!) p.unshift(w);
      return p;
    }
    for (const w of edges.get(v) ?? []) if (!prev.has(w)) (prev.set(w, v), queue.push(w));
  }
  return undefined;
}
const reaches = (edges: Map<string, Set<string>>, from: string, to: string): boolean => pathTo(edges, from, to) !== undefined;

/** Strongly connected components of more than one area (Tarjan). */
export function cycles(edges: Map<string, Set<string>>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  let n = 0;
  const visit = (v: string): void => {
    index.set(v, n);
    low.set(v, n++);
    stack.push(v);
    on.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const c: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        c.push(w);
      } while (w !== v);
      if (c.length > 1) out.push(c.sort());
    }
  };
  for (const v of edges.keys()) if (!index.has(v)) visit(v);
  return out;
}

function sources(dir = ''): string[] {
  return readdirSync(path.join(SRC, dir)).flatMap((f) => {
    const rel = dir ? `${dir}/${f}` : f;
    if (statSync(path.join(SRC, rel)).isDirectory()) return sources(rel);
    return /\.tsx?$/.test(f) ? [rel] : [];
  });
}

const srcImports = (): Import[] => sources().flatMap((f) => importsOf(f, readFileSync(path.join(SRC, f), 'utf8')));

test('src/ keeps the architecture rules: areas import each other through index.ts, without cycles, services never import cli/server/console, serving and training never import each other', () => {
  const imports = srcImports();
  assert.ok(imports.length > 500, `${imports.length} imports: the scan found too little`);
  assert.deepEqual(violations(imports), []);
});

test("docs/ARCHITECTURE.md's listing of areas and their arrows is what src/ imports", () => {
  const edges = areaEdges(srcImports());
  // lowest layer first: an area after all it imports, then by name
  const level = new Map<string, number>();
  const depth = (a: string): number => level.get(a) ?? (level.set(a, Math.max(-1, ...[...(edges.get(a) ?? [])].map(depth)) + 1), level.get(a)!);
  const listing = [...edges.keys()]
    .sort((a, b) => depth(a) - depth(b) || a.localeCompare(b))
    .map((a) => `${a.padEnd(12)} -> ${[...edges.get(a)!].sort().join(' ') || '(nothing)'}`);
  const doc = readFileSync(new URL('../../docs/ARCHITECTURE.md', import.meta.url), 'utf8');
  const block = /<!-- areas:begin -->\n```\n([\s\S]*?)```\n<!-- areas:end -->/.exec(doc);
  assert.ok(block, 'docs/ARCHITECTURE.md has its <!-- areas:begin --> listing');
  assert.equal(block[1], listing.join('\n') + '\n', `update the listing in docs/ARCHITECTURE.md to:\n${listing.join('\n')}`);
});

test('the architecture check catches each kind of broken rule', () => {
  const imp = (from: string, to: string, typeOnly = false): Import => ({ from, to, typeOnly, line: 1 });
  const text = "import { a } from '../core/errors.js';\nimport type { B } from '../../api-types';\nexport { c } from './c.js';\nconst d = await import('../store/index.js');\n";
  assert.deepEqual(
    importsOf('serving/x.ts', text).map((i) => [i.to, i.typeOnly, i.line]),
    [
      ['core/errors.ts', false, 1],
      ['../api-types', true, 2],
      ['serving/c.js', false, 3],
      ['store/index.ts', false, 4],
    ],
  );
  const caught = (...imports: Import[]): string => violations(imports).join('\n');
  assert.match(caught(imp('serving/a.ts', 'core/errors.ts')), /import core's index.ts/);
  assert.match(caught(imp('serving/a.ts', 'registry/index.ts'), imp('registry/a.ts', 'training/index.ts')), /serving imports training \(through serving -> registry -> training\)/);
  assert.match(caught(imp('tuning/a.ts', 'server/index.ts')), /a service \(tuning\) never imports server/);
  assert.match(caught(imp('data/a.ts', 'registry/index.ts'), imp('registry/a.ts', 'data/index.ts')), /an import cycle between areas: data, registry/);
  assert.match(caught(imp('inference/a.ts', 'registry/index.ts')), /inference imports only core, onnx, store/);
  assert.match(caught(imp('console/web/pages/a.tsx', 'console/api-types.ts')), /the console's pages import only/);
  assert.match(caught(imp('console/web/pages/a.tsx', 'core/index.ts', true)), /the console's pages import only/);
  assert.equal(caught(imp('console/web/pages/a.tsx', 'console/api-types.ts', true), imp('console/web/a.tsx', 'console/web/b.tsx'), imp('cli/a.ts', 'serving/index.ts')), '');
});
