import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, test } from 'node:test';
import { Child, ChildStartError, type ChildOptions } from '../../src/core/index.ts';
import { processState } from '../helpers/process.ts';

type In = { type: 'echo'; value: number } | { type: 'stop' };
type Out = { type: 'ready'; pid: number } | { type: 'echo'; value: number };

const entry = new URL('./fixtures/child.js', import.meta.url);

function child(kind: 'process' | 'thread', mode: string, opts: Partial<ChildOptions<In>> = {}): Child<In, Out> {
  return new Child<In, Out>({ entry, kind, args: [mode], data: { mode }, stop: { type: 'stop' }, graceMs: 500, ...opts });
}

for (const kind of ['process', 'thread'] as const) {
  describe(`a ${kind} Child`, () => {
    test('start() resolves with the first message; messages both ways; close() sends stop and the child exits', async () => {
      const c = child(kind, 'echo');
      assert.equal(c.pid, undefined, 'nothing is spawned before start()');
      const answers: number[] = [];
      c.on('message', (m) => m.type === 'echo' && answers.push(m.value));
      const first = await c.start();
      assert.equal(first.type, 'ready');
      assert.equal(first.pid === process.pid, kind === 'thread');
      assert.ok(c.send({ type: 'echo', value: 21 }));
      while (!answers.length) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(answers, [42]);
      const exits: unknown[] = [];
      c.on('exit', (x) => exits.push(x));
      const how = await c.close();
      assert.equal(how?.code, 0);
      assert.equal(how?.signal, null);
      assert.equal(exits.length, 1);
      assert.equal(c.running, false);
      assert.equal(c.send({ type: 'echo', value: 1 }), false, 'an ended child takes no messages');
      assert.deepEqual(await c.close(), how, 'closing twice is harmless');
    });

    test('close() kills a child that ignores stop after the grace period; close(true) at once', async () => {
      const c = child(kind, 'stubborn');
      await c.start();
      const t0 = performance.now();
      const how = await c.close();
      assert.ok(performance.now() - t0 >= 450, 'it waited for the grace period');
      if (kind === 'process') assert.equal(how?.signal, 'SIGKILL');
      const d = child(kind, 'stubborn', { graceMs: 60_000 });
      await d.start();
      const t1 = performance.now();
      await d.close(true);
      assert.ok(performance.now() - t1 < 5_000);
    });

    test('start() rejects when the child exits before its first message, or times out (and the child is killed)', async () => {
      const exits: unknown[] = [];
      const early = child(kind, 'exit').on('exit', (x) => exits.push(x));
      await assert.rejects(early.start(), (e: unknown) => e instanceof ChildStartError && e.reason === 'exit');
      assert.equal(exits.length, 1);
      const hung = child(kind, 'hang', { startTimeoutMs: 300 });
      await assert.rejects(hung.start(), (e: unknown) => e instanceof ChildStartError && e.reason === 'timeout');
      await hung.exited;
      assert.equal(hung.running, false);
    });
  });
}

/** Starts the fixture parent, which starts and stops a Child; kills the parent; returns the child's pid. */
async function orphanStoppedChild(mode: 'die' | 'keep'): Promise<number> {
  const parent = spawn(process.execPath, [...process.execArgv.filter((a) => !a.startsWith('--test')), new URL('./fixtures/stopped-child-parent.ts', import.meta.url).pathname, mode], { stdio: ['ignore', 'pipe', 'inherit'] });
  const pid = await new Promise<number>((resolve, reject) => {
    parent.stdout.once('data', (d: Buffer) => resolve(Number(String(d).trim())));
    parent.once('exit', () => reject(new Error('the parent exited first')));
  });
  const state = processState(pid);
  // the parent goes first, so that a failed assertion does not leave it (and this file's run) waiting
  parent.kill('SIGKILL');
  await new Promise((r) => parent.once('exit', r));
  assert.equal(state, 'T', 'the child is stopped');
  return pid;
}

const linuxWithSetpriv = process.platform === 'linux' && ['/usr/bin/setpriv', '/bin/setpriv'].some((p) => existsSync(p));
test('dieWithParent: a stopped child process dies with its parent (a held shadow replica must not outlive a killed daemon)', { skip: linuxWithSetpriv ? false : 'needs Linux and util-linux setpriv' }, async () => {
  const gone = (pid: number) => ['Z', undefined].includes(processState(pid));
  const dies = await orphanStoppedChild('die');
  for (let i = 0; i < 100 && !gone(dies); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(gone(dies), `the child ${dies} is still there (${processState(dies)})`);

  // without it, the stopped child is left behind: what the option is for
  const stays = await orphanStoppedChild('keep');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(processState(stays), 'T');
  process.kill(stays, 'SIGKILL');
});
