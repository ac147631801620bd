import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Hasher, checkBlob, digestAlgorithm, digestHex, sha256, verifyBuffer, type Digest } from '../../src/core/digest.js';
import { hashFileRange, type RangeHash, type TarHashes } from '../../src/core/hash-worker.js';
import { SkiffError } from '../../src/core/errors.js';
import { streamToTempFile, sweepStaleTemps, tempSibling, removeTree } from '../../src/core/fs.js';
import type { BlobInfo, DestinationCaps, ImageDestination, ImageSource, Transport } from '../../src/core/image.js';
import { parseConfig } from '../../src/core/config.js';
import { parseManifest, serializeManifest, type Descriptor, type ImageManifest, type RawManifest } from '../../src/core/manifest.js';
import { MT } from '../../src/core/media-types.js';
import { formatDockerReference, parseDockerReference, withDefaultTag, type DockerReference } from '../../src/core/reference.js';
import { detectCompression } from '../../src/archive/compression.js';
import { TarTree } from '../../src/archive/tar-index.js';
import { TarAppender } from '../../src/archive/tar-append.js';
import { legacyLayers, repositoriesJSON } from './legacy.js';
import { DockerArchiveRef, parseDockerArchiveSpec } from './ref.js';

export { DockerArchiveRef };


interface ArchiveEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

function parseArchiveManifest(bytes: Buffer, where: string): ArchiveEntry[] {
  let o: unknown;
  try {
    o = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new SkiffError('ERR_INVALID_ARCHIVE', `${where}: malformed manifest.json: ${(e as Error).message}`);
  }
  if (!Array.isArray(o)) throw new SkiffError('ERR_INVALID_ARCHIVE', `${where}: manifest.json is not a list`);
  o.forEach((e: Partial<ArchiveEntry>, i) => {
    if (!e || typeof e.Config !== 'string' || !Array.isArray(e.Layers) || !e.Layers.every((l) => typeof l === 'string')) {
      throw new SkiffError('ERR_INVALID_ARCHIVE', `${where}: manifest.json entry ${i} lacks Config or Layers`);
    }
  });
  return o as ArchiveEntry[];
}

/** The archive entry the reference names: by tag, by @N, or the only one. */
function selectEntry(entries: ArchiveEntry[], ref: DockerArchiveRef): ArchiveEntry {
  if (ref.sourceIndex !== undefined) {
    const e = entries[ref.sourceIndex];
    if (!e) throw new SkiffError('ERR_IMAGE_NOT_FOUND', `${ref}: the archive holds ${entries.length} image(s), no @${ref.sourceIndex}`);
    return e;
  }
  if (ref.named) {
    const want = formatDockerReference(ref.named);
    const e = entries.find((x) => (x.RepoTags ?? []).some((t) => {
      try {
        return formatDockerReference(withDefaultTag(parseDockerReference(t))) === want;
      } catch {
        return false;
      }
    }));
    if (!e) throw new SkiffError('ERR_IMAGE_NOT_FOUND', `${ref}: no image tagged ${want} in the archive`);
    return e;
  }
  if (entries.length !== 1) {
    throw new SkiffError(entries.length ? 'ERR_INVALID_REFERENCE' : 'ERR_IMAGE_NOT_FOUND', `${ref}: the archive holds ${entries.length} images; name one with :NAME:TAG or :@N`);
  }
  return entries[0]!;
}

/**
 * Reads `docker save` archives in place (no unpacking): classic ones (`<id>.tar` / `<id>/layer.tar` layers,
 * uncompressed, named by diffID) and Docker 25's dual format (layers at `blobs/sha256/<hex>`). The manifest is
 * synthesised as Docker v2s2 with the layers as they are stored.
 */
export class ArchiveSource implements ImageSource {
  readonly local = true;
  private constructor(
    readonly ref: DockerArchiveRef,
    private readonly tree: TarTree,
    private readonly manifest: Buffer,
    private readonly paths: Map<Digest, string>,
    private readonly tags: string[],
    /** The config, read (and hashed) as the archive opened: given from memory. */
    private readonly config: { digest: Digest; bytes: Buffer },
    private readonly knownHashes?: Promise<TarHashes>,
  ) {}

