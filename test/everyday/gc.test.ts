import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { collectGarbage, createJob, finishJob, openArtifactStore, openWorkspace } from '../../src/store/index.ts';
import { deleteModelVersions, getModel, registerModel, type ModelCard } from '../../src/registry/index.ts';
import { tmpHome } from '../helpers/paths.ts';

test('gc spares what a running job may still write down, not what a crashed job left; a delete frees what only it referenced', async () => {
  const home = tmpHome();
  const ws = openWorkspace(home);
  const store = openArtifactStore(home);
  const job = createJob(ws, 'train', { dataset: 'x' }); // running, in this (live) process
  const written = await ws.artifacts.put(Buffer.from('features of a job that has not recorded them yet'));
  const kept = collectGarbage(ws, { apply: true, graceMs: 0 });
  assert.equal(kept.items.length, 0);
  assert.ok(existsSync(store.pathOf(written)), 'written since the running job started');

  finishJob(ws, job.id, 'failed', { error: 'stopped' });
  const stale = createJob(ws, 'train', { dataset: 'x' });
  ws.db.prepare('UPDATE jobs SET pid = ? WHERE id = ?').run(2 ** 22 + 12345, stale.id); // its process is gone
  const removed = collectGarbage(ws, { apply: true, graceMs: 0 });
  assert.deepEqual(removed.items.map((i) => i.kind), ['artifact'], 'a crashed job holds nothing back');
  assert.equal(existsSync(store.pathOf(written)), false);

  // a delete frees what only the deleted rows referenced, however recent
  const card = await ws.artifacts.put(Buffer.from('{"note": "a json document"}'));
  ws.db.prepare("UPDATE jobs SET result = ? WHERE id = ?").run(JSON.stringify({ telemetry: card }), job.id);
  assert.equal(collectGarbage(ws, { apply: true }).items.length, 0, 'referenced');
  const freed = collectGarbage(ws, { apply: true, release: () => ws.db.prepare('DELETE FROM jobs WHERE id = ?').run(job.id) });
  assert.deepEqual(freed.items.map((i) => i.path), [store.pathOf(card).slice(home.length + 1)]);
  ws.close();
});

test("a deleted model version's number is never given out again", async () => {
  const ws = openWorkspace(tmpHome());
  const card = { labels: ['a'], preprocess: {} as ModelCard['preprocess'], inputName: 'x', outputName: 'y', temperature: 1, source: 'imported' as const };
  await registerModel(ws, 'm', Buffer.from('graph 1'), card);
  await registerModel(ws, 'm', Buffer.from('graph 2'), card);
  deleteModelVersions(ws, 'm', [2]);
  assert.deepEqual(getModel(ws, 'm').tags, ['latest'], 'latest moved back to m@1');
  assert.equal((await registerModel(ws, 'm', Buffer.from('graph 3'), card)).version, 3);
  deleteModelVersions(ws, 'm', [1, 3]);
  assert.equal((await registerModel(ws, 'm', Buffer.from('graph 4'), card)).version, 4);
  ws.close();
});

test('blobs put without a flush each are made durable together by sync, which fails loudly for a blob that is not there', async () => {
  const home = tmpHome();
  const ws = openWorkspace(home);
  const shas = await Promise.all(['a', 'b', 'c'].map((s) => ws.artifacts.put(Buffer.from(`image ${s}`), { durable: false })));
  await ws.artifacts.sync!(shas);
  assert.deepEqual(await Promise.all(shas.map(async (s) => Buffer.from(await ws.artifacts.get(s)).toString())), ['image a', 'image b', 'image c']);
  await assert.rejects(ws.artifacts.sync!(['0'.repeat(64)]), /ENOENT/);
  ws.close();
});
