import { STATUS_CODES, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Errors, KennelError } from '../core/index.js';
import type { ErrorBody } from './errors.js';

/** Connection limits of both ports (`kennel up --header-timeout ...`). */
export interface HttpLimits {
  /** time to receive a request's headers, from the moment the connection opens or the previous request ended */
  headersTimeoutMs: number;
  /** time to receive a whole request, headers and body */
  requestTimeoutMs: number;
  /** an idle keep-alive connection is closed after this long */
  keepAliveTimeoutMs: number;
  /** open connections from one client address; more are answered 429 and closed */
  maxConnectionsPerClient: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = { headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 5_000, maxConnectionsPerClient: 256 };

/**
 * What a refused client may still send while it reads the answer: a client that is uploading
 * when the answer comes (413 on Content-Length) only reads it once its send finishes (Python's
 * urllib) or sees a reset that discards it, so the rest of the body is read and dropped first.
 */
const LINGER_MAX_BYTES = 64 * 1024 * 1024;
/** how long a client that timed out gets to read its 408 */
const TIMED_OUT_LINGER_MS = 2_000;

export function checkHttpLimits(limits: HttpLimits): HttpLimits {
  for (const [name, v] of Object.entries(limits)) {
    if (!Number.isInteger(v) || v < 1) throw Errors.InvalidRequest(`The connection limit ${name} must be a whole number of at least 1, not ${v}.`, 'See kennel up --help.');
  }
  if (limits.headersTimeoutMs > limits.requestTimeoutMs) {
    throw Errors.InvalidRequest('The header timeout cannot be longer than the request timeout.', 'Lower --header-timeout or raise --request-timeout.');
  }
  return limits;
}

/**
 * The fastify options that apply the timeouts (Node's own checks, run every second) and answer
 * Node's protocol-level refusals (bad HTTP 400, 431, timeouts 408) in Kennel's JSON shape.
 */
export function httpServerOptions(limits: HttpLimits, log: Logger) {
  return {
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    http: {
      headersTimeout: limits.headersTimeoutMs,
      connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs),
      // refused in Kennel's error shape by applyHttpLimits's onRequest hook instead of Node's empty 400
      requireHostHeader: false,
    } satisfies ServerOptions,
    clientErrorHandler: (err: NodeJS.ErrnoException, socket: Socket) => {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      const error = clientErrorOf(err, limits);
      log.info({ code: err.code, status: error.status, address: socket.remoteAddress }, 'request refused by the HTTP parser');
      refuse(socket, error, error.status === 408 ? TIMED_OUT_LINGER_MS : limits.requestTimeoutMs);
    },
  };
}

/** Headers and body of an error answer in Kennel's JSON shape, for answers fastify does not make. */
function errorAnswer(error: KennelError, extra: Record<string, string> = {}): { headers: Record<string, string>; body: string } {
  const body = JSON.stringify({ error: { code: error.code, message: error.message, ...(error.hint ? { hint: error.hint } : {}) } } satisfies ErrorBody);
  return { headers: { 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(body)), connection: 'close', 'x-kennel-error': error.code, ...extra }, body };
}

/** Node's protocol-level refusals (llhttp error codes and its own timeouts), in Kennel's words. */
function clientErrorOf(err: NodeJS.ErrnoException, limits: HttpLimits): KennelError {
  switch (err.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return Errors.RequestTimeout(
        `The request was not received in time (headers within ${limits.headersTimeoutMs / 1000} s, the whole request within ${limits.requestTimeoutMs / 1000} s).`,
        'Send the request without pauses, or ask the operator to raise kennel up --header-timeout / --request-timeout.',
      );
    case 'HPE_HEADER_OVERFLOW':
      return Errors.HeadersTooLarge('The request line and headers are too large.', 'Keep the URL and headers under 16 KiB together.');
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return Errors.TooLarge('The chunk extensions of the body are too large.', 'Send the body without chunk extensions.');
    default:
      return Errors.BadRequest('The request is not valid HTTP/1.1.', 'Check the request line, the headers (Content-Length, Transfer-Encoding) and the chunked framing.');
  }
}

/**
 * Closes a connection without losing the answer already written: the write side is ended, and
 * whatever the client still sends is read and dropped (at most LINGER_MAX_BYTES, for at most
 * `ms`) until it closes its side. Closing at once would reset the connection, and a client
 * still sending would see the reset instead of the answer.
 */
