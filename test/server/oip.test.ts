import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import sharp from 'sharp';
import { decodeRgb, normalizeInto, type PreprocessSpec } from '../../src/inference/index.js';
import { getModel } from '../../src/registry/index.js';
import { createKey, readAudit } from '../../src/security/index.js';
import { startDaemon, type Daemon } from '../../src/server/index.js';
import { openWorkspace, type Workspace } from '../../src/store/index.js';
import { tmpHome } from '../helpers/paths.js';
import { bearer, invokeKey, photo, workspaceWithModel } from '../serving/fixtures.js';

/**
 * The Open Inference Protocol (KServe V2 REST) on the data plane. Requests are built as the
 * protocol's specification (kserve/open-inference-protocol, specification/protocol/
 * inference_rest.md) shows them: {"id", "inputs": [{"name", "shape", "datatype", "data"}],
 * "outputs": [{"name"}]}, answers {"model_name", "model_version", "id", "outputs"}, errors
 * {"error": "<message>"} with a 4xx status.
 */
let daemon: Daemon;
let base: string;
let key: string;
let home: string;
let spec: PreprocessSpec;
/** the model's probabilities output (its card's outputName) */
let probName: string;

interface Tensor {
  name: string;
  shape: number[];
  datatype: string;
  data: unknown[];
}
interface InferAnswer {
  model_name: string;
  model_version: string;
  id: string;
  outputs: Tensor[];
  error?: string;
}

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = bearer(key)): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${base}${path}`, { method, headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers }, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const infer = async (body: unknown, path = '/v2/models/dogs/infer') => {
  const r = await call('POST', path, body);
  return { status: r.status, body: r.body as unknown as InferAnswer };
};

/** A 4xx answer in the protocol's error shape: {"error": "<a sentence>"}. */
function refused(a: { status: number; body: Record<string, unknown> }, status: number, message?: RegExp): void {
  assert.equal(a.status, status, JSON.stringify(a.body).slice(0, 300));
  assert.deepEqual(Object.keys(a.body), ['error']);
  assert.equal(typeof a.body.error, 'string');
  if (message) assert.match(a.body.error as string, message);
}

const output = (a: InferAnswer, name: string): Tensor => {
  const t = a.outputs.find((o) => o.name === name);
  assert.ok(t, `output ${name} in ${a.outputs.map((o) => o.name).join(', ')}`);
  return t;
};

function assertClose(a: unknown[], b: unknown[], tolerance = 1e-4): void {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs((a[i] as number) - (b[i] as number)) <= tolerance, `element ${i}: ${String(a[i])} vs ${String(b[i])}`);
}

/** The photo's RGB pixels at the model's input size, HWC (as the model card preprocesses it). */
const pixelsHwc = async (): Promise<Uint8Array> => new Uint8Array(await decodeRgb(photo(), spec));

/** HWC pixels in CHW order. */
function toChw(hwc: ArrayLike<number>, size: number): number[] {
  const plane = size * size;
  const out = new Array<number>(plane * 3);
  for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) out[c * plane + p] = hwc[p * 3 + c]!;
  return out;
}

/** Nests a flat row-major array as the shape says (the protocol allows nested data). */
function nest(flat: number[], shape: number[]): unknown[] {
  if (shape.length === 1) return flat;
  const step = flat.length / shape[0]!;
  return Array.from({ length: shape[0]! }, (_, i) => nest(flat.slice(i * step, (i + 1) * step), shape.slice(1)));
}

let reference: { probabilities: unknown[]; label: string };

before(async () => {
  home = tmpHome();
  let ws: Workspace = await workspaceWithModel(home, 'mnet', 'v1');
  ws.close();
  ws = await workspaceWithModel(home, 'mnet', 'v2');
  key = invokeKey(ws);
  spec = getModel(ws, 'mnet@1').card.preprocess;
  probName = getModel(ws, 'mnet@1').card.outputName;
  ws.close();
  daemon = await startDaemon({ home, port: 0, adminPort: 0, log: pino({ level: 'silent' }) });
  // version 1 takes the traffic; version 2 is reached by naming it
  await daemon.runtime.create({ name: 'dogs', variants: [{ name: 'primary', model: 'mnet@1', weight: 1000 }, { name: 'next', model: 'mnet@2', weight: 0.0001 }], instances: 1 });
  base = `http://127.0.0.1:${daemon.state.port}`;
  const a = await infer({ inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', data: [photo().toString('base64')] }] });
  assert.equal(a.status, 200, JSON.stringify(a.body));
  reference = { probabilities: output(a.body, probName).data, label: output(a.body, 'label').data[0] as string };
});

