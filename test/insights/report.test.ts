import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { addBackbone } from '../../src/backbones/index.ts';
import { importDataset } from '../../src/data/index.ts';
import { RULE_NAMES, buildReport, renderReport, type JobCostReport, type RuleResult } from '../../src/insights/index.ts';
import { createJob, finishJob, getJob, openWorkspace, type Workspace } from '../../src/store/index.ts';
import { train } from '../../src/training/index.ts';
import { writeFileAtomic } from '../../src/core/index.ts';
import { copyOfBreedsMini } from '../data/fixtures.ts';
import { kennel, kennelJson } from '../foundation/cli.ts';
import { sharedDir, tmpDir, tmpHome } from '../helpers/paths.ts';

const CHROMIUM = '/usr/bin/chromium';
const browserSkip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (apt-get install -y chromium): the report is not rendered in a browser`;

/**
 * breeds-mini with two test images swapped between breeds (so the model gets them "wrong" and
 * the report has misclassified examples) and one training image copied into test (leakage).
 */
function plantedDataset(): string {
  const dir = copyOfBreedsMini();
  const [a, b] = readdirSync(path.join(dir, 'test')).sort();
  const file = (cls: string, split = 'test') => readdirSync(path.join(dir, split, cls))[0]!;
  const fa = file(a!);
  const fb = file(b!);
  renameSync(path.join(dir, 'test', a!, fa), path.join(dir, 'test', b!, fa));
  renameSync(path.join(dir, 'test', b!, fb), path.join(dir, 'test', a!, fb));
  const c = readdirSync(path.join(dir, 'train')).sort()[2]!;
  copyFileSync(path.join(dir, 'train', c, file(c, 'train')), path.join(dir, 'test', c, 'leaked.jpg'));
  return dir;
}

async function trainedWorkspace(): Promise<{ home: string; ws: Workspace; job: string }> {
  const home = tmpHome();
  const ws = openWorkspace(home);
  await importDataset(ws, plantedDataset(), { name: 'planted' });
  await addBackbone(ws, path.join(sharedDir(), 'models/mobilenetv2-12-int8.onnx'), { name: 'mobilenetv2-12-int8' });
  const r = await train(ws, { dataset: 'planted', backbone: 'mobilenetv2-12-int8', epochs: 12 });
  return { home, ws, job: r.job };
}

async function render(file: string) {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking', '--disable-component-update'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const requests: string[] = [];
    const errors: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    page.on('pageerror', (e) => errors.push(e.message));
    const url = `file://${file}`;
    await page.goto(url, { waitUntil: 'load' });
    const charts = await page.$$eval('svg[data-chart]', (els) =>
      els.map((e) => {
        const box = e.getBoundingClientRect();
        const data = Object.fromEntries(
          e
            .getAttributeNames()
            .filter((n: string) => n.startsWith('data-'))
            .map((n: string) => [n.slice(5), e.getAttribute(n)!]),
        );
        return { kind: data.chart!, title: e.querySelector('title')?.textContent ?? '', data, visible: box.width > 100 && box.height > 100, marks: e.querySelectorAll('path,rect,circle').length };
      }),
    );
    const images = await page.$$eval('img', (els) =>
      els.map((e) => {
        const img = e as unknown as { complete: boolean; naturalWidth: number };
        return { src: e.getAttribute('src')!.slice(0, 22), loaded: img.complete && img.naturalWidth > 0 };
      }),
    );
    const text = await page.innerText('body');
    return { charts, images, text, errors, external: requests.filter((u) => u !== url && !u.startsWith('data:')), confusionLabels: await page.$$eval('svg[data-chart="confusion"] text.row-label', (els) => els.map((e) => e.textContent)) };
  } finally {
    await browser.close();
  }
}

