import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { awsApiOf, sendAwsError } from '../aws/index.js';
import { KennelError, fromSystemError } from '../core/index.js';
import { ThrottledError } from '../security/index.js';

export interface ErrorBody {
  error: { code: string; message: string; hint?: string };
}

/** Fastify's own errors (parsing, limits, schema validation) in Kennel's words. */
function fromFastify(err: FastifyError, req: FastifyRequest): KennelError | undefined {
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE': {
      const type = req.headers['content-type'];
      return new KennelError(
        type ? `Content type ${type.split(';')[0]} is not accepted.` : 'The request has no Content-Type.',
        'Send image bytes (image/jpeg, image/png, image/webp, image/gif, image/tiff, image/avif, application/x-image or application/octet-stream), or JSON {"image": "<base64>"} as application/json.',
        415,
        'unsupported_media_type',
      );
    }
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new KennelError('The request body is too large.', 'Resize the image before sending: the model looks at a few hundred pixels.', 413, 'too_large');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new KennelError('The JSON body is empty.', 'Send {"image": "<base64>"}.', 400, 'empty_body');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new KennelError('The body is not valid JSON.', 'Send {"image": "<base64>"} as application/json.', 400, 'invalid_json');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new KennelError('The Content-Length does not match the body.', undefined, 400, 'invalid_request');
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new KennelError('A name in the URL is too long.', 'Names are at most 63 characters.', 414, 'uri_too_long');
    case 'FST_ERR_BAD_URL':
      return new KennelError('The URL is not valid (a bad percent-encoding).', 'Percent-encode the URL as RFC 3986 says.', 400, 'bad_url');
  }
  if (err.validation) {
    return new KennelError(`Invalid request: ${err.validationContext ?? 'request'} ${err.validation[0]?.instancePath ?? ''} ${err.validation[0]?.message ?? err.message}`.replace(/\s+/g, ' ').trim() + '.', undefined, 400, 'invalid_request');
  }
  if (err instanceof SyntaxError) return new KennelError('The body is not valid JSON.', 'Send {"image": "<base64>"} as application/json.', 400, 'invalid_json');
  if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) return new KennelError(err.message, undefined, err.statusCode, 'invalid_request');
  return undefined;
}

/**
 * Sends any error as {"error": {code, message, hint}} (AWS callers: AWS's error shape);
 * unexpected errors are logged and answered 500 without details.
 */
export function sendError(err: unknown, req: FastifyRequest, reply: FastifyReply): FastifyReply {
  const known = fromSystemError(err) ?? (err instanceof KennelError ? err : fromFastify(err as FastifyError, req));
  if (!known) req.log.error({ err }, 'unexpected error');
  // in either error shape: a throttled caller learns when its bucket refills, an overloaded server says 1 s
  if (known instanceof ThrottledError) reply.header('retry-after', String(known.retryAfterSeconds));
  else if (known?.status === 503) reply.header('retry-after', '1');
  const aws = awsApiOf(req);
  if (aws) return sendAwsError(aws, known ?? new KennelError('Something went wrong on the server.', undefined, 500, 'internal'), req, reply);
  if (!known) {
    return reply.code(500).header('x-kennel-error', 'internal').send({ error: { code: 'internal', message: 'Something went wrong on the server.', hint: `Report it with the request id ${req.id}.` } } satisfies ErrorBody);
  }
  const body: ErrorBody = { error: { code: known.code, message: known.message, ...(known.hint ? { hint: known.hint } : {}) } };
  return reply.code(known.status).header('x-kennel-error', known.code).send(body);
}
