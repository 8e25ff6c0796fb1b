import { KennelError } from '../core/errors.js';
import { sniffImageType } from '../net/index.js';
import type { HandlerContext, ProxyResponse } from './types.js';

const MAX_IMAGE_BYTES = 10 * 1024 * 1024;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

const json = (statusCode: number, body: unknown, headers: Record<string, string> = {}): ProxyResponse => ({
  statusCode,
  headers: { 'content-type': 'application/json', ...headers },
  body: JSON.stringify(body),
});

const problem = (status: number, code: string, message: string, hint?: string) => new KennelError(message, hint, status, code);

/** The event's input: the event itself, or the JSON (or raw image) body of an HTTP API event. */
function inputOf(event: unknown): { input?: Record<string, unknown>; bytes?: Uint8Array } {
  if (event && typeof event === 'object' && 'requestContext' in event && 'body' in event) {
    const e = event as { body?: unknown; isBase64Encoded?: boolean };
    if (typeof e.body !== 'string' || e.body === '') throw problem(400, 'invalid_request', 'The request has no body.', 'Send {"url": "https://..."} or {"image": "<base64>"}, or the image bytes.');
    if (e.isBase64Encoded) return { bytes: Buffer.from(e.body, 'base64') };
    try {
      return { input: JSON.parse(e.body) };
    } catch {
      throw problem(400, 'invalid_json', 'The body is not valid JSON.');
    }
  }
  return { input: event as Record<string, unknown> };
}

function decodeImage(image: string): Uint8Array {
  const b64 = image.replace(/^data:image\/[a-z0-9.+-]+;base64,/i, '').replace(/\s+/g, '');
  if (!BASE64.test(b64) || b64.length % 4 === 1) throw problem(400, 'invalid_base64', '"image" is not valid base64.', 'Encode the image file bytes with base64.');
  if ((b64.length * 3) / 4 > MAX_IMAGE_BYTES) throw problem(413, 'too_large', `The image is over the ${MAX_IMAGE_BYTES}-byte limit.`);
  return Buffer.from(b64, 'base64');
}

async function imageOf(event: unknown, context: HandlerContext): Promise<{ bytes: Uint8Array; contentType: string; topK: number }> {
  const { input, bytes } = inputOf(event);
  let topK = 5;
  let image = bytes;
  if (!image) {
    if (!input || typeof input !== 'object' || Array.isArray(input)) throw problem(400, 'invalid_request', 'The event must be a JSON object.', 'Send {"url": "https://..."} or {"image": "<base64>"}.');
    const { url, image: b64 } = input;
    if (input.topK !== undefined) {
      if (!Number.isInteger(input.topK) || (input.topK as number) < 1 || (input.topK as number) > 100) throw problem(400, 'invalid_request', '"topK" must be a whole number from 1 to 100.');
      topK = input.topK as number;
    }
    if ((url === undefined) === (b64 === undefined)) throw problem(400, 'invalid_request', 'Send exactly one of "url" or "image".', 'e.g. {"url": "https://example.com/dog.jpg"} or {"image": "<base64 of the file>"}.');
    if (url !== undefined) {
      if (typeof url !== 'string') throw problem(400, 'invalid_request', '"url" must be a string.');
      return { ...(await context.fetchImage(url)), topK };
    }
    if (typeof b64 !== 'string') throw problem(400, 'invalid_request', '"image" must be a base64 string.');
    image = decodeImage(b64);
  }
  if (image.length === 0) throw problem(400, 'invalid_request', 'The image is empty.');
  if (image.length > MAX_IMAGE_BYTES) throw problem(413, 'too_large', `The image is over the ${MAX_IMAGE_BYTES}-byte limit.`);
  const contentType = sniffImageType(image);
  if (!contentType) throw problem(415, 'unsupported_media_type', 'The image is not a JPEG, PNG, WebP, GIF, TIFF or AVIF file.');
  return { bytes: image, contentType, topK };
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
