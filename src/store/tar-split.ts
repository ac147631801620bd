/**
 * tar-split (containers/storage's `<layer>.tar-split.gz`): gzip of JSON lines that record a layer tar's raw
 * header/padding bytes (type 2, base64) and its file entries (type 1: name, size, CRC-64 of the content). With the
 * layer's diff directory it reassembles the exact original tar, so a stored layer copies out digest-identical.
 */
import { createReadStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { SkiffError } from '../core/errors.js';
import { IO_CHUNK } from '../core/fs.js';
import { safeRelativePath } from '../archive/file-tree.js';

interface Entry {
  type: 1 | 2;
  name?: string;
  size?: number;
  payload?: string | null;
  position: number;
}

async function* reassemble(tarSplit: string, diffDir: string): AsyncGenerator<Buffer> {
  const lines = createInterface({ input: createReadStream(tarSplit).pipe(createGunzip()), crlfDelay: Infinity });
  for await (const line of lines) {
    if (!line) continue;
    let e: Entry;
    try {
      e = JSON.parse(line) as Entry;
    } catch {
      throw new SkiffError('ERR_INVALID_ARCHIVE', `${tarSplit}: malformed tar-split line`);
    }
    if (e.type === 2) {
      if (e.payload) yield Buffer.from(e.payload, 'base64');
      continue;
    }
    const size = e.size ?? 0;
    if (size === 0) continue;
    // Names come from the store's own metadata, but never let one point outside the layer.
    const file = path.join(diffDir, safeRelativePath(e.name ?? '', tarSplit));
    const fh = await fsp.open(file, 'r').catch((err: Error) => {
      throw new SkiffError('ERR_BLOB_UNKNOWN', `layer file ${e.name} missing from ${diffDir}: ${err.message}`);
    });
    try {
      let left = size;
      let pos = 0;
      while (left > 0) {
        const buf = Buffer.allocUnsafe(Math.min(IO_CHUNK, left));
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
        if (bytesRead === 0) throw new SkiffError('ERR_TRUNCATED', `layer file ${e.name} in ${diffDir} is shorter than recorded (${size} bytes)`);
        pos += bytesRead;
        left -= bytesRead;
        yield bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
      }
    } finally {
      await fh.close();
    }
  }
}

/** The layer's original tar, rebuilt from its tar-split and diff directory. Caller verifies the diffID. */
export function layerTarStream(tarSplit: string, diffDir: string): Readable {
  return Readable.from(reassemble(tarSplit, diffDir), { objectMode: false, highWaterMark: IO_CHUNK });
}
