import { promises as fsp } from 'node:fs';
import { Command, Option } from 'commander';
import { SkiffError } from '../core/errors.js';
import { parseDockerReference } from '../core/reference.js';
import { copyImage, type CopyOptions } from '../copy/copy.js';
import { addRegistryFlags, addRetryFlags, openDestination, openSource, parseIntOption, platformFrom, registryOptions, storageFrom, type GlobalOptions } from './common.js';
import { makeProgress } from './progress.js';

interface CopyFlags {
  all?: boolean;
  destOciAcceptUncompressedLayers?: boolean;
  destPrecomputeDigests?: boolean;
  additionalTag?: string[];
  multiArch?: 'system' | 'all' | 'index-only';
  format?: string;
  destCompressFormat?: string;
  destCompressLevel?: number;
  destDecompress?: boolean;
  destCompress?: boolean;
  preserveDigests?: boolean;
  removeSignatures?: boolean;
  digestfile?: string;
  signBy?: string;
  signIdentity?: string;
  signPassphraseFile?: string;
  quiet?: boolean;
  imageParallelCopies?: number;
  retryTimes?: number;
  retryDelay?: number;
}

/** `skiff copy [flags] SRC DST`, skopeo copy's flags. */
export function copyCommand(program: Command): void {
  const cmd = program
    .command('copy')
    .description('Copy an image (or with --all a whole index) from one location to another')
    .argument('<source>', 'source image reference, TRANSPORT:SPEC')
    .argument('<destination>', 'destination image reference, TRANSPORT:SPEC')
    .option('-a, --all', 'copy all images of a manifest list/index, not only the host platform\'s')
    .addOption(new Option('--multi-arch <which>', 'system (default), all, or index-only (unsupported)').choices(['system', 'all', 'index-only']))
    .addOption(new Option('-f, --format <format>', 'manifest type of the destination: oci or v2s2').choices(['oci', 'v2s2']))
    .addOption(new Option('--dest-compress-format <format>', 'compress layers with gzip or zstd').choices(['gzip', 'zstd']))
    .option('--dest-compress-level <level>', 'compression level for --dest-compress-format', parseIntOption('--dest-compress-level'))
    .option('--dest-decompress', 'store layers uncompressed')
    .option('--dest-compress', 'compress layers (the default where the destination wants it)')
    .option('--preserve-digests', 'fail rather than change any digest')
    .option('--remove-signatures', 'do not copy the source\'s signatures (copied by default where the destination keeps them: dir:, containers-storage:, docker:// lookaside)')
    .option('--dest-precompute-digests', 'hash recompressed layers to a temp file first, so ones a registry destination has are not uploaded')
    .option('--dest-oci-accept-uncompressed-layers', 'keep uncompressed layers uncompressed in an oci: or oci-archive: destination')
    .option('--src-shared-blob-dir <dir>', 'oci: source: its blobs are in this directory (sha256/<hex>), shared by several layouts')
    .option('--dest-shared-blob-dir <dir>', 'oci: destination: write blobs into this directory (sha256/<hex>) instead of the layout\'s blobs/')
    .option('--additional-tag <name:tag>', 'a further name for the image in a docker-archive or docker-daemon destination (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--digestfile <file>', 'write the digest of the copied manifest to this file')
    .option('--sign-by <fingerprint>', 'sign the copied manifest with this GnuPG key (simple signing; dir:, containers-storage: and docker:// lookaside destinations)')
    .option('--sign-identity <reference>', 'the Docker reference the signature vouches for (needed where the destination names none)')
    .option('--sign-passphrase-file <file>', 'the signing key\'s passphrase')
    .option('-q, --quiet', 'no progress output')
    .option('--image-parallel-copies <n>', 'blobs copied at once (default 6)', parseIntOption('--image-parallel-copies'));
  addRetryFlags(cmd);
  addRegistryFlags(cmd, 'src');
  addRegistryFlags(cmd, 'dest');
  cmd
    .action(async (source: string, destination: string, flags: CopyFlags, cmd: Command) => {
      const g = cmd.optsWithGlobals() as GlobalOptions;
      if (flags.multiArch === 'index-only') throw new SkiffError('ERR_UNSUPPORTED', '--multi-arch index-only is not supported yet');
      if (flags.destDecompress && flags.destCompressFormat) throw new SkiffError('ERR_USAGE', '--dest-decompress and --dest-compress-format exclude each other');
      const additionalTags = (flags.additionalTag ?? []).map((t) => {
        const r = parseDockerReference(t);
        if (!r.tag || r.digest) throw new SkiffError('ERR_USAGE', `--additional-tag ${JSON.stringify(t)}: a name with a tag (NAME:TAG) is needed`);
        return r;
      });
      const controller = new AbortController();
      const onSignal = (): void => {
        if (controller.signal.aborted) process.exit(130);
        controller.abort();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      const platform = platformFrom(g);
      const common = { signal: controller.signal, platform, storage: storageFrom(g) };
      const all = flags as unknown as Record<string, unknown>;
      const src = await openSource(source, { ...common, ...registryOptions(all, 'src') });
      try {
        const dest = await openDestination(destination, { ...common, ...registryOptions(all, 'dest'), ...(additionalTags.length ? { additionalTags } : {}), ...(flags.destOciAcceptUncompressedLayers ? { acceptUncompressedLayers: true } : {}), ...(flags.destPrecomputeDigests ? { precomputeDigests: true } : {}) });
        try {
          const progress = makeProgress(!!flags.quiet);
          const o: CopyOptions = { signal: controller.signal, platform, all: !!flags.all || flags.multiArch === 'all' };
          if (flags.format) o.format = flags.format as 'oci' | 'v2s2';
          if (flags.destCompressFormat) o.compressFormat = flags.destCompressFormat as 'gzip' | 'zstd';
          if (flags.destCompressLevel !== undefined) o.compressLevel = flags.destCompressLevel;
          if (flags.destCompressLevel !== undefined && !flags.destCompressFormat) o.compressFormat = 'gzip';
          if (flags.destDecompress) o.decompress = true;
          if (flags.preserveDigests) o.preserveDigests = true;
          if (flags.removeSignatures) o.removeSignatures = true;
          if (flags.imageParallelCopies !== undefined) o.parallel = flags.imageParallelCopies;
          if (flags.retryTimes !== undefined) o.retryTimes = flags.retryTimes;
          if (flags.retryDelay !== undefined) o.retryDelayMs = flags.retryDelay;
          if (progress) o.progress = progress;
          if (flags.signBy) {
            if (!dest.putSignatures) throw new SkiffError('ERR_UNSUPPORTED', `--sign-by: signatures cannot be stored in ${dest.ref.transport}: destinations (dir:, containers-storage: and docker:// keep them)`);
            const identity = flags.signIdentity ?? (destination.startsWith('docker://') ? destination.slice('docker://'.length) : undefined);
            if (!identity) throw new SkiffError('ERR_USAGE', `--sign-by: ${destination} names no Docker reference for the signature to vouch for: give --sign-identity`);
            // (The key is checked before anything is copied.)
            o.sign = { identity, sign: await (await import('./sign.js')).signerFor(flags.signBy, flags.signPassphraseFile) };
          }
          const result = await copyImage(src, dest, o);
          if (flags.digestfile) await fsp.writeFile(flags.digestfile, result.digest);
        } finally {
          await dest.close();
        }
      } finally {
        await src.close();
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
}
