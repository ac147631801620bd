/** podman's image commands over the containers-storage store: pull, push, tag, rmi, save, load. */
import { createReadStream, promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Command, Option } from 'commander';
import { SkiffError } from '../core/errors.js';
import { FileWriter, readAll } from '../core/fs.js';
import type { DestinationOptions, ImageSource, SourceOptions } from '../core/image.js';
import { formatDockerReference, localImageName, parseDockerReference, withDefaultTag, type DockerReference } from '../core/reference.js';
import { copyImage, type CopyOptions } from '../copy/copy.js';
import { isShortName, loadRegistriesConf, shortNameCandidates } from '../config/registries.js';
import type { Store } from '../store/store.js';
import { StoreWriter } from '../store/writer.js';
import { addRegistryFlags, addRetryFlags, hasTransport, podmanRegistryOptions, openDestination, openSource, type Location, platformFrom, storageFrom, storeOf, writeOut, type GlobalOptions } from './common.js';
import { addHistoryCommand, addImageInspectCommand, imageFilter } from './images.js';
import { makeProgress } from './progress.js';
import { parsePlatform } from '../core/platform.js';

export async function copyBetween(src: Location, dst: Location, o: SourceOptions, copy: CopyOptions, destOpts: DestinationOptions = o): Promise<string> {
  const s = await openSource(src, o);
  try {
    const d = await openDestination(dst, destOpts);
    try {
      return (await copyImage(s, d, copy)).digest;
    } finally {
      await d.close();
    }
  } finally {
    await s.close();
  }
}

/** The normalised name the store records: `busybox` -> `docker.io/library/busybox:latest`. */
export function storeName(name: string): string {
  return formatDockerReference(withDefaultTag(parseDockerReference(name)));
}

