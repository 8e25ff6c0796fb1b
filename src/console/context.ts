import type { FastifyInstance, FastifyRequest } from 'fastify';
import * as Errors from '../core/error-codes.js';
import type { ServingRuntime } from '../serving/index.js';
import type { Workspace } from '../store/index.js';
import type { Caller, ConsoleAccess, ConsoleAuth } from './auth.js';
import type { LogBook } from './logs.js';
import type { JobRunner } from './runner.js';
import type { Streams } from './sse.js';
import type { TrafficSampler } from './traffic.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * What a console API route needs: an action on a resource, or 'signed-in' for routes any
     * caller may use (their session, sign-out). Every /api/ route but login requires a caller.
     */
    console?: ConsoleAccess | 'signed-in';
  }
  interface FastifyRequest {
    consoleCaller?: Caller;
  }
}

/** What the console's API routes work with. */
export interface ConsoleContext {
  ws: Workspace;
  runtime: ServingRuntime;
  auth: ConsoleAuth;
  runner: JobRunner;
  traffic: TrafficSampler;
  streams: Streams;
  /** the daemon's status (pid, ports, start time) */
  status: () => Record<string, unknown>;
  dataPlaneUrl: () => string;
  logs: LogBook;
}

export type RouteModule = (api: FastifyInstance, ctx: ConsoleContext) => void;

export function callerOf(req: FastifyRequest): Caller {
  const c = req.consoleCaller;
  if (!c) throw Errors.Internal('This route has no caller.');
  return c;
}

/** Access to one named resource: `TYPE/<route param>`. */
export const on = (action: string, type: string, param = 'name'): ConsoleAccess => ({ action, resource: (req) => `${type}/${(req.params as Record<string, string>)[param] ?? ''}` });

/** Access to every resource of a type (lists). */
export const onAll = (action: string, type: string): ConsoleAccess => ({ action, resource: () => `${type}/*` });

export const READ = 'console:Read';

/** Streams a value to the page: re-checks the caller each time, so a revoked key's stream ends. */
export function stream(ctx: ConsoleContext, req: FastifyRequest, reply: Parameters<ConsoleContext['streams']['serve']>[1], intervalMs: number, read: () => unknown | Promise<unknown>): void {
  const access = req.routeOptions.config.console;
  ctx.streams.serve(req, reply, {
    intervalMs,
    check: () => {
      const caller = ctx.auth.authenticate(req);
      if (access && access !== 'signed-in') ctx.auth.assertAllowed(caller, access.action, access.resource(req), req);
    },
    read,
  });
}

export const nameParams = { type: 'object', properties: { name: { type: 'string', minLength: 1, maxLength: 128 } }, required: ['name'] } as const;
export const versionParams = { type: 'object', properties: { name: { type: 'string', minLength: 1, maxLength: 128 }, version: { type: 'integer', minimum: 1 } }, required: ['name', 'version'] } as const;
