import { useCallback, useEffect, useState } from 'preact/hooks';

/** An error answer of the console API: the server's one-sentence message and what to do. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

let csrf: string | undefined;
const sessionListeners = new Set<() => void>();

/** The CSRF token of the session, sent with every change. */
export function setCsrf(token: string | undefined): void {
  csrf = token;
}

/** Called when the server says the session is gone (signed out elsewhere, key revoked, daemon restarted). */
export function onSessionLost(listener: () => void): () => void {
  sessionListeners.add(listener);
  return () => sessionListeners.delete(listener);
}

function sessionLost(): void {
  for (const l of sessionListeners) l();
}

async function failure(res: Response): Promise<ApiError> {
  try {
    const body = (await res.json()) as { error?: { message?: string; code?: string; hint?: string } };
    if (body.error?.message) return new ApiError(body.error.message, res.status, body.error.code ?? 'error', body.error.hint);
  } catch {
    /* not JSON */
  }
  return new ApiError(`The server answered ${res.status} ${res.statusText}.`, res.status, 'http_error');
}

/** Calls the console API; a Blob body is sent as is (an image), anything else as JSON. */
export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (method !== 'GET' && csrf) headers['x-csrf-token'] = csrf;
  let payload: BodyInit | undefined;
  if (body instanceof Blob) {
    headers['content-type'] = body.type || 'application/octet-stream';
    payload = body;
  } else if (body !== undefined) {
    headers['content-type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: payload, credentials: 'same-origin' });
  } catch {
    throw new ApiError('The Kennel daemon cannot be reached.', 0, 'unreachable', 'Check that it still runs (kennel up), then retry.');
  }
  if (!res.ok) {
    const e = await failure(res);
    if (res.status === 401 && path !== '/api/login') sessionLost();
    throw e;
  }
  return (await res.json()) as T;
}

export interface Loaded<T> {
  data?: T;
  error?: ApiError;
  reload: () => void;
}

/** GETs `path` (null: nothing yet) and reloads when it changes. */
export function useApi<T>(path: string | null): Loaded<T> {
  const [state, setState] = useState<{ data?: T; error?: ApiError }>({});
  const [tick, setTick] = useState(0);
  useEffect(() => {
    if (path === null) return;
    let live = true;
    setState((s) => ({ data: s.data }));
    api<T>('GET', path).then(
      (data) => live && setState({ data }),
      (error: ApiError) => live && setState({ error }),
    );
    return () => {
      live = false;
    };
  }, [path, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

/**
 * Follows a server-sent event stream (the server sends the current state, then every change).
 * A refused or failed stream ends with an error; a dropped connection reconnects by itself.
 */
export function useStream<T>(path: string | null): { data?: T; error?: ApiError } {
  const [state, setState] = useState<{ data?: T; error?: ApiError }>({});
  useEffect(() => {
    setState({});
    if (path === null) return;
    const source = new EventSource(path);
    source.onmessage = (e) => setState({ data: JSON.parse(e.data as string) as T });
    source.addEventListener('failure', (e) => {
      const f = JSON.parse((e as MessageEvent).data as string) as { status: number; message: string };
      source.close();
      if (f.status === 401) sessionLost();
      setState((s) => ({ data: s.data, error: new ApiError(f.message, f.status, 'stream') }));
    });
    source.onerror = () => {
      // before any data, an error is a refusal (401/404 answered as JSON, not a stream)
      if (source.readyState === EventSource.CLOSED) {
        api('GET', path.replace(/\/stream$/, '')).then(
          () => setState((s) => ({ data: s.data, error: new ApiError('The live updates stopped.', 0, 'stream', 'Reload the page.') })),
          (error: ApiError) => setState((s) => ({ data: s.data, error })),
        );
      }
    };
    return () => source.close();
  }, [path]);
  return state;
}
