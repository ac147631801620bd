import { Command } from 'commander';
import { readConfig, resolveImage, inspectImage } from '../core/inspect.js';
import { SkiffError } from '../core/errors.js';
import { openSource, parseIntOption, platformFrom, writeOut, type GlobalOptions } from './common.js';

interface InspectFlags {
  raw?: boolean;
  config?: boolean;
  noTags?: boolean;
  format?: string;
  tlsVerify?: boolean;
  creds?: string;
  authfile?: string;
  retryTimes?: number;
}

/** `skiff inspect [--raw] [--config] REF`, skopeo inspect's output. */
export function inspectCommand(program: Command): void {
  program
    .command('inspect')
    .description('Show an image\'s manifest digest, config and layers (skopeo inspect\'s output)')
    .argument('<image>', 'image reference, TRANSPORT:SPEC')
    .option('--raw', 'print the manifest (or with --config the config) bytes exactly as stored')
    .option('--config', 'print the image config')
    .option('-n, --no-tags', 'do not list the repository\'s tags (docker://)')
    .option('-f, --format <template>', 'Go template output (not supported; use --raw and jq)')
    .option('--tls-verify [bool]', 'require HTTPS and verify certificates', (v) => v !== 'false')
    .option('--creds <user:pass>', 'registry credentials')
    .option('--authfile <file>', 'auth.json to use')
    .option('--retry-times <n>', 'retries of a failed registry request', parseIntOption('--retry-times'))
    .action(async (image: string, flags: InspectFlags, cmd: Command) => {
      const g = cmd.optsWithGlobals() as GlobalOptions;
      if (flags.format) throw new SkiffError('ERR_UNSUPPORTED', '--format templates are not supported; pipe the JSON to jq');
      const platform = platformFrom(g);
      const src = await openSource(image, { platform, ...(flags.authfile ? { authfile: flags.authfile } : {}), ...(flags.creds ? { creds: flags.creds } : {}), ...(flags.tlsVerify !== undefined ? { tlsVerify: flags.tlsVerify } : {}) });
      try {
        if (flags.raw && !flags.config) {
          await writeOut((await src.getManifest()).bytes);
          return;
        }
        if (flags.config) {
          const { manifest } = await resolveImage(src, platform);
          const { bytes } = await readConfig(src, manifest);
          await writeOut(flags.raw ? bytes : `${JSON.stringify(JSON.parse(bytes.toString()), null, 4)}\n`);
          return;
        }
        const out = await inspectImage(src, { platform });
        await writeOut(`${JSON.stringify(out, null, 4)}\n`);
      } finally {
        await src.close();
      }
    });
}