/** Run `fn` with a file path in a new private temp dir, removed afterwards whatever happens. */
async function viaTempFile<T>(prefix: string, fn: (file: string) => Promise<T>): Promise<T> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), prefix));
  try {
    return await fn(path.join(dir, 'archive.tar'));
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

/** storeName, or undefined for what is not a name (an image ID). */
function tryStoreName(name: string): string | undefined {
  try {
    return storeName(name);
  } catch {
    return undefined;
  }
}

async function imageId(store: Store, name: string): Promise<string> {
  const img = await store.findImage(name);
  if (!img) throw new SkiffError('ERR_IMAGE_NOT_FOUND', `${name}: image not known`);
  return img.id;
}

/** The references an image name may mean: itself, or for a short name the registries.conf candidates in order. */
async function pullCandidates(image: string, interactive: boolean): Promise<string[]> {
  const raw = image.replace(/^docker:\/\//, '');
  return image.startsWith('docker://') || !isShortName(raw) ? [raw] : shortNameCandidates(raw, await loadRegistriesConf(), interactive);
}

/**
 * `attempt` on each candidate reference in turn until one works: the next is tried only where this one is not
 * there or not reachable (another failure is the answer); the last failure is thrown.
 */
async function firstCandidate<T>(candidates: string[], attempt: (cand: string) => Promise<T>): Promise<T> {
  let last: unknown;
  for (const cand of candidates) {
    try {
      return await attempt(cand);
    } catch (e) {
      last = e;
      if (candidates.length === 1 || (e instanceof SkiffError && e.code !== 'ERR_MANIFEST_UNKNOWN' && e.code !== 'ERR_IMAGE_NOT_FOUND' && e.code !== 'ERR_NETWORK')) throw e;
    }
  }
  throw last;
}

/**
 * Pull `image` into the store: short names through registries.conf (each candidate in turn), `docker://` and
 * qualified names as they are. Resolves with the image ID.
 */
export async function pullIntoStore(image: string, o: SourceOptions, g: GlobalOptions, quiet: boolean, removeSignatures = false): Promise<string> {
  const candidates = await pullCandidates(image, !!process.stdin.isTTY && !!process.stderr.isTTY);
  const progress = makeProgress(quiet);
  return firstCandidate(candidates, async (cand) => {
    if (!quiet) process.stderr.write(`Trying to pull ${cand}...\n`);
    await copyBetween(`docker://${cand}`, `containers-storage:${storeName(cand)}`, o, { platform: o.platform ?? platformFrom(g), ...(progress ? { progress } : {}), ...(removeSignatures ? { removeSignatures } : {}) });
    return imageId(await storeOf(g), storeName(cand));
  });
}

/**
 * The platforms a registry image is available for (`os/arch[/variant]`): each of its index's (attestation
 * entries, os `unknown`, left out), or its one image's. Short names are resolved as for pull.
 */
export async function imagePlatforms(image: string, o: SourceOptions): Promise<string[]> {
  return firstCandidate(await pullCandidates(image, false), async (cand) => {
    const src = await openSource(`docker://${cand}`, o);
    try {
      const { parseManifest } = await import('../core/manifest.js');
      const top = await src.getManifest();
      const m = parseManifest(top.bytes, top.mediaType);
      const fmt = (p: { os?: string; architecture?: string; variant?: string }): string => `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
      if (m.kind === 'index') return [...new Set(m.manifests.filter((d) => d.platform?.os && d.platform.architecture && d.platform.os !== 'unknown').map((d) => fmt(d.platform!)))];
      const cfg = JSON.parse((await readAll(await src.getBlob(m.config))).toString()) as { os?: string; architecture?: string; variant?: string };
      return [fmt(cfg)];
    } finally {
      await src.close();
    }
  });
}

/**
 * podman's prune question, asked on standard error; the answer is a line of standard input (y or yes goes on).
 * No answer (end of input, nothing piped) is no: the command then does nothing, where podman fails with EOF.
 */
async function confirm(what: string): Promise<boolean> {
  const { createInterface } = await import('node:readline');
  process.stderr.write(`WARNING! ${what}\nAre you sure you want to continue? [y/N] `);
  const rl = createInterface({ input: process.stdin, terminal: false });
  const answer = await new Promise<string>((resolve) => {
    rl.once('line', resolve);
    rl.once('close', () => resolve(''));
  });
  rl.close();
  if (!process.stdin.isTTY) process.stderr.write('\n');
  return /^y(es)?$/i.test(answer.trim());
}

export function storageCommands(program: Command): void {
  const pull = program
    .command('pull')
    .description('Pull an image from a registry into local storage (short names resolved through registries.conf)')
    .argument('<image>', 'NAME[:TAG|@DIGEST] or docker://…')
    .option('-q, --quiet', 'no progress')
    .option('-a, --all-tags', 'every tagged image of the repository')
    .option('--disable-content-trust [bool]', 'accepted for docker\'s scripts (podman ignores it too)')
    .option('--platform <os/arch[/variant]>', 'the image of this platform from a multi-platform index')
    .option('--os <os>', 'the image of this OS (the host\'s by default)')
    .option('--arch <arch>', 'the image of this architecture (the host\'s by default)')
    .option('--variant <variant>', 'the image of this architecture variant')
    .option('--remove-signatures', 'do not keep the image\'s signatures (kept by default, as podman keeps them)');
  addRetryFlags(pull);
  addRegistryFlags(pull, '');
  pull.action(async (image: string, flags: Record<string, unknown>, c: Command) => {
    const g = c.optsWithGlobals() as GlobalOptions;
    // --platform, then --os/--arch/--variant over its parts, as podman pull takes them (the global --override-* too).
    const platform = platformFrom(g);
    if (typeof flags.platform === 'string') {
      const p = parsePlatform(flags.platform);
      if (!p) throw new SkiffError('ERR_USAGE', `--platform ${JSON.stringify(flags.platform)}: expected OS/ARCH[/VARIANT]`);
      Object.assign(platform, p);
    }
    if (typeof flags.os === 'string') platform.os = flags.os;
    if (typeof flags.arch === 'string') platform.architecture = flags.arch;
    if (typeof flags.variant === 'string') platform.variant = flags.variant;
    const o: SourceOptions = { ...podmanRegistryOptions(flags), platform, storage: storageFrom(g) };
    if (!flags.allTags) {
      await writeOut(`${await pullIntoStore(image, o, g, !!flags.quiet, !!flags.removeSignatures)}\n`);
      return;
    }
    // As podman: the repository without a tag; the first short-name candidate whose tags can be listed.
    const named = parseDockerReference(image.replace(/^docker:\/\//, ''));
    if (named.tag || named.digest) throw new SkiffError('ERR_USAGE', `--all-tags: give a repository without a tag or digest (${image})`);
    const candidates = await pullCandidates(image, false);
    let tags: string[] | undefined;
    let repo = '';
    let last: unknown;
    for (const cand of candidates) {
      try {
        const src = await openSource(`docker://${cand}:latest`, o);
        try {
          tags = src.repoTags ? await src.repoTags() : [];
        } finally {
          await src.close();
        }
        repo = cand;
        break;
      } catch (e) {
        last = e;
      }
    }
    if (!tags) throw last;
    if (!tags.length) throw new SkiffError('ERR_IMAGE_NOT_FOUND', `${repo}: the repository has no tags`);
    const ids: string[] = [];
    for (const tag of tags) {
      const id = await pullIntoStore(`docker://${repo}:${tag}`, o, g, !!flags.quiet, !!flags.removeSignatures);
      if (!ids.includes(id)) ids.push(id);
    }
    await writeOut(ids.map((id) => `${id}\n`).join(''));
  });

  const push = program
    .command('push')
    .description('Push an image from local storage')
    .argument('<image>', 'NAME or ID in local storage')
    .argument('[destination]', 'TRANSPORT:SPEC (default: docker://NAME)')
    .option('-q, --quiet', 'no progress')
    .addOption(new Option('-f, --format <format>', 'oci or v2s2').choices(['oci', 'v2s2']))
    .addOption(new Option('--compression-format <format>', 'compression of the pushed layers (default gzip)').choices(['gzip', 'zstd']))
    .option('--compression-level <n>', 'compression level')
    .option('--digestfile <file>', 'write the pushed manifest digest here')
    .option('--remove-signatures', 'push without the image\'s signatures (which a push that re-compresses layers would invalidate)')
    .option('--disable-content-trust [bool]', 'accepted for docker\'s scripts (podman ignores it too)')
    .option('--sign-by <fingerprint>', 'sign the pushed manifest with this GnuPG key (simple signing, for the docker:// destination\'s name; kept where registries.d says)')
    .option('--sign-passphrase-file <file>', 'the key\'s passphrase, from this file');
  addRetryFlags(push);
  addRegistryFlags(push, '');
  push.action(async (image: string, dest: string | undefined, flags: Record<string, unknown>, c: Command) => {
    const g = c.optsWithGlobals() as GlobalOptions;
    const o: SourceOptions = { ...podmanRegistryOptions(flags), storage: storageFrom(g) };
    const target = dest ?? `docker://${storeName(image)}`;
    const progress = makeProgress(!!flags.quiet);
    const level = flags.compressionLevel === undefined ? undefined : Number(flags.compressionLevel);
    if (level !== undefined && !Number.isInteger(level)) throw new SkiffError('ERR_USAGE', `--compression-level ${String(flags.compressionLevel)}: expected a whole number`);
    const copy: CopyOptions = {
      ...(flags.format ? { format: flags.format as 'oci' | 'v2s2' } : {}),
      ...(flags.compressionFormat ? { compressFormat: flags.compressionFormat as 'gzip' | 'zstd' } : {}),
      ...(level !== undefined ? { compressLevel: level } : {}),
      ...(progress ? { progress } : {}),
      ...(flags.removeSignatures ? { removeSignatures: true } : {}),
    };
    const destination = hasTransport(target) ? target : `docker://${target}`;
    if (flags.signBy !== undefined) {
      // (As podman push: the signature vouches for the registry name pushed to; the key is checked before pushing.)
      const sign = await (await import('./sign.js')).pushSigner(destination, flags.signBy, flags.signPassphraseFile);
      if (sign) copy.sign = sign;
    }
    const digest = await copyBetween(`containers-storage:${image}`, destination, o, copy);
    if (typeof flags.digestfile === 'string') await (await import('node:fs/promises')).writeFile(flags.digestfile, digest);
  });

  program
    .command('tag')
    .description('Add names to an image in local storage')
    .argument('<image>', 'NAME or ID')
    .argument('<names...>', 'new names')
    .action(async (image: string, names: string[], _f: unknown, c: Command) => {
      const g = c.optsWithGlobals() as GlobalOptions;
      const store = await storeOf(g);
      const w = new StoreWriter(store);
      await w.open();
      // (Short names go under localhost/, as podman tags them.)
      await w.tag(await imageId(store, image), names.map(localImageName));
    });

  const untag = async (image: string, names: string[], c: Command): Promise<void> => {
    const store = await storeOf(c.optsWithGlobals() as GlobalOptions);
    const w = new StoreWriter(store);
    await w.open();
    await w.untag(await imageId(store, image), names.length ? names.map(localImageName) : undefined);
  };
  // (podman's `untag` and `image untag`: one command in two places.)
  const addUntag = (parent: Command): void => {
    parent
      .command('untag')
      .description('Remove names from an image in local storage (every name when none are given); the image stays')
      .argument('<image>', 'NAME or ID')
      .argument('[names...]', 'names to remove')
      .action((image: string, names: string[], _f: unknown, c: Command) => untag(image, names, c));
  };
  addUntag(program);

  const image = program.command('image').description('Images in local storage: exists, history, inspect, prune, untag (podman image); also build, ls (list), load, pull, push, rm, save, tag: the commands images, rmi and the others of those names');
  addHistoryCommand(image);
  addImageInspectCommand(image);
  image
    .command('exists')
    .description('Exit 0 when the image is in local storage, 1 when it is not (nothing printed)')
    .argument('<image>', 'NAME or ID')
    .action(async (name: string, _f: unknown, c: Command) => {
      const store = await storeOf(c.optsWithGlobals() as GlobalOptions);
      if (!(await store.resolveImage(name))?.image) throw new SkiffError('ERR_IMAGE_NOT_FOUND', '', { exitCode: 1 });
    });
  addUntag(image);
  image
    .command('prune')
    .description('Remove dangling images (no name, no image built on them, no container); with -a every image no container uses. Prints the IDs removed')
    .option('-a, --all', 'remove every image no container uses, not only dangling ones')
    .option('-f, --force', 'do not ask for confirmation')
    .option('--filter <filter>', 'only images that also match: until=TIME (24h, an RFC 3339 time), label=KEY[=VALUE], label!=KEY[=VALUE], and the filters of images (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .action(async (flags: { all?: boolean; force?: boolean; filter?: string[] }, c: Command) => {
      const store = await storeOf(c.optsWithGlobals() as GlobalOptions);
      // (A bad filter is a usage error before anything is asked or removed.)
      if (flags.filter?.length) await imageFilter(store, flags.filter, new Set());
      if (!flags.force && !(await confirm(flags.all ? 'This command removes all images not used by containers.' : 'This command removes all dangling images.'))) return;
      const w = new StoreWriter(store);
      await w.open();
      const removed: string[] = [];
      // As podman: one pass. Dangling images have no name and no image built on them (a nameless parent is
      // intermediate and stays until its child goes); -a takes every image no container uses.
      const images = await store.images();
      const intermediate = flags.all && !flags.filter?.length ? new Set<string>() : await store.intermediateImages(images);
      const keep = flags.filter?.length ? await imageFilter(store, flags.filter, intermediate) : undefined;
      const inUse = new Set((await store.containers()).map((ct) => ct.image));
      for (const i of images) {
        if (inUse.has(i.id) || (!flags.all && (i.names?.length || intermediate.has(i.id)))) continue;
        if (keep && !(await keep(i))) continue;
        await w.removeImage(i.id);
        removed.push(i.id);
      }
      if (removed.length) await writeOut(removed.map((id) => `${id}\n`).join(''));
    });

  program
    .command('rmi')
    .description('Remove images from local storage (layers other images use are kept); exit status as podman: 1 when an image does not exist, 2 when a container uses one')
    .argument('[images...]', 'NAMEs or IDs')
    .option('-a, --all', 'remove every image')
    .option('-f, --force', 'remove an image named by ID with all its names; carry on past images that do not exist')
    .option('-i, --ignore', 'carry on past images that do not exist')
    .option('--no-prune', 'accepted for podman\'s scripts: skiff never removes parent images with an image')
    .action(async (images: string[], flags: { all?: boolean; force?: boolean; ignore?: boolean }, c: Command) => {
      const g = c.optsWithGlobals() as GlobalOptions;
      const store = await storeOf(g);
      if (flags.all && images.length) throw new SkiffError('ERR_USAGE', 'rmi: give images or --all, not both');
      if (!flags.all && !images.length) throw new SkiffError('ERR_USAGE', 'rmi: name at least one image (or --all)');
      const w = new StoreWriter(store);
      await w.open();
      const containers = await store.containers();
      // As podman: the other images are still removed; every error is reported, the first decides the exit status.
      const errors: SkiffError[] = [];
      const fail = (e: SkiffError): void => void errors.push(e);
      const targets = flags.all ? (await store.images()).map((i) => ({ name: i.id, all: true })) : images.map((name) => ({ name, all: false }));
      for (const t of targets) {
        const found = await store.resolveImage(t.name);
        const img = found?.image;
        if (!img) {
          if (!flags.force && !flags.ignore) fail(new SkiffError('ERR_IMAGE_NOT_FOUND', `${t.name}: image not known`, { exitCode: 1 }));
          continue;
        }
        const users = containers.filter((ct) => ct.image === img.id);
        if (users.length) {
          fail(new SkiffError('ERR_USAGE', `image ${img.id.slice(0, 12)} is in use by container ${users.map((u) => u.names?.[0] ?? u.id.slice(0, 12)).join(', ')}: remove ${users.length > 1 ? 'them' : 'it'} first (podman rm)`, { exitCode: 2 }));
          continue;
        }
        const byId = t.all || found!.name === undefined;
        const names = img.names ?? [];
        if (byId && names.length > 1 && !flags.force && !t.all) {
          fail(new SkiffError('ERR_USAGE', `unable to delete image ${img.id} by ID with more than one name (${names.join(', ')}): give a name, or --force`, { exitCode: 125 }));
          continue;
        }
        // A name takes only that name off (the image goes with its last); an ID takes the image and every name.
        const name = byId ? undefined : found!.name;
        const r = await w.removeImage(img.id, name);
        const out = (r.untagged ? [name!] : names).map((n) => `Untagged: ${n}\n`);
        if (!r.untagged) out.push(`Deleted: ${img.id}\n`);
        await writeOut(out.join(''));
      }
      const first = errors[0];
      if (first) throw new SkiffError(first.code, errors.map((e) => e.message).join('\nskiff: '), { exitCode: first.exitCode });
    });

  program
    .command('save')
    .description('Save images from local storage to an archive (docker-archive: further names are tags of the first image, or with -m further images)')
    .argument('<images...>', 'NAMEs or IDs')
    .option('-o, --output <file>', 'archive to write (default: standard output, unless it is a terminal)')
    .addOption(new Option('--format <format>', 'docker-archive, oci-archive, oci-dir (an OCI layout directory) or docker-dir (a dir: directory, Docker v2s2 manifest)').choices(['docker-archive', 'oci-archive', 'oci-dir', 'docker-dir']).default('docker-archive'))
    .option('-m, --multi-image-archive', 'docker-archive: each name is an image, all in one archive')
    .option('--compress', 'docker-dir: compress the layers (gzip; by default they are saved as stored, uncompressed)')
    .option('--uncompressed', 'oci-dir: keep the layers uncompressed (by default they are gzip-compressed)')
    .option('-q, --quiet', 'no progress')
    .action(async (images: string[], flags: SaveFlags, c: Command) => {
      if ((flags.format === 'oci-dir' || flags.format === 'docker-dir') && flags.output === undefined) {
        throw new SkiffError('ERR_USAGE', `--format ${flags.format} writes a directory: give it with -o DIR`);
      }
      if (flags.compress && flags.format !== 'docker-dir') throw new SkiffError('ERR_USAGE', '--compress is for --format docker-dir (the other formats decide their layers\' compression)');
      if (flags.uncompressed && flags.format !== 'oci-dir') throw new SkiffError('ERR_USAGE', '--uncompressed is for --format oci-dir');
      if (flags.output === undefined) {
        // To standard output, as podman: the archive is made whole first (a failure then sends nothing).
        if (process.stdout.isTTY) throw new SkiffError('ERR_USAGE', 'refusing to write an archive to a terminal: give -o FILE or redirect the output');
        await viaTempFile('skiff-save-', async (file) => {
          await saveImages(images, { ...flags, output: file }, c);
          await pipeline(createReadStream(file), process.stdout, { end: false });
        });
        return;
      }
      await saveImages(images, { ...flags, output: flags.output }, c);
    });

  program
    .command('load')
    .description('Load the images of a docker-archive or oci-archive into local storage')
    .option('-i, --input <file>', 'archive to read (default: standard input, unless it is a terminal)')
    .option('-q, --quiet', 'no progress')
    .action(async (flags: { input?: string; quiet?: boolean }, c: Command) => {
      if (flags.input === undefined) {
        // From standard input, as podman: archives are read in place, so the stream lands in a temp file first.
        if (process.stdin.isTTY) throw new SkiffError('ERR_USAGE', 'no archive: give -i FILE or pipe one to standard input');
        await viaTempFile('skiff-load-', async (file) => {
          await pipeline(process.stdin, new FileWriter(file));
          if ((await fsp.stat(file)).size === 0) throw new SkiffError('ERR_USAGE', 'no archive on standard input (nothing was piped in): give -i FILE or pipe one');
          await loadImages({ ...flags, input: file }, c);
        });
        return;
      }
      await loadImages({ ...flags, input: flags.input }, c);
    });

}

