import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { BlobMeter, checkBlob, digestHex, sha256, type Digest } from '../../src/core/digest.js';
import { SkiffError } from '../../src/core/errors.js';
import { removeTree, streamToTempFile } from '../../src/core/fs.js';
import type { BlobInfo, DestinationCaps, ImageDestination, ImageSource, SourceOptions, Transport } from '../../src/core/image.js';
import { parseConfig } from '../../src/core/config.js';
import { parseManifest, serializeManifest, type Descriptor, type ImageManifest, type RawManifest } from '../../src/core/manifest.js';
import { formatDockerReference, parseDockerReference, withDefaultTag } from '../../src/core/reference.js';
import { createDecompressor, detectCompression, peek } from '../../src/archive/compression.js';
import { layerId, parseMetadata, StoreWriter, sweepDeadDirs, type StagedLayer } from '../../src/store/writer.js';
import { layerCompressionOf, MT } from '../../src/core/media-types.js';
import { defaultStoreLocation, Store, type Image, type Layer } from '../../src/store/store.js';
import { parseStorageSpec, StorageRef } from './ref.js';

export { parseStorageSpec, StorageRef };


/** The store a reference names, else the one the options name (global flags), else storage.conf's default. */
export async function openStore(ref: StorageRef, o: SourceOptions = {}): Promise<Store> {
  const def = await defaultStoreLocation();
  const s = o.storage ?? {};
  return new Store({ driver: ref.store.driver ?? s.driver ?? def.driver, root: ref.store.root ?? s.root ?? def.root, runroot: ref.store.runroot ?? s.runroot ?? def.runroot });
}

/** One image of the store as a copy reads it: a manifest made for it, its config, its layers by diffID. */
interface Described {
  image: Image;
  manifest: Buffer;
  mediaType: string;
  layers: Map<Digest, Layer>;
  config: Buffer;
  configDigest: Digest;
}

/**
 * An image of the store, described for copying. The manifest is synthesised (OCI, layers uncompressed by their
 * diffIDs), because the store keeps layers unpacked: each layer tar is rebuilt exactly through tar-split, so diffIDs
 * match, and the destination compresses as it wants (what c/image does through LayerInfosForCopy).
 */
async function describe(store: Store, image: Image, what: string): Promise<Described> {
  const chain = await store.layerChain(image);
  const config = await store.bigData(image, `sha256:${image.id}`);
  if (!config) throw new SkiffError('ERR_INVALID_CONFIG', `${what}: the store has no config for image ${image.id.slice(0, 12)}`);
  // The stored manifest decides the format (a `build --format docker` image stays Docker v2s2) and keeps its
  // annotations; the layers are described as the store has them: uncompressed, by diffID.
  const stored = await store.bigData(image, 'manifest');
  let kind: { docker: boolean; annotations?: Record<string, string> } = { docker: false };
  try {
    const sm = stored ? parseManifest(stored) : undefined;
    if (sm?.kind === 'image') kind = { docker: sm.mediaType === MT.dockerManifest, ...(sm.annotations ? { annotations: sm.annotations } : {}) };
  } catch {
    /* an unreadable stored manifest: the image is still described by its config and layers */
  }
  const layers = new Map<Digest, Layer>();
  const descs: Descriptor[] = [];
  for (const l of chain) {
    const d = l['diff-digest'];
    if (!d || l['diff-size'] === undefined) throw new SkiffError('ERR_INVALID_ARCHIVE', `${what}: layer ${l.id.slice(0, 12)} has no recorded diff digest/size`);
    layers.set(d, l);
    descs.push({ mediaType: kind.docker ? MT.dockerLayer : MT.ociLayer, digest: d, size: l['diff-size'] });
  }
  const configDigest = sha256(config);
  const m: ImageManifest = {
    kind: 'image',
    mediaType: kind.docker ? MT.dockerManifest : MT.ociManifest,
    config: { mediaType: kind.docker ? MT.dockerConfig : MT.ociConfig, digest: configDigest, size: config.length },
    layers: descs,
    ...(kind.annotations && !kind.docker ? { annotations: kind.annotations } : {}),
  };
  return { image, manifest: serializeManifest(m), mediaType: m.mediaType, layers, config, configDigest };
}

