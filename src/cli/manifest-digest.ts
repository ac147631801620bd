import { promises as fsp } from 'node:fs';
import { Command } from 'commander';
import { manifestDigest } from '../core/manifest.js';
import { SkiffError } from '../core/errors.js';
import { writeOut } from './common.js';

/** `skiff manifest-digest FILE`: the digest of a manifest file's bytes. */
export function manifestDigestCommand(program: Command): void {
  program
    .command('manifest-digest')
    .description('Print the digest of a manifest file')
    .argument('<file>', 'manifest file')
    .action(async (file: string) => {
      const bytes = await fsp.readFile(file).catch((e: NodeJS.ErrnoException) => {
        throw new SkiffError(e.code === 'ENOENT' ? 'ERR_IMAGE_NOT_FOUND' : 'ERR_IO', `${file}: ${e.message}`);
      });
      await writeOut(`${manifestDigest(bytes)}\n`);
    });
}
