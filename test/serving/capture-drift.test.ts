import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import sharp from 'sharp';
import { addBackbone } from '../../src/backbones/index.js';
import { Rng } from '../../src/core/index.js';
import { getDatasetVersion, importDataset } from '../../src/data/index.js';
import { checkDrift, driftHistory, driftReference, latestDriftPerModel, MIN_DRIFT_CAPTURES, type DriftResult } from '../../src/housekeeping/index.js';
import { CONFIDENCE_QUANTILES, confidenceDrop, mmdTest, type Rows } from '../../src/insights/index.js';
import { startDaemon, type Daemon } from '../../src/server/index.js';
import { CAPTURE_DIMS, CaptureSink, captureCounts, capturedModels, enforceCaptureBounds, getEndpoint, readCaptures, type CapturedRequest } from '../../src/serving/index.js';
import { openWorkspace, type Workspace } from '../../src/store/index.js';
import { train } from '../../src/training/index.js';
import { repoRoot, sharedDir, tmpDir, tmpHome } from '../helpers/paths.js';
import { bearer, invokeKey, mobilenetPath, waitFor } from './fixtures.js';

/**
 * Data capture and drift through a real endpoint: a model trained on breeds-mini (the shared
 * MobileNetV2's features), an endpoint capturing 100% of its requests; the 50 held-out photos
 * (the training distribution) and the same photos heavily blurred with a colour cast (another
 * domain) are sent through it. Their captured features (the replica's feature tap, projected to
 * 64 numbers) are checked against the training images' cached features.
 */
const root = path.join(sharedDir(), 'data/breeds-mini');
const filesOf = (split: string) => readdirSync(path.join(root, split)).sort().flatMap((d) => readdirSync(path.join(root, split, d)).sort().map((f) => path.join(root, split, d, f)));
let daemon: Daemon;
let home: string;
let base: string;
let key: string;
let same: Buffer[];
let shifted: Buffer[];

function kennel(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src/cli/main.ts'), ...args], { env: { ...process.env, KENNEL_HOME: home }, encoding: 'utf8', timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
    });
  });
}

const invoke = async (image: Buffer) => {
  const res = await fetch(`${base}/endpoints/dogs/invocations?topK=1`, { method: 'POST', headers: { 'content-type': 'image/jpeg', ...bearer(key) }, body: image });
  assert.equal(res.status, 200);
  return res.json() as Promise<{ predictions: Array<{ label: string }>; features?: unknown }>;
};

/** Sends the images (4 at a time) and waits until they are all captured. */
async function send(images: Buffer[]): Promise<CapturedRequest[]> {
  const ws = openWorkspace(home);
  try {
    const before = captureCounts(ws, 'dogs').rows;
    for (let i = 0; i < images.length; i += 4) await Promise.all(images.slice(i, i + 4).map(invoke));
    await waitFor('captures', () => {
      daemon.runtime.flushCapture('dogs');
      return captureCounts(ws, 'dogs').rows >= before + images.length;
    });
    return readCaptures(ws, 'dogs', { last: images.length });
  } finally {
    ws.close();
  }
}

before(async () => {
  home = tmpHome();
  const ws = openWorkspace(home);
  await importDataset(ws, root, { name: 'breeds' });
  await addBackbone(ws, mobilenetPath(), { name: 'mobilenetv2-12-int8' });
  await train(ws, { dataset: 'breeds', backbone: 'mobilenetv2-12-int8' });
  key = invokeKey(ws);
  ws.close();
  const held = [...filesOf('valid'), ...filesOf('test')];
  same = held.map((f) => readFileSync(f));
  shifted = await Promise.all(held.map((f) => sharp(f).rotate().blur(6).linear([1.3, 1.0, 0.6], [20, 0, -10]).jpeg().toBuffer()));
  daemon = await startDaemon({ home, port: 0, adminPort: 0, log: pino({ level: 'silent' }), driftIntervalMs: 3_600_000 });
  base = `http://127.0.0.1:${daemon.state.port}`;
  await daemon.runtime.create({ name: 'dogs', variants: [{ name: 'primary', model: 'breeds' }], instances: 1 });
});

after(async () => {
  await daemon?.close();
});

