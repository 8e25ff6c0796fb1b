import { Errors, KennelError } from '../core/index.js';

/** Checks a queue URL: redis:// or rediss://, with a host. */
export function parseQueueUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw Errors.InvalidQueueUrl(`"${url}" is not a queue URL.`);
  }
  if (!['redis:', 'rediss:'].includes(u.protocol) || !u.hostname) throw Errors.InvalidQueueUrl(`"${safeUrl(u)}" is not a Redis URL.`);
  return u;
}

/** The URL without its password, for messages. */
export function safeUrl(u: URL): string {
  const c = new URL(u.href);
  if (c.password) c.password = '***';
  return c.href.replace(/\/$/, '');
}

