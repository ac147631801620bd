import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { digestHex, parseDigest, verifyBuffer, type Digest } from '../../src/core/digest.js';
import { SkiffError } from '../../src/core/errors.js';
import type { ImageRef, ImageSource } from '../../src/core/image.js';
import { guessManifestType, parseManifest, type Descriptor, type IndexManifest, type RawManifest } from '../../src/core/manifest.js';
import { MT } from '../../src/core/media-types.js';
import { DirTree, type FileTree } from '../../src/archive/file-tree.js';

export const REF_NAME = 'org.opencontainers.image.ref.name';
export { splitPathAndName } from './ref.js';
// containers/image's refRegexp for the name part of oci:PATH:NAME.

/** Split `PATH[:NAME]` at the first colon (containers-transports(5)); validate NAME. */

/** Blob `d` under a blob directory (the layout's `blobs/`, or a shared one): `sha256/<hex>`. */
function blobName(d: Digest): string {
  return `${d.slice(0, d.indexOf(':'))}/${digestHex(d)}`;
}

export function blobPath(d: Digest): string {
  return `blobs/${blobName(d)}`;
}

export function parseIndexJSON(bytes: Buffer, where: string): IndexManifest {
  // index.json may lack mediaType (c/image writes none): it is an OCI index by definition.
  try {
    const m = parseManifest(bytes, MT.ociIndex);
    if (m.kind !== 'index') throw new SkiffError('ERR_INVALID_MANIFEST', 'index.json is not an image index');
    return m;
  } catch (e) {
    throw new SkiffError('ERR_INVALID_MANIFEST', `${where}/index.json: ${(e as Error).message}`, { cause: e });
  }
}

/** Pick the index.json entry for `name` (or the only entry when no name is given). */
export function selectEntry(index: IndexManifest, name: string | undefined, ref: ImageRef): Descriptor {
  if (name === undefined) {
    if (index.manifests.length === 1) return index.manifests[0]!;
    if (index.manifests.length === 0) throw new SkiffError('ERR_IMAGE_NOT_FOUND', `${ref}: no image in the layout`);
    throw new SkiffError('ERR_INVALID_REFERENCE', `${ref}: the layout holds ${index.manifests.length} images; name one (${ref}:NAME)`);
  }
  const found = index.manifests.filter((d) => d.annotations?.[REF_NAME] === name);
  if (found.length === 0) throw new SkiffError('ERR_IMAGE_NOT_FOUND', `${ref}: no image named ${JSON.stringify(name)} in the layout`);
  return found[0]!;
}

/** An ImageSource over an OCI layout in any FileTree (a directory for oci:, a tar for oci-archive:). */
export class LayoutSource implements ImageSource {
  readonly local = true;
  /** Where blobs are read: the layout's `blobs/`, or a shared blob directory (`sha256/<hex>` in it). */
  private readonly blobs: FileTree;
  private readonly blobName: (d: Digest) => string;
  constructor(
    readonly ref: ImageRef,
    private readonly tree: FileTree,
    private readonly top: Descriptor,
    sharedBlobDir?: string,
  ) {
    this.blobs = sharedBlobDir ? new DirTree(sharedBlobDir) : tree;
    this.blobName = sharedBlobDir ? blobName : blobPath;
  }

  static async open(ref: ImageRef, tree: FileTree, name: string | undefined, sharedBlobDir?: string): Promise<LayoutSource> {
    if ((await tree.size('oci-layout')) === undefined) {
      throw new SkiffError('ERR_IMAGE_NOT_FOUND', `${ref}: no OCI layout at ${tree.location} (oci-layout file missing)`);
    }
    const layout = await tree.readFile('oci-layout', 1 << 16);
    try {
      const v = (JSON.parse(layout.toString()) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
      if (typeof v !== 'string') throw new Error('no imageLayoutVersion');
    } catch (e) {
      throw new SkiffError('ERR_INVALID_MANIFEST', `${tree.location}/oci-layout: ${(e as Error).message}`);
    }
    const index = parseIndexJSON(await tree.readFile('index.json', 1 << 24), tree.location);
    return new LayoutSource(ref, tree, selectEntry(index, name, ref), sharedBlobDir);
  }

  private async readBlob(d: Digest, size: number | undefined, what: string): Promise<Buffer> {
    if ((await this.blobs.size(this.blobName(d))) === undefined) throw new SkiffError('ERR_MANIFEST_UNKNOWN', `${this.ref}: ${what} ${d} not found in ${this.blobs.location}`);
    const buf = await this.blobs.readFile(this.blobName(d), 1 << 24);
    verifyBuffer(buf, d, size, `${what} ${d}`);
    return buf;
  }

  async getManifest(instance?: Digest): Promise<RawManifest> {
    if (!instance || instance === this.top.digest) {
      const bytes = await this.readBlob(this.top.digest, this.top.size, 'manifest');
      return { bytes, mediaType: guessManifestType(bytes) || this.top.mediaType };
    }
    const bytes = await this.readBlob(parseDigest(instance), undefined, 'manifest');
    return { bytes, mediaType: guessManifestType(bytes) };
  }

  async getBlob(desc: Descriptor): Promise<Readable> {
    if ((await this.blobs.size(this.blobName(desc.digest))) === undefined) {
      throw new SkiffError('ERR_BLOB_UNKNOWN', `${this.ref}: blob ${desc.digest} not found in ${this.blobs.location}`);
    }
    return this.blobs.open(this.blobName(desc.digest));
  }

  async close(): Promise<void> {
    await this.tree.close();
  }
}

/**
 * Writes into an OCI layout directory. Blobs go in as temp file + rename (complete, hashed files only);
 * index.json is rewritten atomically on commit. Blobs this writer added are removed again if it closes uncommitted.
 */
export class LayoutWriter {
  private readonly added: string[] = [];
  top: Descriptor | undefined;
  /** Where blobs go: `blobs/` in the layout, or a shared blob directory several layouts use. */
  readonly blobDir: string;
  constructor(
    readonly dir: string,
    private readonly sharedBlobDir?: string,
  ) {
    this.blobDir = sharedBlobDir ? path.resolve(sharedBlobDir) : path.join(dir, 'blobs');
  }

