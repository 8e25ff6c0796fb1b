import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { createNetwork } from '../../bench/lib/netns.ts';
import { tmpHome } from '../helpers/paths.ts';
import { S3_CREDENTIALS, startS3, type S3Server } from '../helpers/s3.ts';
import { breedsMini, kennelCommand, kennelJson, mobilenet, modelOutcome, startProcess, type Proc } from './helpers.ts';

/**
 * Four hosts on one machine (network namespaces on a bridge, each with its own address and
 * folder): Redis and the S3 server on `svc`, the coordinator on `coord`, `kennel worker` on `w1`
 * and `w2`, with no shared folder. Needs root and iproute2; .ci/run provides both.
 */

const filesUnder = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name)) : []);

function featureChunks(home: string): string[] {
  const db = new Database(path.join(home, 'kennel.db'), { readonly: true });
  try {
    return (db.prepare('SELECT cache_key, chunk, artifact_sha FROM feature_chunks ORDER BY cache_key, chunk').all() as Array<{ cache_key: string; chunk: number; artifact_sha: string }>).map((r) => `${r.cache_key}/${r.chunk}=${r.artifact_sha}`);
  } finally {
    db.close();
  }
}

function clearChunks(home: string): void {
  const db = new Database(path.join(home, 'kennel.db'));
  db.prepare('DELETE FROM feature_chunks').run();
  db.close();
}

/** Resolves once `re` appears in the output printed after `from` characters. */
async function printed(p: Proc, from: number, re: RegExp, timeoutMs = 120_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!re.test(p.output().slice(from))) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${re}:\n${p.output().slice(from)}`);
    if (p.child.exitCode !== null) throw new Error(`exited before ${re}:\n${p.output().slice(from)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('hosts in network namespaces, no shared folder: kennel train --instances 2 --queue gives the local metrics; a worker cut off mid-task and a Redis restart change nothing', { timeout: 1_200_000 }, async () => {
  const net = createNetwork(['svc', 'coord', 'w1', 'w2']);
  const { svc, coord, w1, w2 } = net.hosts as Record<'svc' | 'coord' | 'w1' | 'w2', NonNullable<(typeof net.hosts)[string]>>;
  const procs: Proc[] = [];
  let s3: S3Server | undefined;
  const run = (host: typeof svc, cmd: string[], env: Record<string, string> = {}): Proc => {
    const [c, ...args] = [...host.via, ...cmd];
    const p = startProcess(c!, args, { HOME: host.dir, ...env }, { cwd: host.dir, bare: true });
    procs.push(p);
    return p;
  };
  const startRedis = async () => {
    // protected mode refuses clients from other addresses without a password: this network is the test's own
    const p = run(svc, ['redis-server', '--port', '6379', '--bind', svc.address, '--protected-mode', 'no', '--save', '', '--appendonly', 'no']);
    await p.waitFor(/Ready to accept connections/, 15_000);
    return p;
  };
  try {
    let redis = await startRedis();
    s3 = await startS3({ via: svc.via, address: svc.address, dir: path.join(svc.dir, 's3') });
    const endpoint = s3.endpoint;
    const queue = `redis://${svc.address}:6379`;
    const bucket = 's3://kennel/hosts';
    const home = path.join(coord.dir, 'kennel');
    const coordEnv = { ...S3_CREDENTIALS, KENNEL_HOME: home, KENNEL_ARTIFACTS: bucket, AWS_ENDPOINT_URL: endpoint };
    const coordinator = async (args: string[]): Promise<Record<string, any>> => {
      const p = run(coord, kennelCommand([...args, '--json']), coordEnv);
      const code = await p.exited;
      assert.equal(code, 0, `kennel ${args.join(' ')} on the coordinator:\n${p.output()}`);
      return JSON.parse(p.stdout()) as Record<string, any>;
    };
    const worker = async (host: typeof svc) => {
      const p = run(host, kennelCommand(['worker', '--queue', queue, '--artifacts', bucket, '--artifacts-endpoint', endpoint, '--cache', path.join(host.dir, 'cache'), '--threads', '1', '--name', host.name, '--lock-seconds', '2']), { ...S3_CREDENTIALS });
      await p.waitFor(/waiting for tasks/);
      return p;
    };

    // the reference: one process, the workspace folder, no network
    const args = ['train', '--dataset', 'breeds', '--backbone', 'mnv2', '--augment', '2', '--seed', '9', '--new-version'];
    const localHome = tmpHome();
    await kennelJson(localHome, ['data', 'import', breedsMini(), '--name', 'breeds']);
    await kennelJson(localHome, ['backbones', 'add', mobilenet(), '--name', 'mnv2']);
    const local = await kennelJson<Record<string, any>>(localHome, [...args, '--instances', '1']);
    const reference = featureChunks(localHome);

    await coordinator(['data', 'import', breedsMini(), '--name', 'breeds']);
    await coordinator(['backbones', 'add', mobilenet(), '--name', 'mnv2']);
    const [p1, p2] = await Promise.all([worker(w1), worker(w2)]);

    // 1. two worker hosts
    const distributed = await coordinator([...args, '--instances', '2', '--queue', queue]);
    assert.equal(distributed.features.backend, 'redis');
    assert.equal(distributed.features.extractedImages, 350);
    assert.deepEqual(distributed.features.workers.map((w: { worker: string }) => w.worker).sort(), ['w1', 'w2']);
    assert.deepEqual(modelOutcome(distributed), modelOutcome(local));
    assert.deepEqual(featureChunks(home), reference, 'bit-identical features');

    // 2. w1's link is cut while it runs a task: its lock expires and w2 runs the task again
    clearChunks(home);
    const mark = p1.output().length;
    const cutRun = coordinator([...args, '--instances', '2', '--queue', queue]);
    await printed(p1, mark, /start features/);
    net.cut('w1');
    const afterCut = await cutRun;
    assert.equal(afterCut.features.extractedImages, 350);
    assert.deepEqual(afterCut.features.workers.map((w: { worker: string }) => w.worker), ['w2'], 'w2 did all of it, the cut task included');
    assert.deepEqual(modelOutcome(afterCut), modelOutcome(local));
    assert.deepEqual(featureChunks(home), reference);
    net.restore('w1');

    // 3. Redis restarts (without persistence: every job is lost) during a run
    clearChunks(home);
    const mark2 = p2.output().length;
    const restartRun = coordinator([...args, '--instances', '2', '--queue', queue]);
    await printed(p2, mark2, /start features/);
    redis.child.kill('SIGKILL');
    await redis.exited;
    redis = await startRedis();
    const afterRestart = await restartRun;
    assert.equal(afterRestart.features.backend, 'redis');
    assert.deepEqual(modelOutcome(afterRestart), modelOutcome(local));
    assert.deepEqual(featureChunks(home), reference);

    // each host kept only its own things: the coordinator its metadata, the workers their caches
    assert.deepEqual(filesUnder(path.join(home, 'artifacts')), [], 'no artifact on the coordinator\'s disk but its cache');
    for (const h of [w1, w2]) {
      const own = filesUnder(h.dir).filter((f) => !f.startsWith(path.join(h.dir, 'cache')) && !f.startsWith(path.join(h.dir, '.cache', 'Microsoft')));
      assert.deepEqual(own, [], `only the cache on ${h.name}`);
    }
    p2.child.kill('SIGTERM');
    assert.equal(await p2.exited, 0);
  } finally {
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.exited));
    await s3?.stop();
    net.destroy();
  }
});
