import { KennelError } from '../core/index.js';

/** Checks a queue URL: redis:// or rediss://, with a host. */
export function parseQueueUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new KennelError(`"${url}" is not a queue URL.`, 'Give a Redis URL such as redis://host:6379 (--queue or KENNEL_QUEUE).', 400, 'invalid_queue_url');
  }
  if (!['redis:', 'rediss:'].includes(u.protocol) || !u.hostname) throw new KennelError(`"${safeUrl(u)}" is not a Redis URL.`, 'Give a Redis URL such as redis://host:6379 (--queue or KENNEL_QUEUE).', 400, 'invalid_queue_url');
  return u;
}

/** The URL without its password, for messages. */
export function safeUrl(u: URL): string {
  const c = new URL(u.href);
  if (c.password) c.password = '***';
  return c.href.replace(/\/$/, '');
}

