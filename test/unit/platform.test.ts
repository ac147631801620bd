import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { choosePlatform, hostPlatform } from '../../src/core/platform.js';
import type { IndexManifest } from '../../src/core/manifest.js';
import { SkiffError } from '../../src/core/errors.js';

const d = (c: string) => `sha256:${c.repeat(64)}` as const;
const ix: IndexManifest = {
  kind: 'index',
  mediaType: 'application/vnd.oci.image.index.v1+json',
  manifests: [
    { mediaType: 'm', digest: d('1'), size: 1, platform: { os: 'linux', architecture: 'amd64' } },
    { mediaType: 'm', digest: d('2'), size: 1, platform: { os: 'linux', architecture: 'arm', variant: 'v6' } },
    { mediaType: 'm', digest: d('3'), size: 1, platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
    { mediaType: 'm', digest: d('4'), size: 1, platform: { os: 'linux', architecture: 'arm64' } },
    { mediaType: 'm', digest: d('5'), size: 1, platform: { os: 'windows', architecture: 'amd64' } },
  ],
};

describe('platform choice', () => {
  it('host platform in Go names', () => {
    const h = hostPlatform();
    assert.equal(h.os, 'linux');
    assert.ok(['amd64', 'arm64', 'arm', '386', 'ppc64le', 's390x', 'riscv64'].includes(h.architecture));
  });
  it('exact os/arch', () => assert.equal(choosePlatform(ix, { os: 'linux', architecture: 'amd64' }).digest, d('1')));
  it('override os', () => assert.equal(choosePlatform(ix, { os: 'windows', architecture: 'amd64' }).digest, d('5')));
  it('variant chosen exactly', () => assert.equal(choosePlatform(ix, { architecture: 'arm', variant: 'v7' }).digest, d('3')));
  it('arm64 v8 matches an entry without variant', () => assert.equal(choosePlatform(ix, { architecture: 'arm64', variant: 'v8' }).digest, d('4')));
  it('no match names the wanted and available platforms', () => {
    assert.throws(() => choosePlatform(ix, { architecture: 's390x' }), (e: unknown) => e instanceof SkiffError && e.code === 'ERR_NO_PLATFORM' && /linux\/s390x/.test(e.message) && /linux\/arm\/v7/.test(e.message));
    assert.throws(() => choosePlatform(ix, { architecture: 'arm', variant: 'v5' }), SkiffError);
  });
});
