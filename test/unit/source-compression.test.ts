/**
 * Layers compressed by the source as it receives them (ImageSource.willCompress / compressedBlob, what the
 * docker-daemon source does), and TarWatch, which finds the layers in the archive stream as it passes.
 */
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import * as tar from 'tar-stream';
import { copyImage } from '../../src/copy/copy.js';
import type { Digest } from '../../src/core/digest.js';
import type { BlobInfo, CompressedBlob, DestinationCaps, ImageDestination, ImageRef, ImageSource } from '../../src/core/image.js';
import type { Descriptor, RawManifest } from '../../src/core/manifest.js';
import { MT } from '../../src/core/media-types.js';
import { TarWatch, type WatchedMember } from '../../src/archive/tar-watch.js';

const ref = (spec: string): ImageRef => ({ transport: 'mem', spec, toString: () => `mem:${spec}` });
const digest = (b: Buffer): Digest => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A source of two uncompressed layers that has a gzip copy of the first one ready when asked to compress. */
function source(calls: string[]) {
  const layers = [Buffer.alloc(100_000, 1), Buffer.alloc(100_000, 2)];
  const descs = layers.map((l) => ({ mediaType: MT.dockerLayer, digest: digest(l), size: l.length }));
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: descs.map((d) => d.digest) } }));
  const configDesc = { mediaType: MT.dockerConfig, digest: digest(config), size: config.length };
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.dockerManifest, config: configDesc, layers: descs }));
  // Not what the copy's own compressor would make (another gzip): so the result shows which one was used.
  const ready = gzipSync(layers[0]!, { level: 1 });
  let format: string | undefined;
  const src: ImageSource = {
    ref: ref('src'),
    local: true,
    willCompress(f, level) {
      calls.push(`willCompress ${f} ${level}`);
      format = f;
    },
    async getManifest(): Promise<RawManifest> {
      calls.push('getManifest');
      return { bytes: manifest, mediaType: MT.dockerManifest };
    },
    async getBlob(d: Descriptor): Promise<Readable> {
      if (d.digest === configDesc.digest) return Readable.from([config]);
      calls.push(`getBlob ${descs.findIndex((x) => x.digest === d.digest)}`);
      return Readable.from([layers[descs.findIndex((x) => x.digest === d.digest)]!]);
    },
    async compressedBlob(d: Descriptor, f: 'gzip' | 'zstd'): Promise<CompressedBlob | undefined> {
      // (Its copy is gzip, made once it was told to compress as gzip.)
      if (d.digest !== descs[0]!.digest || f !== 'gzip' || format !== 'gzip') return undefined;
      return { stream: Readable.from([ready]), digest: digest(ready), size: ready.length };
    },
    async close(): Promise<void> {},
  };
  return { src, layers, ready };
}

function destination(compression: DestinationCaps['compression']) {
  const blobs = new Map<Digest, Buffer>();
  let manifest: Buffer | undefined;
  const dest: ImageDestination = {
    ref: ref('dest'),
    caps: { manifestTypes: [MT.ociManifest, MT.dockerManifest], compression, multiImage: false },
    async hasBlob() {
      return false;
    },
    async putBlob(stream: Readable, info: BlobInfo) {
      const parts: Buffer[] = [];
      for await (const c of stream) parts.push(c as Buffer);
      const b = Buffer.concat(parts);
      const d = digest(b);
      if (info.digest) assert.equal(d, info.digest, 'the digest the copy vouched for');
      blobs.set(d, b);
      return { digest: d, size: b.length };
    },
    async putManifest(m: RawManifest) {
      manifest = m.bytes;
    },
    async commit() {},
    async close() {},
  };
  return { dest, blobs, manifest: () => JSON.parse(manifest!.toString()) as { layers: Descriptor[] } };
}

