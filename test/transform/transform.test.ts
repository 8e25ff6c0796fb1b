import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CancelledError } from '../../src/core/index.js';
import { importDataset } from '../../src/data/index.js';
import { classify } from '../../src/inference/index.js';
import { getModel, type ModelVersion } from '../../src/registry/index.js';
import { getJob, type Workspace } from '../../src/store/index.js';
import { runTransform, type TransformItem, type TransformRequest } from '../../src/transform/index.js';
import { kennel, kennelBin, kennelJson } from '../foundation/cli.js';
import { sharedDir, tmpDir, tmpHome } from '../helpers/paths.js';
import { workspaceWithModel } from '../serving/fixtures.js';
import { hasRedis, kennelProcess, NO_REDIS, startRedis } from '../workers/helpers.js';

/**
 * Batch transform: results in input order equal to classify()'s (what kennel predict writes),
 * bad inputs listed with reasons, the same output from one process or a local pool, and
 * resuming after Ctrl-C and kill -9 without redoing finished shards.
 */
let home: string;
let ws: Workspace;
let mv: ModelVersion;
let photos: string;
let files: string[];

interface Line {
  file: string;
  predictions?: Array<{ label: string; index: number; score: number }>;
  error?: string;
}
const readLines = (file: string): Line[] =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line);

const request = (items: TransformItem[], out: string, source = 'test'): TransformRequest => ({ model: `${mv.name}@${mv.version}`, graph: mv, source, items, out, topK: 3 });

before(async () => {
  home = tmpHome();
  ws = await workspaceWithModel(home);
  mv = getModel(ws, 'mnet@1');
  // 40 real photos and two bad files, in a folder of our own
  photos = tmpDir('kennel-transform-');
  const real = path.join(sharedDir(), 'data/real-photos');
  const sources = readdirSync(real).sort().flatMap((d) => readdirSync(path.join(real, d)).sort().map((f) => path.join(real, d, f))).slice(0, 40);
  sources.forEach((f, i) => copyFileSync(f, path.join(photos, `${String(i).padStart(3, '0')}.jpg`)));
  writeFileSync(path.join(photos, '900-truncated.jpg'), readFileSync(sources[0]!).subarray(0, 3000));
  writeFileSync(path.join(photos, '901-text.jpg'), 'not an image at all');
  files = readdirSync(photos).sort().map((f) => path.join(photos, f));
});

after(() => ws?.close());

describe('results', () => {
  test("one line per input in input order, equal to classify()'s answers; bad inputs listed with reasons", async () => {
    const out = path.join(tmpDir(), 'r.jsonl');
    const r = await runTransform(ws, request(files.map((p) => ({ path: p })), out), { device: 'cpu', shardSize: 16 });
    assert.equal(r.images, 42);
    assert.equal(r.failed, 2);
    assert.equal(r.shards, 3);
    assert.ok(r.seconds > 0 && r.imagesPerSecond > 0);
    assert.deepEqual(r.failures.map((f) => path.basename(f.file)), ['900-truncated.jpg', '901-text.jpg']);
    for (const f of r.failures) assert.match(f.error, /could not be decoded|not a JPEG|decode/i);
    const lines = readLines(out);
    assert.deepEqual(lines.map((l) => l.file), files);
    const expected = await classify(ws, mv, files, { topK: 3 });
    lines.forEach((l, i) => {
      const want = expected[i]!;
      if ('predictions' in want) assert.deepEqual(l.predictions!.map((p) => p.label), want.predictions.map((p) => p.label), l.file);
      else assert.ok(l.error, `${l.file} has an error`);
    });
    // the job record: kind, status, throughput
    const job = getJob(ws, r.job)!;
    assert.equal(job.kind, 'transform');
    assert.equal(job.status, 'completed');
    const result = job.result as { images: number; failed: number; imagesPerSecond: number; seconds: number };
    assert.deepEqual([result.images, result.failed], [42, 2]);
    assert.ok(result.imagesPerSecond > 0);
  });

  test('CSV output, and a local pool of two workers writes the same results as one process', async () => {
    const dir = tmpDir();
    const items = files.map((p) => ({ path: p }));
    const one = await runTransform(ws, request(items, path.join(dir, 'one.csv')), { device: 'cpu', shardSize: 10, instances: 1 });
    const two = await runTransform(ws, request(items, path.join(dir, 'two.csv')), { device: 'cpu', shardSize: 10, instances: 2 });
    assert.equal(one.backend, 'inline');
    assert.equal(two.backend, 'local');
    const a = readFileSync(path.join(dir, 'one.csv'), 'utf8').split('\n');
    const b = readFileSync(path.join(dir, 'two.csv'), 'utf8').split('\n');
    assert.equal(a[0], 'file,label,score,top_k,error');
    assert.equal(a.length, 44); // header, 42 rows, the final newline
    // the same labels in the same order (scores may differ in the last digits between sessions)
    const labels = (rows: string[]) => rows.map((row) => row.split(',').slice(0, 2).join(','));
    assert.deepEqual(labels(b), labels(a));
  });

  test('shards on kennel worker processes through Redis give the same results', { skip: hasRedis ? false : NO_REDIS }, async () => {
    const redis = await startRedis();
    const worker = kennelProcess(home, ['worker', '--queue', redis.url, '--home', home, '--threads', '1', '--name', 'transformer']);
    try {
      await worker.waitFor(/waiting for tasks/);
      const dir = tmpDir();
      const items = files.map((p) => ({ path: p }));
      const viaRedis = await runTransform(ws, request(items, path.join(dir, 'redis.jsonl')), { device: 'cpu', shardSize: 16, instances: 2, queue: redis.url });
      assert.equal(viaRedis.backend, 'redis');
      assert.deepEqual([viaRedis.images, viaRedis.failed], [42, 2]);
      const inline = await runTransform(ws, request(items, path.join(dir, 'inline.jsonl')), { device: 'cpu', shardSize: 16 });
      const top = (file: string) => readLines(file).map((l) => [l.file, l.predictions?.[0]?.label ?? l.error]);
      assert.deepEqual(top(path.join(dir, 'redis.jsonl')), top(path.join(dir, 'inline.jsonl')));
      assert.equal(inline.failed, 2);
    } finally {
      worker.child.kill('SIGKILL');
      await worker.exited;
      await redis.stop();
    }
  });

  test("a dataset version's images, named DATASET@VERSION/PATH", async () => {
    const ds = await importDataset(ws, path.join(sharedDir(), 'data/breeds-mini'), { name: 'mini' });
    const out = path.join(tmpDir(), 'mini.jsonl');
    const r = await runTransform(ws, request(ds.items.map((it) => ({ sha: it.sha256, name: `mini@1/${it.path}` })), out), { device: 'cpu' });
    assert.equal(r.images, ds.items.length);
    assert.equal(r.failed, 0);
    assert.deepEqual(readLines(out).map((l) => l.file), ds.items.map((it) => `mini@1/${it.path}`));
  });

  test('URLs go through the safe fetcher: refused ones are listed with the reason', async () => {
    const out = path.join(tmpDir(), 'urls.jsonl');
    const r = await runTransform(ws, request([{ url: 'http://example.com/dog.jpg' }, { url: 'https://127.0.0.1/dog.jpg' }, { path: files[0]! }], out), { device: 'cpu' });
    assert.equal(r.failed, 2);
    assert.match(r.failures[0]!.error, /https/i);
    assert.match(r.failures[1]!.error, /private|loopback|not allowed|public/i);
    assert.ok(readLines(out)[2]!.predictions);
  });
});

