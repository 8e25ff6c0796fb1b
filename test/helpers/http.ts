import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ServeOptions {
  /** answer the first request with only this many bytes, then cut the connection */
  cutFirstAfter?: number;
  /** ignore Range headers and always send the whole body with 200 */
  ignoreRange?: boolean;
  /** send the whole body chunked, without Content-Length (so its size is unknown up front) */
  chunked?: boolean;
}

export interface TestServer {
  url: string;
  /** Range header of every request, in order ("" when none) */
  ranges: string[];
  close(): Promise<void>;
}

/**
 * Serves `body` at every path on 127.0.0.1 with Range support; "/redirect" answers 302 to
 * "/file". For download tests: resuming, servers that ignore ranges, broken connections.
 */
export async function serveBytes(body: Buffer, opts: ServeOptions = {}): Promise<TestServer> {
  const ranges: string[] = [];
  const server = http.createServer((req, res) => {
    const range = req.headers.range ?? '';
    ranges.push(range);
    if (req.url === '/redirect') {
      res.writeHead(302, { Location: '/file' }).end();
      return;
    }
    if (req.url === '/missing') {
      res.writeHead(404).end('not here');
      return;
    }
    const m = /^bytes=(\d+)-$/.exec(range);
    if (m && !opts.ignoreRange) {
      const start = Number(m[1]);
      if (start >= body.length) {
        res.writeHead(416, { 'Content-Range': `bytes */${body.length}` }).end();
        return;
      }
      res.writeHead(206, { 'Content-Range': `bytes ${start}-${body.length - 1}/${body.length}`, 'Content-Length': body.length - start });
      res.end(body.subarray(start));
      return;
    }
    if (opts.chunked) {
      res.writeHead(200);
      for (let at = 0; at < body.length; at += 65536) res.write(body.subarray(at, at + 65536));
      res.end();
      return;
    }
    res.writeHead(200, { 'Content-Length': body.length });
    if (opts.cutFirstAfter !== undefined && ranges.length === 1) {
      res.write(body.subarray(0, opts.cutFirstAfter), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    ranges,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
