import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import sharp from 'sharp';
import { startDaemon, type Daemon } from '../../src/server/index.js';
import { pngClaimingSize } from '../helpers/images.js';
import { tmpHome } from '../helpers/paths.js';
import { bearer, invokeKey, photo, workspaceWithModel } from './fixtures.js';

/**
 * Every kind of bad input gets a clear 4xx JSON error and the endpoint keeps serving; odd but
 * valid images (CMYK, 16-bit, EXIF-rotated, animated, greyscale, alpha) are classified correctly.
 */
const MAX_IMAGE_BYTES = 2 * 1024 * 1024;
const BEAGLE = 162;

let daemon: Daemon;
let base: string;
let pids: number[];
let key: string;

interface Answer {
  status: number;
  body: { predictions?: Array<{ label: string; index: number; score: number }>; model?: string; variant?: string; error?: { code: string; message: string; hint?: string } };
  headers: Headers;
}

async function post(body: Buffer | string | undefined, contentType: string | undefined, query = '', endpoint = 'dogs', headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(`${base}/endpoints/${endpoint}/invocations${query}`, { method: 'POST', headers: { ...(contentType ? { 'content-type': contentType } : {}), ...bearer(key), ...headers }, body });
  const text = await res.text();
  return { status: res.status, body: JSON.parse(text) as Answer['body'], headers: res.headers };
}

const postJson = (value: unknown, query = '') => post(typeof value === 'string' ? value : JSON.stringify(value), 'application/json', query);

function refused(a: Answer, status: number, code: string, message?: RegExp): void {
  assert.equal(a.status, status, JSON.stringify(a.body));
  assert.equal(a.body.error?.code, code);
  assert.ok(a.body.error!.message.length > 10 && a.body.error!.message.endsWith('.'), `a sentence: ${a.body.error!.message}`);
  if (message) assert.match(a.body.error!.message, message);
}

async function top(image: Buffer, type = 'image/png'): Promise<{ index: number; score: number }> {
  const a = await post(image, type, '?topK=1');
  assert.equal(a.status, 200, JSON.stringify(a.body));
  return a.body.predictions![0]!;
}

before(async () => {
  const home = tmpHome();
  const ws = await workspaceWithModel(home);
  key = invokeKey(ws);
  ws.close();
  daemon = await startDaemon({ home, port: 0, adminPort: 0, log: pino({ level: 'silent' }), maxImageBytes: MAX_IMAGE_BYTES });
  await daemon.runtime.create({ name: 'dogs', variants: [{ name: 'primary', model: 'mnet' }], instances: 1 });
  base = `http://127.0.0.1:${daemon.state.port}`;
  pids = daemon.runtime.describe('dogs').replicas.map((r) => r.pid!);
});

after(async () => {
  await daemon?.close();
});

describe('malformed requests', () => {
  test('empty body', async () => refused(await post(Buffer.alloc(0), 'image/jpeg'), 400, 'empty_body'));
  test('truncated JPEG', async () => refused(await post(photo().subarray(0, 4000), 'image/jpeg'), 422, 'bad_image', /could not be decoded/));
  test('truncated PNG', async () => {
    const png = await sharp(photo()).png().toBuffer();
    refused(await post(png.subarray(0, png.length / 3), 'image/png'), 422, 'bad_image');
  });
  test('truncated WebP', async () => {
    const webp = await sharp(photo()).webp().toBuffer();
    refused(await post(webp.subarray(0, webp.length / 2), 'image/webp'), 422, 'bad_image');
  });
  test('random bytes labelled image/jpeg', async () => refused(await post(randomBytes(5000), 'image/jpeg'), 415, 'unsupported_image'));
  test('text', async () => refused(await post('hello, is this a dog?', 'text/plain'), 415, 'unsupported_media_type', /text\/plain/));
  test('no content type', async () => refused(await post(photo(), undefined), 415, 'unsupported_media_type'));
  test('unsupported content type (application/pdf)', async () => refused(await post(Buffer.from('%PDF-1.4\n'), 'application/pdf'), 415, 'unsupported_media_type'));
  test('BMP', async () => refused(await post(Buffer.concat([Buffer.from('BM'), randomBytes(100)]), 'image/bmp'), 415, 'unsupported_media_type'));
  test('SVG as image/svg+xml', async () => refused(await post('<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>', 'image/svg+xml'), 415, 'unsupported_media_type'));
  test('SVG labelled image/png (never reaches the decoder)', async () => {
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="224" height="224"><rect width="224" height="224" fill="red"/></svg>');
    refused(await post(svg, 'image/png'), 415, 'unsupported_image');
  });
  test('PNG declaring 20000x20000 pixels (decompression bomb)', async () => refused(await post(pngClaimingSize(20_000, 20_000), 'image/png'), 422, 'bad_image', /pixel limit/));
  test('body over the size limit', async () => {
    const big = Buffer.concat([photo().subarray(0, 3), randomBytes(MAX_IMAGE_BYTES + 1024)]);
    refused(await post(big, 'image/jpeg'), 413, 'too_large');
  });
  test('JSON body over the size limit', async () => refused(await postJson({ image: 'A'.repeat(Math.ceil((MAX_IMAGE_BYTES * 4) / 3) + 100_000) }), 413, 'too_large'));
  test('base64 image over the size limit', async () => refused(await postJson({ image: Buffer.concat([photo().subarray(0, 3), randomBytes(MAX_IMAGE_BYTES + 10)]).toString('base64') }), 413, 'too_large'));
});

