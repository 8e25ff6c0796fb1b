import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { errorCode, errorCodes, Errors, KennelError, notFound, rebuiltError } from '../../src/core/index.ts';

const src = fileURLToPath(new URL('../../src', import.meta.url));
const sources = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(path.join(dir, e.name)) : /\.tsx?$/.test(e.name) ? [path.join(dir, e.name)] : []));

test('every code is defined once in the catalogue, with an HTTP error status', () => {
  const catalogue = Object.values(Errors).filter((v) => typeof v === 'function' && 'code' in v);
  assert.ok(catalogue.length >= 60);
  assert.deepEqual(new Set(catalogue), new Set(errorCodes()), 'every defined code is exported by the catalogue');
  const codes = errorCodes().map((k) => k.code);
  assert.equal(new Set(codes).size, codes.length, 'no code string is defined twice');
  for (const k of errorCodes()) {
    assert.match(k.code, /^[a-z][a-z0-9_]*$/);
    assert.ok(k.status >= 400 && k.status < 600, `${k.code}: ${k.status}`);
  }
  // a second definition of a code is refused
  assert.throws(() => errorCode('not_found', 410), /defined twice/);
});

test('constructing by name gives the status, code, message and hint; identity comparison works', () => {
  const e = Errors.NotFound('Model dogs@3 was not found.', 'List them with kennel models list.');
  assert.ok(e instanceof KennelError);
  assert.equal(e.status, 404);
  assert.equal(e.code, 'not_found');
  assert.equal(e.message, 'Model dogs@3 was not found.');
  assert.equal(e.hint, 'List them with kennel models list.');
  assert.equal(e.kind, Errors.NotFound);
  assert.ok(Errors.NotFound.is(e));
  assert.ok(!Errors.Conflict.is(e));
  assert.ok(!Errors.NotFound.is(new Error('not_found')));

  // the defaults of KennelError are the catalogue's InvalidRequest
  const plain = Errors.InvalidRequest('Bad.');
  assert.deepEqual([plain.status, plain.code, plain.hint], [400, 'invalid_request', undefined]);
  assert.ok(Errors.InvalidRequest.is(plain));

  // a status that comes from elsewhere overrides the default; the kind stays
  const late = Errors.DaemonFailed('The daemon did not answer within 60 s.', 'See its log.', 504);
  assert.deepEqual([late.status, late.code], [504, 'daemon_failed']);
  assert.ok(Errors.DaemonFailed.is(late));

  // a default hint where the code has a generic one
  assert.equal(Errors.DiskFull('The disk is full.').hint, Errors.DiskFull.hint);
  assert.equal(Errors.DiskFull('The disk is full.').status, 507);

  // the notFound helper
  const nf = notFound('Dataset "pets"', 'Import one.');
  assert.deepEqual([nf.message, nf.hint, nf.status, nf.code], ['Dataset "pets" was not found.', 'Import one.', 404, 'not_found']);
  assert.ok(Errors.NotFound.is(nf));

  // an error rebuilt from a wire answer finds its kind by code; an unknown code has none
  const wire = rebuiltError('Function f timed out.', undefined, 504, 'function_timeout');
  assert.equal(wire.kind, Errors.FunctionTimeout);
  assert.ok(Errors.FunctionTimeout.is(wire));
  assert.equal(rebuiltError('?', undefined, 500, 'something_else').kind, undefined);

  // withHint keeps message, status and code
  const rehinted = e.withHint('Another hint.');
  assert.deepEqual([rehinted.message, rehinted.hint, rehinted.status, rehinted.code], [e.message, 'Another hint.', 404, 'not_found']);
});

test('subclasses carry catalogue codes', async () => {
  const { ThrottledError } = await import('../../src/security/index.ts');
  const t = new ThrottledError('Slow down.', 'Wait.', 1);
  assert.ok(Errors.Throttled.is(t));
  assert.equal(t.status, 429);
});

test('no error is constructed outside the catalogue, and no code is compared as a string', () => {
  const allowed = new Set([path.join(src, 'core/errors.ts'), path.join(src, 'core/error-codes.ts')]);
  const offenders: string[] = [];
  for (const file of sources(src)) {
    if (allowed.has(file)) continue;
    const text = readFileSync(file, 'utf8');
    text.split('\n').forEach((line, i) => {
      if (line.includes('new KennelError(') || /(?<!typeof )\b\w+\.code\s*[!=]==?\s*'[a-z_0-9]+'/.test(line)) offenders.push(`${path.relative(src, file)}:${i + 1}: ${line.trim()}`);
    });
  }
  assert.deepEqual(offenders, [], 'construct errors by name (Errors.NotFound(...)) and compare them with Errors.X.is(e)');
});