describe('resuming', () => {
  test('after Ctrl-C, the same transform resumes: finished shards are not run again, the output is whole', async () => {
    const dir = tmpDir();
    const items = files.map((p) => ({ path: p }));
    const controller = new AbortController();
    let progressed = 0;
    await assert.rejects(
      runTransform(ws, request(items, path.join(dir, 'r.jsonl')), {
        device: 'cpu',
        shardSize: 8,
        signal: controller.signal,
        // stop once the first shard is done and recorded
        progress: (e) => {
          progressed = e.done;
          if (e.done >= 8) controller.abort();
        },
      }),
      (e) => e instanceof CancelledError,
    );
    assert.ok(progressed >= 8);
    assert.equal(existsSync(path.join(dir, 'r.jsonl')), false, 'no output file until the transform is whole');
    let jobId = '';
    const r = await runTransform(ws, request(items, path.join(dir, 'r.jsonl')), { device: 'cpu', shardSize: 8, onJob: (id, resumed) => { jobId = id; assert.ok(resumed, 'the same job resumes'); } });
    assert.equal(r.job, jobId);
    assert.ok(r.resumedImages >= 8 && r.resumedImages < 42, `resumed ${r.resumedImages}`);
    assert.deepEqual(readLines(path.join(dir, 'r.jsonl')).map((l) => l.file), files);
  });

  test('after kill -9 of kennel transform, running it again resumes and prints {"job","images","failed","seconds"}', async () => {
    const dir = tmpDir();
    const out = path.join(dir, 'k.jsonl');
    // many small shards so the kill lands between them
    const args = ['transform', '--model', 'mnet@1', photos, '--out', out, '--shard-size', '4', '--json'];
    const child = spawn(process.execPath, [kennelBin, ...args], { env: { ...process.env, KENNEL_HOME: home }, stdio: 'ignore' });
    const shardsDone = () => {
      const job = ws.db.prepare("SELECT result FROM jobs WHERE kind = 'transform' AND json_extract(params, '$.out') = ? ").get(out) as { result: string | null } | undefined;
      return job?.result ? (JSON.parse(job.result) as { shards: Array<string | null> }).shards.filter(Boolean).length : 0;
    };
    const limit = Date.now() + 60_000;
    while (shardsDone() < 2 && Date.now() < limit) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const before = shardsDone();
    assert.ok(before >= 2 && before < 11, `killed after ${before} of 11 shards`);
    const r = kennelJson<{ job: string; images: number; failed: number; seconds: number; resumedImages: number }>(home, args.slice(0, -1));
    assert.deepEqual(Object.keys(r).slice(0, 4), ['job', 'images', 'failed', 'seconds']);
    assert.equal(r.images, 42);
    assert.equal(r.failed, 2);
    assert.equal(typeof r.seconds, 'number');
    assert.ok(r.resumedImages >= before * 4, `resumed ${r.resumedImages} images`);
    assert.deepEqual(readLines(out).map((l) => l.file), files);
    const listed = kennel(home, ['jobs', 'list', '--kind', 'transform']);
    assert.match(listed.stdout, new RegExp(`${r.job}\\s+transform\\s+completed`));
  });
});

test('kennel transform --help names the inputs and the resume behaviour; --out must be .jsonl or .csv', () => {
  const help = kennel(home, ['transform', '--help']).stdout;
  for (const word of ['--dataset', '--out', '--instances', '--queue', 'resumes', 'URL']) assert.ok(help.includes(word), word);
  const bad = kennel(home, ['transform', '--model', 'mnet', photos, '--out', path.join(tmpDir(), 'x.txt')]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /must end in \.jsonl or \.csv/);
});
