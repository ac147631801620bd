import { createRequire } from 'node:module';
import { Command, CommanderError } from 'commander';
import { causeChain, exitCodeFor, SkiffError } from '../core/errors.js';
import { copyCommand } from './copy.js';
import { inspectCommand } from './inspect.js';
import { manifestDigestCommand } from './manifest-digest.js';
import { syncCommand } from './sync.js';
import { buildCommand } from './build.js';
import { imagesCommand } from './images.js';
import { storageCommands } from './storage.js';
import { deleteCommand, listTagsCommand, loginCommand, logoutCommand } from './registry.js';

const pkg = createRequire(import.meta.url)('../../../package.json') as { version: string };

export function makeProgram(): Command {
  const program = new Command('skiff')
    .description('Build, copy and inspect container images: daemonless and rootless')
    .version(`skiff version ${pkg.version}`, '-v, --version', 'print the version')
    .option('--debug', 'print the cause chain of errors')
    .option('--override-os <os>', 'use this OS instead of the host\'s when choosing an image')
    .option('--override-arch <arch>', 'use this architecture instead of the host\'s when choosing an image')
    .option('--override-variant <variant>', 'use this architecture variant when choosing an image')
    .option('--root <dir>', 'containers-storage root (podman\'s --root)')
    .option('--runroot <dir>', 'containers-storage run root (podman\'s --runroot)')
    .option('--storage-driver <driver>', 'containers-storage driver (overlay)')
    .showHelpAfterError()
    .exitOverride();
  for (const add of [buildCommand, copyCommand, imagesCommand, storageCommands, inspectCommand, listTagsCommand, deleteCommand, loginCommand, logoutCommand, syncCommand, manifestDigestCommand]) add(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = makeProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 125 === e.exitCode ? 125 : 1;
    const debug = process.argv.includes('--debug');
    const msg = e instanceof SkiffError ? e.message : (e as Error)?.message ?? String(e);
    process.stderr.write(`skiff: ${msg}\n`);
    if (debug) for (const line of causeChain(e)) process.stderr.write(`  ${line}\n`);
    return exitCodeFor(e);
  }
}
