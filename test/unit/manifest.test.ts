import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { convertImageManifest, convertIndex, parseManifest, serializeManifest, type ImageManifest } from '../../src/core/manifest.js';
import { MT } from '../../src/core/media-types.js';
import { SkiffError } from '../../src/core/errors.js';
import { parseConfig } from '../../src/core/config.js';

const d = (c: string) => `sha256:${c.repeat(64)}` as const;
const oci = {
  schemaVersion: 2,
  mediaType: MT.ociManifest,
  config: { mediaType: MT.ociConfig, digest: d('c'), size: 10 },
  layers: [
    { mediaType: MT.ociLayerGzip, digest: d('1'), size: 100 },
    { mediaType: MT.ociLayer, digest: d('2'), size: 200, annotations: { a: 'b' } },
  ],
  annotations: { 'org.example': 'x' },
};

function code(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return e instanceof SkiffError ? e.code : 'not-skiff';
  }
  return undefined;
}

describe('manifest parsing and validation', () => {
  it('parses an OCI manifest', () => {
    const m = parseManifest(Buffer.from(JSON.stringify(oci)));
    assert.equal(m.kind, 'image');
    assert.equal((m as ImageManifest).layers.length, 2);
  });
  it('takes the type from the hint when the JSON has no mediaType (OCI allows that)', () => {
    const { mediaType: _, ...noType } = oci;
    assert.equal(parseManifest(Buffer.from(JSON.stringify(noType)), MT.ociManifest).mediaType, MT.ociManifest);
    assert.equal(parseManifest(Buffer.from(JSON.stringify(noType))).mediaType, MT.ociManifest);
  });
  it('parses an index and a Docker manifest list', () => {
    const ix = { schemaVersion: 2, mediaType: MT.dockerList, manifests: [{ mediaType: MT.dockerManifest, digest: d('a'), size: 5, platform: { architecture: 'amd64', os: 'linux' } }] };
    const m = parseManifest(Buffer.from(JSON.stringify(ix)));
    assert.equal(m.kind, 'index');
  });
  const bad: [string, string, string][] = [
    ['malformed JSON', '{"schemaVersion": 2,', 'ERR_INVALID_MANIFEST'],
    ['not an object', '[1,2]', 'ERR_INVALID_MANIFEST'],
    ['missing config', JSON.stringify({ ...oci, config: undefined }), 'ERR_INVALID_MANIFEST'],
    ['missing layers', JSON.stringify({ ...oci, layers: undefined }), 'ERR_INVALID_MANIFEST'],
    ['bad digest', JSON.stringify({ ...oci, config: { ...oci.config, digest: 'sha256:xyz' } }), 'ERR_INVALID_MANIFEST'],
    ['negative size', JSON.stringify({ ...oci, config: { ...oci.config, size: -1 } }), 'ERR_INVALID_MANIFEST'],
    ['schema 1', JSON.stringify({ schemaVersion: 1, name: 'x', fsLayers: [] }), 'ERR_UNSUPPORTED'],
    ['unknown type', JSON.stringify({ ...oci, mediaType: 'text/plain' }), 'ERR_UNSUPPORTED'],
    ['wrong schemaVersion', JSON.stringify({ ...oci, schemaVersion: 3 }), 'ERR_INVALID_MANIFEST'],
  ];
  for (const [what, text, want] of bad) it(`rejects ${what} with ${want}`, () => assert.equal(code(() => parseManifest(Buffer.from(text))), want));
});

describe('manifest conversion', () => {
  const m = parseManifest(Buffer.from(JSON.stringify(oci))) as ImageManifest;
  it('OCI -> Docker v2s2 maps media types and drops annotations', () => {
    const v = convertImageManifest(m, 'v2s2');
    assert.equal(v.mediaType, MT.dockerManifest);
    assert.equal(v.config.mediaType, MT.dockerConfig);
    assert.deepEqual(v.layers.map((l) => l.mediaType), [MT.dockerLayerGzip, MT.dockerLayer]);
    assert.equal(v.annotations, undefined);
    assert.equal(v.config.digest, m.config.digest, 'config bytes are unchanged by conversion');
  });
  it('Docker -> OCI round trips the media types', () => {
    const back = convertImageManifest(convertImageManifest(m, 'v2s2'), 'oci');
    assert.deepEqual(back.layers.map((l) => l.mediaType), [MT.ociLayerGzip, MT.ociLayer]);
    assert.equal(back.config.mediaType, MT.ociConfig);
  });
  it('new layers replace digest, size and compression', () => {
    const z = convertImageManifest(m, 'oci', [{ digest: d('e'), size: 1, compression: 'zstd' }, { digest: d('f'), size: 2, compression: 'gzip' }]);
    assert.deepEqual(z.layers.map((l) => [l.mediaType, l.digest, l.size]), [[MT.ociLayerZstd, d('e'), 1], [MT.ociLayerGzip, d('f'), 2]]);
    assert.deepEqual(z.layers[1]!.annotations, { a: 'b' });
  });
  it('refuses zstd layers in Docker v2s2', () => {
    assert.equal(code(() => convertImageManifest(m, 'v2s2', [{ digest: d('e'), size: 1, compression: 'zstd' }, { digest: d('f'), size: 2, compression: 'gzip' }])), 'ERR_CONVERSION');
  });
  it('serialises in c/image field order and parses back', () => {
    const bytes = serializeManifest(m);
    assert.match(bytes.toString(), /^\{"schemaVersion":2,"mediaType":"[^"]+","config":\{"mediaType"/);
    assert.deepEqual(parseManifest(bytes), m);
  });
  it('converts an index to a manifest list', () => {
    const ix = { kind: 'index' as const, mediaType: MT.ociIndex, manifests: [], annotations: { a: 'b' } };
    assert.deepEqual(convertIndex(ix, 'v2s2', []), { kind: 'index', mediaType: MT.dockerList, manifests: [] });
  });
});

describe('image config', () => {
  it('requires rootfs.diff_ids, os and architecture', () => {
    assert.equal(code(() => parseConfig(Buffer.from('{"architecture":"amd64","os":"linux"}'))), 'ERR_INVALID_CONFIG');
    assert.equal(code(() => parseConfig(Buffer.from('{"rootfs":{"type":"layers","diff_ids":["sha256:1"]},"architecture":"amd64","os":"linux"}'))), 'ERR_INVALID_CONFIG');
    assert.equal(code(() => parseConfig(Buffer.from('nope'))), 'ERR_INVALID_CONFIG');
    assert.equal(parseConfig(Buffer.from(`{"rootfs":{"type":"layers","diff_ids":["${d('1')}"]},"architecture":"amd64","os":"linux"}`)).os, 'linux');
  });
});
