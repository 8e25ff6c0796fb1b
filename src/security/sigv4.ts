import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Workspace } from '../store/index.js';
import { incompleteSignature, invalidSignature } from './errors.js';
import { verifyAwsKey, type VerifiedKey } from './principals.js';

/**
 * AWS Signature Version 4, verified the way AWS verifies it, so that boto3 and the AWS SDKs sign
 * requests to Kennel with Kennel-issued access keys: the Authorization header form and the
 * presigned-URL (query) form, the canonical request (path segments URI-encoded twice, as the
 * SDKs do for every service but S3), the credential scope (any region; the service names Kennel
 * serves), a 5-minute clock skew window, and the payload hash.
 */
const SIGV4_ALGORITHM = 'AWS4-HMAC-SHA256';
/** The services Kennel answers as: SageMaker Runtime (signing name "sagemaker") and Lambda. */
const AWS_SERVICES = ['sagemaker', 'lambda'] as const;
const MAX_CLOCK_SKEW_MS = 5 * 60_000;
/** AWS's own limit for presigned URLs: 7 days */
const MAX_PRESIGNED_SECONDS = 604_800;
export const EMPTY_SHA256 = createHash('sha256').digest('hex');

export interface SignedRequest {
  method: string;
  /** the raw request target: path and query exactly as sent */
  url: string;
  headers: IncomingHttpHeaders;
  /** hex sha256 of the raw body bytes; undefined when the body was not read */
  bodySha256?: string;
}

interface Signature {
  accessKeyId: string;
  date: string; // YYYYMMDD
  region: string;
  service: string;
  terminator: string;
  signedHeaders: string[];
  signature: string;
  /** X-Amz-Date: YYYYMMDD'T'HHMMSS'Z' */
  amzDate: string;
  /** presigned URLs: seconds the URL is valid from amzDate */
  expiresSeconds?: number;
}

const queryOf = (url: string): string => {
  const i = url.indexOf('?');
  return i < 0 ? '' : url.slice(i + 1);
};