  /** How many images the archive at `file` holds (its manifest.json entries), for reading each with `@N`. */
  static async imageCount(file: string): Promise<number> {
    const ref = new DockerArchiveRef(file);
    const tree = await openTree(ref);
    try {
      return (await readEntries(tree, ref)).length;
    } finally {
      await tree.close();
    }
  }

  /**
   * `knownHashes`: the digests of its entries, by where their data starts, computed on a thread of their own as it
   * was written: for an archive that is skiff's private spool (a daemon's export), whose layers are then checked
   * off the copy's thread (verifyBlob).
   */
  static async open(ref: DockerArchiveRef, o: { knownHashes?: Promise<TarHashes> } = {}): Promise<ArchiveSource> {
    const tree = await openTree(ref);
    try {
      return await ArchiveSource.read(ref, tree, o.knownHashes);
    } catch (e) {
      await tree.close();
      throw e;
    }
  }

  private static async read(ref: DockerArchiveRef, tree: TarTree, knownHashes?: Promise<TarHashes>): Promise<ArchiveSource> {
    const entry = selectEntry(await readEntries(tree, ref), ref);
    const configBytes = await tree.readFile(entry.Config, 1 << 24).catch((e: unknown) => {
      throw new SkiffError('ERR_INVALID_ARCHIVE', `${ref}: config ${entry.Config}: ${(e as Error).message}`);
    });
    const config = parseConfig(configBytes);
    const configDigest = sha256(configBytes);
    const blobMatch = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(entry.Config);
    if (blobMatch) verifyBuffer(configBytes, `sha256:${blobMatch[1]}`, undefined, `${ref}: config`);
    if (config.rootfs.diff_ids.length !== entry.Layers.length) {
      throw new SkiffError('ERR_INVALID_ARCHIVE', `${ref}: ${entry.Layers.length} layers but the config lists ${config.rootfs.diff_ids.length} diff_ids`);
    }
    const paths = new Map<Digest, string>([[configDigest, entry.Config]]);
    const layers: Descriptor[] = [];
    for (const [i, p] of entry.Layers.entries()) {
      const size = await tree.size(p);
      if (size === undefined) throw new SkiffError('ERR_INVALID_ARCHIVE', `${ref}: layer ${p} missing from the archive`);
      const c = detectCompression(tree.head(p, 8));
      let digest: Digest;
      const named = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(p);
      if (named) digest = `sha256:${named[1]}`;
      else if (c === 'none') digest = config.rootfs.diff_ids[i]!;
      else digest = await hashMember(tree, p);
      const mediaType = c === 'none' ? MT.dockerLayer : c === 'gzip' ? MT.dockerLayerGzip : c === 'zstd' ? MT.ociLayerZstd : undefined;
      if (!mediaType) throw new SkiffError('ERR_UNSUPPORTED', `${ref}: layer ${p} is ${c}-compressed`);
      layers.push({ mediaType, digest, size });
      paths.set(digest, p);
    }
    const m: ImageManifest = {
      kind: 'image',
      mediaType: layers.some((l) => l.mediaType === MT.ociLayerZstd) ? MT.ociManifest : MT.dockerManifest,
      config: { mediaType: MT.dockerConfig, digest: configDigest, size: configBytes.length },
      layers,
    };
    if (m.mediaType === MT.ociManifest) m.config.mediaType = MT.ociConfig;
    return new ArchiveSource(ref, tree, serializeManifest(m), paths, entry.RepoTags ?? [], { digest: configDigest, bytes: configBytes }, knownHashes);
  }

  async getManifest(instance?: Digest): Promise<RawManifest> {
    if (instance && instance !== sha256(this.manifest)) throw new SkiffError('ERR_MANIFEST_UNKNOWN', `${this.ref}: no manifest ${instance}`);
    return { bytes: this.manifest, mediaType: (JSON.parse(this.manifest.toString()) as { mediaType: string }).mediaType };
  }

