import { lookup as dnsLookup } from 'node:dns/promises';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { Errors, KennelError, errorMessage } from '../core/index.js';
import { AddressAllowlist, refusedReason } from './address.js';
import { sniffImageType, type ImageType } from './sniff.js';

export interface ResolvedAddress {
  address: string;
  family: number;
}

/** Resolves a host name to every address it has (injectable so tests can stub DNS). */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

export const systemResolver: Resolver = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

export interface SafeFetchOptions {
  /** also fetch plain http:// URLs (default: https only) */
  allowHttp?: boolean;
  /**
   * Addresses or CIDRs that may be reached although they are not public (e.g. ['127.0.0.1'] for a
   * test server). Only ever set explicitly by the caller; nothing reads it from the environment.
   */
  allowPrivate?: readonly string[];
  /** when set, only these host names are fetched: exact names or "*.example.com" */
  allowHosts?: readonly string[];
  /** largest body accepted, default 10 MiB */
  maxBytes?: number;
  /** time for the whole fetch, redirects included, default 10 s */
  timeoutMs?: number;
  /** redirects followed, each checked like the first URL; default 3 */
  maxRedirects?: number;
  resolver?: Resolver;
  signal?: AbortSignal;
}

export interface FetchedImage {
  bytes: Buffer;
  /** the type found from the bytes themselves */
  contentType: ImageType;
  /** the URL that finally answered (after redirects) */
  url: string;
  redirects: number;
}

export const FETCH_DEFAULTS = { maxBytes: 10 * 1024 * 1024, timeoutMs: 10_000, maxRedirects: 3 } as const;

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const DECLARED_OK = /^(image\/[a-z0-9.+-]+|application\/octet-stream|binary\/octet-stream)$/;

const refused = (message: string, hint?: string) => Errors.UrlRefused(message, hint ?? 'Send a public https:// image URL, or the image itself as {"image": "<base64>"}.');
const badContent = (message: string) => Errors.UrlContent(message, 'The URL must point directly at a JPEG, PNG, WebP, GIF, TIFF or AVIF image.');

interface Target {
  url: URL;
  host: string;
  address: string;
  family: number;
}

/**
 * Fetches an image from a caller-supplied URL without letting the URL reach anything private
 * (SSRF). Every hop is vetted: scheme, no userinfo, the host allowlist, and every address the
 * name resolves to must be public. The connection is then pinned to the vetted address (so a
 * second, rebinding DNS answer is never used) while Host and TLS SNI keep the name. The body is
 * capped, the whole fetch has a deadline, and the bytes must be an image by their magic numbers.
 */
export async function fetchImage(rawUrl: string, opts: SafeFetchOptions = {}): Promise<FetchedImage> {
  const maxBytes = opts.maxBytes ?? FETCH_DEFAULTS.maxBytes;
  const timeoutMs = opts.timeoutMs ?? FETCH_DEFAULTS.timeoutMs;
  const maxRedirects = opts.maxRedirects ?? FETCH_DEFAULTS.maxRedirects;
  const allowPrivate = new AddressAllowlist(opts.allowPrivate ?? []);
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = opts.signal ? AbortSignal.any([deadline, opts.signal]) : deadline;

  let url = parseUrl(rawUrl);
  for (let redirects = 0; ; redirects++) {
    const target = await vet(url, opts, allowPrivate);
    let res: IncomingMessage;
    try {
      res = await send(target, signal);
    } catch (e) {
      throw networkError(e, target, deadline, timeoutMs);
    }
    const status = res.statusCode ?? 0;
    if (REDIRECTS.has(status)) {
      res.destroy();
      const location = res.headers.location;
      if (!location) throw badContent(`${hostLabel(target)} answered ${status} without a Location header.`);
      if (redirects >= maxRedirects) throw refused(`The URL redirected more than ${maxRedirects} times.`, 'Send the final image URL directly.');
      url = parseUrl(location, target.url);
      continue;
    }
    if (status !== 200) {
      res.destroy();
      throw Errors.UrlUnavailable(`${hostLabel(target)} answered HTTP ${status} for the image URL.`, 'Check that the URL opens the image in a browser.');
    }
    try {
      return { ...(await readImage(res, target, maxBytes)), url: target.url.href, redirects };
    } catch (e) {
      res.destroy();
      throw e instanceof KennelError ? e : networkError(e, target, deadline, timeoutMs);
    }
  }
}

function parseUrl(raw: string, base?: URL): URL {
  let url: URL;
  try {
    url = new URL(raw, base);
  } catch {
    throw refused(base ? `The redirect target "${raw.slice(0, 200)}" is not a valid URL.` : `"${raw.slice(0, 200)}" is not a valid URL.`);
  }
  return url;
}

