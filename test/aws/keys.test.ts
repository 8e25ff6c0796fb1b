import assert from 'node:assert/strict';
import { chmodSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { unseal } from '../../src/security/sealing.ts';
import { masterKeyPath } from '../../src/security/index.ts';
import { openWorkspace } from '../../src/store/index.ts';
import { kennel, kennelJson } from '../foundation/cli.ts';
import { tmpHome } from '../helpers/paths.ts';

/** Every file under `dir`, recursively. */
const filesUnder = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(path.join(dir, e.name)) : [path.join(dir, e.name)]));

describe('AWS access keys (kennel keys create --aws)', () => {
  const home = tmpHome();

  it('prints the contract {principal, accessKeyId, secretAccessKey}; the secret is stored only encrypted', () => {
    const created = kennelJson<{ principal: string; accessKeyId: string; secretAccessKey: string; policyId: string }>(home, ['keys', 'create', 'seed-app', '--aws', '--allow', 'endpoint:Invoke:endpoint/dogs', '--expires', '90d']);
    assert.equal(created.principal, 'seed-app');
    assert.match(created.accessKeyId, /^AKIA[A-Z2-7]{16}$/);
    assert.match(created.secretAccessKey, /^[A-Za-z0-9+/]{40}$/);
    const policy = kennelJson<{ policies: Array<{ id: string; document: unknown }> }>(home, ['policies', 'show', 'seed-app']);
    assert.deepEqual(policy.policies.find((p) => p.id === created.policyId)?.document, { statements: [{ effect: 'allow', actions: ['endpoint:Invoke'], resources: ['endpoint/dogs'] }] });

    // the master key: 32 bytes, readable by its owner only, in a private folder
    const master = masterKeyPath(home);
    assert.equal(statSync(master).mode & 0o777, 0o600);
    assert.equal(statSync(path.dirname(master)).mode & 0o777, 0o700);
    assert.equal(readFileSync(master).length, 32);
    // no file of the workspace (database, WAL, artifacts) holds the secret in the clear
    for (const file of filesUnder(home)) assert.ok(!readFileSync(file).includes(created.secretAccessKey), `${file} holds the secret`);

    // the sealed secret opens only for its own row
    const ws = openWorkspace(home);
    try {
      const { secret_sealed } = ws.db.prepare('SELECT secret_sealed FROM api_keys WHERE id = ?').get(created.accessKeyId) as { secret_sealed: string };
      assert.equal(unseal(home, secret_sealed, created.accessKeyId), created.secretAccessKey);
      assert.throws(() => unseal(home, secret_sealed, 'AKIAOTHERKEYAAAAAAAA'), /cannot be decrypted/);
    } finally {
      ws.close();
    }
  });

  it('lists, rotates and revokes AWS keys by their access key id', () => {
    const { accessKeyId } = kennelJson<{ accessKeyId: string }>(home, ['keys', 'create', 'ci', '--aws']);
    const listed = kennelJson<{ keys: Array<{ keyId: string; type: string; state: string }> }>(home, ['keys', 'list', '--principal', 'ci']).keys;
    assert.deepEqual(listed.map((k) => [k.keyId, k.type, k.state]), [[accessKeyId, 'aws', 'active']]);
    const rotated = kennelJson<{ keyId: string; accessKeyId: string; secretAccessKey: string; oldKeyId: string }>(home, ['keys', 'rotate', accessKeyId, '--overlap', '1h']);
    assert.equal(rotated.oldKeyId, accessKeyId);
    assert.match(rotated.accessKeyId, /^AKIA[A-Z2-7]{16}$/);
    assert.equal(rotated.keyId, rotated.accessKeyId);
    assert.equal(rotated.secretAccessKey.length, 40);
    const human = kennel(home, ['keys', 'rotate', rotated.accessKeyId]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^new AWS access key AKIA[A-Z2-7]{16} for ci:\n\n {2}aws_access_key_id = AKIA[A-Z2-7]{16}\n {2}aws_secret_access_key = \S{40}\n/);
    assert.equal(kennelJson<{ state: string }>(home, ['keys', 'revoke', accessKeyId]).state, 'revoked');
  });

  it('refuses to use a master key that other users can read', () => {
    chmodSync(masterKeyPath(home), 0o644);
    try {
      const r = kennel(home, ['keys', 'create', 'late', '--aws']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^error: The master key .* can be read by other users\.\n {2}Make it private: chmod 600 /);
    } finally {
      chmodSync(masterKeyPath(home), 0o600);
    }
  });
});
