import assert from 'node:assert/strict';
import path from 'node:path';
import { after, test } from 'node:test';
import { readState } from '../../src/server/index.ts';
import { kennel, type CliResult } from '../foundation/cli.ts';
import { sharedDir, tmpHome } from '../helpers/paths.ts';
import { killGroup } from '../serving/fixtures.ts';

const shared = sharedDir();
const photo = path.join(shared, 'data/real-photos/udacity-samples/Labrador_retriever_06457.jpg');
const home = tmpHome();

after(() => {
  kennel(home, ['down']);
  killGroup(readState(home)?.pid); // if down could not stop it
});

const ok = (r: CliResult, step: string): string => {
  assert.equal(r.code, 0, `${step} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
};

/** The README's first command, less npm ci, with the daemon on free ports; the output of each step. */
function quickStart(): Record<'train' | 'up' | 'endpoint' | 'invoke', string> {
  ok(kennel(home, ['data', 'import', path.join(shared, 'data/breeds-mini'), '--name', 'breeds']), 'data import');
  ok(kennel(home, ['backbones', 'add', path.join(shared, 'models/mobilenetv2-12-int8.onnx'), '--name', 'mobilenetv2-12-int8']), 'backbones add');
  const train = ok(kennel(home, ['train', '--dataset', 'breeds', '--backbone', 'mobilenetv2-12-int8']), 'train');
  const up = ok(kennel(home, ['up', '--detach', '--port', '0', '--admin-port', '0']), 'up --detach');
  const endpoint = ok(kennel(home, ['endpoints', 'create', 'breeds', '--model', 'breeds', '--instances', '1']), 'endpoints create');
  const key = JSON.parse(ok(kennel(home, ['keys', 'create', 'demo', '--allow', 'endpoint:Invoke:endpoint/breeds', '--expires', '1d', '--json']), 'keys create')).key as string;
  const invoke = ok(kennel(home, ['invoke', 'breeds', photo], { KENNEL_API_KEY: key }), 'invoke');
  return { train, up, endpoint, invoke };
}

test('the quick start runs twice in a row: every step exits 0 and the photo is classified both times', () => {
  const first = quickStart();
  assert.match(first.invoke, /breeds@1 \(variant primary\)\n\s+\d+\.\d%\s+Labrador Retriever/);
  const second = quickStart();
  assert.equal(second.invoke, first.invoke, 'the same model answers the same way');
  // the second round reused what the first made, and said so
  assert.match(second.train, /^reused model breeds@1 \(identical training/);
  assert.match(second.up, /^Kennel daemon already running \(pid \d+\)/);
  assert.match(second.endpoint, /^endpoint breeds already exists with these settings: nothing changed/);
  const demo = JSON.parse(ok(kennel(home, ['policies', 'show', 'demo', '--json']), 'policies show')) as { policies: unknown[] };
  assert.equal(demo.policies.length, 1, 'the second key shares the identical policy instead of attaching a copy');
});

test('an endpoint spec that differs is an error that points to endpoints update; --min above --max is refused', () => {
  const r = kennel(home, ['endpoints', 'create', 'breeds', '--model', 'breeds', '--instances', '2']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: Endpoint breeds already exists with other settings\.\n\s+Change it with kennel endpoints update breeds/);
  const minMax = kennel(home, ['endpoints', 'update', 'breeds', '--min', '3', '--max', '1', '--target-concurrency', '2']);
  assert.equal(minMax.code, 1);
  assert.match(minMax.stderr, /--min 3 is above --max 1/);
});

test('invoke without a key: the owner goes through the admin API (said once, on stderr); a wrong key names --key and KENNEL_API_KEY', () => {
  const keyless = kennel(home, ['invoke', 'breeds', photo, '--json', '--top-k', '2'], { KENNEL_API_KEY: '' });
  assert.equal(keyless.code, 0, keyless.stderr);
  const body = JSON.parse(keyless.stdout) as { model: string; predictions: Array<{ label: string }> };
  assert.deepEqual([body.model, body.predictions.length, body.predictions[0]!.label], ['breeds@1', 2, 'Labrador Retriever']);
  assert.equal(keyless.stderr.match(/admin API/g)?.length, 1, keyless.stderr);

  const wrong = kennel(home, ['invoke', 'breeds', photo, '--key', 'kn_nope_nope']);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /--key KEY or the KENNEL_API_KEY environment variable/);
  assert.doesNotMatch(wrong.stderr, /Authorization|x-api-key/);
});
