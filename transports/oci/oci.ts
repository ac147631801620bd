import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { manifestDigest, type RawManifest, type Descriptor } from '../../src/core/manifest.js';
import { checkBlob, type Digest } from '../../src/core/digest.js';
import { SkiffError } from '../../src/core/errors.js';
import { atomicWriteFile, exists, removeTree, streamToTempFile, sweepStaleTemps, tempSibling, withLockFile } from '../../src/core/fs.js';
import type { BlobInfo, DestinationCaps, ImageDestination, ImageRef, Transport } from '../../src/core/image.js';
import { MT } from '../../src/core/media-types.js';
import { DirTree } from '../../src/archive/file-tree.js';
import { LayoutSource, LayoutWriter } from './layout.js';
import { OciRef, parseOciSpec } from './ref.js';

export { OciRef };


export const OCI_CAPS: DestinationCaps = { manifestTypes: [MT.ociManifest, MT.ociIndex], compression: 'compress', multiImage: true };

/**
 * Destination for an OCI layout directory. A layout that does not exist yet is built in a temp sibling and renamed
 * into place on commit, so an interrupted copy leaves no half layout; an existing one gets blobs first and its
 * index.json replaced atomically last.
 */
export class LayoutDestination implements ImageDestination {
  caps: DestinationCaps = OCI_CAPS;
  private committed = false;
  private constructor(
    readonly ref: ImageRef,
    private readonly finalPath: string,
    private readonly stage: string | undefined,
    private readonly writer: LayoutWriter,
    private readonly name: string | undefined,
    private readonly sharedBlobDir?: string,
  ) {}

  static async open(ref: ImageRef, dir: string, name: string | undefined, sharedBlobDir?: string): Promise<LayoutDestination> {
    await sweepStaleTemps(dir);
    const st = await fsp.stat(dir).catch(() => undefined);
    if (st && !st.isDirectory()) throw new SkiffError('ERR_DESTINATION', `${ref}: ${dir} exists and is not a directory`);
    const stage = st ? undefined : tempSibling(dir);
    if (stage) await fsp.mkdir(path.dirname(stage), { recursive: true });
    // (With a shared blob directory, blobs go straight there, content-addressed: only index.json is staged.)
    const writer = new LayoutWriter(stage ?? dir, sharedBlobDir);
    await writer.init();
    return new LayoutDestination(ref, dir, stage, writer, name, sharedBlobDir);
  }

  get workDir(): string {
    return this.writer.dir;
  }

  async hasBlob(desc: Descriptor): Promise<boolean> {
    return this.writer.hasBlob(desc.digest);
  }

  async putBlob(stream: Readable, info: BlobInfo): Promise<{ digest: Digest; size: number }> {
    const t = await streamToTempFile(stream, path.join(this.writer.blobDir, 'sha256'), info.digest);
    try {
      checkBlob(info, t, String(this.ref));
    } catch (e) {
      await fsp.rm(t.path, { force: true });
      throw e;
    }
    await this.writer.adoptBlob(t.path, t.digest);
    return { digest: t.digest, size: t.size };
  }

  async putManifest(m: RawManifest, instance?: Digest): Promise<void> {
    await this.writer.putManifest(m, manifestDigest(m.bytes), instance === undefined);
  }

  /**
   * Write index.json (and oci-layout). A new layout is moved into place whole; if another writer created it in
   * the meantime (parallel syncs into one layout), our blobs are moved into theirs and the index merged. index.json
   * is read, changed and replaced under a lock file, so concurrent writers never lose each other's entries.
   */
  async commit(): Promise<void> {
    const lock = path.join(path.dirname(this.finalPath), `.${path.basename(this.finalPath)}.lock-skiff`);
    await withLockFile(lock, async () => {
      if (this.stage && !(await exists(this.finalPath))) {
        await this.writer.commit(this.name, (f, d) => atomicWriteFile(f, d));
        await fsp.rename(this.stage, this.finalPath);
        return;
      }
      if (this.stage) {
        const target = new LayoutWriter(this.finalPath, this.sharedBlobDir);
        await target.init();
        await this.writer.moveBlobsInto(target);
        await this.writer.moveTopInto(target);
        await target.commit(this.name, (f, d) => atomicWriteFile(f, d));
        await removeTree(this.stage);
        return;
      }
      await this.writer.commit(this.name, (f, d) => atomicWriteFile(f, d));
    });
    this.committed = true;
  }

  async close(): Promise<void> {
    if (this.committed) return;
    if (this.stage) await removeTree(this.stage);
    else await this.writer.discard();
  }
}

export const ociTransport: Transport = {
  name: 'oci',
  parse: parseOciSpec,
  async openSource(ref, opts = {}) {
    const r = ref as OciRef;
    return LayoutSource.open(r, new DirTree(r.path), r.name, opts.sharedBlobDir);
  },
  async openDestination(ref, opts = {}) {
    const r = ref as OciRef;
    const d = await LayoutDestination.open(r, r.path, r.name, opts.sharedBlobDir);
    if (opts.acceptUncompressedLayers) d.caps = { ...OCI_CAPS, compression: 'preserve' };
    return d;
  },
};