  async getBlob(desc: Descriptor): Promise<Readable> {
    const p = this.paths.get(desc.digest);
    if (!p) throw new SkiffError('ERR_BLOB_UNKNOWN', `${this.ref}: blob ${desc.digest} not in the archive`);
    if (desc.digest === this.config.digest) return Readable.from([this.config.bytes]);
    return this.tree.open(p);
  }

  verifyBlob(desc: Descriptor, signal?: AbortSignal): Promise<void> | undefined {
    const p = this.paths.get(desc.digest);
    const r = p === undefined ? undefined : this.tree.range(p);
    if (!this.knownHashes || !r || r.size < OFF_THREAD_MIN) return undefined;
    const check = ({ hex, size }: RangeHash): void => {
      const what = `blob ${desc.digest}`;
      if (size !== desc.size) throw new SkiffError('ERR_SIZE_MISMATCH', `${what}: size ${size}, expected ${desc.size}`);
      const got = `${digestAlgorithm(desc.digest)}:${hex}`;
      if (got !== desc.digest) throw new SkiffError('ERR_DIGEST_MISMATCH', `${what}: digest mismatch: got ${got}, expected ${desc.digest}`);
    };
    const hashNow = (): Promise<void> => hashFileRange(this.tree.location, r.offset, r.size, digestAlgorithm(desc.digest), signal).then(check);
    if (digestAlgorithm(desc.digest) !== 'sha256') return hashNow();
    // (An entry not found as written, where the follower lost its way in the tar say, is hashed now.)
    return this.knownHashes.then((known) => {
      const k = known.get(r.offset);
      return k && k.size === r.size ? check(k) : hashNow();
    });
  }

  async blobCrc32(desc: Descriptor): Promise<number | undefined> {
    const p = this.paths.get(desc.digest);
    const r = p === undefined ? undefined : this.tree.range(p);
    if (!r || !this.knownHashes) return undefined;
    // (Only with the digest it was computed with, which verifyBlob checks against the descriptor's.)
    const k = (await this.knownHashes).get(r.offset);
    return k && k.size === r.size && k.size === desc.size && `sha256:${k.hex}` === desc.digest ? k.crc32 : undefined;
  }

  /** The archive's RepoTags for this image (skopeo's inspect shows none for archives; kept for `load`). */
  get archiveTags(): string[] {
    return this.tags;
  }

  async close(): Promise<void> {
    await this.tree.close();
  }
}