function lingerThenDestroy(socket: Socket, ms: number): void {
  if (socket.destroyed) return;
  const startBytes = socket.bytesRead;
  const done = () => {
    clearInterval(watch);
    socket.destroy();
  };
  const watch = setInterval(() => {
    if (socket.bytesRead - startBytes > LINGER_MAX_BYTES) done();
  }, 50);
  const deadline = setTimeout(done, ms);
  deadline.unref();
  watch.unref();
  socket.once('close', () => {
    clearInterval(watch);
    clearTimeout(deadline);
  });
  socket.once('end', done);
  socket.once('error', done);
  socket.end();
  socket.resume();
}

const kRequest = Symbol('kennel.request');
const kRefused = Symbol('kennel.refused');
type TrackedSocket = Socket & { [kRequest]?: IncomingMessage; [kRefused]?: boolean };

/** Answers on the raw socket (once), unless an answer has already started, then closes it. */
function refuse(socket: TrackedSocket, error: KennelError, lingerMs: number, extra?: Record<string, string>): void {
  if (socket[kRefused] || socket.destroyed) return;
  socket[kRefused] = true;
  const inFlight = (socket as { _httpMessage?: ServerResponse })._httpMessage;
  if (socket.writable && !inFlight?.headersSent) {
    const { headers, body } = errorAnswer(error, extra);
    socket.write(`HTTP/1.1 ${error.status} ${STATUS_CODES[error.status]}\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n${body}`);
  }
  lingerThenDestroy(socket, lingerMs);
}

/**
 * Applies the rest of the limits to a fastify app built with httpServerOptions (both ports):
 * - at most `maxConnectionsPerClient` connections per client address (429 beyond);
 * - Expect other than 100-continue (417) and a missing Host (400) answer in Kennel's JSON shape;
 * - an answer sent before the request body was read (413 on Content-Length, a 401 from an
 *   onRequest hook) closes the connection only after the client had the chance to read it.
 * Call it right after `Fastify({...httpServerOptions(limits, log)})`, before routes are added.
 */
export function applyHttpLimits(app: FastifyInstance, limits: HttpLimits, log: Logger): void {
  const server: Server = app.server;
  const open = new Map<string, number>();
  server.on('connection', (socket: TrackedSocket) => {
    const address = socket.remoteAddress ?? '';
    const count = (open.get(address) ?? 0) + 1;
    open.set(address, count);
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left > 0) open.set(address, left);
      else open.delete(address);
    });
    if (count > limits.maxConnectionsPerClient) {
      log.warn({ address, open: count - 1 }, 'connection refused: too many from one client address');
      const error = Errors.TooManyConnections(`Too many open connections from your address (at most ${limits.maxConnectionsPerClient}).`, 'Reuse connections (keep-alive) or close idle ones.');
      refuse(socket, error, TIMED_OUT_LINGER_MS, { 'retry-after': '1' });
      return;
    }
    const destroySoon = socket.destroySoon.bind(socket);
    // Node calls destroySoon after the last answer on a connection (Connection: close)
    socket.destroySoon = () => {
      const req = socket[kRequest];
      if (!req || req.complete) return destroySoon();
      // the unread rest of the body is dropped, also where a preParsing stream stopped pulling it
      req.unpipe();
      req.resume();
      lingerThenDestroy(socket, limits.requestTimeoutMs);
    };
  });
  server.on('request', (req: IncomingMessage) => {
    (req.socket as TrackedSocket)[kRequest] = req;
  });
  // Expect other than 100-continue
  server.on('checkExpectation', (_req: IncomingMessage, res: ServerResponse) => {
    const error = Errors.ExpectationFailed('This Expect header is not supported.', 'Send the request without an Expect header, or with Expect: 100-continue.');
    const { headers, body } = errorAnswer(error);
    res.writeHead(error.status, headers).end(body);
  });
  app.addHook('onRequest', async (req, reply) => {
    // a connection refused over the cap had its 429: what it sends anyway is not handled
    if ((req.raw.socket as TrackedSocket)[kRefused]) return reply.hijack();
    if (req.raw.httpVersion === '1.1' && req.headers.host === undefined) {
      throw Errors.MissingHost('The request has no Host header.', 'HTTP/1.1 requests must send Host.');
    }
  });
  app.addHook('onSend', async (req, reply) => {
    // an answer before the body was read: the connection cannot carry another request
    if (!req.raw.complete) reply.header('connection', 'close');
  });
}
