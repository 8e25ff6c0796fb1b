import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KennelError } from '../../src/core/errors.ts';
import { evaluate, parseGrant, parsePolicyDocument, policyFromGrants } from '../../src/security/index.ts';
import { globMatch } from '../../src/security/policy.ts';

describe('policies', () => {
  it('matches globs without pathological backtracking', () => {
    assert.ok(globMatch('endpoint/*', 'endpoint/dogs'));
    assert.ok(globMatch('*', ''));
    assert.ok(globMatch('endpoint/d*s', 'endpoint/dogs'));
    assert.ok(!globMatch('endpoint/d*s', 'endpoint/dog'));
    assert.ok(!globMatch('endpoint/dogs', 'endpoint/dogs2'));
    assert.ok(!globMatch('a*a*a*a*a*a*a*a*b', 'a'.repeat(5000)));
  });

  it('parses ACTION:RESOURCE grants', () => {
    assert.deepEqual(parseGrant('*:*'), { action: '*', resource: '*' });
    assert.deepEqual(parseGrant('admin:*:*'), { action: 'admin:*', resource: '*' });
    assert.deepEqual(parseGrant('*:Invoke:endpoint/x'), { action: '*:Invoke', resource: 'endpoint/x' });
    assert.deepEqual(parseGrant('model:Read:model/dogs:production'), { action: 'model:Read', resource: 'model/dogs:production' });
    for (const bad of ['endpoint:Invoke', 'endpoint:Invoke:', 'endpoint:Invoke:dogs', 'ec2:Run:*', '']) assert.throws(() => parseGrant(bad), KennelError, bad);
  });

  it('denies by default, lets an explicit deny win, compares actions case-insensitively', () => {
    const doc = policyFromGrants(['endpoint:*:endpoint/*', 'model:Read:*'], ['endpoint:Invoke:endpoint/secret']);
    assert.equal(evaluate([doc], 'endpoint:Invoke', 'endpoint/dogs'), 'allow');
    assert.equal(evaluate([doc], 'ENDPOINT:invoke', 'endpoint/dogs'), 'allow');
    assert.equal(evaluate([doc], 'endpoint:Invoke', 'endpoint/secret'), 'explicit-deny');
    assert.equal(evaluate([doc], 'endpoint:Invoke', 'Endpoint/dogs'), 'implicit-deny', 'resources are case-sensitive');
    assert.equal(evaluate([doc], 'function:Invoke', 'function/classify'), 'implicit-deny');
    assert.equal(evaluate([], 'model:Read', 'model/x'), 'implicit-deny');
    // a deny in another document of the same principal still wins
    assert.equal(evaluate([policyFromGrants(['*:*']), policyFromGrants([], ['model:*:model/private'])], 'model:Read', 'model/private'), 'explicit-deny');
  });

  it('accepts Kennel and AWS IAM spellings, and explains invalid documents', () => {
    const kennel = parsePolicyDocument({ statements: [{ effect: 'allow', actions: ['endpoint:Invoke'], resources: ['endpoint/dogs'] }] });
    const iam = parsePolicyDocument({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'endpoint:Invoke', Resource: 'endpoint/dogs' }] });
    assert.deepEqual(iam, kennel);
    assert.deepEqual(parsePolicyDocument({ effect: 'deny', actions: '*', resources: '*' }).statements[0], { effect: 'deny', actions: ['*'], resources: ['*'] });
    const cases: Array<[unknown, RegExp]> = [
      [null, /JSON object/],
      [{ statements: [] }, /non-empty "statements"/],
      [{ statements: [{ effect: 'maybe', actions: ['*'], resources: ['*'] }] }, /"effect": "allow" or "deny"/],
      [{ statements: [{ effect: 'allow', actions: [], resources: ['*'] }] }, /actions" must be a non-empty list/],
      [{ statements: [{ effect: 'allow', actions: ['s3:GetObject'], resources: ['*'] }] }, /"s3:GetObject" is not an action/],
      [{ statements: [{ effect: 'allow', actions: ['*'], resources: ['arn:aws:s3:::bucket'] }] }, /is not a resource/],
    ];
    for (const [doc, message] of cases) {
      const e = (() => {
        try {
          parsePolicyDocument(doc);
        } catch (err) {
          return err as KennelError;
        }
        assert.fail('accepted an invalid policy');
      })();
      assert.equal(e.status, 400);
      assert.match(e.message, message);
    }
  });
});
