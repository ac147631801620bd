import { createGunzip, constants as zc } from 'node:zlib';
import { DEFAULT_GZIP_LEVEL, ParallelGzip } from './pgzip.js';
import type { Readable, Transform } from 'node:stream';
import { createRequire } from 'node:module';
import type { Compression } from '../core/media-types.js';
import { SkiffError } from '../core/errors.js';

// zstd-napi (a native addon) is loaded on first use only: most copies never touch zstd.
const requireCjs = createRequire(import.meta.url);
type Zstd = typeof import('zstd-napi');
let zstd: Zstd | undefined;
const loadZstd = (): Zstd => (zstd ??= requireCjs('zstd-napi') as Zstd);

/** What the first bytes of a blob say about its compression. bzip2 and xz are recognised only to refuse them. */
export function detectCompression(head: Buffer): Compression | 'bzip2' | 'xz' {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  if (head.length >= 3 && head.toString('latin1', 0, 3) === 'BZh') return 'bzip2';
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  return 'none';
}

/**
 * Read the first `n` bytes of a stream without consuming them: they are pushed back with unshift, so the
 * stream can then be piped as usual. Resolves with fewer bytes when the stream is shorter.
 */
export function peek(stream: Readable, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let have = 0;
    const done = (err?: Error): void => {
      stream.off('readable', onReadable);
      stream.off('error', done);
      stream.off('end', onEnd);
      if (err) return reject(err);
      const buf = Buffer.concat(chunks);
      if (buf.length) stream.unshift(buf);
      resolve(buf.subarray(0, n));
    };
    const onEnd = (): void => done();
    const onReadable = (): void => {
      let c: Buffer | null;
      while (have < n && (c = stream.read() as Buffer | null) !== null) {
        chunks.push(c);
        have += c.length;
      }
      // A stream shorter than n: its end is already known, so give the bytes back now; after 'end' they could
      // not be (unshift after end throws).
      const eof = (stream as unknown as { _readableState?: { ended?: boolean } })._readableState?.ended === true;
      if (have >= n || eof) done();
    };
    stream.on('readable', onReadable);
    stream.once('error', done);
    stream.once('end', onEnd);
  });
}

export function createDecompressor(c: Compression | 'bzip2' | 'xz'): Transform | undefined {
  switch (c) {
    case 'none':
      return undefined;
    case 'gzip':
      return createGunzip({ chunkSize: 256 * 1024 });
    case 'zstd':
      return new (loadZstd().DecompressStream)();
    default:
      throw new SkiffError('ERR_UNSUPPORTED', `${c}-compressed layers are not supported`);
  }
}

/** `knownCrc32`: the input's CRC-32 where it is known already (gzip's trailer needs it). */
export function createCompressor(c: Compression, level?: number, knownCrc32?: number): Transform | undefined {
  switch (c) {
    case 'none':
      return undefined;
    case 'gzip':
      // Blocks compressed in parallel, incompressible ones stored (what pgzip does for containers/image).
      return new ParallelGzip(level === undefined || level === zc.Z_DEFAULT_COMPRESSION ? DEFAULT_GZIP_LEVEL : level, undefined, knownCrc32);
    case 'zstd':
      // On a thread of zstd's own (zstd-napi compresses on the calling thread otherwise: the main one, with all the
      // hashing and streaming). One worker and 1 MiB jobs whatever the machine, so the same input always gives the
      // same bytes (zstd's multi-threaded output depends on the job size, not on the number of workers).
      return new (loadZstd().CompressStream)({ compressionLevel: level ?? 3, nbWorkers: 1, jobSize: 1 << 20 });
  }
}