after(async () => {
  await daemon?.close();
});

describe('health and metadata', () => {
  test('server live, ready and metadata are public', async () => {
    assert.deepEqual(await call('GET', '/v2/health/live', undefined, {}), { status: 200, body: { live: true } });
    assert.deepEqual(await call('GET', '/v2/health/ready', undefined, {}), { status: 200, body: { ready: true } });
    const meta = await call('GET', '/v2', undefined, {});
    assert.equal(meta.status, 200);
    assert.equal(meta.body.name, 'kennel');
    assert.equal(typeof meta.body.version, 'string');
    assert.ok(Array.isArray(meta.body.extensions));
  });

  test('model metadata: inputs, outputs, versions and labels', async () => {
    const m = await call('GET', '/v2/models/dogs');
    assert.equal(m.status, 200, JSON.stringify(m.body).slice(0, 300));
    assert.equal(m.body.name, 'dogs');
    assert.deepEqual(m.body.versions, ['1', '2']);
    assert.equal(m.body.platform, 'onnxruntime_onnx');
    const shape = spec.layout === 'NCHW' ? [-1, 3, spec.size, spec.size] : [-1, spec.size, spec.size, 3];
    assert.deepEqual(m.body.inputs, [{ name: getInputName(), datatype: 'FP32', shape }]);
    assert.deepEqual(m.body.outputs, [
      { name: probName, datatype: 'FP32', shape: [-1, 1000] },
      { name: 'label', datatype: 'BYTES', shape: [-1] },
    ]);
    const params = m.body.parameters as { labels: string[]; input_datatypes: string[] };
    assert.equal(params.labels.length, 1000);
    assert.equal(params.labels[0], 'v1-0');
    assert.deepEqual(params.input_datatypes, ['BYTES', 'UINT8', 'FP32']);
    const v2 = await call('GET', '/v2/models/dogs/versions/2');
    assert.equal((v2.body.parameters as { labels: string[] }).labels[0], 'v2-0');
  });

  test('model ready, per version too; unknown models and versions are 404', async () => {
    assert.deepEqual(await call('GET', '/v2/models/dogs/ready'), { status: 200, body: { name: 'dogs', ready: true } });
    assert.deepEqual(await call('GET', '/v2/models/dogs/versions/2/ready'), { status: 200, body: { name: 'dogs', ready: true } });
    refused(await call('GET', '/v2/models/cats'), 404, /cats/);
    refused(await call('GET', '/v2/models/cats/ready'), 404);
    refused(await call('GET', '/v2/models/dogs/versions/7'), 404, /serves no model version 7/);
  });
});

