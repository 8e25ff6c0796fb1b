import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { InvokeCommand, LambdaClient, LambdaServiceException, ResourceNotFoundException } from '@aws-sdk/client-lambda';
import { InvokeEndpointCommand, ModelError, SageMakerRuntimeClient, SageMakerRuntimeServiceException, ValidationError } from '@aws-sdk/client-sagemaker-runtime';
import { SignatureV4 } from '@smithy/signature-v4';
import { createFunction } from '../../src/functions/index.ts';
import { createAwsKey, readAudit, revokeKey } from '../../src/security/index.ts';
import { tmpDir } from '../helpers/paths.ts';
import { photo } from '../serving/fixtures.ts';
import { BEAGLE, by, startAwsKennel, type AwsKennel } from './fixtures.ts';

/**
 * The AWS SDK for JavaScript v3, unchanged, against Kennel: SageMaker Runtime InvokeEndpoint and
 * Lambda Invoke signed with Kennel-issued AWS keys, AWS's errors as the SDK's own exception
 * classes, and SigV4's edge cases (signed by the SDK's own signer, @smithy/signature-v4).
 */
const beagle = photo();
const other = photo('imagenet-dogs/n02085620_Chihuahua.JPEG');
const region = 'us-east-1';

let kennel: AwsKennel;

before(async () => {
  kennel = await startAwsKennel();
});
after(async () => {
  await kennel?.close();
});

const sagemaker = (opts: { credentials?: { accessKeyId: string; secretAccessKey: string }; region?: string; systemClockOffset?: number } = {}) =>
  new SageMakerRuntimeClient({ endpoint: kennel.url, region: opts.region ?? region, credentials: opts.credentials ?? kennel.credentials, maxAttempts: 1, systemClockOffset: opts.systemClockOffset });
const lambda = (credentials = kennel.credentials) => new LambdaClient({ endpoint: kennel.url, region, credentials, maxAttempts: 1 });

interface Answer {
  predictions: Array<{ label: string; index: number; score: number }>;
  model: string;
  variant: string;
}

/** The error an SDK call rejects with. */
async function failure(call: Promise<unknown>): Promise<Error & { name: string; $metadata: { httpStatusCode?: number } }> {
  try {
    await call;
  } catch (e) {
    return e as Error & { name: string; $metadata: { httpStatusCode?: number } };
  }
  assert.fail('the call succeeded');
}

