/**
 * The layer a RUN step made: walk the overlay *upper* directory (only what changed) and write it as a deterministic
 * OCI layer tar — BuildKit's upper-dir differ, with REFERENCE.md's rules:
 * - a char device 0:0 is an overlay whiteout: `.wh.NAME`, only if NAME exists below (else there is nothing to hide);
 * - an opaque directory (`trusted.overlay.opaque` / `user.overlay.opaque` = y) gets `.wh..wh..opq`, only if the
 *   directory exists below;
 * - entries sorted; hardlinks inside the layer as links; fifos and devices kept, sockets skipped; mtimes truncated
 *   to seconds and clamped to `timestamp` when given; whiteouts at mtime 0;
 * - the stubs the runtime created for mount points are left out when they did not exist before.
 * - extended attributes (file capabilities, user.*) carried as PAX `SCHILY.xattr.*` records.
 */
import { spawnSync } from 'node:child_process';
import { promises as fsp, type Stats } from 'node:fs';
import * as path from 'node:path';
import type { Writable } from 'node:stream';
import type * as tar from 'tar-stream';
import type { Digest } from '../core/digest.js';
import { addEntry, addFile, packTo } from '../archive/tar-pack.js';

export interface DiffOptions {
  /** Does `rel` (no leading slash) exist in the layers below, and is it a directory? */
  below(rel: string): Promise<{ exists: boolean; dir: boolean }>;
  /** Clamp new mtimes to this time (seconds since the epoch): --timestamp / SOURCE_DATE_EPOCH. */
  timestamp?: number;
  /** Paths the runtime created as mount points (`etc/hosts`, …): left out unless they existed below. */
  runtimeStubs?: string[];
}

export const DEFAULT_STUBS = ['etc/hosts', 'etc/resolv.conf', 'etc/hostname', 'run/.containerenv', 'proc', 'sys', 'dev'];

/**
 * Extended attributes under `root`, by path relative to it: one recursive getfattr dump (Node has no xattr call).
 * overlayfs's own attributes are split out: `opaque` lists the directories marked opaque; `attrs` has the rest that
 * a layer carries (file capabilities, user.*), never SELinux labels (the host's, not the image's).
 */
export function readXattrs(root: string): { opaque: Set<string>; attrs: Map<string, [string, Buffer][]> } {
  const r = spawnSync('getfattr', ['-R', '-P', '--absolute-names', '-m', '-', '-e', 'hex', '-d', root], { encoding: 'utf8', maxBuffer: 1 << 28 });
  const opaque = new Set<string>();
  const attrs = new Map<string, [string, Buffer][]>();
  let file: string | undefined;
  for (const line of (r.stdout ?? '').split('\n')) {
    if (line.startsWith('# file: ')) {
      file = path.relative(root, line.slice(8));
      continue;
    }
    const m = /^([^=]+)=0x([0-9a-f]*)$/.exec(line);
    if (!m || file === undefined) continue;
    const [, name = '', hex = ''] = m;
    if (/^(trusted|user)\.overlay\./.test(name)) {
      if (name.endsWith('.overlay.opaque') && hex === '79') opaque.add(file);
      continue;
    }
    if (name === 'security.selinux') continue;
    attrs.set(file, [...(attrs.get(file) ?? []), [name, Buffer.from(hex, 'hex')]]);
  }
  return { opaque, attrs };
}

type Links = Map<string, string>;

/**
 * Add the entry at `root/rel` (lstat `st`) to the tar: directories, symlinks, fifos and devices, regular files
 * (a second name of a file already added becomes a hard link); sockets are skipped.
 */
async function emitEntry(pack: tar.Pack, root: string, rel: string, st: Stats, links: Links, mtime: (st: Stats) => Date, xattrs?: [string, Buffer][]): Promise<void> {
  const full = path.join(root, rel);
  const base = { name: rel, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: mtime(st), uname: '', gname: '', ...(xattrs?.length ? { xattrs } : {}) };
  if (st.isDirectory()) return addEntry(pack, { ...base, name: `${rel}/`, type: 'directory' });
  if (st.isSocket()) return;
  if (st.isSymbolicLink()) return addEntry(pack, { ...base, type: 'symlink', linkname: await fsp.readlink(full) });
  if (st.isFIFO() || st.isCharacterDevice() || st.isBlockDevice()) {
    const major = Math.floor(st.rdev / 256) & 0xfff;
    const minor = (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00);
    return addEntry(pack, { ...base, type: st.isFIFO() ? 'fifo' : st.isCharacterDevice() ? 'character-device' : 'block-device', devmajor: major, devminor: minor });
  }
  const key = `${st.dev}:${st.ino}`;
  const first = st.nlink > 1 ? links.get(key) : undefined;
  if (first) return addEntry(pack, { ...base, type: 'link', linkname: first });
  if (st.nlink > 1) links.set(key, rel);
  return addFile(pack, { ...base, size: st.size }, full);
}

