import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { addBackbone } from '../../src/backbones/index.ts';
import { importDataset } from '../../src/data/index.ts';
import { openWorkspace } from '../../src/store/index.ts';
import { parseParamFlag, tune } from '../../src/tuning/index.ts';
import { repoRoot, sharedDir, tmpHome } from '../helpers/paths.ts';

// the CLI from source, so this file needs no build
const CLI = [process.execPath, '--import', 'tsx', join(repoRoot, 'src/cli/main.ts')] as const;
const home = tmpHome();

function kennel(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(CLI[0], [...CLI.slice(1), ...args], { cwd: repoRoot, env: { ...process.env, KENNEL_HOME: home }, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function kennelJson<T>(args: string[]): T {
  const r = kennel([...args, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as T;
}

interface TrialRow {
  trial: number;
  status: string;
  objective: number | null;
  attempts: number;
  updated_at: string;
}

/** Trial rows straight from the workspace database (a reader beside the running coordinator). */
function trialRows(): TrialRow[] {
  const ws = openWorkspace(home);
  try {
    return ws.db.prepare('SELECT trial, status, objective, attempts, updated_at FROM tune_trials ORDER BY trial').all() as TrialRow[];
  } finally {
    ws.close();
  }
}

before(async () => {
  const ws = openWorkspace(home);
  await importDataset(ws, join(sharedDir(), 'data/breeds-mini'), { name: 'breeds' });
  await addBackbone(ws, join(sharedDir(), 'models/mobilenetv2-12-int8.onnx'), { name: 'mobilenetv2-12-int8' });
  ws.close();
});

// long enough trials (an mlp head, no patience stop) that the kill lands while one runs
const SPACE = ['lr=loguniform:1e-4:1e-2', 'epochs=int:8:16', 'head=choice:mlp', 'hidden=choice:256,512'];
const ARGS = ['--dataset', 'breeds', '--backbone', 'mobilenetv2-12-int8', ...SPACE.flatMap((p) => ['--param', p]), '--objective', 'valid.loss', '--patience', '100', '--max-trials', '8', '--max-parallel', '2', '--seed', '9'];

test('kill -9 mid-run, then tune resume: no finished trial runs again, the interrupted ones do, and the result equals an uninterrupted run', async () => {
  const child = spawn(CLI[0], [...CLI.slice(1), 'tune', ...ARGS, '--json'], { cwd: repoRoot, env: { ...process.env, KENNEL_HOME: home }, stdio: 'ignore' });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline) {
    const rows = trialRows();
    if (rows.filter((r) => r.status === 'completed').length >= 2 && rows.some((r) => r.status === 'running')) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  await exited;
  const before = trialRows();
  const finished = before.filter((r) => r.status === 'completed');
  const interrupted = before.filter((r) => r.status === 'running' || r.status === 'queued');
  assert.ok(finished.length >= 2 && interrupted.length >= 1, JSON.stringify(before));

  const { jobs } = kennelJson<{ jobs: Array<{ job: string; status: string }> }>(['tune', 'list']);
  assert.equal(jobs.length, 1);
  assert.equal(jobs[0]!.status, 'running');
  const job = jobs[0]!.job;
  const mid = kennelJson<{ job: string; trials: Array<{ id: number; status: string }> }>(['tune', 'show', job]);
  assert.ok(mid.trials.some((t) => t.status === 'running' || t.status === 'queued'));

  const resumed = kennelJson<{ job: string; best: { params: Record<string, unknown>; objective: number }; model: null }>(['tune', 'resume', job]);
  assert.equal(resumed.job, job);
  assert.equal(resumed.model, null);
  const after = trialRows();
  assert.equal(after.length, 8);
  assert.ok(after.every((r) => r.status === 'completed'));
  for (const f of finished) assert.deepEqual(after.find((r) => r.trial === f.trial), f, `trial ${f.trial} finished before the kill and was not touched`);
  for (const i of interrupted.filter((r) => r.status === 'running')) assert.equal(after.find((r) => r.trial === i.trial)!.attempts, 2, `trial ${i.trial} ran again`);

  // the same job run without interruption (same seed, same parallelism) gives the same trials
  const ws = openWorkspace(home);
  try {
    const space = SPACE.map(parseParamFlag);
    const clean = await tune(ws, { dataset: 'breeds', backbone: 'mobilenetv2-12-int8', space, objective: 'valid.loss', patience: 100, maxTrials: 8, maxParallel: 2, seed: 9 });
    const shown = kennelJson<{ trials: Array<{ id: number; params: object; objective: number; status: string; epochs: number; seconds: number }> }>(['tune', 'show', job]);
    assert.deepEqual(
      shown.trials.map((t) => [t.id, t.params, t.objective, t.status, t.epochs]),
      clean.trials.map((t) => [t.id, t.params, t.objective, t.status, t.epochs]),
    );
    assert.deepEqual(resumed.best, { id: clean.best!.id, params: clean.best!.params, objective: clean.best!.objective });
  } finally {
    ws.close();
  }
});

test('CLI contract: tune --json, list oldest first, show with every trial field, errors as one line', () => {
  const r = kennelJson<{ job: string; best: { params: Record<string, unknown>; objective: number }; model: string }>(['tune', '--dataset', 'breeds', '--backbone', 'mobilenetv2-12-int8', '--param', 'lr=loguniform:1e-3:1e-2', '--param', 'epochs=choice:3', '--max-trials', '3', '--strategy', 'random', '--register', 'cli-tuned']);
  assert.deepEqual(Object.keys(r.best).sort(), ['id', 'objective', 'params']);
  assert.equal(typeof r.best.params.lr, 'number');
  assert.equal(r.model, 'cli-tuned@1');
  const list = kennelJson<{ jobs: Array<{ job: string; status: string }> }>(['tune', 'list']);
  assert.equal(list.jobs.at(-1)!.job, r.job);
  assert.ok(list.jobs.every((j) => j.status === 'completed'));
  const show = kennelJson<{ job: string; trials: Array<Record<string, unknown>> }>(['tune', 'show', r.job]);
  assert.equal(show.job, r.job);
  assert.equal(show.trials.length, 3);
  for (const t of show.trials) {
    for (const k of ['id', 'params', 'objective', 'status', 'epochs', 'seconds']) assert.ok(k in t, k);
    assert.ok(['queued', 'running', 'completed', 'stopped', 'failed'].includes(t.status as string));
  }
  const human = kennel(['tune', 'show', r.job]);
  assert.equal(human.code, 0);
  assert.match(human.stdout, /TRIAL\s+STATUS\s+OBJECTIVE/);
  assert.match(human.stdout, /best: trial \d/);

  for (const [args, re] of [
    [['tune', '--dataset', 'breeds'], /needs --dataset and --backbone/],
    [['tune', '--dataset', 'breeds', '--backbone', 'mobilenetv2-12-int8', '--param', 'lr=gauss:1:2'], /unknown type "gauss"/],
    [['tune', '--dataset', 'breeds', '--backbone', 'mobilenetv2-12-int8', '--space', '/nonexistent.json'], /could not be read/],
    [['tune', '--dataset', 'breeds', '--backbone', 'mobilenetv2-12-int8', '--strategy', 'annealing'], /--strategy must be one of random, grid, bayesian/],
    [['tune', 'show', 'tune-nope'], /Tuning job tune-nope was not found/],
    [['tune', 'resume', 'tune-nope'], /Tuning job tune-nope was not found/],
  ] as const) {
    const e = kennel([...args]);
    assert.notEqual(e.code, 0, args.join(' '));
    assert.match(e.stderr, re);
    assert.match(e.stderr, /^error: /);
    assert.doesNotMatch(e.stderr, /\n\s+at /, 'no stack trace');
  }
});
