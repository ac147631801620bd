import { Command } from 'commander';
import { readConfig, resolveImage, inspectImage } from '../core/inspect.js';
import { SkiffError } from '../core/errors.js';
import { DockerRef } from '../../transports/docker/index.js';
import { addRegistryFlags, addRetryFlags, openSource, platformFrom, registryOptions, storageFrom, writeOut, type GlobalOptions } from './common.js';

interface InspectFlags {
  raw?: boolean;
  config?: boolean;
  tags?: boolean;
  format?: string;
}

/** `skiff inspect [--raw] [--config] REF`, skopeo inspect's output. */
export function inspectCommand(program: Command): void {
  const cmd = program
    .command('inspect')
    .description('Show an image\'s manifest digest, config and layers (skopeo inspect\'s output)')
    .argument('<image>', 'image reference, TRANSPORT:SPEC')
    .option('--raw', 'print the manifest (or with --config the config) bytes exactly as stored')
    .option('--config', 'print the image config')
    .option('-n, --no-tags', 'do not list the repository\'s tags (docker://)')
    .option('-f, --format <template>', 'Go template output (not supported; use --raw and jq)');
  addRetryFlags(cmd);
  addRegistryFlags(cmd, '');
  cmd.action(async (image: string, flags: InspectFlags, c: Command) => {
    const g = c.optsWithGlobals() as GlobalOptions;
    if (flags.format) throw new SkiffError('ERR_UNSUPPORTED', '--format templates are not supported; pipe the JSON to jq');
    const platform = platformFrom(g);
    const src = await openSource(image, { platform, storage: storageFrom(g), ...registryOptions(flags as unknown as Record<string, unknown>, '') });
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
      // Like skopeo: registries get Name and the repository's tags; local transports neither.
      const docker = src.ref instanceof DockerRef ? src.ref : undefined;
      const out = await inspectImage(src, {
        platform,
        ...(docker ? { name: docker.repository } : {}),
        repoTags: docker && flags.tags !== false && src.repoTags ? await src.repoTags() : [],
      });
      await writeOut(`${JSON.stringify(out, null, 4)}\n`);
    } finally {
      await src.close();
    }
  });
}
