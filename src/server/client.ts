import { Errors, KennelError, errorMessage, rebuiltError } from '../core/index.js';
import { DEFAULT_MAX_IMAGE_BYTES } from '../serving/index.js';
import type { ErrorBody } from './errors.js';
import { isAlive, readAdminToken, readState, type DaemonState } from './state.js';

/** The running daemon of a KENNEL_HOME, found through its state file. */
export function findDaemon(home: string): DaemonState {
  const state = readState(home);
  if (!state || !isAlive(state.pid)) {
    throw Errors.DaemonNotRunning(`No Kennel daemon is running for ${home}.`, 'Start one with kennel up (or kennel up --detach), with the same KENNEL_HOME.');
  }
  return state;
}

const hostFor = (state: Pick<DaemonState, 'host'>): string => {
  const h = state.host === '0.0.0.0' || state.host === '::' ? '127.0.0.1' : state.host;
  return h.includes(':') ? `[${h}]` : h;
};

export const dataPlaneUrl = (state: Pick<DaemonState, 'host' | 'port'>): string => `http://${hostFor(state)}:${state.port}`;
export const adminUrl = (state: DaemonState): string => `http://${hostFor(state)}:${state.adminPort}`;

/** Turns an error response into a KennelError with the server's message and hint. */
async function failure(res: Response): Promise<KennelError> {
  const text = await res.text();
  try {
    const body = JSON.parse(text) as ErrorBody;
    if (body.error?.message) return rebuiltError(body.error.message, body.error.hint, res.status, body.error.code);
  } catch {
    /* not JSON */
  }
  return Errors.HttpError(`The daemon answered ${res.status} ${res.statusText}.`, text.slice(0, 200) || undefined, res.status);
}

async function call(url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (e) {
    throw Errors.DaemonUnreachable(`Could not reach the Kennel daemon at ${new URL(url).host}: ${errorMessage((e as { cause?: unknown }).cause ?? e)}.`, 'Check that it runs (kennel up) and that KENNEL_HOME points at its workspace.');
  }
}

/** The admin token of a workspace whose daemon runs, or undefined when this user cannot read it. */
function ownerToken(home: string): string | undefined {
  try {
    return readAdminToken(home);
  } catch {
    return undefined; // another user's workspace
  }
}

/** A request to the admin API with the admin token; throws a KennelError for any error answer. */
async function adminCall(home: string, method: string, path: string, body?: { bytes: Uint8Array; contentType: string }): Promise<Response> {
  const state = findDaemon(home);
  const token = ownerToken(home);
  if (!token) throw Errors.Unauthorized('The admin token is missing.', `It is created by kennel up in ${home}/daemon/admin-token.`);
  const res = await call(adminUrl(state) + path, { method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': body.contentType } : {}) }, body: body?.bytes });
  if (!res.ok) throw await failure(res);
  return res;
}

/** Calls the admin API with the admin token; throws a KennelError for any error answer. */
export async function adminRequest<T>(home: string, method: string, path: string, body?: unknown): Promise<T> {
  const json = body === undefined ? undefined : { bytes: Buffer.from(JSON.stringify(body)), contentType: 'application/json' };
  return (await (await adminCall(home, method, path, json)).json()) as T;
}

/**
 * POSTs an image to an endpoint's invocations URL with an API key (`Authorization: Bearer`);
 * throws a KennelError for a 4xx/5xx answer. Without a key, the workspace's owner (who can read
 * the admin token, on the daemon's machine) is served through the admin API, as the console's
 * Try it is: `asOwner` says so.
 */
export async function invokeEndpoint(home: string, endpoint: string, image: Uint8Array, contentType: string, topK: number, key?: string): Promise<{ result: unknown; asOwner: boolean }> {
  const state = findDaemon(home);
  const limit = state.maxImageBytes ?? DEFAULT_MAX_IMAGE_BYTES;
  // checked here too: the daemon would only answer 413 after the upload started
  if (image.byteLength > limit) throw imageTooLarge(image.byteLength, limit);
  if (!key && ownerToken(home)) {
    const res = await adminCall(home, 'POST', `/api/endpoints/${encodeURIComponent(endpoint)}/invocations?topK=${topK}`, { bytes: image, contentType });
    return { result: await res.json(), asOwner: true };
  }
  const headers: Record<string, string> = { 'content-type': contentType, ...(key ? { authorization: `Bearer ${key}` } : {}) };
  const res = await call(`${dataPlaneUrl(state)}/endpoints/${encodeURIComponent(endpoint)}/invocations?topK=${topK}`, { method: 'POST', headers, body: image });
  if (res.status === 413) throw imageTooLarge(image.byteLength, limit);
  if (!res.ok) throw await failure(res);
  return { result: await res.json(), asOwner: false };
}

const mib = (bytes: number): string => `${Number((bytes / 2 ** 20).toFixed(2))} MiB`;

const imageTooLarge = (size: number, limit: number): KennelError =>
  Errors.TooLarge(`The image is too large (limit ${mib(limit)}): it has ${mib(size)}.`, 'Resize it before sending: the model looks at a few hundred pixels.');

export interface AsyncInvocation {
  /** kennel://artifacts/SHA or https:// */
  inputLocation: string;
  topK: number;
  key: string;
  inferenceId?: string;
  notify?: string;
  /** the request's maximum age in seconds (X-Amzn-SageMaker-RequestTTLSeconds) */
  ttlS?: number;
}

/** SageMaker's InvokeEndpointAsync on the daemon's data plane. */
export async function invokeEndpointAsync(home: string, endpoint: string, o: AsyncInvocation): Promise<{ InferenceId: string; OutputLocation: string; FailureLocation: string }> {
  const state = findDaemon(home);
  const headers: Record<string, string> = {
    authorization: `Bearer ${o.key}`,
    'x-amzn-sagemaker-inputlocation': o.inputLocation,
    ...(o.inferenceId ? { 'x-amzn-sagemaker-inference-id': o.inferenceId } : {}),
    ...(o.notify ? { 'x-kennel-notify-url': o.notify } : {}),
    ...(o.ttlS ? { 'x-amzn-sagemaker-requestttlseconds': String(o.ttlS) } : {}),
  };
  const res = await call(`${dataPlaneUrl(state)}/endpoints/${encodeURIComponent(endpoint)}/async-invocations?topK=${o.topK}`, { method: 'POST', headers });
  if (!res.ok) throw await failure(res);
  return (await res.json()) as { InferenceId: string; OutputLocation: string; FailureLocation: string };
}

/** An asynchronous request's status (with its answer once completed) from the daemon's data plane. */
export async function asyncRequestStatus<T>(home: string, endpoint: string, id: string, key: string): Promise<T> {
  const state = findDaemon(home);
  const res = await call(`${dataPlaneUrl(state)}/endpoints/${encodeURIComponent(endpoint)}/async-invocations/${encodeURIComponent(id)}`, { method: 'GET', headers: { authorization: `Bearer ${key}` } });
  if (!res.ok) throw await failure(res);
  return (await res.json()) as T;
}
