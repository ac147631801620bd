/**
 * SHA-256 on a thread of its own. A copy's main thread moves every chunk through the pipeline, cuts blocks for the
 * compressor, computes CRCs and hashes: on a save from the daemon (157 MB of layers gzipped into an OCI layout) it
 * was busy ~330 of the ~350 ms after the export arrived, the bound on the copy, and checking the layers' digests
 * was ~80 ms of that. Sources whose blobs are plain file ranges can have them checked here instead, in two ways:
 * - hashFileRange: the worker reads a range itself (from the page cache) and hashes it, one message each way.
 *   Save, 25 alternating runs: 1.20 -> 1.16 s (median), peak RSS +9 MiB (the worker's isolate).
 * - followTar: the worker hashes the entries of a tar file while it is being written (a daemon's export as it
 *   arrives), on the CPU the download leaves idle, so the digests are ready when the file is: the hashing leaves
 *   the copy altogether. Save, 21 alternating runs: 1.146 -> 1.122 s (skopeo 1.134 s).
 * Earlier attempts passed every chunk to a worker through shared memory and lost more to copying and waking it than
 * the hashing they moved; and where the worker's start (~25 ms of CPU) is not hidden behind a wait, as a daemon's
 * export is, it costs more than it saves (docker-archive -> oci: 420 -> 430 ms), so only the daemon source uses it.
 *
 * One worker for the process, started on first use; it holds the process open only while a reply is awaited.
 * Where no worker can be started, or it fails, ranges are hashed on the calling thread.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Worker } from 'node:worker_threads';

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { openSync, readSync, closeSync } = require('node:fs');
const { crc32 } = require('node:zlib');
const buf = Buffer.allocUnsafe(256 * 1024);
const header = Buffer.alloc(512);
const follows = new Map();

// (With \`crc\`, an object, its \`value\` becomes the CRC-32 of what was hashed too.)
function hashRange(fd, h, pos, length, crc) {
  let left = length;
  while (left > 0) {
    const n = readSync(fd, buf, 0, Math.min(buf.length, left), pos);
    if (n === 0) break;
    const piece = n === buf.length ? buf : buf.subarray(0, n);
    h.update(piece);
    if (crc) crc.value = crc32(piece, crc.value);
    pos += n;
    left -= n;
  }
  return length - left;
}

function octal(b, off, len) {
  if (b[off] & 0x80) {
    let v = b[off] & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + b[off + i];
    return v;
  }
  const s = b.toString('latin1', off, off + len).replace(/[\\0 ]+$/, '').trim();
  return /^[0-7]+$/.test(s) ? parseInt(s, 8) : NaN;
}

// Hash the entries of a tar file that is still being written, as far as it is: each header where the one before
// says, each entry's data as it arrives. Entries are reported by where their data starts (a PAX size is honoured).
function advance(f) {
  while (!f.over) {
    if (f.state === 'header') {
      if (f.end - f.pos < 512) return;
      readSync(f.fd, header, 0, 512, f.pos);
      if (header.every((b) => b === 0)) { f.over = true; return; }
      let size = octal(header, 124, 12);
      if (f.paxSize !== undefined) { size = f.paxSize; f.paxSize = undefined; }
      if (!Number.isFinite(size) || size < 0) { f.over = true; return; }
      f.flag = String.fromCharCode(header[156]);
      f.dataStart = f.pos + 512;
      f.dataEnd = f.dataStart + size;
      f.at = f.dataStart;
      f.hash = f.flag === 'x' ? undefined : createHash('sha256');
      f.crc = { value: 0 };
      f.state = 'data';
    }
    if (f.flag === 'x') {
      if (f.end < f.dataEnd) return;
      const pax = Buffer.alloc(f.dataEnd - f.dataStart);
      readSync(f.fd, pax, 0, pax.length, f.dataStart);
      const m = /(?:^|\\n)\\d+ size=(\\d+)\\n/.exec(pax.toString('utf8'));
      if (m) f.paxSize = Number(m[1]);
    } else {
      const upTo = Math.min(f.dataEnd, f.end);
      if (upTo > f.at) f.at += hashRange(f.fd, f.hash, f.at, upTo - f.at, f.crc);
      if (f.at < f.dataEnd) return;
      f.entries.push([f.dataStart, f.dataEnd - f.dataStart, f.hash.digest('hex'), f.crc.value >>> 0]);
    }
    f.pos = f.dataStart + Math.ceil((f.dataEnd - f.dataStart) / 512) * 512;
    f.state = 'header';
  }
}

parentPort.on('message', (m) => {
  if (m.type === 'range') {
    let fd;
    try {
      fd = openSync(m.file, 'r');
      const h = createHash(m.algorithm);
      const size = hashRange(fd, h, m.start, m.length);
      parentPort.postMessage({ id: m.id, hex: h.digest('hex'), size });
    } catch (e) {
      parentPort.postMessage({ id: m.id, error: String((e && e.message) || e) });
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
    return;
  }
  if (m.type === 'follow') {
    follows.set(m.id, { file: m.file, fd: undefined, pos: 0, end: 0, state: 'header', entries: [], over: false });
    return;
  }
  const f = follows.get(m.id);
  if (!f) {
    // (A follow given up after an error: its finish still gets an answer, with nothing in it.)
    if (m.type === 'finish') parentPort.postMessage({ id: m.id, entries: [] });
    return;
  }
  try {
    if (m.type === 'drop') {
      follows.delete(m.id);
    } else {
      f.end = m.end;
      if (f.fd === undefined) f.fd = openSync(f.file, 'r');
      advance(f);
      if (m.type === 'finish') {
        follows.delete(m.id);
        parentPort.postMessage({ id: m.id, entries: f.entries });
      }
    }
  } catch (e) {
    follows.delete(m.id);
    f.over = true;
    if (m.type === 'finish') parentPort.postMessage({ id: m.id, error: String((e && e.message) || e) });
  }
  if (!follows.has(m.id) && f.fd !== undefined) closeSync(f.fd);
});
`;

export interface RangeHash {
  hex: string;
  /** Bytes hashed: less than asked where the file ends first. */
  size: number;
}

