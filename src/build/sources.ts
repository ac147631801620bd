/**
 * What COPY and ADD read besides plain context files: wildcard sources, local archives that ADD unpacks (tar,
 * optionally gzip, bzip2, xz or zstd compressed, recognised by content as Docker does), and ADD's remote files.
 */
import { spawn } from 'node:child_process';
import { createReadStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createHash } from 'node:crypto';
import { minimatch } from 'minimatch';
import * as tar from 'tar-stream';
import { createDecompressor, detectCompression, peek } from '../archive/compression.js';
import { SkiffError } from '../core/errors.js';
import { FileWriter, IO_CHUNK } from '../core/fs.js';
import type { Header } from '../archive/tar-pack.js';

const GLOB = /[*?[]/;

/**
 * Expand a source that has wildcards (Go's filepath.Match per path, as Docker: `*` stays inside one path element)
 * against `root`; a source without wildcards comes back as it is. Matches are sorted; none is an error.
 */
export async function expandSource(root: string, rel: string, what: string): Promise<string[]> {
  if (!GLOB.test(rel)) return [rel];
  const parts = rel.split('/');
  const fixed: string[] = [];
  while (parts.length && !GLOB.test(parts[0]!)) fixed.push(parts.shift()!);
  const re = minimatch.makeRe(rel, { dot: true, nobrace: true, noext: true, nonegate: true, nocomment: true, noglobstar: true });
  if (!re) throw new SkiffError('ERR_BUILD', `${what}: invalid pattern ${JSON.stringify(rel)}`);
  const out: string[] = [];
  const depth = rel.split('/').length;
  const walk = async (dir: string, level: number): Promise<void> => {
    const names = await fsp.readdir(path.join(root, dir)).catch(() => [] as string[]);
    for (const n of names) {
      const r = dir ? `${dir}/${n}` : n;
      if (level + 1 === depth) {
        if (re.test(r)) out.push(r);
      } else if ((await fsp.lstat(path.join(root, r))).isDirectory()) await walk(r, level + 1);
    }
  };
  await walk(fixed.join('/'), fixed.length);
  if (!out.length) throw new SkiffError('ERR_BUILD', `${what}: no source files were specified (nothing matches ${JSON.stringify(rel)})`);
  return out.sort();
}

/** Decompress a file's contents by what its first bytes say (bzip2 and xz through the system's tools). */
function openDecompressed(file: string): { stream: Readable; done: Promise<void> } {
  const raw = createReadStream(file, { highWaterMark: IO_CHUNK });
  const out = new PassThrough({ highWaterMark: IO_CHUNK });
  const done = (async () => {
    const head = await peek(raw, 6);
    const c = detectCompression(head);
    if (c === 'bzip2' || c === 'xz') {
      const p = spawn(c === 'xz' ? 'xz' : 'bzip2', ['-dc'], { stdio: ['pipe', 'pipe', 'pipe'] });
      let err = '';
      p.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const exited = new Promise<number>((resolve, reject) => {
        p.on('error', reject);
        p.on('close', (code) => resolve(code ?? -1));
      });
      await Promise.all([pipeline(raw, p.stdin), pipeline(p.stdout, out)]);
      const code = await exited;
      if (code !== 0) throw new Error(`${c} -dc: ${err.trim() || `exit ${code}`}`);
      return;
    }
    const d = createDecompressor(c);
    await (d ? pipeline(raw, d, out) : pipeline(raw, out));
  })();
  done.catch((e: Error) => out.destroy(e));
  return { stream: out, done };
}

/** A valid tar header block: the checksum over the block with its checksum field as spaces matches. */
function isTarHeader(b: Buffer): boolean {
  if (b.length < 512) return false;
  const stored = parseInt(b.toString('latin1', 148, 156).replace(/\0.*$/, '').trim(), 8);
  if (!Number.isFinite(stored)) return false;
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : b[i]!;
  return sum === stored;
}

/** Is this local file a (possibly compressed) tar archive that ADD unpacks? */
export async function isArchive(file: string): Promise<boolean> {
  const { stream, done } = openDecompressed(file);
  try {
    const head = await peek(stream, 512);
    return isTarHeader(head);
  } catch {
    return false;
  } finally {
    stream.destroy();
    await done.catch(() => undefined);
  }
}

/**
 * Unpack an archive's entries into the layer under `dest` (no leading slash). Names are resolved inside `dest`
 * (`..` cannot climb out), hard links are re-pointed inside it, whiteout names are dropped (an archive's content
 * must not delete files of the image), owners kept unless `owner` is given.
 */
export async function unpackArchive(file: string, dest: string, add: (h: Header, body?: Readable) => Promise<void>, owner?: { uid: number; gid: number }, what = `ADD ${path.basename(file)}`): Promise<void> {
  const { stream, done } = openDecompressed(file);
  const ex = tar.extract();
  const inDest = (name: string): string => path.posix.join(dest, path.posix.normalize(`/${name}`).slice(1));
  const entries = (async () => {
    for await (const entry of ex) {
      const h = entry.header;
      const base = path.posix.basename(h.name);
      const name = inDest(h.name).replace(/\/+$/, '');
      if (base.startsWith('.wh.') || name === dest.replace(/\/+$/, '') || !['file', 'directory', 'symlink', 'link', 'fifo', 'character-device', 'block-device'].includes(h.type ?? 'file')) {
        entry.resume();
        continue;
      }
      const hdr: Header = {
        name: h.type === 'directory' ? `${name}/` : name,
        type: h.type,
        mode: (h.mode ?? 0o644) & 0o7777,
        uid: owner?.uid ?? h.uid ?? 0,
        gid: owner?.gid ?? h.gid ?? 0,
        mtime: h.mtime ?? new Date(0),
        ...(h.type === 'symlink' ? { linkname: h.linkname ?? '' } : {}),
        ...(h.type === 'link' ? { linkname: inDest(h.linkname ?? '') } : {}),
        ...(h.type === 'character-device' || h.type === 'block-device' ? { devmajor: h.devmajor ?? 0, devminor: h.devminor ?? 0 } : {}),
        ...(h.type === 'file' ? { size: h.size ?? 0 } : {}),
      };
      if (h.type === 'file') await add(hdr, entry as unknown as Readable);
      else {
        entry.resume();
        await add(hdr);
      }
    }
  })();
  await Promise.all([pipeline(stream, ex), entries, done]).catch((e: Error) => {
    throw new SkiffError('ERR_BUILD', `${what}: reading the archive: ${e.message}`, { cause: e });
  });
}

export interface Download {
  file: string;
  size: number;
  /** Last-Modified, when the server sent one (Docker uses it as the file's mtime). */
  mtime?: Date;
  /** sha256 of the content (hex). */
  sha256: string;
}

/** ADD's remote file: fetched with undici (redirects followed), checked against --checksum when given. */
export async function download(url: string, file: string, checksum?: string, what = `ADD ${url}`): Promise<Download> {
  if (!/^https?:\/\//.test(url)) throw new SkiffError('ERR_UNSUPPORTED', `${what}: only http and https URLs are supported`);
  const { request, interceptors, Agent } = await import('undici');
  // (The same CAs as registry connections: the system's, and NODE_EXTRA_CA_CERTS.)
  // (node:tls only for an https URL: every build loads this module, few fetch anything.)
  const secureContext = url.startsWith('https:') ? await (await import('../config/trust.js')).defaultSecureContext() : undefined;
  const dispatcher = new Agent(secureContext ? { connect: { secureContext } } : {}).compose(interceptors.redirect({ maxRedirections: 10 }));
  try {
    const res = await request(url, { dispatcher, headers: { 'user-agent': 'skiff' } }).catch((e: Error) => {
      throw new SkiffError('ERR_BUILD', `${what}: ${e.message}`, { cause: e });
    });
    if (res.statusCode !== 200) {
      res.body.resume();
      throw new SkiffError('ERR_BUILD', `${what}: the server answered ${res.statusCode}`);
    }
    const algo = checksum ? checksum.slice(0, checksum.indexOf(':')) : 'sha256';
    const want = createHash(algo);
    const h256 = algo === 'sha256' ? want : createHash('sha256');
    let size = 0;
    const meter = new PassThrough();
    meter.on('data', (c: Buffer) => {
      size += c.length;
      want.update(c);
      if (h256 !== want) h256.update(c);
    });
    await pipeline(res.body, meter, new FileWriter(file));
    const got = want.digest('hex');
    if (checksum && `${algo}:${got}` !== checksum) throw new SkiffError('ERR_DIGEST_MISMATCH', `${what}: checksum mismatch: expected ${checksum}, got ${algo}:${got}`);
    const lm = res.headers['last-modified'];
    const mtime = typeof lm === 'string' && !Number.isNaN(Date.parse(lm)) ? new Date(Date.parse(lm)) : undefined;
    return { file, size, sha256: h256 === want ? got : h256.digest('hex'), ...(mtime ? { mtime } : {}) };
  } finally {
    await dispatcher.close();
  }
}

/**
 * Resolve `rel` inside `root` as if `root` were `/` (as BuildKit resolves mount sources): symlinks are followed,
 * absolute targets start again at `root`, `..` stops at it. The result never leaves `root`, whatever the links say.
 */
export async function resolveInRoot(root: string, rel: string): Promise<string> {
  const todo = rel.split('/').filter((p) => p && p !== '.');
  const done: string[] = [];
  for (let hops = 0; todo.length; ) {
    const part = todo.shift()!;
    if (part === '..') {
      done.pop();
      continue;
    }
    const here = path.join(root, ...done, part);
    const st = await fsp.lstat(here).catch(() => undefined);
    if (st?.isSymbolicLink()) {
      if (++hops > 40) throw new SkiffError('ERR_BUILD', `${rel}: too many levels of symbolic links`);
      const target = await fsp.readlink(here);
      if (target.startsWith('/')) done.length = 0;
      todo.unshift(...target.split('/').filter((p) => p && p !== '.'));
      continue;
    }
    done.push(part);
  }
  return path.join(root, ...done);
}