  /** The file of blob `d`. */
  blobFile(d: Digest): string {
    return path.join(this.blobDir, blobName(d));
  }

  async init(): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true });
    await fsp.mkdir(path.join(this.blobDir, 'sha256'), { recursive: true });
  }

  async hasBlob(d: Digest): Promise<boolean> {
    try {
      return (await fsp.stat(this.blobFile(d))).isFile();
    } catch {
      return false;
    }
  }

  /** Move a complete temp file into place as the blob `d`. */
  async adoptBlob(tmp: string, d: Digest): Promise<void> {
    const dest = this.blobFile(d);
    if (await this.hasBlob(d)) {
      await fsp.rm(tmp, { force: true });
      return;
    }
    await fsp.mkdir(path.dirname(dest), { recursive: true });
    await fsp.rename(tmp, dest);
    this.added.push(dest);
  }

  async putManifest(m: RawManifest, digest: Digest, isTop: boolean): Promise<void> {
    const dest = this.blobFile(digest);
    if (!(await this.hasBlob(digest))) {
      const tmp = path.join(this.blobDir, 'sha256', `.tmp-${process.pid}-${digestHex(digest).slice(0, 12)}`);
      await fsp.writeFile(tmp, m.bytes);
      await fsp.rename(tmp, dest);
      this.added.push(dest);
    }
    if (isTop) this.top = { mediaType: m.mediaType, digest, size: m.bytes.length };
  }

  /** Record the top manifest in index.json under `name`: the name moves off any older entry that had it. */
  async commit(name: string | undefined, atomicWrite: (file: string, data: string) => Promise<void>): Promise<void> {
    if (!this.top) throw new SkiffError('ERR_DESTINATION', `${this.dir}: commit without a manifest`);
    const indexFile = path.join(this.dir, 'index.json');
    let manifests: Descriptor[] = [];
    try {
      manifests = parseIndexJSON(await fsp.readFile(indexFile), this.dir).manifests;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    const entry: Descriptor = { ...this.top };
    if (name !== undefined) entry.annotations = { [REF_NAME]: name };
    manifests = manifests.filter((d) => (name !== undefined ? d.annotations?.[REF_NAME] !== name : !(d.digest === entry.digest && !d.annotations?.[REF_NAME])));
    manifests.push(entry);
    if (!(await fsp.stat(path.join(this.dir, 'oci-layout')).catch(() => undefined))) {
      await atomicWrite(path.join(this.dir, 'oci-layout'), '{"imageLayoutVersion": "1.0.0"}');
    }
    const index = { schemaVersion: 2, manifests: manifests.map((d) => ({ mediaType: d.mediaType, digest: d.digest, size: d.size, ...(d.annotations ? { annotations: d.annotations } : {}), ...(d.platform ? { platform: d.platform } : {}) })) };
    await atomicWrite(indexFile, JSON.stringify(index));
    this.added.length = 0;
  }

  /** Move every blob of this (staging) layout into `target`, skipping those it has. */
  async moveBlobsInto(target: LayoutWriter): Promise<void> {
    // (One shared blob directory: the blobs are already where the target reads them.)
    if (target.blobDir === this.blobDir) return;
    const dir = path.join(this.blobDir, 'sha256');
    for (const name of await fsp.readdir(dir)) {
      if (name.startsWith('.')) continue;
      await target.adoptBlob(path.join(dir, name), `sha256:${name}`);
    }
  }

  /** Hand the top manifest descriptor to `target`, whose commit will then record it. */
  async moveTopInto(target: LayoutWriter): Promise<void> {
    target.top = this.top;
  }

  /**
   * Undo an uncommitted write: remove the blobs this writer added. (Not from a shared blob directory: another copy
   * may have found a blob there meanwhile and be about to record it; a blob left there is only unreferenced.)
   */
  async discard(): Promise<void> {
    if (!this.sharedBlobDir) await Promise.all(this.added.map((f) => fsp.rm(f, { force: true })));
    this.added.length = 0;
  }
}