describe('SageMaker Runtime InvokeEndpoint (@aws-sdk/client-sagemaker-runtime)', () => {
  it('classifies a real photo sent as JPEG bytes, and as JSON {"image": base64}, from any region', async () => {
    const jpeg = await sagemaker().send(new InvokeEndpointCommand({ EndpointName: 'dogs', ContentType: 'image/jpeg', Accept: 'application/json', Body: beagle }));
    const answer = JSON.parse(jpeg.Body!.transformToString()) as Answer;
    assert.equal(answer.predictions[0]!.index, BEAGLE);
    assert.match(jpeg.ContentType!, /^application\/json/);
    assert.equal(jpeg.InvokedProductionVariant, answer.variant);
    const json = await sagemaker({ region: 'eu-west-3' }).send(new InvokeEndpointCommand({ EndpointName: 'dogs', ContentType: 'application/json', Body: JSON.stringify({ image: beagle.toString('base64') }) }));
    assert.deepEqual((JSON.parse(json.Body!.transformToString()) as Answer).predictions, answer.predictions);
  });

  it('honours X-Amzn-SageMaker-Target-Variant and names the variant that answered', async () => {
    for (const variant of ['canary', 'primary', 'canary']) {
      const r = await sagemaker().send(new InvokeEndpointCommand({ EndpointName: 'dogs', ContentType: 'image/jpeg', TargetVariant: variant, Body: beagle }));
      assert.equal(r.InvokedProductionVariant, variant);
      assert.equal((JSON.parse(r.Body!.transformToString()) as Answer).variant, variant);
    }
    const unknown = await failure(sagemaker().send(new InvokeEndpointCommand({ EndpointName: 'dogs', ContentType: 'image/jpeg', TargetVariant: 'blue', Body: beagle })));
    assert.ok(unknown instanceof ValidationError, unknown.name);
    assert.match(unknown.message, /no variant blue/);
  });

  it("answers errors as AWS does, so the SDK raises its own exception classes", async () => {
    const invoke = (input: Partial<ConstructorParameters<typeof InvokeEndpointCommand>[0]>, client = sagemaker()) => failure(client.send(new InvokeEndpointCommand({ EndpointName: 'dogs', ContentType: 'image/jpeg', Body: beagle, ...input })));

    const denied = await invoke({ EndpointName: 'cats' });
    assert.equal(denied.$metadata.httpStatusCode, 403, 'the key may invoke only dogs: refused before the endpoint is looked up');
    assert.equal(denied.name, 'AccessDeniedException');
    const wide = createAwsKey(kennel.ws, 'wide-app', { allow: ['endpoint:Invoke:endpoint/*'] }, by);
    const missing = await invoke({ EndpointName: 'cats' }, sagemaker({ credentials: wide }));
    assert.ok(missing instanceof ValidationError, missing.name);
    assert.match(missing.message, /Endpoint cats was not found/);

    const notImage = await invoke({ Body: Buffer.from('just some text, no pixels') });
    assert.ok(notImage instanceof ModelError, notImage.name);
    assert.equal(notImage.$metadata.httpStatusCode, 424);
    assert.equal(notImage.OriginalStatusCode, 415);
    assert.match(notImage.message, /Received client error \(415\)/);

    const noImage = await invoke({ ContentType: 'application/json', Body: JSON.stringify({ picture: 'x' }) });
    assert.ok(noImage instanceof ValidationError, noImage.name);
    // the seeds' {"url"} shape is fetched with Kennel's SSRF rules: a private address is refused
    const privateUrl = await invoke({ ContentType: 'application/json', Body: JSON.stringify({ url: 'https://127.0.0.1/dog.jpg' }) });
    assert.ok(privateUrl instanceof ValidationError, privateUrl.name);
    assert.match(privateUrl.message, /127\.0\.0\.1/);
    const wrongAccept = await invoke({ Accept: 'image/png' });
    assert.ok(wrongAccept instanceof ModelError, wrongAccept.name);
    assert.equal(wrongAccept.OriginalStatusCode, 406);

    const throttledKey = createAwsKey(kennel.ws, 'slow-app', { allow: ['endpoint:Invoke:endpoint/dogs'], ratePerSecond: 0.01, burst: 1 }, by);
    const slow = sagemaker({ credentials: throttledKey });
    await slow.send(new InvokeEndpointCommand({ EndpointName: 'dogs', ContentType: 'image/jpeg', Body: beagle }));
    const throttled = await invoke({}, slow);
    assert.equal(throttled.name, 'ThrottlingException');
    assert.equal(throttled.$metadata.httpStatusCode, 429);
    assert.ok(throttled instanceof SageMakerRuntimeServiceException);
  });

  it('refuses a wrong secret, an unknown access key and a revoked one', async () => {
    const wrongSecret = await failure(sagemaker({ credentials: { ...kennel.credentials, secretAccessKey: 'A'.repeat(40) } }).send(new InvokeEndpointCommand({ EndpointName: 'dogs', ContentType: 'image/jpeg', Body: beagle })));
    assert.ok(wrongSecret instanceof SageMakerRuntimeServiceException);
    assert.equal(wrongSecret.name, 'InvalidSignatureException');
    assert.equal(wrongSecret.$metadata.httpStatusCode, 403);
    assert.match(wrongSecret.message, /signature we calculated does not match/);

    const unknown = await failure(sagemaker({ credentials: { accessKeyId: 'AKIAAAAAAAAAAAAAAAAA', secretAccessKey: 'A'.repeat(40) } }).send(new InvokeEndpointCommand({ EndpointName: 'dogs', ContentType: 'image/jpeg', Body: beagle })));
    assert.equal(unknown.name, 'UnrecognizedClientException');

    const doomed = createAwsKey(kennel.ws, 'doomed', { allow: ['endpoint:Invoke:endpoint/dogs'] }, by);
    revokeKey(kennel.ws, doomed.accessKeyId, by);
    const revoked = await failure(sagemaker({ credentials: doomed }).send(new InvokeEndpointCommand({ EndpointName: 'dogs', ContentType: 'image/jpeg', Body: beagle })));
    assert.equal(revoked.name, 'UnrecognizedClientException');
    assert.match(revoked.message, /revoked/);

    // the audit log names the access key, never its secret
    const entries = readAudit(kennel.ws, { plane: 'data', limit: 1000 });
    assert.ok(entries.some((e) => e.keyId === kennel.credentials.accessKeyId && e.status === 200));
    assert.ok(entries.some((e) => e.keyId === kennel.credentials.accessKeyId && e.status === 403));
    assert.ok(!JSON.stringify(entries).includes(kennel.credentials.secretAccessKey));
  });
});

