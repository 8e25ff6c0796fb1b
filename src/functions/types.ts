/** One prediction as endpoints return it. */
export interface EndpointPrediction {
  label: string;
  index?: number;
  score: number;
}

/** An endpoint's answer: `{"predictions", "model": "NAME@V", "variant"}`. */
export interface EndpointResult {
  predictions: EndpointPrediction[];
  model: string;
  variant?: string;
}

/**
 * How functions reach endpoints. The daemon provides one that routes to its replicas; tests use a
 * fake. Errors should be KennelErrors carrying the HTTP status (404 unknown endpoint, 422 bad
 * image, 503 overloaded...).
 */
export interface EndpointClient {
  invoke(endpoint: string, body: Uint8Array, contentType: string, opts?: { topK?: number; requestId?: string; signal?: AbortSignal }): Promise<EndpointResult>;
}

/** What a handler returns, Lambda proxy style; the gateway turns it into the HTTP response. */
export interface ProxyResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
  isBase64Encoded?: boolean;
}

/** The second argument of `handler(event, context)`. */
export interface HandlerContext {
  functionName: string;
  requestId: string;
  /** the function's own endpoint (--endpoint) */
  endpoint: string;
  memoryLimitInMB: number;
  getRemainingTimeInMillis(): number;
  /** invokes an endpoint; allowed only where the function's execution role allows endpoint:Invoke */
  endpoints: { invoke(endpoint: string, body: Uint8Array, contentType: string, opts?: { topK?: number }): Promise<EndpointResult> };
  /** fetches an image from a caller's URL with Kennel's SSRF protections */
  fetchImage(url: string): Promise<{ bytes: Uint8Array; contentType: string }>;
}

/**
 * The request body an HTTP API event was made from (the Buffer of a raw body, or the parsed
 * JSON), kept beside the event's string `body` so in-process handlers skip re-decoding it. It is
 * a symbol, so it never reaches worker threads or handlers that do not ask for it.
 */
export const PARSED_BODY: unique symbol = Symbol('kennel.parsedBody');