describe('malformed JSON', () => {
  test('JSON without "image"', async () => refused(await postJson({ picture: photo().toString('base64') }), 400, 'invalid_request', /image/));
  test('invalid base64', async () => refused(await postJson({ image: '!!not*base64??' }), 400, 'invalid_base64'));
  test('base64 with an impossible length', async () => refused(await postJson({ image: 'QUJDR' }), 400, 'invalid_base64'));
  test('base64 of bytes that are no image', async () => refused(await postJson({ image: Buffer.from('just some text, no pixels').toString('base64') }), 415, 'unsupported_image'));
  test('"image" is empty', async () => refused(await postJson({ image: '' }), 400, 'empty_body'));
  test('"image" is not a string', async () => refused(await postJson({ image: 42 }), 400, 'invalid_request'));
  test('malformed JSON', async () => refused(await postJson('{"image": '), 400, 'invalid_json'));
  test('a JSON array', async () => refused(await postJson('[1, 2]'), 400, 'invalid_request'));
  test('a data: URL that is not base64', async () => refused(await postJson({ image: 'data:image/jpeg,abc' }), 400, 'invalid_base64'));
});

describe('bad request parameters', () => {
  test('topK=0', async () => refused(await post(photo(), 'image/jpeg', '?topK=0'), 400, 'invalid_request', /topK/));
  test('topK is not a number', async () => refused(await post(photo(), 'image/jpeg', '?topK=abc'), 400, 'invalid_request', /topK/));
  test('topK above 1000', async () => refused(await post(photo(), 'image/jpeg', '?topK=5000'), 400, 'invalid_request'));
  test('unknown endpoint', async () => refused(await post(photo(), 'image/jpeg', '', 'cats'), 404, 'not_found', /Endpoint cats/));
  test('GET on the invocations URL', async () => {
    const res = await fetch(`${base}/endpoints/dogs/invocations`, { headers: bearer(key) });
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as Answer['body']).error?.code, 'not_found');
  });
  test('a request id is echoed when plain, replaced when not', async () => {
    const given = await post(photo(), 'image/jpeg', '', 'dogs', { 'x-request-id': 'client-42.a' });
    assert.equal(given.headers.get('x-request-id'), 'client-42.a');
    const hostile = await post(photo(), 'image/jpeg', '', 'dogs', { 'x-request-id': 'x\u0000y'.replace('\u0000', '%0a') + ' <script>' });
    assert.match(hostile.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
  });
});

