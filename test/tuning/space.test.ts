import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { KennelError } from '../../src/core/index.ts';
import { Rng } from '../../src/core/index.ts';
import { hyperparameterSpace, loadSpaceFile, makeSpace, parseParamFlag, parseSpaceJson, trainOptionsFor } from '../../src/tuning/index.ts';
import { gridValues, sampleSpace } from '../../src/tuning/space.ts';
import { tmpDir } from '../helpers/paths.ts';

test('--param forms parse into typed parameters', () => {
  assert.deepEqual(parseParamFlag('lr=loguniform:1e-4:1e-1'), { name: 'lr', type: 'loguniform', low: 1e-4, high: 0.1, log: true });
  assert.deepEqual(parseParamFlag('dropout=uniform:0:0.5'), { name: 'dropout', type: 'uniform', low: 0, high: 0.5, log: false });
  assert.deepEqual(parseParamFlag('hidden=int:64:1024:log'), { name: 'hidden', type: 'int', low: 64, high: 1024, log: true });
  assert.deepEqual(parseParamFlag('batch_size=choice:32,64,128'), { name: 'batch_size', type: 'choice', values: [32, 64, 128] });
  assert.deepEqual(parseParamFlag('head=choice:linear,mlp'), { name: 'head', type: 'choice', values: ['linear', 'mlp'] });
});

test('malformed parameters are one-sentence errors', () => {
  for (const bad of ['lr', 'lr=normal:0:1', 'lr=loguniform:0:1', 'lr=uniform:1:0', 'lr=uniform:a:1', 'epochs=int:1.5:3', 'x=choice:', 'x=choice:a,a', 'lr=uniform:1']) {
    assert.throws(() => parseParamFlag(bad), (e: unknown) => e instanceof KennelError && /Search parameter/.test(e.message) && !e.message.includes('\n'), bad);
  }
});

test('space files take the object or the text form, and name the file in errors', () => {
  const params = parseSpaceJson({ lr: { type: 'loguniform', low: 1e-4, high: 0.1 }, batch_size: 'choice:32,64', augment: { type: 'int', low: 0, high: 2 } });
  assert.deepEqual(
    params.map((p) => p.name),
    ['lr', 'batch_size', 'augment'],
  );
  const dir = tmpDir();
  writeFileSync(join(dir, 'bad.json'), '{"lr": {"type": "loguniform", "low": "x"}}');
  assert.throws(() => loadSpaceFile(join(dir, 'bad.json')), /bad\.json is invalid/);
  writeFileSync(join(dir, 'broken.json'), '{lr');
  assert.throws(() => loadSpaceFile(join(dir, 'broken.json')), /could not be read/);
  assert.throws(() => loadSpaceFile(join(dir, 'missing.json')), /could not be read/);
});

test('hyperparameter spaces are checked against what training accepts', () => {
  assert.deepEqual(
    hyperparameterSpace([]).map((p) => p.name),
    ['lr', 'batch_size'],
  );
  assert.equal(hyperparameterSpace([parseParamFlag('batchSize=choice:32,64')])[0]!.name, 'batch_size');
  assert.throws(() => hyperparameterSpace([parseParamFlag('momentum=uniform:0:1')]), /not a hyperparameter Kennel can tune/);
  assert.throws(() => hyperparameterSpace([parseParamFlag('batch_size=uniform:32:512')]), /whole number/);
  assert.throws(() => hyperparameterSpace([parseParamFlag('head=choice:linear,transformer')]), /training does not accept/);
  assert.throws(() => hyperparameterSpace([parseParamFlag('dropout=uniform:0:0.99')]), /training does not accept/);
  assert.throws(() => hyperparameterSpace([parseParamFlag('augment=int:0:64')]), /training does not accept/);
  assert.throws(() => makeSpace([parseParamFlag('lr=uniform:0.1:0.2'), parseParamFlag('lr=uniform:0.1:0.3')]), /given twice/);
  assert.deepEqual(trainOptionsFor({ lr: 0.01, batch_size: 32, weight_decay: 0, label_smoothing: 0.05, head: 'mlp', hidden: 128, dropout: 0.1, epochs: 5, augment: 1 }), {
    lr: 0.01,
    batchSize: 32,
    weightDecay: 0,
    labelSmoothing: 0.05,
    head: 'mlp',
    hidden: 128,
    dropout: 0.1,
    epochs: 5,
    augment: 1,
  });
});

test('samples stay in their domain; ints and log scales are respected', () => {
  const space = makeSpace(['lr=loguniform:1e-4:1e-1', 'epochs=int:2:4', 'hidden=int:16:1024:log', 'head=choice:linear,mlp'].map(parseParamFlag));
  const rng = new Rng(1);
  const seen = new Set<number>();
  let belowMilli = 0;
  for (let i = 0; i < 400; i++) {
    const p = sampleSpace(space, rng);
    assert.ok((p.lr as number) >= 1e-4 && (p.lr as number) <= 0.1);
    assert.ok(Number.isInteger(p.epochs) && (p.epochs as number) >= 2 && (p.epochs as number) <= 4);
    assert.ok(Number.isInteger(p.hidden) && (p.hidden as number) >= 16 && (p.hidden as number) <= 1024);
    assert.ok(p.head === 'linear' || p.head === 'mlp');
    seen.add(p.epochs as number);
    if ((p.lr as number) < 1e-3) belowMilli++;
  }
  assert.deepEqual([...seen].sort(), [2, 3, 4]);
  // log-uniform: a third of the draws fall in the lowest decade of three
  assert.ok(belowMilli > 100 && belowMilli < 170, String(belowMilli));
});

test('grid values: every choice and small int range, log-spaced for log parameters', () => {
  assert.deepEqual(gridValues(parseParamFlag('lr=loguniform:1e-4:1e-2'), 3), [1e-4, 1e-3, 1e-2]);
  assert.deepEqual(gridValues(parseParamFlag('epochs=int:2:4'), 5), [2, 3, 4]);
  assert.deepEqual(gridValues(parseParamFlag('dropout=uniform:0:0.5'), 3), [0, 0.25, 0.5]);
  assert.deepEqual(gridValues(parseParamFlag('head=choice:linear,mlp'), 3), ['linear', 'mlp']);
});
