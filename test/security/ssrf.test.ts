import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { KennelError } from '../../src/core/errors.ts';
import { fetchImage, type Resolver, type SafeFetchOptions } from '../../src/net/index.ts';
import { sharedDir } from '../helpers/paths.ts';

const jpeg = readFileSync(path.join(sharedDir(), 'data/real-photos/aipnd-dogs/Beagle_01125.jpg'));

/** A stub DNS: names map to fixed address lists; anything else does not resolve. */
function stubDns(table: Record<string, string[]>): Resolver & { calls: string[] } {
  const calls: string[] = [];
  const resolver = async (name: string) => {
    calls.push(name);
    const addresses = table[name];
    if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  return Object.assign(resolver, { calls });
}

let server: http.Server;
let base = '';
let port = 0;
const hits: Array<{ url: string; host: string }> = [];

before(async () => {
  server = http.createServer((req, res) => {
    hits.push({ url: req.url ?? '', host: req.headers.host ?? '' });
    const url = new URL(req.url ?? '/', 'http://x');
    const redirect = (to: string) => res.writeHead(302, { location: to }).end();
    switch (url.pathname) {
      case '/dog.jpg':
        res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': jpeg.length }).end(jpeg);
        return;
      case '/dog-untyped':
        res.writeHead(200).end(jpeg);
        return;
      case '/to':
        redirect(url.searchParams.get('u')!);
        return;
      case '/chain':
        // /chain?n=K redirects K more times, then to the dog
        redirect(Number(url.searchParams.get('n')) > 0 ? `/chain?n=${Number(url.searchParams.get('n')) - 1}` : '/dog.jpg');
        return;
      case '/page.html':
        res.writeHead(200, { 'content-type': 'text/html' }).end('<html><body>not a dog</body></html>');
        return;
      case '/lying.jpg':
        res.writeHead(200, { 'content-type': 'image/jpeg' }).end('<html><body>really html, long enough to sniff</body></html>');
        return;
      case '/huge.jpg':
        res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': 50 * 1024 * 1024 });
        res.end(jpeg); // the length header alone must be enough to refuse it
        return;
      case '/huge-chunked.jpg': {
        res.writeHead(200, { 'content-type': 'image/jpeg' });
        const block = Buffer.concat([jpeg, Buffer.alloc(64 * 1024)]);
        let sent = 0;
        const pump = () => {
          while (sent < 4 * 1024 * 1024) {
            sent += block.length;
            if (!res.write(block)) return void res.once('drain', pump);
          }
          res.end();
        };
        pump();
        return;
      }
      case '/slow.jpg':
        res.writeHead(200, { 'content-type': 'image/jpeg' });
        res.write(jpeg.subarray(0, 100)); // then never finishes
        return;
      default:
        res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
});

after(() => {
  server.closeAllConnections();
  server.close();
});

/** The explicit test configuration that lets fetches reach the local test server. */
const local = (extra: SafeFetchOptions = {}): SafeFetchOptions => ({ allowHttp: true, allowPrivate: ['127.0.0.1'], timeoutMs: 3000, ...extra });

async function refusal(url: string, opts: SafeFetchOptions): Promise<KennelError> {
  try {
    await fetchImage(url, opts);
  } catch (e) {
    assert.ok(e instanceof KennelError, `expected a KennelError for ${url}, got ${String(e)}`);
    return e;
  }
  assert.fail(`${url} was fetched but must be refused`);
}

describe('safe URL fetcher', () => {
  it('fetches an image from an explicitly allowed test server, with Host kept as the name', async () => {
    const dns = stubDns({ 'images.test': ['127.0.0.1'] });
    const got = await fetchImage(`http://images.test:${port}/dog.jpg`, local({ resolver: dns }));
    assert.equal(got.contentType, 'image/jpeg');
    assert.deepEqual(got.bytes, jpeg);
    assert.equal(hits.at(-1)!.host, `images.test:${port}`);
    // the type comes from the bytes: a missing Content-Type is fine when the bytes are an image
    assert.equal((await fetchImage(`${base}/dog-untyped`, local())).contentType, 'image/jpeg');
    // redirects up to the limit are followed
    const chained = await fetchImage(`${base}/chain?n=2`, local());
    assert.equal(chained.redirects, 3);
  });

  it('resolves once and connects to the vetted address, so DNS rebinding cannot reach the server', async () => {
    // first answer 127.0.0.2 (allowed here, nothing listens there), later answers the real server
    let calls = 0;
    const rebinding: Resolver = async () => [{ address: ++calls === 1 ? '127.0.0.2' : '127.0.0.1', family: 4 }];
    const before = hits.length;
    const e = await refusal(`http://rebind.test:${port}/dog.jpg`, local({ resolver: rebinding, allowPrivate: ['127.0.0.2'] }));
    assert.equal(e.status, 422);
    assert.match(e.message, /ECONNREFUSED/);
    assert.equal(calls, 1);
    assert.equal(hits.length, before, 'the rebound address was never contacted');
  });

  it('without the test configuration the local server itself is refused', async () => {
    const e = await refusal(`${base}/dog.jpg`, { allowHttp: true });
    assert.equal(e.status, 400);
    assert.match(e.message, /127\.0\.0\.1 is loopback/);
  });

  // Each hostile URL with the reason its refusal must name. The resolver stub maps names to
  // private space the way a hostile or misconfigured DNS would.
  const dns = stubDns({
    'metadata.google.internal': ['169.254.169.254'],
    'localtest.me': ['127.0.0.1'],
    'mixed.example': ['93.184.216.34', '10.0.0.7'],
    'v6private.example': ['fd12:3456::1'],
    'mapped.example': ['::ffff:10.0.0.1'],
  });
  const corpus: Array<[url: string, reason: RegExp]> = [
    ['https://2130706433/', /127\.0\.0\.1 is loopback/],
    ['https://0177.0.0.1/', /127\.0\.0\.1 is loopback/],
    ['https://0x7f000001/', /127\.0\.0\.1 is loopback/],
    ['https://127.1/', /127\.0\.0\.1 is loopback/],
    ['https://[::ffff:127.0.0.1]/', /IPv4-mapped/],
    ['https://[::1]/', /::1 is loopback/],
    ['https://[::]/', /unspecified/],
    ['https://[::127.0.0.1]/', /IPv4-compatible/],
    ['https://[64:ff9b::7f00:1]/', /NAT64/],
    ['https://169.254.169.254/latest/meta-data/iam/', /link-local/],
    ['https://metadata.google.internal/computeMetadata/v1/', /resolves to 169\.254\.169\.254, which is link-local/],
    ['https://localtest.me/', /resolves to 127\.0\.0\.1, which is loopback/],
    ['https://mixed.example/dog.jpg', /resolves to 10\.0\.0\.7, which is private/],
    ['https://v6private.example/', /unique local/],
    ['https://mapped.example/', /IPv4-mapped/],
    ['https://localhost/', /local machine/],
    ['https://10.0.0.1/', /private/],
    ['https://172.16.5.4/', /private/],
    ['https://192.168.1.1/', /private/],
    ['https://100.64.0.1/', /carrier-grade NAT/],
    ['https://0.0.0.0/', /unspecified/],
    ['https://224.0.0.251/', /multicast/],
    ['https://255.255.255.255/', /broadcast/],
    ['https://[fd00::1]/', /unique local/],
    ['https://[fe80::1]/', /link-local/],
    ['https://[ff02::1]/', /multicast/],
    ['http://example.com/dog.jpg', /Only https/],
    ['file:///etc/passwd', /scheme file: is not allowed/],
    ['gopher://127.0.0.1:6379/_INFO', /scheme gopher: is not allowed/],
    ['ftp://example.com/dog.jpg', /scheme ftp: is not allowed/],
    ['data:image/png;base64,iVBORw0KGgo=', /scheme data: is not allowed/],
    ['https://good@127.0.0.1/', /user name or password/],
    ['https://user:pw@example.com/', /user name or password/],
    ['not a url', /not a valid URL/],
  ];
  for (const [url, reason] of corpus) {
    it(`refuses ${url}`, async () => {
      const e = await refusal(url, { resolver: dns, timeoutMs: 2000 });
      assert.equal(e.status, 400, e.message);
      assert.match(e.message, reason);
    });
  }

  it('re-checks every redirect: into private space, to other schemes, with userinfo', async () => {
    for (const [to, reason] of [
      ['http://169.254.169.254/latest/meta-data/', /169\.254\.169\.254 is link-local/],
      ['http://10.1.2.3/', /private/],
      [`http://[::1]:${port}/dog.jpg`, /::1 is loopback/],
      [`http://[::ffff:127.0.0.1]:${port}/dog.jpg`, /IPv4-mapped/],
      ['file:///etc/passwd', /scheme file:/],
      ['https://admin@example.com/', /user name or password/],
    ] as const) {
      const e = await refusal(`${base}/to?u=${encodeURIComponent(to)}`, local());
      assert.equal(e.status, 400, `${to}: ${e.message}`);
      assert.match(e.message, reason, to);
    }
  });

  it('refuses a redirect chain longer than 3', async () => {
    const e = await refusal(`${base}/chain?n=3`, local());
    assert.match(e.message, /redirected more than 3 times/);
  });

  it('refuses content that is not an image, too large, or too slow', async () => {
    const cases: Array<[string, SafeFetchOptions, number, RegExp]> = [
      ['/page.html', {}, 422, /served text\/html, not an image/],
      ['/lying.jpg', {}, 422, /not a JPEG, PNG, WebP, GIF, TIFF or AVIF image/],
      ['/huge.jpg', {}, 422, /52428800 bytes, over the 10485760-byte limit/],
      ['/huge-chunked.jpg', { maxBytes: 1024 * 1024 }, 422, /over the 1048576-byte limit/],
      ['/slow.jpg', { timeoutMs: 300 }, 504, /did not answer within 0.3 s/],
      ['/missing.jpg', {}, 422, /answered HTTP 404/],
    ];
    for (const [p, extra, status, reason] of cases) {
      const e = await refusal(`${base}${p}`, local(extra));
      assert.equal(e.status, status, `${p}: ${e.message}`);
      assert.match(e.message, reason, p);
    }
  });

  it('honours a host allowlist', async () => {
    const dns = stubDns({ 'cdn.images.test': ['127.0.0.1'], 'evil.test': ['127.0.0.1'] });
    const opts = local({ resolver: dns, allowHosts: ['*.images.test'] });
    assert.equal((await fetchImage(`http://cdn.images.test:${port}/dog.jpg`, opts)).contentType, 'image/jpeg');
    const e = await refusal(`http://evil.test:${port}/dog.jpg`, opts);
    assert.match(e.message, /evil\.test is not on the allowed host list/);
    assert.deepEqual(dns.calls, ['cdn.images.test'], 'a host off the list is not even resolved');
  });
});
