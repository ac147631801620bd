/**
 * containers-storage, read side: stores written by skopeo and podman (overlay driver, temp root), read by skiff;
 * layers rebuilt through tar-split must hash to their diffIDs, and the filesystem must equal the original.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeBusyboxLayout } from '../kit/fixtures.js';
import { ok, run, skiff, tempDir, unmountUnder } from '../kit/run.js';
import { makeLayout, sampleSpec } from '../kit/image.js';
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
    unmountUnder(t.dir);
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

  it('a manifest list podman made (manifest create, add) copies out whole with --all, its host instance without; skopeo reads the result; a missing instance is named', async () => {
    const podman = (args: string[]) => ok(run('podman', ['--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, '--storage-driver', 'overlay', ...args]));
    await podman(['manifest', 'create', 'localhost/list:1']);
    await podman(['manifest', 'add', 'localhost/list:1', 'containers-storage:localhost/bb:1']);
    const list = `containers-storage:[${store}]localhost/list:1`;
    const raw = JSON.parse(await ok(skiff(['inspect', '--raw', list]))) as { mediaType: string; manifests: { digest: string; platform?: { os: string; architecture: string } }[] };
    assert.equal(raw.mediaType, 'application/vnd.oci.image.index.v1+json');
    assert.equal(raw.manifests.length, 1);
    assert.equal(raw.manifests[0]!.platform?.os, 'linux');
    await ok(skiff(['copy', '-q', '--all', list, `oci:${t.dir}/list-all:x`]));
    // (The layers are compressed on the way into the layout, so the instance has a new digest there.)
    const top = JSON.parse(await ok(run('skopeo', ['inspect', '--raw', `oci:${t.dir}/list-all:x`]))) as { mediaType: string; manifests: { platform?: unknown }[] };
    assert.equal(top.mediaType, 'application/vnd.oci.image.index.v1+json');
    assert.deepEqual(top.manifests.map((m) => m.platform), raw.manifests.map((m) => m.platform), 'the list written whole');
    assert.deepEqual(await flat(`oci:${t.dir}/list-all:x`), fixtureFlat);
    // Without --all, the host's instance alone, as an image.
    await ok(skiff(['copy', '-q', list, `oci:${t.dir}/list-one:x`]));
    const one = JSON.parse(await ok(skiff(['inspect', '--raw', `oci:${t.dir}/list-one:x`]))) as { mediaType: string };
    assert.equal(one.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.deepEqual(await flat(`oci:${t.dir}/list-one:x`), fixtureFlat);
    // An instance the store no longer has (podman manifest add of a remote image records it without pulling it;
    // here the instance is added, then removed).
    await makeLayout(`${t.dir}/listed`, 'l', sampleSpec(77));
    await ok(skiff(['copy', '-q', `oci:${t.dir}/listed:l`, `containers-storage:[${store}]localhost/listed:1`]));
    await podman(['manifest', 'create', 'localhost/list:2']);
    await podman(['manifest', 'add', 'localhost/list:2', 'containers-storage:localhost/listed:1']);
    const wanted = (JSON.parse(await podman(['manifest', 'inspect', 'localhost/list:2'])) as { manifests: { digest: string }[] }).manifests[0]!.digest;
    await ok(skiff(['--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, 'rmi', 'localhost/listed:1']));
    const missing = await skiff(['copy', '-q', '--all', `containers-storage:[${store}]localhost/list:2`, `oci:${t.dir}/list-gone:x`]);
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, new RegExp(`the list's instance ${wanted} \\(linux/amd64\\) is not in the store`));
    await assert.rejects(fsp.access(`${t.dir}/list-gone`));
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

describe('containers-storage (write)', () => {
  let t: ReturnType<typeof tempDir>;
  let store: string;
  let g: string[];
  before(async () => {
    t = tempDir();
    store = `overlay@${t.dir}/root+${t.dir}/run`;
    g = ['--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, '--storage-driver', 'overlay'];
    await makeBusyboxLayout(`${t.dir}/fixture`);
    await makeLayout(`${t.dir}/wh`, 'wh', sampleSpec(21));
  });
  after(async () => {
    unmountUnder(t.dir);
    await run('chmod', ['-R', 'u+w', t.dir]);
    t.cleanup();
  });

  it('skiff stores an image: podman lists it, skopeo copies it out with the same config and filesystem', async () => {
    await ok(skiff(['copy', '-q', `oci:${t.dir}/fixture:busybox`, `containers-storage:[${store}]localhost/mine:1`]));
    const listed = JSON.parse(await ok(run('podman', [...g, 'images', '--format', 'json']))) as { Names: string[]; Id: string }[];
    assert.ok(listed.some((i) => i.Names.includes('localhost/mine:1')), JSON.stringify(listed));
    await ok(run('skopeo', ['copy', '-q', `containers-storage:[${store}]localhost/mine:1`, `oci:${t.dir}/sk-out:x`]));
    assert.equal(await ok(run('skopeo', ['inspect', '--config', '--raw', `oci:${t.dir}/sk-out:x`])), await ok(run('skopeo', ['inspect', '--config', '--raw', `oci:${t.dir}/fixture:busybox`])));
    assert.deepEqual(await flat(`oci:${t.dir}/sk-out:x`), await flat(`oci:${t.dir}/fixture:busybox`));
  });

  it('whiteouts and opaque directories become overlay whiteouts and round-trip exactly', async () => {
    await ok(skiff(['copy', '-q', `oci:${t.dir}/wh:wh`, `containers-storage:[${store}]localhost/wh:1`]));
    const layers = JSON.parse(await fsp.readFile(`${t.dir}/root/overlay-layers/layers.json`, 'utf8')) as { id: string; 'diff-digest': string }[];
    const cfg = JSON.parse(await ok(skiff(['inspect', '--config', '--raw', `oci:${t.dir}/wh:wh`]))) as { rootfs: { diff_ids: string[] } };
    const top = layers.find((l) => l['diff-digest'] === cfg.rootfs.diff_ids[1])!;
    const st = await fsp.stat(`${t.dir}/root/overlay/${top.id}/diff/etc/gone`);
    assert.ok(st.isCharacterDevice() && st.rdev === 0, 'whiteout is a 0:0 char device');
    const xattr = await run('getfattr', ['--only-values', '-n', 'trusted.overlay.opaque', `${t.dir}/root/overlay/${top.id}/diff/var/cache`]);
    assert.equal(xattr.stdout, 'y');
    await ok(run('skopeo', ['copy', '-q', `containers-storage:[${store}]localhost/wh:1`, `oci:${t.dir}/wh-out:x`]));
    assert.deepEqual(await flat(`oci:${t.dir}/wh-out:x`), await flat(`oci:${t.dir}/wh:wh`));
  });

  it('a layer with many small files and hard links to them: exact on disk and read back; a path given twice ends as the last', async () => {
    const tar = await import('tar-stream');
    const { createHash } = await import('node:crypto');
    const { layoutFromTar } = await import('../kit/fixtures.js');
    const makeTar = async (fill: (add: (h: Record<string, unknown>, body?: string) => Promise<void>) => Promise<void>): Promise<Buffer> => {
      const pack = tar.pack();
      const parts: Buffer[] = [];
      pack.on('data', (c: unknown) => void parts.push(c as Buffer));
      const done = new Promise<void>((r) => pack.on('end', () => r()));
      await fill((h, body) => new Promise((resolve, reject) => pack.entry({ mtime: new Date(1_600_000_000_000), ...h } as never, body ?? '', (e) => (e ? reject(e) : resolve()))));
      pack.finalize();
      await done;
      return Buffer.concat(parts);
    };
    const diffOf = async (bytes: Buffer): Promise<string> => {
      const layers = JSON.parse(await fsp.readFile(`${t.dir}/root/overlay-layers/layers.json`, 'utf8')) as { id: string; 'diff-digest': string }[];
      const layer = layers.find((l) => l['diff-digest'] === `sha256:${createHash('sha256').update(bytes).digest('hex')}`)!;
      return `${t.dir}/root/overlay/${layer.id}/diff`;
    };
    const many = await makeTar(async (add) => {
      await add({ name: 'many/', type: 'directory', mode: 0o755 });
      for (let i = 0; i < 300; i++) await add({ name: `many/f${i}`, mode: 0o644, uid: i % 3 === 0 ? 1000 : 0, gid: 0 }, `file ${i}\n`);
      await add({ name: 'many/link', type: 'link', linkname: 'many/f9' });
      // In a setgid directory a new file takes the directory's group: a root file there must still end 0:0.
      await add({ name: 'sg/', type: 'directory', mode: 0o2775, uid: 0, gid: 1000 });
      await add({ name: 'sg/root-owned', mode: 0o644, uid: 0, gid: 0 }, 'r\n');
      await add({ name: 'sg/suid', mode: 0o4755, uid: 0, gid: 0 }, 's\n');
      await add({ name: 'open', mode: 0o666, uid: 0, gid: 0 }, 'o\n');
    });
    await fsp.writeFile(`${t.dir}/many.tar`, many);
    await layoutFromTar(`${t.dir}/many`, `${t.dir}/many.tar`, 'many');
    await ok(skiff(['copy', '-q', `oci:${t.dir}/many:many`, `containers-storage:[${store}]localhost/many:1`]));
    const diff = await diffOf(many);
    assert.equal(await fsp.readFile(`${diff}/many/f299`, 'utf8'), 'file 299\n');
    assert.equal((await fsp.stat(`${diff}/many/f3`)).uid, 1000);
    assert.equal((await fsp.stat(`${diff}/many/f5`)).mtimeMs, 1_600_000_000_000);
    assert.equal((await fsp.stat(`${diff}/many/link`)).ino, (await fsp.stat(`${diff}/many/f9`)).ino);
    assert.equal((await fsp.stat(`${diff}/sg/root-owned`)).gid, 0);
    assert.equal((await fsp.stat(`${diff}/sg/suid`)).mode & 0o7777, 0o4755);
    assert.equal((await fsp.stat(`${diff}/open`)).mode & 0o7777, 0o666, 'a mode the umask would cut is set whole');
    assert.equal((await fsp.stat(`${diff}/many/f1`)).mode & 0o7777, 0o644);
    // The layer reads back as the very same tar (tar-split).
    await ok(skiff(['copy', '-q', `containers-storage:[${store}]localhost/many:1`, `oci:${t.dir}/many-back:x`]));
    const cfg = JSON.parse(await ok(skiff(['inspect', '--config', '--raw', `oci:${t.dir}/many-back:x`]))) as { rootfs: { diff_ids: string[] } };
    assert.deepEqual(cfg.rootfs.diff_ids, [`sha256:${createHash('sha256').update(many).digest('hex')}`]);
    // A path given twice in one layer (Docker never writes that): a link made in between keeps the first content.
    // (Such a layer cannot be rebuilt from disk, as with containers/storage: only its applied state is checked.)
    const twice = await makeTar(async (add) => {
      await add({ name: 'a', mode: 0o600 }, 'first\n');
      await add({ name: 'b', type: 'link', linkname: 'a' });
      await add({ name: 'a', mode: 0o640 }, 'second\n');
    });
    await fsp.writeFile(`${t.dir}/twice.tar`, twice);
    await layoutFromTar(`${t.dir}/twice`, `${t.dir}/twice.tar`, 'twice');
    await ok(skiff(['copy', '-q', `oci:${t.dir}/twice:twice`, `containers-storage:[${store}]localhost/twice:1`]));
    const d2 = await diffOf(twice);
    assert.equal(await fsp.readFile(`${d2}/a`, 'utf8'), 'second\n');
    assert.equal(await fsp.readFile(`${d2}/b`, 'utf8'), 'first\n');
  });

  it('layers already in the store are reused; a name moves to the image that takes it', async () => {
    const before = JSON.parse(await fsp.readFile(`${t.dir}/root/overlay-layers/layers.json`, 'utf8')).length;
    // The same image again (what a cached build does): nothing already there is rewritten, only the new name added.
    const inodes = async (): Promise<number[]> => {
      const [img] = (JSON.parse(await fsp.readFile(`${t.dir}/root/overlay-images/images.json`, 'utf8')) as { id: string; names: string[] }[]).filter((i) => i.names.includes('localhost/mine:1'));
      const dir = `${t.dir}/root/overlay-images/${img!.id}`;
      return Promise.all([`${t.dir}/root/overlay-layers/layers.json`, ...(await fsp.readdir(dir)).map((n) => path.join(dir, n))].map(async (f) => (await fsp.stat(f)).ino));
    };
    const was = await inodes();
    await ok(skiff(['copy', '-q', `oci:${t.dir}/fixture:busybox`, `containers-storage:[${store}]localhost/again:2`]));
    assert.deepEqual(await inodes(), was);
    assert.equal(JSON.parse(await fsp.readFile(`${t.dir}/root/overlay-layers/layers.json`, 'utf8')).length, before);
    await ok(skiff(['copy', '-q', `oci:${t.dir}/wh:wh`, `containers-storage:[${store}]localhost/mine:1`]));
    const images = JSON.parse(await fsp.readFile(`${t.dir}/root/overlay-images/images.json`, 'utf8')) as { id: string; names: string[] }[];
    assert.equal(images.filter((i) => i.names.includes('localhost/mine:1')).length, 1);
    // Layers the store holds are not fetched again: the same image from a layout whose layer blobs are gone.
    await fsp.cp(`${t.dir}/fixture`, `${t.dir}/no-layers`, { recursive: true });
    const idx = JSON.parse(await fsp.readFile(`${t.dir}/no-layers/index.json`, 'utf8')) as { manifests: { digest: string }[] };
    const m = JSON.parse(await fsp.readFile(`${t.dir}/no-layers/blobs/sha256/${idx.manifests[0]!.digest.slice(7)}`, 'utf8')) as { layers: { digest: string }[] };
    for (const l of m.layers) await fsp.rm(`${t.dir}/no-layers/blobs/sha256/${l.digest.slice(7)}`);
    await ok(skiff(['copy', '-q', `oci:${t.dir}/no-layers:busybox`, `containers-storage:[${store}]localhost/nolayers:1`]));
    assert.deepEqual(await flat(`containers-storage:[${store}]localhost/nolayers:1`), await flat(`oci:${t.dir}/fixture:busybox`));
    // Staging dirs (layers are unpacked in overlay/ while they arrive) are gone after a copy, and a killed copy's
    // (its pid is gone) are swept by the next one; podman does not mind them meanwhile.
    assert.deepEqual((await fsp.readdir(`${t.dir}/root/overlay`)).filter((n) => n.startsWith('.skiff-stage-')), []);
    const dead = await new Promise<number>((resolve) => {
      const p = spawn('true');
      p.on('exit', () => resolve(p.pid!));
    });
    await fsp.mkdir(`${t.dir}/root/overlay/.skiff-stage-${dead}-0badf00d/layer-0-00/diff`, { recursive: true });
    assert.equal((await run('podman', ['--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, '--storage-driver', 'overlay', 'images'])).code, 0);
    await ok(skiff(['copy', '-q', `oci:${t.dir}/fixture:busybox`, `containers-storage:[${store}]localhost/after-kill:1`]));
    assert.deepEqual((await fsp.readdir(`${t.dir}/root/overlay`)).filter((n) => n.startsWith('.skiff-stage-')), []);
  });

  it('a layer left incomplete by a killed writer is removed on the next write; a hostile layer is refused cleanly', async () => {
    const file = `${t.dir}/root/overlay-layers/layers.json`;
    const layers = JSON.parse(await fsp.readFile(file, 'utf8'));
    layers.push({ id: 'f'.repeat(64), created: new Date().toISOString(), flags: { incomplete: true } });
    await fsp.writeFile(file, JSON.stringify(layers));
    await fsp.mkdir(`${t.dir}/root/overlay/${'f'.repeat(64)}/diff`, { recursive: true });
    // A layer with ../ in it: refused, nothing written outside the store, no incomplete leftovers, no image.
    const evil = `${t.dir}/evil`;
    await makeLayout(evil, 'evil', { layers: [{ files: [{ path: 'ok', content: 'fine' }] }] });
    const idx = JSON.parse(await fsp.readFile(`${evil}/index.json`, 'utf8'));
    const m = JSON.parse(await fsp.readFile(`${evil}/blobs/sha256/${idx.manifests[0].digest.slice(7)}`, 'utf8'));
    const { gunzipSync, gzipSync } = await import('node:zlib');
    const tarBuf = gunzipSync(await fsp.readFile(`${evil}/blobs/sha256/${m.layers[0].digest.slice(7)}`));
    tarBuf.fill(0, 0, 100);
    tarBuf.write('../../escaped', 0);
    tarBuf.fill(0x20, 148, 156);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += tarBuf[i]!;
    tarBuf.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    const { createHash } = await import('node:crypto');
    const gz = gzipSync(tarBuf);
    const gzHex = createHash('sha256').update(gz).digest('hex');
    await fsp.writeFile(`${evil}/blobs/sha256/${gzHex}`, gz);
    const cfgPath = `${evil}/blobs/sha256/${m.config.digest.slice(7)}`;
    const cfg = JSON.parse(await fsp.readFile(cfgPath, 'utf8'));
    cfg.rootfs.diff_ids = [`sha256:${createHash('sha256').update(tarBuf).digest('hex')}`];
    const cfgBuf = Buffer.from(JSON.stringify(cfg));
    const cfgHex = createHash('sha256').update(cfgBuf).digest('hex');
    await fsp.writeFile(`${evil}/blobs/sha256/${cfgHex}`, cfgBuf);
    const m2 = { ...m, config: { ...m.config, digest: `sha256:${cfgHex}`, size: cfgBuf.length }, layers: [{ ...m.layers[0], digest: `sha256:${gzHex}`, size: gz.length }] };
    const mBuf = Buffer.from(JSON.stringify(m2));
    const mHex = createHash('sha256').update(mBuf).digest('hex');
    await fsp.writeFile(`${evil}/blobs/sha256/${mHex}`, mBuf);
    await fsp.writeFile(`${evil}/index.json`, JSON.stringify({ schemaVersion: 2, manifests: [{ ...idx.manifests[0], digest: `sha256:${mHex}`, size: mBuf.length }] }));
    const r = await skiff(['copy', '-q', `oci:${evil}:evil`, `containers-storage:[${store}]localhost/evil:1`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /escapes|refused/);
    await assert.rejects(fsp.stat(`${t.dir}/escaped`));
    await assert.rejects(fsp.stat(`${t.dir}/root/escaped`));
    const after = JSON.parse(await fsp.readFile(file, 'utf8')) as { id: string; flags?: { incomplete?: boolean } }[];
    assert.equal(after.filter((l) => l.flags?.incomplete).length, 0, 'no incomplete layers left');
    await assert.rejects(fsp.stat(`${t.dir}/root/overlay/${'f'.repeat(64)}`));
    const images = JSON.parse(await fsp.readFile(`${t.dir}/root/overlay-images/images.json`, 'utf8')) as { names: string[] }[];
    assert.ok(!images.some((i) => i.names.includes('localhost/evil:1')));
  });

  it('skiff and podman work on the same store at once (21 interleaved writes, tags, rmis); the store stays consistent', async () => {
    await makeLayout(`${t.dir}/third`, 'c', sampleSpec(34));
    await makeLayout(`${t.dir}/fourth`, 'd', sampleSpec(35));
    await ok(skiff(['copy', '-q', `oci:${t.dir}/fixture:busybox`, `docker-archive:${t.dir}/a.tar:localhost/podman-a:1`]));
    await ok(skiff(['copy', '-q', `oci:${t.dir}/fourth:d`, `docker-archive:${t.dir}/b.tar:localhost/podman-b:1`]));
    const sk = (args: string[]) => ok(skiff(['--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, ...args]));
    const pd = (args: string[]) => ok(run('podman', [...g, ...args]));
    await pd(['load', '-q', '-i', `${t.dir}/a.tar`]);
    await pd(['load', '-q', '-i', `${t.dir}/b.tar`]);
    // podman 4.3 computes a tag's new name list outside the store lock, so two podman tags at once can lose one
    // (a podman race, not skiff's): podman's own operations run one after another, interleaved with skiff's.
    let podmanChain: Promise<unknown> = pd(['rmi', 'localhost/podman-b:1']);
    const jobs: Promise<unknown>[] = [];
    for (let i = 0; i < 4; i++) {
      jobs.push(sk(['copy', '-q', `oci:${t.dir}/wh:wh`, `containers-storage:localhost/skiff-side:${i}`]).then(() => sk(['tag', `localhost/skiff-side:${i}`, `localhost/skiff-extra:${i}`])));
      podmanChain = podmanChain.then(() => pd(['tag', 'localhost/podman-a:1', `localhost/podman-extra:${i}`]));
      jobs.push(sk(['copy', '-q', `oci:${t.dir}/third:c`, `containers-storage:localhost/doomed:${i}`]).then(() => sk(['rmi', `localhost/doomed:${i}`])));
    }
    jobs.push(podmanChain);
    await Promise.all(jobs);
    const listed = JSON.parse(await pd(['images', '--format', 'json'])) as { Names: string[] }[];
    const names = new Set(listed.flatMap((x) => x.Names ?? []));
    for (let i = 0; i < 4; i++) {
      for (const n of [`localhost/skiff-side:${i}`, `localhost/skiff-extra:${i}`, `localhost/podman-extra:${i}`]) assert.ok(names.has(n), `${n} in ${[...names].join(', ')}`);
      assert.ok(!names.has(`localhost/doomed:${i}`), `doomed:${i} removed`);
    }
    assert.ok(names.has('localhost/podman-a:1') && !names.has('localhost/podman-b:1'));
    // Both tools still read the images, and no layer is left incomplete.
    await sk(['copy', '-q', 'containers-storage:localhost/podman-extra:2', `oci:${t.dir}/conc:x`]);
    assert.deepEqual(await flat(`oci:${t.dir}/conc:x`), await flat(`oci:${t.dir}/fixture:busybox`));
    await ok(run('skopeo', ['copy', '-q', `containers-storage:[${store}]localhost/skiff-extra:3`, `oci:${t.dir}/conc2:x`]));
    const layers = JSON.parse(await fsp.readFile(`${t.dir}/root/overlay-layers/layers.json`, 'utf8')) as { flags?: { incomplete?: boolean } }[];
    assert.equal(layers.filter((l) => l.flags?.incomplete).length, 0);
  });
});