describe('odd but valid images are classified correctly', () => {
  let upright: { index: number; score: number };
  before(async () => {
    upright = await top(await sharp(photo()).png().toBuffer());
    assert.equal(upright.index, BEAGLE);
  });
  const close = (a: { index: number; score: number }, why: string) => {
    assert.equal(a.index, upright.index, why);
    assert.ok(Math.abs(a.score - upright.score) < 0.05, `${why}: score ${a.score} vs ${upright.score}`);
  };

  test('the response names the model and variant and returns top-k', async () => {
    const a = await post(photo(), 'image/jpeg', '?topK=3');
    assert.equal(a.status, 200);
    assert.equal(a.body.model, 'mnet@1');
    assert.equal(a.body.variant, 'primary');
    assert.equal(a.body.predictions!.length, 3);
    assert.deepEqual(Object.keys(a.body.predictions![0]!).sort(), ['index', 'label', 'score']);
  });
  test('CMYK JPEG', async () => close(await top(await sharp(photo()).toColourspace('cmyk').jpeg({ quality: 95 }).toBuffer(), 'image/jpeg'), 'CMYK'));
  test('16-bit PNG', async () => close(await top(await sharp(photo()).toColourspace('rgb16').png().toBuffer()), '16-bit'));
  test('EXIF-rotated photo: the rotation is applied', async () => {
    // pixels stored turned a quarter left, with orientation 6 ("turn right to display")
    const turned = await sharp(photo()).rotate(270).jpeg({ quality: 95 }).toBuffer();
    const tagged = await sharp(turned).withMetadata({ orientation: 6 }).jpeg({ quality: 95 }).toBuffer();
    const withExif = await top(tagged, 'image/jpeg');
    close(withExif, 'EXIF orientation 6');
    const ignored = await post(turned, 'image/jpeg', '?topK=1000');
    const sameClass = ignored.body.predictions!.find((p) => p.index === upright.index)!;
    assert.ok(Math.abs(sameClass.score - upright.score) > Math.abs(withExif.score - upright.score), 'the untagged sideways copy scores further from the upright photo');
  });
  test('multi-frame GIF: the first frame is used', async () => {
    const first = await sharp(photo()).resize(256, 256).png().toBuffer();
    const second = await sharp({ create: { width: 256, height: 256, channels: 3, background: 'blue' } }).png().toBuffer();
    const gif = await sharp([first, second], { join: { animated: true } }).gif().toBuffer();
    assert.equal((await sharp(gif).metadata()).pages, 2);
    const fromGif = await top(gif, 'image/gif');
    const firstFrame = await top(await sharp(gif).png().toBuffer());
    assert.equal(fromGif.index, firstFrame.index);
    assert.ok(Math.abs(fromGif.score - firstFrame.score) < 1e-4);
  });
  test('greyscale JPEG', async () => assert.equal((await post(await sharp(photo()).greyscale().jpeg().toBuffer(), 'image/jpeg')).status, 200));
  test('PNG with an alpha channel', async () => close(await top(await sharp(photo()).ensureAlpha(1).png().toBuffer()), 'alpha'));
  test('a 1x1 image', async () => assert.equal((await post(await sharp({ create: { width: 1, height: 1, channels: 3, background: 'white' } }).png().toBuffer(), 'image/png')).status, 200));
  test('a JPEG labelled image/png (the bytes decide)', async () => close(await top(await sharp(photo()).png().toBuffer(), 'image/jpeg'), 'mislabelled'));
  test('application/octet-stream', async () => close(await top(await sharp(photo()).png().toBuffer(), 'application/octet-stream'), 'octet-stream'));
  test('JSON base64, URL-safe base64 and a data: URL', async () => {
    const png = await sharp(photo()).png().toBuffer();
    for (const image of [png.toString('base64'), png.toString('base64url'), `data:image/png;base64,${png.toString('base64')}`, png.toString('base64').replace(/(.{76})/g, '$1\n')]) {
      const a = await postJson({ image }, '?topK=1');
      assert.equal(a.status, 200, JSON.stringify(a.body));
      close(a.body.predictions![0]!, 'base64');
    }
  });
});

test('after all of that the same replicas still serve, and errors are counted by status', async () => {
  assert.deepEqual(
    daemon.runtime.describe('dogs').replicas.map((r) => r.pid),
    pids,
  );
  assert.equal((await post(photo(), 'image/jpeg')).status, 200);
  const metrics = await (await fetch(`${base}/metrics`)).text();
  assert.match(metrics, /kennel_invocation_errors_total\{endpoint="dogs",status="415",code="unsupported_media_type"\} [1-9]/);
  assert.match(metrics, /kennel_invocation_errors_total\{endpoint="dogs",status="422",code="bad_image"\} [1-9]/);
  assert.doesNotMatch(metrics, /endpoint="cats"/);
});
