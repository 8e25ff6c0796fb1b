import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { addBackbone } from '../../src/backbones/index.js';
import { importDataset } from '../../src/data/index.js';
import { daemonPaths, isAlive, readState } from '../../src/server/index.js';
import { train } from '../../src/training/index.js';
import { repoRoot, sharedDir, tmpDir, tmpHome } from '../helpers/paths.js';
import { childrenOf, killGroup, mobilenetPath, photo, workspaceWithModel } from './fixtures.js';

/**
 * The CLI contract: kennel up --detach returns once both ports answer; endpoints
 * create/describe/list/update/delete; invoke prints the answer or fails with the error on
 * stderr; kennel down; a restarted daemon brings its endpoints back.
 */
let home: string;
let port: number;
let adminPort: number;
/** the key `kennel invoke` sends ($KENNEL_API_KEY), once created */
let apiKey: string | undefined;
const breedsTest = path.join(sharedDir(), 'data/breeds-mini/test');

function kennel(args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src/cli/main.ts'), ...args], { env: { ...process.env, KENNEL_HOME: home, ...(apiKey ? { KENNEL_API_KEY: apiKey } : {}) }, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function kennelJson<T>(args: string[]): T {
  const r = kennel([...args, '--json']);
  assert.equal(r.code, 0, `kennel ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

interface Described {
  status: string;
  replicas: Array<{ pid: number; state: string; model: string; variant: string }>;
  variants: Array<{ name: string; model: string }>;
}

before(async () => {
  home = tmpHome();
  // a Kennel-trained model (breeds) and an imported one (mnet)
  const ws = await workspaceWithModel(home, 'mnet', 'c');
  await importDataset(ws, path.join(sharedDir(), 'data/breeds-mini'), { name: 'breeds' });
  await addBackbone(ws, mobilenetPath(), { name: 'mobilenetv2-12-int8' });
  await train(ws, { dataset: 'breeds', backbone: 'mobilenetv2-12-int8', epochs: 10 });
  ws.close();
  [port, adminPort] = [await freePort(), await freePort()];
});

after(() => {
  const state = readState(home);
  if (state && isAlive(state.pid)) killGroup(state.pid);
});

test('kennel up --detach starts the daemon, returning once both ports answer', async () => {
  const r = kennelJson<{ pid: number; port: number; adminPort: number; host: string }>(['up', '--port', String(port), '--admin-port', String(adminPort), '--detach']);
  assert.deepEqual([r.port, r.adminPort, r.host], [port, adminPort, '127.0.0.1']);
  assert.ok(isAlive(r.pid));
  assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
  assert.equal((await fetch(`http://127.0.0.1:${adminPort}/healthz`)).status, 200);
  const token = daemonPaths(home).token;
  assert.equal(statSync(token).mode & 0o777, 0o600, 'the admin token is readable by its owner only');
  // a second start (the quick start run twice) reports the running daemon and succeeds
  const again = kennel(['up', '--port', String(port), '--admin-port', String(adminPort), '--detach']);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, new RegExp(`^Kennel daemon already running \\(pid ${r.pid}\\)`));
});

test('the admin API refuses requests without the admin token', async () => {
  for (const authorization of [undefined, 'Bearer wrong-token', 'Basic abc']) {
    const res = await fetch(`http://127.0.0.1:${adminPort}/v1/endpoints`, { headers: authorization ? { authorization } : {} });
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'unauthorized');
  }
});