test('capture is off by default; --capture turns it on and captured requests answer as any other', async () => {
  assert.equal(daemon.runtime.describe('dogs').spec.capture, null);
  await invoke(same[0]!);
  daemon.runtime.flushCapture('dogs');
  const ws = openWorkspace(home);
  assert.equal(captureCounts(ws, 'dogs').rows, 0, 'nothing is captured without --capture');
  ws.close();
  const r = await kennel(['endpoints', 'update', 'dogs', '--capture', '100', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual((JSON.parse(r.stdout) as { spec: { capture: unknown } }).spec.capture, { percent: 100, retentionDays: 30, maxRows: 100_000, images: false });
  const answer = await invoke(same[0]!);
  assert.equal(answer.features, undefined, 'features never leave in the answer');
  const [c] = await send([same[1]!]);
  assert.equal(c!.model, 'breeds@1');
  assert.equal(c!.variant, 'primary');
  assert.equal(c!.features?.length, CAPTURE_DIMS);
  assert.match(c!.sha256, /^[0-9a-f]{64}$/);
  assert.ok(c!.score > 0 && c!.score <= 1 && c!.latencyMs > 0);
  const ws2 = openWorkspace(home);
  assert.equal(captureCounts(ws2, 'dogs').images, 0, 'no image is stored without --capture-images');
  ws2.close();
  // --capture-images stores them (in the capture's row), --no-capture-images stops it
  const on = await kennel(['endpoints', 'update', 'dogs', '--capture-images', '--json']);
  assert.equal(on.code, 0, on.stderr);
  assert.equal((JSON.parse(on.stdout) as { spec: { capture: { images: boolean } } }).spec.capture.images, true);
  await send([same[2]!]);
  const off = await kennel(['endpoints', 'update', 'dogs', '--no-capture-images', '--json']);
  assert.equal((JSON.parse(off.stdout) as { spec: { capture: { images: boolean; percent: number } } }).spec.capture.images, false);
  await send([same[3]!]);
  const ws3 = openWorkspace(home);
  const stored = ws3.db.prepare("SELECT image FROM captures WHERE endpoint = 'dogs' AND image IS NOT NULL").all() as Array<{ image: Buffer }>;
  ws3.close();
  assert.equal(stored.length, 1);
  assert.ok(stored[0]!.image.equals(same[2]!), 'the stored image is the request\'s bytes');
});

test('drift: 20 seeded trials of 30 captured requests each, shifted ones detected in at least 19, unshifted ones flagged in at most 1; checkDrift and kennel endpoints drift agree, and the alarm is an endpoint event', async (t) => {
  const ws = openWorkspace(home);
  try {
    const ref = await driftReference(ws, 'dogs', 'breeds@1');
    assert.equal(ref.rows, 100);
    // a training photo sent to the endpoint is captured with the features training cached for it
    const trainItems = (await getDatasetVersion(ws, 'breeds', 1)).items.filter((i) => i.split === 'train');
    const [own] = await send([readFileSync(await ws.artifacts.localPath(trainItems[7]!.sha256))]);
    assert.equal(own!.sha256, trainItems[7]!.sha256);
    const want = ref.projected.data.subarray(7 * CAPTURE_DIMS, 8 * CAPTURE_DIMS);
    const scale = Math.max(...Array.from(want, Math.abs));
    const worst = Math.max(...Array.from(own!.features!, (v, k) => Math.abs(v - want[k]!)));
    t.diagnostic(`a training photo's captured features vs its cached ones: largest difference ${worst.toExponential(2)} (scale ${scale.toFixed(2)})`);
    assert.ok(worst <= 1e-3 * scale, `captured features differ from the cached ones by ${worst}`);
    const sameCaptures = await send(same);
    const shiftedCaptures = await send(shifted);
    const rows = (c: CapturedRequest[]): Rows => {
      const data = new Float32Array(c.length * CAPTURE_DIMS);
      c.forEach((x, i) => data.set(x.features!, i * CAPTURE_DIMS));
      return { data, rows: c.length, cols: CAPTURE_DIMS };
    };
    const pick = (c: CapturedRequest[], rng: Rng) => rng.shuffle([...c]).slice(0, 30);
    // the model card keeps its held-out images' confidences: the confidence test counts among the alarms
    assert.equal(ref.confidence?.length, CONFIDENCE_QUANTILES);
    const alarmed = (c: CapturedRequest[], trial: number, rng: Rng) =>
      mmdTest(ref.projected, rows(c), { seed: trial, permutations: 300, alpha: 0.01 }).drift || confidenceDrop(c.map((x) => x.score), ref.confidence!, { alpha: 0.01, rng }).dropped;
    let detected = 0;
    let falseAlarms = 0;
    let confidenceAlarms = 0;
    for (let trial = 0; trial < 20; trial++) {
      const rng = new Rng(2000 + trial);
      const shiftedPick = pick(shiftedCaptures, rng);
      if (alarmed(shiftedPick, trial, rng)) detected++;
      if (confidenceDrop(shiftedPick.map((x) => x.score), ref.confidence!, { alpha: 0.01, rng }).dropped) confidenceAlarms++;
      if (alarmed(pick(sameCaptures, rng), trial, rng)) falseAlarms++;
    }
    t.diagnostic(`trials on captured features and confidences: detected ${detected}/20 (the confidence test alone ${confidenceAlarms}/20), false alarms ${falseAlarms}/20`);
    assert.ok(detected >= 19, `detected ${detected}/20`);
    assert.ok(falseAlarms <= 1, `${falseAlarms} false alarms in 20`);

    // the service on the newest 50 captures: the shifted ones
    const t0 = performance.now();
    const r = await checkDrift(ws, 'dogs', { last: 50 });
    t.diagnostic(`shifted: MMD^2 ${r.mmd.toPrecision(3)} threshold ${r.threshold.toPrecision(3)} p ${r.pValue.toFixed(3)} class shift ${r.classShift.toFixed(3)}/${r.classShiftThreshold.toFixed(3)} confidence ${r.meanConfidence.toFixed(3)}; check ${(performance.now() - t0).toFixed(0)} ms`);
    assert.equal(r.captures, 50);
    assert.equal(r.drifted, true, `MMD ${r.mmd} vs threshold ${r.threshold}`);
    assert.ok(r.mmd > r.threshold);
    assert.equal(r.reference.dataset, 'breeds@1');
    assert.ok(getEndpoint(ws, 'dogs').spec.capture);
    const events = daemon.runtime.describe('dogs').events;
    assert.ok(events.some((e) => e.kind === 'drift_detected'), 'the alarm is recorded as an endpoint event');
  } finally {
    ws.close();
  }
  // the CLI (through GET /v1/endpoints/dogs/drift) on the newest 50: shifted
  const cli = await kennel(['endpoints', 'drift', 'dogs', '--last', '50', '--json']);
  assert.equal(cli.code, 0, cli.stderr);
  const d = JSON.parse(cli.stdout) as DriftResult;
  assert.equal(d.endpoint, 'dogs');
  assert.equal(d.drifted, true);
  for (const k of ['captures', 'mmd', 'threshold', 'pValue', 'classShift', 'classShiftThreshold', 'meanConfidence'] as const) assert.equal(typeof d[k], 'number', k);

  // the same distribution again: the alarm clears
  await send(same);
  const ws2 = openWorkspace(home);
  try {
    const r = await checkDrift(ws2, 'dogs', { last: 50 });
    t.diagnostic(`unshifted: MMD^2 ${r.mmd.toPrecision(3)} threshold ${r.threshold.toPrecision(3)} p ${r.pValue.toFixed(3)} class shift ${r.classShift.toFixed(3)}/${r.classShiftThreshold.toFixed(3)} confidence ${r.meanConfidence.toFixed(3)}`);
    assert.equal(r.drifted, false, `MMD ${r.mmd} vs threshold ${r.threshold}`);
    assert.ok(daemon.runtime.describe('dogs').events.some((e) => e.kind === 'drift_cleared'));
    const history = driftHistory(ws2, 'dogs');
    assert.ok(history.length >= 3);
    assert.equal(history[0]!.drifted, false);
  } finally {
    ws2.close();
  }
  const hist = await fetch(`http://127.0.0.1:${daemon.state.adminPort}/v1/endpoints/dogs/drift/history?limit=2`, { headers: { authorization: `Bearer ${readFileSync(path.join(home, 'daemon', 'admin-token'), 'utf8').trim()}` } });
  assert.equal(hist.status, 200);
  assert.equal(((await hist.json()) as { results: unknown[] }).results.length, 2);
  // the daemon's schedule: a round checks an endpoint with new captures once, and not again without new ones
  const stored = () => {
    const w = openWorkspace(home);
    try {
      return driftHistory(w, 'dogs', 2000).length;
    } finally {
      w.close();
    }
  };
  const before = stored();
  await daemon.drift.tick();
  assert.equal(stored(), before + 1, 'a scheduled check is stored');
  await daemon.drift.tick();
  assert.equal(stored(), before + 1, 'no new captures: no new check');
  // the newest check's numbers are Prometheus gauges (an alert rule can watch kennel_drift_alarm)
  const metricsText = await (await fetch(`${base}/metrics`)).text();
  assert.match(metricsText, /kennel_drift_alarm\{endpoint="dogs"\} [01]/);
  assert.match(metricsText, /kennel_drift_mmd_threshold\{endpoint="dogs"\} \d/);
  // the console's Drift card reads the same history
  const consoleView = await fetch(`http://127.0.0.1:${daemon.state.adminPort}/api/endpoints/dogs/drift`, { headers: { authorization: `Bearer ${readFileSync(path.join(home, 'daemon', 'admin-token'), 'utf8').trim()}` } });
  assert.equal(consoleView.status, 200);
  const v = (await consoleView.json()) as { capture: { percent: number }; captures: number; results: Array<{ drifted: boolean }> };
  assert.equal(v.capture.percent, 100);
  assert.ok(v.captures >= 150);
  // newest first: the scheduled check (on the newest 200 captures, the shifted ones among them), then the on-demand ones
  assert.equal(v.results.length, stored());
  assert.ok(v.results.some((r) => r.drifted) && v.results.some((r) => !r.drifted));
});

test("each variant's model is checked on its own captures, with its own alarm; kennel endpoints drift --model picks one", async () => {
  // a second model trained on the same (cached) features, as a second variant
  const ws = openWorkspace(home);
  try {
    await train(ws, { dataset: 'breeds', backbone: 'mobilenetv2-12-int8', head: 'minibatch', epochs: 3, seed: 1, newVersion: true });
  } finally {
    ws.close();
  }
  await daemon.runtime.update('dogs', { variants: [{ name: 'b', model: 'breeds@2', weight: 1 }] });
  const secondCaptures = () => {
    const w = openWorkspace(home);
    try {
      return readCaptures(w, 'dogs', { last: 1000, model: 'breeds@2' }).filter((c) => c.features).length;
    } finally {
      w.close();
    }
  };
  // requests are split by weight at random: send until the second model has enough for a check
  for (let round = 0; round < 10 && secondCaptures() < MIN_DRIFT_CAPTURES; round++) await send(same);
  assert.ok(secondCaptures() >= MIN_DRIFT_CAPTURES, `breeds@2 answered ${secondCaptures()} captured requests`);
  const w0 = openWorkspace(home);
  try {
    assert.deepEqual(capturedModels(w0, 'dogs').map((m) => m.model).sort(), ['breeds@1', 'breeds@2'], 'both variants answered captured requests');
  } finally {
    w0.close();
  }
  await daemon.drift.tick();
  const w = openWorkspace(home);
  try {
    const latest = latestDriftPerModel(w, 'dogs');
    assert.deepEqual(latest.map((r) => r.model).sort(), ['breeds@1', 'breeds@2'], 'the schedule checked each model');
    assert.equal(driftHistory(w, 'dogs', 1, 'breeds@2')[0]!.reference.dataset, 'breeds@1');
  } finally {
    w.close();
  }
  const cli = await kennel(['endpoints', 'drift', 'dogs', '--model', 'breeds@2', '--last', '40', '--json']);
  assert.equal(cli.code, 0, cli.stderr);
  assert.equal((JSON.parse(cli.stdout) as DriftResult).model, 'breeds@2');
  const unknown = await kennel(['endpoints', 'drift', 'dogs', '--model', 'nope@1', '--json']);
  assert.notEqual(unknown.code, 0);
  assert.match(unknown.stderr, /no captured requests answered by nope@1/);
  await daemon.runtime.update('dogs', { removeVariants: ['b'] });
});

test('captures are bounded: the newest --capture-max-rows kept, rows past retention deleted, images only with --capture-images', () => {
  const ws: Workspace = openWorkspace(tmpDir('kennel-capture-'));
  try {
    const sink = new CaptureSink(ws, 'e', { percent: 100, retentionDays: 1, maxRows: 10, images: true });
    const image = Buffer.from('not really an image, but bytes to hash');
    for (let i = 0; i < 25; i++) sink.record(image, { model: 'm@1', variant: 'primary', predictions: [{ label: `c${i}`, index: i, score: 0.5 }], features: Array.from({ length: 1280 }, (_, k) => (k % 7) * 0.1 + i), ms: 3 });
    sink.flush();
    const kept = readCaptures(ws, 'e', { last: 100 });
    assert.equal(kept.length, 10);
    assert.deepEqual(kept.map((c) => c.label), Array.from({ length: 10 }, (_, i) => `c${15 + i}`), 'the newest are kept');
    assert.equal(captureCounts(ws, 'e').images, 10);
    // a day and a bit later, every row is past retention
    assert.equal(enforceCaptureBounds(ws, 'e', { retentionDays: 1, maxRows: 10 }, Date.now() + 1.1 * 86_400_000), 10);
    assert.equal(captureCounts(ws, 'e').rows, 0);
    sink.capture = { percent: 100, retentionDays: 1, maxRows: 10, images: false };
    sink.record(image, { model: 'm@1', variant: 'primary', predictions: [{ label: 'x', index: 0, score: 0.9 }], ms: 1 });
    sink.close();
    assert.deepEqual(captureCounts(ws, 'e'), { rows: 1, images: 0 });
    assert.equal(readCaptures(ws, 'e', { last: 1 })[0]!.features, undefined, 'a model without features is captured without them');
  } finally {
    ws.close();
  }
});
