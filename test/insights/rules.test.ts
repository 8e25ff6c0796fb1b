import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KennelError } from '../../src/core/errors.ts';
import { RULE_NAMES, runRules, type RuleInput, type RuleName, type RulesConfigInput } from '../../src/insights/index.ts';
import { healthyInput } from './traces.ts';

const fired = (input: RuleInput, config?: RulesConfigInput): RuleName[] =>
  runRules(input, config)
    .filter((r) => r.status === 'fired')
    .map((r) => r.rule);

/** Runs the rules on a healthy input bent by `bend`; returns the fired rule's result. */
function only(rule: RuleName, bend: (i: RuleInput) => void, config?: RulesConfigInput) {
  const input = healthyInput();
  bend(input);
  const results = runRules(input, config);
  assert.deepEqual(
    results.filter((r) => r.status === 'fired').map((r) => r.rule),
    [rule],
    JSON.stringify(results.filter((r) => r.status === 'fired')),
  );
  const r = results.find((x) => x.rule === rule)!;
  assert.ok(r.finding.length > 20, 'a plain-language finding');
  assert.ok(r.recommendation.length > 20, 'a concrete recommendation');
  assert.ok(Object.values(r.evidence).some((v) => typeof v === 'number'), 'numbers as evidence');
  return r;
}

const head = (i: RuleInput) => i.telemetry!.steps.filter((s) => s.kind === 'head');
const extract = (i: RuleInput) => i.telemetry!.steps.filter((s) => s.kind === 'extract');

test('a healthy job fires no rule, and every rule ran (none skipped)', () => {
  const results = runRules(healthyInput());
  assert.deepEqual(
    results.map((r) => r.rule),
    RULE_NAMES,
  );
  for (const r of results) assert.equal(r.status, 'ok', `${r.rule}: ${r.finding}`);
});

test('StepOutlier fires on a long spike that costs time, not on short or cheap ones', () => {
  const r = only('StepOutlier', (i) => (head(i)[30]!.ms = 150));
  assert.equal(r.evidence.headOutliers, 1);
  assert.equal(r.evidence.headWorstMs, 150);
  assert.equal(r.severity, 'info', 'about 4% of the job: worth knowing, under the 5% warning share');
  const input = healthyInput();
  head(input)[30]!.ms = 150;
  assert.deepEqual(fired(input, { StepOutlier: { sigma: 50 } }), [], 'a looser sigma tolerates the spike');
  // the case: two head steps of 11 ms (beyond 3 sigma of 5 ms steps) never matter
  const short = healthyInput();
  head(short)[20]!.ms = 11;
  head(short)[40]!.ms = 11;
  const s = runRules(short).find((x) => x.rule === 'StepOutlier')!;
  assert.equal(s.status, 'ok', s.finding);
  // a 60 ms spike is over the floor but costs under 2% of the job
  const cheap = healthyInput();
  head(cheap)[30]!.ms = 60;
  const c = runRules(cheap).find((x) => x.rule === 'StepOutlier')!;
  assert.equal(c.status, 'ok');
  assert.match(c.finding, /cost under 2%/);
});

test('LowUtilization fires when the CPU is mostly idle, and when the GPU is', () => {
  const cpu = only('LowUtilization', (i) => i.telemetry!.hardware.forEach((h) => ((h.machineCpuShare = 0.1), (h.cpuShare = 0.1), (h.cpuCores = 0.4))));
  assert.equal(cpu.evidence.medianCpuShare, 0.1);
  // an idle coordinator while worker processes keep the machine busy is not idle hardware
  const input = healthyInput();
  input.telemetry!.hardware.forEach((h) => ((h.cpuShare = 0.05), (h.cpuCores = 0.2)));
  assert.deepEqual(fired(input), []);
  const gpu = only('LowUtilization', (i) => i.telemetry!.hardware.forEach((h) => (h.gpus = [{ index: 0, utilization: 0.12, memoryMiB: 900 }])));
  assert.equal(gpu.evidence.medianGpuUtilization, 0.12);
  assert.match(gpu.finding, /GPU/);
});

test('InputBottleneck fires when decoding dominates extraction batches', () => {
  const r = only('InputBottleneck', (i) => extract(i).forEach((s) => (s.phases = { queue: 1, decode: 0.7 * s.ms, infer: 0.3 * s.ms - 1, update: 0 })));
  assert.equal(r.evidence.extractDecodeShare, 0.7);
  assert.match(r.recommendation, /workers|cache|smaller images/);
});