/**
 * Reads an image from the store, or a manifest list (podman's `manifest create`/`add`, kept as an image whose
 * "manifest" is the list): the list is given with each instance described as the store has it (so with new digests,
 * as the instances' manifests are made anew), the instances found by the digests podman recorded for them.
 */
class StorageSource implements ImageSource {
  readonly local = true;
  private constructor(
    readonly ref: StorageRef,
    private readonly store: Store,
    readonly image: Image,
    private readonly top: RawManifest,
    /** The images described, by the digest of the manifest made for each. */
    private readonly described: Map<Digest, Described>,
  ) {}

  static async open(ref: StorageRef, o: SourceOptions): Promise<StorageSource> {
    const store = await openStore(ref, o);
    const image = ref.id ? (await store.images()).find((i) => i.id === ref.id) : await store.findImage(ref.name!);
    if (!image || (ref.id && ref.name && !image.names?.some((n) => n === ref.name || n.endsWith(`/${ref.name}`)))) {
      throw new SkiffError('ERR_IMAGE_NOT_FOUND', `${ref}: no such image in the store at ${store.loc.root}`);
    }
    const described = new Map<Digest, Described>();
    const list = await store.listOf(image);
    if (!list) {
      const d = await describe(store, image, String(ref));
      described.set(sha256(d.manifest), d);
      return new StorageSource(ref, store, image, { bytes: d.manifest, mediaType: d.mediaType }, described);
    }
    const all = await store.images();
    const children = [];
    for (const child of list.manifests) {
      // podman records an instance's manifest digest as the image's digest, or as a manifest-<digest> big data item.
      const inst = all.find((i) => i.digest === child.digest || i['big-data-names']?.includes(`manifest-${child.digest}`));
      if (!inst) throw new SkiffError('ERR_IMAGE_NOT_FOUND', `${ref}: the list's instance ${child.digest}${child.platform ? ` (${child.platform.os}/${child.platform.architecture})` : ''} is not in the store (podman manifest add of a remote image records it without pulling it)`);
      const d = await describe(store, inst, `${ref}: instance ${child.digest}`);
      const digest = sha256(d.manifest);
      described.set(digest, d);
      children.push({ ...child, mediaType: d.mediaType, digest, size: d.manifest.length });
    }
    const index = { ...list, manifests: children };
    return new StorageSource(ref, store, image, { bytes: serializeManifest(index), mediaType: list.mediaType }, described);
  }

  /** The manifest the image was stored with (an image's, not a list's), as skopeo inspect shows it. */
  async storedManifest(): Promise<RawManifest | undefined> {
    // (A list's top manifest is the index made in open(): nothing stored apart to show.)
    if (this.top.mediaType === MT.ociIndex || this.top.mediaType === MT.dockerList) return undefined;
    const bytes = await this.store.bigData(this.image, 'manifest');
    if (!bytes) return undefined;
    try {
      const m = parseManifest(bytes);
      return m.kind === 'image' ? { bytes, mediaType: m.mediaType } : undefined;
    } catch {
      return undefined;
    }
  }

  async getManifest(instance?: Digest): Promise<RawManifest> {
    if (!instance) return this.top;
    const d = this.described.get(instance);
    if (!d) throw new SkiffError('ERR_MANIFEST_UNKNOWN', `${this.ref}: no manifest ${instance}`);
    return { bytes: d.manifest, mediaType: d.mediaType };
  }

  async getBlob(desc: Descriptor): Promise<Readable> {
    for (const d of this.described.values()) {
      if (desc.digest === d.configDigest) return Readable.from([d.config]);
      const layer = d.layers.get(desc.digest);
      if (layer) return this.store.layerTar(layer);
    }
    throw new SkiffError('ERR_BLOB_UNKNOWN', `${this.ref}: no blob ${desc.digest}`);
  }

