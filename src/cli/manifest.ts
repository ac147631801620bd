/**
 * podman's manifest commands over the store: create, add, annotate, remove, exists, inspect, rm, push (and build's
 * --manifest, through addToList). A list is kept as podman keeps it (an image with no layer whose "manifest" is an
 * OCI index, and "instances.json"), so podman reads skiff's lists and skiff reads podman's; its instances are images
 * of the store.
 */
import { Command, Option } from 'commander';
import { SkiffError } from '../core/errors.js';
import type { SourceOptions } from '../core/image.js';
import { parseManifest, type Descriptor, type IndexManifest, type Platform } from '../core/manifest.js';
import { MT } from '../core/media-types.js';
import { isDigest, sha256 } from '../core/digest.js';
import type { CopyOptions } from '../copy/copy.js';
import type { Image, Store } from '../store/store.js';
import { StoreWriter } from '../store/writer.js';
import { addRegistryFlags, addRetryFlags, hasTransport, podmanRegistryOptions, openSource, storageFrom, storeOf, writeOut, type GlobalOptions } from './common.js';
import { copyBetween, pullIntoStore } from './storage.js';
import { localImageName, parseDockerReference } from '../core/reference.js';
import { makeProgress } from './progress.js';

/** The list named `name`, with its image and recorded instance sources; an image that is not a list is an error. */
async function findList(store: Store, name: string): Promise<{ image: Image; list: IndexManifest; instances: Record<string, string> }> {
  const image = await store.findImage(name);
  if (!image) throw new SkiffError('ERR_IMAGE_NOT_FOUND', `${name}: image not known`);
  const list = await store.listOf(image);
  if (!list) throw new SkiffError('ERR_USAGE', `${name}: not a manifest list`);
  let instances: Record<string, string> = {};
  try {
    instances = JSON.parse((await store.bigData(image, 'instances.json'))?.toString() ?? '{}') as Record<string, string>;
  } catch {
    /* a damaged instances.json: the list itself still stands */
  }
  delete instances[''];
  return { image, list, instances };
}

/** The stored form: an OCI index, compact, keys in the order podman writes them. */
function storedList(list: IndexManifest): Buffer {
  const manifests = list.manifests.map((d) => ({
    mediaType: d.mediaType,
    digest: d.digest,
    size: d.size,
    ...(d.annotations ? { annotations: d.annotations } : {}),
    ...(d.platform ? { platform: d.platform } : {}),
  }));
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.ociIndex, manifests, ...(list.annotations ? { annotations: list.annotations } : {}) }));
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/**
 * Write a list: into the list image `id` (its names kept), or as a new list named `name`. Resolves with the image.
 */
async function saveList(store: Store, at: { id: string } | { name: string }, list: IndexManifest, instances: Record<string, string>): Promise<Image> {
  const w = new StoreWriter(store);
  await w.open();
  return w.putList({ ...('id' in at ? { id: at.id, names: [] } : { names: [at.name] }), manifest: storedList(list), instances });
}

/** The platform and annotation flags `add` and `annotate` share (podman's, with `what` they describe). */
function addPlatformFlags(cmd: Command, what: string): Command {
  return cmd
    .option('--arch <arch>', `the architecture to record${what}`)
    .option('--os <os>', `the OS to record${what}`)
    .option('--variant <variant>', 'the architecture variant to record')
    .option('--os-version <version>', 'the OS version to record')
    .option('--features <feature>', 'accepted as podman 4.3 accepts it (not recorded)', collect)
    .option('--annotation <key=value>', 'an annotation for the entry (repeatable)', collect);
}

/** --annotation KEY=VALUE flags as a map. */
function annotationsOf(specs: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const a of specs ?? []) {
    const eq = a.indexOf('=');
    if (eq <= 0) throw new SkiffError('ERR_USAGE', `--annotation ${JSON.stringify(a)}: expected KEY=VALUE`);
    out[a.slice(0, eq)] = a.slice(eq + 1);
  }
  return out;
}

/** An entry of a list is named by its digest (podman's words when it is not one). */
function checkDigest(d: string): string {
  if (!isDigest(d)) throw new SkiffError('ERR_USAGE', `invalid image digest "${d}": invalid checksum digest format`);
  return d;
}

interface AddFlags {
  arch?: string;
  os?: string;
  variant?: string;
  osVersion?: string;
  annotation?: string[];
}

/**
 * Add a store image to a list (replacing an entry with the same digest): its stored manifest, and the platform its
 * config names, with --arch/--os/--variant/--os-version and --annotation applied (--features is not recorded, as
 * podman 4.3 records it nowhere).
 */
