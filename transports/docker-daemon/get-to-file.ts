/**
 * One HTTP/1.1 GET over a plain connection (a unix socket, or tcp without TLS), its body written straight into a
 * file: the daemon's image export, ~150 MB and more in podman's and Docker's chunked encoding, which has to land in
 * a file anyway (see openDaemonSource). Through undici each of its ~7,000 socket reads took a trip through the
 * wasm HTTP parser and a stream: ~300 ms of CPU for the bench image and the daemon kept waiting on skiff. Here the
 * socket reads into 1 MiB buffers of our own (net's `onread`), the chunk framing is cut out where it lies and the
 * data between is written from those buffers with writev, no copy: ~90 ms of CPU, the export read ~2x sooner.
 *
 * Everything else (TLS daemons, the small API calls) stays with undici.
 */
import { close, open } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { writevAll } from '../../src/core/fs.js';

/** Where to connect: a unix socket path, or a tcp host and port. */
export type PlainTarget = { path: string } | { host: string; port: number };

export interface GetResult {
  status: number;
  /** The body of any answer but 200 (its first MiB): the daemon's error message. Nothing is written then. */
  errorBody?: Buffer;
}

const BATCH = 1 << 20;
/** A read is given at least this much room; a batch with less left is written out and another one read into. */
const MIN_READ = 64 * 1024;
/** Batches being written at once; beyond that the socket waits (memory stays under ~6 MiB whatever the size). */
const MAX_WRITES = 4;
const MAX_HEAD = 64 * 1024;
const MAX_ERROR_BODY = 1 << 20;

type BodyState = 'size' | 'data' | 'data-end' | 'trailer' | 'length' | 'to-close' | 'done';

/**
 * GET `requestPath` from `target` (Host header `hostHeader`) and write a 200's body into `file` (created or
 * truncated). Resolves once the whole body is written; rejects on a connection, protocol or write error, a body
 * cut short, or, once the answer has begun, nothing received for `idleMs` (no limit before it: a daemon can take
 * minutes to prepare an export). `signal` destroys the connection. `onSent` is called once the request is out,
 * `onWritten(end)` whenever more of the file, its first `end` bytes, is written (writes finish in any order).
 */
