import type { EndpointResult } from './types.js';

/** An error as it crosses the thread boundary (KennelError fields included when present). */
export interface WireError {
  message: string;
  name?: string;
  status?: number;
  code?: string;
  hint?: string;
}

export interface WireContext {
  functionName: string;
  requestId: string;
  endpoint: string;
  memoryLimitInMB: number;
  /** Date.now() by which the invocation must finish */
  deadline: number;
}

/** Calls a handler makes through its context; served (and authorised) by the parent. */
export interface ParentServices {
  invokeEndpoint(endpoint: string, body: Uint8Array, contentType: string, opts?: { topK?: number }): Promise<EndpointResult>;
  fetchImage(url: string): Promise<{ bytes: Uint8Array; contentType: string }>;
}

export type RpcMethod = keyof ParentServices;

export type ToWorker =
  | { type: 'invoke'; id: number; event: unknown; context: WireContext }
  | { type: 'rpc-result'; callId: number; ok: true; value: unknown }
  | { type: 'rpc-result'; callId: number; ok: false; error: WireError };

export type FromWorker =
  | { type: 'ready' }
  | { type: 'init-failed'; error: WireError }
  | { type: 'rpc'; callId: number; method: RpcMethod; args: unknown[] }
  | { type: 'done'; id: number; ok: true; value: unknown }
  | { type: 'done'; id: number; ok: false; error: WireError };

export function toWire(e: unknown): WireError {
  if (!(e instanceof Error)) return { message: String(e) };
  const k = e as Error & { status?: number; code?: string; hint?: string };
  return { message: k.message, name: k.name, status: typeof k.status === 'number' ? k.status : undefined, code: typeof k.code === 'string' ? k.code : undefined, hint: k.hint };
}
