/**
 * `build --output type=local|tar`: the built image's flattened filesystem written to a directory or a tar (BuildKit's
 * local and tar exporters). The image's layers are mounted read-only as one overlay and copied out; owners are kept
 * in the tar, and in a directory they become the caller's (a rootless user could not remove files owned by its
 * subordinate IDs otherwise).
 */
import { spawn, spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { SkiffError } from '../core/errors.js';
import type { Store } from '../store/store.js';
import { mountLayersReadOnly } from './run.js';

/** Write the flattened filesystem of image `id` to a directory (local) or a tar file / stdout (tar). */
export async function exportRootfs(store: Store, id: string, out: { type: 'local' | 'tar'; dest: string }): Promise<void> {
  const img = (await store.images()).find((i) => i.id === id);
  if (!img) throw new SkiffError('ERR_IMAGE_NOT_FOUND', `--output: image ${id.slice(0, 12)} is not in the store`);
  const layers = (await store.layerChain(img)).map((l) => path.join(store.loc.root, 'overlay', l.id, 'diff'));
  const mp = await fsp.mkdtemp(path.join(store.loc.root, 'tmp', `export-${process.pid}-`));
  let mounted = false;
  try {
    mounted = mountLayersReadOnly(layers, mp, '--output');
    if (out.type === 'local') {
      await fsp.mkdir(out.dest, { recursive: true });
      const r = spawnSync('cp', ['-a', '--no-preserve=ownership', `${mp}/.`, out.dest], { encoding: 'utf8' });
      // The destination directory keeps a usable mode: copying "." gave it the mount root's (the store keeps
      // layer roots read-only), and a read-only output directory could not be cleaned or written again.
      await fsp.chmod(out.dest, 0o755);
      if (r.status !== 0) throw new SkiffError('ERR_BUILD', `--output type=local,dest=${out.dest}: ${r.stderr.trim()}`);
      return;
    }
    const toStdout = out.dest === '-';
    const tmp = toStdout ? undefined : `${out.dest}.${process.pid}.tmp`;
    const code = await new Promise<number>((resolve, reject) => {
      const p = spawn('tar', ['--numeric-owner', '--xattrs', '--sort=name', '-C', mp, '-cf', toStdout ? '-' : tmp!, '.'], { stdio: ['ignore', toStdout ? 'inherit' : 'ignore', 'inherit'] });
      p.on('error', reject);
      p.on('close', (c) => resolve(c ?? -1));
    });
    if (code !== 0) {
      if (tmp) await fsp.rm(tmp, { force: true });
      throw new SkiffError('ERR_BUILD', `--output type=tar,dest=${out.dest}: tar exited ${code}`);
    }
    if (tmp) await fsp.rename(tmp, out.dest);
  } finally {
    if (mounted) spawnSync('umount', [mp]);
    await fsp.rm(mp, { recursive: true, force: true });
  }
}