async function addInstance(store: Store, list: IndexManifest, image: Image, what: string, f: AddFlags): Promise<IndexManifest> {
  const raw = await store.bigData(image, 'manifest');
  const config = await store.bigData(image, `sha256:${image.id}`);
  if (!raw || !config) throw new SkiffError('ERR_INVALID_CONFIG', `${what}: the store has no manifest or config for image ${image.id.slice(0, 12)}`);
  const m = parseManifest(raw);
  if (m.kind !== 'image') throw new SkiffError('ERR_USAGE', `${what}: a manifest list cannot be added to a list`);
  const c = JSON.parse(config.toString()) as { architecture?: string; os?: string; variant?: string; 'os.version'?: string; 'os.features'?: string[] };
  const platform: Platform = {
    architecture: f.arch ?? c.architecture ?? '',
    os: f.os ?? c.os ?? '',
    ...((f.osVersion ?? c['os.version']) ? { 'os.version': f.osVersion ?? c['os.version'] } : {}),
    ...(c['os.features']?.length ? { 'os.features': c['os.features'] } : {}),
    ...((f.variant ?? c.variant) ? { variant: f.variant ?? c.variant } : {}),
  } as Platform;
  const annotations = annotationsOf(f.annotation);
  const digest = sha256(raw);
  const entry: Descriptor = { mediaType: m.mediaType, digest, size: raw.length, ...(Object.keys(annotations).length ? { annotations } : {}), platform };
  return { ...list, manifests: [...list.manifests.filter((d) => d.digest !== digest), entry] };
}

/**
 * The store image an argument of `manifest add` names: `containers-storage:NAME` from the store; anything else is a
 * registry reference (podman's default, `docker://` optional), pulled into the store first, since the store is
 * where skiff pushes a list's instances from (podman records a remote image without pulling it).
 */
