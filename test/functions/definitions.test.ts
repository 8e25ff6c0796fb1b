import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { KennelError } from '../../src/core/errors.ts';
import { createFunction, deleteFunction, getFunction, listFunctions, updateFunction } from '../../src/functions/index.ts';
import { Authorizer, attachPolicy, getPrincipal, listPolicies, readAudit, type Actor } from '../../src/security/index.ts';
import { openWorkspace } from '../../src/store/index.ts';
import { tmpDir, tmpHome } from '../helpers/paths.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const by: Actor = { principal: 'local:test', plane: 'cli' };

async function refusal(p: Promise<unknown>): Promise<KennelError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof KennelError, String(e));
    return e;
  }
  assert.fail('expected a KennelError');
}

describe('function definitions', () => {
  it('gives each function an execution role with exactly endpoint:Invoke on its endpoint', async () => {
    const ws = openWorkspace(tmpHome());
    const { fn, warnings } = await createFunction(ws, 'classify', { endpoint: 'dogs', reservedConcurrency: 5, provisionedConcurrency: 2, timeoutMs: 10_000, memoryMb: 256, route: '/v1/classify' }, by);
    assert.deepEqual(
      { role: fn.role, handler: fn.handler, reserved: fn.reservedConcurrency, provisioned: fn.provisionedConcurrency, timeout: fn.timeoutMs, memory: fn.memoryMb, route: fn.route, revision: fn.revision },
      { role: 'role/classify', handler: 'builtin:classify', reserved: 5, provisioned: 2, timeout: 10_000, memory: 256, route: '/v1/classify', revision: 1 },
    );
    assert.match(warnings[0]!, /Endpoint dogs does not exist yet/);
    assert.equal(getPrincipal(ws, 'role/classify')?.kind, 'role');
    const policies = listPolicies(ws, 'role/classify');
    assert.equal(policies.length, 1);
    assert.deepEqual(policies[0]!.document, { statements: [{ effect: 'allow', actions: ['endpoint:Invoke'], resources: ['endpoint/dogs'] }] });
    assert.equal(policies[0]!.managedBy, 'function:classify');
    const auth = new Authorizer(ws);
    assert.equal(auth.decide('role/classify', 'endpoint:Invoke', 'endpoint/dogs'), 'allow');
    for (const [action, resource] of [['endpoint:Invoke', 'endpoint/cats'], ['function:Invoke', 'function/classify'], ['model:Read', 'model/dogs'], ['admin:CreateKey', 'principal/x']]) {
      assert.equal(auth.decide('role/classify', action!, resource!), 'implicit-deny', `${action} ${resource}`);
    }
    // a new endpoint moves the role with it; --reset-role drops anything attached by hand
    await updateFunction(ws, 'classify', { endpoint: 'dogs2' }, by);
    assert.equal(auth.decide('role/classify', 'endpoint:Invoke', 'endpoint/dogs'), 'implicit-deny');
    assert.equal(auth.decide('role/classify', 'endpoint:Invoke', 'endpoint/dogs2'), 'allow');
    attachPolicy(ws, 'role/classify', { statements: [{ effect: 'allow', actions: ['*'], resources: ['*'] }] }, by);
    assert.equal(auth.decide('role/classify', 'admin:CreateKey', 'principal/x'), 'allow');
    const reset = await updateFunction(ws, 'classify', { resetRole: true }, by);
    assert.equal(reset.fn.revision, 3);
    assert.equal(listPolicies(ws, 'role/classify').length, 1);
    assert.equal(auth.decide('role/classify', 'admin:CreateKey', 'principal/x'), 'implicit-deny');
    // every change is in the audit log
    const actions = readAudit(ws, { principal: 'local:test' }).map((e) => e.action);
    assert.deepEqual(actions.slice(0, 4).reverse(), ['admin:CreateFunction', 'admin:UpdateFunction', 'admin:AttachPolicy', 'admin:UpdateFunction']);
    ws.close();
  });

  it('validates names, limits, routes and handlers with clear errors', async () => {
    const ws = openWorkspace(tmpHome());
    await createFunction(ws, 'taken', { endpoint: 'dogs', route: '/v1/classify' }, by);
    const dir = tmpDir();
    const syntax = path.join(dir, 'syntax.ts');
    writeFileSync(syntax, 'export async function handler( {\n');
    const cases: Array<[() => Promise<unknown>, RegExp]> = [
      [() => createFunction(ws, 'Bad_Name', { endpoint: 'dogs' }, by), /not a valid function name/],
      [() => createFunction(ws, 'taken', { endpoint: 'dogs' }, by), /already exists/],
      [() => createFunction(ws, 'x', { endpoint: 'Dogs Endpoint' }, by), /not a valid endpoint name/],
      [() => createFunction(ws, 'x', { endpoint: 'dogs', reservedConcurrency: 2, provisionedConcurrency: 3 }, by), /Provisioned concurrency \(3\) cannot exceed reserved concurrency \(2\)/],
      [() => createFunction(ws, 'x', { endpoint: 'dogs', reservedConcurrency: -1 }, by), /reserved-concurrency/],
      [() => createFunction(ws, 'x', { endpoint: 'dogs', timeoutMs: 50 }, by), /--timeout/],
      [() => createFunction(ws, 'x', { endpoint: 'dogs', memoryMb: 16 }, by), /--memory/],
      [() => createFunction(ws, 'x', { endpoint: 'dogs', route: '/classify' }, by), /not a valid route/],
      [() => createFunction(ws, 'x', { endpoint: 'dogs', route: '/v1/classify' }, by), /already belongs to function taken/],
      [() => createFunction(ws, 'x', { endpoint: 'dogs', handler: path.join(dir, 'nope.ts') }, by), /does not exist/],
      [() => createFunction(ws, 'x', { endpoint: 'dogs', handler: path.join(here, 'fixtures/no-handler.ts') }, by), /does not export a function named handler/],
      [() => createFunction(ws, 'x', { endpoint: 'dogs', handler: syntax }, by), /could not be bundled: Expected identifier .*syntax\.ts:2\)/],
      [() => updateFunction(ws, 'nope', { timeoutMs: 1000 }, by), /Function nope was not found/],
      [() => updateFunction(ws, 'taken', { provisionedConcurrency: 2, reservedConcurrency: 1 }, by), /cannot exceed/],
    ];
    for (const [attempt, message] of cases) {
      const e = await refusal(attempt());
      assert.ok(e.status === 400 || e.status === 404, e.message);
      assert.match(e.message, message);
    }
    assert.deepEqual(listFunctions(ws).map((f) => f.name), ['taken'], 'nothing half-created');
    ws.close();
  });

  it('deletes a function with its role', async () => {
    const ws = openWorkspace(tmpHome());
    await createFunction(ws, 'gone', { endpoint: 'dogs', handler: path.join(here, 'fixtures/handler.ts') }, by);
    assert.ok(getFunction(ws, 'gone').handlerSha);
    deleteFunction(ws, 'gone', by);
    assert.equal(getPrincipal(ws, 'role/gone'), undefined);
    assert.equal(listPolicies(ws, 'role/gone').length, 0);
    assert.equal((await refusal(Promise.resolve().then(() => getFunction(ws, 'gone')))).status, 404);
    // the name can be used again, and starts with a fresh least-privilege role
    await createFunction(ws, 'gone', { endpoint: 'cats' }, by);
    assert.equal(listPolicies(ws, 'role/gone').length, 1);
    ws.close();
  });
});
