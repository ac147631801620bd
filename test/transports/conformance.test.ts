/**
 * One conformance suite, run on every transport: round trip, two-platform index, digest mismatch, missing blob,
 * close-without-commit, and an interrupted copy over an existing image. validateImage re-hashes every output.
 */
import { strict as assert } from 'node:assert';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { copyImage, type CopyOptions } from '../../src/copy/copy.js';
import { SkiffError } from '../../src/core/errors.js';
import { parseImageRef } from '../../src/core/ref.js';
import { sha256 } from '../../src/core/digest.js';
import { transports } from '../../transports/index.js';
import { makeLayout, makeMultiPlatformLayout, sampleSpec } from '../kit/image.js';
import { tempDir } from '../kit/run.js';
import { startRegistry, type TestRegistry } from '../kit/registry.js';
import { flattenImage, validateImage, withRef } from '../kit/validate.js';
import { startPodmanService, type PodmanService } from '../kit/podman.js';
import type { ImageSource } from '../../src/core/image.js';

interface Case {
  transport: string;
  ref(dir: string, name: string): string;
  /** Does an unconverted copy keep the manifest digest? (docker-archive stores layers uncompressed.) */
  preserves: boolean;
  multiImage: boolean;
  /** Is there anything at the reference (an image, a file, a directory)? */
  present(dir: string, name: string): Promise<boolean>;
}

const onDisk = (p: string) => fsp.stat(p).then(() => true, () => false);
let registry: TestRegistry | undefined;

const cases: Case[] = [
  { transport: 'oci', ref: (d, n) => `oci:${d}/layout:${n}`, present: (d) => onDisk(`${d}/layout`), preserves: true, multiImage: true },
  { transport: 'oci-archive', ref: (d, n) => `oci-archive:${d}/${n}.tar:${n}`, present: (d, n) => onDisk(`${d}/${n}.tar`), preserves: true, multiImage: true },
  { transport: 'dir', ref: (d, n) => `dir:${d}/${n}`, present: (d, n) => onDisk(`${d}/${n}`), preserves: true, multiImage: true },
  { transport: 'docker-archive', ref: (d, n) => `docker-archive:${d}/${n}.tar:example.com/${n}:1`, present: (d, n) => onDisk(`${d}/${n}.tar`), preserves: false, multiImage: false },
  {
    // A real registry: the repository is named after the temp dir, so every test gets a fresh one.
    transport: 'docker',
    ref: (d, n) => `docker://${registry!.host}/conformance/${path.basename(d).toLowerCase()}:${n}`,
    present: async (d, n) => {
      const r = parseImageRef(`docker://${registry!.host}/conformance/${path.basename(d).toLowerCase()}:${n}`, transports);
      const s = await r.transport.openSource(r.ref, { tlsVerify: false, retryTimes: 0 });
      try {
        await s.getManifest();
        return true;
      } catch (e) {
        if ((e as SkiffError).code === 'ERR_MANIFEST_UNKNOWN') return false;
        throw e;
      } finally {
        await s.close();
      }
    },
    preserves: true,
    multiImage: true,
  },
  {
    // podman's Docker-compatible Engine API (the daemon skiff would talk to), on a temp store.
    transport: 'docker-daemon',
    ref: (d, n) => `docker-daemon:localhost/${path.basename(d).toLowerCase()}:${n}`,
    present: async (d, n) => {
      const r = parseImageRef(`docker-daemon:localhost/${path.basename(d).toLowerCase()}:${n}`, transports);
      try {
        await (await r.transport.openSource(r.ref)).close();
        return true;
      } catch (e) {
        if ((e as SkiffError).code === 'ERR_IMAGE_NOT_FOUND') return false;
        throw e;
      }
    },
    preserves: false,
    multiImage: false,
  },
];

let daemon: PodmanService | undefined;
let daemonDir: ReturnType<typeof tempDir> | undefined;
before(async () => {
  registry = await startRegistry();
  daemonDir = tempDir();
  daemon = await startPodmanService(daemonDir.dir);
  process.env.DOCKER_HOST = daemon.host;
});
after(async () => {
  await registry?.stop();
  await daemon?.stop();
  daemonDir?.cleanup();
});

