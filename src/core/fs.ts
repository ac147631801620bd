import { randomBytes } from 'node:crypto';
import { createWriteStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
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
    if (!n.startsWith(prefix)) continue;
    const pid = Number(n.slice(prefix.length).split('-')[0]);
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
  try {
    const out = createWriteStream(tmp, { highWaterMark: IO_CHUNK });
    if (known) {
      // Nothing to hash: the file stream counts the bytes (one stage less for every chunk to pass).
      await pipeline(stream, out);
      return { path: tmp, digest: known, size: out.bytesWritten };
    }
    const hasher = new BlobMeter();
    await pipeline(stream, hasher, out);
    return { path: tmp, digest: hasher.digest, size: hasher.size };
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
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
