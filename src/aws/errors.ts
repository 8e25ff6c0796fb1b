import { Errors } from '../core/index.js';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { KennelError } from '../core/index.js';
import { isSigV4, presentedKey } from '../security/index.js';

export type AwsApi = 'sagemaker' | 'lambda';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** the AWS API this route also answers as; its callers get AWS's error shape */
    awsApi?: AwsApi;
  }
}

/**
 * The AWS API a request speaks, if any: every request on Lambda's path (it is AWS's only), and
 * SigV4-signed requests on SageMaker's, which is also Kennel's own invocations route (whose
 * callers with Kennel keys keep Kennel's errors).
 */
export function awsApiOf(req: FastifyRequest): AwsApi | undefined {
  const api = req.routeOptions.config?.awsApi;
  return api === 'lambda' || (api === 'sagemaker' && isSigV4(req)) ? api : undefined;
}

interface AwsError {
  status: number;
  type: string;
  /** extra members of the error shape (ModelError's OriginalStatusCode...) */
  fields?: Record<string, unknown>;
}

/** Failures of the credentials themselves, the same for every service. */
function credentialError(e: KennelError, req: FastifyRequest): AwsError | undefined {
  switch (e.kind) {
    case Errors.InvalidSignature:
      return { status: 403, type: 'InvalidSignatureException' };
    case Errors.UnrecognizedClient:
      return { status: 403, type: 'UnrecognizedClientException' };
    case Errors.IncompleteSignature:
      return { status: 400, type: 'IncompleteSignatureException' };
  }
  if (e.status === 401) return presentedKey(req.headers) ? { status: 403, type: 'UnrecognizedClientException' } : { status: 403, type: 'MissingAuthenticationTokenException' };
  if (e.status === 403) return { status: 403, type: 'AccessDeniedException' };
  return undefined;
}

/**
 * SageMaker Runtime's errors: what the model server refuses or fails at (a body it cannot
 * decode, a timeout) is a ModelError (424) carrying the original status, as when a SageMaker
 * container answers 4xx/5xx; request problems are ValidationErrors (400; an unknown endpoint too,
 * as on AWS), except a body over the limit, which AWS answers 413.
 */
function sagemakerError(e: KennelError): AwsError {
  if (e.status === 413) return { status: 413, type: 'ValidationError' };
  if (e.status === 429) return { status: 429, type: 'ThrottlingException' };
  if (e.status === 503) return { status: 503, type: 'ServiceUnavailable' };
  if ([406, 415, 422, 502, 504].includes(e.status)) {
    return { status: 424, type: 'ModelError', fields: { OriginalStatusCode: e.status, OriginalMessage: e.message } };
  }
  if (e.status < 500) return { status: 400, type: 'ValidationError' };
  return { status: 500, type: 'InternalFailure' };
}

/** Lambda's errors for the Invoke API (handler failures are not errors there: see lambda.ts). */
function lambdaError(e: KennelError): AwsError {
  switch (e.status) {
    case 404:
      return { status: 404, type: 'ResourceNotFoundException' };
    case 413:
      return { status: 413, type: 'RequestTooLargeException' };
    case 415:
      return { status: 415, type: 'UnsupportedMediaTypeException' };
    case 429:
      return { status: 429, type: 'TooManyRequestsException' };
  }
  if (e.status < 500) return { status: 400, type: e.kind === Errors.InvalidJson ? 'InvalidRequestContentException' : 'InvalidParameterValueException' };
  return { status: e.status === 503 ? 503 : 500, type: 'ServiceException' };
}

/**
 * Sends a Kennel error as the AWS service would: the status and error type AWS uses (in the
 * x-amzn-ErrorType header and as `__type`), and the message, so the SDKs raise their own
 * exception classes (ValidationError, ModelError, ThrottlingException, ResourceNotFoundException,
 * InvalidSignatureException...).
 */
export function sendAwsError(api: AwsApi, e: KennelError, req: FastifyRequest, reply: FastifyReply): FastifyReply {
  const aws = credentialError(e, req) ?? (api === 'sagemaker' ? sagemakerError(e) : lambdaError(e));
  const message = aws.type === 'ModelError' ? `Received ${e.status < 500 ? 'client' : 'server'} error (${e.status}) from the model with message "${e.message}".` : e.message;
  return reply
    .code(aws.status)
    .header('x-amzn-errortype', aws.type)
    .header('x-amzn-requestid', req.id)
    .header('x-kennel-error', e.code)
    .type('application/json')
    .send({ __type: aws.type, message, Message: message, ...aws.fields });
}
