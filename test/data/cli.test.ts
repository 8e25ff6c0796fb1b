import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot, tmpHome } from '../helpers/paths.js';
import { breedsMini } from './fixtures.js';

function kennel(args: string[], home: string) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'src/cli/main.ts'), ...args], {
    cwd: repoRoot,
    env: { ...process.env, KENNEL_HOME: home, KENNEL_DEBUG: '' },
    encoding: 'utf8',
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('data import --json prints the contract keys, and nothing else on stdout', () => {
  const home = tmpHome();
  const r = kennel(['data', 'import', breedsMini(), '--name', 'x', '--json'], home);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '', '--json runs print no progress');
  const out = JSON.parse(r.stdout) as Record<string, unknown>;
  for (const key of ['dataset', 'version', 'classes', 'images', 'skipped']) assert.ok(key in out, `has "${key}"`);
  assert.equal(out.dataset, 'x');
  assert.equal(out.version, 1);
  assert.equal(out.classes, 25);
  assert.deepEqual(out.images, { train: 100, valid: 25, test: 25 });
  assert.deepEqual(out.skipped, []);

  const list = kennel(['data', 'list', '--json'], home);
  assert.deepEqual(JSON.parse(list.stdout), [{ name: 'x', versions: 1, latest: 1, classes: 25, images: { train: 100, valid: 25, test: 25 } }]);
  const show = kennel(['data', 'show', 'x@1'], home);
  assert.equal(show.code, 0, show.stderr);
  assert.match(show.stdout, /^x@1 {2}created /);
  assert.match(show.stdout, /0 +Australian Shepherd +4 +1 +1/);
});

test('a bad source path exits 1 with one error line and no stack trace', () => {
  const r = kennel(['data', 'import', '/no/such/folder', '--name', 'x'], tmpHome());
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.filter((l) => l.startsWith('error:')).length, 1);
  assert.equal(lines[0], 'error: /no/such/folder does not exist.');
  assert.ok(!/\n\s+at /.test(r.stderr), 'no stack trace');

  const bad = kennel(['data', 'show', 'nope'], tmpHome());
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^error: dataset "nope" was not found\.\n {2}No dataset has been imported yet/);
});
