import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { createFunction, endpointClientFor, FunctionGateway, functionsRoutes } from '../../src/functions/index.ts';
import { importModel } from '../../src/registry/index.ts';
import { createKey, type Actor } from '../../src/security/index.ts';
import { startDaemon, type Daemon } from '../../src/server/index.ts';
import { openWorkspace, type Workspace } from '../../src/store/index.ts';
import { sharedDir, tmpHome } from '../helpers/paths.ts';
import { securedApp } from '../security/app.ts';

/**
 * The function path end to end with a real endpoint: the daemon's runtime serves the shared
 * MobileNetV2, and the classify function reaches it in-process through endpointClientFor. Its
 * answers must equal calling the endpoint directly.
 */
const by: Actor = { principal: 'local:test', plane: 'cli' };
const beagle = readFileSync(path.join(sharedDir(), 'data/real-photos/aipnd-dogs/Beagle_01125.jpg'));
const BEAGLE = 162; // ImageNet class index

let daemon: Daemon;
let ws: Workspace;
let gateway: FunctionGateway;
let app: Awaited<ReturnType<typeof securedApp>>;
let images: http.Server;
let key: string;

before(async () => {
  const home = tmpHome();
  ws = openWorkspace(home);
  await importModel(ws, path.join(sharedDir(), 'models/mobilenetv2-12-int8.onnx'), { name: 'mnet', labels: Array.from({ length: 1000 }, (_, i) => `class-${i}`) });
  daemon = await startDaemon({ home, port: 0, adminPort: 0, log: pino({ level: 'silent' }) });
  await daemon.runtime.create({ name: 'dogs', variants: [{ name: 'primary', model: 'mnet' }], instances: 1 });
  await createFunction(ws, 'classify', { endpoint: 'dogs', route: '/v1/classify' }, by);
  await createFunction(ws, 'stray', { endpoint: 'cats' }, by);
  key = createKey(ws, 'app', { allow: ['function:Invoke:function/*', 'endpoint:Invoke:endpoint/dogs'], expiresInMs: 3_600_000 }, by).key;
  images = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'image/jpeg' }).end(beagle));
  await new Promise<void>((resolve) => images.listen(0, '127.0.0.1', resolve));
  gateway = new FunctionGateway({ ws, endpoints: endpointClientFor(daemon.runtime), fetch: { allowHttp: true, allowPrivate: ['127.0.0.1'] } });
  app = await securedApp({ ws, plane: 'data' }, async (a) => {
    await a.register(functionsRoutes, { gateway });
  });
});

after(async () => {
  await app?.close();
  await gateway?.close();
  images?.close();
  await daemon?.close();
  ws?.close();
});

interface Answer {
  predictions: Array<{ label: string; index: number; score: number }>;
  model: string;
  variant: string;
}

const call = async (route: string, body: Buffer | string, contentType: string) => {
  const res = await fetch(app.url + route, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': contentType }, body });
  return { status: res.status, body: (await res.json()) as Answer & { error?: { message: string } } };
};

describe('classify function in front of a real endpoint', () => {
  it('answers exactly what the endpoint answers, for {"url"}, {"image"} and raw bytes on /v1/classify', async () => {
    const direct = await fetch(`http://127.0.0.1:${daemon.state.port}/endpoints/dogs/invocations`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'image/jpeg' }, body: beagle });
    const expected = (await direct.json()) as Answer;
    assert.equal(expected.predictions[0]!.index, BEAGLE);
    const url = `http://127.0.0.1:${(images.address() as AddressInfo).port}/beagle.jpg`;
    for (const [route, body, type] of [
      ['/functions/classify/invoke', JSON.stringify({ url }), 'application/json'],
      ['/functions/classify/invoke', JSON.stringify({ image: beagle.toString('base64') }), 'application/json'],
      ['/v1/classify', beagle, 'image/jpeg'],
    ] as const) {
      const got = await call(route, body, type);
      assert.equal(got.status, 200, JSON.stringify(got.body));
      assert.deepEqual(got.body, { predictions: expected.predictions, model: 'mnet@1', variant: 'primary' });
    }
  });

  it("passes the endpoint's own refusals through: a missing endpoint, an image it cannot decode", async () => {
    const missing = await call('/functions/stray/invoke', JSON.stringify({ image: beagle.toString('base64') }), 'application/json');
    assert.equal(missing.status, 404);
    assert.match(missing.body.error!.message, /Endpoint cats was not found/);
    const truncated = await call('/functions/classify/invoke', JSON.stringify({ image: beagle.subarray(0, 3000).toString('base64') }), 'application/json');
    assert.equal(truncated.status, 422);
    assert.match(truncated.body.error!.message, /could not be decoded/);
  });
});
