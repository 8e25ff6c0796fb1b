import { Errors, KennelError } from '../core/index.js';
import { sniffImageType } from '../net/index.js';
import { checkImage, decodeBase64Image, DEFAULT_MAX_IMAGE_BYTES } from '../serving/index.js';
import { PARSED_BODY, type HandlerContext, type ProxyResponse } from './types.js';

const json = (statusCode: number, body: unknown, headers: Record<string, string> = {}): ProxyResponse => ({
  statusCode,
  headers: { 'content-type': 'application/json', ...headers },
  body: JSON.stringify(body),
});

/** The event's input: the event itself, or the JSON (or raw image) body of an HTTP API event. */
function inputOf(event: unknown): { input?: Record<string, unknown>; bytes?: Uint8Array } {
  if (event && typeof event === 'object' && 'requestContext' in event && 'body' in event) {
    const e = event as { body?: unknown; isBase64Encoded?: boolean; [PARSED_BODY]?: unknown };
    const parsed = e[PARSED_BODY];
    if (Buffer.isBuffer(parsed)) return { bytes: parsed };
    if (parsed !== undefined) return { input: parsed as Record<string, unknown> };
    if (typeof e.body !== 'string' || e.body === '') throw Errors.InvalidRequest('The request has no body.', 'Send {"url": "https://..."} or {"image": "<base64>"}, or the image bytes.');
    if (e.isBase64Encoded) return { bytes: Buffer.from(e.body, 'base64') };
    try {
      return { input: JSON.parse(e.body) };
    } catch {
      throw Errors.InvalidJson('The body is not valid JSON.');
    }
  }
  return { input: event as Record<string, unknown> };
}

async function imageOf(event: unknown, context: HandlerContext): Promise<{ bytes: Uint8Array; contentType: string; topK: number }> {
  const { input, bytes } = inputOf(event);
  let topK = 5;
  let image = bytes;
  if (!image) {
    if (!input || typeof input !== 'object' || Array.isArray(input)) throw Errors.InvalidRequest('The event must be a JSON object.', 'Send {"url": "https://..."} or {"image": "<base64>"}.');
    const { url, image: b64 } = input;
    if (input.topK !== undefined) {
      if (!Number.isInteger(input.topK) || (input.topK as number) < 1 || (input.topK as number) > 100) throw Errors.InvalidRequest('"topK" must be a whole number from 1 to 100.');
      topK = input.topK as number;
    }
    if ((url === undefined) === (b64 === undefined)) throw Errors.InvalidRequest('Send exactly one of "url" or "image".', 'e.g. {"url": "https://example.com/dog.jpg"} or {"image": "<base64 of the file>"}.');
    if (url !== undefined) {
      if (typeof url !== 'string') throw Errors.InvalidRequest('"url" must be a string.');
      return { ...(await context.fetchImage(url)), topK };
    }
    if (typeof b64 !== 'string') throw Errors.InvalidRequest('"image" must be a base64 string.');
    image = decodeBase64Image(b64, DEFAULT_MAX_IMAGE_BYTES);
  }
  // the same checks as the endpoint's own (empty, size, a supported format by its bytes)
  checkImage(image, DEFAULT_MAX_IMAGE_BYTES);
  return { bytes: image, contentType: sniffImageType(image)!, topK };
}

/**
 * The built-in handler: event {"url": "https://..."} or {"image": "<base64>"} (directly, or as the
 * body of an HTTP API event), classified by the function's endpoint. Answers Lambda proxy style;
 * bad input and endpoint refusals become 4xx/5xx responses with a JSON error, never a crash.
 */
export async function classifyHandler(event: unknown, context: HandlerContext): Promise<ProxyResponse> {
  try {
    const { bytes, contentType, topK } = await imageOf(event, context);
    const result = await context.endpoints.invoke(context.endpoint, bytes, contentType, { topK });
    return json(200, { predictions: result.predictions.slice(0, topK), model: result.model, variant: result.variant });
  } catch (e) {
    if (!(e instanceof KennelError)) throw e;
    const retryAfter = (e as { retryAfterSeconds?: number }).retryAfterSeconds;
    return json(e.status, { error: { code: e.code, message: e.message, hint: e.hint } }, retryAfter ? { 'retry-after': String(retryAfter) } : {});
  }
}
