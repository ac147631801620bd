/**
 * SHA-256 of file ranges on a thread of its own. A copy's main thread moves every chunk through the pipeline, cuts
 * blocks for the compressor, computes CRCs and hashes: on a save from the daemon (157 MB of layers gzipped into an
 * OCI layout) it was busy ~330 of the ~350 ms after the export arrived, the bound on the copy, and checking the
 * layers' digests was ~80 ms of that. A source whose blobs are plain file ranges can have them checked here instead:
 * the worker reads the range itself (from the page cache: the copy reads the same bytes at the same time) and
 * hashes it, one message there and one back per blob, nothing shared. Save, 25 alternating runs: 1.20 -> 1.16 s
 * (median), peak RSS +9 MiB (the worker's isolate). Earlier attempts passed every chunk to a worker through shared
 * memory and lost more to copying and waking it than the hashing they moved; and where the worker's start (~25 ms
 * of CPU) is not hidden behind a wait, as a daemon's export is, it costs more than it saves (docker-archive -> oci:
 * 420 -> 430 ms), so only the daemon source uses it.
 *
 * One worker for the process, started on first use or ahead of time (startHashWorker); it holds the process open
 * only while it has work. Where no worker can be started the range is hashed on the calling thread.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Worker } from 'node:worker_threads';

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { openSync, readSync, closeSync } = require('node:fs');
const buf = Buffer.allocUnsafe(256 * 1024);
parentPort.on('message', ({ id, file, start, length, algorithm }) => {
  let fd;
  try {
    fd = openSync(file, 'r');
    const h = createHash(algorithm);
    let pos = start;
    let left = length;
    while (left > 0) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, left), pos);
      if (n === 0) break;
      h.update(n === buf.length ? buf : buf.subarray(0, n));
      pos += n;
      left -= n;
    }
    parentPort.postMessage({ id, hex: h.digest('hex'), size: length - left });
  } catch (e) {
    parentPort.postMessage({ id, error: String((e && e.message) || e) });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
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

interface Waiting {
  job: Job;
  resolve: (r: RangeHash) => void;
  reject: (e: Error) => void;
}

let worker: Worker | undefined;
let unavailable = false;
const stopping = new WeakSet<Worker>();
let nextId = 1;
const waiting = new Map<number, Waiting>();

/**
 * The worker failed, or was stopped: what it had not answered is hashed here instead; after a failure, so is
 * everything after (a stopped worker is started anew when next needed).
 */
function workerLost(w: Worker, stopped = false): void {
  if (worker !== w) return;
  worker = undefined;
  if (!stopped) unavailable = true;
  const left = [...waiting.values()];
  waiting.clear();
  for (const { job, resolve, reject } of left) hashHere(job).then(resolve, reject);
}

function ensureWorker(): Worker | undefined {
  if (worker || unavailable) return worker;
  try {
    // (Not the process's own Node flags: --input-type=module, say, would make this source a module without require.)
    const w = new Worker(WORKER_SOURCE, { eval: true, execArgv: [], stdout: true, stderr: true });
    w.on('message', (m: { id: number; hex?: string; size?: number; error?: string }) => {
      const entry = waiting.get(m.id);
      waiting.delete(m.id);
      if (!waiting.size) w.unref();
      if (!entry) return;
      if (m.error !== undefined) entry.reject(new Error(m.error));
      else entry.resolve({ hex: m.hex!, size: m.size! });
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
  const id = nextId++;
  return new Promise<RangeHash>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = (): void => {
      if (!waiting.delete(id)) return;
      if (!waiting.size) w.unref();
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const done = (): void => signal?.removeEventListener('abort', onAbort);
    waiting.set(id, { job, resolve: (r) => (done(), resolve(r)), reject: (e) => (done(), reject(e)) });
    w.ref();
    w.postMessage({ id, file, start, length, algorithm });
  });
}
