import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Command, Option } from 'commander';
import { SkiffError } from '../core/errors.js';
import { writeOut } from './common.js';

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

interface BuildFlags {
  file?: string[];
  tag?: string[];
  buildArg?: string[];
  buildArgFile?: string[];
  target?: string;
  platform?: string;
  ignorefile?: string;
  dryRun?: boolean;
}

/** `--build-arg K=V` or `--build-arg K` (value from the environment, as podman does). */
function parseBuildArgs(list: string[], files: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = { ...files };
  for (const a of list) {
    const eq = a.indexOf('=');
    if (eq === 0) throw new SkiffError('ERR_USAGE', `--build-arg ${JSON.stringify(a)}: missing name`);
    if (eq < 0) {
      const v = process.env[a];
      if (v !== undefined) out[a] = v;
    } else out[a.slice(0, eq)] = a.slice(eq + 1);
  }
  return out;
}

async function readBuildArgFiles(files: string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const f of files) {
    const text = await fsp.readFile(f, 'utf8').catch((e: Error) => {
      throw new SkiffError('ERR_USAGE', `--build-arg-file ${f}: ${e.message}`);
    });
    for (const [n, line] of text.split('\n').entries()) {
      const l = line.trim();
      if (!l || l.startsWith('#')) continue;
      const eq = l.indexOf('=');
      if (eq <= 0) throw new SkiffError('ERR_USAGE', `${f}:${n + 1}: expected KEY=VALUE`);
      out[l.slice(0, eq)] = l.slice(eq + 1);
    }
  }
  return out;
}

/** The Containerfile: -f (relative to the working directory), else Containerfile, then Dockerfile, in the context. */
async function locateContainerfile(context: string, given?: string): Promise<string> {
  if (given) {
    if (!(await fsp.stat(given).then((s) => s.isFile(), () => false))) throw new SkiffError('ERR_USAGE', `${given}: no such Containerfile`);
    return given;
  }
  for (const n of ['Containerfile', 'Dockerfile']) {
    const p = path.join(context, n);
    if (await fsp.stat(p).then((s) => s.isFile(), () => false)) return p;
  }
  throw new SkiffError('ERR_USAGE', `no Containerfile or Dockerfile in ${context} (use -f)`);
}

/** `skiff build`: podman build's flags. Today it parses, validates and plans; --dry-run prints the plan as JSON. */
export function buildCommand(program: Command): void {
  program
    .command('build')
    .alias('bud')
    .description('Build an image from a Containerfile (today: validate and plan; --dry-run prints the plan)')
    .argument('[context]', 'build context directory', '.')
    .option('-f, --file <file>', 'Containerfile (repeatable: the first is used)', collect)
    .option('-t, --tag <name>', 'name for the image (repeatable)', collect)
    .option('--build-arg <arg>', 'KEY=VALUE, or KEY to take it from the environment (repeatable)', collect)
    .option('--build-arg-file <file>', 'file of KEY=VALUE lines (repeatable)', collect)
    .option('--target <stage>', 'build up to this stage')
    .option('--platform <os/arch[/variant]>', 'target platform')
    .option('--ignorefile <file>', 'ignore file instead of .containerignore/.dockerignore')
    .addOption(new Option('--format <format>', 'image format').choices(['oci', 'docker']))
    .option('--layers [bool]', 'cache intermediate layers (default true)')
    .option('--no-cache', 'do not use cached layers')
    .addOption(new Option('--pull [policy]', 'always, missing, never, newer').choices(['always', 'missing', 'never', 'newer', 'true', 'false']))
    .option('--tls-verify [bool]', 'verify registry TLS')
    .option('--creds <user:password>', 'registry credentials')
    .option('--authfile <file>', 'auth.json')
    .option('--squash', 'squash the new layers into one')
    .option('--iidfile <file>', 'write the image ID here')
    .option('--label <k=v>', 'image label (repeatable)', collect)
    .option('--annotation <k=v>', 'manifest annotation (repeatable)', collect)
    .option('-o, --output <spec>', 'type=local|tar|oci,dest=…')
    .option('--secret <spec>', 'id=…,src=… (repeatable)', collect)
    .option('--jobs <n>', 'stages built in parallel')
    .option('--timestamp <seconds>', 'created time of new layers and the image')
    .option('--network <mode>', 'host or none for RUN')
    .option('--isolation <kind>', 'oci or chroot')
    .option('--runtime <path>', 'OCI runtime')
    .option('-q, --quiet', 'only print the image ID')
    .option('--dry-run', 'validate and print the resolved plan as JSON; build nothing')
    .action(async (context: string, flags: BuildFlags) => {
      const file = await locateContainerfile(context, flags.file?.[0]);
      const st = await fsp.stat(context).catch(() => undefined);
      if (!st?.isDirectory()) throw new SkiffError('ERR_USAGE', `build context ${context}: no such directory`);
      const buildArgs = parseBuildArgs(flags.buildArg ?? [], await readBuildArgFiles(flags.buildArgFile ?? []));
      const text = await fsp.readFile(file, 'utf8');
      // The front end (dockerfile-ast and friends) is loaded only when building.
      const { planContainerfile } = await import('../build/containerfile/plan.js');
      const { findIgnoreFile } = await import('../build/containerfile/ignore.js');
      const plan = planContainerfile(text, {
        file,
        buildArgs,
        ...(flags.target ? { target: flags.target } : {}),
        ...(flags.platform ? { platform: flags.platform } : {}),
      });
      if (flags.ignorefile && !(await fsp.stat(flags.ignorefile).then(() => true, () => false))) throw new SkiffError('ERR_USAGE', `--ignorefile ${flags.ignorefile}: no such file`);
      const ignorefile = await findIgnoreFile(context, file, flags.ignorefile);
      for (const a of plan.unusedBuildArgs) process.stderr.write(`skiff: warning: build argument ${a} was not consumed by any ARG\n`);
      if (flags.dryRun) {
        await writeOut(`${JSON.stringify({ ...plan, context: path.resolve(context), ignorefile: ignorefile ?? null, tags: flags.tag ?? [] }, null, 2)}\n`);
        return;
      }
      throw new SkiffError('ERR_UNSUPPORTED', 'running builds is not implemented yet (the rootless builder is the next issue); --dry-run validates and prints the plan');
    });
}