const risingValid = (i: RuleInput) => (i.epochs = i.epochs!.map((e, k) => (k >= 2 ? { ...e, validLoss: e.trainLoss + 0.1 + 0.15 * (k - 1) + 0.3 * (k - 2) } : e)));

test('Overfit fires when the valid loss rises while the train loss falls, with advice relative to the job', () => {
  const r = only('Overfit', (i) => {
    risingValid(i);
    i.bestEpoch = 6;
    i.settings = { augment: 12, weightDecay: 1e-4, labelSmoothing: 0.1, head: 'linear', patience: 5 };
  });
  assert.equal(r.evidence.fromEpoch, 3);
  assert.equal(r.evidence.toEpoch, 6);
  assert.equal(r.severity, 'warning');
  assert.match(r.recommendation, /--augment 24, this job used 12/);
  assert.ok(![...r.recommendation.matchAll(/--augment (\d+)/g)].some((m) => Number(m[1]) < 12), 'never less augmentation than used');
  assert.match(r.recommendation, /--weight-decay \(0\.001, this job used 0\.0001\)/);
  assert.match(r.recommendation, /--patience \(2, this job used 5\)/);
  // early stopping that kept an epoch before the rise makes it informational
  const input = healthyInput();
  risingValid(input);
  input.bestEpoch = 2;
  assert.equal(runRules(input).find((x) => x.rule === 'Overfit')!.severity, 'info');
  assert.deepEqual(fired(input, { Overfit: { epochs: 5 } }), [], 'K = 5 needs five rising epochs');
});

test('Overfit fires on a wide gap at the end: valid loss far above train, valid top-1 far below', () => {
  const r = only('Overfit', (i) => {
    const last = i.epochs!.at(-1)!;
    Object.assign(last, { trainLoss: 0.5, validLoss: 1.2, trainTop1: 0.98, validTop1: 0.7 });
  });
  assert.equal(r.evidence.lossRatio, 2.4);
  assert.equal(r.evidence.top1Gap, 0.28);
  assert.match(r.recommendation, /--augment 2\b/);
});

test('Overfit does not fire on a negative or shrinking gap, nor a high loss ratio at equal accuracy', () => {
  // the case: valid loss below train loss (label smoothing, augmentation) with the gap growing toward zero
  const negative = healthyInput();
  negative.epochs = negative.epochs!.map((e, k) => ({ ...e, validLoss: e.trainLoss - 0.5 + 0.05 * k }));
  const r = runRules(negative).find((x) => x.rule === 'Overfit')!;
  assert.equal(r.status, 'ok', r.finding);
  const sameTop1 = healthyInput();
  Object.assign(sameTop1.epochs!.at(-1)!, { trainLoss: 0.5, validLoss: 1.2, trainTop1: 0.9, validTop1: 0.85 });
  assert.deepEqual(fired(sameTop1), []);
});

test('rules that need epochs say "no epochs" for a head fitted in one solve, and misfire on none', () => {
  for (const epochs of [[], healthyInput().epochs!.slice(0, 1)]) {
    const input = healthyInput();
    input.epochs = epochs;
    input.telemetry!.epochs = epochs;
    input.telemetry!.steps = input.telemetry!.steps.filter((s) => s.kind === 'extract');
    if (epochs.length) (epochs[0] as { gradNorm?: number }).gradNorm = undefined;
    const results = runRules(input);
    assert.deepEqual(results.filter((r) => r.status === 'fired').map((r) => r.rule), [], JSON.stringify(results.filter((r) => r.status === 'fired')));
    for (const rule of ['Overfit', 'LossNotDecreasing'] as const) {
      const r = results.find((x) => x.rule === rule)!;
      assert.equal(r.status, 'skipped');
      assert.match(r.finding, epochs.length ? /only 1 epoch was recorded/ : /no epochs/);
    }
  }
  // a converged solve ends with a tiny gradient: that is not a vanishing gradient
  const solved = healthyInput();
  solved.epochs = [{ ...solved.epochs![0]!, gradNorm: 1e-9 }];
  solved.telemetry!.steps = solved.telemetry!.steps.filter((s) => s.kind === 'extract');
  assert.equal(runRules(solved).find((x) => x.rule === 'VanishingGradient')!.status, 'skipped');
});

test('LossNotDecreasing fires on a flat loss and on a diverged one', () => {
  const flat = only('LossNotDecreasing', (i) => (i.epochs = i.epochs!.map((e, k) => ({ ...e, trainLoss: 2 - 0.01 * k, validLoss: 2.1 - 0.01 * k }))));
  assert.equal(flat.evidence.relativeDecrease, 0.025);
  const nan = runRules({ ...healthyInput(), epochs: healthyInput().epochs!.map((e, k) => (k === 4 ? { ...e, trainLoss: Number.NaN } : e)) }).find((r) => r.rule === 'LossNotDecreasing')!;
  assert.equal(nan.status, 'fired');
  assert.match(nan.finding, /diverged/);
});