/** The query's parameters, decoded, in order (no '+' as space: SigV4 encodes spaces as %20). */
function queryParams(url: string): Array<[string, string]> {
  const q = queryOf(url);
  if (!q) return [];
  return q.split('&').filter(Boolean).map((pair) => {
    const eq = pair.indexOf('=');
    return [decode(eq < 0 ? pair : pair.slice(0, eq)), eq < 0 ? '' : decode(pair.slice(eq + 1))];
  });
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

const header = (headers: IncomingHttpHeaders, name: string): string | undefined => {
  const v = headers[name];
  return Array.isArray(v) ? v.join(',') : v;
};

/** True for a request that carries a SigV4 signature (header or presigned query). */
export function isSigV4(req: { url: string; headers: IncomingHttpHeaders }): boolean {
  const auth = req.headers.authorization;
  if (typeof auth === 'string') return auth.startsWith(`${SIGV4_ALGORITHM} `);
  return /(?:^|&)X-Amz-Algorithm=/i.test(queryOf(req.url));
}

/** The access key id a SigV4 request names (public: for the audit log of failed requests). */
export function claimedAccessKeyId(req: { url: string; headers: IncomingHttpHeaders }): string | undefined {
  const auth = req.headers.authorization;
  const credential = typeof auth === 'string' ? /Credential=([^/,\s]+)/.exec(auth)?.[1] : queryParams(req.url).find(([k]) => k === 'X-Amz-Credential')?.[1]?.split('/')[0];
  return credential && /^[A-Z0-9]{16,128}$/.test(credential) ? credential : undefined;
}

function parseCredential(value: string): Pick<Signature, 'accessKeyId' | 'date' | 'region' | 'service' | 'terminator'> {
  const parts = value.split('/');
  if (parts.length !== 5 || parts.some((p) => p === '')) throw incompleteSignature(`The credential ${value.slice(0, 100)} is not of the form ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request.`);
  const [accessKeyId, date, region, service, terminator] = parts as [string, string, string, string, string];
  return { accessKeyId, date, region, service, terminator };
}

function parseSignedHeaders(value: string): string[] {
  const names = value.split(';');
  if (names.some((n) => !/^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(n))) throw incompleteSignature('SignedHeaders must be lowercase header names separated by ";".');
  return names;
}

function fromHeader(auth: string, headers: IncomingHttpHeaders): Signature {
  const fields = new Map<string, string>();
  for (const part of auth.slice(SIGV4_ALGORITHM.length).split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const missing = ['Credential', 'SignedHeaders', 'Signature'].filter((k) => !fields.get(k));
  if (missing.length) throw incompleteSignature(`Authorization header requires ${missing.map((k) => `'${k}'`).join(', ')} parameter(s).`);
  const amzDate = header(headers, 'x-amz-date');
  if (!amzDate) throw incompleteSignature("Authorization header requires existence of a 'X-Amz-Date' header.");
  return { ...parseCredential(fields.get('Credential')!), signedHeaders: parseSignedHeaders(fields.get('SignedHeaders')!), signature: fields.get('Signature')!, amzDate };
}

function fromQuery(params: Array<[string, string]>): Signature {
  const get = (k: string) => params.find(([name]) => name === k)?.[1];
  if (get('X-Amz-Algorithm') !== SIGV4_ALGORITHM) throw incompleteSignature(`X-Amz-Algorithm must be ${SIGV4_ALGORITHM}.`);
  const missing = ['X-Amz-Credential', 'X-Amz-Date', 'X-Amz-Expires', 'X-Amz-SignedHeaders', 'X-Amz-Signature'].filter((k) => !get(k));
  if (missing.length) throw incompleteSignature(`A presigned URL requires the ${missing.join(', ')} parameter(s).`);
  const expires = get('X-Amz-Expires')!;
  if (!/^\d{1,6}$/.test(expires) || Number(expires) < 1 || Number(expires) > MAX_PRESIGNED_SECONDS) throw incompleteSignature(`X-Amz-Expires must be a whole number of seconds from 1 to ${MAX_PRESIGNED_SECONDS}.`);
  return { ...parseCredential(get('X-Amz-Credential')!), signedHeaders: parseSignedHeaders(get('X-Amz-SignedHeaders')!), signature: get('X-Amz-Signature')!, amzDate: get('X-Amz-Date')!, expiresSeconds: Number(expires) };
}

/** encodeURIComponent, plus the characters it leaves alone that RFC 3986 reserves */
const escapeUri = (s: string): string => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/**
 * The canonical URI: the path as sent (so already encoded once), with empty and dot segments
 * removed, encoded again, keeping the slashes: what the AWS SDKs and botocore sign for every
 * service other than S3.
 */
function canonicalUri(url: string): string {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const segments: string[] = [];
  for (const s of path.split('/')) {
    if (s === '' || s === '.') continue;
    if (s === '..') segments.pop();
    else segments.push(s);
  }
  const normalized = `${path.startsWith('/') ? '/' : ''}${segments.join('/')}${segments.length && path.endsWith('/') ? '/' : ''}`;
  return escapeUri(normalized).replace(/%2F/g, '/') || '/';
}

function canonicalQuery(params: Array<[string, string]>): string {
  return params
    .map(([k, v]) => [escapeUri(k), escapeUri(v)] as const)
    .sort(([ka, va], [kb, vb]) => (ka < kb ? -1 : ka > kb ? 1 : va < vb ? -1 : va > vb ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

const canonicalHeaderValue = (v: string | undefined): string => (v ?? '').trim().replace(/\s+/g, ' ');

const hmac = (key: Buffer | string, data: string): Buffer => createHmac('sha256', key).update(data, 'utf8').digest();

function signingKey(secret: string, date: string, region: string, service: string): Buffer {
  return hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), service), 'aws4_request');
}

/** The payload hash the client signed: x-amz-content-sha256 when sent (and it must match the body), else the body's own hash. */
function payloadHash(req: SignedRequest): string {
  const declared = header(req.headers, 'x-amz-content-sha256');
  if (declared !== undefined) {
    if (!/^[0-9a-f]{64}$/.test(declared)) throw invalidSignature(`x-amz-content-sha256 "${declared.slice(0, 40)}" is not accepted: Kennel verifies every payload, so it must be the hex SHA-256 of the body.`);
    if (req.bodySha256 !== undefined && declared !== req.bodySha256) throw invalidSignature('The provided x-amz-content-sha256 header does not match what was computed.');
    return declared;
  }
  if (req.bodySha256 === undefined) throw invalidSignature('The request body was not read, so its signature cannot be checked.');
  return req.bodySha256;
}

const isoBasic = (t: number): string => new Date(t).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');

function parseAmzDate(amzDate: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amzDate);
  const t = m ? Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!) : NaN;
  if (Number.isNaN(t) || isoBasic(t) !== amzDate) throw incompleteSignature(`X-Amz-Date ${amzDate.slice(0, 40)} is not an ISO 8601 basic time (YYYYMMDDTHHMMSSZ).`);
  return t;
}