describe('layers the source compressed as it received them', () => {
  it('a destination that wants layers compressed: the source is told before the manifest is read, and its gzip copy is sent as is', async () => {
    const calls: string[] = [];
    const { src, layers, ready } = source(calls);
    const d = destination('compress');
    await copyImage(src, d.dest);
    assert.deepEqual(calls.slice(0, 2), ['willCompress gzip undefined', 'getManifest']);
    const m = d.manifest();
    assert.equal(m.layers[0]!.digest, digest(ready));
    assert.equal(m.layers[0]!.mediaType, MT.dockerLayerGzip);
    assert.ok(!calls.includes('getBlob 0'), 'the layer the source had compressed is not read again');
    // The other layer was compressed by the copy itself, as usual.
    assert.ok(calls.includes('getBlob 1'));
    assert.deepEqual(gunzipSync(d.blobs.get(m.layers[1]!.digest)!), layers[1]);
  });

  it('--dest-compress-format zstd with a level is passed on; a source without a matching copy is compressed by the copy', async () => {
    const calls: string[] = [];
    const { src, ready } = source(calls);
    const d = destination('compress');
    await copyImage(src, d.dest, { compressFormat: 'zstd', compressLevel: 5 });
    assert.equal(calls[0], 'willCompress zstd 5');
    const m = d.manifest();
    assert.notEqual(m.layers[0]!.digest, digest(ready));
    assert.equal(m.layers[0]!.mediaType, MT.ociLayerZstd);
  });

  it('a destination that keeps layers as they are: the source is not asked to compress', async () => {
    const calls: string[] = [];
    const { src, layers } = source(calls);
    const d = destination('preserve');
    await copyImage(src, d.dest);
    assert.ok(!calls.some((c) => c.startsWith('willCompress')), calls.join(', '));
    assert.deepEqual(d.manifest().layers.map((l) => l.digest), layers.map(digest));
  });
});

/** A tar (tar-stream's pack): names in the ustar prefix field and in a PAX header, files, a symlink, a directory. */
async function sampleTar(): Promise<{ tarBytes: Buffer; files: Map<string, Buffer> }> {
  const pack = tar.pack();
  const files = new Map<string, Buffer>([
    [`${'d'.repeat(120)}/layer.tar`, Buffer.alloc(70_000, 3)],
    ['abc.tar', Buffer.from('x'.repeat(513))],
    [`${'e'.repeat(300)}.tar`, Buffer.alloc(1025, 4)],
    ['empty', Buffer.alloc(0)],
  ]);
  pack.entry({ name: 'dir', type: 'directory' });
  for (const [name, data] of files) pack.entry({ name }, data);
  pack.entry({ name: 'link.tar', type: 'symlink', linkname: 'abc.tar' });
  pack.finalize();
  const parts: Buffer[] = [];
  for await (const c of pack) parts.push(c as Buffer);
  return { tarBytes: Buffer.concat(parts), files };
}

describe('TarWatch', () => {
  it('reports every member with where its data lies, however the stream is cut', async () => {
    const { tarBytes, files } = await sampleTar();
    for (const cut of [1, 7, 511, 512, 513, 4096, tarBytes.length]) {
      const seen: WatchedMember[] = [];
      const w = new TarWatch((m) => seen.push(m));
      for (let off = 0; off < tarBytes.length; off += cut) w.push(tarBytes.subarray(off, off + cut));
      assert.equal(w.lost, false);
      assert.equal(w.ended, true);
      assert.deepEqual(seen.map((m) => m.name), ['dir', ...files.keys(), 'link.tar'], `cut ${cut}`);
      for (const m of seen) {
        const want = files.get(m.name);
        if (want) assert.ok(tarBytes.subarray(m.offset, m.offset + m.size).equals(want), `${m.name} at cut ${cut}`);
      }
      assert.equal(seen.find((m) => m.name === 'link.tar')!.type, '2');
      assert.ok(tarBytes.includes(Buffer.from(` path=${'e'.repeat(300)}.tar\n`)), 'the long name went into a PAX header');
    }
  });

  it('a header that fails its checksum stops the watch: nothing more is reported', async () => {
    const { tarBytes } = await sampleTar();
    const bad = Buffer.from(tarBytes);
    bad[0] = bad[0]! ^ 0xff; // the first header's name
    const seen: WatchedMember[] = [];
    const w = new TarWatch((m) => seen.push(m));
    w.push(bad);
    assert.equal(w.lost, true);
    assert.deepEqual(seen, []);
  });
});
