/** Writing layer tars with tar-stream: the pieces the builder's COPY and the RUN differ share. */
import { createReadStream } from 'node:fs';
import type { Writable } from 'node:stream';
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
