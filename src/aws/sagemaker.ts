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
