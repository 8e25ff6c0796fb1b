import type { FastifyReply, FastifyRequest } from 'fastify';
import { errorMessage, KennelError } from '../core/index.js';

const HEARTBEAT_MS = 15_000;

/**
 * Server-sent event streams. Each stream re-reads its state every `intervalMs` and sends it only
 * when it changed, so pages stay live without any change notification plumbing (jobs run in
 * other processes too; the database is the source of truth). All streams end when the daemon
 * stops, so they never hold its shutdown.
 */
export class Streams {
  private readonly open = new Set<() => void>();

  /**
   * Streams `read()` as `data:` JSON events. `check()` runs before every read: when it throws
   * (the session ended, the key was revoked), an `error` event with the message is sent and the
   * stream closes.
   */
  serve(req: FastifyRequest, reply: FastifyReply, o: { intervalMs: number; check: () => void; read: () => unknown | Promise<unknown> }): void {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', connection: 'keep-alive' });
    res.write('retry: 3000\n\n');
    let last = '';
    let lastWrite = Date.now();
    let busy = false;
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      this.open.delete(close);
      res.end();
    };
    const tick = async () => {
      if (busy || closed) return;
      busy = true;
      try {
        o.check();
        const text = JSON.stringify(await o.read());
        if (closed) return;
        if (text !== last) {
          last = text;
          res.write(`data: ${text}\n\n`);
          lastWrite = Date.now();
        } else if (Date.now() - lastWrite > HEARTBEAT_MS) {
          res.write(': ping\n\n');
          lastWrite = Date.now();
        }
      } catch (e) {
        const status = e instanceof KennelError ? e.status : 500;
        if (status >= 500) req.log.error({ err: e }, 'console stream failed');
        res.write(`event: failure\ndata: ${JSON.stringify({ status, message: status >= 500 ? 'The stream failed on the server.' : errorMessage(e) })}\n\n`);
        close();
      } finally {
        busy = false;
      }
    };
    const timer = setInterval(() => void tick(), o.intervalMs);
    this.open.add(close);
    req.raw.on('close', close);
    void tick();
  }

  closeAll(): void {
    for (const close of [...this.open]) close();
  }
}
