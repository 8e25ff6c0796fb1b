import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { sharedDir } from '../helpers/paths.ts';
import { BEAGLE, startAwsKennel, type AwsKennel } from './fixtures.ts';

/**
 * boto3 (Debian's python3-boto3), unchanged, against Kennel: the seeds' Lambda code calling
 * invoke_endpoint with JPEG bytes and with JSON, and lambda.invoke of the classify function,
 * with a Kennel-issued AWS key pair.
 */
const here = path.dirname(fileURLToPath(import.meta.url));
/** The first Python that can import boto3: Debian's python3-boto3 installs for /usr/bin/python3, which another python3 on PATH may shadow. */
const pythonWithBoto3 = ['python3', '/usr/bin/python3'].find((py) => spawnSync(py, ['-c', 'import boto3'], { stdio: 'ignore' }).status === 0);
const boto3Missing = pythonWithBoto3 === undefined;

let kennel: AwsKennel | undefined;
before(async () => {
  if (!boto3Missing) kennel = await startAwsKennel();
});
after(async () => {
  await kennel?.close();
});

/** Runs the script without blocking this process, which serves the daemon it calls. */
function python(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(pythonWithBoto3 ?? 'python3', args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

interface Answer {
  predictions: Array<{ index: number; label: string }>;
  variant: string;
}

test('the seeds\' boto3 code runs unchanged: invoke_endpoint (JPEG, JSON) and lambda.invoke', { skip: boto3Missing && "python3 cannot import boto3: install Debian's python3-boto3 (apt-get install -y python3-boto3)" }, async () => {
  const k = kennel!;
  const r = await python([path.join(here, 'seed_lambda.py'), path.join(sharedDir(), 'data/real-photos/aipnd-dogs/Beagle_01125.jpg')], {
    KENNEL_URL: k.url,
    AWS_ACCESS_KEY_ID: k.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: k.credentials.secretAccessKey,
    // nothing from the machine's own AWS set-up
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    AWS_EC2_METADATA_DISABLED: 'true',
  });
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as {
    jpeg: { variant: string; contentType: string; answer: Answer };
    json: Answer;
    lambda: { statusCode: number; functionError: string | null; payload: { statusCode: number; body: string } };
    modelError: { code: string; originalStatusCode: number };
    wrongSecret: { code: string; status: number };
  };
  assert.equal(out.jpeg.answer.predictions[0]!.index, BEAGLE);
  assert.equal(out.jpeg.variant, out.jpeg.answer.variant);
  assert.match(out.jpeg.contentType, /^application\/json/);
  assert.equal(out.json.predictions[0]!.index, BEAGLE);
  assert.equal(out.lambda.statusCode, 200);
  assert.equal(out.lambda.functionError, null);
  assert.equal(out.lambda.payload.statusCode, 200);
  assert.equal((JSON.parse(out.lambda.payload.body) as Answer).predictions[0]!.index, BEAGLE);
  assert.deepEqual(out.modelError, { code: 'ModelError', originalStatusCode: 415 });
  assert.deepEqual(out.wrongSecret, { code: 'InvalidSignatureException', status: 403 });
});