const whiteout = (rel: string): string => {
  const i = rel.lastIndexOf('/');
  return `${i < 0 ? '' : rel.slice(0, i + 1)}.wh.${rel.slice(i + 1)}`;
};

function mtimeOf(timestamp: number | undefined): (st: Stats) => Date {
  return (st) => {
    const s = Math.floor(st.mtimeMs / 1000);
    return new Date((timestamp !== undefined ? Math.min(s, timestamp) : s) * 1000);
  };
}

/** Write the diff of `upper` to `out` as a tar; resolves with the tar's digest (the diffID) and size. */
export async function diffUpperDir(upper: string, out: Writable, o: DiffOptions): Promise<{ diffID: Digest; size: number }> {
  return packTo(out, upperDirTar(upper, o));
}

/**
 * What writes the diff of `upper` into a tar (for packTo, or packInto when the consumer hashes the tar itself, as
 * a layer being applied does).
 */
export function upperDirTar(upper: string, o: DiffOptions): (pack: tar.Pack) => Promise<void> {
  const stubs = new Set(o.runtimeStubs ?? DEFAULT_STUBS);
  const links: Links = new Map();
  const { opaque, attrs } = readXattrs(upper);
  const mtime = mtimeOf(o.timestamp);

  const walk = async (pack: tar.Pack, rel: string): Promise<void> => {
    const names = (await fsp.readdir(path.join(upper, rel))).sort();
    for (const n of names) {
      const r = rel ? `${rel}/${n}` : n;
      const st = await fsp.lstat(path.join(upper, r));
      if (stubs.has(r) && !(await o.below(r)).exists) continue;
      if (st.isCharacterDevice() && st.rdev === 0) {
        if ((await o.below(r)).exists) await addEntry(pack, { name: whiteout(r), type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: new Date(0), size: 0 });
        continue;
      }
      await emitEntry(pack, upper, r, st, links, mtime, attrs.get(r));
      if (st.isDirectory()) {
        if (opaque.has(r) && (await o.below(r)).dir) await addEntry(pack, { name: `${r}/.wh..wh..opq`, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: new Date(0), size: 0 });
        await walk(pack, r);
      }
    }
  };
  return (pack) => walk(pack, '');
}

/**
 * `--squash`: one layer equal to several. `layers` are the diff dirs being squashed (oldest first), `merged` a
 * read-only view of the whole image, `below` answers for the image without them. Every path the layers mention
 * is written as the merged view has it, or as a whiteout when it is gone but exists below; a directory some layer
 * made opaque stays opaque if it exists below.
 */
export async function squashTar(layers: string[], merged: string, o: DiffOptions): Promise<(pack: tar.Pack) => Promise<void>> {
  const touched = new Set<string>();
  const opaque = new Set<string>();
  const attrs = new Map<string, [string, Buffer][]>();
  for (const d of layers) {
    const x = readXattrs(d);
    for (const r of x.opaque) opaque.add(r);
    const walk = async (rel: string): Promise<void> => {
      for (const n of await fsp.readdir(path.join(d, rel))) {
        const r = rel ? `${rel}/${n}` : n;
        touched.add(r);
        // This layer's copy of the path decides its attributes (none if it has none).
        const a = x.attrs.get(r);
        if (a) attrs.set(r, a);
        else attrs.delete(r);
        if ((await fsp.lstat(path.join(d, r))).isDirectory()) await walk(r);
      }
    };
    await walk('');
  }
  const links: Links = new Map();
  const mtime = mtimeOf(o.timestamp);
  const gone = new Set<string>();
  const parentGone = (r: string): boolean => {
    for (let i = r.lastIndexOf('/'); i > 0; i = r.lastIndexOf('/', i - 1)) if (gone.has(r.slice(0, i))) return true;
    return false;
  };
  return async (pack) => {
    for (const r of [...touched].sort()) {
      if (parentGone(r)) {
        gone.add(r);
        continue;
      }
      const st = await fsp.lstat(path.join(merged, r)).catch(() => undefined);
      if (!st) {
        gone.add(r);
        if ((await o.below(r)).exists) await addEntry(pack, { name: whiteout(r), type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: new Date(0), size: 0 });
        continue;
      }
      await emitEntry(pack, merged, r, st, links, mtime, attrs.get(r));
      if (st.isDirectory() && opaque.has(r) && (await o.below(r)).dir) await addEntry(pack, { name: `${r}/.wh..wh..opq`, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: new Date(0), size: 0 });
    }
  };
}
