import { IO_CHUNK } from '../core/fs.js';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { SkiffError } from '../core/errors.js';
import { readAll } from '../core/fs.js';

/** Read-only access to a tree of files: a directory, or a tar archive read in place. */
export interface FileTree {
  /** Where the tree lives, for messages. */
  readonly location: string;
  /** Size of a regular file, or undefined if there is none at `p`. */
  size(p: string): Promise<number | undefined>;
  /** Stream a file. Caller must consume or destroy it. Missing: ENOENT-like ERR_BLOB_UNKNOWN. */
  open(p: string): Promise<Readable>;
  readFile(p: string, limit?: number): Promise<Buffer>;
  list(): Promise<string[]>;
  close(): Promise<void>;
}

/**
 * Normalise a relative path found inside an archive or manifest, refusing absolute paths and `..` components:
 * nothing read from untrusted metadata may name a file outside the tree.
 */
export function safeRelativePath(p: string, what: string): string {
  if (p.startsWith('/') || p.includes('\0')) throw new SkiffError('ERR_UNSAFE_PATH', `${what}: absolute path ${JSON.stringify(p)} refused`);
  const parts: string[] = [];
  for (const c of p.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') throw new SkiffError('ERR_UNSAFE_PATH', `${what}: path ${JSON.stringify(p)} escapes the archive (..) - refused`);
    parts.push(c);
  }
  return parts.join('/');
}

/** A FileTree over a directory on disk. */
export class DirTree implements FileTree {
  constructor(readonly location: string) {}
  private resolve(p: string): string {
    return path.join(this.location, safeRelativePath(p, this.location));
  }
  async size(p: string): Promise<number | undefined> {
    try {
      const st = await fsp.stat(this.resolve(p));
      return st.isFile() ? st.size : undefined;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
      throw e;
    }
  }
  async open(p: string): Promise<Readable> {
    const full = this.resolve(p);
    const fh = await fsp.open(full, 'r').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') throw new SkiffError('ERR_BLOB_UNKNOWN', `${full}: no such file`);
      throw e;
    });
    return fh.createReadStream({ highWaterMark: IO_CHUNK, autoClose: true });
  }
  async readFile(p: string, limit?: number): Promise<Buffer> {
    return readAll(await this.open(p), limit);
  }
  async list(): Promise<string[]> {
    return fsp.readdir(this.location, { recursive: true });
  }
  async close(): Promise<void> {}
}