const REG = { tlsVerify: false, retryTimes: 0 };

async function copy(from: string, to: string, o: CopyOptions = {}) {
  const s = parseImageRef(from, transports);
  const d = parseImageRef(to, transports);
  const src = await s.transport.openSource(s.ref, REG);
  try {
    const dest = await d.transport.openDestination(d.ref, REG);
    try {
      return await copyImage(src, dest, o);
    } finally {
      await dest.close();
    }
  } finally {
    await src.close();
  }
}

const withSource = <T>(ref: string, f: (s: ImageSource) => Promise<T>): Promise<T> => withRef(ref, f, REG);

async function leftovers(dir: string): Promise<string[]> {
  return (await fsp.readdir(dir)).filter((n) => n.includes('.skiff-'));
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<SkiffError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof SkiffError, `expected a SkiffError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail(`expected ${code}`);
}

for (const c of cases) {
  describe(`transport ${c.transport}`, () => {
    let t: ReturnType<typeof tempDir>;
    let srcLayout: string;
    let srcDigest: string;
    before(async () => {
      t = tempDir();
      srcLayout = path.join(t.dir, 'src');
      srcDigest = await makeLayout(srcLayout, 'img', sampleSpec(1));
    });
    after(() => t.cleanup());

    it('round trip: writes, reads back, every digest re-verified, filesystem identical', async () => {
      const out = await fsp.mkdtemp(path.join(t.dir, 'rt-'));
      const res = await copy(`oci:${srcLayout}:img`, c.ref(out, 'a'));
      if (c.preserves) assert.equal(res.digest, srcDigest);
      await withSource(c.ref(out, 'a'), async (s) => {
        assert.deepEqual(await validateImage(s), { images: 1 });
        if (c.preserves) assert.equal(sha256((await s.getManifest()).bytes), srcDigest);
      });
      const back = await copy(c.ref(out, 'a'), `oci:${out}/back:b`);
      await withSource(`oci:${out}/back:b`, async (s) => {
        await validateImage(s);
        const orig = await withSource(`oci:${srcLayout}:img`, (o) => flattenImage(o));
        assert.deepEqual(await flattenImage(s), orig);
      });
      if (c.preserves) assert.equal(back.digest, srcDigest);
      assert.deepEqual(await leftovers(out), []);
    });

    it('two-platform index: --all copies both (or is refused), default picks the host platform', async () => {
      const out = await fsp.mkdtemp(path.join(t.dir, 'mp-'));
      const mp = path.join(out, 'mp-src');
      const idx = await makeMultiPlatformLayout(mp, 'multi', [
        { ...sampleSpec(2), architecture: 'amd64' },
        { ...sampleSpec(3), architecture: 'arm64', variant: 'v8' },
      ]);
      if (c.multiImage) {
        const res = await copy(`oci:${mp}:multi`, c.ref(out, 'all'), { all: true });
        assert.equal(res.digest, idx);
        await withSource(c.ref(out, 'all'), async (s) => assert.deepEqual(await validateImage(s), { images: 2 }));
      } else {
        await rejectsWith(copy(`oci:${mp}:multi`, c.ref(out, 'all'), { all: true }), 'ERR_UNSUPPORTED');
        assert.deepEqual(await leftovers(out), []);
      }
      await copy(`oci:${mp}:multi`, c.ref(out, 'arm'), { platform: { architecture: 'arm64' } });
      await withSource(c.ref(out, 'arm'), async (s) => {
        await validateImage(s);
        const files = await flattenImage(s);
        assert.match(files.get('etc/new') ?? '', /size=7 /); // "seed 3\n"
      });
      await rejectsWith(copy(`oci:${mp}:multi`, c.ref(out, 'none'), { platform: { architecture: 's390x' } }), 'ERR_NO_PLATFORM');
    });

    it('a corrupted blob (digest mismatch) fails the copy and leaves nothing behind', async () => {
      const out = await fsp.mkdtemp(path.join(t.dir, 'bad-'));
      const lay = path.join(out, 'src');
      await makeLayout(lay, 'img', sampleSpec(4));
      const m = JSON.parse(await fsp.readFile(path.join(lay, 'blobs/sha256', JSON.parse(await fsp.readFile(path.join(lay, 'index.json'), 'utf8')).manifests[0].digest.slice(7)), 'utf8'));
      const blob = path.join(lay, 'blobs/sha256', m.layers[0].digest.slice(7));
      const b = await fsp.readFile(blob);
      b[b.length >> 1] = (b[b.length >> 1] ?? 0) ^ 0xff;
      await fsp.writeFile(blob, b);
      await rejectsWith(copy(`oci:${lay}:img`, c.ref(out, 'x'), { decompress: false }), 'ERR_DIGEST_MISMATCH');
      assert.equal(await c.present(out, 'x'), false);
      assert.deepEqual(await leftovers(out), []);
    });

    it('a missing blob fails the copy and leaves nothing behind', async () => {
      const out = await fsp.mkdtemp(path.join(t.dir, 'miss-'));
      const lay = path.join(out, 'src');
      await makeLayout(lay, 'img', sampleSpec(5));
      const mdig = JSON.parse(await fsp.readFile(path.join(lay, 'index.json'), 'utf8')).manifests[0].digest.slice(7);
      const m = JSON.parse(await fsp.readFile(path.join(lay, 'blobs/sha256', mdig), 'utf8'));
      await fsp.rm(path.join(lay, 'blobs/sha256', m.layers[1].digest.slice(7)));
      await rejectsWith(copy(`oci:${lay}:img`, c.ref(out, 'x')), 'ERR_BLOB_UNKNOWN');
      assert.equal(await c.present(out, 'x'), false);
      assert.deepEqual(await leftovers(out), []);
    });

    it('close without commit leaves nothing', async () => {
      const out = await fsp.mkdtemp(path.join(t.dir, 'close-'));
      const d = parseImageRef(c.ref(out, 'x'), transports);
      const dest = await d.transport.openDestination(d.ref, REG);
      await dest.putBlob(Readable.from([Buffer.from('some blob')]), { mediaType: 'application/octet-stream', isConfig: false });
      const m = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256('some blob'), size: 9 }, layers: [] };
      await dest.putManifest({ bytes: Buffer.from(JSON.stringify(m)), mediaType: m.mediaType });
      await dest.close();
      assert.deepEqual(await fsp.readdir(out), []);
      assert.equal(await c.present(out, 'x'), false);
    });

    it('a failed copy over an existing image leaves the existing image readable and unchanged', async () => {
      const out = await fsp.mkdtemp(path.join(t.dir, 'keep-'));
      await copy(`oci:${srcLayout}:img`, c.ref(out, 'k'));
      // What the destination holds now, as read back (a daemon re-describes what it loaded; others keep the bytes).
      const before = await withSource(c.ref(out, 'k'), async (s) => sha256((await s.getManifest()).bytes));
      const lay = path.join(out, 'src');
      await makeLayout(lay, 'img', sampleSpec(6));
      const mdig = JSON.parse(await fsp.readFile(path.join(lay, 'index.json'), 'utf8')).manifests[0].digest.slice(7);
      const m = JSON.parse(await fsp.readFile(path.join(lay, 'blobs/sha256', mdig), 'utf8'));
      await fsp.truncate(path.join(lay, 'blobs/sha256', m.layers[0].digest.slice(7)), 100);
      await rejectsWith(copy(`oci:${lay}:img`, c.ref(out, 'k')), 'ERR_SIZE_MISMATCH');
      await withSource(c.ref(out, 'k'), async (s) => {
        assert.equal(sha256((await s.getManifest()).bytes), before);
        await validateImage(s);
      });
      assert.deepEqual(await leftovers(out), []);
    });
  });
}
