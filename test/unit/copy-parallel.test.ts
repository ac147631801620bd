import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { copyImage } from '../../src/copy/copy.js';
import { SkiffError } from '../../src/core/errors.js';
import type { Digest } from '../../src/core/digest.js';
import type { BlobInfo, DestinationCaps, ImageDestination, ImageRef, ImageSource } from '../../src/core/image.js';
import type { Descriptor, RawManifest } from '../../src/core/manifest.js';
import { MT } from '../../src/core/media-types.js';

const ref = (spec: string): ImageRef => ({ transport: 'mem', spec, toString: () => `mem:${spec}` });
const digest = (b: Buffer): Digest => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** An in-memory image of `n` uncompressed layers whose blobs arrive in slow pieces. */
function source(n: number, local: boolean, events: string[] = []): ImageSource {
  const blobs = new Map<string, Buffer>();
  const put = (b: Buffer): { digest: Digest; size: number } => {
    const d = digest(b);
    blobs.set(d, b);
    return { digest: d, size: b.length };
  };
  const layers = Array.from({ length: n }, (_, i) => Buffer.alloc(4096, i + 1));
  const descs = layers.map((l) => ({ mediaType: MT.ociLayer, ...put(l) }));
  const config = put(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: descs.map((d) => d.digest) } })));
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.ociManifest, config: { mediaType: MT.ociConfig, ...config }, layers: descs }));
  return {
    ref: ref('src'),
    local,
    async getManifest(): Promise<RawManifest> {
      return { bytes: manifest, mediaType: MT.ociManifest };
    },
    async getBlob(d: Descriptor): Promise<Readable> {
      const b = blobs.get(d.digest)!;
      if (d.digest === config.digest) {
        // A slow config: a registry round trip.
        await new Promise((r) => setTimeout(r, 50));
        events.push('config fetched');
        return Readable.from([b]);
      }
      async function* slow(): AsyncGenerator<Buffer> {
        for (let off = 0; off < b.length; off += 1024) {
          await new Promise((r) => setTimeout(r, 5));
          yield b.subarray(off, off + 1024);
        }
      }
      return Readable.from(slow());
    },
    async close(): Promise<void> {},
  };
}

/** A destination that records how many layer blobs were being written at once. */
function destination(sequential: boolean, events: string[] = []): ImageDestination & { most: number } {
  let active = 0;
  const d = {
    ref: ref('dest'),
    caps: { manifestTypes: [MT.ociManifest], compression: 'preserve', multiImage: false, sequential } as DestinationCaps,
    most: 0,
    async hasBlob(): Promise<boolean> {
      return false;
    },
    async putBlob(stream: Readable, info: BlobInfo): Promise<{ digest: Digest; size: number }> {
      const layer = !info.isConfig;
      if (layer) events.push('layer started');
      if (layer) active++;
      d.most = Math.max(d.most, active);
      const parts: Buffer[] = [];
      for await (const c of stream) parts.push(c as Buffer);
      if (layer) active--;
      const b = Buffer.concat(parts);
      return { digest: info.digest ?? digest(b), size: b.length };
    },
    async putManifest(): Promise<void> {},
    async commit(): Promise<void> {},
    async close(): Promise<void> {},
  };
  return d;
}

