/** Writing layer tars with tar-stream: the pieces the builder's COPY and the RUN differ share. */
import { createReadStream } from 'node:fs';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { Hasher, type Digest } from '../core/digest.js';
import { IO_CHUNK } from '../core/fs.js';

export type Header = Partial<tar.Header> & { name: string };

/** Add an entry with in-memory data (or none). */
export function addEntry(pack: tar.Pack, header: Header, data?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => pack.entry(header, data ?? Buffer.alloc(0), (e) => (e ? reject(e) : resolve())));
}

/** Add a regular file streamed from disk (never held in memory whole); `header.size` must be its size. */
export function addFile(pack: tar.Pack, header: Header, file: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const entry = pack.entry({ ...header, type: 'file' }, (e) => (e ? reject(e) : resolve()));
    const input = createReadStream(file, { highWaterMark: IO_CHUNK });
    input.once('error', (e) => {
      entry.destroy(e);
      reject(e);
    });
    input.pipe(entry);
  });
}

/**
 * Build a tar with `fill` and write it to `out`, hashing it on the way: resolves with its digest (a diffID) and
 * size. On any error the pack is destroyed and the error rethrown.
 */
export async function packTo(out: Writable, fill: (pack: tar.Pack) => Promise<void>): Promise<{ diffID: Digest; size: number }> {
  const pack = tar.pack();
  const hasher = new Hasher();
  const done = pipeline(pack, hasher, out);
  try {
    await fill(pack);
    pack.finalize();
    await done;
  } catch (e) {
    pack.destroy(e as Error);
    await done.catch(() => undefined);
    throw e;
  }
  return { diffID: hasher.digest, size: hasher.size };
}

/** Add a regular file whose contents come from a stream; `header.size` must be its length. */
export function addStream(pack: tar.Pack, header: Header, body: NodeJS.ReadableStream): Promise<void> {
  return new Promise((resolve, reject) => {
    const entry = pack.entry({ ...header, type: 'file' }, (e) => (e ? reject(e) : resolve()));
    body.once('error', (e: Error) => {
      entry.destroy(e);
      reject(e);
    });
    body.pipe(entry);
  });
}
