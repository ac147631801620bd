import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { getHead, getToFile } from '../../transports/docker-daemon/get-to-file.js';

const dir = mkdtempSync(path.join(tmpdir(), 'skiff-get-to-file-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Chunked encoding of `body` in chunks of the given sizes (cycled), with an extension and a trailer. */
function chunked(body: Buffer, sizes: number[]): Buffer {
  const out: Buffer[] = [];
  let i = 0;
  for (let at = 0; at < body.length; i++) {
    const n = Math.min(sizes[i % sizes.length]!, body.length - at);
    out.push(Buffer.from(`${n.toString(16)}${i % 3 === 1 ? ';ext=1' : ''}\r\n`), body.subarray(at, at + n), Buffer.from('\r\n'));
    at += n;
  }
  out.push(Buffer.from('0\r\nX-Trailer: yes\r\n\r\n'));
  return Buffer.concat(out);
}

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 1));

/**
 * A server on a unix socket that answers one request with `answer` (head and body bytes), written in pieces of at
 * most `piece` bytes with a pause between (so that the client's reads split everywhere), then closes unless told
 * not to. Records the request head.
 */
async function serve(answer: Buffer, o: { piece?: number; keepOpen?: boolean; tcp?: boolean } = {}): Promise<{ target: { path: string } | { host: string; port: number }; requests: string[]; server: Server }> {
  const requests: string[] = [];
  const server = createServer((sock: Socket) => {
    let got = '';
    sock.on('data', async (d) => {
      got += d.toString('latin1');
      if (!got.includes('\r\n\r\n')) return;
      requests.push(got);
      const piece = o.piece ?? answer.length;
      for (let at = 0; at < answer.length; at += piece) {
        if (!sock.write(answer.subarray(at, at + piece))) await new Promise((r) => sock.once('drain', r));
        if (o.piece) await tick();
      }
      if (!o.keepOpen) sock.end();
    });
    sock.on('error', () => undefined);
  });
  let target: { path: string } | { host: string; port: number };
  if (o.tcp) {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    target = { host: '127.0.0.1', port: (server.address() as { port: number }).port };
  } else {
    const sockPath = path.join(dir, `s-${Math.random().toString(36).slice(2)}`);
    await new Promise<void>((r) => server.listen(sockPath, r));
    target = { path: sockPath };
  }
  after(() => server.close());
  return { target, requests, server };
}

const head = (status: string, headers: string[]): Buffer => Buffer.from(`HTTP/1.1 ${status}\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n`);

