import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FunctionGateway, functionsRoutes } from '../../src/functions/index.ts';
import { openWorkspace, type Workspace } from '../../src/store/index.ts';
import { kennel, kennelBin, kennelJson, type CliResult } from '../foundation/cli.ts';
import { sharedDir, tmpHome } from '../helpers/paths.ts';
import { securedApp } from '../security/app.ts';
import { FakeEndpoints } from './fake-endpoint.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const photo = path.join(sharedDir(), 'data/real-photos/aipnd-dogs/Beagle_01125.jpg');

/** Runs the CLI without blocking this process, which serves the gateway it calls. */
function kennelAsync(home: string, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [kennelBin, ...args], { env: { ...process.env, KENNEL_HOME: home, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('kennel functions', () => {
  const home = tmpHome();
  let ws: Workspace;
  let gateway: FunctionGateway;
  let server: Awaited<ReturnType<typeof securedApp>>;

  before(async () => {
    ws = openWorkspace(home);
    gateway = new FunctionGateway({ ws, endpoints: new FakeEndpoints() });
    server = await securedApp({ ws, plane: 'data' }, async (app) => {
      await app.register(functionsRoutes, { gateway });
    });
  });
  after(async () => {
    await server.close();
    await gateway.close();
    ws.close();
  });

  it('create, list, update and delete, with a least-privilege role', () => {
    const refused = kennel(home, ['functions', 'create', 'classify', '--endpoint', 'dogs']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /Endpoint dogs does not exist\.\n.*kennel endpoints create dogs.*--allow-missing-endpoint/);
    const created = kennelJson<{ name: string; role: string; reservedConcurrency: number; provisionedConcurrency: number; timeoutMs: number; memoryMb: number; route: string; warnings: string[] }>(home, [
      'functions', 'create', 'classify', '--endpoint', 'dogs', '--allow-missing-endpoint', '--reserved-concurrency', '5', '--provisioned-concurrency', '1', '--timeout', '10s', '--memory', '256MB', '--route', '/v1/classify',
    ]);
    assert.deepEqual([created.role, created.reservedConcurrency, created.provisionedConcurrency, created.timeoutMs, created.memoryMb, created.route], ['role/classify', 5, 1, 10_000, 256, '/v1/classify']);
    assert.match(created.warnings[0]!, /Endpoint dogs does not exist yet/);
    const role = kennelJson<{ policies: Array<{ document: unknown; managedBy: string }> }>(home, ['policies', 'show', 'role/classify']);
    assert.deepEqual(role.policies.map((p) => p.document), [{ statements: [{ effect: 'allow', actions: ['endpoint:Invoke'], resources: ['endpoint/dogs'] }] }]);
    kennelJson(home, ['functions', 'create', 'user', '--endpoint', 'dogs', '--allow-missing-endpoint', '--handler', path.join(here, 'fixtures/handler.ts'), '--memory', '1GB']);
    const list = kennelJson<{ functions: Array<{ name: string; memoryMb: number; handler: string }> }>(home, ['functions', 'list']);
    assert.deepEqual(list.functions.map((f) => [f.name, f.memoryMb, f.handler]), [['classify', 256, 'builtin:classify'], ['user', 1024, 'module']]);
    const updated = kennelJson<{ reservedConcurrency?: number; revision: number }>(home, ['functions', 'update', 'classify', '--reserved-concurrency', 'none']);
    assert.deepEqual([updated.reservedConcurrency, updated.revision], [undefined, 2]);
    assert.equal(kennelJson<{ deleted: string }>(home, ['functions', 'delete', 'user']).deleted, 'user');
    for (const [args, message] of [
      [['functions', 'create', 'x'], /required option '--endpoint <name>'/],
      [['functions', 'create', 'x', '--endpoint', 'dogs', '--memory', 'lots'], /--memory must be a size/],
      [['functions', 'create', 'x', '--endpoint', 'dogs', '--timeout', '10'], /not a duration/],
      [['functions', 'create', 'x', '--endpoint', 'dogs', '--reserved-concurrency', '1', '--provisioned-concurrency', '2'], /cannot exceed reserved/],
      [['functions', 'update', 'nope', '--timeout', '1s'], /Function nope was not found/],
    ] as const) {
      const r = kennel(home, [...args]);
      assert.notEqual(r.code, 0, args.join(' '));
      assert.match(r.stderr, message);
    }
  });

  it('invoke calls the public route with a key and prints the response; errors exit 1 with the reason', async () => {
    const { key } = kennelJson<{ key: string }>(home, ['keys', 'create', 'cli-user', '--allow', 'function:Invoke:function/classify', '--expires', '1d']);
    const ok = await kennelAsync(home, ['functions', 'invoke', 'classify', '--image', photo, '--gateway', server.url, '--json'], { KENNEL_API_KEY: key });
    assert.equal(ok.code, 0, ok.stderr);
    const out = JSON.parse(ok.stdout) as { statusCode: number; body: { predictions: Array<{ label: string }> } };
    assert.equal(out.statusCode, 200);
    assert.equal(out.body.predictions[0]!.label, 'Beagle');
    const noKey = await kennelAsync(home, ['functions', 'invoke', 'classify', '--event', '{"url": "https://example.com/dog.jpg"}', '--gateway', server.url]);
    assert.equal(noKey.code, 1);
    assert.match(noKey.stderr, /^error: classify answered 401/);
    const ssrf = await kennelAsync(home, ['functions', 'invoke', 'classify', '--url', 'http://169.254.169.254/latest/meta-data/', '--gateway', server.url, '--key', key]);
    assert.equal(ssrf.code, 1);
    assert.match(ssrf.stderr, /answered 400: Only https:\/\/ URLs are fetched/);
    const down = await kennelAsync(home, ['functions', 'invoke', 'classify', '--event', '{}', '--gateway', 'http://127.0.0.1:9']);
    assert.match(down.stderr, /Cannot reach the Kennel daemon/);
    const noDaemon = await kennelAsync(home, ['functions', 'invoke', 'classify', '--event', '{}']);
    assert.match(noDaemon.stderr, /No Kennel daemon is running/);
  });
});
