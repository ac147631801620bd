/**
 * containers-storage, read side: stores written by skopeo and podman (overlay driver, temp root), read by skiff;
 * layers rebuilt through tar-split must hash to their diffIDs, and the filesystem must equal the original.
 */
import { strict as assert } from 'node:assert';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeBusyboxLayout } from '../kit/fixtures.js';
import { run, skiff, tempDir } from '../kit/run.js';
import { flatRef as flat, type Flat } from '../kit/validate.js';


describe('containers-storage (read)', () => {
  let t: ReturnType<typeof tempDir>;
  let store: string;
  let fixtureFlat: Flat;
  let fixtureConfig: string;
  before(async () => {
    t = tempDir();
    store = `overlay@${t.dir}/root+${t.dir}/run`;
    await makeBusyboxLayout(`${t.dir}/fixture`);
    fixtureFlat = await flat(`oci:${t.dir}/fixture:busybox`);
    fixtureConfig = (await skiff(['inspect', '--config', '--raw', `oci:${t.dir}/fixture:busybox`])).stdout;
    const r = await run('skopeo', ['copy', '-q', `oci:${t.dir}/fixture:busybox`, `containers-storage:[${store}]localhost/bb:1`]);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    // overlay diff dirs are read-only for the owner; make them removable.
    await run('chmod', ['-R', 'u+w', t.dir]);
    t.cleanup();
  });

  it('skopeo stores an image; skiff reads it by name, short name and ID: same config, same filesystem', async () => {
    const ref = `containers-storage:[${store}]localhost/bb:1`;
    assert.equal(await skiff(['inspect', '--config', '--raw', ref]).then((r) => r.stdout), fixtureConfig);
    await assert.doesNotReject(skiff(['copy', '-q', ref, `oci:${t.dir}/out:x`]).then((r) => assert.equal(r.code, 0, r.stderr)));
    assert.deepEqual(await flat(`oci:${t.dir}/out:x`), fixtureFlat);
    const id = JSON.parse(await fsp.readFile(`${t.dir}/root/overlay-images/images.json`, 'utf8'))[0].id as string;
    for (const alt of [`containers-storage:[${store}]bb:1`, `containers-storage:[${store}]${id}`, `containers-storage:[${store}]localhost/bb:1@${id}`, `containers-storage:[${store}]${id.slice(0, 12)}`]) {
      const r = await skiff(['inspect', '--config', '--raw', alt]);
      assert.equal(r.code, 0, `${alt}: ${r.stderr}`);
      assert.equal(r.stdout, fixtureConfig, alt);
    }
  });

  it('podman loads an image; skiff copies it out identical', async () => {
    await skiff(['copy', '-q', `oci:${t.dir}/fixture:busybox`, `docker-archive:${t.dir}/bb.tar:localhost/loaded:2`]);
    const r = await run('podman', ['--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, '--storage-driver', 'overlay', 'load', '-i', `${t.dir}/bb.tar`]);
    assert.equal(r.code, 0, r.stderr);
    const out = await skiff(['copy', '-q', `containers-storage:[${store}]localhost/loaded:2`, `dir:${t.dir}/loaded-dir`]);
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(await flat(`dir:${t.dir}/loaded-dir`), fixtureFlat);
  });

  it('a file changed inside a layer\'s diff dir is caught by the diffID check; a missing image exits 2', async () => {
    const layers = JSON.parse(await fsp.readFile(`${t.dir}/root/overlay-layers/layers.json`, 'utf8')) as { id: string; 'diff-size': number }[];
    const top = layers.find((l) => l['diff-size'] > 100_000 && l['diff-size'] < 1_000_000)!;
    const victim = path.join(t.dir, 'root/overlay', top.id, 'diff/home/user/data.bin');
    await run('chmod', ['-R', 'u+w', path.join(t.dir, 'root/overlay', top.id)]);
    const b = await fsp.readFile(victim);
    b[0] = (b[0] ?? 0) ^ 1;
    await fsp.writeFile(victim, b);
    const r = await skiff(['copy', '-q', `containers-storage:[${store}]localhost/bb:1`, `oci:${t.dir}/tampered:x`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /digest mismatch/);
    await assert.rejects(fsp.stat(`${t.dir}/tampered`));
    b[0] = (b[0] ?? 0) ^ 1;
    await fsp.writeFile(victim, b);
    const missing = await skiff(['inspect', `containers-storage:[${store}]localhost/nope:1`]);
    assert.equal(missing.code, 2);
  });

  it('skiff images lists what podman lists (IDs, names, digests)', async () => {
    const g = ['--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`];
    const mine = JSON.parse((await skiff([...g, 'images', '--format', 'json'])).stdout) as { Id: string; Names: string[]; Digest: string }[];
    const theirs = JSON.parse((await run('podman', [...g, '--storage-driver', 'overlay', 'images', '--format', 'json'])).stdout) as { Id: string; Names: string[]; Digest: string }[];
    const key = (x: { Id: string; Names: string[]; Digest: string }[]) => x.map((i) => `${i.Id} ${[...(i.Names ?? [])].sort().join(',')} ${i.Digest}`).sort();
    assert.deepEqual(key(mine), key(theirs));
    const q = (await skiff([...g, 'images', '-q'])).stdout.trim().split('\n').sort();
    assert.deepEqual(q, [...new Set(theirs.map((i) => i.Id.slice(0, 12)))].sort());
    const table = (await skiff([...g, 'images'])).stdout;
    assert.match(table, /^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE\n/);
    assert.match(table, /localhost\/bb\s+1\s+[0-9a-f]{12}/);
  });

  it('a corrupt layers.json is a clear error and is left as it was', async () => {
    const t2 = tempDir();
    try {
      await fsp.mkdir(`${t2.dir}/root/overlay-layers`, { recursive: true });
      await fsp.mkdir(`${t2.dir}/root/overlay-images`, { recursive: true });
      await fsp.writeFile(`${t2.dir}/root/overlay-layers/layers.json`, '[{"id": "abc",');
      await fsp.writeFile(`${t2.dir}/root/overlay-images/images.json`, '[{"id":"' + 'a'.repeat(64) + '","layer":"abc","names":["x:1"]}]');
      const r = await skiff(['inspect', `containers-storage:[overlay@${t2.dir}/root+${t2.dir}/run]x:1`]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /layers\.json: corrupt/);
      assert.equal(await fsp.readFile(`${t2.dir}/root/overlay-layers/layers.json`, 'utf8'), '[{"id": "abc",');
    } finally {
      t2.cleanup();
    }
  });
});
