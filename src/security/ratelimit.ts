import { ThrottledError } from './errors.js';

export interface Bucket {
  tokens: number;
  updated: number;
}

export interface RateLimit {
  perSecond: number;
  burst: number;
}

/**
 * Per-key token buckets: each key may burst up to `burst` requests and refills at `perSecond`.
 * A request that finds the bucket empty gets a 429 with the seconds until a token is back.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly clock: () => number = () => performance.now()) {}

  take(key: string, limit: RateLimit): void {
    const t = this.clock();
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= 100_000) this.sweep(t);
      b = { tokens: limit.burst, updated: t };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(limit.burst, b.tokens + ((t - b.updated) / 1000) * limit.perSecond);
    b.updated = t;
    if (b.tokens < 1) {
      const retryAfter = Math.max(1, Math.ceil((1 - b.tokens) / limit.perSecond));
      throw new ThrottledError(`Rate limit exceeded: this key may send ${limit.perSecond} requests per second (bursts of ${limit.burst}).`, `Retry after ${retryAfter} s, or ask for a higher limit (kennel keys create --rate-limit).`, retryAfter);
    }
    b.tokens -= 1;
  }

  /** Forgets buckets that have been full for a while (their keys went quiet). */
  private sweep(t: number): void {
    for (const [key, b] of this.buckets) if (t - b.updated > 600_000) this.buckets.delete(key);
  }
}
