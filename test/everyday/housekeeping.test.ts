import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { getModel } from '../../src/registry/index.ts';
import { insertEndpoint, planCreate } from '../../src/serving/endpoints.ts';
import { createJob, finishJob, getJob, openArtifactStore, openWorkspace, type CollectReport } from '../../src/store/index.ts';
import { distinctJpeg } from '../data/fixtures.ts';
import { kennel, kennelJson } from '../foundation/cli.ts';
import { sharedDir, tmpDir, tmpHome } from '../helpers/paths.ts';

const shared = sharedDir();
const breeds = path.join(shared, 'data/breeds-mini');
const photo = path.join(shared, 'data/real-photos/udacity-samples/Labrador_retriever_06457.jpg');
const TRAIN = ['train', '--dataset', 'breeds', '--backbone', 'mnv2', '--instances', '1'];

interface Trained {
  job: string;
  model: string;
  reused: boolean;
  features: { extractedImages: number };
}

/** Writes `files` (relative path -> bytes) under a new folder. */
function folder(files: Record<string, Buffer | string>): string {
  const dir = tmpDir();
  for (const [rel, bytes] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    writeFileSync(path.join(dir, rel), bytes);
  }
  return dir;
}

/** New images in valid/ and test/ but nothing usable in train/: the import stores three images, then fails. */
async function failingImport(): Promise<string> {
  return folder({ 'train/a/broken.jpg': 'not an image', 'valid/a/1.jpg': await distinctJpeg(901), 'valid/a/2.jpg': await distinctJpeg(902), 'test/a/3.jpg': await distinctJpeg(903) });
}

