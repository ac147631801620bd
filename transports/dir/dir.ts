import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { checkBlob, digestHex, parseDigest, verifyBuffer, type Digest } from '../../src/core/digest.js';
import { SkiffError } from '../../src/core/errors.js';
import { atomicWriteFile, streamToTempFile, sweepStaleTemps, tempSibling, removeTree } from '../../src/core/fs.js';
import type { BlobInfo, DestinationCaps, ImageDestination, ImageSource, Transport } from '../../src/core/image.js';
import { guessManifestType, manifestDigest, type Descriptor, type RawManifest } from '../../src/core/manifest.js';
import { DirTree } from '../../src/archive/file-tree.js';
import { DirRef, parseDirSpec } from './ref.js';

export { DirRef };

const VERSION = 'Directory Transport Version: 1.1\n';


/** File name of a blob in a dir: image: `<hex>` for sha256 (c/image names non-sha256 blobs the same way). */
function blobName(d: Digest): string {
  return digestHex(d);
}

function signatureName(i: number, instance?: Digest): string {
  return instance ? `${blobName(instance)}.signature-${i}` : `signature-${i}`;
}

class DirSource implements ImageSource {
  readonly local = true;
  constructor(
    readonly ref: DirRef,
    private readonly tree: DirTree,
  ) {}

  async getManifest(instance?: Digest): Promise<RawManifest> {
    const file = instance ? `${blobName(parseDigest(instance))}.manifest.json` : 'manifest.json';
    if ((await this.tree.size(file)) === undefined) {
      throw new SkiffError(instance ? 'ERR_MANIFEST_UNKNOWN' : 'ERR_IMAGE_NOT_FOUND', `${this.ref}: no ${file}`);
    }
    const bytes = await this.tree.readFile(file, 1 << 24);
    if (instance) verifyBuffer(bytes, instance, undefined, `manifest ${instance}`);
    return { bytes, mediaType: guessManifestType(bytes) };
  }

  /** signature-1, signature-2, … (an instance's: <hex>.signature-N), as c/image's dir: keeps them. */
  async getSignatures(instance?: Digest): Promise<{ signatures: Buffer[]; manifest: Digest }> {
    const signatures: Buffer[] = [];
    for (let i = 1; ; i++) {
      const name = signatureName(i, instance);
      if ((await this.tree.size(name)) === undefined) break;
      signatures.push(await this.tree.readFile(name, 1 << 22));
    }
    return { signatures, manifest: instance ?? manifestDigest((await this.getManifest()).bytes) };
  }

  async getBlob(desc: Descriptor): Promise<Readable> {
    if ((await this.tree.size(blobName(desc.digest))) === undefined) {
      throw new SkiffError('ERR_BLOB_UNKNOWN', `${this.ref}: blob ${desc.digest} not found`);
    }
    return this.tree.open(blobName(desc.digest));
  }

  async close(): Promise<void> {}
}

const DIR_CAPS: DestinationCaps = {
  // dir: stores any manifest type as is (c/image: no restriction) and keeps layers as they come.
  manifestTypes: [
    'application/vnd.oci.image.manifest.v1+json',
    'application/vnd.docker.distribution.manifest.v2+json',
    'application/vnd.oci.image.index.v1+json',
    'application/vnd.docker.distribution.manifest.list.v2+json',
  ],
  compression: 'preserve',
  multiImage: true,
};

/**
 * dir: destination. Writes into a temp sibling directory; commit writes `version` last and swaps the directory
 * into place, so a failed or killed copy leaves the old contents (or nothing) rather than a half image.
 * Like c/image, refuses a non-empty directory that has no `version` file (it is not ours to empty).
 */
class DirDestination implements ImageDestination {
  readonly caps = DIR_CAPS;
  private committed = false;
  constructor(
    readonly ref: DirRef,
    private readonly stage: string,
  ) {}

  static async open(ref: DirRef): Promise<DirDestination> {
    const target = ref.path;
    const st = await fsp.stat(target).catch(() => undefined);
    if (st) {
      if (!st.isDirectory()) throw new SkiffError('ERR_DESTINATION', `${ref}: ${target} exists and is not a directory`);
      const names = await fsp.readdir(target);
      if (names.length > 0 && !names.includes('version')) {
        throw new SkiffError('ERR_DESTINATION', `${ref}: ${target} is not empty and is not a dir: image (no version file); refusing to overwrite it`);
      }
    } else {
      await fsp.mkdir(path.dirname(path.resolve(target)), { recursive: true });
    }
    await sweepStaleTemps(target);
    const stage = tempSibling(target);
    await fsp.mkdir(stage);
    return new DirDestination(ref, stage);
  }

  async hasBlob(desc: Descriptor): Promise<boolean> {
    return !!(await fsp.stat(path.join(this.stage, blobName(desc.digest))).catch(() => undefined));
  }

  async putBlob(stream: Readable, info: BlobInfo): Promise<{ digest: Digest; size: number }> {
    const t = await streamToTempFile(stream, this.stage, info.digest);
    try {
      checkBlob(info, t, String(this.ref));
      await fsp.rename(t.path, path.join(this.stage, blobName(t.digest)));
    } catch (e) {
      await fsp.rm(t.path, { force: true });
      throw e;
    }
    return { digest: t.digest, size: t.size };
  }

  async putManifest(m: RawManifest, instance?: Digest): Promise<void> {
    const name = instance ? `${blobName(manifestDigest(m.bytes))}.manifest.json` : 'manifest.json';
    await fsp.writeFile(path.join(this.stage, name), m.bytes);
  }

  /** As c/image's dir: writes them: signature-1, signature-2, … beside manifest.json (an instance's <hex>.signature-N). */
  async putSignatures(signatures: Buffer[], instance?: Digest): Promise<void> {
    for (const [i, sig] of signatures.entries()) await fsp.writeFile(path.join(this.stage, signatureName(i + 1, instance)), sig);
  }

  async commit(): Promise<void> {
    await atomicWriteFile(path.join(this.stage, 'version'), VERSION);
    const target = this.ref.path;
    const old = (await fsp.stat(target).catch(() => undefined)) ? tempSibling(target, '.old') : undefined;
    if (old) await fsp.rename(target, old);
    try {
      await fsp.rename(this.stage, target);
    } catch (e) {
      if (old) await fsp.rename(old, target);
      throw e;
    }
    this.committed = true;
    if (old) await removeTree(old);
  }

  async close(): Promise<void> {
    if (!this.committed) await removeTree(this.stage);
  }
}

export const dirTransport: Transport = {
  name: 'dir',
  parse: parseDirSpec,
  async openSource(ref) {
    const r = ref as DirRef;
    const st = await fsp.stat(r.path).catch(() => undefined);
    if (!st?.isDirectory()) throw new SkiffError('ERR_IMAGE_NOT_FOUND', `${r}: ${r.path}: no such directory`);
    return new DirSource(r, new DirTree(r.path));
  },
  async openDestination(ref) {
    return DirDestination.open(ref as DirRef);
  },
};