export function getToFile(target: PlainTarget, hostHeader: string, requestPath: string, file: string, o: { signal?: AbortSignal; idleMs?: number; onSent?: () => void; onWritten?: (end: number) => void } = {}): Promise<GetResult> {
  const { signal, idleMs } = o;
  return new Promise<GetResult>((resolve, reject) => {
    let fd: number | undefined;
    let socket: Socket | undefined;
    let settled = false;
    // Reading state.
    let cur: Buffer = Buffer.allocUnsafe(BATCH);
    let used = 0;
    const free: Buffer[] = [];
    let pending: Buffer[] = [];
    let offset = 0;
    /** Where the writes in flight start: everything before the first of them is in the file. */
    const inFlight: number[] = [];
    let paused = false;
    let failure: Error | undefined;

    /**
     * After a failure the file is closed once no write is in flight (a write still queued in the thread pool would
     * otherwise go to whatever file reuses the descriptor), then the promise rejects.
     */
    const release = (): void => {
      if (!failure || inFlight.length) return;
      const e = failure;
      failure = undefined;
      if (fd !== undefined) close(fd, () => reject(e));
      else reject(e);
    };
    const fail = (e: Error): void => {
      if (settled) return;
      settled = true;
      failure = e;
      signal?.removeEventListener('abort', onAbort);
      socket?.destroy();
      release();
    };
    const onAbort = (): void => fail(signal!.reason instanceof Error ? signal!.reason : new Error('aborted'));
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });

    // Response state.
    let head: Buffer[] | undefined = [];
    let headBytes = 0;
    let status = 0;
    let body: BodyState = 'to-close';
    let need = 0;
    let line = '';
    let errorBody: Buffer[] | undefined;
    let errorBytes = 0;

    const finish = (): void => {
      if (settled || inFlight.length || body !== 'done') return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      socket?.destroy();
      const result: GetResult = errorBody ? { status, errorBody: Buffer.concat(errorBody) } : { status };
      close(fd!, (e) => (e ? reject(e) : resolve(result)));
    };

    /** Write out what the current batch holds and read into another one. */
    const nextBatch = (): void => {
      const batch = cur;
      const bufs = pending;
      pending = [];
      cur = free.pop() ?? Buffer.allocUnsafe(BATCH);
      used = 0;
      if (!bufs.length) {
        free.push(batch);
        return;
      }
      const at = offset;
      for (const b of bufs) offset += b.length;
      inFlight.push(at);
      writevAll(fd!, bufs, at, file, (e) => {
        inFlight.splice(inFlight.indexOf(at), 1);
        if (e) fail(e);
        else if (o.onWritten) o.onWritten(inFlight.length ? Math.min(...inFlight) : offset);
        free.push(batch);
        if (paused && !settled && inFlight.length < MAX_WRITES) {
          paused = false;
          if (idleMs) socket!.setTimeout(idleMs);
          socket!.resume();
        }
        release();
        finish();
      });
    };

    const emit = (d: Buffer): void => {
      if (!d.length) return;
      if (errorBody) {
        if (errorBytes < MAX_ERROR_BODY) errorBody.push(Buffer.from(d.subarray(0, MAX_ERROR_BODY - errorBytes)));
        errorBytes += d.length;
      } else pending.push(d);
    };

    /** Bytes up to the next LF, added to `line`; the full line (CR removed) once it is there. */
    const takeLine = (d: Buffer, p: number): { line?: string; p: number } => {
      const e = d.indexOf(10, p);
      line += d.toString('latin1', p, e < 0 ? d.length : e);
      if (line.length > 8192) throw new Error('a chunk header line over 8 KiB');
      if (e < 0) return { p: d.length };
      const l = line.endsWith('\r') ? line.slice(0, -1) : line;
      line = '';
      return { line: l, p: e + 1 };
    };

    const parseBody = (d: Buffer): void => {
      let p = 0;
      while (p < d.length && body !== 'done') {
        switch (body) {
          case 'length':
          case 'data': {
            const take = Math.min(need, d.length - p);
            emit(d.subarray(p, p + take));
            p += take;
            need -= take;
            if (need === 0) body = body === 'length' ? 'done' : 'data-end';
            break;
          }
          case 'to-close':
            emit(d.subarray(p));
            p = d.length;
            break;
          case 'size': {
            const r = takeLine(d, p);
            p = r.p;
            if (r.line === undefined) break;
            const hex = r.line.split(';')[0]!.trim();
            if (!/^[0-9a-fA-F]{1,12}$/.test(hex)) throw new Error(`bad chunk size ${JSON.stringify(r.line.slice(0, 40))}`);
            need = parseInt(hex, 16);
            body = need === 0 ? 'trailer' : 'data';
            break;
          }
          case 'data-end': {
            const r = takeLine(d, p);
            p = r.p;
            if (r.line === undefined) break;
            if (r.line !== '') throw new Error('no CRLF after a chunk');
            body = 'size';
            break;
          }
          case 'trailer': {
            const r = takeLine(d, p);
            p = r.p;
            if (r.line === '') body = 'done';
            break;
          }
        }
      }
    };

    /**
     * Read the response head from `d` (the next bytes; the head may span several reads): once it is all there,
     * its status and framing are set and where the body starts in `d` is returned.
     */
    const parseHead = (d: Buffer): number | undefined => {
      // (A copy: the batch `d` lies in is reused once written, and a head can span batches.)
      head!.push(Buffer.from(d));
      headBytes += d.length;
      const all = head!.length === 1 ? head![0]! : Buffer.concat(head!);
      const end = all.indexOf('\r\n\r\n');
      if (end < 0) {
        if (headBytes > MAX_HEAD) throw new Error('a response head over 64 KiB');
        return undefined;
      }
      // What follows the head is at the end of `d`.
      const bodyStart = d.length - (all.length - (end + 4));
      const lines = all.toString('latin1', 0, end).split('\r\n');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]!);
      if (!m) throw new Error(`not an HTTP response: ${JSON.stringify(lines[0]!.slice(0, 40))}`);
      status = Number(m[1]);
      if (status >= 100 && status < 200) {
        // An interim answer: the real one follows.
        head = [];
        headBytes = 0;
        const next = parseHead(d.subarray(bodyStart));
        return next === undefined ? undefined : bodyStart + next;
      }
      let te: string | undefined;
      let cl: string | undefined;
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        const k = l.slice(0, i).trim().toLowerCase();
        if (k === 'transfer-encoding') te = l.slice(i + 1).trim().toLowerCase();
        else if (k === 'content-length') cl = l.slice(i + 1).trim();
      }
      if (te && te !== 'identity') {
        if (te !== 'chunked') throw new Error(`unsupported transfer-encoding ${te}`);
        body = 'size';
      } else if (cl !== undefined) {
        if (!/^\d{1,15}$/.test(cl)) throw new Error(`bad content-length ${JSON.stringify(cl)}`);
        need = Number(cl);
        body = need === 0 ? 'done' : 'length';
      } else body = 'to-close';
      if (status !== 200) errorBody = [];
      head = undefined;
      if (idleMs) socket!.setTimeout(idleMs);
      return bodyStart;
    };

    const onData = (n: number, buf: Uint8Array): boolean => {
      if (settled) return false;
      const d = Buffer.from(buf.buffer as ArrayBuffer, buf.byteOffset, n);
      used += n;
      try {
        if (head) {
          const start = parseHead(d);
          if (start !== undefined) parseBody(d.subarray(start));
        } else parseBody(d);
      } catch (e) {
        fail(new Error(`reading the answer to GET ${requestPath}: ${(e as Error).message}`));
        return false;
      }
      if (body === 'done') {
        nextBatch();
        finish();
        return false;
      }
      if (BATCH - used < MIN_READ) nextBatch();
      if (inFlight.length >= MAX_WRITES) {
        // (Waiting on the disk is not the daemon's silence.)
        paused = true;
        if (idleMs) socket!.setTimeout(0);
        return false;
      }
      return true;
    };

    open(file, 'w', 0o666, (e, opened) => {
      if (e) return fail(e);
      fd = opened;
      if (settled) return close(fd, () => undefined);
      socket = connect({ ...target, onread: { buffer: () => cur.subarray(used), callback: onData } });
      socket.on('error', (err) => fail(err));
      socket.on('timeout', () => fail(new Error(`nothing received for ${idleMs! / 1000} s in the middle of the answer to GET ${requestPath}`)));
      socket.on('end', () => {
        if (head || body === 'done') return;
        if (body === 'to-close') {
          body = 'done';
          nextBatch();
          finish();
        } else fail(new Error(`the connection closed before the end of the answer to GET ${requestPath}`));
      });
      socket.on('close', () => {
        if (!settled && body !== 'done') fail(new Error(`the connection closed before the end of the answer to GET ${requestPath}`));
      });
      socket.write(`GET ${requestPath} HTTP/1.1\r\nHost: ${hostHeader}\r\nUser-Agent: skiff\r\nAccept: */*\r\nConnection: close\r\n\r\n`, () => o.onSent?.());
    });
  });
}

