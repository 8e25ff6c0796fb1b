import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { kennel, kennelJson } from '../foundation/cli.ts';
import { tmpHome } from '../helpers/paths.ts';

/** The CLI contract of keys, policies and security (runs the built bin; npm test builds first). */
describe('kennel keys / policies / security', () => {
  const home = tmpHome();

  it('keys create prints {principal, keyId, key} once; list never shows secrets; rotate and revoke', () => {
    const created = kennelJson<{ principal: string; keyId: string; key: string; expiresAt: string }>(home, ['keys', 'create', 'web', '--allow', 'function:Invoke:function/classify', '--deny', 'function:Invoke:function/admin', '--expires', '30d']);
    assert.equal(created.principal, 'web');
    assert.match(created.key, new RegExp(`^kn_${created.keyId}_[A-Za-z0-9_-]{43}$`));
    assert.ok(Date.parse(created.expiresAt) > Date.now() + 29 * 86_400_000);
    const human = kennel(home, ['keys', 'create', 'web']);
    assert.equal(human.code, 0);
    assert.match(human.stdout, /kn_[0-9a-f]{16}_\S{43}/);
    assert.match(human.stdout, /shown only once/);
    const listed = kennel(home, ['keys', 'list', '--json']);
    assert.ok(listed.stdout.includes(created.keyId) && !listed.stdout.includes(created.key.slice(20)));
    const rotated = kennelJson<{ keyId: string; key: string; oldKeyId: string; oldKeyExpiresAt: string }>(home, ['keys', 'rotate', created.keyId, '--overlap', '1h']);
    assert.equal(rotated.oldKeyId, created.keyId);
    assert.ok(Date.parse(rotated.oldKeyExpiresAt) <= Date.now() + 3_600_000);
    assert.equal(kennelJson<{ state: string }>(home, ['keys', 'revoke', rotated.keyId]).state, 'revoked');
    const keys = kennelJson<{ keys: Array<{ keyId: string; state: string }> }>(home, ['keys', 'list', '--principal', 'web']).keys;
    assert.equal(keys.find((k) => k.keyId === rotated.keyId)?.state, 'revoked');
    // clear one-line errors
    for (const [args, message] of [
      [['keys', 'create', 'Bad Name'], /not a valid principal name/],
      [['keys', 'create', 'x', '--allow', 'endpoint:Invoke'], /not ACTION:RESOURCE/],
      [['keys', 'create', 'x', '--expires', 'soon'], /not a duration/],
      [['keys', 'create', 'x', '--expires', '99999999d'], /too long: keys may live at most 3650 days/],
      [['keys', 'create', 'x', '--expires', `${'9'.repeat(400)}d`], /is too long/],
      [['keys', 'rotate', created.keyId, '--expires', '99999999d'], /too long/],
      [['keys', 'revoke', 'nonsense'], /not a key id/],
      [['keys', 'revoke', '0123456789abcdef'], /was not found/],
    ] as const) {
      const r = kennel(home, [...args]);
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.stderr, /^error: /);
      assert.match(r.stderr, message);
      assert.ok(!r.stderr.includes('    at '), 'no stack trace');
    }
  });

  it('an over-broad grant made with policies attach is found by security audit, which exits 1 until fixed', () => {
    const attached = kennelJson<{ id: string; principal: string }>(home, ['policies', 'attach', 'alice', '--allow', '*:*']);
    assert.equal(attached.principal, 'alice');
    const shown = kennelJson<{ kind: string; policies: Array<{ id: string }> }>(home, ['policies', 'show', 'alice']);
    assert.deepEqual([shown.kind, shown.policies.map((p) => p.id)], ['user', [attached.id]]);
    assert.ok(kennelJson<{ principals: Array<{ name: string }> }>(home, ['policies', 'list']).principals.some((p) => p.name === 'alice'));
    kennelJson(home, ['security', 'cors', '--allow-origin', '*']);

    const audit = kennel(home, ['security', 'audit', '--json']);
    assert.equal(audit.code, 1, 'a high-severity finding exits non-zero');
    const { findings } = JSON.parse(audit.stdout) as { findings: Array<{ severity: string; rule: string; resource: string; message: string; fix: string }> };
    for (const f of findings) assert.deepEqual(Object.keys(f).sort(), ['fix', 'message', 'resource', 'rule', 'severity']);
    const full = findings.find((f) => f.rule === 'full-access-policy' && f.resource === 'principal/alice');
    assert.equal(full?.severity, 'high');
    assert.equal(full?.fix, `kennel policies detach alice ${attached.id}`);
    assert.ok(findings.some((f) => f.rule === 'cors-wildcard'));
    assert.match(kennel(home, ['security', 'audit']).stdout, /HIGH\s+full-access-policy/);

    // applying the suggested fixes clears the high findings
    assert.equal(kennel(home, full!.fix.split(' ').slice(1)).code, 0);
    kennelJson(home, ['security', 'cors', '--off']);
    const after = kennel(home, ['security', 'audit', '--json']);
    assert.equal(after.code, 0, after.stdout);
    assert.ok(!(JSON.parse(after.stdout) as { findings: Array<{ severity: string }> }).findings.some((f) => f.severity === 'high'));

    // the admin changes are in the audit log, without any key
    const log = kennel(home, ['security', 'log', '--plane', 'cli', '--limit', '100', '--json']);
    const entries = (JSON.parse(log.stdout) as { entries: Array<{ action: string; principal: string; status: number }> }).entries;
    for (const action of ['admin:CreateKey', 'admin:RotateKey', 'admin:RevokeKey', 'admin:AttachPolicy', 'admin:DetachPolicy', 'admin:SetCors']) assert.ok(entries.some((e) => e.action === action && e.status === 200), action);
    assert.ok(entries.every((e) => e.principal.startsWith('local:')));
    assert.ok(entries.some((e) => e.action === 'admin:CreateKey' && e.status === 400), 'failed changes are recorded too');
    assert.doesNotMatch(log.stdout, /kn_[0-9a-f]{16}_[A-Za-z0-9_-]{43}/);
  });

  it('security audit reports a grant that can escalate to full access (admin:CreateKey on *) as high', () => {
    const fresh = tmpHome();
    kennelJson(fresh, ['keys', 'create', 'ops', '--allow', 'admin:CreateKey:*', '--expires', '30d']);
    const audit = kennel(fresh, ['security', 'audit', '--json']);
    assert.equal(audit.code, 1, audit.stdout);
    const { findings } = JSON.parse(audit.stdout) as { findings: Array<{ severity: string; rule: string; resource: string; fix: string }> };
    const f = findings.find((x) => x.resource === 'principal/ops');
    assert.equal(f?.severity, 'high');
    assert.equal(f?.rule, 'admin-escalation');
    assert.match(f!.fix, /^kennel policies detach ops pol_/);
  });

  it('policies attach validates its input', () => {
    for (const [args, message] of [
      [['policies', 'attach', 'x'], /either --allow\/--deny grants or --file/],
      [['policies', 'attach', 'x', '--file', '/nonexistent.json'], /Cannot read the policy file/],
      [['policies', 'attach', 'role/nope', '--allow', '*:*'], /Execution role role\/nope was not found/],
      [['policies', 'show', 'nobody'], /Principal nobody was not found/],
      [['security', 'cors', '--allow-origin', '*', '--credentials'], /cannot allow every origin/],
    ] as const) {
      const r = kennel(home, [...args]);
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.stderr, message);
    }
  });
});