describe('inference', () => {
  test('BYTES: base64 JPEG and PNG, batched; the request id comes back', async () => {
    const png = await sharp(photo()).png().toBuffer();
    const a = await infer({ id: '42', inputs: [{ name: 'input0', shape: [2], datatype: 'BYTES', data: [photo().toString('base64'), png.toString('base64')] }] });
    assert.equal(a.status, 200, JSON.stringify(a.body).slice(0, 300));
    assert.equal(a.body.id, '42');
    assert.equal(a.body.model_name, 'dogs');
    assert.equal(a.body.model_version, '1');
    const probs = output(a.body, probName);
    assert.equal(probs.datatype, 'FP32');
    assert.deepEqual(probs.shape, [2, 1000]);
    assert.equal(probs.data.length, 2000);
    const row0 = probs.data.slice(0, 1000) as number[];
    assert.ok(Math.abs(row0.reduce((s, p) => s + p, 0) - 1) < 1e-3, 'a probability row sums to 1');
    assertClose(row0, reference.probabilities);
    const labels = output(a.body, 'label');
    assert.deepEqual([labels.datatype, labels.shape], ['BYTES', [2]]);
    // the label is the top class of its row, and what the invocations route answers for the same photo
    assert.equal(labels.data[0], `v1-${row0.indexOf(Math.max(...row0))}`);
    const res = await fetch(`${base}/endpoints/dogs/invocations?topK=1`, { method: 'POST', headers: { 'content-type': 'image/jpeg', ...bearer(key) }, body: photo() });
    const plain = (await res.json()) as { predictions: Array<{ label: string; score: number }> };
    assert.equal(plain.predictions[0]!.label, labels.data[0]);
    assert.ok(Math.abs(plain.predictions[0]!.score - Math.max(...row0)) < 1e-4);
  });

  test('UINT8 pixels, NHWC and NCHW, flat and nested, give the same probabilities as the encoded image', async () => {
    const hwc = Array.from(await pixelsHwc());
    const s = spec.size;
    for (const [shape, data] of [
      [[1, s, s, 3], hwc],
      [[1, 3, s, s], toChw(hwc, s)],
      [[1, 3, s, s], nest(toChw(hwc, s), [1, 3, s, s])],
    ] as Array<[number[], unknown[]]>) {
      const a = await infer({ inputs: [{ name: 'pixels', shape, datatype: 'UINT8', data }] });
      assert.equal(a.status, 200, JSON.stringify(a.body).slice(0, 300));
      assertClose(output(a.body, probName).data, reference.probabilities);
      assert.equal(output(a.body, 'label').data[0], reference.label);
    }
  });

  test('FP32: the model input itself, in either layout', async () => {
    const s = spec.size;
    const input = new Float32Array(3 * s * s);
    normalizeInto(await pixelsHwc(), spec, input, 0);
    const own = Array.from(input);
    // the same values in the other layout
    const plane = s * s;
    const other = new Array<number>(own.length);
    for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) {
      if (spec.layout === 'NCHW') other[p * 3 + c] = own[c * plane + p]!;
      else other[c * plane + p] = own[p * 3 + c]!;
    }
    const ownShape = spec.layout === 'NCHW' ? [1, 3, s, s] : [1, s, s, 3];
    const otherShape = spec.layout === 'NCHW' ? [1, s, s, 3] : [1, 3, s, s];
    for (const [shape, data] of [
      [ownShape, own],
      [otherShape, other],
    ] as Array<[number[], number[]]>) {
      const a = await infer({ inputs: [{ name: getInputName(), shape, datatype: 'FP32', data }], outputs: [{ name: probName }] });
      assert.equal(a.status, 200, JSON.stringify(a.body).slice(0, 300));
      assert.deepEqual(a.body.outputs.map((o) => o.name), [probName]);
      assertClose(a.body.outputs[0]!.data, reference.probabilities);
    }
  });

  test('requested outputs only; a named version answers from that version', async () => {
    const body = { inputs: [{ name: 'image', shape: [1, 1], datatype: 'BYTES', data: [[photo().toString('base64')]] }], outputs: [{ name: 'label' }] };
    const a = await infer(body);
    assert.equal(a.status, 200, JSON.stringify(a.body).slice(0, 300));
    assert.deepEqual(a.body.outputs, [{ name: 'label', datatype: 'BYTES', shape: [1], data: [reference.label] }]);
    const v2 = await infer(body, '/v2/models/dogs/versions/2/infer');
    assert.equal(v2.status, 200, JSON.stringify(v2.body).slice(0, 300));
    assert.equal(v2.body.model_version, '2');
    assert.equal(v2.body.outputs[0]!.data[0], reference.label.replace('v1-', 'v2-'));
    refused(await call('POST', '/v2/models/dogs/versions/9/infer', body), 404, /no model version 9/);
  });
});

