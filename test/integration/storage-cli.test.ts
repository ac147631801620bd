/** podman-style image commands over the store: pull (short names), push, tag, rmi, save, load, images. */
import { strict as assert } from 'node:assert';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeBusyboxLayout } from '../kit/fixtures.js';
import { makeLayout, makeMultiPlatformLayout, sampleSpec } from '../kit/image.js';
import { startRegistry, type TestRegistry } from '../kit/registry.js';
import { ok, run, SKIFF, tempDir, unmountUnder, type RunResult } from '../kit/run.js';
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
    await makeMultiPlatformLayout(`${t.dir}/mlist-mp`, 'mp', [{ ...sampleSpec(41), architecture: 'amd64' }, { ...sampleSpec(42), architecture: 'arm64', variant: 'v8' }]);
    await fsp.writeFile(`${t.dir}/registries.conf`, `unqualified-search-registries = ["${reg.host}"]\nshort-name-mode = "permissive"\n[[registry]]\nlocation = "${reg.host}"\ninsecure = true\n`);
    env = { ...process.env, CONTAINERS_REGISTRIES_CONF: `${t.dir}/registries.conf` };
    sk = (args) => ok(run(process.execPath, [SKIFF, '--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, ...args], { env }));
    await ok(run(process.execPath, [SKIFF, 'copy', '-q', `oci:${t.dir}/fixture:busybox`, `docker://${reg.host}/library/bb:1`], { env }));
  });
  /** localhost/base:1 (the busybox fixture) and an image built on it from `files` (its Containerfile too), in `r`'s store. */
  const baseAndChild = async (r: (args: string[]) => Promise<RunResult>, ctx: string, files: Record<string, string>, tag: string): Promise<void> => {
    await fsp.mkdir(ctx, { recursive: true });
    for (const [name, text] of Object.entries(files)) await fsp.writeFile(path.join(ctx, name), text);
    await ok(r(['copy', '-q', `oci:${t.dir}/fixture:busybox`, 'containers-storage:localhost/base:1']));
    await ok(r(['build', '-q', '-t', tag, ctx]));
  };
  /** skiff and podman on one store under `root` (and the flags that name it). */
  const oneStore = (root: string) => {
    const g = ['--root', `${root}/root`, '--runroot', `${root}/run`];
    return { g, mine: (args: string[]) => run(process.execPath, [SKIFF, ...g, ...args], { env }), theirs: (args: string[]) => run('podman', [...g, '--storage-driver', 'overlay', ...args]) };
  };
  after(async () => {
    await reg.stop();
    unmountUnder(t.dir);
    await run('chmod', ['-R', 'u+w', t.dir]);
    t.cleanup();
  });

  it('pull resolves a short name through registries.conf and prints the image ID', async () => {
    // An --authfile that does not exist is refused, as podman refuses it (exit 125); skopeo's commands read it as empty.
    const noAuth = await run(process.execPath, [SKIFF, '--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, 'pull', '-q', '--authfile', `${t.dir}/missing-auth.json`, 'library/bb:1'], { env });
    assert.equal(noAuth.code, 125, noAuth.stderr);
    assert.match(noAuth.stderr, /--authfile .*missing-auth\.json: no such file/);
    const id = (await sk(['pull', '-q', 'library/bb:1'])).trim();
    // inspect of the pulled image shows the manifest it was pulled with, as skopeo does (its Digest is the one
    // podman lists), not the one a copy out of the store is described by (layers uncompressed).
    const stored = `containers-storage:[overlay@${t.dir}/root+${t.dir}/run]${reg.host}/library/bb:1`;
    assert.equal(await sk(['inspect', '--raw', stored]), await ok(run('skopeo', ['inspect', '--raw', stored])));
    const mineInspect = JSON.parse(await sk(['inspect', stored])) as Record<string, unknown>;
    const theirsInspect = JSON.parse(await ok(run('skopeo', ['inspect', stored]))) as Record<string, unknown>;
    for (const k of Object.keys(theirsInspect)) assert.deepEqual(mineInspect[k], theirsInspect[k], k);
    assert.match(id, /^[0-9a-f]{64}$/);
    assert.match(await sk(['images']), new RegExp(`${reg.host.replace(/\./g, '\\.')}/library/bb\\s+1\\s+${id.slice(0, 12)}`));
    assert.deepEqual(await flatRef(`containers-storage:[overlay@${t.dir}/root+${t.dir}/run]${reg.host}/library/bb:1`), await flatRef(`oci:${t.dir}/fixture:busybox`));
  });

  it('pull --platform, --arch, --variant choose an image of a multi-platform index, as podman pull; a bad platform is refused', async () => {
    await makeMultiPlatformLayout(`${t.dir}/mp`, 'multi', [{ ...sampleSpec(41), architecture: 'amd64' }, { ...sampleSpec(42), architecture: 'arm64', variant: 'v8' }]);
    await ok(run(process.execPath, [SKIFF, 'copy', '-q', '--all', `oci:${t.dir}/mp:multi`, `docker://${reg.host}/library/mp:1`], { env }));
    const arch = async (args: string[]): Promise<string> => {
      const id = (await sk(['pull', '-q', ...args, `${reg.host}/library/mp:1`])).trim();
      const cfg = JSON.parse(await sk(['inspect', '--config', '--raw', `containers-storage:${id}`]));
      return `${cfg.architecture}${cfg.variant ? `/${cfg.variant}` : ''}`;
    };
    assert.equal(await arch(['--platform', 'linux/arm64']), 'arm64/v8');
    assert.equal(await arch(['--arch', 'amd64']), 'amd64');
    assert.equal(await arch(['--arch', 'arm64', '--variant', 'v8']), 'arm64/v8');
    const bad = await run(process.execPath, [SKIFF, '--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, 'pull', '--platform', 'linux', `${reg.host}/library/mp:1`], { env });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--platform "linux": expected OS\/ARCH\[\/VARIANT\]/);
  });

  it('tag and rmi keep names-history as containers/storage does (podman doing the same on another store gives the same history)', async () => {
    const history = async (root: string): Promise<string[][]> => JSON.parse(await fsp.readFile(`${root}/overlay-images/images.json`, 'utf8')).map((i: { 'names-history'?: string[] }) => i['names-history'] ?? []);
    const mine = `${t.dir}/hist-skiff`;
    const theirs = `${t.dir}/hist-podman`;
    const skiffIn = (args: string[]) => ok(run(process.execPath, [SKIFF, '--root', `${mine}/root`, '--runroot', `${mine}/run`, ...args], { env }));
    const podmanIn = (args: string[]) => ok(run('podman', ['--root', `${theirs}/root`, '--runroot', `${theirs}/run`, '--storage-driver', 'overlay', ...args]));
    await skiffIn(['copy', '-q', `oci:${t.dir}/fixture:busybox`, 'containers-storage:localhost/h:1']);
    await ok(run('skopeo', ['copy', '-q', `oci:${t.dir}/fixture:busybox`, `containers-storage:[overlay@${theirs}/root+${theirs}/run]localhost/h:1`]));
    // (Short names too: podman puts them under localhost/, a qualified name keeps its registry.)
    for (const [tool, args] of [['tag', ['localhost/h:1', 'localhost/h:2', 'localhost/i:1']], ['tag', ['localhost/h:2', 'localhost/h:1']], ['rmi', ['localhost/h:2']], ['tag', ['localhost/h:1', 'short', 'team/app:2', 'docker.io/qualified:3']], ['rmi', ['short']]] as const) {
      await skiffIn([tool, ...args]);
      await podmanIn([tool, ...args]);
    }
    assert.deepEqual(await history(`${mine}/root`), await history(`${theirs}/root`));
    const names = async (root: string): Promise<string[]> => JSON.parse(await fsp.readFile(`${root}/overlay-images/images.json`, 'utf8'))[0].names as string[];
    assert.deepEqual(await names(`${mine}/root`), await names(`${theirs}/root`));
    assert.ok((await names(`${mine}/root`)).includes('localhost/team/app:2') && (await names(`${mine}/root`)).includes('docker.io/library/qualified:3'));
    unmountUnder(mine);
    unmountUnder(theirs);
  });

  it('tag adds a name; rmi of one name only untags; rmi of the last name deletes, keeping layers others use', async () => {
    await sk(['tag', `${reg.host}/library/bb:1`, 'localhost/alias:1']);
    assert.match(await sk(['images']), /localhost\/alias\s+1/);
    await ok(run(process.execPath, [SKIFF, '--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, 'copy', '-q', `oci:${t.dir}/other:o`, 'containers-storage:localhost/other:1'], { env }));
    assert.equal(await sk(['rmi', 'localhost/alias:1']), 'Untagged: localhost/alias:1\n');
    const layersBefore = JSON.parse(await fsp.readFile(`${t.dir}/root/overlay-layers/layers.json`, 'utf8')).length;
    assert.match(await sk(['rmi', 'localhost/other:1']), /^Untagged: localhost\/other:1\nDeleted: [0-9a-f]{64}\n$/);
    const layersAfter = JSON.parse(await fsp.readFile(`${t.dir}/root/overlay-layers/layers.json`, 'utf8')).length;
    assert.equal(layersAfter, layersBefore - 2, 'the two layers only that image used are gone');
    assert.deepEqual(await flatRef(`containers-storage:[overlay@${t.dir}/root+${t.dir}/run]${reg.host}/library/bb:1`), await flatRef(`oci:${t.dir}/fixture:busybox`), 'the other image is intact');
    const missing = await run(process.execPath, [SKIFF, '--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, 'rmi', 'nope:1'], { env });
    assert.equal(missing.code, 1, 'podman rmi exits 1 for an image that does not exist');
    assert.match(missing.stderr, /^skiff: nope:1: image not known$/m);
  });

  it('rmi as podman: an ID with several names needs --force; -i and -f pass over missing images; -a removes all; an image a container uses is kept (exit 2)', async () => {
    const g = ['--root', `${t.dir}/rmiroot`, '--runroot', `${t.dir}/rmirun`];
    const rs = (args: string[]) => run(process.execPath, [SKIFF, ...g, ...args], { env });
    const root = `containers-storage:[overlay@${t.dir}/rmiroot+${t.dir}/rmirun]`;
    await ok(rs(['copy', '-q', `oci:${t.dir}/fixture:busybox`, `${root}localhost/r:1`]));
    await ok(rs(['copy', '-q', `oci:${t.dir}/other:o`, `${root}localhost/o:1`]));
    await ok(rs(['tag', 'localhost/r:1', 'localhost/r:2']));
    const rid = JSON.parse(await ok(rs(['images', '--format', 'json']))).find((i: { Names?: string[] }) => i.Names?.includes('localhost/r:1')).Id as string;
    const byId = await rs(['rmi', rid]);
    assert.equal(byId.code, 125);
    assert.match(byId.stderr, /by ID with more than one name \(localhost\/r:1, localhost\/r:2\)/);
    // Errors do not stop the other removals; the first error decides the status.
    const mixed = await rs(['rmi', 'nope:1', 'localhost/r:2']);
    assert.equal(mixed.code, 1);
    assert.equal(mixed.stdout, 'Untagged: localhost/r:2\n');
    assert.equal((await rs(['rmi', '-i', 'nope:1'])).code, 0);
    assert.equal((await rs(['rmi', '-f', 'nope:1'])).code, 0);
    await ok(rs(['tag', 'localhost/r:1', 'localhost/r:2']));
    assert.match(await ok(rs(['rmi', '-f', rid])), /^Untagged: localhost\/r:1\nUntagged: localhost\/r:2\nDeleted: [0-9a-f]{64}\n$/);
    // A container made by podman from an image keeps it.
    const pflags = [...g, '--storage-driver', 'overlay'];
    const made = await run('podman', [...pflags, 'create', '--name', 'holder', 'localhost/o:1', 'true']);
    assert.equal(made.code, 0, made.stderr);
    const used = await rs(['rmi', 'localhost/o:1']);
    assert.equal(used.code, 2);
    assert.match(used.stderr, /in use by container holder/);
    assert.equal((await run('podman', [...pflags, 'rm', 'holder'])).code, 0);
    assert.match(await ok(rs(['rmi', '-a'])), /^Untagged: localhost\/o:1\nDeleted: [0-9a-f]{64}\n$/);
    assert.equal(await ok(rs(['images', '-q'])), '');
    unmountUnder(`${t.dir}/rmiroot`);
  });

  it('untag, image exists, image prune [-a] as podman: twin stores, the same images, the same removals', async () => {
    const mine = `${t.dir}/prune-skiff`;
    const theirs = `${t.dir}/prune-podman`;
    const skiffIn = (args: string[]) => run(process.execPath, [SKIFF, '--root', `${mine}/root`, '--runroot', `${mine}/run`, ...args], { env });
    const podmanIn = (args: string[]) => run('podman', ['--root', `${theirs}/root`, '--runroot', `${theirs}/run`, '--storage-driver', 'overlay', ...args]);
    await baseAndChild(skiffIn, `${t.dir}/prune-ctx`, { Containerfile: 'FROM localhost/base:1\nCOPY extra.txt /extra.txt\n', 'extra.txt': 'extra\n' }, 'localhost/child:1');
    await ok(skiffIn(['copy', '-q', `oci:${t.dir}/other:o`, 'containers-storage:localhost/lone:1']));
    // The same images (same IDs, the child's layers on the base's) in podman's store.
    for (const n of ['base', 'child', 'lone']) await ok(run('skopeo', ['copy', '-q', `containers-storage:[overlay@${mine}/root+${mine}/run]localhost/${n}:1`, `containers-storage:[overlay@${theirs}/root+${theirs}/run]localhost/${n}:1`]));
    const ids = async (r: typeof skiffIn): Promise<string[]> => (await ok(r(['images', '-a', '-q', '--no-trunc']))).trim().split('\n').filter(Boolean).map((x) => x.replace(/^sha256:/, '')).sort();
    assert.deepEqual(await ids(skiffIn), await ids(podmanIn));
    assert.equal((await ids(skiffIn)).length, 3);

    assert.equal((await skiffIn(['image', 'exists', 'localhost/child:1'])).code, 0);
    const absent = await skiffIn(['image', 'exists', 'localhost/nothere:1']);
    assert.deepEqual([absent.code, absent.stdout, absent.stderr], [1, '', '']);
    assert.equal((await podmanIn(['image', 'exists', 'localhost/nothere:1'])).code, 1);

    // A name the image does not have: an error, and nothing changes.
    const wrong = await skiffIn(['untag', 'localhost/child:1', 'localhost/nothere:1']);
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /localhost\/nothere:1: tag not known/);
    for (const r of [skiffIn, podmanIn]) {
      await ok(r(['untag', 'localhost/base:1']));
      await ok(r(['image', 'untag', 'localhost/lone:1', 'localhost/lone:1']));
    }
    const names = async (root: string): Promise<string[][]> => (JSON.parse(await fsp.readFile(`${root}/overlay-images/images.json`, 'utf8')) as { id: string; names?: string[] }[]).sort((a, b) => (a.id < b.id ? -1 : 1)).map((i) => i.names ?? []);
    assert.deepEqual(await names(`${mine}/root`), await names(`${theirs}/root`));

    // No answer to the question: nothing removed.
    const asked = await skiffIn(['image', 'prune']);
    assert.equal(asked.code, 0, asked.stderr);
    assert.match(asked.stderr, /Are you sure you want to continue\? \[y\/N\]/);
    assert.equal((await ids(skiffIn)).length, 3);
    // Dangling: the lone nameless image; the nameless base has the child built on it, and stays.
    const pruned = async (r: typeof skiffIn, args: string[]): Promise<string[]> => (await ok(r(['image', 'prune', '-f', ...args]))).trim().split('\n').filter(Boolean).sort();
    const minePruned = await pruned(skiffIn, []);
    assert.deepEqual(minePruned, await pruned(podmanIn, []));
    assert.equal(minePruned.length, 1);
    assert.deepEqual(await ids(skiffIn), await ids(podmanIn));
    // The nameless base is intermediate: hidden without -a, listed with it, as podman lists it.
    const listed = async (r: typeof skiffIn, args: string[]): Promise<string> => (await ok(r(['images', '--no-trunc', '--format', '{{.ID}} {{.Repository}}:{{.Tag}}', ...args]))).split('\n').sort().join('\n');
    for (const args of [[], ['-a'], ['--filter', 'dangling=true'], ['-a', '--filter', 'dangling=false']]) assert.equal(await listed(skiffIn, args), await listed(podmanIn, args), args.join(' '));
    // -a: every image no container uses, the base with its child.
    const all = await pruned(skiffIn, ['-a']);
    assert.deepEqual(all, await pruned(podmanIn, ['-a']));
    assert.equal(all.length, 2);
    assert.deepEqual(await ids(skiffIn), []);
    assert.deepEqual(await ids(podmanIn), []);
    assert.deepEqual(JSON.parse(await fsp.readFile(`${mine}/root/overlay-layers/layers.json`, 'utf8')), [], 'no layer left behind');
    unmountUnder(mine);
    unmountUnder(theirs);
  });

  it('images made within one second are listed in the store\'s order, as podman lists them (it compares whole seconds)', async () => {
    const g = ['--root', `${t.dir}/order/root`, '--runroot', `${t.dir}/order/run`];
    for (const [n, frac] of [['a', '100'], ['b', '900'], ['c', '500']] as const) {
      await makeLayout(`${t.dir}/order-${n}`, 'x', { ...sampleSpec(60 + n.charCodeAt(0)), created: `2024-01-01T00:00:00.${frac}Z` });
      await ok(run(process.execPath, [SKIFF, ...g, 'copy', '-q', `oci:${t.dir}/order-${n}:x`, `containers-storage:localhost/order-${n}:1`], { env }));
    }
    const mine = await ok(run(process.execPath, [SKIFF, ...g, 'images', '--format', '{{.Repository}}'], { env }));
    assert.equal(mine, await ok(run('podman', [...g, '--storage-driver', 'overlay', 'images', '--format', '{{.Repository}}'])));
    assert.equal(mine, 'localhost/order-a\nlocalhost/order-b\nlocalhost/order-c\n');
    unmountUnder(`${t.dir}/order`);
  });

  it('docker\'s and podman\'s no-op flags are accepted: push and pull --disable-content-trust, rmi --no-prune', async () => {
    const g = ['--root', `${t.dir}/noop/root`, '--runroot', `${t.dir}/noop/run`];
    const rs = (args: string[]) => ok(run(process.execPath, [SKIFF, ...g, ...args], { env }));
    await rs(['copy', '-q', `oci:${t.dir}/fixture:busybox`, 'containers-storage:localhost/noop:1']);
    await rs(['push', '-q', '--disable-content-trust', '--tls-verify=false', 'localhost/noop:1', `docker://${reg.host}/noop/x:1`]);
    await rs(['rmi', '--no-prune', 'localhost/noop:1']);
    assert.match(await rs(['pull', '-q', '--disable-content-trust', '--tls-verify=false', `${reg.host}/noop/x:1`]), /^[0-9a-f]{64}\n$/);
    unmountUnder(`${t.dir}/noop`);
  });

  it('history as podman on the same store: table, --no-trunc, -H=false, -q, json, templates; images built by skiff and by buildah', async () => {
    const root = `${t.dir}/hist`;
    const { g, mine, theirs } = oneStore(root);
    const ctx = `${t.dir}/hist-ctx`;
    await baseAndChild(mine, ctx, { Containerfile: 'FROM localhost/base:1\nLABEL a=b\nCOPY e.txt /e.txt\nENV LONG="a value long enough to be cut at forty-five characters in the table"\n', 'e.txt': 'e\n' }, 'localhost/hchild:1');
    // (buildah records a comment and its own CREATED BY forms.)
    await ok(run('buildah', [...g, '--storage-driver', 'overlay', 'bud', '-q', '--isolation', 'chroot', '-t', 'localhost/hbuildah:1', ctx]));
    const variants = [['-H=false'], ['--human=false', '--no-trunc'], ['-q'], ['-q', '--no-trunc'], ['--format', 'json'], ['--format', '{{.ID}}|{{.CreatedAt}}|{{.Size}}|{{.Comment}}|{{.Tags}}|{{.CreatedBy}}'], ['--format', 'table {{.ID}} {{.Size}}\t{{.CreatedBy}}']];
    for (const image of ['localhost/hchild:1', 'localhost/hbuildah:1', 'localhost/base:1']) {
      for (const v of variants) assert.equal(await ok(mine(['history', ...v, image])), await ok(theirs(['history', ...v, image])), `${v.join(' ')} ${image}`);
    }
    // Human dates where they cannot change between the two runs: the base's, from 2024.
    assert.equal(await ok(mine(['image', 'history', 'localhost/base:1'])), await ok(theirs(['history', 'localhost/base:1'])));
    const missing = await mine(['history', 'localhost/nope:1']);
    assert.equal(missing.code, 125);
    assert.match(missing.stderr, /localhost\/nope:1: image not known/);
    unmountUnder(root);
  });

  it('image prune --filter as podman: until=, label=, label!= remove the same images from twin stores; an unknown filter removes nothing', async () => {
    const mine = `${t.dir}/pf-skiff`;
    const theirs = `${t.dir}/pf-podman`;
    const skiffIn = (args: string[]) => run(process.execPath, [SKIFF, '--root', `${mine}/root`, '--runroot', `${mine}/run`, ...args], { env });
    const podmanIn = (args: string[]) => run('podman', ['--root', `${theirs}/root`, '--runroot', `${theirs}/run`, '--storage-driver', 'overlay', ...args]);
    const ctx = `${t.dir}/pf-ctx`;
    await fsp.mkdir(ctx, { recursive: true });
    await fsp.writeFile(`${ctx}/f`, 'f\n');
    await fsp.writeFile(`${ctx}/Keep`, 'FROM scratch\nLABEL keep=yes\nCOPY f /f\n');
    await fsp.writeFile(`${ctx}/Other`, 'FROM scratch\nLABEL keep=no other=1\nCOPY f /g\n');
    await ok(skiffIn(['build', '-q', '-t', 'localhost/keep:1', '-f', `${ctx}/Keep`, ctx]));
    await ok(skiffIn(['build', '-q', '-t', 'localhost/other:1', '-f', `${ctx}/Other`, ctx]));
    // Made in 2024 (the kit's created time).
    await ok(skiffIn(['copy', '-q', `oci:${t.dir}/other:o`, 'containers-storage:localhost/old:1']));
    for (const n of ['keep', 'other', 'old']) await ok(run('skopeo', ['copy', '-q', `containers-storage:[overlay@${mine}/root+${mine}/run]localhost/${n}:1`, `containers-storage:[overlay@${theirs}/root+${theirs}/run]localhost/${n}:1`]));
    const pruned = async (r: typeof skiffIn, args: string[]): Promise<string[]> => (await ok(r(['image', 'prune', '-f', '-a', ...args]))).trim().split('\n').filter(Boolean).sort();
    const bad = await skiffIn(['image', 'prune', '-f', '-a', '--filter', 'bogus=1']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--filter bogus: not a filter/);
    const bad2 = await skiffIn(['image', 'prune', '-f', '-a', '--filter', 'until=someday']);
    assert.notEqual(bad2.code, 0);
    const steps = [['--filter', 'until=2025-01-01T00:00:00Z'], ['--filter', 'until=1000h', '--filter', 'label=keep'], ['--filter', 'label!=keep=yes'], ['--filter', 'label=keep=yes']];
    const counts: number[] = [];
    for (const step of steps) {
      const gone = await pruned(skiffIn, step);
      assert.deepEqual(gone, await pruned(podmanIn, step), step.join(' '));
      counts.push(gone.length);
    }
    // The 2024 image by date; nothing else is older than 1000 hours; then the one without keep=yes; then the last.
    assert.deepEqual(counts, [1, 0, 1, 1]);
    unmountUnder(mine);
    unmountUnder(theirs);
  });

  it('image inspect as podman image inspect on the same store, byte for byte: JSON and templates; skiff and buildah images, a parent, several names, a nameless image; missing exits 125; image ls, tag, rm', async () => {
    const root = `${t.dir}/insp`;
    const { g, mine, theirs } = oneStore(root);
    const ctx = `${t.dir}/insp-ctx`;
    const file = 'FROM localhost/base:1\nENV A=1 B="two words"\nLABEL org.x=y\nCOPY e.txt /e.txt\nWORKDIR /w\nUSER 1000:1000\nEXPOSE 8080/tcp 53/udp\nVOLUME /data\nSTOPSIGNAL SIGTERM\nENTRYPOINT ["/bin/e"]\nCMD ["/a"]\nHEALTHCHECK --interval=5s CMD ["/h"]\n';
    await baseAndChild(mine, ctx, { Containerfile: file, 'e.txt': 'e\n' }, 'localhost/ichild:1');
    // A parent and child pair (one step on the base, no name on the parent), and buildah's images, OCI and Docker.
    await fsp.writeFile(`${ctx}/One`, 'FROM localhost/base:1\nLABEL step=one\n');
    const parentID = (await ok(mine(['build', '-q', '-f', `${ctx}/One`, ctx]))).trim();
    await fsp.writeFile(`${ctx}/Two`, `FROM ${parentID}\nCOPY e.txt /two.txt\n`);
    await ok(mine(['build', '-q', '-t', 'localhost/itwo:1', '-f', `${ctx}/Two`, ctx]));
    await ok(mine(['tag', 'localhost/ichild:1', 'localhost/another:2']));
    for (const format of ['oci', 'docker']) await ok(run('buildah', [...g, '--storage-driver', 'overlay', 'bud', '-q', '--isolation', 'chroot', '--format', format, '-t', `localhost/ib-${format}:1`, ctx]));
    const images = ['localhost/ichild:1', 'localhost/itwo:1', parentID, 'localhost/base:1', 'localhost/ib-oci:1', 'localhost/ib-docker:1'];
    const mineJSON = await ok(mine(['image', 'inspect', ...images]));
    assert.equal(mineJSON, await ok(theirs(['image', 'inspect', ...images])));
    const parsed = JSON.parse(mineJSON) as { Id: string; Parent: string; RepoTags: string[] }[];
    assert.equal(parsed[1]!.Parent, parentID, 'the child names its parent');
    assert.deepEqual(parsed[0]!.RepoTags, ['localhost/ichild:1', 'localhost/another:2']);
    const tpl = '{{.Id}} {{.Created}} {{.RepoTags}} {{.RepoDigests}} {{.Labels}} {{.Config.Env}} {{.Config.ExposedPorts}} {{.Size}} {{.Parent}} {{json .Config}} {{.History}} {{.RootFS}} {{.GraphDriver.Data.UpperDir}} {{.NamesHistory}} {{.Annotations}} {{.ManifestType}}';
    assert.equal(await ok(mine(['image', 'inspect', '--format', tpl, ...images])), await ok(theirs(['image', 'inspect', '--format', tpl, ...images])));
    const [m, p] = [await mine(['image', 'inspect', 'localhost/base:1', 'localhost/nope:1']), await theirs(['image', 'inspect', 'localhost/base:1', 'localhost/nope:1'])];
    assert.equal(m.code, 125);
    assert.equal(p.code, 125);
    assert.equal(m.stdout, p.stdout, 'the images found are printed');
    assert.match(m.stderr, /inspecting object: localhost\/nope:1: image not known/);
    // podman's other names in the image group: image ls/list, tag, rm run images, tag, rmi.
    await ok(mine(['image', 'tag', 'localhost/base:1', 'localhost/alias:1']));
    const fields = ['--format', '{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}'];
    assert.equal(await ok(mine(['image', 'ls', ...fields])), await ok(theirs(['image', 'ls', ...fields])));
    assert.equal(await ok(mine(['image', 'list', '-q', '--no-trunc'])), await ok(theirs(['images', '-q', '--no-trunc'])));
    assert.equal(await ok(mine(['image', 'rm', 'localhost/alias:1'])), 'Untagged: localhost/alias:1\n');
    assert.equal((await mine(['image', 'exists', 'localhost/alias:1'])).code, 1);
    // images --history: the names each image has had (the base had alias:1 for a while).
    const hist1 = ['images', '--history', '--format', '{{.Repository}}:{{.Tag}} {{.History}}|'];
    assert.equal(await ok(mine(hist1)), await ok(theirs(hist1)));
    const table = await ok(mine(['images', '--history']));
    assert.match(table.split('\n')[0]!, /SIZE\s+HISTORY$/);
    assert.match(table, /^localhost\/base\s.*\slocalhost\/base:1, localhost\/alias:1$/m);
    // A manifest list stands for its image for this platform, as podman looks it up.
    await ok(mine(['manifest', 'create', 'localhost/ilist:1', 'containers-storage:localhost/ichild:1']));
    const listed = await ok(mine(['image', 'inspect', 'localhost/ilist:1']));
    assert.equal(listed, await ok(theirs(['image', 'inspect', 'localhost/ilist:1'])));
    assert.equal((JSON.parse(listed) as { Id: string }[])[0]!.Id, parsed[0]!.Id);
    // history too (it printed nothing: a list has no config of its own).
    const hist = ['history', '-H=false', '--no-trunc', 'localhost/ilist:1'];
    assert.equal(await ok(mine(hist)), await ok(theirs(hist)));
    assert.match(await ok(mine(hist)), /HEALTHCHECK/);
    unmountUnder(root);
  });

  it('save and load round-trip through a docker-archive; podman reads the saved archive, and saves the same bytes', async () => {
    await sk(['save', '-q', '-o', `${t.dir}/saved.tar`, `${reg.host}/library/bb:1`]);
    // podman saves the same image from the same store into the same bytes (both write as containers/image does).
    const same = await run('podman', ['--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, '--storage-driver', 'overlay', 'save', '-q', '-o', `${t.dir}/podman-saved.tar`, `${reg.host}/library/bb:1`]);
    assert.equal(same.code, 0, same.stderr);
    assert.ok((await fsp.readFile(`${t.dir}/saved.tar`)).equals(await fsp.readFile(`${t.dir}/podman-saved.tar`)));
    const r = await run('podman', ['--root', `${t.dir}/proot`, '--runroot', `${t.dir}/prun`, '--storage-driver', 'vfs', 'load', '-i', `${t.dir}/saved.tar`]);
    assert.equal(r.code, 0, r.stderr);
    await sk(['rmi', `${reg.host}/library/bb:1`]);
    assert.equal(await sk(['load', '-q', '-i', `${t.dir}/saved.tar`]), `Loaded image: ${reg.host}/library/bb:1\n`);
    assert.deepEqual(await flatRef(`containers-storage:[overlay@${t.dir}/root+${t.dir}/run]${reg.host}/library/bb:1`), await flatRef(`oci:${t.dir}/fixture:busybox`));
  });

  it('save NAME... as podman: further names are tags; -m puts several images in one archive; load brings back every image and name', async () => {
    const root = `containers-storage:[overlay@${t.dir}/root+${t.dir}/run]`;
    await sk(['copy', '-q', `oci:${t.dir}/fixture:busybox`, `${root}localhost/multi-a:1`]);
    await sk(['copy', '-q', `oci:${t.dir}/other:o`, `${root}localhost/multi-b:1`]);
    const tags = async (file: string) => JSON.parse((await run('tar', ['xOf', file, 'manifest.json'])).stdout) as { RepoTags: string[]; Layers: string[] }[];
    // Without -m: one image, the further names as its tags.
    await sk(['save', '-q', '-o', `${t.dir}/tags.tar`, 'localhost/multi-a:1', 'localhost/extra-tag:9']);
    assert.deepEqual((await tags(`${t.dir}/tags.tar`)).map((e) => e.RepoTags), [['localhost/multi-a:1', 'localhost/extra-tag:9']]);
    // -m: two images (and a second name of the first goes into the same entry).
    await sk(['tag', 'localhost/multi-a:1', 'localhost/multi-a:2']);
    await sk(['save', '-q', '-m', '-o', `${t.dir}/multi.tar`, 'localhost/multi-a:1', 'localhost/multi-b:1', 'localhost/multi-a:2']);
    const entries = await tags(`${t.dir}/multi.tar`);
    assert.deepEqual(entries.map((e) => e.RepoTags), [['localhost/multi-a:1', 'localhost/multi-a:2'], ['localhost/multi-b:1']]);
    // podman save -m of the same images from the same store: the same bytes; with an image that shares its base
    // layer with one before it too (that layer is in the archive once, and the rest follows in order).
    const pm = await run('podman', ['--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, '--storage-driver', 'overlay', 'save', '-q', '-m', '-o', `${t.dir}/podman-multi.tar`, 'localhost/multi-a:1', 'localhost/multi-b:1', 'localhost/multi-a:2']);
    assert.equal(pm.code, 0, pm.stderr);
    assert.ok((await fsp.readFile(`${t.dir}/multi.tar`)).equals(await fsp.readFile(`${t.dir}/podman-multi.tar`)));
    const childCtx = path.join(t.dir, 'multi-child');
    await fsp.mkdir(childCtx);
    await fsp.writeFile(path.join(childCtx, 'Containerfile'), 'FROM localhost/multi-a:1\nCOPY Containerfile /cf\n');
    // (A fixed creation time, as the other images have: a later test compares "N seconds ago" with podman's.)
    await sk(['build', '-q', '--timestamp', '1704067200', '-t', 'localhost/multi-c:1', childCtx]);
    await sk(['save', '-q', '-m', '-o', `${t.dir}/shared.tar`, 'localhost/multi-a:1', 'localhost/multi-c:1']);
    const ps = await run('podman', ['--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, '--storage-driver', 'overlay', 'save', '-q', '-m', '-o', `${t.dir}/podman-shared.tar`, 'localhost/multi-a:1', 'localhost/multi-c:1']);
    assert.equal(ps.code, 0, ps.stderr);
    assert.ok((await fsp.readFile(`${t.dir}/shared.tar`)).equals(await fsp.readFile(`${t.dir}/podman-shared.tar`)));
    // podman loads both images with every name.
    const pflags = ['--root', `${t.dir}/pmulti`, '--runroot', `${t.dir}/pmultirun`, '--storage-driver', 'vfs'];
    const pl = await run('podman', [...pflags, 'load', '-i', `${t.dir}/multi.tar`]);
    assert.equal(pl.code, 0, pl.stderr);
    const listed = (await run('podman', [...pflags, 'images', '--format', '{{.Repository}}:{{.Tag}}'])).stdout.split('\n').filter(Boolean).sort();
    assert.deepEqual(listed, ['localhost/multi-a:1', 'localhost/multi-a:2', 'localhost/multi-b:1']);
    // skiff loads them back the same way, into an empty store.
    const fresh = (args: string[]) => ok(run(process.execPath, [SKIFF, '--root', `${t.dir}/lroot`, '--runroot', `${t.dir}/lrun`, ...args], { env }));
    assert.equal(await fresh(['load', '-q', '-i', `${t.dir}/multi.tar`]), 'Loaded image: localhost/multi-a:1\nLoaded image: localhost/multi-a:2\nLoaded image: localhost/multi-b:1\n');
    assert.deepEqual(await flatRef(`containers-storage:[overlay@${t.dir}/lroot+${t.dir}/lrun]localhost/multi-a:2`), await flatRef(`oci:${t.dir}/fixture:busybox`));
    assert.deepEqual(await flatRef(`containers-storage:[overlay@${t.dir}/lroot+${t.dir}/lrun]localhost/multi-b:1`), await flatRef(`oci:${t.dir}/other:o`));
    // A file name with a colon is just a file name here (no TRANSPORT:PATH:NAME syntax to trip over).
    await sk(['save', '-q', '-o', `${t.dir}/with:colon.tar`, 'localhost/multi-b:1']);
    await sk(['save', '-q', '--format', 'oci-archive', '-o', `${t.dir}/oci:colon.tar`, 'localhost/multi-a:1']);
    const colon = (args: string[]) => ok(run(process.execPath, [SKIFF, '--root', `${t.dir}/croot`, '--runroot', `${t.dir}/crun`, ...args], { env }));
    assert.equal(await colon(['load', '-q', '-i', `${t.dir}/with:colon.tar`]), 'Loaded image: localhost/multi-b:1\n');
    assert.equal(await colon(['load', '-q', '-i', `${t.dir}/oci:colon.tar`]), 'Loaded image: localhost/multi-a:1\n');
    // An oci-archive holds one image under one name: more is refused, not silently dropped (podman drops them).
    const oci = await run(process.execPath, [SKIFF, '--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, 'save', '-q', '--format', 'oci-archive', '-o', `${t.dir}/two.oci.tar`, 'localhost/multi-a:1', 'localhost/multi-b:1'], { env });
    assert.equal(oci.code, 1);
    assert.match(oci.stderr, /oci-archive holds one image/);
    await assert.rejects(fsp.stat(`${t.dir}/two.oci.tar`));
    // One: its ref.name is the full name, as podman writes it.
    await sk(['save', '-q', '--format', 'oci-archive', '-o', `${t.dir}/one.oci.tar`, 'localhost/multi-b:1']);
    const index = JSON.parse((await run('tar', ['xOf', `${t.dir}/one.oci.tar`, 'index.json'])).stdout) as { manifests: { annotations: Record<string, string> }[] };
    assert.equal(index.manifests[0]!.annotations['org.opencontainers.image.ref.name'], 'localhost/multi-b:1');
    await unmountUnder(`${t.dir}/pmulti`);
  });

  it('save --format oci-dir / docker-dir (podman\'s): the same layout and directory as podman writes, but layers labelled as what they are', async () => {
    const { mine, theirs } = oneStore(t.dir);
    const name = 'localhost/multi-b:1';
    await ok(mine(['save', '-q', '--format', 'docker-dir', '-o', `${t.dir}/dd-mine`, name]));
    await ok(theirs(['save', '-q', '--format', 'docker-dir', '-o', `${t.dir}/dd-theirs`, name]));
    assert.deepEqual((await fsp.readdir(`${t.dir}/dd-mine`)).sort(), (await fsp.readdir(`${t.dir}/dd-theirs`)).sort());
    // podman labels the uncompressed layers gzip; skiff says tar (README: where skiff differs). Otherwise the same.
    const manifest = async (d: string): Promise<string> => (await fsp.readFile(`${d}/manifest.json`, 'utf8')).replace(/diff\.tar\.gzip/g, 'diff.tar');
    assert.equal(await manifest(`${t.dir}/dd-mine`), await manifest(`${t.dir}/dd-theirs`));
    assert.doesNotMatch(await fsp.readFile(`${t.dir}/dd-mine/manifest.json`, 'utf8'), /gzip/);
    // --compress: gzip layers, so labelled.
    await ok(mine(['save', '-q', '--format', 'docker-dir', '--compress', '-o', `${t.dir}/ddc-mine`, name]));
    const compressed = JSON.parse(await fsp.readFile(`${t.dir}/ddc-mine/manifest.json`, 'utf8')) as { layers: { mediaType: string; digest: string }[] };
    for (const l of compressed.layers) {
      assert.equal(l.mediaType, 'application/vnd.docker.image.rootfs.diff.tar.gzip');
      assert.deepEqual([...(await fsp.readFile(`${t.dir}/ddc-mine/${l.digest.slice(7)}`)).subarray(0, 2)], [0x1f, 0x8b]);
    }
    // oci-dir: an OCI layout naming the image as podman does; containers/image (skopeo) reads it.
    await ok(mine(['save', '-q', '--format', 'oci-dir', '-o', `${t.dir}/od-mine`, name]));
    await ok(theirs(['save', '-q', '--format', 'oci-dir', '-o', `${t.dir}/od-theirs`, name]));
    const refName = async (d: string): Promise<string> => (JSON.parse(await fsp.readFile(`${d}/index.json`, 'utf8')) as { manifests: { annotations: Record<string, string> }[] }).manifests[0]!.annotations['org.opencontainers.image.ref.name']!;
    assert.equal(await refName(`${t.dir}/od-mine`), await refName(`${t.dir}/od-theirs`));
    for (const d of ['dd-mine', 'ddc-mine']) assert.deepEqual(await flatRef(`dir:${t.dir}/${d}`), await flatRef(`oci:${t.dir}/other:o`));
    assert.deepEqual(await flatRef(`oci:${t.dir}/od-mine:${name}`), await flatRef(`oci:${t.dir}/other:o`));
    await ok(run('skopeo', ['copy', '-q', `oci:${t.dir}/od-mine:${name}`, `dir:${t.dir}/od-by-skopeo`]));
    assert.deepEqual(await flatRef(`dir:${t.dir}/od-by-skopeo`), await flatRef(`oci:${t.dir}/other:o`));
    // A directory needs -o; --compress and --uncompressed belong to their formats.
    const noOut = await mine(['save', '-q', '--format', 'oci-dir', name]);
    assert.equal(noOut.code, 1);
    assert.match(noOut.stderr, /writes a directory: give it with -o DIR/);
    const wrong = await mine(['save', '-q', '--compress', '-o', `${t.dir}/never.tar`, name]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /--compress is for --format docker-dir/);
  });

  it('save writes to standard output and load reads standard input when no file is given (podman\'s pipes)', async () => {
    const g = `--root ${t.dir}/root --runroot ${t.dir}/run`;
    const g2 = `--root ${t.dir}/piperoot --runroot ${t.dir}/piperun`;
    const r = await run('sh', ['-c', `${process.execPath} ${SKIFF} ${g} save -q localhost/multi-b:1 | ${process.execPath} ${SKIFF} ${g2} load -q`], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'Loaded image: localhost/multi-b:1\n');
    assert.deepEqual(await flatRef(`containers-storage:[overlay@${t.dir}/piperoot+${t.dir}/piperun]localhost/multi-b:1`), await flatRef(`oci:${t.dir}/other:o`));
    // Nothing piped in: a clear error, not an attempt to read an empty archive as one.
    const empty = await run('sh', ['-c', `${process.execPath} ${SKIFF} ${g2} load -q < /dev/null`], { env });
    assert.equal(empty.code, 1);
    assert.match(empty.stderr, /^skiff: no archive on standard input/);
  });

  it('images --format and --filter as podman on the same store: templates, tables, filters', async () => {
    const podman = (args: string[]) => ok(run('podman', ['--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, '--storage-driver', 'overlay', ...args]));
    const sort = (x: string) => x.split('\n').sort().join('\n');
    for (const f of ['{{.Repository}}:{{.Tag}}', '{{.ID}} {{.Digest}} {{.Size}} {{.VirtualSize}} {{.CreatedSince}}', 'table {{.Repository}} {{.Tag}}', 'table {{.ID}}\\t{{.Size}}', '{{json .Names}}']) {
      assert.equal(sort(await sk(['images', '--format', f])), sort(await podman(['images', '--format', f])), f);
    }
    // The default table too, column widths included.
    assert.equal(sort(await sk(['images'])), sort(await podman(['images'])));
    // podman's JSON byte for byte: RepoTags null, Labels from the config, Containers, names-history, a dangling
    // image's Dangling and no Names, CreatedAt to the second.
    assert.equal(await sk(['images', '--format', 'json']), await podman(['images', '--format', 'json']));
    // And in podman's order (newest first by default; --sort), with -n/--noheading: line for line.
    for (const args of [[], ['-n'], ['-q'], ['--sort', 'id'], ['--sort', 'repository'], ['--sort', 'size'], ['--sort', 'tag'], ['-q', '--sort', 'size'], ['--noheading', '--format', 'table {{.ID}}\\t{{.Tag}}']]) {
      assert.equal(await sk(['images', ...args]), await podman(['images', ...args]), args.join(' '));
    }
    // --filter, podman's matching (an image matches whole; same keys are alternatives, different keys all hold).
    await sk(['tag', 'localhost/multi-a:1', 'quay.io/x/y:2']);
    for (const f of [['reference=multi-a'], ['reference=y'], ['reference=quay.io/*'], ['reference=*/multi-*:1'], ['reference=m*'], ['reference=nomatch'], ['dangling=false'], ['dangling=true'], ['label=org.example.fixture'], ['label=org.example.fixture=busybox'], ['label=nope'], ['reference=multi-b', 'reference=multi-a'], ['reference=m*', 'label=org.example.fixture'], ['since=localhost/multi-a:1'], ['before=localhost/multi-b:1']]) {
      const args = f.flatMap((x) => ['--filter', x]);
      assert.equal(sort(await sk(['images', ...args, '--format', '{{.Repository}}:{{.Tag}}'])), sort(await podman(['images', ...args, '--format', '{{.Repository}}:{{.Tag}}'])), f.join(' '));
    }
    const unknown = await run(process.execPath, [SKIFF, '--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, 'images', '--filter', 'color=blue'], { env });
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /--filter color: not a filter skiff knows/);
    unmountUnder(`${t.dir}/root`);
  });

  it('push sends a stored image to a registry; skopeo reads it', async () => {
    await sk(['push', '-q', '--tls-verify=false', `${reg.host}/library/bb:1`, `docker://${reg.host}/pushed/bb:2`]);
    const r = await run('skopeo', ['inspect', '--tls-verify=false', `docker://${reg.host}/pushed/bb:2`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(path.basename(JSON.parse(r.stdout).Name), 'bb');
  });

  it('push --compression-format zstd as podman; pull --all-tags brings every tag of a repository', async () => {
    await sk(['push', '-q', '--tls-verify=false', '--compression-format', 'zstd', `${reg.host}/library/bb:1`, `docker://${reg.host}/pushed/bb:3`]);
    const raw = JSON.parse((await ok(run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/pushed/bb:3`])))) as { layers: { mediaType: string }[] };
    assert.ok(raw.layers.every((l) => l.mediaType === 'application/vnd.oci.image.layer.v1.tar+zstd'), JSON.stringify(raw.layers));
    // pushed/bb now has tags 2 and 3 (the same image, one ID).
    const fresh = ['--root', `${t.dir}/tagsroot`, '--runroot', `${t.dir}/tagsrun`];
    const out = await ok(run(process.execPath, [SKIFF, ...fresh, 'pull', '-q', '--all-tags', '--tls-verify=false', `${reg.host}/pushed/bb`], { env }));
    assert.equal(out.trim().split('\n').length, 1, out);
    const names = (await ok(run(process.execPath, [SKIFF, ...fresh, 'images', '--format', '{{.Repository}}:{{.Tag}}'], { env }))).trim().split('\n').sort();
    assert.deepEqual(names, [`${reg.host}/pushed/bb:2`, `${reg.host}/pushed/bb:3`]);
    const tagged = await run(process.execPath, [SKIFF, ...fresh, 'pull', '--all-tags', `${reg.host}/pushed/bb:2`], { env });
    assert.equal(tagged.code, 1);
    assert.match(tagged.stderr, /--all-tags: give a repository without a tag/);
    unmountUnder(`${t.dir}/tagsroot`);
  });

  it('manifest create/add/inspect/push/rm as podman: podman reads skiff\'s list and skiff podman\'s; the pushed list holds every image; build --manifest adds to one', async () => {
    const pflags = ['--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, '--storage-driver', 'overlay'];
    const podman = (args: string[]) => ok(run('podman', [...pflags, ...args], { env }));
    await sk(['copy', '-q', `oci:${t.dir}/fixture:busybox`, 'containers-storage:localhost/m-bb:1']);
    await sk(['copy', '-q', `oci:${t.dir}/other:o`, 'containers-storage:localhost/m-other:1']);
    const id = (await sk(['manifest', 'create', 'localhost/mlist:1', 'containers-storage:localhost/m-bb:1'])).trim();
    assert.match(id, /^[0-9a-f]{64}$/);
    assert.equal((await sk(['manifest', 'add', '--arch', 'arm64', '--variant', 'v8', '--os-version', '1.0', '--annotation', 'a=b', 'localhost/mlist:1', 'containers-storage:localhost/m-other:1'])).trim(), id);
    // podman prints skiff's list exactly as skiff does.
    const mine = await sk(['manifest', 'inspect', 'localhost/mlist:1']);
    assert.equal(mine, await podman(['manifest', 'inspect', 'localhost/mlist:1']));
    const listed = JSON.parse(mine) as { mediaType: string; manifests: { platform: Record<string, string>; annotations?: Record<string, string> }[] };
    assert.equal(listed.mediaType, 'application/vnd.docker.distribution.manifest.list.v2+json');
    assert.deepEqual(listed.manifests.map((m) => m.platform), [{ architecture: 'amd64', os: 'linux' }, { architecture: 'arm64', os: 'linux', 'os.version': '1.0', variant: 'v8' }]);
    assert.deepEqual(listed.manifests[1]!.annotations, { a: 'b' });
    // And skiff prints podman's lists as podman does, an empty one too.
    await podman(['manifest', 'create', 'localhost/plist:1']);
    assert.equal(await sk(['manifest', 'inspect', 'localhost/plist:1']), await podman(['manifest', 'inspect', 'localhost/plist:1']));
    await podman(['manifest', 'add', '--arch', 'ppc64le', 'localhost/plist:1', 'containers-storage:localhost/m-bb:1']);
    assert.equal(await sk(['manifest', 'inspect', 'localhost/plist:1']), await podman(['manifest', 'inspect', 'localhost/plist:1']));
    // A name in use is refused, as podman refuses it.
    const dup = await run(process.execPath, [SKIFF, '--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, 'manifest', 'create', 'localhost/mlist:1'], { env });
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /image name "localhost\/mlist:1" is already associated with image "[0-9a-f]{64}": that name is already in use/);
    // push: the list and both images; skopeo reads the list, and each image by its digest.
    await sk(['manifest', 'push', '-q', '--tls-verify=false', 'localhost/mlist:1', `docker://${reg.host}/m/list:1`]);
    const pushed = JSON.parse((await ok(run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/m/list:1`]))).trim()) as { manifests: { digest: string; platform: { architecture: string } }[] };
    assert.deepEqual(pushed.manifests.map((m) => m.platform.architecture), ['amd64', 'arm64']);
    for (const m of pushed.manifests) await ok(run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/m/list@${m.digest}`]));
    // (The host's instance, read back through the registry: the fixture's files.)
    assert.deepEqual(await flatRef(`docker://${reg.host}/m/list:1`, { tlsVerify: false }), await flatRef(`oci:${t.dir}/fixture:busybox`));
    // build --manifest: the built image goes into a new list, then into the same list again.
    const ctx = path.join(t.dir, 'mctx');
    await fsp.mkdir(ctx);
    await fsp.writeFile(path.join(ctx, 'Containerfile'), 'FROM localhost/m-bb:1\nRUN echo built > /built.txt\n');
    const built = (await sk(['build', '-q', '--manifest', 'localhost/blist:1', '-t', 'shortbuilt', ctx])).trim();
    // A short -t name goes under localhost/, as podman build names it.
    assert.ok((await podman(['images', '--format', '{{.Repository}}:{{.Tag}}'])).split('\n').includes('localhost/shortbuilt:latest'));
    const b1 = JSON.parse(await sk(['manifest', 'inspect', 'localhost/blist:1'])) as { manifests: unknown[] };
    assert.equal(b1.manifests.length, 1);
    await fsp.writeFile(path.join(ctx, 'Containerfile'), 'FROM localhost/m-bb:1\nRUN echo again > /built.txt\n');
    const built2 = (await sk(['build', '-q', '--manifest', 'localhost/blist:1', ctx])).trim();
    assert.notEqual(built2, built);
    assert.equal((JSON.parse(await podman(['manifest', 'inspect', 'localhost/blist:1'])) as { manifests: unknown[] }).manifests.length, 2);
    // annotate and remove by digest, exists: what podman prints after them, and podman's answers.
    const mlist = JSON.parse(await sk(['manifest', 'inspect', 'localhost/mlist:1'])) as { manifests: { digest: string }[] };
    const [first, second] = mlist.manifests.map((m) => m.digest);
    assert.equal((await sk(['manifest', 'annotate', '--arch', 'arm', '--variant', 'v7', '--annotation', 'x=y', 'localhost/mlist:1', first!])).trim(), id);
    const annotated = await sk(['manifest', 'inspect', 'localhost/mlist:1']);
    assert.equal(annotated, await podman(['manifest', 'inspect', 'localhost/mlist:1']));
    assert.deepEqual((JSON.parse(annotated) as { manifests: { platform: unknown; annotations?: unknown }[] }).manifests[0], { mediaType: 'application/vnd.oci.image.manifest.v1+json', size: (JSON.parse(annotated) as { manifests: { size: number }[] }).manifests[0]!.size, digest: first, platform: { architecture: 'arm', os: 'linux', variant: 'v7' }, annotations: { x: 'y' } });
    const notDigest = await run(process.execPath, [SKIFF, '--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, 'manifest', 'annotate', '--arch', 'arm', 'localhost/mlist:1', 'localhost/m-bb:1'], { env });
    assert.equal(notDigest.code, 1);
    assert.match(notDigest.stderr, /invalid image digest "localhost\/m-bb:1": invalid checksum digest format/);
    assert.equal((await sk(['manifest', 'remove', 'localhost/mlist:1', second!])).trim(), id);
    assert.equal(await sk(['manifest', 'inspect', 'localhost/mlist:1']), await podman(['manifest', 'inspect', 'localhost/mlist:1']));
    assert.equal((JSON.parse(await sk(['manifest', 'inspect', 'localhost/mlist:1'])) as { manifests: unknown[] }).manifests.length, 1);
    const exists = async (n: string) => run(process.execPath, [SKIFF, '--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, 'manifest', 'exists', n], { env });
    assert.deepEqual([(await exists('localhost/mlist:1')).code, (await exists('localhost/nope:1')).code, (await exists('localhost/m-bb:1')).code], [0, 1, 125]);
    assert.equal((await exists('localhost/nope:1')).stderr, '', 'no means only the exit status');
    // From a two-platform index in a registry (named host:port/…, no transport), --arch picks the instance pulled.
    await ok(run(process.execPath, [SKIFF, 'copy', '-q', '--all', '--dest-tls-verify=false', `oci:${t.dir}/mlist-mp:mp`, `docker://${reg.host}/m/multi:1`], { env }));
    await sk(['manifest', 'create', 'localhost/mplist:1']);
    await sk(['manifest', 'add', '-q', '--tls-verify=false', '--arch', 'arm64', '--variant', 'v8', 'localhost/mplist:1', `${reg.host}/m/multi:1`]);
    const mpl = JSON.parse(await sk(['manifest', 'inspect', 'localhost/mplist:1'])) as { manifests: { platform: { architecture: string } }[] };
    assert.deepEqual(mpl.manifests.map((m) => m.platform.architecture), ['arm64']);
    const pulled = JSON.parse(await ok(run('skopeo', ['inspect', '--config', `containers-storage:[overlay@${t.dir}/root+${t.dir}/run]${reg.host}/m/multi:1`]))) as { architecture: string };
    assert.equal(pulled.architecture, 'arm64', 'the arm64 instance was pulled, not the host\'s');
    // --all: every image of the index, each with the platform the index gives it, pulled by digest (which podman's
    // images and skiff's list as the repository with no tag).
    await sk(['manifest', 'create', 'localhost/allplist:1']);
    await sk(['manifest', 'add', '-q', '--all', '--tls-verify=false', 'localhost/allplist:1', `${reg.host}/m/multi:1`]);
    type Entries = { manifests: { digest: string; platform: unknown }[] };
    const allList = JSON.parse(await sk(['manifest', 'inspect', 'localhost/allplist:1'])) as Entries;
    const remote = JSON.parse(await ok(run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/m/multi:1`]))) as Entries;
    assert.deepEqual(allList.manifests.map((m) => [m.digest, m.platform]), remote.manifests.map((m) => [m.digest, m.platform]));
    const rows = async (f: (a: string[]) => Promise<string>): Promise<string[]> => (await f(['images', '--format', '{{.Repository}} {{.Tag}}'])).split('\n').filter(Boolean).sort();
    assert.deepEqual(await rows(sk), await rows(podman));
    assert.ok((await rows(sk)).includes(`${reg.host}/m/multi <none>`));
    const conflict = await run(process.execPath, [SKIFF, '--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, 'manifest', 'add', '--all', '--arch', 'arm64', 'localhost/allplist:1', `${reg.host}/m/multi:1`], { env });
    assert.equal(conflict.code, 1);
    assert.match(conflict.stderr, /--all adds every image with the platform its index gives/);
    // create --all: the same as create, then add --all.
    await sk(['manifest', 'create', '--all', '--tls-verify=false', 'localhost/callplist:1', `${reg.host}/m/multi:1`]);
    assert.deepEqual((JSON.parse(await sk(['manifest', 'inspect', 'localhost/callplist:1'])) as Entries).manifests.map((m) => [m.digest, m.platform]), remote.manifests.map((m) => [m.digest, m.platform]));
    // create --amend: adds to the list of that name (its ID printed again), as podman's; without it, refused as above.
    const amended = (await sk(['manifest', 'create', 'localhost/amlist:1', 'containers-storage:localhost/m-bb:1'])).trim();
    assert.equal((await sk(['manifest', 'create', '--amend', 'localhost/amlist:1', 'containers-storage:localhost/m-other:1'])).trim(), amended);
    await podman(['manifest', 'create', 'localhost/pamlist:1', 'containers-storage:localhost/m-bb:1']);
    await podman(['manifest', 'create', '--amend', 'localhost/pamlist:1', 'containers-storage:localhost/m-other:1']);
    assert.equal(await sk(['manifest', 'inspect', 'localhost/amlist:1']), await podman(['manifest', 'inspect', 'localhost/pamlist:1']));
    assert.equal((JSON.parse(await sk(['manifest', 'inspect', 'localhost/amlist:1'])) as Entries).manifests.length, 2);
    const amendImage = await run(process.execPath, [SKIFF, '--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, 'manifest', 'create', '--amend', 'localhost/m-bb:1'], { env });
    assert.equal(amendImage.code, 1);
    assert.match(amendImage.stderr, /--amend: localhost\/m-bb:1 is an image, not a manifest list/);
    // push --compression-format zstd (and --remove-signatures, accepted): the pushed images' layers are zstd.
    await sk(['manifest', 'push', '-q', '--tls-verify=false', '--compression-format', 'zstd', '--remove-signatures', 'localhost/amlist:1', `docker://${reg.host}/m/zlist:1`]);
    const zlist = JSON.parse(await ok(run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/m/zlist:1`]))) as Entries;
    for (const m of zlist.manifests) {
      const inst = JSON.parse(await ok(run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/m/zlist@${m.digest}`]))) as { layers: { mediaType: string }[] };
      assert.ok(inst.layers.every((l) => l.mediaType.endsWith('+zstd')), JSON.stringify(inst.layers));
    }
    // add --authfile is taken (podman's flag), as on every registry command.
    await fsp.writeFile(`${t.dir}/empty-auth.json`, '{"auths":{}}');
    await sk(['manifest', 'add', '-q', '--authfile', `${t.dir}/empty-auth.json`, '--tls-verify=false', '--arch', 'arm64', '--variant', 'v8', 'localhost/amlist:1', `${reg.host}/m/multi:1`]);
    // rm: the list goes, its images stay.
    assert.equal(await sk(['manifest', 'rm', 'localhost/mlist:1']), `Untagged: localhost/mlist:1\nDeleted: ${id}\n`);
    assert.ok((await sk(['images', '--format', '{{.Repository}}'])).includes('localhost/m-other'));
    const gone = await run(process.execPath, [SKIFF, '--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, 'manifest', 'inspect', 'localhost/mlist:1'], { env });
    assert.equal(gone.code, 2, gone.stderr);
    const notList = await run(process.execPath, [SKIFF, '--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, 'manifest', 'inspect', 'localhost/m-bb:1'], { env });
    assert.equal(notList.code, 1);
    assert.match(notList.stderr, /localhost\/m-bb:1: not a manifest list/);
  });
});
