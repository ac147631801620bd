/**
 * Rootless containers-storage: as the unprivileged user .ci/run creates (skiffci, with /etc/subuid and /etc/subgid
 * ranges), skiff stores an image inside its user namespace; rootless podman runs it with owners preserved;
 * skiff reads back what it and podman wrote.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { layoutFromTar, makeBusyboxLayout } from '../kit/fixtures.js';
import { makeLayout, sampleSpec } from '../kit/image.js';
import { ok, run, SKIFF, tempDir } from '../kit/run.js';
import { flatRef } from '../kit/validate.js';

const USER = 'skiffci';

describe('rootless containers-storage (as an unprivileged user)', () => {
  let t: ReturnType<typeof tempDir>;
  let as: (cmd: string) => Promise<string>;
  before(async () => {
    if (spawnSync('id', [USER]).status !== 0) throw new Error(`user ${USER} is missing: .ci/run creates it (with /etc/subuid and /etc/subgid ranges)`);
    t = tempDir('skiff-rootless-');
    await makeBusyboxLayout(`${t.dir}/fixture`);
    await makeLayout(`${t.dir}/wh`, 'wh', sampleSpec(41));
    await fsp.mkdir(`${t.dir}/xdg`, { mode: 0o700 });
    await ok(run('chown', ['-R', `${USER}:`, t.dir]));
    await fsp.chmod(t.dir, 0o755);
    const env = `export HOME=${t.dir} XDG_RUNTIME_DIR=${t.dir}/xdg XDG_CONFIG_HOME=${t.dir}/config;`;
    as = (cmd) => ok(run('su', [USER, '-s', '/bin/sh', '-c', `${env} cd ${t.dir} && ${cmd}`]));
  });
  after(async () => {
    // The store holds files owned by the user's subordinate IDs: remove it from inside its namespace, then the rest.
    await run('su', [USER, '-s', '/bin/sh', '-c', `unshare --user --map-root-user --map-auto rm -rf ${t.dir}/root ${t.dir}/run`]);
    t.cleanup();
  });

  const store = () => `--root ${t.dir}/root --runroot ${t.dir}/run`;
  const skiff = (args: string) => `${process.execPath} ${SKIFF} ${store()} ${args}`;
  const podman = (args: string) => `podman ${store()} --storage-driver overlay ${args}`;

  it('skiff stores an image rootless; owners are kept through the subuid range; rootless podman runs it', async () => {
    await as(skiff(`copy -q oci:${t.dir}/fixture:busybox containers-storage:localhost/rl:1`));
    assert.match(await as(skiff('images')), /localhost\/rl\s+1/);
    const out = await as(podman('--runtime runc run --rm --network host localhost/rl:1 /bin/sh -c "stat -c %u:%g /home/user/data.bin; id -u"'));
    assert.match(out, /^1000:0\n0\n$/m);
    // On disk, uid 1000 of the image is the user's 1000th subordinate ID, not the user itself.
    const layers = JSON.parse(await fsp.readFile(`${t.dir}/root/overlay-layers/layers.json`, 'utf8')) as { id: string; uidset?: number[] }[];
    const top = layers.find((l) => l.uidset?.includes(1000))!;
    const st = await fsp.stat(`${t.dir}/root/overlay/${top.id}/diff/home/user/data.bin`);
    assert.notEqual(st.uid, 1000);
    assert.ok(st.uid >= 100000, `uid on disk ${st.uid}`);
  });

  it('whiteouts and opaque dirs in a rootless store use 0:0 devices and user.overlay.opaque; the image reads back exactly', async () => {
    await as(skiff(`copy -q oci:${t.dir}/wh:wh containers-storage:localhost/wh:1`));
    await as(skiff(`copy -q containers-storage:localhost/wh:1 oci:${t.dir}/wh-out:x`));
    assert.deepEqual(await flatRef(`oci:${t.dir}/wh-out:x`), await flatRef(`oci:${t.dir}/wh:wh`));
    // Only the upper layer's var/cache is opaque; the base layer's is a plain directory.
    const attr = await as(`unshare --user --map-root-user --map-auto sh -c 'for d in ${t.dir}/root/overlay/*/diff/var/cache; do getfattr --only-values -n user.overlay.opaque "$d" 2>/dev/null; done; true'`);
    assert.equal(attr, 'y');
  });

  it('skiff build runs rootless: RUN in runc inside the user namespace, owners kept, rootless podman runs the result', async () => {
    await fsp.mkdir(`${t.dir}/ctx`, { recursive: true });
    await fsp.writeFile(`${t.dir}/ctx/Containerfile`, 'FROM localhost/rl:1\nRUN echo rootless > /r.txt && chown 1000:1000 /r.txt\nCOPY --chown=user f.txt /home/user/\nCMD ["cat", "/r.txt"]\n');
    await fsp.writeFile(`${t.dir}/ctx/f.txt`, 'f\n');
    await ok(run('chown', ['-R', `${USER}:`, `${t.dir}/ctx`]));
    const id = (await as(skiff(`build -q -t localhost/built:1 ${t.dir}/ctx`))).trim();
    assert.match(id, /^[0-9a-f]{64}$/);
    const out = await as(podman('--runtime runc run --rm --network host localhost/built:1 /bin/sh -c "stat -c %u:%g /r.txt /home/user/f.txt; cat /r.txt"'));
    assert.match(out, /^1000:1000\n1000:1000\nrootless\n$/m);
    // The same build with chroot isolation (no OCI runtime) gives the same filesystem.
    await as(skiff(`build -q --no-cache --isolation chroot -t localhost/built-chroot:1 ${t.dir}/ctx`));
    await as(skiff(`copy -q containers-storage:localhost/built:1 oci:${t.dir}/b-runc:x`));
    await as(skiff(`copy -q containers-storage:localhost/built-chroot:1 oci:${t.dir}/b-chroot:x`));
    assert.deepEqual(await flatRef(`oci:${t.dir}/b-chroot:x`), await flatRef(`oci:${t.dir}/b-runc:x`));
  });

  it('the installed launcher (bin/skiff) enters the user namespace itself: same store, same owners', async () => {
    const launcher = `${path.dirname(SKIFF)}/skiff ${store()}`;
    assert.match(await as(`${launcher} images`), /localhost\/rl\s+1/);
    await as(`${launcher} copy -q containers-storage:localhost/rl:1 oci:${t.dir}/via-launcher:x`);
    assert.deepEqual(await flatRef(`oci:${t.dir}/via-launcher:x`), await flatRef(`oci:${t.dir}/fixture:busybox`));
    // Commands that need no store run without a namespace.
    assert.match(await as(`${path.dirname(SKIFF)}/skiff --version`), /^skiff version /);
  });

  it('through the launcher, a rootless store command still reports on stderr (errors and progress are not lost)', async () => {
    const launcher = `${path.dirname(SKIFF)}/skiff ${store()}`;
    const env = `export HOME=${t.dir} XDG_RUNTIME_DIR=${t.dir}/xdg;`;
    const r = await run('su', [USER, '-s', '/bin/sh', '-c', `${env} cd ${t.dir} && ${launcher} rmi localhost/no-such-image:1`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no-such-image/);
    const copy = await run('su', [USER, '-s', '/bin/sh', '-c', `${env} cd ${t.dir} && ${launcher} copy oci:${t.dir}/fixture:busybox containers-storage:localhost/progress:1`]);
    assert.equal(copy.code, 0, copy.stderr);
    assert.match(copy.stderr, /Writing manifest|Copying/);
  });

  it('a user without subordinate IDs gets one clear error naming the files and the fix (launcher and node alike)', async () => {
    // nobody has no range in /etc/subuid or /etc/subgid (only .ci/run's user has).
    assert.equal(spawnSync('grep', ['-q', '^nobody:', '/etc/subuid']).status, 1, 'nobody has a subuid range here');
    for (const cmd of [`${path.dirname(SKIFF)}/skiff`, `${process.execPath} ${SKIFF}`]) {
      const r = await run('su', ['nobody', '-s', '/bin/sh', '-c', `HOME=${t.dir}/nobody-home ${cmd} --root ${t.dir}/nobody-root images`]);
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, /^skiff: rootless storage needs subordinate IDs for user nobody, and \/etc\/subuid and \/etc\/subgid have none \(as root: usermod --add-subuids/);
    }
  });

  it('skiff reads what rootless podman stored', async () => {
    await as(skiff(`copy -q oci:${t.dir}/fixture:busybox docker-archive:${t.dir}/p.tar:localhost/from-podman:1`));
    await as(podman(`load -q -i ${t.dir}/p.tar`));
    await as(skiff(`copy -q containers-storage:localhost/from-podman:1 oci:${t.dir}/fp:x`));
    assert.deepEqual(await flatRef(`oci:${t.dir}/fp:x`), await flatRef(`oci:${t.dir}/fixture:busybox`));
  });

  it('a layer with device nodes stores rootless (a user namespace cannot mknod: skipped on disk, as c/storage) and reads back identical', async () => {
    await ok(run('tar', ['--numeric-owner', '-cf', `${t.dir}/dev.tar`, '-C', '/', 'dev/null', 'dev/zero', 'etc/hostname']));
    await layoutFromTar(`${t.dir}/dev`, `${t.dir}/dev.tar`, 'dev');
    await ok(run('chown', ['-R', `${USER}:`, `${t.dir}/dev`, `${t.dir}/dev.tar`]));
    await as(skiff(`copy -q oci:${t.dir}/dev:dev containers-storage:localhost/dev:1`));
    await as(skiff(`copy -q containers-storage:localhost/dev:1 oci:${t.dir}/dev-out:x`));
    const layers = (ref: string) => as(skiff(`inspect --config --raw ${ref}`)).then((c) => (JSON.parse(c) as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids);
    assert.deepEqual(await layers(`oci:${t.dir}/dev-out:x`), await layers(`oci:${t.dir}/dev:dev`));
    assert.match((await flatRef(`oci:${t.dir}/dev-out:x`)).get('dev/null') ?? '', /^character-device /);
  });
});