test('VanishingGradient fires when the last epoch has near-zero gradients', () => {
  const r = only('VanishingGradient', (i) => head(i).forEach((s) => s.epoch === 6 && (s.gradNorm = 1e-9)));
  assert.equal(r.evidence.lastEpochMedianGradNorm, 1e-9);
});

test('ExplodingGradient fires on a huge or non-finite gradient norm', () => {
  const big = only('ExplodingGradient', (i) => (head(i)[40]!.gradNorm = 5000));
  assert.equal(big.evidence.maxGradNorm, 5000);
  const nan = only('ExplodingGradient', (i) => (head(i)[40]!.gradNorm = Number.POSITIVE_INFINITY));
  assert.equal(nan.evidence.nonFiniteSteps, 1);
  // growth relative to the first epoch, below the absolute limit
  const grew = only('ExplodingGradient', (i) => (head(i)[40]!.gradNorm = 500), { ExplodingGradient: { growth: 50 } });
  assert.match(grew.finding, /x the first epoch/);
  // one solve (the L-BFGS probe records every evaluation as epoch 1): a large start that converges is no growth
  const solve = runRules({ ...healthyInput(), telemetry: { ...healthyInput().telemetry!, steps: head(healthyInput()).map((s, k) => ({ ...s, epoch: 1, gradNorm: k === 0 ? 9.6 : 6e-4 })) } }).find((r) => r.rule === 'ExplodingGradient')!;
  assert.equal(solve.status, 'ok', solve.finding);
});

test('ClassImbalance fires on a skewed training split and on an empty class', () => {
  const r = only('ClassImbalance', (i) => ((i.dataset!.report.imbalance = { min: 5, max: 60, ratio: 12, smallest: ['poodle'] }), (i.settings = { augment: 12 })));
  assert.equal(r.evidence.ratio, 12);
  assert.match(r.recommendation, /poodle/);
  assert.match(r.recommendation, /--augment 24/, 'more augmentation than the job used');
  only('ClassImbalance', (i) => (i.dataset!.report.imbalance = { min: 0, max: 60, ratio: null, smallest: ['poodle'] }));
});

test('DuplicateLeakage fires when an image is in two splits', () => {
  const r = only('DuplicateLeakage', (i) => i.dataset!.report.duplicates.push({ sha256: 'b'.repeat(64), paths: ['test/collie/9.jpg', 'train/collie/3.jpg'], splits: ['train', 'test'] }));
  assert.equal(r.evidence.leakedGroups, 1);
  assert.equal(r.evidence.withinSplitDuplicateGroups, 1);
});

test('PoorCalibration fires on a high ECE before temperature scaling', () => {
  const r = only('PoorCalibration', (i) => (i.metrics!.test = { n: 30, ece: 0.03, eceUncalibrated: 0.25 }));
  assert.equal(r.evidence.eceUncalibrated, 0.25);
  assert.equal(r.severity, 'info', 'temperature scaling fixed it');
  const still = only('PoorCalibration', (i) => (i.metrics!.test = { n: 30, ece: 0.2, eceUncalibrated: 0.25 }));
  assert.equal(still.severity, 'warning');
});

test('rules are configurable: thresholds, disabling, and clear errors for bad settings', () => {
  const input = healthyInput();
  input.dataset!.report.imbalance = { min: 20, max: 60, ratio: 3, smallest: ['poodle'] };
  assert.deepEqual(fired(input), ['ClassImbalance']);
  assert.deepEqual(fired(input, { ClassImbalance: { ratio: 4 } }), []);
  const results = runRules(input, { ClassImbalance: { enabled: false } });
  assert.ok(!results.some((r) => r.rule === 'ClassImbalance'));
  assert.throws(
    () => runRules(input, { Overfit: { epochs: 0 } } as RulesConfigInput),
    (e: unknown) => e instanceof KennelError && /Overfit\.epochs/.test(e.message),
  );
  assert.throws(
    () => runRules(input, { NoSuchRule: {} } as unknown as RulesConfigInput),
    (e: unknown) => e instanceof KennelError && /NoSuchRule/.test(e.message),
  );
});

test('rules without data say so instead of guessing', () => {
  const results = runRules({});
  for (const r of results) assert.equal(r.status, 'skipped', r.rule);
});
