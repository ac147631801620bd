/**
 * containers/storage's locks: POSIX fcntl record locks (F_SETLKW, whole file) on `layers.lock`, `images.lock`,
 * …, plus a 64-byte "last write" token each writer rewrites at offset 0 so other processes notice a change.
 * fcntl locks belong to the process and are all dropped when *any* descriptor of the file is closed, so each lock
 * file is opened once per process, kept open, and an in-process queue orders skiff's own users of it.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp, write } from 'node:fs';
import { createRequire } from 'node:module';

interface FsExt {
  fcntl(fd: number, cmd: 'setlkw' | 'setlk', arg: number, cb: (err: Error | null) => void): void;
  constants: { F_RDLCK: number; F_WRLCK: number; F_UNLCK: number };
}
let fsExt: FsExt | undefined;
// fs-ext (a small native addon) is loaded only when a store is written or locked.
const ext = (): FsExt => (fsExt ??= createRequire(import.meta.url)('fs-ext') as FsExt);

const fcntl = (fd: number, cmd: 'setlkw' | 'setlk', type: number): Promise<void> =>
  new Promise((resolve, reject) => ext().fcntl(fd, cmd, type, (e) => (e ? reject(e) : resolve())));

interface Held {
  /** Referenced for the life of the process: a collected FileHandle would close its fd and drop our locks. */
  handle: Promise<fsp.FileHandle>;
  queue: Promise<void>;
}
const files = new Map<string, Held>();
let counter = 0n;

/** A fresh last-write token: 8-byte LE time (ns), 8-byte LE counter, 4-byte LE pid, random to 64 bytes. */
function token(): Buffer {
  const b = Buffer.alloc(64);
  b.writeBigUInt64LE(BigInt(Date.now()) * 1_000_000n, 0);
  b.writeBigUInt64LE(++counter, 8);
  b.writeUInt32LE(process.pid, 16);
  randomBytes(44).copy(b, 20);
  return b;
}

async function openLockFile(file: string): Promise<fsp.FileHandle> {
  // Create it if missing (before this process holds any lock on it), then keep an O_RDWR descriptor.
  await (await fsp.open(file, 'a', 0o644)).close();
  return fsp.open(file, 'r+');
}

/** Run `fn` holding `file`'s lock (exclusive for writers, shared for readers); writers leave a new token. */
export async function withLock<T>(file: string, exclusive: boolean, fn: () => Promise<T>): Promise<T> {
  let h = files.get(file);
  if (!h) {
    h = { handle: openLockFile(file), queue: Promise.resolve() };
    files.set(file, h);
  }
  const held = h;
  const prev = held.queue;
  let release!: () => void;
  held.queue = new Promise<void>((r) => (release = r));
  await prev;
  try {
    const fd = (await held.handle).fd;
    const { F_RDLCK, F_WRLCK, F_UNLCK } = ext().constants;
    await fcntl(fd, 'setlkw', exclusive ? F_WRLCK : F_RDLCK);
    try {
      const out = await fn();
      if (exclusive) {
        const t = token();
        await new Promise<void>((resolve, reject) => write(fd, t, 0, t.length, 0, (e) => (e ? reject(e) : resolve())));
      }
      return out;
    } finally {
      await fcntl(fd, 'setlk', F_UNLCK);
    }
  } finally {
    release();
  }
}
