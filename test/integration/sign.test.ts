/**
 * Simple signing (containers-signature(5)) against skopeo: what skiff signs, skopeo verifies, and the other way
 * round; every check containers/image makes is made (key, type, manifest digest, reference).
 */
import { strict as assert } from 'node:assert';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeLayout, makeMultiPlatformLayout, sampleSpec } from '../kit/image.js';
import { startRegistry } from '../kit/registry.js';
import { ok, run, SKIFF, tempDir, unmountUnder } from '../kit/run.js';

describe('standalone-sign / standalone-verify (GnuPG simple signing) against skopeo', () => {
  const t = tempDir('skiff-sign-');
  const gnupg = path.join(t.dir, 'gnupg');
  const env = { ...process.env, GNUPGHOME: gnupg };
  let fpr = '';
  let other = '';
  const sk = (args: string[]) => run(process.execPath, [SKIFF, ...args], { env });
  const skopeo = (args: string[]) => run('skopeo', args, { env });
  const manifest = path.join(t.dir, 'manifest.json');
  before(async () => {
    await fsp.mkdir(gnupg, { mode: 0o700 });
    for (const who of ['signer', 'other']) await ok(run('gpg', ['--batch', '--passphrase', '', '--quick-gen-key', `skiff ${who} <${who}@skiff.invalid>`, 'default', 'default', 'never'], { env }));
    const keys = (await ok(run('gpg', ['--batch', '--with-colons', '--list-secret-keys'], { env }))).split('\n').filter((l) => l.startsWith('fpr:')).map((l) => l.split(':')[9]!);
    [fpr, other] = [keys[0]!, keys[1]!];
    await fsp.writeFile(manifest, JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'1'.repeat(64)}`, size: 2 }, layers: [] }));
  });
  after(async () => {
    await run('gpgconf', ['--kill', 'gpg-agent'], { env });
    // (skopeo leaves a private bind mount of each store's overlay directory behind.)
    unmountUnder(t.dir);
    t.cleanup();
  });

  it('skiff signs, skopeo verifies; skopeo signs, skiff verifies (same output)', async () => {
    const mine = path.join(t.dir, 'skiff.sig');
    await ok(sk(['standalone-sign', manifest, 'registry.example/app:1', fpr, '-o', mine]));
    const theirsOut = await ok(skopeo(['standalone-verify', manifest, 'registry.example/app:1', fpr, mine]));
    const theirs = path.join(t.dir, 'skopeo.sig');
    await ok(skopeo(['standalone-sign', manifest, 'registry.example/app:1', fpr, '-o', theirs]));
    assert.equal(await ok(sk(['standalone-verify', manifest, 'registry.example/app:1', fpr, theirs])), theirsOut);
    assert.match(theirsOut, /^Signature verified, digest sha256:[0-9a-f]{64}\n$/);
    // Short names are normalised as skopeo normalises them.
    const short = path.join(t.dir, 'short.sig');
    await ok(sk(['standalone-sign', manifest, 'busybox:latest', fpr, '-o', short]));
    await ok(skopeo(['standalone-verify', manifest, 'docker.io/library/busybox:latest', fpr, short]));
  });

  it('refused, as skopeo refuses them: another reference, another manifest, another key, not a signature', async () => {
    const sig = path.join(t.dir, 'app.sig');
    await ok(sk(['standalone-sign', manifest, 'registry.example/app:1', fpr, '-o', sig]));
    const tampered = path.join(t.dir, 'tampered.json');
    await fsp.writeFile(tampered, `${await fsp.readFile(manifest, 'utf8')} `);
    const junk = path.join(t.dir, 'junk.sig');
    await fsp.writeFile(junk, 'not a signature');
    for (const [args, msg] of [
      [[manifest, 'registry.example/other:1', fpr, sig], /Docker reference registry\.example\/app:1 does not match registry\.example\/other:1/],
      [[tampered, 'registry.example/app:1', fpr, sig], /Signature for docker digest sha256:[0-9a-f]+ does not match sha256:/],
      [[manifest, 'registry.example/app:1', other, sig], /is not accepted/],
      [[manifest, 'registry.example/app:1', fpr, junk], /Error verifying signature/],
    ] as const) {
      const r = await sk(['standalone-verify', ...args]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, msg);
      assert.notEqual((await skopeo(['standalone-verify', ...args])).code, 0, 'skopeo refuses it too');
    }
  });

  it('copy --sign-by into dir: writes signature-1 for the copied manifest, which skopeo verifies; destinations that cannot keep signatures refuse before copying', async () => {
    const layout = path.join(t.dir, 'layout');
    await makeLayout(layout, '1', sampleSpec(9));
    const out = path.join(t.dir, 'signed');
    await ok(sk(['copy', '-q', '--sign-by', fpr, '--sign-identity', 'registry.example/app:1', `oci:${layout}:1`, `dir:${out}`]));
    assert.match(await ok(skopeo(['standalone-verify', path.join(out, 'manifest.json'), 'registry.example/app:1', fpr, path.join(out, 'signature-1')])), /^Signature verified, digest sha256:/);
    // skopeo copies the signed dir: keeping the signature, as it would its own.
    await ok(skopeo(['copy', '-q', `dir:${out}`, `dir:${t.dir}/signed-copy`]));
    await fsp.access(path.join(t.dir, 'signed-copy', 'signature-1'));
    for (const [args, msg] of [
      [['--sign-by', fpr, `oci:${layout}:1`, `oci:${t.dir}/nope:1`], /signatures cannot be stored in oci: destinations/],
      [['--sign-by', fpr, `oci:${layout}:1`, `dir:${t.dir}/nope-dir`], /names no Docker reference for the signature to vouch for: give --sign-identity/],
      // A key the keyring lacks: refused before anything is copied (not once the copy is done).
      [['--sign-by', 'F'.repeat(40), '--sign-identity', 'registry.example/app:1', `oci:${layout}:1`, `dir:${t.dir}/nope-key`], /--sign-by F+: no such secret key/],
    ] as const) {
      const r = await sk(['copy', '-q', ...args]);
      assert.notEqual(r.code, 0, r.stderr);
      assert.match(r.stderr, msg);
    }
    await assert.rejects(fsp.access(path.join(t.dir, 'nope')));
    await assert.rejects(fsp.access(path.join(t.dir, 'nope-dir')));
    await assert.rejects(fsp.access(path.join(t.dir, 'nope-key')));
  });

  it('copy keeps the source\'s signatures as skopeo does (dir: -> dir:), refuses to drop them silently (oci:) or to invalidate them (--format), and --remove-signatures copies without them', async () => {
    const layout = path.join(t.dir, 'keep-layout');
    await makeLayout(layout, '1', sampleSpec(10));
    const plain = path.join(t.dir, 'keep-plain');
    await ok(sk(['copy', '-q', `oci:${layout}:1`, `dir:${plain}`]));
    // skopeo signs it; skiff copies it on, signature and all, and skopeo verifies the copy.
    const signed = path.join(t.dir, 'keep-signed');
    await ok(skopeo(['copy', '-q', '--sign-by', fpr, '--sign-identity', 'registry.example/app:2', `dir:${plain}`, `dir:${signed}`]));
    const copied = path.join(t.dir, 'keep-copied');
    await ok(sk(['copy', '-q', `dir:${signed}`, `dir:${copied}`]));
    assert.ok((await fsp.readFile(path.join(copied, 'signature-1'))).equals(await fsp.readFile(path.join(signed, 'signature-1'))));
    assert.match(await ok(skopeo(['standalone-verify', path.join(copied, 'manifest.json'), 'registry.example/app:2', fpr, path.join(copied, 'signature-1')])), /^Signature verified/);
    // A second signature is added after the copied one (c/image's order).
    const twice = path.join(t.dir, 'keep-twice');
    await ok(sk(['copy', '-q', '--sign-by', fpr, '--sign-identity', 'registry.example/app:3', `dir:${signed}`, `dir:${twice}`]));
    assert.ok((await fsp.readFile(path.join(twice, 'signature-1'))).equals(await fsp.readFile(path.join(signed, 'signature-1'))));
    await ok(skopeo(['standalone-verify', path.join(twice, 'manifest.json'), 'registry.example/app:3', fpr, path.join(twice, 'signature-2')]));
    for (const [args, dest, msg] of [
      [[], `oci:${t.dir}/keep-oci:1`, /cannot copy the signatures of the image to oci:.*oci: destinations cannot store signatures \(--remove-signatures/],
      [['--format', 'v2s2'], `dir:${t.dir}/keep-v2s2`, /copying would change the image \(application\/vnd\.oci\.image\.manifest\.v1\+json -> application\/vnd\.docker\.distribution\.manifest\.v2\+json\), which invalidates its signature/],
    ] as const) {
      const r = await sk(['copy', '-q', ...args, `dir:${signed}`, dest]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, msg);
      await assert.rejects(fsp.access(dest.replace(/^\w+:/, '').replace(/:1$/, '')), `${dest}: nothing written`);
    }
    // skopeo refuses the oci: copy too.
    assert.notEqual((await skopeo(['copy', '-q', `dir:${signed}`, `oci:${t.dir}/keep-oci-skopeo:1`])).code, 0);
    await ok(sk(['copy', '-q', '--remove-signatures', '--format', 'v2s2', `dir:${signed}`, `dir:${t.dir}/keep-removed`]));
    assert.deepEqual((await fsp.readdir(path.join(t.dir, 'keep-removed'))).filter((n) => n.includes('signature')), []);
    await ok(sk(['copy', '-q', '--remove-signatures', `dir:${signed}`, `oci:${t.dir}/keep-oci:1`]));
  });

  it('copy --all keeps each instance\'s signatures (dir: <digest>.signature-N) as skopeo reads and writes them', async () => {
    const layout = path.join(t.dir, 'multi-layout');
    await makeMultiPlatformLayout(layout, '1', [sampleSpec(11), { ...sampleSpec(12), architecture: 'arm64' }]);
    const src = path.join(t.dir, 'multi-src');
    await ok(sk(['copy', '-q', '--all', `oci:${layout}:1`, `dir:${src}`]));
    const instances = (await fsp.readdir(src)).filter((n) => n.endsWith('.manifest.json')).map((n) => n.slice(0, 64));
    assert.equal(instances.length, 2);
    // Each instance and the index signed (skopeo --sign-by signs the index only).
    for (const hex of instances) await ok(sk(['standalone-sign', path.join(src, `${hex}.manifest.json`), 'registry.example/multi:1', fpr, '-o', path.join(src, `${hex}.signature-1`)]));
    await ok(sk(['standalone-sign', path.join(src, 'manifest.json'), 'registry.example/multi:1', fpr, '-o', path.join(src, 'signature-1')]));
    for (const [tool, out] of [[sk, 'multi-skiff'], [skopeo, 'multi-skopeo']] as const) {
      await ok(tool(['copy', '-q', '--all', `dir:${src}`, `dir:${t.dir}/${out}`]));
      const names = (await fsp.readdir(path.join(t.dir, out))).filter((n) => n.includes('signature')).sort();
      assert.deepEqual(names, ['signature-1', ...instances.map((h) => `${h}.signature-1`)].sort(), out);
      for (const n of names) assert.ok((await fsp.readFile(path.join(t.dir, out, n))).equals(await fsp.readFile(path.join(src, n))), `${out}/${n}`);
    }
    // One platform picked from the index: that instance's signatures become the copy's own.
    const one = path.join(t.dir, 'multi-one');
    await ok(sk(['copy', '-q', '--override-arch', 'arm64', `dir:${src}`, `dir:${one}`]));
    const digest = (await ok(sk(['manifest-digest', path.join(one, 'manifest.json')]))).trim();
    assert.ok(instances.includes(digest.slice(7)));
    assert.ok((await fsp.readFile(path.join(one, 'signature-1'))).equals(await fsp.readFile(path.join(src, `${digest.slice(7)}.signature-1`))));
    await ok(skopeo(['standalone-verify', path.join(one, 'manifest.json'), 'registry.example/multi:1', fpr, path.join(one, 'signature-1')]));
  });

  it('signatures of registry images go to and come from the lookaside storage registries.d names, as skopeo\'s (--registries.d)', async () => {
    const reg = await startRegistry();
    try {
      const rd = path.join(t.dir, 'registries.d');
      const look = path.join(t.dir, 'lookaside');
      await fsp.mkdir(rd);
      await fsp.writeFile(path.join(rd, 'test.yaml'), `docker:\n  ${reg.host}/signed:\n    lookaside: file://${look}\n`);
      const layout = path.join(t.dir, 'reg-layout');
      await makeLayout(layout, '1', sampleSpec(13));
      const signed = path.join(t.dir, 'reg-signed');
      await ok(skopeo(['copy', '-q', '--sign-by', fpr, '--sign-identity', `${reg.host}/signed/app:1`, `oci:${layout}:1`, `dir:${signed}`]));
      // skiff pushes: the signature lands in the lookaside; skopeo pulls it back with the image and verifies it.
      await ok(sk(['--registries.d', rd, 'copy', '-q', '--dest-tls-verify=false', `dir:${signed}`, `docker://${reg.host}/signed/app:1`]));
      const digest = (await ok(sk(['manifest-digest', path.join(signed, 'manifest.json')]))).trim();
      const stored = path.join(look, 'signed', `app@sha256=${digest.slice(7)}`, 'signature-1');
      assert.ok((await fsp.readFile(stored)).equals(await fsp.readFile(path.join(signed, 'signature-1'))));
      await ok(skopeo(['--registries.d', rd, 'copy', '-q', '--src-tls-verify=false', `docker://${reg.host}/signed/app:1`, `dir:${t.dir}/reg-by-skopeo`]));
      await ok(skopeo(['standalone-verify', path.join(t.dir, 'reg-by-skopeo', 'manifest.json'), `${reg.host}/signed/app:1`, fpr, path.join(t.dir, 'reg-by-skopeo', 'signature-1')]));
      // skopeo pushes under another name; skiff pulls the image with its signature.
      await ok(skopeo(['--registries.d', rd, 'copy', '-q', '--dest-tls-verify=false', `dir:${signed}`, `docker://${reg.host}/signed/other:1`]));
      await ok(sk(['--registries.d', rd, 'copy', '-q', '--src-tls-verify=false', `docker://${reg.host}/signed/other:1`, `dir:${t.dir}/reg-by-skiff`]));
      assert.ok((await fsp.readFile(path.join(t.dir, 'reg-by-skiff', 'signature-1'))).equals(await fsp.readFile(path.join(signed, 'signature-1'))));
      // An oci: destination cannot keep the signature found there: refused, and copied with --remove-signatures.
      const refused = await sk(['--registries.d', rd, 'copy', '-q', '--src-tls-verify=false', `docker://${reg.host}/signed/app:1`, `oci:${t.dir}/reg-oci:1`]);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /cannot copy the signatures of the image to oci:/);
      await ok(sk(['--registries.d', rd, 'copy', '-q', '--remove-signatures', '--src-tls-verify=false', `docker://${reg.host}/signed/app:1`, `oci:${t.dir}/reg-oci:1`]));
      // push --sign-by from a store: the pushed manifest signed into the lookaside, for the name pushed to.
      const store = ['--root', `${t.dir}/push-store/root`, '--runroot', `${t.dir}/push-store/run`];
      await ok(sk([...store, 'copy', '-q', `oci:${layout}:1`, 'containers-storage:localhost/topush:1']));
      await ok(sk([...store, '--registries.d', rd, 'push', '-q', '--tls-verify=false', '--sign-by', fpr, 'localhost/topush:1', `docker://${reg.host}/signed/pushed:1`]));
      await ok(skopeo(['--registries.d', rd, 'copy', '-q', '--src-tls-verify=false', `docker://${reg.host}/signed/pushed:1`, `dir:${t.dir}/pushed-by-skiff`]));
      assert.match(await ok(skopeo(['standalone-verify', path.join(t.dir, 'pushed-by-skiff', 'manifest.json'), `${reg.host}/signed/pushed:1`, fpr, path.join(t.dir, 'pushed-by-skiff', 'signature-1')])), /^Signature verified/);
      // manifest push --sign-by: the pushed list signed for the name pushed to; skopeo copies it with the signature
      // (--all) and verifies it.
      await ok(sk([...store, 'manifest', 'create', 'localhost/signlist:1', 'containers-storage:localhost/topush:1']));
      await ok(sk([...store, '--registries.d', rd, 'manifest', 'push', '-q', '--tls-verify=false', '--sign-by', fpr, 'localhost/signlist:1', `docker://${reg.host}/signed/list:1`]));
      await ok(skopeo(['--registries.d', rd, 'copy', '-q', '--all', '--src-tls-verify=false', `docker://${reg.host}/signed/list:1`, `dir:${t.dir}/list-by-skiff`]));
      assert.match(await ok(skopeo(['standalone-verify', path.join(t.dir, 'list-by-skiff', 'manifest.json'), `${reg.host}/signed/list:1`, fpr, path.join(t.dir, 'list-by-skiff', 'signature-1')])), /^Signature verified/);
      const noKey = await sk([...store, 'push', '-q', '--tls-verify=false', '--sign-by', 'F'.repeat(40), 'localhost/topush:1', `docker://${reg.host}/signed/nokey:1`]);
      assert.notEqual(noKey.code, 0);
      assert.match(noKey.stderr, /no such secret key/);
      assert.equal((await run('skopeo', ['inspect', '--tls-verify=false', `docker://${reg.host}/signed/nokey:1`])).code === 0, false, 'nothing pushed');
      unmountUnder(`${t.dir}/push-store`);
      // sync --sign-by: each image copied is signed for its destination name; skopeo verifies one of them.
      await ok(sk(['--registries.d', rd, 'sync', '-q', '--src', 'oci', '--dest', 'docker', '--dest-tls-verify=false', '--sign-by', fpr, layout, `${reg.host}/signed/synced`]));
      const synced = (await ok(run('skopeo', ['list-tags', '--tls-verify=false', `docker://${reg.host}/signed/synced/reg-layout`]))).includes('"1"');
      assert.ok(synced, 'the layout\'s image is in the registry');
      await ok(skopeo(['--registries.d', rd, 'copy', '-q', '--src-tls-verify=false', `docker://${reg.host}/signed/synced/reg-layout:1`, `dir:${t.dir}/synced-back`]));
      assert.match(await ok(skopeo(['standalone-verify', path.join(t.dir, 'synced-back', 'manifest.json'), `${reg.host}/signed/synced/reg-layout:1`, fpr, path.join(t.dir, 'synced-back', 'signature-1')])), /^Signature verified/);
      const toDir = await sk(['sync', '-q', '--src', 'oci', '--dest', 'dir', '--sign-by', fpr, layout, `${t.dir}/sync-dir`]);
      assert.notEqual(toDir.code, 0);
      assert.match(toDir.stderr, /--sign-by: .*--dest docker/);
      // Two files defining one scope: a clear error naming both.
      await fsp.writeFile(path.join(rd, 'again.yaml'), `docker:\n  ${reg.host}/signed:\n    lookaside: file:///nowhere\n`);
      const dup = await sk(['--registries.d', rd, 'copy', '-q', '--src-tls-verify=false', `docker://${reg.host}/signed/app:1`, `dir:${t.dir}/reg-dup`]);
      assert.equal(dup.code, 1);
      assert.match(dup.stderr, /registries\.d: "docker" scope .*signed is defined both in .*again\.yaml and .*test\.yaml/);
    } finally {
      await reg.stop();
    }
  });

  it('containers-storage keeps signatures as c/image does (same image record and big data as skopeo\'s), and a copy out that re-describes the image is refused as skopeo refuses it', async () => {
    const layout = path.join(t.dir, 'st-layout');
    await makeLayout(layout, '1', sampleSpec(14));
    const signed = path.join(t.dir, 'st-signed');
    await ok(skopeo(['copy', '-q', '--sign-by', fpr, '--sign-identity', 'registry.example/st:1', `oci:${layout}:1`, `dir:${signed}`]));
    const store = (n: string) => `containers-storage:[overlay@${t.dir}/${n}/root+${t.dir}/${n}/run]localhost/st:1`;
    await ok(sk(['copy', '-q', `dir:${signed}`, store('st-skiff')]));
    await ok(skopeo(['copy', '-q', `dir:${signed}`, store('st-skopeo')]));
    type Rec = Record<string, unknown>;
    const record = async (n: string): Promise<Rec> => (JSON.parse(await fsp.readFile(path.join(t.dir, n, 'root', 'overlay-images', 'images.json'), 'utf8')) as Rec[])[0]!;
    const [mine, theirs] = [await record('st-skiff'), await record('st-skopeo')];
    for (const k of ['id', 'digest', 'metadata', 'big-data-names', 'big-data-sizes', 'big-data-digests']) assert.deepEqual(mine[k], theirs[k], k);
    assert.match(String(mine.metadata), /"signature-sizes":\[\d+\]/);
    // Both tools read the signatures back from either store: the copy out would uncompress the layers (a new
    // manifest), so both refuse it; without the signatures both copy it.
    for (const n of ['st-skiff', 'st-skopeo']) {
      const r = await sk(['copy', '-q', store(n), `dir:${t.dir}/${n}-out`]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /which invalidates its signature \(--remove-signatures/);
      const s2 = await skopeo(['copy', '-q', store(n), `dir:${t.dir}/${n}-out-skopeo`]);
      assert.notEqual(s2.code, 0);
      assert.match(s2.stderr, /Would invalidate signatures/);
      await ok(sk(['copy', '-q', '--remove-signatures', store(n), `dir:${t.dir}/${n}-out`]));
    }
    // Recorded again without signatures (--remove-signatures): the record keeps none.
    await ok(sk(['copy', '-q', '--remove-signatures', `dir:${signed}`, store('st-skiff')]));
    const again = await record('st-skiff');
    assert.equal(again.metadata, undefined);
    assert.ok(!(again['big-data-names'] as string[]).includes('signatures'));
  });
  it('build --sign-by signs the built image in the store, for its first name: skopeo copies it out with the signature and verifies it; refused before building without a name or with an unknown key', async () => {
    const ctx = path.join(t.dir, 'sign-ctx');
    await fsp.mkdir(ctx, { recursive: true });
    await fsp.writeFile(path.join(ctx, 'Containerfile'), 'FROM scratch\nCOPY a.txt /a.txt\nLABEL signed=yes\n');
    await fsp.writeFile(path.join(ctx, 'a.txt'), 'signed content\n');
    const g = ['--root', `${t.dir}/bs/root`, '--runroot', `${t.dir}/bs/run`, '--storage-driver', 'overlay'];
    await ok(sk([...g, 'build', '-q', '--sign-by', fpr, '-t', 'localhost/signed:1', ctx]));
    const out = path.join(t.dir, 'built-signed');
    await ok(skopeo(['copy', '-q', `containers-storage:[overlay@${t.dir}/bs/root+${t.dir}/bs/run]localhost/signed:1`, `dir:${out}`]));
    assert.match(await ok(skopeo(['standalone-verify', path.join(out, 'manifest.json'), 'localhost/signed:1', fpr, path.join(out, 'signature-1')])), /^Signature verified, digest sha256:/);
    // skiff's own copy out keeps it too.
    await ok(sk([...g, 'copy', '-q', 'containers-storage:localhost/signed:1', `dir:${t.dir}/built-signed-skiff`]));
    await fsp.access(path.join(t.dir, 'built-signed-skiff', 'signature-1'));
    // Refused before anything is built: no name to vouch for, a key the keyring does not have.
    const g2 = ['--root', `${t.dir}/bs2/root`, '--runroot', `${t.dir}/bs2/run`, '--storage-driver', 'overlay'];
    const noName = await sk([...g2, 'build', '-q', '--sign-by', fpr, ctx]);
    assert.notEqual(noName.code, 0);
    assert.match(noName.stderr, /--sign-by: the image needs a name \(-t\)/);
    const badKey = await sk([...g2, 'build', '-q', '--sign-by', 'F'.repeat(40), '-t', 'localhost/x:1', ctx]);
    assert.notEqual(badKey.code, 0);
    assert.match(badKey.stderr, /no such secret key/);
    assert.equal((await ok(sk([...g2, 'images', '-q']))).trim(), '');
  });
});
