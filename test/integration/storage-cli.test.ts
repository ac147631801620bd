/** podman-style image commands over the store: pull (short names), push, tag, rmi, save, load, images. */
import { strict as assert } from 'node:assert';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeBusyboxLayout } from '../kit/fixtures.js';
import { makeLayout, sampleSpec } from '../kit/image.js';
import { startRegistry, type TestRegistry } from '../kit/registry.js';
import { ok, run, SKIFF, tempDir, unmountUnder } from '../kit/run.js';
import { flatRef } from '../kit/validate.js';

describe('skiff pull / push / tag / rmi / save / load', () => {
  let t: ReturnType<typeof tempDir>;
  let reg: TestRegistry;
  let env: NodeJS.ProcessEnv;
  let sk: (args: string[]) => Promise<string>;
  before(async () => {
    t = tempDir();
    reg = await startRegistry();
    await makeBusyboxLayout(`${t.dir}/fixture`);
    await makeLayout(`${t.dir}/other`, 'o', sampleSpec(31));
    await fsp.writeFile(`${t.dir}/registries.conf`, `unqualified-search-registries = ["${reg.host}"]\nshort-name-mode = "permissive"\n[[registry]]\nlocation = "${reg.host}"\ninsecure = true\n`);
    env = { ...process.env, CONTAINERS_REGISTRIES_CONF: `${t.dir}/registries.conf` };
    sk = (args) => ok(run(process.execPath, [SKIFF, '--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, ...args], { env }));
    await ok(run(process.execPath, [SKIFF, 'copy', '-q', `oci:${t.dir}/fixture:busybox`, `docker://${reg.host}/library/bb:1`], { env }));
  });
  after(async () => {
    await reg.stop();
    unmountUnder(t.dir);
    await run('chmod', ['-R', 'u+w', t.dir]);
    t.cleanup();
  });

  it('pull resolves a short name through registries.conf and prints the image ID', async () => {
    const id = (await sk(['pull', '-q', 'library/bb:1'])).trim();
    assert.match(id, /^[0-9a-f]{64}$/);
    assert.match(await sk(['images']), new RegExp(`${reg.host.replace(/\./g, '\\.')}/library/bb\\s+1\\s+${id.slice(0, 12)}`));
    assert.deepEqual(await flatRef(`containers-storage:[overlay@${t.dir}/root+${t.dir}/run]${reg.host}/library/bb:1`), await flatRef(`oci:${t.dir}/fixture:busybox`));
  });

  it('tag adds a name; rmi of one name only untags; rmi of the last name deletes, keeping layers others use', async () => {
    await sk(['tag', `${reg.host}/library/bb:1`, 'localhost/alias:1']);
    assert.match(await sk(['images']), /localhost\/alias\s+1/);
    await ok(run(process.execPath, [SKIFF, '--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, 'copy', '-q', `oci:${t.dir}/other:o`, 'containers-storage:localhost/other:1'], { env }));
    assert.equal(await sk(['rmi', 'localhost/alias:1']), 'Untagged: localhost/alias:1\n');
    const layersBefore = JSON.parse(await fsp.readFile(`${t.dir}/root/overlay-layers/layers.json`, 'utf8')).length;
    assert.match(await sk(['rmi', 'localhost/other:1']), /^Deleted: [0-9a-f]{64}\n$/);
    const layersAfter = JSON.parse(await fsp.readFile(`${t.dir}/root/overlay-layers/layers.json`, 'utf8')).length;
    assert.equal(layersAfter, layersBefore - 2, 'the two layers only that image used are gone');
    assert.deepEqual(await flatRef(`containers-storage:[overlay@${t.dir}/root+${t.dir}/run]${reg.host}/library/bb:1`), await flatRef(`oci:${t.dir}/fixture:busybox`), 'the other image is intact');
    const missing = await run(process.execPath, [SKIFF, '--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, 'rmi', 'nope:1'], { env });
    assert.equal(missing.code, 2);
  });

  it('save and load round-trip through a docker-archive; podman reads the saved archive', async () => {
    await sk(['save', '-q', '-o', `${t.dir}/saved.tar`, `${reg.host}/library/bb:1`]);
    const r = await run('podman', ['--root', `${t.dir}/proot`, '--runroot', `${t.dir}/prun`, '--storage-driver', 'vfs', 'load', '-i', `${t.dir}/saved.tar`]);
    assert.equal(r.code, 0, r.stderr);
    await sk(['rmi', `${reg.host}/library/bb:1`]);
    assert.equal(await sk(['load', '-q', '-i', `${t.dir}/saved.tar`]), `Loaded image: ${reg.host}/library/bb:1\n`);
    assert.deepEqual(await flatRef(`containers-storage:[overlay@${t.dir}/root+${t.dir}/run]${reg.host}/library/bb:1`), await flatRef(`oci:${t.dir}/fixture:busybox`));
  });

  it('push sends a stored image to a registry; skopeo reads it', async () => {
    await sk(['push', '-q', '--tls-verify=false', `${reg.host}/library/bb:1`, `docker://${reg.host}/pushed/bb:2`]);
    const r = await run('skopeo', ['inspect', '--tls-verify=false', `docker://${reg.host}/pushed/bb:2`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(path.basename(JSON.parse(r.stdout).Name), 'bb');
  });
});