interface Job {
  file: string;
  start: number;
  length: number;
  algorithm: 'sha256' | 'sha512';
}

/** A reply awaited from the worker, and what to do instead if the worker goes away first. */
interface Waiting {
  instead: () => Promise<unknown>;
  resolve: (r: unknown) => void;
  reject: (e: Error) => void;
}

type Reply = { id: number; error?: string } & ({ hex: string; size: number } | { entries: [number, number, string, number][] });

let worker: Worker | undefined;
let unavailable = false;
const stopping = new WeakSet<Worker>();
let nextId = 1;
const waiting = new Map<number, Waiting>();

/**
 * The worker failed, or was stopped: what it had not answered is done here instead; after a failure, so is
 * everything after (a stopped worker is started anew when next needed).
 */
function workerLost(w: Worker, stopped = false): void {
  if (worker !== w) return;
  worker = undefined;
  if (!stopped) unavailable = true;
  const left = [...waiting.values()];
  waiting.clear();
  for (const { instead, resolve, reject } of left) instead().then(resolve, reject);
}

function ensureWorker(): Worker | undefined {
  if (worker || unavailable) return worker;
  try {
    // (Not the process's own Node flags: --input-type=module, say, would make this source a module without require.)
    const w = new Worker(WORKER_SOURCE, { eval: true, execArgv: [], stdout: true, stderr: true });
    w.on('message', (m: Reply) => {
      const entry = waiting.get(m.id);
      waiting.delete(m.id);
      if (!waiting.size) w.unref();
      if (!entry) return;
      if (m.error !== undefined) entry.reject(new Error(m.error));
      else if ('entries' in m) entry.resolve(new Map(m.entries.map(([offset, size, hex, crc32]) => [offset, { size, hex, crc32 }])));
      else entry.resolve({ hex: m.hex, size: m.size });
    });
    w.on('error', () => workerLost(w));
    w.on('exit', () => workerLost(w, stopping.has(w)));
    // (After the listeners: adding a 'message' listener refs the worker's port again, and the process never ended.)
    w.unref();
    worker = w;
  } catch {
    unavailable = true;
  }
  return worker;
}

