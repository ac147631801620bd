/**
 * The layer a RUN step made: walk the overlay *upper* directory (only what changed) and write it as a deterministic
 * OCI layer tar — BuildKit's upper-dir differ, with REFERENCE.md's rules:
 * - a char device 0:0 is an overlay whiteout: `.wh.NAME`, only if NAME exists below (else there is nothing to hide);
 * - an opaque directory (`trusted.overlay.opaque` / `user.overlay.opaque` = y) gets `.wh..wh..opq`, only if the
 *   directory exists below;
 * - entries sorted; hardlinks inside the layer as links; fifos and devices kept, sockets skipped; mtimes truncated
 *   to seconds and clamped to `timestamp` when given; whiteouts at mtime 0;
 * - the stubs the runtime created for mount points are left out when they did not exist before.
 * xattrs other than the opaque marker are not carried yet (Node has no xattr API; the builder will add them).
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
 * The directories under `upper` marked opaque, relative to it. Node has no xattr call: one recursive getfattr
 * dump (both namespaces) answers for the whole tree.
 */
function opaqueDirs(upper: string): Set<string> {
  const r = spawnSync('getfattr', ['-R', '-P', '--absolute-names', '-m', '^(trusted|user)\\.overlay\\.opaque$', '-d', upper], { encoding: 'utf8', maxBuffer: 1 << 26 });
  const out = new Set<string>();
  let file: string | undefined;
  for (const line of (r.stdout ?? '').split('\n')) {
    if (line.startsWith('# file: ')) file = line.slice(8);
    else if (file && /overlay\.opaque="y"$/.test(line)) out.add(path.relative(upper, file));
  }
  return out;
}

/** Write the diff of `upper` to `out` as a tar; resolves with the tar's digest (the diffID) and size. */
export async function diffUpperDir(upper: string, out: Writable, o: DiffOptions): Promise<{ diffID: Digest; size: number }> {
  const stubs = new Set(o.runtimeStubs ?? DEFAULT_STUBS);
  const links = new Map<string, string>(); // dev:ino -> first name
  const opaque = opaqueDirs(upper);
  const mtime = (st: Stats): Date => {
    const s = Math.floor(st.mtimeMs / 1000);
    return new Date((o.timestamp !== undefined ? Math.min(s, o.timestamp) : s) * 1000);
  };

  const walk = async (pack: tar.Pack, rel: string): Promise<void> => {
    const names = (await fsp.readdir(path.join(upper, rel))).sort();
    for (const n of names) {
      const r = rel ? `${rel}/${n}` : n;
      const full = path.join(upper, r);
      const st = await fsp.lstat(full);
      const base = { name: r, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: mtime(st), uname: '', gname: '' };
      if (stubs.has(r) && !(await o.below(r)).exists) continue;
      if (st.isCharacterDevice() && st.rdev === 0) {
        if ((await o.below(r)).exists) await addEntry(pack, { name: `${rel ? `${rel}/` : ''}.wh.${n}`, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: new Date(0), size: 0 });
        continue;
      }
      if (st.isDirectory()) {
        await addEntry(pack, { ...base, name: `${r}/`, type: 'directory' });
        if (opaque.has(r) && (await o.below(r)).dir) await addEntry(pack, { name: `${r}/.wh..wh..opq`, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: new Date(0), size: 0 });
        await walk(pack, r);
        continue;
      }
      if (st.isSocket()) continue;
      if (st.isSymbolicLink()) {
        await addEntry(pack, { ...base, type: 'symlink', linkname: await fsp.readlink(full) });
        continue;
      }
      if (st.isFIFO() || st.isCharacterDevice() || st.isBlockDevice()) {
        const major = Math.floor(st.rdev / 256) & 0xfff;
        const minor = (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00);
        await addEntry(pack, { ...base, type: st.isFIFO() ? 'fifo' : st.isCharacterDevice() ? 'character-device' : 'block-device', devmajor: major, devminor: minor });
        continue;
      }
      const key = `${st.dev}:${st.ino}`;
      const first = st.nlink > 1 ? links.get(key) : undefined;
      if (first) {
        await addEntry(pack, { ...base, type: 'link', linkname: first });
        continue;
      }
      if (st.nlink > 1) links.set(key, r);
      await addFile(pack, { ...base, size: st.size }, full);
    }
  };
  return packTo(out, (pack) => walk(pack, ''));
}