describe('bad requests get 4xx and {"error": "..."}', () => {
  test("the specification's own example request (two inputs, UINT32 and BOOL)", async () => {
    const example = {
      id: '42',
      inputs: [
        { name: 'input0', shape: [2, 2], datatype: 'UINT32', data: [1, 2, 3, 4] },
        { name: 'input1', shape: [3], datatype: 'BOOL', data: [true] },
      ],
      outputs: [{ name: 'output0' }],
    };
    refused(await call('POST', '/v2/models/dogs/infer', example), 400, /output0|2 input tensors/);
    refused(await call('POST', '/v2/models/dogs/infer', { ...example, outputs: undefined }), 400, /2 input tensors/);
    refused(await call('POST', '/v2/models/dogs/infer', { inputs: [example.inputs[0]] }), 400, /UINT32/);
  });

  test('shapes, element counts, values and encodings', async () => {
    const s = spec.size;
    const cases: Array<[unknown, RegExp]> = [
      [{ inputs: [{ name: 'x', shape: [1, 3, 100, 100], datatype: 'UINT8', data: new Array(30_000).fill(0) }] }, /\[N, 3, 224, 224\]|takes \[N/],
      [{ inputs: [{ name: 'x', shape: [1, 3, s, s], datatype: 'UINT8', data: [1, 2, 3] }] }, /3 elements/],
      [{ inputs: [{ name: 'x', shape: [1, s, s, 3], datatype: 'UINT8', data: new Array(3 * s * s).fill(256) }] }, /0-255|0 to 255/],
      [{ inputs: [{ name: 'x', shape: [1, s, s, 3], datatype: 'FP32', data: new Array(3 * s * s).fill('a') }] }, /not a number/],
      [{ inputs: [{ name: 'x', shape: [1], datatype: 'BYTES', data: ['not base64!'] }] }, /base64/],
      [{ inputs: [{ name: 'x', shape: [1], datatype: 'BYTES', data: [Buffer.from('hello').toString('base64')] }] }, /not a JPEG/],
      [{ inputs: [{ name: 'x', shape: [2], datatype: 'BYTES', data: [photo().toString('base64')] }] }, /1 elements/],
      [{ inputs: [{ name: 'x', shape: [0], datatype: 'BYTES', data: [] }] }, /0 images/],
      [{ inputs: [{ name: 'x', shape: [1], datatype: 'BYTES', data: [[[photo().toString('base64')]]] }] }, /nested deeper/],
      [{ inputs: [{ name: 'x', shape: [1], datatype: 'BYTES' }] }, /data/],
      [{ inputs: [] }, /inputs/],
      ['{"inputs": [', /JSON/],
    ];
    for (const [body, message] of cases) refused(await call('POST', '/v2/models/dogs/infer', body), body === cases[5]![0] ? 415 : 400, message);
  });

  test('the endpoint keeps serving after bad requests', async () => {
    const a = await infer({ inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', data: [photo().toString('base64')] }] });
    assert.equal(a.status, 200);
  });
});

describe('keys and policies are those of the invocations route', () => {
  test('no key: 401; a key for another endpoint: 403 on metadata, ready and infer; each request is audited', async () => {
    refused(await call('GET', '/v2/models/dogs', undefined, {}), 401);
    const ws = openWorkspace(home);
    try {
      const other = createKey(ws, 'other-only', { allow: ['endpoint:Invoke:endpoint/other'] }, { principal: 'local:test', plane: 'cli' }).key;
      const body = { inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', data: [photo().toString('base64')] }] };
      refused(await call('GET', '/v2/models/dogs', undefined, bearer(other)), 403);
      refused(await call('GET', '/v2/models/dogs/ready', undefined, bearer(other)), 403);
      refused(await call('POST', '/v2/models/dogs/infer', body, bearer(other)), 403);
      const entries = readAudit(ws, { plane: 'data', resource: 'endpoint/dogs', limit: 10_000 });
      const infers = entries.filter((e) => (e.detail as { route?: string }).route === '/v2/models/:name/infer');
      assert.ok(infers.some((e) => e.status === 403), 'the refused infer is audited');
      assert.ok(infers.some((e) => e.status === 200), 'served infers are audited');
    } finally {
      ws.close();
    }
  });
});

function getInputName(): string {
  const ws = openWorkspace(home);
  try {
    return getModel(ws, 'mnet@1').card.inputName;
  } finally {
    ws.close();
  }
}