test('a training job records telemetry and rules, and kennel report renders offline in Chromium', async (t) => {
  const { home, ws, job } = await trainedWorkspace();

  await t.test('the job result references its telemetry and carries the rule results', async () => {
    const result = getJob(ws, job)!.result as { telemetry: string; rules: RuleResult[] };
    assert.match(result.telemetry, /^[0-9a-f]{64}$/);
    const telemetry = JSON.parse(Buffer.from(await ws.artifacts.get(result.telemetry)).toString('utf8'));
    assert.deepEqual(
      telemetry.phases.map((p: { name: string }) => p.name),
      ['features', 'head', 'evaluate', 'export'],
    );
    assert.ok(telemetry.steps.some((s: { kind: string }) => s.kind === 'extract'));
    assert.ok(telemetry.steps.some((s: { kind: string; gradNorm?: number }) => s.kind === 'head' && s.gradNorm! > 0));
    assert.ok(telemetry.hardware.length >= 2);
    // the machine's CPU counters tick every 10 ms, so a sample right after another may have none
    const machine = telemetry.hardware.filter((h: { machineCpuShare?: number }) => h.machineCpuShare !== undefined).map((h: { machineCpuShare: number }) => h.machineCpuShare);
    assert.ok(machine.length >= 1 && machine.every((x: number) => x >= 0 && x <= 1), 'machine-wide CPU share');
    assert.equal(telemetry.workers.reduce((n: number, w: { images: number }) => n + w.images, 0), 151, 'per-worker extraction throughput');
    if (process.platform === 'linux' && telemetry.workers.length > 1) {
      // extraction ran in worker processes: their CPU is the job's, not only this process's
      const withWorkers = telemetry.hardware.filter((h: { childProcesses?: number }) => (h.childProcesses ?? 0) > 0);
      assert.ok(withWorkers.some((h: { childCpuCores: number }) => h.childCpuCores > 0.05), 'worker processes CPU is sampled');
    }
    assert.equal(result.rules.length, 10);
    assert.equal(result.rules.find((r) => r.rule === 'DuplicateLeakage')!.status, 'fired', 'the planted leak is found');
  });

  await t.test('kennel rules JOB --json re-runs the rules', () => {
    const r = kennelJson<{ job: string; rules: RuleResult[] }>(home, ['rules', job]);
    assert.equal(r.job, job);
    assert.equal(r.rules.find((x) => x.rule === 'DuplicateLeakage')!.status, 'fired');
    assert.ok(r.rules.every((x) => x.finding && x.evidence));
    const text = kennel(home, ['rules', 'latest']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /DuplicateLeakage/);
  });

  await t.test('kennel train says which rules fired, one line each', () => {
    const r = kennel(home, ['train', '--dataset', 'planted', '--backbone', 'mobilenetv2-12-int8', '--epochs', '12', '--name', 'again']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ {2}rule DuplicateLeakage fired \(warning\): \d+ images appear in more than one split/m);
    assert.match(r.stdout, /what to do: kennel rules train-/);
  });

  await t.test('kennel cost --job JOB --json prices the job on every catalog type', () => {
    const r = kennelJson<JobCostReport>(home, ['cost', '--job', job]);
    assert.equal(r.job, job);
    const types = r.instances.map((i) => i.type);
    for (const name of ['ml.m5.xlarge', 'ml.g4dn.xlarge', 'ml.t3.medium', 'p3.2xlarge']) assert.ok(types.includes(name), name);
    assert.ok(r.measured.extraction!.imagesPerSecond > 0);
    assert.equal(r.measured.coldImages, 151);
    assert.ok(r.instances.every((i) => i.usd > 0 && i.seconds > 0));
    assert.ok(r.local.usd > 0);
  });

  const out = path.join(tmpDir(), 'report.html');
  await t.test('kennel report JOB --out FILE.html writes one self-contained file', () => {
    const r = kennelJson<{ out: string; charts: string[]; examples: number }>(home, ['report', job, '--out', out]);
    assert.equal(r.out, out);
    for (const c of ['timeline', 'step-phases', 'throughput', 'loss', 'accuracy', 'gradients', 'confusion', 'per-class', 'hardware', 'memory']) assert.ok(r.charts.includes(c), c);
    assert.equal(r.examples, 2, 'the two swapped test images');
    const html = readFileSync(out, 'utf8');
    assert.doesNotMatch(html, /(src|href)="(https?:)?\/\//, 'no external asset');
    assert.doesNotMatch(html, /<script/);
  });

  await t.test('the report renders in headless Chromium without any network request', { skip: browserSkip }, async () => {
    const page = await render(out);
    assert.deepEqual(page.external, []);
    assert.deepEqual(page.errors, []);
    const kinds = page.charts.map((c) => c.kind);
    for (const c of ['timeline', 'step-phases', 'throughput', 'loss', 'accuracy', 'gradients', 'learning-rate', 'confusion', 'per-class', 'hardware', 'memory']) assert.ok(kinds.includes(c), `${c} in ${kinds}`);
    for (const c of page.charts) {
      assert.ok(c.visible, `${c.kind} is laid out`);
      assert.ok(c.title.length > 5, `${c.kind} has a title`);
      assert.ok(c.marks > 0, `${c.kind} drew something`);
    }
    const loss = page.charts.find((c) => c.kind === 'loss')!;
    assert.equal(loss.data.series, '2');
    assert.equal(page.charts.find((c) => c.kind === 'confusion')!.data.classes, '25');
    assert.ok(page.confusionLabels.includes('Beagle'), 'class names label the confusion matrix');
    assert.equal(page.images.length, 2);
    for (const img of page.images) {
      assert.equal(img.src, 'data:image/jpeg;base64');
      assert.ok(img.loaded, 'thumbnail decoded');
    }
    for (const rule of RULE_NAMES) assert.ok(page.text.includes(rule), `rule ${rule} in the page`);
    assert.match(page.text, /median CPU busy \(this job: this process \+ \d+ local worker process/, 'CPU counts the worker processes');
  });

  await t.test('a tuning job gets objective-vs-trial and parallel-coordinates charts', { skip: browserSkip }, async () => {
    const tune = createJob(ws, 'tune', { dataset: 'planted', backbone: 'mobilenetv2-12-int8' });
    const trials = Array.from({ length: 8 }, (_, i) => ({ trial: i + 1, params: { lr: 10 ** (-4 + i / 3), head: i % 2 ? 'mlp' : 'linear', batchSize: 32 * (1 + (i % 3)) }, objective: 0.5 + 0.05 * i - 0.004 * i * i, status: 'completed' }));
    finishJob(ws, tune.id, 'completed', { result: { objective: { name: 'valid top-1', direction: 'maximize' }, trials } });
    const file = path.join(tmpDir(), 'tune.html');
    writeFileAtomic(file, renderReport(await buildReport(ws, tune.id)));
    const page = await render(file);
    assert.deepEqual(page.external, []);
    const objective = page.charts.find((c) => c.kind === 'objective')!;
    assert.equal(objective.data.points, String(8 + 8), 'trials and the best-so-far line');
    const parallel = page.charts.find((c) => c.kind === 'parallel-coordinates')!;
    assert.equal(parallel.data.axes, '4', 'three hyperparameters and the objective');
    assert.equal(parallel.data.lines, '8');
  });

  ws.close();
});

test('kennel report and rules explain bad job ids', () => {
  const home = tmpHome();
  const r = kennel(home, ['report', 'train-nope', '--out', path.join(tmpDir(), 'x.html')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: Job train-nope was not found\./);
  const latest = kennel(home, ['rules', 'latest']);
  assert.equal(latest.code, 1);
  assert.match(latest.stderr, /Train one first/);
  const cost = kennel(home, ['cost', '--ips', '10']);
  assert.equal(cost.code, 1);
  assert.match(cost.stderr, /^error: Serving estimates need measured throughput and latency/);
  const both = kennel(home, ['cost', '--job', 'x', '--ips', '10', '--p99', '50ms']);
  assert.equal(both.code, 1);
  assert.match(both.stderr, /one or the other/);
});

test('kennel cost sizes a fleet for a latency SLO from serving measurements', () => {
  const home = tmpHome();
  const r = kennelJson<{ cheapest: { type: string; instances: number; usdPerHour: number }; instances: Array<{ type: string; meetsSlo: boolean; instances?: number }> }>(home, ['cost', '--ips', '40', '--p99', '50ms', '--slo-p99', '100ms', '--rps', '50', '--local-vcpus', '2', '--efficiency', '1']);
  // 20 img/s per vCPU. ml.m5.large: 40 img/s, p99 50 ms, sustains 40 x (1 - 50/100) = 20 rps -> 3 instances;
  // m5.xlarge: 80 img/s, p99 25 ms, 60 rps -> 1 instance at $0.192/h, the cheapest; t3 types (8 img/s, p99 250 ms) miss
  const by = (t: string) => r.instances.find((i) => i.type === t)!;
  assert.equal(by('ml.m5.large').instances, 3);
  assert.equal(by('ml.t3.medium').meetsSlo, false);
  assert.equal(by('t3.medium').meetsSlo, false);
  assert.deepEqual(r.cheapest, { type: 'm5.xlarge', instances: 1, usdPerHour: 0.192, usdPerMillion: (0.192 / (50 * 3600)) * 1e6 });
});
