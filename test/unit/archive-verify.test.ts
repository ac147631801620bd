import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { copyImage } from '../../src/copy/copy.js';
import { parseImageRef } from '../../src/core/ref.js';
import type { RangeHash } from '../../src/core/hash-worker.js';
import { transports } from '../../transports/index.js';
import { ArchiveSource, DockerArchiveRef } from '../../transports/docker-archive/index.js';
import { TarTree } from '../../src/archive/tar-index.js';
import { makeLayout, pseudoRandom } from '../kit/image.js';

const dir = mkdtempSync(path.join(tmpdir(), 'skiff-archive-verify-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function archive(): Promise<string> {
  await makeLayout(path.join(dir, 'layout'), 'img', { layers: [{ files: [{ path: 'big', content: pseudoRandom(3 << 20, 7) }] }] });
  const file = path.join(dir, 'img.tar');
  const src = parseImageRef(`oci:${path.join(dir, 'layout')}:img`, transports);
  const dst = parseImageRef(`docker-archive:${file}`, transports);
  const s = await src.transport.openSource(src.ref);
  const d = await dst.transport.openDestination(dst.ref);
  try {
    await copyImage(s, d);
  } finally {
    await d.close();
    await s.close();
  }
  return file;
}

describe('a docker-archive source that checks its layers itself (the daemon export)', () => {
  it('uses the digests computed as the archive was written, hashes anew what they lack, and fails a layer that does not match', async () => {
    const file = await archive();
    const ref = new DockerArchiveRef(file);
    const layerOf = async (s: ArchiveSource) => (JSON.parse((await s.getManifest()).bytes.toString()) as { layers: { digest: `sha256:${string}`; size: number; mediaType: string }[] }).layers[0]!;
    const tree = await TarTree.open(file);
    const plain = await ArchiveSource.open(ref);
    const layer = await layerOf(plain);
    assert.equal(plain.verifyBlob(layer), undefined, 'an archive of the user\'s is checked as it streams');
    await plain.close();
    const offsetOf = (await tree.list()).map((n) => tree.range(n)!).find((r) => r.size === layer.size)!.offset;
    const right: RangeHash = { size: layer.size, hex: layer.digest.slice(7) };
    const wrong: RangeHash = { size: layer.size, hex: createHash('sha256').update('not the layer').digest('hex') };
    // The digest as written: no hashing; a different one: a mismatch; none: hashed now (the right bytes pass).
    for (const [known, ok] of [[new Map([[offsetOf, right]]), true], [new Map([[offsetOf, wrong]]), false], [new Map(), true]] as const) {
      const s = await ArchiveSource.open(ref, { knownHashes: Promise.resolve(known) });
      const v = s.verifyBlob(layer);
      assert.ok(v);
      if (ok) await v;
      else await assert.rejects(v, /digest mismatch/);
      await s.close();
    }
    // The CRC-32 computed with the digest is given for gzip's trailer only when that digest is the layer's.
    const withCrc = async (h: RangeHash) => {
      const s = await ArchiveSource.open(ref, { knownHashes: Promise.resolve(new Map([[offsetOf, { ...h, crc32: 1234 }]])) });
      try {
        return await s.blobCrc32(layer);
      } finally {
        await s.close();
      }
    };
    assert.equal(await withCrc(right), 1234);
    assert.equal(await withCrc(wrong), undefined);
    // Bytes changed after they were hashed as written are still caught where the map lacks them.
    const bytes = readFileSync(file);
    bytes[offsetOf + 1000] = bytes[offsetOf + 1000]! ^ 1;
    writeFileSync(file, bytes);
    const s = await ArchiveSource.open(ref, { knownHashes: Promise.resolve(new Map()) });
    await assert.rejects(s.verifyBlob(layer)!, /digest mismatch/);
    await s.close();
  });
});