  /**
   * The signatures stored with the image (c/image's "signatures" big data, split by the sizes in its metadata). They
   * sign the manifest the image was stored with, not the one described here for copying (layers uncompressed): a
   * copy keeps them only if that is the manifest it writes, which is why skopeo and podman refuse to push such an
   * image without --remove-signatures. An instance of a list: none.
   */
  async getSignatures(instance?: Digest): Promise<{ signatures: Buffer[]; manifest: Digest }> {
    if (instance) return { signatures: [], manifest: instance };
    const stored = this.image.digest ?? sha256((await this.store.bigData(this.image, 'manifest')) ?? Buffer.alloc(0));
    const sizes = parseMetadata(this.image.metadata)['signature-sizes'];
    if (!Array.isArray(sizes) || !sizes.length) return { signatures: [], manifest: stored };
    const all = (await this.store.bigData(this.image, 'signatures')) ?? Buffer.alloc(0);
    const signatures: Buffer[] = [];
    let at = 0;
    for (const n of sizes) {
      if (typeof n !== 'number' || n < 0 || at + n > all.length) throw new SkiffError('ERR_INVALID_ARCHIVE', `${this.ref}: the image's signature sizes do not match its stored signatures`);
      signatures.push(all.subarray(at, at + n));
      at += n;
    }
    return { signatures, manifest: stored };
  }

  async repoTags(): Promise<string[]> {
    return this.image.names ?? [];
  }

  async close(): Promise<void> {}
}

/**
 * Writes an image into the store. Layers are unpacked while they arrive, in parallel, into staging dirs under the
 * store's tmp/ (nothing the store's records know of); the config is spooled. Commit moves the staged layers into
 * place in order (each checked against the config's diffID, a layer already in the store under the same chain ID
 * reused) and records the image and its names. A blob the store already holds as some layer (by compressed or
 * uncompressed digest) is not fetched at all: a layer under another parent is rebuilt from that one's tar-split.
 */
class StorageDestination implements ImageDestination {
  readonly caps: DestinationCaps = { manifestTypes: [MT.ociManifest, MT.dockerManifest], compression: 'preserve', multiImage: false };
  private manifest: RawManifest | undefined;
  private readonly spooled = new Map<Digest, string>();
  private readonly staged = new Map<Digest, { layer: StagedLayer; compression: number; size: number }>();
  private constructor(
    readonly ref: StorageRef,
    private readonly store: Store,
    private readonly writer: StoreWriter,
    private readonly spool: string,
    private readonly stage: string,
  ) {}

  static async open(ref: StorageRef, o: SourceOptions): Promise<StorageDestination> {
    if (!ref.name) throw new SkiffError('ERR_INVALID_REFERENCE', `${ref}: name the image to write (containers-storage:NAME[:TAG])`);
    const store = await openStore(ref, o);
    const writer = new StoreWriter(store);
    await writer.open();
    const tmp = path.join(store.loc.root, 'tmp');
    await sweepDeadDirs(tmp, /^skiff-(\d+)-[0-9a-f]+$/);
    const spool = path.join(tmp, `skiff-${process.pid}-${randomBytes(4).toString('hex')}`);
    await fsp.mkdir(spool, { recursive: true, mode: 0o700 });
    const stage = await writer.stagingArea();
    return new StorageDestination(ref, store, writer, spool, stage);
  }

  /** A layer the store holds with one of these blobs (compressed digest as pulled, or uncompressed digest), in order. */
  private async layerWithBlob(...digests: Digest[]): Promise<Layer | undefined> {
    const layers = (await this.store.layers()).filter((l) => !l.flags?.incomplete);
    for (const d of digests) {
      const l = layers.find((x) => x['compressed-diff-digest'] === d || x['diff-digest'] === d);
      if (l) return l;
    }
    return undefined;
  }

  async hasBlob(desc: Descriptor): Promise<boolean> {
    if (desc.mediaType === MT.ociConfig || desc.mediaType === MT.dockerConfig) return false;
    return (await this.layerWithBlob(desc.digest)) !== undefined;
  }

