import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, after, test } from 'node:test';
import { addBackbone } from '../../src/backbones/index.ts';
import { KennelError } from '../../src/core/index.ts';
import { importDataset } from '../../src/data/index.ts';
import { getModel } from '../../src/registry/index.ts';
import { getJob, openWorkspace, type Workspace } from '../../src/store/index.ts';
import { listTunes, parseParamFlag, resumeTune, showTune, tune, type TuneOptions } from '../../src/tuning/index.ts';
import { sharedDir, tmpHome } from '../helpers/paths.ts';

let ws: Workspace;
const BACKBONE = 'mobilenetv2-12-int8';

before(async () => {
  ws = openWorkspace(tmpHome());
  await importDataset(ws, join(sharedDir(), 'data/breeds-mini'), { name: 'breeds' });
  await addBackbone(ws, join(sharedDir(), 'models/mobilenetv2-12-int8.onnx'), { name: BACKBONE });
});
after(() => ws.close());

/** breeds-mini is easy: valid top-1 ties at 100%, so the searches here minimise valid loss. */
const base: TuneOptions = {
  dataset: 'breeds',
  backbone: BACKBONE,
  objective: 'valid.loss',
  space: ['lr=loguniform:1e-4:3e-2', 'epochs=int:2:9', 'head=choice:linear,mlp', 'hidden=choice:32,64'].map(parseParamFlag),
  maxTrials: 8,
  seed: 5,
};

test('a Bayesian tune with ASHA on breeds-mini registers its best trial with lineage back to the job', async () => {
  const r = await tune(ws, { ...base, earlyStopping: 'asha', register: 'breeds-tuned' });
  assert.equal(r.status, 'completed');
  assert.equal(r.trials.length, 8);
  assert.ok(r.trials.every((t) => ['completed', 'stopped'].includes(t.status) && t.objective !== null && t.epochs! >= 1 && t.seconds! >= 0));
  assert.ok(r.counts.stopped >= 1, 'ASHA stopped at least one of 8 trials');
  for (const t of r.trials.filter((x) => x.status === 'stopped')) assert.ok([1, 3].includes(t.epochs!), `stopped at a rung, not at epoch ${t.epochs}`);
  const completed = r.trials.filter((t) => t.status === 'completed');
  assert.equal(r.best!.objective, Math.min(...completed.map((t) => t.objective!)));
  assert.equal(r.features.extractedImages, 150);
  assert.ok(r.importance.length === 4 || completed.length < 4);

  // the registered model is the best trial's configuration, trained again the same way
  assert.equal(r.model, 'breeds-tuned@1');
  const mv = getModel(ws, r.model!);
  assert.equal(mv.card.lineage!.tuningJob, r.job);
  assert.equal(mv.card.lineage!.trial, r.best!.id);
  const hyper = mv.card.lineage!.hyperparameters as Record<string, unknown>;
  assert.equal(hyper.lr, r.best!.params.lr);
  // trials train the minibatch head: a tuned 'linear' registers as that head
  assert.equal(hyper.head, r.best!.params.head === 'mlp' ? 'mlp' : 'minibatch');
  const metrics = mv.card.metrics as { bestEpoch: number; history: Array<{ validLoss: number }> };
  assert.ok(Math.abs(metrics.history[metrics.bestEpoch - 1]!.validLoss - r.best!.objective) < 1e-5, 'the retrained head reaches the trial objective');

  // what the insights report reads: kind 'tune', objective name/direction, numbered trials
  const job = getJob(ws, r.job)!;
  assert.equal(job.kind, 'tune');
  const stored = job.result as { objective: { direction: string }; trials: Array<{ trial: number; params: object }>; telemetry?: string };
  assert.equal(stored.objective.direction, 'minimize');
  assert.deepEqual(
    stored.trials.map((t) => t.trial),
    [1, 2, 3, 4, 5, 6, 7, 8],
  );
  assert.ok(stored.telemetry);

  // resume of a completed job returns its result; show and list agree
  assert.equal((await resumeTune(ws, r.job)).best!.id, r.best!.id);
  const shown = showTune(ws, r.job);
  assert.deepEqual(
    shown.trials.map((t) => [t.id, t.status, t.objective]),
    r.trials.map((t) => [t.id, t.status, t.objective]),
  );
  assert.equal(shown.model, r.model);
  assert.ok(listTunes(ws).some((j) => j.job === r.job && j.status === 'completed'));
});

test('the same seed gives the same trials; a warm start seeds the model with the earlier trials', async () => {
  const a = await tune(ws, { ...base, strategy: 'bayesian', earlyStopping: 'median' });
  const b = await tune(ws, { ...base, strategy: 'bayesian', earlyStopping: 'median' });
  const key = (r: typeof a) => r.trials.map((t) => [t.params, t.status, t.objective, t.epochs]);
  assert.deepEqual(key(b), key(a));
  assert.notEqual(a.job, b.job);

  const warm = await tune(ws, { ...base, maxTrials: 2, from: a.job });
  const shown = showTune(ws, warm.job);
  assert.equal(shown.from, a.job);
  assert.equal(shown.warmStartTrials, 8);
  // with 8 earlier trials the first suggestion already comes from the model, not the random start
  const cold = await tune(ws, { ...base, maxTrials: 2 });
  assert.notDeepEqual(warm.trials[0]!.params, cold.trials[0]!.params);
  assert.deepEqual(cold.trials[0]!.params, a.trials[0]!.params);
});

test('grid search runs the whole grid when the budget allows, and stops there', async () => {
  const r = await tune(ws, { ...base, strategy: 'grid', space: ['lr=loguniform:1e-3:1e-2', 'epochs=choice:2'].map(parseParamFlag), maxTrials: 10 });
  assert.deepEqual(r.trials.map((t) => t.params.lr).sort(), [0.001, 0.00316228, 0.01]);
});

test('bad tuning input is a clear error, not a crash', async () => {
  const rejects = (o: Partial<TuneOptions>, re: RegExp) => assert.rejects(tune(ws, { ...base, ...o }), (e: unknown) => e instanceof KennelError && re.test(e.message));
  await rejects({ direction: 'max' }, /minimised; --direction max would pick the worst/);
  await rejects({ dataset: 'nope' }, /not found/i);
  await rejects({ backbone: 'nope' }, /not found/i);
  await rejects({ register: 'bad name!' }, /not a valid model name/);
  await rejects({ space: [parseParamFlag('momentum=uniform:0:1')] }, /not a hyperparameter/);
  await rejects({ maxTrials: 0 }, /Invalid tuning option: maxTrials/);
  await rejects({ from: 'tune-nope' }, /Tuning job tune-nope was not found/);
  const top1 = listTunes(ws)[0]!.job;
  await rejects({ objective: 'valid.top1', from: top1 }, /optimised valid.loss, not valid.top1/);
  assert.throws(() => showTune(ws, 'tune-nope'), (e: unknown) => e instanceof KennelError && e.status === 404);
  await assert.rejects(resumeTune(ws, 'tune-nope'), (e: unknown) => e instanceof KennelError && e.status === 404);
});
