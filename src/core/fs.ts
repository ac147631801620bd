import { randomBytes } from 'node:crypto';
import { close, open, promises as fsp, statSync, writev, type Stats } from 'node:fs';
import * as path from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BlobMeter, type Digest } from './digest.js';

/** A name for a temporary sibling of `target` that says which process made it, so stale ones can be swept. */
export function tempSibling(target: string, suffix = ''): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.skiff-${process.pid}-${randomBytes(4).toString('hex')}${suffix}`);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Remove temporaries left next to `target` by skiff processes that no longer run (a killed copy). */
export async function sweepStaleTemps(target: string): Promise<void> {
  const dir = path.dirname(target);
  const prefix = `.${path.basename(target)}.skiff-`;
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return;
  }
  for (const n of names) {
    // (`..name.skiff-…`: the temp sibling of a temp sibling, such as the layout an oci-archive is staged in writes
    // beside itself, named after a stage that a new copy does not reuse.)
    const p = n.startsWith(prefix) ? prefix : n.startsWith(`.${prefix}`) ? `.${prefix}` : undefined;
    if (!p) continue;
    const pid = Number(n.slice(p.length).split('-')[0]);
    if (!Number.isInteger(pid) || pid === process.pid || pidAlive(pid)) continue;
    // A `.old` is the previous content moved aside during a swap; if the swap died before the new content
    // arrived, put the old content back instead of deleting it.
    if (n.endsWith('.old') && !(await exists(target))) await fsp.rename(path.join(dir, n), target);
    else await fsp.rm(path.join(dir, n), { recursive: true, force: true });
  }
}

/** Write a file atomically: temp file in the same directory, fsync, rename. */
export async function atomicWriteFile(file: string, data: Buffer | string, mode = 0o644): Promise<void> {
  const tmp = tempSibling(file);
  const fh = await fsp.open(tmp, 'w', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await fsp.rename(tmp, file);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
}

/**
 * Stream into a new temp file in `dir`, hashing as it goes (unless `known`: see BlobMeter). On any stream error the temp file is removed and the
 * error rethrown, so a caller renames only complete, hashed files into place.
 */
export async function streamToTempFile(stream: Readable, dir: string, known?: Digest): Promise<{ path: string; digest: Digest; size: number }> {
  const tmp = path.join(dir, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  let out: FileWriter | undefined;
  try {
    out = new FileWriter(tmp);
    if (known) {
      // Nothing to hash: the file stream counts the bytes (one stage less for every chunk to pass).
      await pipeline(stream, out);
      return { path: tmp, digest: known, size: out.bytesWritten };
    }
    const hasher = new BlobMeter();
    await pipeline(stream, hasher, out);
    return { path: tmp, digest: hasher.digest, size: hasher.size };
  } catch (e) {
    // A source that fails at once can do so while the file is still being opened: removed before it exists, it
    // would be created after and stay. So the writer is let finish (it closes what it opened), then it goes.
    if (out && !out.closed) await new Promise((resolve) => out!.once('close', resolve));
    await fsp.rm(tmp, { force: true });
    throw e;
  }
}

/** `p`'s stat (following symlinks), or undefined when it does not exist or cannot be looked at. */
export function statOf(p: string): Stats | undefined {
  try {
    return statSync(p, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

/** Is `p` a regular file (following symlinks)? */
export function isFile(p: string): boolean {
  return statOf(p)?.isFile() ?? false;
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch {
    return false;
  }
}

/** Read a whole stream into memory: only for small things (manifests, configs), never layers. */
export async function readAll(stream: Readable, limit = 64 * 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of stream) {
    n += (c as Buffer).length;
    if (n > limit) {
      stream.destroy();
      throw new Error(`more than ${limit} bytes where a small document was expected`);
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/** rm -rf, retrying briefly when a late writer still adds entries (ENOTEMPTY). */
export async function removeTree(p: string): Promise<void> {
  await fsp.rm(p, { recursive: true, force: true, maxRetries: 5, retryDelay: 20 });
}

/**
 * Buffer size for file streams. Small enough that six parallel blob copies stay well inside the memory budget,
 * large enough that syscalls do not dominate (measured: 256 KiB is as fast as 1 MiB here).
 */
export const IO_CHUNK = 256 * 1024;

/** Bytes of small chunks gathered into one write by FileWriter. */
const WRITE_BATCH = 1024 * 1024;

/**
 * A file as a Writable that writes in batches: chunks smaller than IO_CHUNK (a socket's 64 KiB reads) are taken at
 * once and gathered until there is a MiB of them, then written with one writev; larger chunks (file reads) are
 * written as they come. fs.WriteStream writes each chunk as it arrives while nothing else is in flight: a pull of
 * the bench image made ~1,000 trips through the thread pool, where this makes ~80 (pull 0.285 -> 0.262 s). Holds at
 * most a batch and the write in flight, ~2 MiB.
 */
export class FileWriter extends Writable {
  bytesWritten = 0;
  private fd: number | undefined;
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly file: string) {
    super({ highWaterMark: IO_CHUNK });
  }

  override _construct(cb: (e?: Error | null) => void): void {
    open(this.file, 'w', 0o666, (e, fd) => {
      this.fd = fd;
      cb(e);
    });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes >= WRITE_BATCH || chunk.length >= IO_CHUNK) this.flush(cb);
    else cb();
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.flush(cb);
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    if (this.fd === undefined) return cb(err);
    close(this.fd, (e) => cb(err ?? e));
    this.fd = undefined;
  }

  /** Write what is pending, all of it. */
  private flush(cb: (e?: Error | null) => void): void {
    const bufs = this.pending;
    const bytes = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    writevAll(this.fd!, bufs, null, this.file, (e) => {
      if (!e) this.bytesWritten += bytes;
      cb(e);
    });
  }
}

/**
 * writev all of `bufs`, at `position` (null: at the file's offset): a short write (a full disk on the way to
 * ENOSPC) continues where it stopped. Takes `bufs` over (it is consumed).
 */
export function writevAll(fd: number, bufs: Buffer[], position: number | null, file: string, done: (e?: Error) => void): void {
  // (Nothing to write is done at once: writev would write 0 bytes, which below means no progress.)
  if (bufs.every((b) => b.length === 0)) return done();
  writev(fd, bufs, position, (e, written) => {
    if (e) return done(e);
    if (written === 0) return done(new Error(`writing ${file}: no progress`));
    let rest = written;
    while (rest > 0 && bufs.length) {
      const b = bufs[0]!;
      if (rest >= b.length) {
        rest -= b.length;
        bufs.shift();
      } else {
        bufs[0] = b.subarray(rest);
        rest = 0;
      }
    }
    if (bufs.length) writevAll(fd, bufs, position === null ? null : position + written, file, done);
    else done();
  });
}

/**
 * Run `fn` holding an exclusive lock file (created O_EXCL, holding our pid). A lock left by a dead process is
 * broken; a live holder is waited for (up to `timeoutMs`). Serialises read-modify-write of shared files such as an
 * OCI layout's index.json between concurrent skiff processes.
 */
export async function withLockFile<T>(lock: string, fn: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fh = await fsp.open(lock, 'wx');
      await fh.writeFile(String(process.pid));
      await fh.close();
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const holder = Number(await fsp.readFile(lock, 'utf8').catch(() => ''));
      if (Number.isInteger(holder) && holder > 0 && !pidAlive(holder)) {
        await fsp.rm(lock, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for lock ${lock} (held by pid ${holder})`);
      await new Promise((r) => setTimeout(r, 10 + Math.random() * 20));
    }
  }
  try {
    return await fn();
  } finally {
    await fsp.rm(lock, { force: true });
  }
}