/** Ask the worker; the promise settles with its reply (or `instead`'s, should the worker go away first). */
function ask<T>(w: Worker, message: Record<string, unknown>, instead: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  const id = message.id as number;
  return new Promise<T>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = (): void => {
      if (!waiting.delete(id)) return;
      if (!waiting.size) w.unref();
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const done = (): void => signal?.removeEventListener('abort', onAbort);
    waiting.set(id, { instead, resolve: (r) => (done(), resolve(r as T)), reject: (e) => (done(), reject(e)) });
    w.ref();
    w.postMessage(message);
  });
}

/** Start the worker now, where a command has time to spare before its first blob (it takes ~20-30 ms to start). */
export function startHashWorker(): void {
  ensureWorker();
}

/** Stop the worker (a library's process that wants its thread back); ranges it was hashing are hashed here. */
export async function stopHashWorker(): Promise<void> {
  const w = worker;
  if (!w) return;
  stopping.add(w);
  await w.terminate();
}

async function hashHere({ file, start, length, algorithm }: Job): Promise<RangeHash> {
  const h = createHash(algorithm);
  let size = 0;
  if (length > 0) {
    for await (const c of createReadStream(file, { start, end: start + length - 1, highWaterMark: 1 << 20 })) {
      h.update(c as Buffer);
      size += (c as Buffer).length;
    }
  }
  return { hex: h.digest('hex'), size };
}

/**
 * The digest of `length` bytes of `file` from `start`, computed off the main thread where it can be. `signal`: the
 * answer is no longer wanted (the promise rejects, and the worker no longer holds the process open for it).
 */
export function hashFileRange(file: string, start: number, length: number, algorithm: 'sha256' | 'sha512', signal?: AbortSignal): Promise<RangeHash> {
  const w = ensureWorker();
  const job: Job = { file, start, length, algorithm };
  if (!w) return hashHere(job);
  return ask(w, { type: 'range', id: nextId++, ...job }, () => hashHere(job), signal);
}

/** The SHA-256 (and CRC-32) of each entry of a tar file, by the offset where the entry's data starts. */
export type TarHashes = Map<number, RangeHash & { crc32?: number }>;

export interface TarFollower {
  /** The file's first `end` bytes are written. */
  grown(end: number): void;
  /** The file is complete at `end` bytes: the digests of its entries (an empty map where the worker went away). */
  finish(end: number): Promise<TarHashes>;
  /** Not wanted any more (the download failed, the source closed). */
  drop(): void;
}

/**
 * Hash the entries of a tar file while it is being written (a daemon's export as it arrives): the worker reads
 * each entry's bytes back from the page cache as soon as they are written, on the CPU the download leaves idle, so
 * the digests are ready (or nearly) when the file is. Undefined where no worker can be started.
 */
export function followTar(file: string): TarFollower | undefined {
  const w = ensureWorker();
  if (!w) return undefined;
  const id = nextId++;
  w.postMessage({ type: 'follow', id, file });
  let sent = 0;
  let over = false;
  let result: Promise<TarHashes> | undefined;
  const stop = new AbortController();
  return {
    grown(end) {
      // (Every 4 MiB: each message wakes the worker.)
      if (over || end - sent < 4 << 20 || worker !== w) return;
      sent = end;
      w.postMessage({ type: 'grown', id, end });
    },
    finish(end) {
      if (result) return result;
      over = true;
      if (worker !== w) return (result = Promise.resolve(new Map()));
      result = ask<TarHashes>(w, { type: 'finish', id, end }, async () => new Map(), stop.signal).catch(() => new Map());
      return result;
    },
    drop() {
      if (over && !result) return;
      over = true;
      stop.abort(new Error('dropped'));
      if (!result && worker === w) w.postMessage({ type: 'drop', id });
    },
  };
}
