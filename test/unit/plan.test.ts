import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { planImage, planIndex } from '../../src/copy/plan.js';
import type { DestinationCaps } from '../../src/core/image.js';
import { parseManifest, type ImageManifest, type IndexManifest } from '../../src/core/manifest.js';
import { MT } from '../../src/core/media-types.js';
import { SkiffError } from '../../src/core/errors.js';

const d = (c: string) => `sha256:${c.repeat(64)}`;
function manifest(type: string, layers: string[]): { raw: { bytes: Buffer; mediaType: string }; m: ImageManifest } {
  const o = { schemaVersion: 2, mediaType: type, config: { mediaType: type === MT.dockerManifest ? MT.dockerConfig : MT.ociConfig, digest: d('c'), size: 1 }, layers: layers.map((mt, i) => ({ mediaType: mt, digest: d(String(i)), size: 1 })) };
  const bytes = Buffer.from(JSON.stringify(o));
  return { raw: { bytes, mediaType: type }, m: parseManifest(bytes) as ImageManifest };
}
const OCI: DestinationCaps = { manifestTypes: [MT.ociManifest, MT.ociIndex], compression: 'compress', multiImage: true };
const DIR: DestinationCaps = { manifestTypes: [MT.ociManifest, MT.dockerManifest, MT.ociIndex, MT.dockerList], compression: 'preserve', multiImage: true };
const ARCHIVE: DestinationCaps = { manifestTypes: [MT.dockerManifest], compression: 'decompress', multiImage: false };
const code = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return (e as SkiffError).code;
  }
  return undefined;
};

describe('copy plan (pure)', () => {
  it('no conversion asked: manifest unchanged, every layer kept', () => {
    const { raw, m } = manifest(MT.ociManifest, [MT.ociLayerGzip, MT.ociLayerGzip]);
    const p = planImage(raw, m, OCI, {});
    assert.equal(p.unchanged, true);
    assert.deepEqual(p.layers, ['keep', 'keep']);
  });
  it('Docker manifest into an OCI-only destination is converted, layers kept', () => {
    const { raw, m } = manifest(MT.dockerManifest, [MT.dockerLayerGzip]);
    const p = planImage(raw, m, OCI, {});
    assert.equal(p.targetType, MT.ociManifest);
    assert.equal(p.unchanged, false);
    assert.deepEqual(p.layers, ['keep']);
  });
  it('uncompressed layers are gzipped for destinations that want compression, kept for dir:', () => {
    const { raw, m } = manifest(MT.dockerManifest, [MT.dockerLayer]);
    assert.deepEqual(planImage(raw, m, OCI, {}).layers, ['gzip']);
    assert.deepEqual(planImage(raw, m, DIR, {}).layers, ['keep']);
  });
  it('docker-archive wants layers decompressed and a v2s2 manifest', () => {
    const { raw, m } = manifest(MT.ociManifest, [MT.ociLayerGzip, MT.ociLayer]);
    const p = planImage(raw, m, ARCHIVE, {});
    assert.deepEqual(p.layers, ['none', 'keep']);
    assert.equal(p.targetType, MT.dockerManifest);
  });
  it('--dest-compress-format zstd re-encodes gzip layers and keeps zstd ones; picks OCI over v2s2', () => {
    const { raw, m } = manifest(MT.dockerManifest, [MT.dockerLayerGzip]);
    const p = planImage(raw, m, DIR, { compressFormat: 'zstd' });
    assert.deepEqual(p.layers, ['zstd']);
    assert.equal(p.targetType, MT.ociManifest);
    const z = manifest(MT.ociManifest, [MT.ociLayerZstd]);
    assert.deepEqual(planImage(z.raw, z.m, DIR, { compressFormat: 'zstd' }).layers, ['keep']);
  });
  it('--format v2s2 with zstd layers is refused', () => {
    const z = manifest(MT.ociManifest, [MT.ociLayerZstd]);
    assert.equal(code(() => planImage(z.raw, z.m, DIR, { format: 'v2s2' })), 'ERR_CONVERSION');
  });
  it('--format the destination does not accept is refused', () => {
    const { raw, m } = manifest(MT.ociManifest, [MT.ociLayerGzip]);
    assert.equal(code(() => planImage(raw, m, OCI, { format: 'v2s2' })), 'ERR_CONVERSION');
  });
  it('--preserve-digests refuses any change', () => {
    const { raw, m } = manifest(MT.ociManifest, [MT.ociLayerGzip]);
    assert.equal(code(() => planImage(raw, m, ARCHIVE, { preserveDigests: true })), 'ERR_CONVERSION');
    assert.equal(code(() => planImage(raw, m, DIR, { preserveDigests: true, compressFormat: 'zstd' })), 'ERR_CONVERSION');
    assert.equal(planImage(raw, m, DIR, { preserveDigests: true }).unchanged, true);
  });
  it('unknown (artifact) layer types are copied as they are', () => {
    const { raw, m } = manifest(MT.ociManifest, ['application/x-custom']);
    assert.deepEqual(planImage(raw, m, OCI, { compressFormat: 'zstd' }).layers, ['keep']);
  });
  it('index: kept when accepted, converted when not, refused for single-image destinations', () => {
    const ix = { kind: 'index', mediaType: MT.dockerList, manifests: [] } as IndexManifest;
    const raw = { bytes: Buffer.from('{}'), mediaType: MT.dockerList };
    assert.equal(planIndex(raw, ix, DIR, {}).targetType, MT.dockerList);
    assert.equal(planIndex(raw, ix, OCI, {}).targetType, MT.ociIndex);
    assert.equal(code(() => planIndex(raw, ix, ARCHIVE, {})), 'ERR_UNSUPPORTED');
    assert.equal(code(() => planIndex(raw, ix, OCI, { preserveDigests: true })), 'ERR_CONVERSION');
  });
});
