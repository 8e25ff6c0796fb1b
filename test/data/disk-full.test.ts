import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import Fastify from 'fastify';
import { reportError } from '../../src/cli/output.js';
import { importDataset } from '../../src/data/index.js';
import { sendError } from '../../src/server/errors.js';
import { openWorkspace } from '../../src/store/index.js';
import { repoRoot, sharedDir, tmpDir, tmpHome } from '../helpers/paths.js';
import { makeZip } from '../helpers/zip.js';
import { distinctJpeg } from './fixtures.js';

const enospc = () => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
const DISK_FULL = /^error: The disk holding \$KENNEL_HOME \((.+)\) is full: free space, or run `kennel gc --yes` to remove unreferenced artifacts\.$/;

/** Every file under `dir` (recursively), relative. */
const filesUnder = (dir: string): string[] => readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(dir.length + 1));

/** What reportError prints and returns. */
function reported(e: unknown): { code: number; text: string } {
  let text = '';
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string) => ((text += chunk), true)) as typeof process.stderr.write;
  try {
    return { code: reportError(e), text };
  } finally {
    process.stderr.write = write;
  }
}

test('disk full (fault-injected write): one sentence saying what is full and what to free; the failed zip import leaves no temp files', async () => {
  const home = tmpHome();
  const ws = openWorkspace(home);
  const zip = join(tmpDir(), 'pets.zip');
  writeFileSync(zip, makeZip([{ name: 'cats/0.jpg', data: await distinctJpeg(1) }, { name: 'dogs/0.jpg', data: await distinctJpeg(2) }]));
  ws.artifacts.put = async () => {
    throw enospc();
  };
  const previous = process.env.KENNEL_HOME;
  process.env.KENNEL_HOME = home;
  try {
    const failure = await importDataset(ws, zip, { name: 'pets' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(failure, 'the import failed');
    assert.deepEqual(readdirSync(ws.tmpDir), [], 'the extraction folder is removed');
    assert.deepEqual(filesUnder(join(home, 'artifacts')).filter((f) => f.endsWith('.tmp')), []);
    const { code, text } = reported(failure);
    assert.equal(code, 1);
    const lines = text.trimEnd().split('\n');
    assert.match(lines[0]!, DISK_FULL);
    assert.equal(DISK_FULL.exec(lines[0]!)![1], home);
    assert.doesNotMatch(text, /unexpected|ENOSPC/);
    // the same when only the text came through (a worker process's failure), and for its kin
    assert.match(reported(new Error('Task x failed on 3 attempts: ENOSPC: no space left on device, write')).text, /is full: free space/);
    assert.match(reported(Object.assign(new Error('EACCES: permission denied, open \'/srv/k/x\''), { code: 'EACCES', path: '/srv/k/x' })).text, /^error: Permission denied on \/srv\/k\/x\.\n {2}Give your user access/);
    assert.match(reported(new Error("The rules config r.json could not be read: EACCES: permission denied, open '/srv/r.json'.")).text, /^error: Permission denied on \/srv\/r\.json\./);
    assert.match(reported(Object.assign(new Error('EMFILE: too many open files'), { code: 'EMFILE' })).text, /Too many files are open/);
    assert.match(reported(Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' })).text, /is full: free space/);
    assert.match(reported(new Error('dataset "EPERM" was not found')).text, /This is unexpected/, 'a code in other words is not mistaken for one');
  } finally {
    if (previous === undefined) delete process.env.KENNEL_HOME;
    else process.env.KENNEL_HOME = previous;
    ws.close();
  }
});

test('disk full over HTTP: 507 with a JSON error saying what to free, and the server keeps serving', async () => {
  const app = Fastify();
  app.setErrorHandler((err, req, reply) => sendError(err, req, reply));
  app.post('/write', async () => {
    throw enospc();
  });
  app.get('/ok', async () => ({ ok: true }));
  const res = await app.inject({ method: 'POST', url: '/write' });
  assert.equal(res.statusCode, 507);
  assert.equal(res.json().error.code, 'disk_full');
  assert.match(res.json().error.message, /is full: free space, or run `kennel gc --yes`/);
  assert.equal((await app.inject({ method: 'GET', url: '/ok' })).statusCode, 200);
  await app.close();
});

test('disk full for real: kennel data import into a 2 MB tmpfs', (t) => {
  const mnt = tmpDir('kennel-tmpfs-');
  const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt], { encoding: 'utf8' });
  if (mount.status !== 0) {
    t.skip(`cannot mount a tmpfs here (needs root): ${(mount.stderr || mount.error?.message || '').trim()}; the fault-injected test covers the same path`);
    return;
  }
  try {
    const home = join(mnt, 'home');
    mkdirSync(home);
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'src/cli/main.ts'), 'data', 'import', join(sharedDir(), 'data/breeds-mini'), '--name', 'breeds'], {
      cwd: repoRoot,
      env: { ...process.env, KENNEL_HOME: home, KENNEL_DEBUG: '' },
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.equal(r.status, 1, r.stderr);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('error: '));
    assert.equal(errors.length, 1, r.stderr);
    assert.match(errors[0]!, DISK_FULL);
    assert.doesNotMatch(r.stderr, /unexpected|ENOSPC/);
    assert.deepEqual(filesUnder(home).filter((f) => f.endsWith('.tmp') || f.startsWith('tmp/')), [], 'no temp files left');
  } finally {
    spawnSync('umount', [mnt]);
    rmSync(mnt, { recursive: true, force: true });
  }
});
