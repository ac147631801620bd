import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import type { Digest } from '../../src/core/digest.js';
import { SkiffError } from '../../src/core/errors.js';
import { sweepStaleTemps, tempSibling, removeTree } from '../../src/core/fs.js';
import type { BlobInfo, ImageDestination, ImageRef, Transport } from '../../src/core/image.js';
import type { Descriptor, RawManifest } from '../../src/core/manifest.js';
import { TarTree } from '../../src/archive/tar-index.js';
import { TarAppender } from '../../src/archive/tar-append.js';
import { LayoutDestination, LayoutSource, OCI_CAPS, OciRef } from '../oci/index.js';
import { parseOciArchiveSpec } from '../oci/ref.js';

/**
 * oci-archive: writes an OCI layout into a temp dir beside the target, then on commit tars it into a temp file and
 * renames that over the target: the archive appears whole or not at all.
 */
class ArchiveDestination implements ImageDestination {
  private committed = false;
  private constructor(
    readonly ref: ImageRef,
    private readonly file: string,
    private readonly layout: LayoutDestination,
    private readonly stageDir: string,
  ) {}

  get caps() {
    return this.layout.caps;
  }

  static async open(ref: OciRef, acceptUncompressedLayers = false): Promise<ArchiveDestination> {
    const file = ref.path;
    const st = await fsp.stat(file).catch(() => undefined);
    if (st?.isDirectory()) throw new SkiffError('ERR_DESTINATION', `${ref}: ${file} is a directory`);
    await fsp.mkdir(path.dirname(path.resolve(file)), { recursive: true });
    await sweepStaleTemps(file);
    const stageDir = tempSibling(file, '.d');
    const layout = await LayoutDestination.open(ref, stageDir, ref.name);
    if (acceptUncompressedLayers) layout.caps = { ...OCI_CAPS, compression: 'preserve' };
    return new ArchiveDestination(ref, file, layout, stageDir);
  }

  hasBlob(desc: Descriptor): Promise<boolean> {
    return this.layout.hasBlob(desc);
  }
  putBlob(stream: Readable, info: BlobInfo): Promise<{ digest: Digest; size: number }> {
    return this.layout.putBlob(stream, info);
  }
  putManifest(m: RawManifest, instance?: Digest): Promise<void> {
    return this.layout.putManifest(m, instance);
  }

  async commit(): Promise<void> {
    await this.layout.commit();
    const tmp = tempSibling(this.file);
    const tar = await TarAppender.create(tmp);
    const walk = async (rel: string): Promise<void> => {
      const entries = await fsp.readdir(path.join(this.stageDir, rel), { withFileTypes: true });
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (const e of entries) {
        const r = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) {
          await tar.appendEntry(`${r}/`, 'dir');
          await walk(r);
        } else {
          const full = path.join(this.stageDir, r);
          await tar.appendFile(r, full, (await fsp.stat(full)).size);
        }
      }
    };
    try {
      await walk('');
      await tar.finish();
      await fsp.rename(tmp, this.file);
    } catch (e) {
      await tar.abort();
      await fsp.rm(tmp, { force: true });
      throw e;
    }
    this.committed = true;
    await removeTree(this.stageDir);
  }

  async close(): Promise<void> {
    if (!this.committed) await this.layout.close();
    await removeTree(this.stageDir);
  }
}

export const ociArchiveTransport: Transport = {
  name: 'oci-archive',
  parse: parseOciArchiveSpec,
  async openSource(ref) {
    const r = ref as OciRef;
    let tree: TarTree;
    try {
      tree = await TarTree.open(r.path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new SkiffError('ERR_IMAGE_NOT_FOUND', `${r}: ${r.path}: no such file`);
      throw e;
    }
    return LayoutSource.open(r, tree, r.name);
  },
  async openDestination(ref, opts = {}) {
    return ArchiveDestination.open(ref as OciRef, !!opts.acceptUncompressedLayers);
  },
};