async function vet(url: URL, opts: SafeFetchOptions, allowPrivate: AddressAllowlist): Promise<Target> {
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && opts.allowHttp)) {
    throw refused(url.protocol === 'http:' ? `Only https:// URLs are fetched, not ${url.href.slice(0, 200)}.` : `The URL scheme ${url.protocol} is not allowed; only https:// is fetched.`);
  }
  if (url.username || url.password) throw refused('URLs with a user name or password (user@host) are refused.');
  // WHATWG URL parsing already turned 2130706433, 0177.0.0.1, 0x7f000001 and 127.1 into 127.0.0.1
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '').toLowerCase();
  if (!host) throw refused('The URL has no host.');
  if (opts.allowHosts && !opts.allowHosts.some((pattern) => hostMatches(host, pattern))) {
    throw refused(`The host ${host} is not on the allowed host list.`, `Allowed hosts: ${opts.allowHosts.join(', ')}.`);
  }
  if (host === 'localhost' || host.endsWith('.localhost')) throw refused(`The host ${host} is the local machine.`);
  let addresses: ResolvedAddress[];
  if (isIP(host)) addresses = [{ address: host, family: isIP(host) }];
  else {
    try {
      addresses = await (opts.resolver ?? systemResolver)(host);
    } catch (e) {
      throw Errors.UrlUnavailable(`The host ${host} could not be resolved (${(e as NodeJS.ErrnoException).code ?? errorMessage(e)}).`, 'Check the URL.');
    }
    if (addresses.length === 0) throw Errors.UrlUnavailable(`The host ${host} has no addresses.`, 'Check the URL.');
  }
  for (const { address } of addresses) {
    const why = allowPrivate.has(address) ? undefined : refusedReason(address);
    if (why) throw refused(address === host ? `The address ${host} is ${why} and is never fetched.` : `The host ${host} resolves to ${address}, which is ${why}; it is never fetched.`);
  }
  const chosen = addresses[0]!;
  return { url, host, address: chosen.address, family: chosen.family };
}

function hostMatches(host: string, pattern: string): boolean {
  const p = pattern.toLowerCase();
  return p.startsWith('*.') ? host.endsWith(p.slice(1)) : host === p;
}

/**
 * POSTs a small JSON document (a completion notification) to a caller-supplied URL with the same
 * protections as fetchImage: scheme, host allowlist, public addresses only, the connection pinned
 * to the vetted address, a deadline. Redirects are not followed. Resolves with the HTTP status.
 */
export async function postJson(rawUrl: string, body: unknown, opts: SafeFetchOptions = {}): Promise<number> {
  const timeoutMs = opts.timeoutMs ?? FETCH_DEFAULTS.timeoutMs;
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = opts.signal ? AbortSignal.any([deadline, opts.signal]) : deadline;
  const target = await vet(parseUrl(rawUrl), opts, new AddressAllowlist(opts.allowPrivate ?? []));
  let res: IncomingMessage;
  try {
    res = await send(target, signal, { method: 'POST', body: Buffer.from(JSON.stringify(body)) });
  } catch (e) {
    throw networkError(e, target, deadline, timeoutMs);
  }
  res.resume(); // the answer's body is not read
  return res.statusCode ?? 0;
}

function send(target: Target, signal: AbortSignal, post?: { method: 'POST'; body: Buffer }): Promise<IncomingMessage> {
  // every connection attempt gets the vetted address, whatever DNS would answer now
  const pinned = ((_host: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    if (options.all) callback(null, [{ address: target.address, family: target.family }]);
    else callback(null, target.address, target.family);
  }) as unknown as LookupFunction;
  const secure = target.url.protocol === 'https:';
  return new Promise((resolve, reject) => {
    const req = (secure ? https : http).request(
      {
        host: target.host,
        port: target.url.port || (secure ? 443 : 80),
        path: `${target.url.pathname}${target.url.search}`,
        method: post ? 'POST' : 'GET',
        headers: post ? { host: target.url.host, 'content-type': 'application/json', 'content-length': String(post.body.length), 'user-agent': 'kennel-fetch' } : { host: target.url.host, accept: 'image/*', 'user-agent': 'kennel-fetch' },
        lookup: pinned,
        servername: isIP(target.host) ? undefined : target.host,
        agent: false,
        signal,
      },
      resolve,
    );
    req.on('error', reject);
    req.end(post?.body);
  });
}

async function readImage(res: IncomingMessage, target: Target, maxBytes: number): Promise<{ bytes: Buffer; contentType: ImageType }> {
  const declared = (res.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (declared && !DECLARED_OK.test(declared)) throw badContent(`${hostLabel(target)} served ${declared.slice(0, 100)}, not an image.`);
  const length = Number(res.headers['content-length']);
  if (Number.isFinite(length) && length > maxBytes) throw badContent(`The image at the URL is ${length} bytes, over the ${maxBytes}-byte limit.`);
  const chunks: Buffer[] = [];
  let size = 0;
  let sniffed: ImageType | undefined;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw badContent(`The image at the URL is over the ${maxBytes}-byte limit.`);
    chunks.push(chunk);
    if (!sniffed && size >= 16) {
      sniffed = sniffImageType(Buffer.concat(chunks));
      if (!sniffed) throw badContent(`${hostLabel(target)} served content that is not a JPEG, PNG, WebP, GIF, TIFF or AVIF image.`);
    }
  }
  const bytes = Buffer.concat(chunks);
  sniffed ??= sniffImageType(bytes);
  if (!sniffed) throw badContent(`${hostLabel(target)} served ${size} bytes that are not an image.`);
  return { bytes, contentType: sniffed };
}

function networkError(e: unknown, target: Target, deadline: AbortSignal, timeoutMs: number): KennelError {
  if (deadline.aborted) return Errors.UrlTimeout(`The image URL did not answer within ${timeoutMs / 1000} s.`, 'Use a faster host, or send the image itself as {"image": "<base64>"}.');
  if ((e as Error).name === 'AbortError') return Errors.Cancelled('The image fetch was cancelled.');
  const code = (e as NodeJS.ErrnoException).code;
  return Errors.UrlUnavailable(`Fetching the image from ${hostLabel(target)} failed (${code ?? errorMessage(e)}).`, 'Check that the URL opens the image in a browser.');
}

const hostLabel = (t: Target) => t.url.host;
