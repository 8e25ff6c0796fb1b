#!/usr/bin/env node
// Runs the node:test suites under test/ through tsx. Node 20's test runner does not expand
// globs, so the files are collected here. Arguments narrow the run to files or folders:
//   node scripts/test.mjs test/foundation test/data/import.test.ts
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const collect = (p) =>
  statSync(p).isDirectory()
    ? readdirSync(p).sort().flatMap((f) => collect(join(p, f)))
    : p.endsWith('.test.ts') ? [p] : [];

const roots = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const files = (roots.length ? roots : ['test']).flatMap(collect);
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
const flags = process.argv.slice(2).filter((a) => a.startsWith('-'));
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', ...flags, ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