/** Throws unless the request time is within the skew window (header form) or the presigned URL is still valid. */
function checkTime(sig: Signature, at: number): void {
  const t = parseAmzDate(sig.amzDate);
  if (sig.date !== sig.amzDate.slice(0, 8)) throw invalidSignature(`Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${sig.date}' != '${sig.amzDate.slice(0, 8)}'.`);
  if (t - at > MAX_CLOCK_SKEW_MS) throw invalidSignature(`Signature not yet current: ${sig.amzDate} is still later than ${isoBasic(at + MAX_CLOCK_SKEW_MS)} (${isoBasic(at)} + 5 min.)`);
  if (sig.expiresSeconds === undefined) {
    if (at - t > MAX_CLOCK_SKEW_MS) throw invalidSignature(`Signature expired: ${sig.amzDate} is now earlier than ${isoBasic(at - MAX_CLOCK_SKEW_MS)} (${isoBasic(at)} - 5 min.)`);
  } else if (at > t + sig.expiresSeconds * 1000) {
    throw invalidSignature(`Signature expired: the presigned URL was valid until ${isoBasic(t + sig.expiresSeconds * 1000)}; it is now ${isoBasic(at)}.`);
  }
}

/**
 * Verifies a SigV4-signed request and returns the key that signed it. `services`: the signing
 * names the route answers to. Failures are AWS's: InvalidSignatureException (bad or expired
 * signature, wrong scope), UnrecognizedClientException (unknown, revoked or expired access key),
 * IncompleteSignatureException (a malformed signature).
 */
export function verifySigV4(ws: Workspace, req: SignedRequest, opts: { services?: readonly string[]; at?: number } = {}): VerifiedKey {
  const at = opts.at ?? Date.now();
  const services = opts.services ?? AWS_SERVICES;
  const auth = req.headers.authorization;
  const params = queryParams(req.url);
  const sig = typeof auth === 'string' ? fromHeader(auth, req.headers) : fromQuery(params);
  if (sig.terminator !== 'aws4_request') throw invalidSignature(`Credential should be scoped with a valid terminator: 'aws4_request', not '${sig.terminator.slice(0, 40)}'.`);
  if (!services.includes(sig.service)) throw invalidSignature(`Credential should be scoped to correct service: '${services.join("' or '")}'.`);
  if (!/^[0-9a-f]{64}$/.test(sig.signature)) throw incompleteSignature('The signature must be 64 hexadecimal characters.');
  if (!sig.signedHeaders.includes('host')) throw invalidSignature("The 'Host' header must be signed.");
  checkTime(sig, at);

  const canonicalHeaders = sig.signedHeaders.map((name) => `${name}:${canonicalHeaderValue(header(req.headers, name))}\n`).join('');
  const canonicalRequest = [
    req.method.toUpperCase(),
    canonicalUri(req.url),
    canonicalQuery(sig.expiresSeconds === undefined ? params : params.filter(([k]) => k !== 'X-Amz-Signature')),
    canonicalHeaders,
    sig.signedHeaders.join(';'),
    payloadHash(req),
  ].join('\n');
  const scope = `${sig.date}/${sig.region}/${sig.service}/aws4_request`;
  const stringToSign = [SIGV4_ALGORITHM, sig.amzDate, scope, createHash('sha256').update(canonicalRequest, 'utf8').digest('hex')].join('\n');
  const given = Buffer.from(sig.signature, 'hex');
  return verifyAwsKey(ws, sig.accessKeyId, (secret) => timingSafeEqual(hmac(signingKey(secret, sig.date, sig.region, sig.service), stringToSign), given), at);
}