interface SaveFlags {
  output?: string;
  format: string;
  multiImageArchive?: boolean;
  compress?: boolean;
  uncompressed?: boolean;
  quiet?: boolean;
}

/** `save` into a file or directory: see the command. */
async function saveImages(images: string[], flags: SaveFlags & { output: string }, c: Command): Promise<void> {
  const g = c.optsWithGlobals() as GlobalOptions;
  const store = await storeOf(g);
  // As podman: without -m, the names after the first are further tags of the first image.
  const wanted = flags.multiImageArchive ? images : images.slice(0, 1);
  const found: { id: string; tags: DockerReference[] }[] = [];
  for (const image of wanted) {
    const img = await store.findImage(image);
    if (!img) throw new SkiffError('ERR_IMAGE_NOT_FOUND', `${image}: image not known`);
    // A name given is recorded as given (normalised); an image given by ID keeps the names the store has for it.
    const given = img.names?.find((n) => n === tryStoreName(image));
    const tags = given ? [given] : flags.multiImageArchive ? [] : (img.names ?? []).slice(0, 1);
    // Names of one image go in one entry, as podman writes them.
    const same = found.find((f) => f.id === img.id);
    const refs = tags.map((t) => withDefaultTag(parseDockerReference(t)));
    if (same) same.tags.push(...refs.filter((r) => !same.tags.some((x) => formatDockerReference(x) === formatDockerReference(r))));
    else found.push({ id: img.id, tags: refs });
  }
  if (!flags.multiImageArchive) for (const extra of images.slice(1)) found[0]!.tags.push(withDefaultTag(parseDockerReference(storeName(extra))));
  const progress = makeProgress(!!flags.quiet);
  // (An archive keeps no signatures: saving a signed image writes it without them, as podman save does.)
  const copy: CopyOptions = { removeSignatures: true, ...(progress ? { progress } : {}) };
  const o: SourceOptions = { storage: storageFrom(g) };
  if (flags.format !== 'docker-archive') {
    if (images.length > 1) throw new SkiffError('ERR_USAGE', `--format ${flags.format} holds one image under one name: give one (or use --format docker-archive, with -m for several images)`);
    const name = found[0]!.tags[0];
    const from = `containers-storage:${found[0]!.id}`;
    const { OciRef } = await import('../../transports/oci/ref.js');
    if (flags.format === 'oci-archive') {
      const { ociArchiveTransport } = await import('../../transports/oci-archive/index.js');
      await copyBetween(from, { transport: ociArchiveTransport, ref: new OciRef(flags.output, name ? formatDockerReference(name) : undefined, 'oci-archive') }, o, copy);
    } else if (flags.format === 'oci-dir') {
      // An OCI layout, as podman writes it: the image under its full name, layers gzip-compressed unless told not.
      const { ociTransport } = await import('../../transports/oci/index.js');
      await copyBetween(from, { transport: ociTransport, ref: new OciRef(flags.output, name ? formatDockerReference(name) : undefined) }, o, copy, { ...o, ...(flags.uncompressed ? { acceptUncompressedLayers: true } : {}) });
    } else {
      // A dir: directory with a Docker v2s2 manifest; layers as stored (uncompressed) unless --compress.
      const { dirTransport, DirRef } = await import('../../transports/dir/index.js');
      await copyBetween(from, { transport: dirTransport, ref: new DirRef(flags.output) }, o, { ...copy, format: 'v2s2', ...(flags.compress ? { compressFormat: 'gzip' as const } : {}) });
    }
    return;
  }
  const { MultiImageArchive } = await import('../../transports/docker-archive/index.js');
  const archive = await MultiImageArchive.open(flags.output);
  try {
    for (const f of found) {
      const src = await openSource(`containers-storage:${f.id}`, o);
      try {
        await copyImage(src, archive.image(f.tags), copy);
      } finally {
        await src.close();
      }
    }
    await archive.finish();
  } finally {
    await archive.close();
  }
}

