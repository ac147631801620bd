/** Writing layer tars with tar-stream: the pieces the builder's COPY and the RUN differ share. */
import { createReadStream } from 'node:fs';
import { Transform, type TransformCallback, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { Hasher, type Digest } from '../core/digest.js';
import { IO_CHUNK } from '../core/fs.js';
import { paxRecord } from './tar-header.js';

/** A tar header; `xattrs` become PAX `SCHILY.xattr.*` records (binary values kept exact). */
export type Header = Partial<tar.Header> & { name: string; xattrs?: [string, Buffer][] };

/** Would tar-stream write this name in a plain ustar header (its own prefix split)? */
const fitsUstar = (full: string): boolean => {
  if (Buffer.byteLength(full) !== full.length) return false;
  let name = full;
  let prefix = '';
  while (name.length > 100) {
    const i = name.indexOf('/');
    if (i < 0) return false;
    prefix += prefix ? `/${name.slice(0, i)}` : name.slice(0, i);
    name = name.slice(i + 1);
  }
  return prefix.length <= 155;
};

/** A ustar header block for a PAX extended header (typeflag `x`) of `size` bytes. */
function paxHeaderBlock(size: number, mtime: Date): Buffer {
  const b = Buffer.alloc(512);
  const oct = (v: number, len: number): string => `${v.toString(8).padStart(len - 1, '0')}\0`;
  b.write('PaxHeader', 0, 'latin1');
  b.write(oct(0o644, 8), 100, 'latin1');
  b.write(oct(0, 8), 108, 'latin1');
  b.write(oct(0, 8), 116, 'latin1');
  b.write(oct(size, 12), 124, 'latin1');
  b.write(oct(Math.max(0, Math.floor(mtime.getTime() / 1000)), 12), 136, 'latin1');
  b.write('x', 156, 'latin1');
  b.write('ustar\x0000', 257, 'latin1');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return b;
}

/**
 * tar-stream writes PAX values as text, which would corrupt binary xattrs: an entry with xattrs gets its PAX
 * header written here (with `path`/`linkpath` when they do not fit ustar, the header then carrying a short
 * stand-in that readers ignore), and the entry itself goes out as plain ustar.
 */
async function paxPrefix(pack: tar.Pack, header: Header): Promise<Partial<tar.Header> & { name: string }> {
  const { xattrs, ...h } = header;
  if (!xattrs?.length) return h;
  const records: Buffer[] = [];
  const out = { ...h };
  if (!fitsUstar(h.name)) {
    records.push(paxRecord('path', h.name));
    out.name = h.name.endsWith('/') ? 'pax-path/' : 'pax-path';
  }
  if (h.linkname && (Buffer.byteLength(h.linkname) > 100 || Buffer.byteLength(h.linkname) !== h.linkname.length)) {
    records.push(paxRecord('linkpath', h.linkname));
    out.linkname = 'pax-linkpath';
  }
  for (const [k, v] of xattrs) records.push(paxRecord(`SCHILY.xattr.${k}`, v));
  const body = Buffer.concat(records);
  // tar-stream takes no body for a 'pax-header' entry: the block goes straight into the stream, between entries.
  pack.push(Buffer.concat([paxHeaderBlock(body.length, h.mtime ?? new Date(0)), body, Buffer.alloc((512 - (body.length % 512)) % 512)]));
  return out;
}

/** Add an entry with in-memory data (or none). */
export async function addEntry(pack: tar.Pack, header: Header, data?: Buffer): Promise<void> {
  const h = await paxPrefix(pack, header);
  return new Promise((resolve, reject) => pack.entry(h, data ?? Buffer.alloc(0), (e) => (e ? reject(e) : resolve())));
}

/** Add a regular file streamed from disk (never held in memory whole); `header.size` must be its size. */
export async function addFile(pack: tar.Pack, header: Header, file: string): Promise<void> {
  const h = await paxPrefix(pack, header);
  return new Promise((resolve, reject) => {
    const entry = pack.entry({ ...h, type: 'file' }, (e) => (e ? reject(e) : resolve()));
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
  const hasher = new Hasher();
  await packInto(out, fill, hasher);
  return { diffID: hasher.digest, size: hasher.size };
}

/** packTo without the hashing, for a consumer that hashes what it reads anyway (a layer being applied). */
export async function packInto(out: Writable, fill: (pack: tar.Pack) => Promise<void>, via?: Transform): Promise<void> {
  const pack = tar.pack();
  const done = via ? pipeline(pack, via, out) : pipeline(pack, out);
  try {
    await fill(pack);
    pack.finalize();
    await done;
  } catch (e) {
    pack.destroy(e as Error);
    await done.catch(() => undefined);
    throw e;
  }
}

/** Add a regular file whose contents come from a stream; `header.size` must be its length. */
export async function addStream(pack: tar.Pack, header: Header, body: NodeJS.ReadableStream): Promise<void> {
  const h = await paxPrefix(pack, header);
  return new Promise((resolve, reject) => {
    const entry = pack.entry({ ...h, type: 'file' }, (e) => (e ? reject(e) : resolve()));
    body.once('error', (e: Error) => {
      entry.destroy(e);
      reject(e);
    });
    body.pipe(entry);
  });
}

/**
 * Joins small chunks into pieces of about `size` bytes (chunks that big already pass as they are). A tar of
 * thousands of small files comes out of the packer a header and a body at a time: handed one by one to a consumer
 * in the same thread (a layer being applied), each costs a round of waiting on the other side; in 256 KiB pieces
 * the packer runs ahead and the consumer takes many entries per turn. (A 5,000-file COPY applied as it was packed:
 * 2.0-2.4 s one chunk at a time, 0.7 s coalesced.)
 */
export class Coalesce extends Transform {
  private parts: Buffer[] = [];
  private n = 0;
  constructor(private readonly size = 256 * 1024) {
    super({ highWaterMark: size });
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    if (chunk.length >= this.size / 2) {
      this.release();
      this.push(chunk);
    } else {
      this.parts.push(chunk);
      this.n += chunk.length;
      if (this.n >= this.size) this.release();
    }
    cb();
  }
  override _flush(cb: TransformCallback): void {
    this.release();
    cb();
  }
  private release(): void {
    if (!this.n) return;
    this.push(this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.n));
    this.parts = [];
    this.n = 0;
  }
}