describe('Lambda Invoke (@aws-sdk/client-lambda)', () => {
  const event = (e: unknown) => new TextEncoder().encode(JSON.stringify(e));
  const payloadOf = (p?: Uint8Array) => JSON.parse(Buffer.from(p!).toString('utf8')) as unknown;

  it('invokes the classify function by name and by ARN: the payload is its proxy response, as the seeds expect', async () => {
    for (const FunctionName of ['classify', 'arn:aws:lambda:us-east-1:123456789012:function:classify']) {
      const r = await lambda().send(new InvokeCommand({ FunctionName, Payload: event({ image: beagle.toString('base64') }), LogType: 'Tail' }));
      assert.equal(r.StatusCode, 200);
      assert.equal(r.FunctionError, undefined);
      assert.equal(r.ExecutedVersion, '$LATEST');
      const payload = payloadOf(r.Payload) as { statusCode: number; headers: Record<string, string>; body: string };
      assert.equal(payload.statusCode, 200);
      assert.equal((JSON.parse(payload.body) as Answer).predictions[0]!.index, BEAGLE);
      assert.match(Buffer.from(r.LogResult!, 'base64').toString(), /^REPORT RequestId: \S+\tDuration: [\d.]+ ms/m);
    }
  });

  it('runs Event invocations in the background (202), and reports handler errors with X-Amz-Function-Error', async () => {
    const handler = path.join(tmpDir(), 'handler.mjs');
    writeFileSync(handler, "export async function handler(event) {\n  if (event.fail) throw new Error('the handler failed: ' + event.fail);\n  return { echoed: event };\n}\n");
    await createFunction(kennel.ws, 'echo', { endpoint: 'dogs', handler }, by);
    const ok = await lambda().send(new InvokeCommand({ FunctionName: 'echo', Payload: event({ n: 1 }) }));
    assert.deepEqual(payloadOf(ok.Payload), { echoed: { n: 1 } });
    const failed = await lambda().send(new InvokeCommand({ FunctionName: 'echo', Payload: event({ fail: 'on purpose' }) }));
    assert.equal(failed.StatusCode, 200);
    assert.equal(failed.FunctionError, 'Unhandled');
    const error = payloadOf(failed.Payload) as { errorType: string; errorMessage: string };
    assert.equal(error.errorType, 'Error');
    assert.match(error.errorMessage, /the handler failed: on purpose/);
    const async = await lambda().send(new InvokeCommand({ FunctionName: 'echo', InvocationType: 'Event', Payload: event({ n: 2 }) }));
    assert.equal(async.StatusCode, 202);
    const dry = await lambda().send(new InvokeCommand({ FunctionName: 'echo', InvocationType: 'DryRun' }));
    assert.equal(dry.StatusCode, 204);
  });

  it('raises the SDK exceptions: unknown function, bad payload, wrong secret', async () => {
    const missing = await failure(lambda().send(new InvokeCommand({ FunctionName: 'nope', Payload: event({}) })));
    assert.ok(missing instanceof ResourceNotFoundException, missing.name);
    const qualified = await failure(lambda().send(new InvokeCommand({ FunctionName: 'classify', Qualifier: 'prod', Payload: event({}) })));
    assert.ok(qualified instanceof ResourceNotFoundException, qualified.name);
    const badJson = await failure(lambda().send(new InvokeCommand({ FunctionName: 'classify', Payload: new TextEncoder().encode('{"url": ') })));
    assert.equal(badJson.name, 'InvalidRequestContentException');
    const wrong = await failure(lambda({ ...kennel.credentials, secretAccessKey: kennel.credentials.secretAccessKey.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')) }).send(new InvokeCommand({ FunctionName: 'classify', Payload: event({}) })));
    assert.ok(wrong instanceof LambdaServiceException);
    assert.equal(wrong.name, 'InvalidSignatureException');
    // unsigned, without any key: AWS's "Missing Authentication Token"
    const unsigned = await fetch(`${kennel.url}/2015-03-31/functions/classify/invocations`, { method: 'POST', body: '{}' });
    assert.equal(unsigned.status, 403);
    assert.equal(unsigned.headers.get('x-amzn-errortype'), 'MissingAuthenticationTokenException');
  });
});

type SourceData = string | ArrayBuffer | ArrayBufferView;
const bytes = (d: SourceData) => (typeof d === 'string' ? d : d instanceof ArrayBuffer ? new Uint8Array(d) : new Uint8Array(d.buffer, d.byteOffset, d.byteLength));

/** node:crypto as the signer's hash (what @smithy/hash-node does) */
class Sha256 {
  private readonly hash;
  constructor(secret?: SourceData) {
    this.hash = secret ? createHmac('sha256', bytes(secret)) : createHash('sha256');
  }
  update(data: SourceData): void {
    this.hash.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
}

describe('SigV4 edge cases', () => {
  const port = () => Number(new URL(kennel.url).port);
  const request = (body: Buffer, headers: Record<string, string> = {}) => ({
    method: 'POST',
    protocol: 'http:',
    hostname: '127.0.0.1',
    port: port(),
    path: '/endpoints/dogs/invocations',
    query: {},
    headers: { host: `127.0.0.1:${port()}`, 'content-type': 'image/jpeg', ...headers },
    body,
  });
  const signer = (service = 'sagemaker', signingRegion = region) => new SignatureV4({ service, region: signingRegion, credentials: kennel.credentials, sha256: Sha256 });
  const send = async (signed: { headers: Record<string, string>; query?: Record<string, unknown> }, body: Buffer) => {
    const query = new URLSearchParams(signed.query as Record<string, string>).toString().replace(/\+/g, '%20');
    const res = await fetch(`${kennel.url}/endpoints/dogs/invocations${query ? `?${query}` : ''}`, { method: 'POST', headers: signed.headers, body });
    const text = await res.text();
    return { status: res.status, type: res.headers.get('x-amzn-errortype'), text };
  };

  it('a signature of the request as sent is accepted, with any region', async () => {
    for (const r of [region, 'mars-north-7']) assert.equal((await send(await signer('sagemaker', r).sign(request(beagle)), beagle)).status, 200);
  });

  it('refuses an expired or future date (5-minute skew window), through the SDK client with a skewed clock', async () => {
    for (const [offset, message] of [[-6 * 60_000, /Signature expired/], [6 * 60_000, /not yet current/]] as const) {
      const e = await failure(sagemaker({ systemClockOffset: offset }).send(new InvokeEndpointCommand({ EndpointName: 'dogs', ContentType: 'image/jpeg', Body: beagle })));
      assert.equal(e.name, 'InvalidSignatureException');
      assert.match(e.message, message);
    }
    // 4 minutes off is within the window
    await sagemaker({ systemClockOffset: -4 * 60_000 }).send(new InvokeEndpointCommand({ EndpointName: 'dogs', ContentType: 'image/jpeg', Body: beagle }));
  });

  it('refuses a scope for another service, and a region changed in the scope after signing', async () => {
    for (const service of ['s3', 'lambda']) {
      const wrong = await send(await signer(service).sign(request(beagle)), beagle);
      assert.deepEqual([wrong.status, wrong.type], [403, 'InvalidSignatureException']);
      assert.match(wrong.text, /scoped to correct service: 'sagemaker'/);
    }
    const signed = await signer().sign(request(beagle));
    signed.headers.authorization = signed.headers.authorization!.replace(`/${region}/`, '/eu-west-1/');
    const moved = await send(signed, beagle);
    assert.deepEqual([moved.status, moved.type], [403, 'InvalidSignatureException']);
    assert.match(moved.text, /does not match the signature you provided/);
  });

  it('refuses a body changed after signing, with or without x-amz-content-sha256', async () => {
    const tampered = await send(await signer().sign(request(beagle)), other);
    assert.deepEqual([tampered.status, tampered.type], [403, 'InvalidSignatureException']);
    const declared = await send(await signer().sign(request(beagle, { 'x-amz-content-sha256': createHash('sha256').update(beagle).digest('hex') })), other);
    assert.deepEqual([declared.status, declared.type], [403, 'InvalidSignatureException']);
    assert.match(declared.text, /x-amz-content-sha256 header does not match/);
  });

  it('accepts a presigned URL while it is valid, and refuses the same URL replayed after it expired', async () => {
    const expiresIn = 60;
    const signedAt = Date.now() - (expiresIn - 2) * 1000; // two seconds left
    const presigned = await signer().presign(request(beagle), { expiresIn, signingDate: new Date(signedAt) });
    assert.ok(presigned.query!['X-Amz-Signature']);
    assert.equal(presigned.headers.authorization, undefined);
    assert.equal((await send(presigned, beagle)).status, 200);
    assert.equal((await send(presigned, beagle)).status, 200, 'replayed within its validity: accepted, as by AWS');
    assert.equal((await send(presigned, other)).status, 403, 'the body is part of the signature');
    await sleep(signedAt + expiresIn * 1000 + 500 - Date.now());
    const replayed = await send(presigned, beagle);
    assert.deepEqual([replayed.status, replayed.type], [403, 'InvalidSignatureException']);
    assert.match(replayed.text, /presigned URL was valid until/);
  });
});