export interface HeadResult {
  status: number;
  /** Header names in lower case; a repeated header's last value. */
  headers: Record<string, string>;
}

/**
 * GET `requestPath` over a plain connection and resolve with the answer's status and headers, the body unread: the
 * daemon's /_ping, asked before anything else can be. Through undici it cost a save ~10 ms more before the export
 * could be asked for (undici's modules and its wasm HTTP parser, loaded for one small answer). Rejects on a
 * connection error (as thrown by net: `syscall` 'connect'), a malformed answer, or nothing for `timeoutMs`.
 */
export function getHead(target: PlainTarget, hostHeader: string, requestPath: string, o: { timeoutMs?: number } = {}): Promise<HeadResult> {
  return new Promise<HeadResult>((resolve, reject) => {
    let got: Buffer = Buffer.alloc(0);
    let settled = false;
    const socket = connect(target);
    const done = (e: Error | undefined, r?: HeadResult): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      if (e) reject(e);
      else resolve(r!);
    };
    if (o.timeoutMs) socket.setTimeout(o.timeoutMs, () => done(new Error(`no answer to GET ${requestPath} in ${o.timeoutMs! / 1000} s`)));
    socket.on('data', (d: Buffer) => {
      got = got.length ? Buffer.concat([got, d]) : d;
      try {
        // (An interim 1xx answer comes before the real one.)
        for (;;) {
          const end = got.indexOf('\r\n\r\n');
          if (end < 0) {
            if (got.length > MAX_HEAD) throw new Error('a response head over 64 KiB');
            return;
          }
          const lines = got.toString('latin1', 0, end).split('\r\n');
          const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]!);
          if (!m) throw new Error(`not an HTTP response: ${JSON.stringify(lines[0]!.slice(0, 40))}`);
          const status = Number(m[1]);
          got = got.subarray(end + 4);
          if (status >= 100 && status < 200) continue;
          const headers: Record<string, string> = {};
          for (const l of lines.slice(1)) {
            const i = l.indexOf(':');
            if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
          }
          return done(undefined, { status, headers });
        }
      } catch (e) {
        done(new Error(`reading the answer to GET ${requestPath}: ${(e as Error).message}`));
      }
    });
    socket.on('error', (e) => done(e));
    socket.on('close', () => done(new Error(`the connection closed before the answer to GET ${requestPath}`)));
    socket.write(`GET ${requestPath} HTTP/1.1\r\nHost: ${hostHeader}\r\nUser-Agent: skiff\r\nAccept: */*\r\nConnection: close\r\n\r\n`);
  });
}
