import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { tmpDir, tmpHome } from '../helpers/paths.ts';
import { startS3 } from '../helpers/s3.ts';
import { breedsMini, hasRedis, kennelCommand, kennelJson, mobilenet, modelOutcome, NO_REDIS, startProcess, startRedis, type Proc } from './helpers.ts';

const filesUnder = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name)) : []);

/**
 * `kennel worker` with no --home and no KENNEL_HOME, in its own folder (cwd, HOME and cache) and
 * with only PATH and the credentials in its environment: what it needs comes from Redis and the bucket.
 */
async function startHomelessWorker(queue: string, bucket: string, endpoint: string, name: string, credentials: Record<string, string>): Promise<{ proc: Proc; dir: string }> {
  const dir = tmpDir(`kennel-worker-${name}-`);
  const [cmd, ...args] = kennelCommand(['worker', '--queue', queue, '--artifacts', bucket, '--artifacts-endpoint', endpoint, '--cache', path.join(dir, 'cache'), '--threads', '1', '--name', name, '--lock-seconds', '2']);
  const proc = startProcess(cmd!, args, { HOME: dir, ...credentials }, { cwd: dir, bare: true });
  await proc.waitFor(/waiting for tasks/);
  return { proc, dir };
}

const chunks = (home: string): string[] => {
  const db = new Database(path.join(home, 'kennel.db'), { readonly: true });
  try {
    return (db.prepare('SELECT cache_key AS key, chunk, artifact_sha FROM feature_chunks ORDER BY cache_key, chunk').all() as Array<{ key: string; chunk: number; artifact_sha: string }>).map((r) => `${r.key}/${r.chunk}=${r.artifact_sha}`);
  } finally {
    db.close();
  }
};

const clearChunks = (home: string) => {
  const db = new Database(path.join(home, 'kennel.db'));
  db.prepare('DELETE FROM feature_chunks').run();
  db.close();
};

