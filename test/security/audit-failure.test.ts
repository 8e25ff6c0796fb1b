import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, it } from 'node:test';
import { pino } from 'pino';
import { AuditUnavailableError, createKey, listKeys, setAuditFailure, type Actor } from '../../src/security/index.ts';
import { startDaemon, type Daemon } from '../../src/server/index.ts';
import { readAdminToken } from '../../src/server/state.ts';
import { openWorkspace, type Workspace } from '../../src/store/index.ts';
import { tmpHome } from '../helpers/paths.ts';

/**
 * Item 5 of the hardening issue: the audit log fails closed. A fault-injected write (a trigger
 * that makes every insert into audit_log fail, as a full disk would) refuses admin changes with
 * 503 and leaves nothing changed; the data plane answers 503 by default, and with the `count`
 * policy serves the request, counts it and logs an error line.
 */
const by: Actor = { principal: 'local:test', plane: 'cli' };
let home: string;
let ws: Workspace;
let daemon: Daemon;
let key: string;
const logLines: Array<{ msg?: string; refused?: boolean }> = [];

const breakAuditLog = () => ws.db.exec("CREATE TRIGGER audit_fault BEFORE INSERT ON audit_log BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END");
const repairAuditLog = () => ws.db.exec('DROP TRIGGER audit_fault');

before(async () => {
  home = tmpHome();
  ws = openWorkspace(home);
  key = createKey(ws, 'app', { allow: ['endpoint:Invoke:endpoint/*'] }, by).key;
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) logLines.push(JSON.parse(line) as { msg?: string });
      done();
    },
  });
  daemon = await startDaemon({ home, port: 0, adminPort: 0, log: pino({ level: 'info' }, sink) });
});

after(async () => {
  await daemon?.close();
  ws?.close();
});

const invoke = () => fetch(`http://127.0.0.1:${daemon.state.port}/endpoints/missing/invocations`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'image/jpeg' }, body: 'x' });

async function failures(outcome: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${daemon.state.port}/metrics`)).text();
  return Number(new RegExp(`kennel_audit_write_failures_total\\{plane="data",outcome="${outcome}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
}

it('refuses an admin change whose audit entry cannot be written, and makes nothing', async () => {
  breakAuditLog();
  try {
    assert.throws(
      () => createKey(ws, 'intruder', { allow: ['*:*'] }, by),
      (e: unknown) => e instanceof AuditUnavailableError && e.status === 503,
    );
    assert.deepEqual(
      listKeys(ws).filter((k) => k.principal === 'intruder'),
      [],
    );
    const admin = `http://127.0.0.1:${daemon.state.adminPort}`;
    const headers = { authorization: `Bearer ${readAdminToken(home)}`, 'content-type': 'application/json' };
    const res = await fetch(`${admin}/v1/endpoints?wait=false`, { method: 'POST', headers, body: JSON.stringify({ name: 'dogs', variants: [{ name: 'primary', model: 'mnet' }], instances: 1 }) });
    assert.equal(res.status, 503);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'audit_unavailable');
    assert.deepEqual(((await (await fetch(`${admin}/v1/endpoints`, { headers })).json()) as { endpoints: unknown[] }).endpoints, []);
  } finally {
    repairAuditLog();
  }
});

it('data plane, default policy: a request whose audit entry cannot be written is answered 503', async () => {
  assert.equal((await invoke()).status, 404); // the request as it is answered when the audit log works
  breakAuditLog();
  try {
    const res = await invoke();
    const text = await res.text();
    assert.equal(res.status, 503, text);
    assert.equal((JSON.parse(text) as { error: { code: string } }).error.code, 'audit_unavailable', text);
    assert.equal(await failures('refused'), 1);
    assert.ok(logLines.some((l) => l.msg === 'audit entry not written' && l.refused === true));
  } finally {
    repairAuditLog();
  }
});

it('data plane, count policy: served, counted and logged', async () => {
  setAuditFailure(ws, { dataPlane: 'count' }, by);
  await new Promise((r) => setTimeout(r, 5500)); // the daemon re-reads security settings every 5 s
  breakAuditLog();
  try {
    assert.equal((await invoke()).status, 404);
    assert.equal(await failures('served'), 1);
    assert.ok(logLines.some((l) => l.msg === 'audit entry not written' && l.refused === false));
  } finally {
    repairAuditLog();
  }
});