/** The name an oci-archive's image has, as podman loads it: its `ref.name`, when that is a full image name. */
async function ociArchiveNames(file: string): Promise<string[]> {
  const { TarTree } = await import('../archive/tar-index.js');
  const tree = await TarTree.open(file);
  try {
    const index = JSON.parse((await tree.readFile('index.json', 1 << 20)).toString()) as { manifests?: { annotations?: Record<string, string> }[] };
    const names = (index.manifests ?? []).map((m) => m.annotations?.['org.opencontainers.image.ref.name']).filter((n): n is string => !!n && n.includes('/'));
    return names.length === 1 ? [tryStoreName(names[0]!)].filter((n): n is string => n !== undefined) : [];
  } catch {
    return [];
  } finally {
    await tree.close();
  }
}

/** `load` from a file: see the command. */
async function loadImages(flags: { input: string; quiet?: boolean }, c: Command): Promise<void> {
  const g = c.optsWithGlobals() as GlobalOptions;
  const o: SourceOptions = { storage: storageFrom(g) };
  const progress = makeProgress(!!flags.quiet);
  const copy = progress ? { progress } : {};
  // Every image of a docker-archive, under all its RepoTags (as podman loads it); an oci-archive's one image
  // under its ref.name. Each is opened once: for its names, and then copied from.
  // (References built, not parsed: the file's path may contain a `:`.)
  const { ArchiveSource, DockerArchiveRef } = await import('../../transports/docker-archive/index.js');
  let opens: (() => Promise<{ source: ImageSource; names: string[] }>)[];
  try {
    const count = await ArchiveSource.imageCount(flags.input);
    opens = Array.from({ length: count }, (_, i) => async () => {
      const source = await ArchiveSource.open(new DockerArchiveRef(flags.input, undefined, i));
      return { source, names: source.archiveTags.map((t) => tryStoreName(t)).filter((n): n is string => n !== undefined) };
    });
  } catch (e) {
    if (!(e instanceof SkiffError) || e.code !== 'ERR_INVALID_ARCHIVE') throw e;
    const { ociArchiveTransport } = await import('../../transports/oci-archive/index.js');
    const { OciRef } = await import('../../transports/oci/ref.js');
    opens = [async () => ({ source: await ociArchiveTransport.openSource(new OciRef(flags.input, undefined, 'oci-archive'), o), names: await ociArchiveNames(flags.input) })];
  }
  const { sha256 } = await import('../core/digest.js');
  const loaded: string[] = [];
  for (const open of opens) {
    const { source, names } = await open();
    try {
      if (!names.length) names.push(`localhost/${sha256((await source.getManifest()).bytes).slice(7, 19)}:latest`);
      const dest = await openDestination(`containers-storage:${names[0]!}`, o);
      try {
        await copyImage(source, dest, copy);
      } finally {
        await dest.close();
      }
    } finally {
      await source.close();
    }
    if (names.length > 1) {
      const store = await storeOf(g);
      const w = new StoreWriter(store);
      await w.open();
      await w.tag(await imageId(store, names[0]!), names.slice(1));
    }
    loaded.push(...names);
  }
  await writeOut(loaded.map((n) => `Loaded image: ${n}\n`).join(''));
}