describe('copy engine: blobs at once', () => {
  it('a sequential destination (one tar stream) gets the blobs of a local source one at a time: nothing to spool', async () => {
    const dest = destination(true);
    await copyImage(source(4, true), dest);
    assert.equal(dest.most, 1);
  });
  it('from a remote source it still gets them in parallel, so downloads overlap', async () => {
    const dest = destination(true);
    await copyImage(source(4, false), dest);
    assert.ok(dest.most > 1, `at most ${dest.most} at once`);
  });
  it('other destinations get a local source in parallel, and --image-parallel-copies is obeyed as given', async () => {
    const dest = destination(false);
    await copyImage(source(4, true), dest);
    assert.ok(dest.most > 1, `at most ${dest.most} at once`);
    const given = destination(true);
    await copyImage(source(4, true), given, { parallel: 3 });
    assert.ok(given.most > 1, `at most ${given.most} at once`);
  });
  it('recompression to zstd (synchronous, on the main thread) runs at most two blobs at once', async () => {
    const dest = destination(false);
    await copyImage(source(6, true), dest, { compressFormat: 'zstd' });
    assert.equal(dest.most, 2);
  });
  it('layers copied as they are start while the config is still being fetched', async () => {
    const events: string[] = [];
    await copyImage(source(3, false, events), destination(false, events));
    assert.equal(events[0], 'layer started', events.join(', '));
    assert.ok(events.includes('config fetched'));
  });
  it('gzip recompression also runs at most two blobs at once', async () => {
    const dest = destination(false);
    await copyImage(source(6, true), dest, { compressFormat: 'gzip' });
    assert.equal(dest.most, 2);
  });
  it('a blob the destination gave up on without reading it is closed at the source before it is tried again', async () => {
    // One 4 MiB layer: more than the copy's stages buffer, so an unread stream stays open unless closed.
    const layer = Buffer.alloc(4 << 20, 7);
    const layerDesc = { mediaType: MT.ociLayer, digest: digest(layer), size: layer.length };
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layerDesc.digest] } }));
    const configDesc = { mediaType: MT.ociConfig, digest: digest(config), size: config.length };
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.ociManifest, config: configDesc, layers: [layerDesc] }));
    const streams: Readable[] = [];
    const src: ImageSource = {
      ref: ref('src'),
      local: true,
      getManifest: async () => ({ bytes: manifest, mediaType: MT.ociManifest }),
      async getBlob(d: Descriptor): Promise<Readable> {
        if (d.digest === configDesc.digest) return Readable.from([config]);
        const r = Readable.from((function* () {
          for (let off = 0; off < layer.length; off += 65536) yield layer.subarray(off, off + 65536);
        })());
        streams.push(r);
        return r;
      },
      close: async () => undefined,
    };
    const dest = destination(false);
    let failed = false;
    const put = dest.putBlob.bind(dest);
    dest.putBlob = async (stream: Readable, info: BlobInfo) => {
      if (!info.isConfig && !failed) {
        failed = true;
        await new Promise((r) => setTimeout(r, 20));
        throw new SkiffError('ERR_NETWORK', 'the registry stopped taking the upload');
      }
      return put(stream, info);
    };
    await copyImage(src, dest, { retryDelayMs: 1 });
    assert.ok(failed);
    assert.equal(streams.length, 2, 'the layer was read twice');
    assert.ok(streams[0]!.destroyed, 'the first attempt\'s source stream was closed');
    assert.ok(!streams[0]!.readableEnded, 'the first attempt\'s stream was not read to its end');
  });

  it('a source that checks its own blobs (verifyBlob): a verdict left over when the copy fails elsewhere crashes nothing', async () => {
    // Layer 1 fails at once; layer 2 is opened after that, while the copy is stopping. Its verdict (rejected as the
    // copy's signal fires, as hash-worker.ts does) was once asked for before the pipeline was made: that blob's
    // pipeline was never made, and the rejection reached a stream nobody listened to (the process died).
    const src = source(2, true);
    const manifest = JSON.parse((await src.getManifest()).bytes.toString()) as { layers: Descriptor[] };
    const [l1, l2] = manifest.layers;
    const getBlob = src.getBlob.bind(src);
    let verdicts = 0;
    const checking: ImageSource = {
      ...src,
      async getBlob(d: Descriptor): Promise<Readable> {
        if (d.digest === l1!.digest) return new Readable({ read() { this.destroy(new SkiffError('ERR_NETWORK', 'layer 1 failed (test)')); } });
        if (d.digest === l2!.digest) await new Promise((r) => setTimeout(r, 30));
        return getBlob(d);
      },
      verifyBlob(_d: Descriptor, signal?: AbortSignal): Promise<void> {
        verdicts++;
        return new Promise((_resolve, reject) => {
          if (signal?.aborted) reject(signal.reason);
          signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
        });
      },
    };
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown): void => void uncaught.push(e);
    process.on('uncaughtException', onUncaught);
    try {
      const dest = destination(false);
      (dest.caps as { compression: string }).compression = 'compress';
      await assert.rejects(copyImage(checking, dest), /layer 1 failed \(test\)/);
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      process.off('uncaughtException', onUncaught);
    }
    assert.deepEqual(uncaught, []);
    assert.ok(verdicts >= 1);
  });
});