test('no shared folder: data import, backbones add, train and tune on an S3 store; two kennel worker processes with no --home give the local store\'s features and metrics', { skip: hasRedis ? false : NO_REDIS, timeout: 600_000 }, async () => {
  const s3 = await startS3();
  const redis = await startRedis();
  const bucket = 's3://kennel/e2e';
  const env = { ...s3.env, KENNEL_ARTIFACTS: bucket };
  const workers: Array<{ proc: Proc; dir: string }> = [];
  try {
    // the reference: the workspace folder, everything in this process's machine
    const localHome = tmpHome();
    const args = ['train', '--dataset', 'breeds', '--backbone', 'mnv2', '--augment', '2', '--seed', '9', '--new-version'];
    await kennelJson(localHome, ['data', 'import', breedsMini(), '--name', 'breeds']);
    await kennelJson(localHome, ['backbones', 'add', mobilenet(), '--name', 'mnv2']);
    const local = await kennelJson<Record<string, any>>(localHome, [...args, '--instances', '1']);

    // the coordinator: metadata in its KENNEL_HOME, every artifact in the bucket
    const home = tmpHome();
    await kennelJson(home, ['data', 'import', breedsMini(), '--name', 'breeds'], env);
    await kennelJson(home, ['backbones', 'add', mobilenet(), '--name', 'mnv2'], env);
    const inline = await kennelJson<Record<string, any>>(home, [...args, '--instances', '1'], env);
    assert.deepEqual(modelOutcome(inline), modelOutcome(local), 'the S3 store trains what the folder trains');
    assert.deepEqual(chunks(home), chunks(localHome), 'bit-identical feature chunks (the same sha256s)');
    assert.deepEqual(filesUnder(path.join(home, 'artifacts')), [], 'no artifact in the coordinator\'s folder');
    const features = chunks(home);
    clearChunks(home);

    // two workers, each with only its own folder: the credentials, and the endpoint as a flag
    const credentials = { AWS_ACCESS_KEY_ID: s3.env.AWS_ACCESS_KEY_ID!, AWS_SECRET_ACCESS_KEY: s3.env.AWS_SECRET_ACCESS_KEY!, AWS_REGION: s3.env.AWS_REGION! };
    workers.push(...(await Promise.all(['alpha', 'beta'].map((n) => startHomelessWorker(redis.url, bucket, s3.endpoint, n, credentials)))));
    const viaRedis = await kennelJson<Record<string, any>>(home, [...args, '--instances', '2', '--queue', redis.url], env);
    assert.equal(viaRedis.features.backend, 'redis');
    assert.equal(viaRedis.features.extractedImages, 350);
    assert.deepEqual(viaRedis.features.workers.map((w: { worker: string }) => w.worker).sort(), ['alpha', 'beta'], 'both workers took shards');
    assert.deepEqual(modelOutcome(viaRedis), modelOutcome(local));
    assert.deepEqual(chunks(home), features, 'the workers wrote the same feature chunks');

    // tuning trials through the same workers give what a local pool (its processes on the S3 store too) gives
    const tuneArgs = ['tune', '--dataset', 'breeds', '--backbone', 'mnv2', '--objective', 'valid.loss', '--param', 'lr=loguniform:1e-3:3e-2', '--param', 'epochs=int:2:5', '--max-trials', '4', '--max-parallel', '2', '--seed', '4'];
    const tuned = async (extra: string[]) => {
      const { job } = await kennelJson<{ job: string }>(home, [...tuneArgs, ...extra], env);
      return kennelJson<{ trials: Array<Record<string, unknown>> }>(home, ['tune', 'show', job], env);
    };
    const tunedRedis = await tuned(['--queue', redis.url]);
    const tunedLocal = await tuned([]);
    const key = (r: typeof tunedLocal) => r.trials.map((t) => [t.params, t.status, t.objective, t.epochs]);
    assert.equal(tunedRedis.trials.length, 4);
    assert.deepEqual(key(tunedRedis), key(tunedLocal));

    // batch transform: shards of the dataset's images run on the same workers, their results come back through the bucket
    const out = (name: string) => path.join(tmpDir('kennel-transform-'), name);
    const transformArgs = ['transform', '--model', viaRedis.model, '--dataset', 'breeds', '--shard-size', '40'];
    const transformedRedis = await kennelJson<{ images: number; failed: number; backend: string; workers: number; out: string }>(home, [...transformArgs, '--out', out('redis.jsonl'), '--queue', redis.url, '--instances', '2'], env);
    const transformedHere = await kennelJson<{ images: number; out: string }>(home, [...transformArgs, '--out', out('here.jsonl')], env);
    assert.equal(transformedRedis.backend, 'redis');
    assert.equal(transformedRedis.images, transformedHere.images);
    assert.equal(transformedRedis.failed, 0);
    assert.deepEqual(
      readFileSync(transformedRedis.out, 'utf8'),
      readFileSync(transformedHere.out, 'utf8'),
      'the workers write what this process writes',
    );

    for (const w of workers) {
      assert.match(w.proc.output(), /artifacts s3:\/\/kennel\/e2e/);
      const files = filesUnder(w.dir);
      assert.ok(files.some((f) => f.startsWith(path.join(w.dir, 'cache'))), 'the cache was used');
      // ONNX Runtime keeps its own device id under ~/.cache/Microsoft: a library's, machine-local
      const own = files.filter((f) => !f.startsWith(path.join(w.dir, 'cache')) && !f.startsWith(path.join(w.dir, '.cache', 'Microsoft')));
      assert.deepEqual(own, [], `only the cache in ${w.dir}`);
      w.proc.child.kill('SIGTERM');
    }
    assert.deepEqual(await Promise.all(workers.map((w) => w.proc.exited)), [0, 0]);
  } finally {
    for (const w of workers) if (w.proc.child.exitCode === null) w.proc.child.kill('SIGKILL');
    await redis.stop();
    await s3.stop();
  }
});