  async putBlob(stream: Readable, info: BlobInfo): Promise<{ digest: Digest; size: number }> {
    if (info.isConfig || layerCompressionOf(info.mediaType) === undefined) {
      const t = await streamToTempFile(stream, this.spool, info.digest);
      checkBlob(info, t, String(this.ref));
      this.spooled.set(t.digest, t.path);
      return { digest: t.digest, size: t.size };
    }
    // A layer: unpacked now, while it arrives (the copy engine verifies its bytes against the manifest as they pass).
    const meter = new BlobMeter(info.digest);
    const counted = stream.pipe(meter);
    stream.once('error', (e) => meter.destroy(e));
    const c = detectCompression(await peek(counted, 8));
    const dec = createDecompressor(c);
    if (dec) counted.once('error', (e) => dec.destroy(e));
    const dir = path.join(this.stage, `layer-${this.staged.size}-${randomBytes(4).toString('hex')}`);
    const layer = await this.writer.stageLayer(dec ? counted.pipe(dec) : counted, dir);
    checkBlob(info, { digest: meter.digest, size: meter.size }, String(this.ref));
    this.staged.set(meter.digest, { layer, compression: c === 'gzip' ? 2 : c === 'zstd' ? 4 : 0, size: meter.size });
    return { digest: meter.digest, size: meter.size };
  }

  async putManifest(m: RawManifest, instance?: Digest): Promise<void> {
    if (instance) throw new SkiffError('ERR_UNSUPPORTED', `${this.ref}: containers-storage stores single images here`);
    this.manifest = m;
  }

  private signatures: Buffer[] = [];
  /** Recorded with the image at commit (see StoreWriter.putImage). */
  async putSignatures(signatures: Buffer[], instance?: Digest): Promise<void> {
    if (instance) throw new SkiffError('ERR_UNSUPPORTED', `${this.ref}: containers-storage stores single images here`);
    this.signatures = signatures;
  }

  async commit(): Promise<void> {
    if (!this.manifest) throw new SkiffError('ERR_DESTINATION', `${this.ref}: commit without a manifest`);
    const m = parseManifest(this.manifest.bytes, this.manifest.mediaType);
    if (m.kind !== 'image') throw new SkiffError('ERR_UNSUPPORTED', `${this.ref}: not an image manifest`);
    const cfgFile = this.spooled.get(m.config.digest);
    if (!cfgFile) throw new SkiffError('ERR_BLOB_UNKNOWN', `${this.ref}: config ${m.config.digest} was never received`);
    const config = await fsp.readFile(cfgFile);
    const diffIDs = parseConfig(config).rootfs.diff_ids;
    if (diffIDs.length !== m.layers.length) throw new SkiffError('ERR_INVALID_CONFIG', `${this.ref}: ${m.layers.length} layers, ${diffIDs.length} diff_ids`);
    let parent: string | undefined;
    for (const [i, l] of m.layers.entries()) {
      const diffID = diffIDs[i]!;
      const id = layerId(parent, diffID);
      if (!(await this.writer.hasLayer(id))) {
        const staged = this.staged.get(l.digest);
        if (staged && (await fsp.stat(path.join(staged.layer.dir, 'diff')).then(() => true, () => false))) {
          await this.writer.createLayer(id, parent, diffID, staged.layer, { digest: l.digest, size: staged.size, compression: staged.compression });
        } else {
          // Not received (the store had it as another layer), or used twice in this image: rebuilt from a stored copy.
          const have = await this.layerWithBlob(diffID, l.digest);
          if (!have) throw new SkiffError('ERR_BLOB_UNKNOWN', `${this.ref}: layer ${l.digest} was never received`);
          await this.writer.createLayer(id, parent, diffID, await this.store.layerTar(have), { digest: l.digest, size: l.size, compression: have.compression ?? 0 });
        }
      }
      parent = id;
    }
    const name = formatDockerReference(withDefaultTag(parseDockerReference(this.ref.name!)));
    const created = (JSON.parse(config.toString()) as { created?: string }).created;
    await this.writer.putImage({ id: digestHex(m.config.digest), layer: parent, names: [name], manifest: this.manifest.bytes, config, ...(created ? { created } : {}), ...(this.signatures.length ? { signatures: this.signatures } : {}) });
  }

  async close(): Promise<void> {
    await removeTree(this.spool);
    await removeTree(this.stage);
  }
}

export const containersStorageTransport: Transport = {
  name: 'containers-storage',
  parse: parseStorageSpec,
  async openSource(ref, opts = {}) {
    return StorageSource.open(ref as StorageRef, opts);
  },
  async openDestination(ref, opts = {}): Promise<ImageDestination> {
    return StorageDestination.open(ref as StorageRef, opts);
  },
};