async function resolveInstance(store: Store, arg: string, o: SourceOptions, g: GlobalOptions, quiet: boolean): Promise<{ image: Image; source: string }> {
  if (arg.startsWith('containers-storage:')) {
    const name = arg.slice('containers-storage:'.length);
    const image = await store.findImage(name);
    if (!image) throw new SkiffError('ERR_IMAGE_NOT_FOUND', `${arg}: image not known`);
    return { image, source: arg };
  }
  if (hasTransport(arg) && !arg.startsWith('docker://')) throw new SkiffError('ERR_USAGE', `${arg}: manifest add takes images of the store (containers-storage:NAME) or of a registry (docker://REF)`);
  const ref = arg.replace(/^docker:\/\//, '');
  const id = await pullIntoStore(ref, o, g, quiet);
  const image = (await store.images()).find((i) => i.id === id)!;
  return { image, source: `docker://${ref}` };
}


/**
 * `manifest add --all REF`: every image of the registry index REF names, each pulled into the store by its digest
 * and added with the platform the index gives it (so an index's entries come over as they are, variants and all).
 * An image that is not an index is added as `manifest add` adds it.
 */
async function addAll(store: Store, list: IndexManifest, instances: Record<string, string>, arg: string, flags: AddFlags & Record<string, unknown>, g: GlobalOptions): Promise<{ list: IndexManifest; instances: Record<string, string> }> {
  if (arg.startsWith('containers-storage:') || (hasTransport(arg) && !arg.startsWith('docker://'))) throw new SkiffError('ERR_USAGE', `--all: ${arg}: --all takes an image of a registry (docker://REF)`);
  if (flags.arch || flags.os || flags.variant || flags.osVersion) throw new SkiffError('ERR_USAGE', '--all adds every image with the platform its index gives: --arch, --os, --variant and --os-version do not go with it');
  const ref = arg.replace(/^docker:\/\//, '');
  const o: SourceOptions = { ...podmanRegistryOptions(flags), storage: storageFrom(g) };
  const src = await openSource(`docker://${ref}`, o);
  let top;
  try {
    top = parseManifest((await src.getManifest()).bytes);
  } finally {
    await src.close();
  }
  if (top.kind !== 'index') {
    const { image, source } = await resolveInstance(store, arg, o, g, !!flags.quiet);
    const next = await addInstance(store, list, image, arg, flags);
    return { list: next, instances: { ...instances, [next.manifests.at(-1)!.digest]: source } };
  }
  const named = parseDockerReference(ref);
  let next = list;
  const recorded = { ...instances };
  for (const d of top.manifests) {
    const byDigest = `${named.domain}/${named.path}@${d.digest}`;
    const id = await pullIntoStore(`docker://${byDigest}`, o, g, !!flags.quiet);
    const image = (await store.images()).find((i) => i.id === id)!;
    const p = d.platform;
    next = await addInstance(store, next, image, arg, { ...flags, ...(p?.architecture ? { arch: p.architecture } : {}), ...(p?.os ? { os: p.os } : {}), ...(p?.variant ? { variant: p.variant } : {}), ...(p?.['os.version'] ? { osVersion: p['os.version'] } : {}) });
    recorded[next.manifests.at(-1)!.digest] = `docker://${byDigest}`;
  }
  return { list: next, instances: recorded };
}

/** `skiff manifest …`: podman's manifest commands. */
export function manifestCommands(program: Command): void {
  const manifest = program.command('manifest').description('Make, inspect and push manifest lists kept in local storage (podman manifest)');

  const create = manifest
    .command('create')
    .description('Create a manifest list, with the given images in it; prints its ID')
    .argument('<list>', 'name of the list')
    .argument('[images...]', 'images to add (containers-storage:NAME or a registry reference)')
    .option('--all', 'a registry image that is a multi-platform index: add every image of it (each pulled into the store)')
    .option('--amend', 'a list of that name exists already: add the images to it (its ID is printed)');
  addRetryFlags(create);
  addRegistryFlags(create, '');
  create.action(async (name: string, images: string[], flags: { all?: boolean; amend?: boolean } & Record<string, unknown>, c: Command) => {
    const g = c.optsWithGlobals() as GlobalOptions;
    const store = await storeOf(g);
    const listName = localImageName(name);
    const taken = await store.findImage(listName);
    let target: { image: Parameters<typeof saveList>[1]; list: IndexManifest; instances: Record<string, string> } | undefined;
    if (taken && taken.names?.includes(listName)) {
      // As podman: --amend works on the list of that name; a name taken otherwise is an error either way.
      if (!flags.amend) throw new SkiffError('ERR_USAGE', `creating image to hold manifest list: image name "${listName}" is already associated with image "${taken.id}": that name is already in use`);
      if (!(await store.listOf(taken))) throw new SkiffError('ERR_USAGE', `--amend: ${listName} is an image, not a manifest list`);
      target = await findList(store, listName);
    }
    const o: SourceOptions = { ...podmanRegistryOptions(flags), storage: storageFrom(g) };
    let list: IndexManifest = target?.list ?? { kind: 'index', mediaType: MT.ociIndex, manifests: [] };
    let instances: Record<string, string> = { ...(target?.instances ?? {}) };
    for (const arg of images) {
      if (flags.all && !arg.startsWith('containers-storage:') && (!hasTransport(arg) || arg.startsWith('docker://'))) {
        // (Quietly, as every pull of create: its output is the list's ID.)
        ({ list, instances } = await addAll(store, list, instances, arg, { ...flags, quiet: true }, g));
        continue;
      }
      const { image, source } = await resolveInstance(store, arg, o, g, true);
      list = await addInstance(store, list, image, arg, {});
      instances[list.manifests.at(-1)!.digest] = source;
    }
    const img = await saveList(store, target?.image ?? { name: listName }, list, instances);
    await writeOut(`${img.id}\n`);
  });

  const add = manifest
    .command('add')
    .description('Add an image to a manifest list; prints the list\'s ID')
    .argument('<list>', 'name of the list')
    .argument('<image>', 'containers-storage:NAME, or a registry reference (docker:// optional; pulled into the store)')
    .option('-q, --quiet', 'no progress when pulling')
    .option('--all', 'a registry image that is a multi-platform index: add every image of it (each pulled into the store)');
  addPlatformFlags(add, ' for it (default: its config\'s)');
  addRetryFlags(add);
  addRegistryFlags(add, '');
  add.action(async (name: string, arg: string, flags: AddFlags & Record<string, unknown>, c: Command) => {
    const g = c.optsWithGlobals() as GlobalOptions;
    const store = await storeOf(g);
    const { image: listImage, list, instances } = await findList(store, localImageName(name));
    if (flags.all) {
      const added = await addAll(store, list, instances, arg, flags, g);
      await saveList(store, listImage, added.list, added.instances);
      await writeOut(`${listImage.id}\n`);
      return;
    }
    // From a multi-platform registry image, the instance --os/--arch/--variant name (the host's otherwise), as podman adds.
    const choice = { ...(flags.os ? { os: flags.os } : {}), ...(flags.arch ? { architecture: flags.arch } : {}), ...(flags.variant ? { variant: flags.variant } : {}) };
    const o: SourceOptions = { ...podmanRegistryOptions(flags), storage: storageFrom(g), ...(Object.keys(choice).length ? { platform: choice } : {}) };
    const { image, source } = await resolveInstance(store, arg, o, g, !!flags.quiet);
    const next = await addInstance(store, list, image, arg, flags);
    await saveList(store, listImage, next, { ...instances, [next.manifests.at(-1)!.digest]: source });
    await writeOut(`${listImage.id}\n`);
  });

  manifest
    .command('inspect')
    .description('Print a manifest list as podman does (Docker list format, indented)')
    .argument('<list>', 'name of the list')
    .action(async (name: string, _f: unknown, c: Command) => {
      const g = c.optsWithGlobals() as GlobalOptions;
      const { list } = await findList(await storeOf(g), localImageName(name));
      // podman 4.3's shape: the Docker list media type, each entry's platform in Docker's field order, annotations
      // after it; an empty list's manifests are null.
      const manifests = list.manifests.map((d) => {
        const p = (d.platform ?? {}) as Platform & Record<string, unknown>;
        const platform = {
          architecture: p.architecture,
          os: p.os,
          ...(p['os.version'] ? { 'os.version': p['os.version'] } : {}),
          ...(p['os.features'] ? { 'os.features': p['os.features'] } : {}),
          ...(p.variant ? { variant: p.variant } : {}),
          ...(p.features ? { features: p.features } : {}),
        };
        return { mediaType: d.mediaType, size: d.size, digest: d.digest, platform, ...(d.annotations ? { annotations: d.annotations } : {}) };
      });
      await writeOut(`${JSON.stringify({ schemaVersion: 2, mediaType: MT.dockerList, manifests: manifests.length ? manifests : null }, null, 4)}\n`);
    });

  manifest
    .command('rm')
    .description('Remove manifest lists from local storage (their images stay)')
    .argument('<lists...>', 'names of the lists')
    .action(async (names: string[], _f: unknown, c: Command) => {
      const g = c.optsWithGlobals() as GlobalOptions;
      const store = await storeOf(g);
      const w = new StoreWriter(store);
      await w.open();
      for (const n of names) {
        const { image } = await findList(store, localImageName(n));
        await w.removeImage(image.id);
        for (const name of image.names ?? []) process.stdout.write(`Untagged: ${name}\n`);
        process.stdout.write(`Deleted: ${image.id}\n`);
      }
    });

  const annotate = manifest
    .command('annotate')
    .description('Change the platform or annotations recorded for an image of a manifest list; prints the list\'s ID')
    .argument('<list>', 'name of the list')
    .argument('<digest>', 'the image\'s manifest digest in the list');
  addPlatformFlags(annotate, '').option('--os-features <feature>', 'accepted as podman 4.3 accepts it (not recorded)', collect);
  annotate.action(async (name: string, digest: string, flags: AddFlags, c: Command) => {
    const g = c.optsWithGlobals() as GlobalOptions;
    const store = await storeOf(g);
    const { image, list, instances } = await findList(store, localImageName(name));
    const entry = list.manifests.find((d) => d.digest === checkDigest(digest));
    if (!entry) throw new SkiffError('ERR_IMAGE_NOT_FOUND', `no instance matching digest "${digest}" found in manifest list ${name}`);
    const p = { ...(entry.platform ?? { architecture: '', os: '' }) } as Platform;
    if (flags.arch) p.architecture = flags.arch;
    if (flags.os) p.os = flags.os;
    if (flags.variant) p.variant = flags.variant;
    if (flags.osVersion) p['os.version'] = flags.osVersion;
    const annotations = { ...(entry.annotations ?? {}), ...annotationsOf(flags.annotation) };
    const next = { ...list, manifests: list.manifests.map((d) => (d === entry ? { ...d, platform: p, ...(Object.keys(annotations).length ? { annotations } : {}) } : d)) };
    await saveList(store, image, next, instances);
    await writeOut(`${image.id}\n`);
  });

  manifest
    .command('remove')
    .description('Take an image out of a manifest list (the image stays in storage); prints the list\'s ID')
    .argument('<list>', 'name of the list')
    .argument('<digest>', 'the image\'s manifest digest in the list')
    .action(async (name: string, digest: string, _f: unknown, c: Command) => {
      const g = c.optsWithGlobals() as GlobalOptions;
      const store = await storeOf(g);
      const { image, list, instances } = await findList(store, localImageName(name));
      if (!list.manifests.some((d) => d.digest === checkDigest(digest))) throw new SkiffError('ERR_IMAGE_NOT_FOUND', `removing from manifest list ${name}: no instance matching digest "${digest}" found in manifest list`);
      delete instances[digest];
      await saveList(store, image, { ...list, manifests: list.manifests.filter((d) => d.digest !== digest) }, instances);
      await writeOut(`${image.id}\n`);
    });

  manifest
    .command('exists')
    .description('Exit 0 when the manifest list exists in local storage, 1 when it does not (as podman)')
    .argument('<list>', 'name of the list')
    .action(async (name: string, _f: unknown, c: Command) => {
      const g = c.optsWithGlobals() as GlobalOptions;
      const store = await storeOf(g);
      const image = await store.findImage(localImageName(name));
      if (!image) throw new SkiffError('ERR_USAGE', '', { exitCode: 1 });
      if (!(await store.listOf(image))) throw new SkiffError('ERR_USAGE', `${name}: image is not a manifest list`, { exitCode: 125 });
    });

  const push = manifest
    .command('push')
    .description('Push a manifest list and all its images')
    .argument('<list>', 'name of the list')
    .argument('[destination]', 'TRANSPORT:SPEC (default: docker://LIST)')
    .option('--all', 'push the images of the list too (the default: a registry refuses a list without them)', true)
    .addOption(new Option('-f, --format <format>', 'oci or v2s2').choices(['oci', 'v2s2']))
    .option('--rm', 'remove the list from local storage after the push')
    .option('--digestfile <file>', 'write the pushed list\'s digest here')
    .addOption(new Option('--compression-format <format>', 'compression of the pushed layers (default gzip)').choices(['gzip', 'zstd']))
    .option('--remove-signatures', 'push without the images\' signatures')
    .option('--sign-by <fingerprint>', 'sign the pushed list with this GnuPG key (simple signing, for the registry name pushed to)')
    .option('--sign-passphrase-file <file>', 'the key\'s passphrase, from this file')
    .option('-q, --quiet', 'no progress');
  addRetryFlags(push);
  addRegistryFlags(push, '');
  push.action(async (name: string, dest: string | undefined, flags: Record<string, unknown>, c: Command) => {
    const g = c.optsWithGlobals() as GlobalOptions;
    const store = await storeOf(g);
    const listName = localImageName(name);
    const { image } = await findList(store, listName);
    const target = dest ?? `docker://${listName}`;
    const progress = makeProgress(!!flags.quiet);
    const copy: CopyOptions = {
      all: true,
      ...(flags.format ? { format: flags.format as 'oci' | 'v2s2' } : {}),
      ...(flags.compressionFormat ? { compressFormat: flags.compressionFormat as 'gzip' | 'zstd' } : {}),
      ...(flags.removeSignatures ? { removeSignatures: true } : {}),
      ...(progress ? { progress } : {}),
    };
    const o: SourceOptions = { ...podmanRegistryOptions(flags), storage: storageFrom(g) };
    const destination = hasTransport(target) ? target : `docker://${target}`;
    if (flags.signBy !== undefined) {
      // (As podman manifest push: the signature, of the list, vouches for the registry name pushed to.)
      const sign = await (await import('./sign.js')).pushSigner(destination, flags.signBy, flags.signPassphraseFile);
      if (sign) copy.sign = sign;
    }
    const digest = await copyBetween(`containers-storage:${image.id}`, destination, o, copy);
    if (typeof flags.digestfile === 'string') await (await import('node:fs/promises')).writeFile(flags.digestfile, digest);
    if (flags.rm) {
      const w = new StoreWriter(store);
      await w.open();
      await w.removeImage(image.id);
    }
  });
}

/** `build --manifest LIST`: add the built image to LIST, creating the list when there is none. */
export async function addToList(store: Store, listName: string, imageId: string): Promise<void> {
  const name = localImageName(listName);
  const image = (await store.images()).find((i) => i.id === imageId);
  if (!image) throw new SkiffError('ERR_IMAGE_NOT_FOUND', `image ${imageId.slice(0, 12)} is not in the store`);
  const existing = await store.findImage(name);
  const found = existing && (await store.listOf(existing)) ? await findList(store, name) : undefined;
  if (existing && !found) throw new SkiffError('ERR_USAGE', `--manifest ${listName}: ${name} is an image, not a manifest list`);
  const next = await addInstance(store, found?.list ?? { kind: 'index', mediaType: MT.ociIndex, manifests: [] }, image, `containers-storage:${imageId}`, {});
  await saveList(store, found ? found.image : { name }, next, { ...(found?.instances ?? {}), [next.manifests.at(-1)!.digest]: `containers-storage:${imageId}` });
}