describe('getToFile (the daemon export reader)', () => {
  it('writes a chunked body split everywhere: head, sizes, extensions, CRLFs and trailer across reads', async () => {
    const body = randomBytes(3000);
    const { target, requests } = await serve(Buffer.concat([head('200 OK', ['Content-Type: application/x-tar', 'Transfer-Encoding: chunked']), chunked(body, [1, 2, 700, 5, 1500])]), { piece: 7 });
    const file = path.join(dir, 'split');
    const r = await getToFile(target, 'localhost', '/v1.41/images/x/get', file);
    assert.deepEqual(r, { status: 200 });
    assert.ok(readFileSync(file).equals(body));
    assert.match(requests[0]!, /^GET \/v1\.41\/images\/x\/get HTTP\/1\.1\r\nHost: localhost\r\n/);
  });

  it('writes a large chunked body byte for byte (many batches, written at once at their own offsets)', async () => {
    const body = randomBytes(24 << 20);
    const { target } = await serve(Buffer.concat([head('200 OK', ['Transfer-Encoding: chunked']), chunked(body, [32768, 1, 300000, 65536, 4095, 1 << 20])]));
    const file = path.join(dir, 'large');
    assert.deepEqual(await getToFile(target, 'localhost', '/get', file), { status: 200 });
    assert.ok(readFileSync(file).equals(body));
  });

  it('takes a Content-Length body, a body that ends with the connection, and an interim 100 first; over tcp too', async () => {
    const body = randomBytes(200_000);
    const withLength = await serve(Buffer.concat([head('100 Continue', []), head('200 OK', [`Content-Length: ${body.length}`]), body, Buffer.from('ignored')]), { piece: 65536, keepOpen: true });
    assert.deepEqual(await getToFile(withLength.target, 'localhost', '/get', path.join(dir, 'cl')), { status: 200 });
    assert.ok(readFileSync(path.join(dir, 'cl')).equals(body));
    const toClose = await serve(Buffer.concat([head('200 OK', ['Connection: close']), body]), { piece: 50_000, tcp: true });
    assert.deepEqual(await getToFile(toClose.target, '127.0.0.1:1', '/get', path.join(dir, 'close')), { status: 200 });
    assert.ok(readFileSync(path.join(dir, 'close')).equals(body));
    assert.match(toClose.requests[0]!, /\r\nHost: 127\.0\.0\.1:1\r\n/);
  });

  it('returns an error answer with its body and writes nothing', async () => {
    const msg = Buffer.from('{"cause":"image not known","message":"failed to find image nope: nope: image not known","response":404}\n');
    const { target } = await serve(Buffer.concat([head('404 Not Found', ['Content-Type: application/json', 'Transfer-Encoding: chunked']), chunked(msg, [10])]), { piece: 13 });
    const file = path.join(dir, 'missing');
    const r = await getToFile(target, 'localhost', '/get', file);
    assert.equal(r.status, 404);
    assert.equal(r.errorBody!.toString(), msg.toString());
    assert.equal(readFileSync(file).length, 0);
  });

  it('fails on a body cut short, a malformed chunk size or a non-HTTP answer, and when aborted', async () => {
    const body = randomBytes(100_000);
    const full = chunked(body, [40_000]);
    const cut = await serve(Buffer.concat([head('200 OK', ['Transfer-Encoding: chunked']), full.subarray(0, full.length - 30_000)]));
    await assert.rejects(getToFile(cut.target, 'localhost', '/get', path.join(dir, 'cut')), /closed before the end/);
    const short = await serve(Buffer.concat([head('200 OK', ['Content-Length: 5000']), body.subarray(0, 100)]));
    await assert.rejects(getToFile(short.target, 'localhost', '/get', path.join(dir, 'short')), /closed before the end/);
    const bad = await serve(Buffer.concat([head('200 OK', ['Transfer-Encoding: chunked']), Buffer.from('zz\r\nabc\r\n0\r\n\r\n')]));
    await assert.rejects(getToFile(bad.target, 'localhost', '/get', path.join(dir, 'bad')), /bad chunk size "zz"/);
    const noCrlf = await serve(Buffer.concat([head('200 OK', ['Transfer-Encoding: chunked']), Buffer.from('3\r\nabcX\r\n0\r\n\r\n')]));
    await assert.rejects(getToFile(noCrlf.target, 'localhost', '/get', path.join(dir, 'nocrlf')), /no CRLF after a chunk/);
    const junk = await serve(Buffer.from('SSH-2.0-OpenSSH\r\n\r\n'));
    await assert.rejects(getToFile(junk.target, 'localhost', '/get', path.join(dir, 'junk')), /not an HTTP response/);
    const stall = await serve(head('200 OK', ['Transfer-Encoding: chunked']), { keepOpen: true });
    const stop = new AbortController();
    const p = getToFile(stall.target, 'localhost', '/get', path.join(dir, 'stall'), { signal: stop.signal });
    setTimeout(() => stop.abort(new Error('stopped by the test')), 50);
    await assert.rejects(p, /stopped by the test/);
  });

  it('gives up an answer that stops coming for idleMs, but waits as long as it takes for the answer to begin', async () => {
    const stalled = await serve(Buffer.concat([head('200 OK', ['Transfer-Encoding: chunked']), Buffer.from('4\r\nabcd\r\n')]), { keepOpen: true });
    const t0 = Date.now();
    await assert.rejects(getToFile(stalled.target, 'localhost', '/get', path.join(dir, 'idle'), { idleMs: 300 }), /nothing received for 0\.3 s/);
    assert.ok(Date.now() - t0 < 3000);
    // A server that takes longer than idleMs before it answers at all is waited for.
    const body = randomBytes(1000);
    const answer = Buffer.concat([head('200 OK', [`Content-Length: ${body.length}`]), body]);
    const server = createServer((sock) => {
      sock.once('data', () => setTimeout(() => sock.end(answer), 600));
      sock.on('error', () => undefined);
    });
    const sockPath = path.join(dir, 'late.sock');
    await new Promise<void>((r) => server.listen(sockPath, r));
    after(() => server.close());
    assert.deepEqual(await getToFile({ path: sockPath }, 'localhost', '/get', path.join(dir, 'late'), { idleMs: 300 }), { status: 200 });
    assert.ok(readFileSync(path.join(dir, 'late')).equals(body));
  });

  it('fails on a write error (a full disk), after the writes in flight are done', async () => {
    const body = randomBytes(6 << 20);
    const { target } = await serve(Buffer.concat([head('200 OK', ['Transfer-Encoding: chunked']), chunked(body, [65536])]));
    await assert.rejects(getToFile(target, 'localhost', '/get', '/dev/full'), (e: NodeJS.ErrnoException) => e.code === 'ENOSPC');
  });

  it('names a socket nobody listens on (ENOENT)', async () => {
    await assert.rejects(getToFile({ path: path.join(dir, 'nobody') }, 'localhost', '/get', path.join(dir, 'x')), (e: NodeJS.ErrnoException) => e.code === 'ENOENT');
  });
});

