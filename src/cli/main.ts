import { createRequire } from 'node:module';
import { Command, CommanderError } from 'commander';
import { causeChain, exitCodeFor, SkiffError } from '../core/errors.js';
import { enableGcPacing } from '../core/gc-pace.js';
import { setRegistriesDir } from '../config/registries-d.js';

type Adder = (program: Command) => void;

/**
 * Each command's module, loaded only when that command runs (start-up time matters for a CLI used in scripts and
 * CI; `--help` without a command loads them all).
 */
const COMMANDS: Record<string, () => Promise<Adder[]>> = {
  build: async () => [(await import('./build.js')).buildCommand],
  copy: async () => [(await import('./copy.js')).copyCommand],
  images: async () => [(await import('./images.js')).imagesCommand],
  inspect: async () => [(await import('./inspect.js')).inspectCommand],
  'manifest-digest': async () => [(await import('./manifest-digest.js')).manifestDigestCommand],
  sync: async () => [(await import('./sync.js')).syncCommand],
  registry: async () => {
    const m = await import('./registry.js');
    return [m.listTagsCommand, m.deleteCommand, m.loginCommand, m.logoutCommand];
  },
  storage: async () => [(await import('./storage.js')).storageCommands],
  manifest: async () => [(await import('./manifest.js')).manifestCommands],
  sign: async () => [(await import('./sign.js')).signCommands],
};
const MODULE_OF: Record<string, string> = {
  bud: 'build', 'list-tags': 'registry', delete: 'registry', login: 'registry', logout: 'registry',
  pull: 'storage', push: 'storage', tag: 'storage', rmi: 'storage', save: 'storage', load: 'storage',
  'standalone-sign': 'sign', 'standalone-verify': 'sign',
};
const ORDER = ['build', 'copy', 'images', 'storage', 'manifest', 'inspect', 'registry', 'sync', 'manifest-digest', 'sign'];
const VALUE_OPTIONS = new Set(['--override-os', '--override-arch', '--override-variant', '--root', '--runroot', '--storage-driver', '--registries.d']);

/** The command word in argv (after global options), or undefined. */
function commandWord(argv: string[]): string | undefined {
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i]!;
    if (VALUE_OPTIONS.has(a)) i++;
    else if (!a.startsWith('-')) return a;
  }
  return undefined;
}

const pkg = createRequire(import.meta.url)('../../../package.json') as { version: string };

export async function makeProgram(argv: string[] = process.argv): Promise<Command> {
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
    .option('--registries.d <dir>', 'registries.d directory: where registry images\' signatures are kept (lookaside; skopeo\'s --registries.d)')
    // A usage error is one line like every other error, and a pointer to the help (podman's way), rather than the
    // whole help text after it.
    .configureOutput({ outputError: (str, write) => write(`skiff: ${str.replace(/^error: /, '')}`) })
    .showHelpAfterError("(run 'skiff --help' for usage)")
    .exitOverride()
    .hook('preAction', (p) => setRegistriesDir((p.opts() as { 'registries.d'?: string })['registries.d']));
  const word = commandWord(argv);
  const mod = word ? (MODULE_OF[word] ?? word) : undefined;
  const versionOnly = !word && (argv.includes('--version') || argv.includes('-v'));
  const modules = mod && COMMANDS[mod] ? [mod] : versionOnly ? [] : ORDER;
  for (const m of modules) for (const add of await COMMANDS[m]!()) add(program);
  for (const c of program.commands) c.showHelpAfterError(`(run 'skiff ${c.name()} --help' for usage)`);
  return program;
}

/**
 * podman build's `-v` is --volume, while skiff's own `-v` is --version, and commander reads the program's options
 * after a subcommand too: after the build command word, `-v` is passed on as --volume.
 */
function buildVolumeShorthand(argv: string[]): string[] {
  const word = commandWord(argv);
  if (word !== 'build' && word !== 'bud') return argv;
  const at = argv.indexOf(word, 2);
  return argv.map((a, i) => (i > at && a === '-v' ? '--volume' : a));
}

/**
 * podman's `image` group also has the image commands under other names: `image ls` (`list`) is `images`, `image rm`
 * is `rmi`, and `image build`, `pull`, `push`, `tag`, `save`, `load` are the commands of those names. They run as
 * those commands, with the same flags.
 */
const IMAGE_ALIASES: Record<string, string> = { ls: 'images', list: 'images', rm: 'rmi', build: 'build', pull: 'pull', push: 'push', tag: 'tag', save: 'save', load: 'load' };

function imageAliases(argv: string[]): string[] {
  if (commandWord(argv) !== 'image') return argv;
  const at = argv.indexOf('image', 2);
  const sub = argv[at + 1];
  const to = sub !== undefined ? IMAGE_ALIASES[sub] : undefined;
  return to ? [...argv.slice(0, at), to, ...argv.slice(at + 2)] : argv;
}

export async function main(argv: string[]): Promise<number> {
  enableGcPacing();
  argv = buildVolumeShorthand(imageAliases(argv));
  const program = await makeProgram(argv);
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 125 === e.exitCode ? 125 : 1;
    const debug = process.argv.includes('--debug');
    const msg = e instanceof SkiffError ? e.message : (e as Error)?.message ?? String(e);
    // (An error without a message is only an exit status: `manifest exists` answering no, as podman's does.)
    if (msg) process.stderr.write(`skiff: ${msg}\n`);
    if (debug) for (const line of causeChain(e)) process.stderr.write(`  ${line}\n`);
    return exitCodeFor(e);
  }
}