const artifactCount = (home: string) => readdirSync(path.join(home, 'artifacts'), { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length;

describe('everyday housekeeping: jobs, latest, identical retrains, deletes and gc', () => {
  const home = tmpHome();
  let first: Trained;
  let second: Trained;

  before(() => {
    kennelJson(home, ['data', 'import', breeds, '--name', 'breeds']);
    kennelJson(home, ['backbones', 'add', path.join(shared, 'models/mobilenetv2-12-int8.onnx'), '--name', 'mnv2']);
    first = kennelJson<Trained>(home, TRAIN);
    second = kennelJson<Trained>(home, [...TRAIN, '--head', 'minibatch', '--lr', '0.01', '--name', 'other']);
  });

  it('an identical retrain reuses the version and says so; --new-version trains again', () => {
    const again = kennelJson<Trained>(home, TRAIN);
    assert.deepEqual([again.reused, again.model, again.job], [true, first.model, first.job]);
    const fresh = kennelJson<Trained>(home, [...TRAIN, '--new-version']);
    assert.deepEqual([fresh.reused, fresh.model], [false, 'breeds@2']);
    assert.equal(fresh.features.extractedImages, 0, 'features came from the cache');
    assert.equal(kennelJson<{ deleted: string[] }>(home, ['models', 'delete', 'breeds@2']).deleted[0], 'breeds@2');
  });

  it('jobs list filters by kind, status and dataset; show prints one job', () => {
    const all = kennelJson<{ jobs: Array<{ id: string; kind: string; status: string }> }>(home, ['jobs', 'list']);
    assert.ok(all.jobs.length >= 3);
    for (const j of all.jobs) assert.deepEqual(Object.keys(j).slice(0, 3), ['id', 'kind', 'status']);
    assert.equal(all.jobs[all.jobs.length - 1]!.id, first.job, 'newest first');
    assert.deepEqual(kennelJson<{ jobs: unknown[] }>(home, ['jobs', 'list', '--kind', 'tune']).jobs, []);
    assert.equal(kennelJson<{ jobs: unknown[] }>(home, ['jobs', 'list', '--kind', 'train', '--dataset', 'breeds', '--status', 'completed']).jobs.length, all.jobs.length);
    assert.deepEqual(kennelJson<{ jobs: unknown[] }>(home, ['jobs', 'list', '--dataset', 'cats']).jobs, []);
    assert.equal(kennelJson<{ id: string }>(home, ['jobs', 'show', first.job]).id, first.job);
    assert.match(kennel(home, ['jobs', 'show', 'train-20200101000000-abcdef']).stderr, /Job train-20200101000000-abcdef was not found|Job train-20200101000000-abcdef/);
  });

  it('"latest" is the newest completed training job, not a newer tuning or failed job', () => {
    const ws = openWorkspace(home);
    const tune = createJob(ws, 'tune', { dataset: 'breeds', backbone: 'mnv2' });
    finishJob(ws, tune.id, 'completed', { result: { trials: [] } });
    const failed = createJob(ws, 'train', { dataset: 'breeds', backbone: 'mnv2' });
    finishJob(ws, failed.id, 'failed', { error: 'boom' });
    ws.close();
    const newestTraining = kennelJson<{ jobs: Array<{ id: string }> }>(home, ['jobs', 'list', '--kind', 'train', '--status', 'completed']).jobs[0]!.id;
    const rules = kennelJson<{ job: string; rules: Array<{ status: string }> }>(home, ['rules', 'latest']);
    assert.equal(rules.job, newestTraining);
    assert.ok(rules.rules.filter((r) => r.status === 'skipped').length < rules.rules.length / 2, 'the rules had a training job to check');
    assert.match(kennel(home, ['rules', 'latest']).stdout, new RegExp(`^rules for job ${newestTraining}:`));
    assert.equal(kennelJson<{ job: string }>(home, ['cost', '--job', 'latest']).job, newestTraining);
  });

  it('jobs cancel: a job whose process died is marked cancelled, a live one gets SIGINT; a finished one is refused', async () => {
    const ws = openWorkspace(home);
    const stale = createJob(ws, 'train', { dataset: 'breeds' });
    ws.db.prepare('UPDATE jobs SET pid = ? WHERE id = ?').run(2 ** 22 + 12345, stale.id); // no such process
    const r = kennelJson<{ route: string }>(home, ['jobs', 'cancel', stale.id]);
    assert.equal(r.route, 'marked');
    assert.equal(getJob(ws, stale.id)!.status, 'cancelled');

    // a stand-in for a kennel process running the job: it reports the SIGINT it gets
    const child = spawn(process.execPath, ['-e', "process.on('SIGINT', () => { console.log('SIGINT'); process.exit(0) }); console.log('ready'); setInterval(() => {}, 1000)"], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    await new Promise<void>((resolve) => child.stdout.on('data', (d) => (out += d) && out.includes('ready') && resolve()));
    const live = createJob(ws, 'train', { dataset: 'breeds' });
    ws.db.prepare('UPDATE jobs SET pid = ? WHERE id = ?').run(child.pid, live.id);
    assert.equal(kennelJson<{ route: string }>(home, ['jobs', 'cancel', live.id]).route, 'signalled');
    await new Promise((resolve) => child.on('exit', resolve));
    assert.match(out, /SIGINT/);
    finishJob(ws, live.id, 'cancelled', {});

    const refused = kennel(home, ['jobs', 'cancel', first.job]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /is completed; only a queued or running job can be cancelled/);
    assert.equal(kennelJson<{ deleted: string }>(home, ['jobs', 'delete', stale.id]).deleted, stale.id);
    assert.equal(getJob(ws, stale.id), undefined);
    ws.close();
  });

  it('models delete refuses a served or production version without --force, and frees its graph', () => {
    const ws = openWorkspace(home);
    const other = getModel(ws, 'other@1');
    insertEndpoint(ws, planCreate(ws, { name: 'served', variants: [{ name: 'primary', model: 'other@1' }] }));
    ws.close();
    const served = kennel(home, ['models', 'delete', 'other@1']);
    assert.equal(served.code, 1);
    assert.match(served.stderr, /Model other@1 is served by endpoint served\.\n.*--force/);
    kennelJson(home, ['models', 'tag', 'breeds@1', 'production']);
    const tagged = kennel(home, ['models', 'delete', 'breeds']);
    assert.match(tagged.stderr, /Model breeds@1 is tagged production/);

    const deleted = kennelJson<{ deleted: string[]; gc: CollectReport }>(home, ['models', 'delete', 'other', '--force']);
    assert.deepEqual(deleted.deleted, ['other@1']);
    const graph = path.relative(home, openArtifactStore(home).pathOf(other.onnxSha));
    assert.ok(deleted.gc.items.some((i) => i.path === graph), 'its ONNX graph was freed at once');
    assert.equal(existsSync(path.join(home, graph)), false);
    assert.match(kennel(home, ['models', 'show', 'other']).stderr, /Model other was not found|not found/);
  });

  it('gc after a failed import: a dry run lists the orphans, --yes removes only them; models still predict and a retrain hits the feature cache', async () => {
    const failed = kennel(home, ['data', 'import', await failingImport(), '--name', 'broken']);
    assert.equal(failed.code, 1, 'the import failed after storing images');
    mkdirSync(path.join(home, 'downloads'), { recursive: true });
    writeFileSync(path.join(home, 'downloads', 'stale.zip.part'), Buffer.alloc(1000));
    writeFileSync(path.join(home, 'tmp', 'scratch.bin'), Buffer.alloc(500));

    const fresh = kennelJson<CollectReport>(home, ['gc']);
    assert.equal(fresh.items.length, 0, 'nothing within the default grace period of an hour goes');
    assert.ok(fresh.kept.recent >= 3);

    // ctime cannot be set back, so the test shortens the grace period instead of ageing the files
    const before = artifactCount(home);
    const dry = kennelJson<CollectReport>(home, ['gc', '--grace', '0s']);
    assert.equal(dry.applied, false);
    assert.deepEqual(dry.items.map((i) => i.kind).sort(), ['artifact', 'artifact', 'artifact', 'partial-download', 'temp']);
    assert.equal(artifactCount(home), before, 'a dry run removes nothing');
    assert.match(kennel(home, ['gc', '--grace', '0s']).stdout, /^would remove 3 artifacts, 1 temp, 1 partial-download \(\d/);

    const removed = kennelJson<CollectReport>(home, ['gc', '--yes', '--grace', '0s']);
    assert.equal(removed.applied, true);
    assert.equal(artifactCount(home), before - 3);
    assert.equal(existsSync(path.join(home, 'downloads', 'stale.zip.part')), false);
    assert.equal(kennelJson<CollectReport>(home, ['gc', '--grace', '0s']).items.length, 0, 'nothing referenced is garbage');
    for (const m of kennelJson<{ models: Array<{ model: string }> }>(home, ['models', 'list']).models) {
      const r = kennel(home, ['predict', '--model', m.model, photo, '--json']);
      assert.equal(r.code, 0, `${m.model}: ${r.stderr}`);
    }
    const retrain = kennelJson<Trained>(home, [...TRAIN, '--lr', '0.02', '--name', 'after-gc']);
    assert.equal(retrain.features.extractedImages, 0, 'every feature chunk survived gc');
  });

  it('data delete frees the images only that dataset used; a dataset sharing them frees nothing', async () => {
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 6; i++) files[`${i % 2 ? 'a' : 'b'}/${i}.jpg`] = await distinctJpeg(700 + i);
    kennelJson(home, ['data', 'import', folder(files), '--name', 'fresh']);
    kennelJson(home, ['data', 'import', breeds, '--name', 'copy']);
    const before = artifactCount(home);
    const fresh = kennelJson<{ deleted: string[]; gc: CollectReport }>(home, ['datasets', 'delete', 'fresh']);
    assert.deepEqual(fresh.deleted, ['fresh@1']);
    assert.equal(fresh.gc.items.length, 7, 'its six images and its manifest');
    const copy = kennelJson<{ deleted: string[]; gc: CollectReport }>(home, ['data', 'delete', 'copy']);
    assert.equal(copy.gc.items.length, 0, 'breeds uses the same manifest and images');
    assert.equal(artifactCount(home), before - 7);
    assert.match(kennel(home, ['data', 'show', 'fresh']).stderr, /dataset "fresh"/);
    assert.equal(kennel(home, ['backbones', 'delete', 'nope']).code, 1);
  });
});
