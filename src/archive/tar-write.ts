import { IO_CHUNK } from '../core/fs.js';
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';

export type TarMember =
  | { name: string; file: string; size: number; mode?: number }
  | { name: string; data: Buffer; mode?: number }
  | { name: string; symlink: string }
  | { name: string; dir: true };

const EPOCH = new Date(0);

/**
 * Write a tar of the given members to `out` (created, fsynced). Members are owned 0:0 with mtime 0 so archives are
 * reproducible; file contents stream from disk, never held in memory whole.
 */
export async function writeTar(out: string, members: Iterable<TarMember>): Promise<void> {
  const pack = tar.pack();
  const sink = createWriteStream(out, { mode: 0o644, highWaterMark: IO_CHUNK });
  const done = pipeline(pack, sink);
  try {
    for (const m of members) {
      const base = { name: m.name, uid: 0, gid: 0, uname: '', gname: '', mtime: EPOCH };
      if ('dir' in m) {
        await addEntry(pack, { ...base, type: 'directory', mode: 0o755 });
      } else if ('symlink' in m) {
        await addEntry(pack, { ...base, type: 'symlink', linkname: m.symlink, mode: 0o777 });
      } else if ('data' in m) {
        await addEntry(pack, { ...base, type: 'file', mode: m.mode ?? 0o444, size: m.data.length }, m.data);
      } else {
        await new Promise<void>((resolve, reject) => {
          const input = createReadStream(m.file, { highWaterMark: IO_CHUNK });
          const entry = pack.entry({ ...base, type: 'file', mode: m.mode ?? 0o444, size: m.size }, (err) => (err ? reject(err) : resolve()));
          input.once('error', (err) => {
            entry.destroy(err);
            reject(err);
          });
          input.pipe(entry);
        });
      }
    }
    pack.finalize();
    await done;
  } catch (e) {
    pack.destroy(e as Error);
    await done.catch(() => undefined);
    throw e;
  }
  // fsync through a fresh descriptor: it flushes the inode, and the stream has already closed its own.
  const fh = await fsp.open(out, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function addEntry(pack: tar.Pack, header: Partial<tar.Header> & { name: string }, data?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    pack.entry(header, data ?? '', (err) => (err ? reject(err) : resolve()));
  });
}
