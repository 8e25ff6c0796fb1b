import type { FastifyRequest } from 'fastify';
import { Errors, KennelError } from '../core/index.js';

/**
 * SageMaker Runtime's InvokeEndpoint is Kennel's own invocations route (POST
 * /endpoints/NAME/invocations, the same path): these are the SageMaker headers it honours.
 */
export const TARGET_VARIANT_HEADER = 'x-amzn-sagemaker-target-variant';
export const INVOKED_VARIANT_HEADER = 'x-amzn-invoked-production-variant';

/** The variant the caller asks for (X-Amzn-SageMaker-Target-Variant), instead of one picked by weight. */
export function targetVariant(req: FastifyRequest): string | undefined {
  const v = req.headers[TARGET_VARIANT_HEADER];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^[A-Za-z0-9._-]{1,63}$/.test(v)) throw Errors.InvalidRequest('X-Amzn-SageMaker-Target-Variant is not a variant name.', 'Variant names use letters, digits, dot, dash and underscore.');
  return v;
}

/** Endpoints answer JSON: an Accept header that allows no JSON is refused (406) rather than ignored. */
export function checkAccept(req: FastifyRequest): void {
  const accept = req.headers.accept;
  if (accept === undefined || accept.trim() === '') return;
  const types = accept.split(',').map((t) => t.split(';')[0]!.trim().toLowerCase());
  if (types.some((t) => t === 'application/json' || t === 'application/*' || t === '*/*')) return;
  throw Errors.NotAcceptable(`Accept ${accept.slice(0, 100)} allows no JSON, and endpoints answer application/json.`, 'Send Accept: application/json (or leave it out).');
}

/** InvokeEndpointAsync's request headers (POST /endpoints/NAME/async-invocations, body empty), and Kennel's X-Kennel-Notify-Url. */
export const INPUT_LOCATION_HEADER = 'x-amzn-sagemaker-inputlocation';
export const INFERENCE_ID_HEADER = 'x-amzn-sagemaker-inference-id';
/** The request's maximum age, 60..21600 s (SageMaker's default, 6 h, is the daemon's unless it was started otherwise). */
export const REQUEST_TTL_HEADER = 'x-amzn-sagemaker-requestttlseconds';
/** The deadline of the request's run, 1..3600 s (default: the endpoint's --timeout-ms). */
export const INVOCATION_TIMEOUT_HEADER = 'x-amzn-sagemaker-invocationtimeoutseconds';
/** Kennel's own: a URL told of the request's completion or failure (SageMaker notifies through SNS instead). */
export const NOTIFY_URL_HEADER = 'x-kennel-notify-url';
/** InvokeEndpointAsync's response headers (the InferenceId is in the JSON body). */
export const OUTPUT_LOCATION_HEADER = 'x-amzn-sagemaker-outputlocation';
export const FAILURE_LOCATION_HEADER = 'x-amzn-sagemaker-failurelocation';

/** A whole number of seconds in [min, max] from a header, undefined without it (400 otherwise). */
function secondsHeader(req: FastifyRequest, header: string, name: string, min: number, max: number): number | undefined {
  const v = req.headers[header];
  if (v === undefined) return undefined;
  const n = typeof v === 'string' && /^\d{1,6}$/.test(v.trim()) ? Number(v) : NaN;
  if (!(n >= min && n <= max)) throw Errors.InvalidRequest(`${name} must be a whole number of seconds from ${min} to ${max}, not ${String(v).slice(0, 20)}.`, `Send ${name} between ${min} and ${max}, or leave it out.`);
  return n;
}

/** The input location, inference id and limits of an asynchronous invocation (400 without a location or for a limit out of range). */
export function asyncRequestHeaders(req: FastifyRequest): { inputLocation: string; inferenceId?: string; notify?: string; ttlS?: number; timeoutS?: number } {
  const location = req.headers[INPUT_LOCATION_HEADER];
  const id = req.headers[INFERENCE_ID_HEADER];
  const notify = req.headers[NOTIFY_URL_HEADER];
  if (typeof location !== 'string' || location.length === 0 || location.length > 1024) {
    throw Errors.InvalidRequest('X-Amzn-SageMaker-InputLocation is missing (or longer than 1024 characters).', 'Upload the input with kennel artifacts upload FILE and send the location it prints, or an https:// URL.');
  }
  if (id !== undefined && typeof id !== 'string') throw Errors.InvalidRequest('X-Amzn-SageMaker-Inference-Id is given more than once.');
  if (notify !== undefined && (typeof notify !== 'string' || notify.length > 2048)) throw Errors.InvalidRequest('X-Kennel-Notify-Url is given more than once, or is longer than 2048 characters.');
  const ttlS = secondsHeader(req, REQUEST_TTL_HEADER, 'X-Amzn-SageMaker-RequestTTLSeconds', 60, 21_600);
  const timeoutS = secondsHeader(req, INVOCATION_TIMEOUT_HEADER, 'X-Amzn-SageMaker-InvocationTimeoutSeconds', 1, 3600);
  return { inputLocation: location, inferenceId: id, notify, ttlS, timeoutS };
}
