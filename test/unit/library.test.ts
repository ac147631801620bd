import { strict as assert } from 'node:assert';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, it } from 'node:test';
import { makeLayout, sampleSpec } from '../kit/image.js';
import { REPO, tempDir } from '../kit/run.js';

const t = tempDir('skiff-lib-');
after(() => t.cleanup());

describe('the library (package.json main)', () => {
  it('is there, and the README\'s example copies an image with it; inspectImage reads the copy', async () => {
    const pkg = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { main: string; types: string };
    assert.ok(existsSync(path.join(REPO, pkg.main)), `${pkg.main} exists`);
    assert.ok(existsSync(path.join(REPO, pkg.types)), `${pkg.types} exists`);
    const skiff = (await import(pathToFileURL(path.join(REPO, pkg.main)).href)) as typeof import('../../index.js');
    await makeLayout(`${t.dir}/in`, '1', sampleSpec(5));
    const s = skiff.parseImageRef(`oci:${t.dir}/in:1`, skiff.transports);
    const d = skiff.parseImageRef(`docker-archive:${t.dir}/out.tar:app:1`, skiff.transports);
    const src = await s.transport.openSource(s.ref);
    const dest = await d.transport.openDestination(d.ref);
    let digest: string;
    try {
      ({ digest } = await skiff.copyImage(src, dest, { compressFormat: 'zstd' }));
    } finally {
      await dest.close();
      await src.close();
    }
    assert.match(digest, /^sha256:[0-9a-f]{64}$/);
    const back = skiff.parseImageRef(`docker-archive:${t.dir}/out.tar`, skiff.transports);
    const r = await back.transport.openSource(back.ref);
    try {
      const info = await skiff.inspectImage(r);
      assert.equal(info.Labels?.['org.example.seed'], '5');
    } finally {
      await r.close();
    }
    // And a bad reference is the library's error class, with a code.
    assert.throws(() => skiff.parseImageRef('nosuchtransport:x', skiff.transports), (e: unknown) => e instanceof skiff.SkiffError && typeof e.code === 'string');
  });
});
