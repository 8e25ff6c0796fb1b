import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createFunction } from '../../src/functions/index.ts';
import { appendAudit, attachPolicy, createKey, listPolicies, runSecurityAudit, setCors, type Actor, type Finding } from '../../src/security/index.ts';
import { openWorkspace } from '../../src/store/index.ts';
import { tmpHome } from '../helpers/paths.ts';

const by: Actor = { principal: 'local:test', plane: 'cli' };
const DAY = 86_400_000;

describe('security audit', () => {
  it('finds each classic mistake in a deliberately misconfigured workspace, with a fix', async () => {
    const ws = openWorkspace(tmpHome());
    // a user with full access (the seeds' SageMakerFullAccess), who only ever invoked one function
    const alice = createKey(ws, 'alice', { allow: ['*:*'] }, by);
    appendAudit(ws, { plane: 'data', principal: 'alice', keyId: alice.keyId, action: 'function:Invoke', resource: 'function/classify', status: 200, latencyMs: 3 });
    // a wildcard grant
    createKey(ws, 'bob', { allow: ['function:*:function/*'], expiresInMs: 30 * DAY }, by);
    // a function whose role was widened, and one whose role allows an endpoint it never calls
    await createFunction(ws, 'classify', { endpoint: 'dogs' }, by);
    attachPolicy(ws, 'role/classify', { statements: [{ effect: 'allow', actions: ['admin:*'], resources: ['*'] }] }, by);
    await createFunction(ws, 'resize', { endpoint: 'dogs' }, by);
    attachPolicy(ws, 'role/resize', { statements: [{ effect: 'allow', actions: ['endpoint:Invoke'], resources: ['endpoint/cats'] }] }, by);
    // a public function
    const open = attachPolicy(ws, 'anonymous', { statements: [{ effect: 'allow', actions: ['function:Invoke'], resources: ['function/classify'] }] }, by);
    // an admin key used on the data plane
    const ops = createKey(ws, 'ops', { allow: ['admin:*:*', 'function:Invoke:function/classify'], expiresInMs: 30 * DAY }, by);
    appendAudit(ws, { plane: 'data', principal: 'ops', keyId: ops.keyId, action: 'function:Invoke', resource: 'function/classify', status: 200, latencyMs: 4 });
    // CORS for every origin
    setCors(ws, { origins: ['*'], credentials: false }, by);

    // 100 days later every key not used since counts as unused
    const { findings } = runSecurityAudit(ws, { now: Date.now() + 100 * DAY });
    const find = (rule: string, resource: string): Finding => {
      const f = findings.find((x) => x.rule === rule && x.resource === resource);
      assert.ok(f, `expected ${rule} on ${resource}; got ${findings.map((x) => `${x.rule}:${x.resource}`).join(', ')}`);
      assert.ok(f.message.length > 20 && f.fix.startsWith('kennel '), JSON.stringify(f));
      return f;
    };
    const full = find('full-access-policy', 'principal/alice');
    assert.equal(full.severity, 'high');
    const alicePolicy = listPolicies(ws, 'alice')[0]!.id;
    // the fix keeps exactly what alice used
    assert.equal(full.fix, `kennel policies detach alice ${alicePolicy} && kennel policies attach alice --allow function:Invoke:function/classify`);
    assert.equal(find('wildcard-policy', 'principal/bob').severity, 'medium');
    const widened = find('role-broader-than-function', 'function/classify');
    assert.equal(widened.severity, 'high');
    assert.equal(widened.fix, 'kennel functions update classify --reset-role');
    const unused = find('role-broader-than-function', 'function/resize');
    assert.equal(unused.severity, 'medium');
    assert.match(unused.message, /may also invoke endpoint\/cats \(policy pol_[0-9a-f]+\), which the function has never called/);
    const anon = find('unauthenticated-access', 'function/classify');
    assert.equal(anon.severity, 'high');
    assert.equal(anon.fix, `kennel policies detach anonymous ${open.id}`);
    const adminKey = find('admin-key-on-data-plane', `key/${ops.keyId}`);
    assert.equal(adminKey.severity, 'high');
    assert.match(adminKey.fix, /kennel keys create ops-invoke --allow function:Invoke:function\/classify --expires 90d/);
    assert.equal(find('key-without-expiry', `key/${alice.keyId}`).fix, `kennel keys rotate ${alice.keyId} --expires 90d --overlap 24h`);
    assert.match(find('key-unused', `key/${alice.keyId}`).message, /not been used for \d+ days/);
    assert.equal(find('cors-wildcard', 'settings/cors').severity, 'medium');
    // highs come first
    assert.equal(findings[0]!.severity, 'high');
    ws.close();
  });

  it('finds nothing in a workspace set up the Kennel way', async () => {
    const ws = openWorkspace(tmpHome());
    await createFunction(ws, 'classify', { endpoint: 'dogs' }, by);
    const web = createKey(ws, 'web', { allow: ['function:Invoke:function/classify'], expiresInMs: 90 * DAY }, by);
    // least privilege for operators: deploy endpoints and tune functions, but no keys or policies
    createKey(ws, 'deployer', { allow: ['admin:CreateEndpoint:endpoint/*', 'admin:UpdateEndpoint:endpoint/*', 'admin:UpdateFunction:function/*'], expiresInMs: 30 * DAY }, by);
    // keys and policies for itself only: the delegation check bounds them by its own grants
    createKey(ws, 'self-service', { allow: ['admin:CreateKey:principal/self-service', 'function:Invoke:function/classify'], expiresInMs: 30 * DAY }, by);
    appendAudit(ws, { plane: 'data', principal: 'web', keyId: web.keyId, action: 'function:Invoke', resource: 'function/classify', status: 200 });
    appendAudit(ws, { plane: 'function', principal: 'role/classify', action: 'endpoint:Invoke', resource: 'endpoint/dogs', status: 200 });
    setCors(ws, { origins: ['https://app.example.com'], credentials: true }, by);
    assert.deepEqual(runSecurityAudit(ws).findings, []);
    ws.close();
  });

  it('reports every grant that can escalate to full access as high (admin:*, admin:CreateKey, admin:AttachPolicy on *)', () => {
    const ws = openWorkspace(tmpHome());
    const grants = { admins: 'admin:*:*', minter: 'admin:CreateKey:*', attacher: 'admin:AttachPolicy:*', rotator: 'admin:RotateKey:key/*', 'other-keys': 'admin:CreateKey:principal/root' };
    for (const [name, grant] of Object.entries(grants)) createKey(ws, name, { allow: [grant], expiresInMs: 30 * DAY }, by);
    const { findings } = runSecurityAudit(ws);
    for (const name of Object.keys(grants)) {
      const f = findings.find((x) => x.rule === 'admin-escalation' && x.resource === `principal/${name}`);
      assert.ok(f, `expected admin-escalation for ${name}; got ${JSON.stringify(findings)}`);
      assert.equal(f.severity, 'high');
      assert.match(f.fix, new RegExp(`^kennel policies detach ${name} pol_[0-9a-f]+$`));
    }
    ws.close();
  });
});
