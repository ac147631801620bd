/**
 * Simple signing (containers-signature(5)) against skopeo: what skiff signs, skopeo verifies, and the other way
 * round; every check containers/image makes is made (key, type, manifest digest, reference).
 */
import { strict as assert } from 'node:assert';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeLayout, sampleSpec } from '../kit/image.js';
import { ok, run, SKIFF, tempDir } from '../kit/run.js';

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
    ] as const) {
      const r = await sk(['copy', '-q', ...args]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, msg);
    }
    await assert.rejects(fsp.access(path.join(t.dir, 'nope')));
    await assert.rejects(fsp.access(path.join(t.dir, 'nope-dir')));
  });
});
