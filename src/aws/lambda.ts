import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { Errors, KennelError } from '../core/index.js';
import { getFunction, type FunctionGateway } from '../functions/index.js';
import type { Workspace } from '../store/index.js';

export interface LambdaRoutesOptions {
  ws: Workspace;
  gateway: FunctionGateway;
  /** largest payload */
  bodyLimit: number;
}

/** The Invoke API's path, as the AWS SDKs build it. */
export const LAMBDA_INVOKE_PATH = '/2015-03-31/functions/:function/invocations';

/** A name, a partial ARN (ACCOUNT:function:NAME) or a full ARN, each with an optional :QUALIFIER. */
const FUNCTION_REF = /^(?:arn:[a-z-]+:lambda:[a-z0-9-]*:\d*:function:|\d{12}:function:)?([A-Za-z0-9._-]{1,64})(?::([A-Za-z0-9$_-]{1,128}))?$/;

const functionNameOf = (req: FastifyRequest): string => {
  const ref = (req.params as { function: string }).function;
  return FUNCTION_REF.exec(ref)?.[1] ?? ref;
};

/** The function a request names; Kennel functions have one version, so the only qualifier is $LATEST. */
function functionOf(req: FastifyRequest): { name: string; qualifier?: string } {
  const ref = (req.params as { function: string }).function;
  const m = FUNCTION_REF.exec(ref);
  if (!m) throw Errors.InvalidRequest(`"${ref.slice(0, 140)}" is not a function name or ARN.`, 'Give the function name (kennel functions list), or its ARN.');
  const query = (req.query as { Qualifier?: unknown }).Qualifier;
  return { name: m[1]!, qualifier: m[2] ?? (query === undefined ? undefined : String(query)) };
}

function checkQualifier(name: string, qualifier: string | undefined): void {
  if (qualifier !== undefined && qualifier !== '$LATEST') {
    throw Errors.NotFound(`Function not found: ${name}:${qualifier}.`, 'Kennel functions have no published versions or aliases: leave the qualifier out, or use $LATEST.');
  }
}

/** The payload is the event as JSON whatever the Content-Type (the SDKs send none, or application/octet-stream); empty is {}. */
function eventOf(body: unknown): unknown {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.alloc(0);
  if (bytes.length === 0) return {};
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw Errors.InvalidJson(`Could not parse request body into json: ${(e as Error).message}.`, 'The Payload must be JSON, e.g. {"url": "https://..."}.');
  }
}

const FUNCTION_FAILURES = new Map<unknown, string>([[Errors.FunctionError, 'Error'], [Errors.FunctionOutOfMemory, 'Runtime.OutOfMemory'], [Errors.FunctionTimeout, 'Sandbox.Timedout']]);

/**
 * Lambda's Invoke API on the data plane: POST /2015-03-31/functions/NAME/invocations, as
 * `@aws-sdk/client-lambda` InvokeCommand and boto3 `lambda.invoke` send it (function:Invoke on
 * function/NAME, with an AWS key or a Kennel key).
 * - RequestResponse (default): 200 with the handler's return value as the payload; a handler that
 *   throws, times out or runs out of memory answers 200 with X-Amz-Function-Error: Unhandled and
 *   {errorType, errorMessage}, as Lambda does. `X-Amz-Log-Type: Tail` returns the REPORT line.
 * - Event: 202 once the event is stored in the function gateway's durable queue (429
 *   TooManyRequestsException when it is full); it runs in the background with Lambda's retries,
 *   and lands in the failure list of `kennel functions events NAME` when they are spent.
 * - DryRun: 204 when the function exists and the caller may invoke it.
 */
export const lambdaRoutes: FastifyPluginAsync<LambdaRoutesOptions> = async (app, { ws, gateway, bodyLimit }) => {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit }, (_req, body, done) => done(null, body));

  app.post(
    LAMBDA_INVOKE_PATH,
    {
      bodyLimit,
      // the resource never throws: a malformed name is refused by the handler, after authentication
      config: { awsApi: 'lambda', auth: { action: 'function:Invoke', resource: (req) => `function/${functionNameOf(req)}`, awsService: 'lambda' } },
    },
    async (req, reply) => {
      const { name, qualifier } = functionOf(req);
      checkQualifier(name, qualifier);
      const type = req.headers['x-amz-invocation-type'] ?? 'RequestResponse';
      if (type !== 'RequestResponse' && type !== 'Event' && type !== 'DryRun') {
        throw Errors.InvalidRequest(`InvocationType ${String(type).slice(0, 40)} is not one of RequestResponse, Event or DryRun.`);
      }
      const fn = getFunction(ws, name);
      reply.header('x-amzn-requestid', req.id).header('x-amz-executed-version', '$LATEST');
      if (type === 'DryRun') return reply.code(204).send();
      const event = eventOf(req.body);
      if (type === 'Event') {
        // stored as sent (parsed above only to refuse bad JSON now); acknowledged once stored
        const stored = Buffer.isBuffer(req.body) && req.body.length ? req.body : Buffer.from('{}');
        const eventId = gateway.events.enqueue(name, stored, req.id);
        req.kennelAudit = { function: name, invocationType: 'Event', eventId };
        return reply.code(202).send();
      }

      const started = performance.now();
      let payload: unknown;
      try {
        const inv = await gateway.invoke(name, event, { requestId: req.id });
        req.kennelAudit = { function: name, coldStart: inv.coldStart, durationMs: Math.round(inv.durationMs * 100) / 100 };
        payload = inv.result ?? null;
      } catch (e) {
        if (!(e instanceof KennelError && FUNCTION_FAILURES.has(e.kind))) throw e;
        req.kennelAudit = { function: name, functionError: e.code, error: e.message };
        reply.header('x-amz-function-error', 'Unhandled');
        payload = { errorType: FUNCTION_FAILURES.get(e.kind), errorMessage: e.message };
      }
      if (req.headers['x-amz-log-type'] === 'Tail') {
        const ms = performance.now() - started;
        const report = `START RequestId: ${req.id} Version: $LATEST\nEND RequestId: ${req.id}\nREPORT RequestId: ${req.id}\tDuration: ${ms.toFixed(2)} ms\tBilled Duration: ${Math.ceil(ms)} ms\tMemory Size: ${fn.memoryMb} MB\n`;
        reply.header('x-amz-log-result', Buffer.from(report).toString('base64'));
      }
      return reply.code(200).type('application/json').send(JSON.stringify(payload));
    },
  );
};