async function openTree(ref: DockerArchiveRef): Promise<TarTree> {
  try {
    return await TarTree.open(ref.path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new SkiffError('ERR_IMAGE_NOT_FOUND', `${ref}: ${ref.path}: no such file`);
    throw e;
  }
}

async function readEntries(tree: TarTree, ref: DockerArchiveRef): Promise<ArchiveEntry[]> {
  if ((await tree.size('manifest.json')) === undefined) throw new SkiffError('ERR_INVALID_ARCHIVE', `${ref}: not a docker archive (no manifest.json)`);
  return parseArchiveManifest(await tree.readFile('manifest.json', 1 << 24), String(ref));
}

async function hashMember(tree: TarTree, p: string): Promise<Digest> {
  const h = new Hasher();
  await pipeline(await tree.open(p), h, new Writable({ write: (_c, _e, cb) => cb() }));
  return h.digest;
}

/** Blobs smaller than this are checked as they stream: the round trip to the worker costs more than hashing them. */
const OFF_THREAD_MIN = 1 << 20;

const ARCHIVE_CAPS: DestinationCaps = { manifestTypes: [MT.dockerManifest], compression: 'decompress', multiImage: false, sequential: true };

/**
 * Writes a `docker save` archive into a temp file beside the target and renames it into place on commit: the
 * archive appears whole or not at all (skopeo instead refuses an existing file and leaves a partial one when
 * killed). Blobs stream straight into the tar when it is free; a blob arriving while another is being written is
 * spooled to a temp file and appended later, so parallel copies never wait on each other.
 */
export class ArchiveDestination implements ImageDestination {
  readonly caps = ARCHIVE_CAPS;
  private manifest: ImageManifest | undefined;
  private committed = false;
  /** digest -> member name, for blobs already in the tar. */
  private readonly inTar = new Map<Digest, string>();
  /** digest -> spool file, for blobs waiting to be appended. */
  private readonly spooled = new Map<Digest, { file: string; size: number; isConfig: boolean }>();
  /** Is the member being written now a small one (worth waiting for)? */
  private smallInTar = false;
  /** For blobs whose order is known (BlobInfo.order): the next one's, and spooled ones by theirs. */
  private next = 0;
  private readonly waitingAt = new Map<number, Digest>();
  /** Places whose blob the archive holds already (skipped). */
  private readonly presentAt = new Set<number>();
  /** manifest.json and `repositories` so far (images recorded), and the legacy layer dirs written. */
  private readonly entries: ArchiveEntry[] = [];
  private readonly repositories: Record<string, Record<string, string>> = {};
  private readonly legacyDirs = new Set<string>();
  private constructor(
    readonly ref: DockerArchiveRef,
    private readonly stage: string,
    private readonly tar: TarAppender,
  ) {}

  /** Further names for the image (skopeo's --additional-tag). */
  additionalTags: DockerReference[] = [];

  static async open(ref: DockerArchiveRef): Promise<ArchiveDestination> {
    if (ref.sourceIndex !== undefined) throw new SkiffError('ERR_INVALID_REFERENCE', `${ref}: @N selects an image to read; it cannot name one to write`);
    const st = await fsp.stat(ref.path).catch(() => undefined);
    if (st?.isDirectory()) throw new SkiffError('ERR_DESTINATION', `${ref}: ${ref.path} is a directory`);
    await fsp.mkdir(path.dirname(path.resolve(ref.path)), { recursive: true });
    await sweepStaleTemps(ref.path);
    const stage = tempSibling(ref.path, '.d');
    await fsp.mkdir(stage);
    return new ArchiveDestination(ref, stage, await TarAppender.create(`${stage}.tar`));
  }

  async hasBlob(desc: Descriptor, _from?: unknown, order?: number): Promise<boolean> {
    const has = this.inTar.has(desc.digest) || this.spooled.has(desc.digest);
    // (A blob already in, shared with an image before: its turn is taken, the ones after it need not wait for it.)
    if (has && order !== undefined) {
      this.presentAt.add(order);
      await this.drainInOrder();
    }
    return has;
  }

  private memberName(d: Digest, isConfig: boolean): string {
    return `${digestHex(d)}.${isConfig ? 'json' : 'tar'}`;
  }

  async putBlob(stream: Readable, info: BlobInfo): Promise<{ digest: Digest; size: number }> {
    if (info.order !== undefined) return this.putInOrder(stream, info, info.order);
    // A small member (the config) finishes in moments: wait for it rather than spool a large layer to disk and
    // copy it into the tar again later.
    while (this.tar.busy && this.smallInTar) await this.tar.idle();
    if (!this.tar.busy) {
      this.smallInTar = info.size !== undefined && info.size < 1024 * 1024;
      return this.appendDirect(stream, info);
    }
    return this.spool(stream, info);
  }

  /**
   * Blobs whose place is known go into the tar in that order (containers/image's: layers, then the config), so the
   * archive is the same whatever order they finish in: the next one streams straight in, any other waits in a
   * spool file and follows as soon as those before it are in.
   */
  private async putInOrder(stream: Readable, info: BlobInfo, order: number): Promise<{ digest: Digest; size: number }> {
    while (order === this.next && this.tar.busy) await this.tar.idle();
    if (order === this.next) {
      const got = await this.appendDirect(stream, info);
      this.next++;
      await this.drainInOrder();
      return got;
    }
    const got = await this.spool(stream, info);
    this.waitingAt.set(order, got.digest);
    await this.drainInOrder();
    return got;
  }

  /** Append the spooled blobs that are next in order (each one's turn may have come while it was spooled). */
  private async drainInOrder(): Promise<void> {
    for (;;) {
      if (this.presentAt.delete(this.next)) {
        this.next++;
        continue;
      }
      if (this.tar.busy || !this.waitingAt.has(this.next)) return;
      const d = this.waitingAt.get(this.next)!;
      this.waitingAt.delete(this.next);
      this.next++;
      await this.appendSpooled(d);
    }
  }

  private async appendDirect(stream: Readable, info: BlobInfo): Promise<{ digest: Digest; size: number }> {
    const got = await this.tar.appendStream(stream, (digest, size) => {
      checkBlob(info, { digest, size }, String(this.ref));
      return this.memberName(digest, info.isConfig);
    }, info.digest);
    this.inTar.set(got.digest, this.memberName(got.digest, info.isConfig));
    return got;
  }

  private async spool(stream: Readable, info: BlobInfo): Promise<{ digest: Digest; size: number }> {
    const t = await streamToTempFile(stream, this.stage, info.digest);
    try {
      checkBlob(info, t, String(this.ref));
    } catch (e) {
      await fsp.rm(t.path, { force: true });
      throw e;
    }
    this.spooled.set(t.digest, { file: t.path, size: t.size, isConfig: info.isConfig });
    return { digest: t.digest, size: t.size };
  }

  /** Move a spooled blob into the tar. */
  private async appendSpooled(d: Digest): Promise<void> {
    const sp = this.spooled.get(d);
    if (!sp) return;
    this.spooled.delete(d);
    await this.tar.appendFile(this.memberName(d, sp.isConfig), sp.file, sp.size);
    this.inTar.set(d, this.memberName(d, sp.isConfig));
    await fsp.rm(sp.file, { force: true });
  }

  async putManifest(m: RawManifest, instance?: Digest): Promise<void> {
    if (instance) throw new SkiffError('ERR_UNSUPPORTED', `${this.ref}: docker-archive holds single images, not an index`);
    if (this.manifest) throw new SkiffError('ERR_DESTINATION', `${this.ref}: a second image before the first was recorded`);
    const parsed = parseManifest(m.bytes, m.mediaType);
    if (parsed.kind !== 'image') throw new SkiffError('ERR_UNSUPPORTED', `${this.ref}: docker-archive cannot store an index`);
    this.manifest = parsed;
  }

  async commit(): Promise<void> {
    await this.recordImage([...(this.ref.named ? [this.ref.named] : []), ...this.additionalTags]);
    await this.finish();
  }

  /**
   * Close the image copied so far into the archive under `tags` (its manifest.json entry, legacy layer dirs), so
   * another can follow into the same archive; blobs the images share are stored once.
   */
  async recordImage(tags: DockerReference[]): Promise<void> {
    const m = this.manifest;
    if (!m) throw new SkiffError('ERR_DESTINATION', `${this.ref}: commit without a manifest`);
    this.manifest = undefined;
    // The config is small: read it before finishing the tar (TarTree needs end blocks, so keep a copy now).
    const configBytes = this.spooled.has(m.config.digest) ? await fsp.readFile(this.spooled.get(m.config.digest)!.file) : undefined;
    // Blobs that waited in spool files go in in the manifest's order, layers then the config, as c/image writes
    // them (it copies one blob at a time, in that order), not in the order they happened to finish.
    const order = [...m.layers.map((l) => l.digest), m.config.digest];
    const rank = (d: Digest): number => {
      const i = order.indexOf(d);
      return i < 0 ? order.length : i;
    };
    for (const d of [...this.spooled.keys()].sort((a, b) => rank(a) - rank(b))) await this.appendSpooled(d);
    // (A further image of the archive counts its blobs from the start again.)
    this.next = 0;
    this.waitingAt.clear();
    this.presentAt.clear();
    const config = configBytes ?? (await this.readMember(this.inTar.get(m.config.digest)));
    const layerNames = m.layers.map((l) => this.inTar.get(l.digest) ?? this.memberName(l.digest, false));
    // Legacy v1 metadata (docker load before 1.10 and some tools read it): one dir per layer, chained by parent,
    // written as containers/image writes it (legacy.ts), so the archive is skopeo's byte for byte.
    let parent = '';
    for (const [i, legacy] of legacyLayers(m.layers.map((l) => l.digest), config).entries()) {
      if (!this.legacyDirs.has(legacy.id)) {
        this.legacyDirs.add(legacy.id);
        await this.tar.appendEntry(`${legacy.id}/layer.tar`, 'symlink', `../${layerNames[i]}`, 0);
        await this.tar.appendData(`${legacy.id}/VERSION`, Buffer.from('1.0'));
        await this.tar.appendData(`${legacy.id}/json`, legacy.json);
      }
      parent = legacy.id;
    }
    const cfgName = this.inTar.get(m.config.digest) ?? this.memberName(m.config.digest, true);
    this.entries.push({ Config: cfgName, RepoTags: tags.map((t) => formatDockerReference(t)), Layers: layerNames });
    if (parent) {
      for (const t of tags) {
        const repo = formatDockerReference({ domain: t.domain, path: t.path });
        (this.repositories[repo] ??= {})[t.tag ?? 'latest'] = parent;
      }
    }
  }

  /** Write manifest.json (every recorded image) and move the archive into place. */
  async finish(): Promise<void> {
    await this.tar.appendData('manifest.json', Buffer.from(JSON.stringify(this.entries)));
    if (Object.keys(this.repositories).length) await this.tar.appendData('repositories', repositoriesJSON(this.repositories));
    await this.tar.finish();
    await fsp.rename(this.tar.file, this.ref.path);
    this.committed = true;
    await removeTree(this.stage);
  }

  /** Read a member already written to the (unfinished) tar, by scanning its header offsets ourselves. */
  private async readMember(name: string | undefined): Promise<Buffer> {
    if (!name) throw new SkiffError('ERR_DESTINATION', `${this.ref}: the config was never stored`);
    return this.tar.readMember(name);
  }

  async close(): Promise<void> {
    if (!this.committed) {
      await this.tar.abort();
      await fsp.rm(this.tar.file, { force: true });
    }
    await removeTree(this.stage);
  }
}

/**
 * Several images into one docker-archive (`docker save a b`, `podman save -m`): `image(tags)` is a destination for
 * one copy, whose commit records that image under `tags` instead of closing the archive; `finish` writes it whole.
 */
export class MultiImageArchive {
  private constructor(private readonly dest: ArchiveDestination) {}

  static async open(file: string): Promise<MultiImageArchive> {
    return new MultiImageArchive(await ArchiveDestination.open(new DockerArchiveRef(file)));
  }

  image(tags: DockerReference[]): ImageDestination {
    const d = this.dest;
    return {
      ref: d.ref,
      caps: d.caps,
      hasBlob: (desc, from, order) => d.hasBlob(desc, from, order),
      putBlob: (stream, info) => d.putBlob(stream, info),
      putManifest: (m, instance) => d.putManifest(m, instance),
      commit: () => d.recordImage(tags),
      // (The archive is closed once, by the caller, after all images.)
      close: async () => undefined,
    };
  }

  finish(): Promise<void> {
    return this.dest.finish();
  }

  close(): Promise<void> {
    return this.dest.close();
  }
}

export const dockerArchiveTransport: Transport = {
  name: 'docker-archive',
  parse: parseDockerArchiveSpec,

  async openSource(ref) {
    return ArchiveSource.open(ref as DockerArchiveRef);
  },
  async openDestination(ref, opts = {}) {
    const d = await ArchiveDestination.open(ref as DockerArchiveRef);
    d.additionalTags = opts.additionalTags ?? [];
    return d;
  },
};
