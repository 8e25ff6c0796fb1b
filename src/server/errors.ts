import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { awsApiOf, sendAwsError } from '../aws/index.js';
import { KennelError, fromSystemError, Errors } from '../core/index.js';
import { ThrottledError } from '../security/index.js';

export interface ErrorBody {
  error: { code: string; message: string; hint?: string };
}

/** Fastify's own errors (parsing, limits, schema validation) in Kennel's words. */
function fromFastify(err: FastifyError, req: FastifyRequest): KennelError | undefined {
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE': {
      const type = req.headers['content-type'];
      return Errors.UnsupportedMediaType(
        type ? `Content type ${type.split(';')[0]} is not accepted.` : 'The request has no Content-Type.',
        'Send image bytes (image/jpeg, image/png, image/webp, image/gif, image/tiff, image/avif, application/x-image or application/octet-stream), or JSON {"image": "<base64>"} as application/json.',
      );
    }
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return Errors.TooLarge('The request body is too large.', 'Resize the image before sending: the model looks at a few hundred pixels.');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return Errors.EmptyBody('The JSON body is empty.', 'Send {"image": "<base64>"}.');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return Errors.InvalidJson('The body is not valid JSON.', 'Send {"image": "<base64>"} as application/json.');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return Errors.InvalidRequest('The Content-Length does not match the body.');
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return Errors.UriTooLong('A name in the URL is too long.', 'Names are at most 63 characters.');
    case 'FST_ERR_BAD_URL':
      return Errors.BadUrl('The URL is not valid (a bad percent-encoding).', 'Percent-encode the URL as RFC 3986 says.');
  }
  if (err.validation) {
    return Errors.InvalidRequest(`Invalid request: ${err.validationContext ?? 'request'} ${err.validation[0]?.instancePath ?? ''} ${err.validation[0]?.message ?? err.message}`.replace(/\s+/g, ' ').trim() + '.');
  }
  if (err instanceof SyntaxError) return Errors.InvalidJson('The body is not valid JSON.', 'Send {"image": "<base64>"} as application/json.');
  if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) return Errors.InvalidRequest(err.message, undefined, err.statusCode);
  return undefined;
}

/**
 * Sends any error as {"error": {code, message, hint}} (AWS callers: AWS's error shape; Open
 * Inference Protocol routes: {"error": "message hint"});
 * unexpected errors are logged and answered 500 without details.
 */
export function sendError(err: unknown, req: FastifyRequest, reply: FastifyReply): FastifyReply {
  const known = fromSystemError(err) ?? (err instanceof KennelError ? err : fromFastify(err as FastifyError, req));
  if (!known) req.log.error({ err }, 'unexpected error');
  // in either error shape: a throttled caller learns when its bucket refills, an overloaded server says 1 s
  if (known instanceof ThrottledError) reply.header('retry-after', String(known.retryAfterSeconds));
  else if (known?.status === 503) reply.header('retry-after', '1');
  const aws = awsApiOf(req);
  if (aws) return sendAwsError(aws, known ?? Errors.Internal('Something went wrong on the server.'), req, reply);
  if (req.routeOptions.config?.oip) {
    // the Open Inference Protocol's error object: {"error": "<message>"}
    const e = known ?? Errors.Internal('Something went wrong on the server.', `Report it with the request id ${req.id}.`);
    return reply.code(e.status).header('x-kennel-error', e.code).send({ error: e.hint ? `${e.message} ${e.hint}` : e.message });
  }
  if (!known) {
    return reply.code(500).header('x-kennel-error', Errors.Internal.code).send({ error: { code: Errors.Internal.code, message: 'Something went wrong on the server.', hint: `Report it with the request id ${req.id}.` } } satisfies ErrorBody);
  }
  const body: ErrorBody = { error: { code: known.code, message: known.message, ...(known.hint ? { hint: known.hint } : {}) } };
  return reply.code(known.status).header('x-kennel-error', known.code).send(body);
}
