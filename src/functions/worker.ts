/**
 * The entry point of a function instance's worker thread: loads the bundled handler module once
 * (the cold start), then runs one invocation at a time. Endpoint calls and URL fetches go to the
 * parent, which checks them against the function's execution role; nothing here is trusted.
 */
import { pathToFileURL } from 'node:url';
import { parentPort, workerData } from 'node:worker_threads';
import { KennelError, rebuiltError } from '../core/index.js';
import type { HandlerContext } from './types.js';
import { toWire, type FromWorker, type RpcMethod, type ToWorker, type WireError } from './worker-protocol.js';

const port = parentPort!;
const send = (m: FromWorker) => port.postMessage(m);
const calls = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
let nextCall = 0;

const fromWire = (e: WireError): Error => (e.status ? rebuiltError(e.message, e.hint, e.status, e.code) : Object.assign(new Error(e.message), { name: e.name ?? 'Error' }));

function rpc(method: RpcMethod, args: unknown[]): Promise<unknown> {
  const callId = ++nextCall;
  return new Promise((resolve, reject) => {
    calls.set(callId, { resolve, reject });
    send({ type: 'rpc', callId, method, args });
  });
}

type Handler = (event: unknown, context: HandlerContext) => unknown;
let handler: Handler;
try {
  const mod = (await import(pathToFileURL((workerData as { modulePath: string }).modulePath).href)) as { handler?: Handler; default?: { handler?: Handler } };
  const found = mod.handler ?? mod.default?.handler;
  if (typeof found !== 'function') throw new Error('the module does not export a function named handler');
  handler = found;
} catch (e) {
  send({ type: 'init-failed', error: toWire(e) });
  process.exit(1);
}

port.on('message', async (m: ToWorker) => {
  if (m.type === 'rpc-result') {
    const call = calls.get(m.callId);
    calls.delete(m.callId);
    if (m.ok) call?.resolve(m.value);
    else call?.reject(fromWire(m.error));
    return;
  }
  const { context: c } = m;
  const context: HandlerContext = {
    functionName: c.functionName,
    requestId: c.requestId,
    endpoint: c.endpoint,
    memoryLimitInMB: c.memoryLimitInMB,
    getRemainingTimeInMillis: () => Math.max(0, c.deadline - Date.now()),
    endpoints: { invoke: (endpoint, body, contentType, opts) => rpc('invokeEndpoint', [endpoint, body, contentType, opts]) as ReturnType<HandlerContext['endpoints']['invoke']> },
    fetchImage: (url) => rpc('fetchImage', [url]) as ReturnType<HandlerContext['fetchImage']>,
  };
  try {
    const value = await handler(m.event, context);
    try {
      send({ type: 'done', id: m.id, ok: true, value });
    } catch (e) {
      send({ type: 'done', id: m.id, ok: false, error: { message: `the handler returned a value that cannot be sent back (${(e as Error).message})` } });
    }
  } catch (e) {
    send({ type: 'done', id: m.id, ok: false, error: toWire(e) });
  }
});

send({ type: 'ready' });