describe('getHead (the daemon ping)', () => {
  it('reads status and headers split across reads, after an interim 100, leaving the body unread', async () => {
    const body = Buffer.from('OK');
    const answer = Buffer.concat([Buffer.from('HTTP/1.1 100 Continue\r\n\r\n'), head('200 OK', ['API-Version: 1.52', 'Docker-Experimental: false', `Content-Length: ${body.length}`]), body]);
    const { target, requests } = await serve(answer, { piece: 5, keepOpen: true });
    const r = await getHead(target, 'localhost', '/_ping');
    assert.equal(r.status, 200);
    assert.equal(r.headers['api-version'], '1.52');
    assert.equal(r.headers['docker-experimental'], 'false');
    assert.match(requests[0]!, /^GET \/_ping HTTP\/1\.1\r\nHost: localhost\r\n/);
    const notFound = await serve(head('404 Not Found', ['Content-Length: 0']), { tcp: true });
    assert.equal((await getHead(notFound.target, '127.0.0.1:1', '/_ping')).status, 404);
  });

  it('fails on a non-HTTP answer, a connection closed before the head, silence past timeoutMs, and no listener', async () => {
    const junk = await serve(Buffer.from('SSH-2.0-OpenSSH\r\n\r\n'));
    await assert.rejects(getHead(junk.target, 'localhost', '/_ping'), /not an HTTP response/);
    const cut = await serve(Buffer.from('HTTP/1.1 200 OK\r\nAPI-Ver'));
    await assert.rejects(getHead(cut.target, 'localhost', '/_ping'), /closed before the answer/);
    const silent = await serve(Buffer.alloc(0), { keepOpen: true });
    const t0 = Date.now();
    await assert.rejects(getHead(silent.target, 'localhost', '/_ping', { timeoutMs: 200 }), /no answer to GET \/_ping in 0\.2 s/);
    assert.ok(Date.now() - t0 < 3000);
    await assert.rejects(getHead({ path: path.join(dir, 'nobody') }, 'localhost', '/_ping'), (e: NodeJS.ErrnoException) => e.code === 'ENOENT' && e.syscall === 'connect');
  });
});
