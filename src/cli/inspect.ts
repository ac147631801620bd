import { Command } from 'commander';
import { inspectedManifest, readConfig, resolveImage, inspectImage } from '../core/inspect.js';
import { SkiffError } from '../core/errors.js';
import { compileTemplate, GoNil, GoTime, goJSON } from './template.js';
import { rfc3339, sortConfigMaps, type ContainerConfig } from '../core/config.js';
import { DockerRef } from '../../transports/docker/index.js';
import { addRegistryFlags, addRetryFlags, openSource, platformFrom, registryOptions, storageFrom, writeOut, type GlobalOptions } from './common.js';

interface InspectFlags {
  raw?: boolean;
  config?: boolean;
  tags?: boolean;
  format?: string;
}

/**
 * What a --format template sees: the output's fields as skopeo's Go struct has them (Name and Variant are there,
 * empty, where the JSON leaves them out; Created prints as a Go time).
 */
function templateData(o: Record<string, unknown>, inspect: boolean): Record<string, unknown> {
  const created = typeof o.Created === 'string' ? { Created: new GoTime(o.Created) } : {};
  // (skopeo's Labels and Env are typed: when absent they print as map[] and [], not <nil>.)
  const nils = { ...(o.Labels === null ? { Labels: new GoNil('map') } : {}), ...(o.Env === null ? { Env: new GoNil('slice') } : {}) };
  return inspect ? { Name: '', Variant: '', ...o, ...created, ...nils } : { ...o, ...(typeof o.created === 'string' ? { created: new GoTime(o.created) } : {}) };
}

/** `skiff inspect [--raw] [--config] REF`, skopeo inspect's output. */
export function inspectCommand(program: Command): void {
  const cmd = program
    .command('inspect')
    .description('Show an image\'s manifest digest, config and layers (skopeo inspect\'s output)')
    .argument('<image>', 'image reference, TRANSPORT:SPEC')
    .option('--raw', 'print the manifest (or with --config the config) bytes exactly as stored')
    .option('--shared-blob-dir <dir>', 'oci: its blobs are in this directory (sha256/<hex>), shared by several layouts')
    .option('--config', 'print the image config')
    .option('-n, --no-tags', 'do not list the repository\'s tags (docker://)')
    .option('-f, --format <template>', 'Go template of the output, e.g. {{.Digest}} or {{if eq .Os "linux"}}{{len .Layers}}{{end}}');
  addRetryFlags(cmd);
  addRegistryFlags(cmd, '');
  cmd.action(async (image: string, flags: InspectFlags, c: Command) => {
    const g = c.optsWithGlobals() as GlobalOptions;
    if (flags.format !== undefined && flags.raw) throw new SkiffError('ERR_USAGE', '--format and --raw: the raw bytes have no fields to format');
    // (Compiled before anything is fetched: a mistake in it costs no request.)
    const render = flags.format !== undefined ? compileTemplate(flags.format) : undefined;
    const print = (o: Record<string, unknown>): Promise<void> =>
      writeOut(render ? `${render(templateData(o, !flags.config))}\n` : `${goJSON(o, 4)}\n`);
    const platform = platformFrom(g);
    const src = await openSource(image, { platform, storage: storageFrom(g), ...registryOptions(flags as unknown as Record<string, unknown>, '') });
    try {
      if (flags.raw && !flags.config) {
        await writeOut((await inspectedManifest(src)).bytes);
        return;
      }
      if (flags.config) {
        const { manifest } = await resolveImage(src, platform);
        const { bytes } = await readConfig(src, manifest);
        if (flags.raw) await writeOut(bytes);
        else {
          // (skopeo prints the config as Go reads and writes it again: its times in Go's RFC 3339.)
          const cfg = JSON.parse(bytes.toString()) as Record<string, unknown> & { created?: unknown; history?: { created?: unknown }[] };
          if (typeof cfg.created === 'string') cfg.created = rfc3339(cfg.created);
          for (const h of Array.isArray(cfg.history) ? cfg.history : []) if (typeof h?.created === 'string') h.created = rfc3339(h.created);
          await print(sortConfigMaps(cfg as typeof cfg & { config?: ContainerConfig }));
        }
        return;
      }
      // Like skopeo: registries get Name and the repository's tags; local references Name only, when they name one.
      const docker = src.ref instanceof DockerRef ? src.ref : undefined;
      const out = await inspectImage(src, {
        platform,
        ...(docker ? { name: docker.repository } : src.ref.dockerName ? { name: src.ref.dockerName } : {}),
        repoTags: docker && flags.tags !== false && src.repoTags ? await src.repoTags() : [],
      });
      await print(out as unknown as Record<string, unknown>);
    } finally {
      await src.close();
    }
  });
}
