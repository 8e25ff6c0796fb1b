import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import path from 'node:path';
import { repoRoot, tmpDir } from './paths.ts';

/**
 * s3rver (an npm devDependency, so every machine that ran `npm ci` has it): a separate process
 * speaking the S3 protocol over HTTP, keeping objects in a folder, so it can be stopped and
 * started again with its data. It checks SigV4 signatures against its fixed credentials.
 */
export const S3_CREDENTIALS = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' };
export const S3_BUCKET = 'kennel';

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export interface S3Server {
  endpoint: string;
  port: number;
  /** the folder where it keeps buckets and objects */
  dir: string;
  /** env for a process that uses it: credentials, region and AWS_ENDPOINT_URL */
  env: Record<string, string>;
  stop(): Promise<void>;
  /** stops and starts it again on the same port and folder */
  restart(): Promise<void>;
  /** its request log so far (one line a request, with the query: `partNumber=2&uploadId=…&x-id=UploadPart 200`) */
  log(): string;
}

/** Starts s3rver on a loopback port with the bucket `kennel`. */
export async function startS3(opts: { address?: string; port?: number; dir?: string; /** runs it through this command, e.g. ['ip', 'netns', 'exec', NS] */ via?: string[] } = {}): Promise<S3Server> {
  const address = opts.address ?? '127.0.0.1';
  const port = opts.port ?? (opts.via ? 4568 : await freePort());
  const dir = opts.dir ?? tmpDir('kennel-s3-');
  let child: ChildProcess | undefined;
  let log = '';
  const start = async () => {
    const [cmd, ...args] = [...(opts.via ?? []), process.execPath, path.join(repoRoot, 'node_modules/s3rver/bin/s3rver.js'), '-d', dir, '-a', address, '-p', String(port), '--configure-bucket', S3_BUCKET];
    const c = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(c);
    c.on('exit', () => running.delete(c));
    let out = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`s3rver did not start within 15 s:\n${out}`)), 15_000);
      const onData = (d: Buffer) => {
        out += d.toString();
        if (/listening on/i.test(out)) {
          clearTimeout(timer);
          resolve();
        }
      };
      c.stdout!.on('data', onData);
      c.stderr!.on('data', onData);
      c.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`s3rver exited (${code}) before listening:\n${out}`));
      });
    });
    log += out;
    const keep = (d: Buffer) => (log += d.toString());
    c.stdout!.on('data', keep);
    c.stderr!.on('data', keep);
    child = c;
  };
  const stop = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((resolve) => c.on('exit', resolve));
    c.kill('SIGKILL');
    await exited;
  };
  await start();
  const endpoint = `http://${address}:${port}`;
  return {
    endpoint,
    port,
    dir,
    env: { ...S3_CREDENTIALS, AWS_ENDPOINT_URL: endpoint },
    stop,
    log: () => log.replace(/\x1b\[[0-9;]*m/g, ''),
    restart: async () => {
      await stop();
      await start();
    },
  };
}
