import Fastify, { type FastifyInstance } from 'fastify';
import type { AddressInfo } from 'node:net';
import { KennelError } from '../../src/core/errors.ts';
import { securityPlugin, type SecurityPluginOptions } from '../../src/security/index.ts';

/**
 * A small fastify server secured by securityPlugin, listening on 127.0.0.1, with the same kind
 * of KennelError -> status mapping the daemon uses. `routes` adds the routes under test.
 */
export async function securedApp(opts: SecurityPluginOptions, routes: (app: FastifyInstance) => void | Promise<void>): Promise<{ app: FastifyInstance; url: string; close: () => Promise<void> }> {
  const app = Fastify();
  app.setErrorHandler((e, _req, reply) => {
    if (e instanceof KennelError) return reply.code(e.status).send({ error: { code: e.code, message: e.message, hint: e.hint } });
    const status = (e as { statusCode?: number }).statusCode ?? 500;
    return reply.code(status).send({ error: { code: status < 500 ? 'invalid_request' : 'internal', message: status < 500 ? (e as Error).message : 'internal error' } });
  });
  await app.register(securityPlugin, opts);
  await routes(app);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  return { app, url: `http://127.0.0.1:${port}`, close: () => app.close() };
}