test('endpoints create, describe and list; invoke classifies with the deployed model', () => {
  const created = kennelJson<Described>(['endpoints', 'create', 'dogs', '--model', 'breeds', '--instances', '2']);
  assert.equal(created.status, 'in_service');
  const d = kennelJson<Described>(['endpoints', 'describe', 'dogs']);
  assert.equal(d.replicas.length, 2);
  const daemonPid = readState(home)!.pid;
  for (const r of d.replicas) {
    assert.equal(r.state, 'ready');
    assert.equal(r.model, 'breeds@1');
    assert.ok(childrenOf(daemonPid).includes(r.pid), 'a replica is a process of the daemon');
  }
  const listed = kennelJson<{ endpoints: Described[] }>(['endpoints', 'list']);
  assert.deepEqual(listed.endpoints.map((e) => e.variants[0]!.model), ['breeds@1']);

  const breed = readdirSync(breedsTest)[0]!;
  const file = path.join(breedsTest, breed, readdirSync(path.join(breedsTest, breed))[0]!);
  // the data plane needs a key allowed endpoint:Invoke; kennel invoke sends $KENNEL_API_KEY or --key,
  // and without one the workspace owner (this user) is served through the admin API
  const owner = kennel(['invoke', 'dogs', file]);
  assert.equal(owner.code, 0, owner.stderr);
  assert.match(owner.stderr, /^note: no API key given; invoking as the workspace owner through the admin API/);
  const wrongKey = kennel(['invoke', 'dogs', file, '--key', 'kn_abc_def']);
  assert.equal(wrongKey.code, 1);
  assert.match(wrongKey.stderr, /^error: .*\n  Pass a key allowed endpoint:Invoke on endpoint\/dogs with --key KEY or the KENNEL_API_KEY environment variable/);
  const { key } = kennelJson<{ key: string }>(['keys', 'create', 'cli-user', '--allow', 'endpoint:Invoke:endpoint/*', '--expires', '1d']);
  assert.equal(kennel(['invoke', 'dogs', file, '--key', key]).code, 0);
  apiKey = key;
  const answer = kennelJson<{ predictions: Array<{ label: string; score: number }>; model: string; variant: string }>(['invoke', 'dogs', file, '--top-k', '3']);
  assert.equal(answer.model, 'breeds@1');
  assert.equal(answer.variant, 'primary');
  assert.equal(answer.predictions.length, 3);
  assert.ok(answer.predictions.some((p) => p.label === breed.replace(/^\d+\./, '').replace(/_/g, ' ')), `${breed} in ${JSON.stringify(answer.predictions)}`);
  const human = kennel(['invoke', 'dogs', file]);
  assert.equal(human.code, 0);
  assert.match(human.stdout, /breeds@1 \(variant primary\)\n\s+\d+\.\d%  /);
});

test('kennel invoke exits non-zero with the error on stderr for a 4xx answer', () => {
  const text = path.join(tmpDir(), 'notes.txt');
  writeFileSync(text, 'not a photo');
  const bad = kennel(['invoke', 'dogs', text, '--json']);
  assert.equal(bad.code, 1);
  assert.equal(bad.stdout, '');
  assert.match(bad.stderr, /^error: The body is not a JPEG, PNG, WebP, GIF, TIFF or AVIF image\.\n {2}\S/);
  const missing = kennel(['invoke', 'cats', text]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^error: Endpoint cats was not found\./);
  const truncated = path.join(tmpDir(), 'cut.jpg');
  writeFileSync(truncated, photo().subarray(0, 3000));
  assert.match(kennel(['invoke', 'dogs', truncated]).stderr, /^error: The image could not be decoded/);
});

test('endpoints update rolls out a new model; delete removes the endpoint', () => {
  const updated = kennelJson<Described>(['endpoints', 'update', 'dogs', '--model', 'mnet', '--instances', '1', '--variant', 'canary=breeds:latest:1']);
  assert.deepEqual(updated.variants.map((v) => [v.name, v.model]), [['primary', 'mnet@1'], ['canary', 'breeds@1']]);
  assert.ok(updated.replicas.every((r) => r.state === 'ready'));
  assert.deepEqual(updated.replicas.map((r) => r.variant).sort(), ['canary', 'primary']);
  const bad = kennel(['endpoints', 'update', 'dogs', '--model', 'nope']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^error: Model nope was not found\./);
  kennelJson(['endpoints', 'create', 'spare', '--model', 'mnet', '--no-wait']);
  assert.deepEqual(kennelJson<{ deleted: string }>(['endpoints', 'delete', 'spare']), { deleted: 'spare' });
  assert.match(kennel(['endpoints', 'describe', 'spare']).stderr, /^error: Endpoint spare was not found/);
});

test('kennel down stops the daemon and its replicas; kennel up brings the endpoints back', async () => {
  const before = readState(home)!;
  const replicas = kennelJson<Described>(['endpoints', 'describe', 'dogs']).replicas.map((r) => r.pid);
  assert.deepEqual(kennelJson(['down']), { stopped: true, pid: before.pid });
  assert.equal(isAlive(before.pid), false);
  for (const pid of replicas) assert.equal(isAlive(pid), false, `replica ${pid} stopped`);
  assert.equal(readState(home), undefined);
  assert.deepEqual(kennelJson(['down']), { stopped: false });
  assert.match(kennel(['endpoints', 'list']).stderr, /^error: No Kennel daemon is running for .*\n {2}Start one with kennel up/);

  kennelJson(['up', '--port', String(port), '--admin-port', String(adminPort), '--detach']);
  const d = kennelJson<Described>(['endpoints', 'describe', 'dogs']);
  assert.deepEqual(d.variants.map((v) => [v.name, v.model]), [['primary', 'mnet@1'], ['canary', 'breeds@1']]);
  const photoFile = path.join(tmpDir(), 'beagle.jpg');
  writeFileSync(photoFile, photo());
  const answer = kennelJson<{ model: string }>(['invoke', 'dogs', photoFile]);
  assert.ok(['mnet@1', 'breeds@1'].includes(answer.model));
  kennelJson(['down']);
});
