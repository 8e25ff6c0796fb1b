import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyReply, FastifyRequest } from 'fastify';

/** Where `npm run build` puts the console's front end (the same folder from src/ under tsx and from dist/). */
export const ASSETS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../dist/console/web');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

interface Asset {
  body: Buffer;
  gzip?: Buffer;
  type: string;
  etag: string;
}

/** Everything the page loads comes from this origin; nothing inline, no eval. */
export const CONSOLE_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

export function securityHeaders(reply: FastifyReply, csp = CONSOLE_CSP): FastifyReply {
  return reply.header('content-security-policy', csp).header('x-content-type-options', 'nosniff').header('referrer-policy', 'no-referrer').header('x-frame-options', 'DENY');
}

/**
 * The built front end, read into memory once (a few files, tens of KB): index.html and
 * content-hashed bundles, each with its gzip twin made at build time.
 */
export class Assets {
  private readonly files = new Map<string, Asset>();

  constructor(dir = ASSETS_DIR) {
    if (!existsSync(dir)) return;
    for (const name of readdirSync(dir)) {
      const type = TYPES[extname(name)];
      if (!type) continue;
      const body = readFileSync(join(dir, name));
      const gz = join(dir, `${name}.gz`);
      this.files.set(name, { body, type, gzip: existsSync(gz) ? readFileSync(gz) : undefined, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 16)}"` });
    }
  }

  /** Sends a file (gzip when the browser takes it); false when there is no such file. */
  send(name: string, req: FastifyRequest, reply: FastifyReply, cache: 'immutable' | 'revalidate'): boolean {
    const f = this.files.get(name);
    if (!f) return false;
    securityHeaders(reply)
      .type(f.type)
      .header('etag', f.etag)
      .header('vary', 'accept-encoding')
      .header('cache-control', cache === 'immutable' ? 'public, max-age=31536000, immutable' : 'no-cache');
    if (req.headers['if-none-match'] === f.etag) {
      reply.code(304).send();
      return true;
    }
    if (f.gzip && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) {
      reply.header('content-encoding', 'gzip').send(f.gzip);
    } else {
      reply.send(f.body);
    }
    return true;
  }
}
