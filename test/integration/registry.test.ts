/**
 * docker:// against the real CNCF distribution registry on 127.0.0.1 (plain http, htpasswd, Bearer tokens, TLS),
 * with skopeo as the peer, and a fault-injecting proxy for 5xx, 429, resets and wrong bytes.
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeBusyboxLayout } from '../kit/fixtures.js';
import { makeLayout, makeMultiPlatformLayout, sampleSpec } from '../kit/image.js';
import { startFaultProxy, type FaultProxy } from '../kit/fault-proxy.js';
import { startRegistry, freePort, type TestRegistry } from '../kit/registry.js';
import { ok, run, skiff, SKIFF, tempDir } from '../kit/run.js';
import { parseImageRef } from '../../src/core/ref.js';
import { transports } from '../../transports/index.js';
import { flatRef, validateImage, type Flat } from '../kit/validate.js';

const flat = (ref: string): Promise<Flat> => flatRef(ref, { tlsVerify: false });

const NOTLS = '--tls-verify=false';
const skopeo = (...args: string[]) => ok(run('skopeo', args));

describe('docker:// with the real registry', () => {
  let t: ReturnType<typeof tempDir>;
  let reg: TestRegistry;
  let fixture: string;
  let fixtureDigest: string;
  let fixtureFlat: Flat;
  before(async () => {
    t = tempDir();
    reg = await startRegistry();
    fixture = `oci:${t.dir}/fixture:busybox`;
    fixtureDigest = await makeBusyboxLayout(`${t.dir}/fixture`);
    fixtureFlat = await flat(fixture);
  });
  after(async () => {
    await reg.stop();
    t.cleanup();
  });

  it('skiff pushes, skopeo pulls: digest kept, same filesystem', async () => {
    await ok(skiff(['copy', '-q', '--dest-tls-verify=false', '--digestfile', `${t.dir}/d1`, fixture, `docker://${reg.host}/app/one:1`]));
    assert.equal(await fsp.readFile(`${t.dir}/d1`, 'utf8'), fixtureDigest);
    const theirs = JSON.parse(await skopeo('inspect', NOTLS, `docker://${reg.host}/app/one:1`));
    assert.equal(theirs.Digest, fixtureDigest);
    await skopeo('copy', '-q', '--src-tls-verify=false', `docker://${reg.host}/app/one:1`, `oci:${t.dir}/pulled-by-skopeo:x`);
    assert.deepEqual(await flat(`oci:${t.dir}/pulled-by-skopeo:x`), fixtureFlat);
  });

  it('registry -> docker-archive: skiff writes skopeo\'s bytes, blobs in the manifest\'s order whatever order they arrive in', async () => {
    // Two large layers and a small config: fetched at once, the config and the second layer finish in no set order.
    await makeLayout(`${t.dir}/da`, 'img', { layers: [5, 6].map((seed) => ({ files: [{ path: `f${seed}`, content: randomBytes(6 << 20) }] })) });
    await skopeo('copy', '-q', '--dest-tls-verify=false', `oci:${t.dir}/da:img`, `docker://${reg.host}/app/da:1`);
    await skopeo('copy', '-q', '--src-tls-verify=false', `docker://${reg.host}/app/da:1`, `docker-archive:${t.dir}/da-sk.tar:localhost/da:1`);
    await ok(skiff(['copy', '-q', '--src-tls-verify=false', `docker://${reg.host}/app/da:1`, `docker-archive:${t.dir}/da-mine.tar:localhost/da:1`]));
    assert.ok((await fsp.readFile(`${t.dir}/da-mine.tar`)).equals(await fsp.readFile(`${t.dir}/da-sk.tar`)));
  });

  it('skopeo pushes, skiff pulls; inspect, inspect --raw and list-tags match skopeo\'s', async () => {
    await skopeo('copy', '-q', '--dest-tls-verify=false', fixture, `docker://${reg.host}/app/two:a`);
    await skopeo('copy', '-q', '--dest-tls-verify=false', fixture, `docker://${reg.host}/app/two:b`);
    const ref = `docker://${reg.host}/app/two:a`;
    assert.equal(await ok(skiff(['inspect', NOTLS, '--raw', ref])), await skopeo('inspect', NOTLS, '--raw', ref));
    assert.equal(await ok(skiff(['inspect', NOTLS, '--config', '--raw', ref])), await skopeo('inspect', NOTLS, '--config', '--raw', ref));
    const mine = JSON.parse(await ok(skiff(['inspect', NOTLS, ref])));
    const theirs = JSON.parse(await skopeo('inspect', NOTLS, ref));
    for (const k of Object.keys(theirs)) assert.deepEqual(mine[k], theirs[k], k);
    assert.deepEqual(JSON.parse(await ok(skiff(['inspect', NOTLS, '--no-tags', ref]))).RepoTags, []);
    assert.equal(await ok(skiff(['list-tags', NOTLS, `docker://${reg.host}/app/two`])), await skopeo('list-tags', NOTLS, `docker://${reg.host}/app/two`));
    await ok(skiff(['copy', '-q', '--src-tls-verify=false', ref, `oci:${t.dir}/pulled:x`]));
    assert.deepEqual(await flat(`oci:${t.dir}/pulled:x`), fixtureFlat);
  });

  it('a two-platform index: --all pushes children before the index, digest kept; pull by digest', async () => {
    const idx = await makeMultiPlatformLayout(`${t.dir}/mp`, 'multi', [{ ...sampleSpec(11), architecture: 'amd64' }, { ...sampleSpec(12), architecture: 'arm64' }]);
    await ok(skiff(['copy', '-q', '--all', '--dest-tls-verify=false', `oci:${t.dir}/mp:multi`, `docker://${reg.host}/app/multi:1`]));
    assert.equal(JSON.parse(await skopeo('inspect', NOTLS, '--raw', `docker://${reg.host}/app/multi:1`)).manifests.length, 2);
    await ok(skiff(['copy', '-q', '--all', '--src-tls-verify=false', `docker://${reg.host}/app/multi@${idx}`, `oci:${t.dir}/mp-back:x`]));
    const r = parseImageRef(`oci:${t.dir}/mp-back:x`, transports);
    const s = await r.transport.openSource(r.ref);
    assert.deepEqual(await validateImage(s), { images: 2 });
    await s.close();
  });

  it('copying within a registry mounts blobs across repositories instead of uploading them', async () => {
    await ok(skiff(['copy', '-q', '--dest-tls-verify=false', fixture, `docker://${reg.host}/mount/src:1`]));
    const proxy = await startFaultProxy(reg.host);
    try {
      const r = await skiff(['copy', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${proxy.host}/mount/src:1`, `docker://${proxy.host}/mount/dst:1`]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(proxy.log.some((l) => /^POST .*mount=sha256/.test(l)), proxy.log.join('\n'));
      assert.ok(!proxy.log.some((l) => l.startsWith('PATCH')), 'no blob was uploaded');
      assert.equal(JSON.parse(await skopeo('inspect', NOTLS, `docker://${reg.host}/mount/dst:1`)).Digest, fixtureDigest);
    } finally {
      await proxy.stop();
    }
  });

  it('a blob pushed or pulled before, in another repository of the same registry, is mounted from there instead of uploaded (the blob location cache, as skopeo\'s)', async () => {
    const proxy = await startFaultProxy(reg.host);
    const cache = path.join(t.dir, 'locations.json');
    const withCache = (file: string, args: string[]) => ok(run(process.execPath, [SKIFF, ...args], { env: { ...process.env, SKIFF_BLOB_CACHE: file } }));
    const uploads = (): string[] => proxy.log.filter((l) => l.startsWith('PATCH') || /^PUT .*\/blobs\/uploads\//.test(l));
    try {
      // Learnt from a pull: the registry's known/pulled repository holds the fixture's blobs.
      await ok(skiff(['copy', '-q', '--dest-tls-verify=false', fixture, `docker://${reg.host}/known/pulled:1`]));
      await withCache(cache, ['copy', '-q', '--src-tls-verify=false', `docker://${proxy.host}/known/pulled:1`, `oci:${t.dir}/known-pulled:x`]);
      proxy.log.length = 0;
      // A push from a local layout, to a new repository: every blob mounted, none uploaded.
      await withCache(cache, ['copy', '-q', '--dest-tls-verify=false', fixture, `docker://${proxy.host}/known/pushed:1`]);
      assert.ok(proxy.log.some((l) => /^POST .*mount=sha256.*from=known%2Fpulled/.test(l)), proxy.log.join('\n'));
      assert.deepEqual(uploads(), [], 'no blob was uploaded');
      assert.equal(JSON.parse(await skopeo('inspect', NOTLS, `docker://${reg.host}/known/pushed:1`)).Digest, fixtureDigest);
      // Learnt from that push too: the next repository can mount from either.
      const table = JSON.parse(await fsp.readFile(cache, 'utf8')).registries[proxy.host];
      assert.ok(Object.values(table as Record<string, [string, number][]>).some((repos) => repos.map((r) => r[0]).includes('known/pushed')));
      // A remembered repository that no longer has the blob (or never had it) costs a try, then the upload.
      const stale = path.join(t.dir, 'stale.json');
      await fsp.writeFile(stale, JSON.stringify({ v: 1, registries: { [proxy.host]: Object.fromEntries(Object.keys(table).map((d) => [d, [['known/nowhere', 1]]])) } }));
      proxy.log.length = 0;
      await withCache(stale, ['copy', '-q', '--dest-tls-verify=false', fixture, `docker://${proxy.host}/known/fresh:1`]);
      assert.ok(proxy.log.some((l) => /^POST .*from=known%2Fnowhere/.test(l)));
      assert.ok(uploads().length > 0, 'uploaded after the mount was refused');
      assert.equal(JSON.parse(await skopeo('inspect', NOTLS, `docker://${reg.host}/known/fresh:1`)).Digest, fixtureDigest);
      // SKIFF_BLOB_CACHE=off: nothing remembered, nothing tried.
      proxy.log.length = 0;
      await withCache('off', ['copy', '-q', '--dest-tls-verify=false', fixture, `docker://${proxy.host}/known/off:1`]);
      assert.ok(!proxy.log.some((l) => l.includes('mount=')));
      assert.ok(uploads().length > 0);
    } finally {
      await proxy.stop();
    }
  });

  it('--dest-precompute-digests: recompressed layers the registry already has are not uploaded again', async () => {
    const proxy = await startFaultProxy(reg.host);
    const uploads = (): string[] => proxy.log.filter((l) => l.startsWith('PATCH') || /^PUT .*\/blobs\/uploads\//.test(l));
    try {
      const push = (...flags: string[]) => ok(skiff(['copy', '-q', '--dest-tls-verify=false', '--dest-compress-format', 'zstd', ...flags, fixture, `docker://${proxy.host}/pre/z:1`]));
      await push();
      proxy.log.length = 0;
      // Without the flag a recompressed layer's digest is only known once it is sent: sent again.
      await push();
      assert.ok(uploads().length > 0, proxy.log.join('\n'));
      proxy.log.length = 0;
      await push('--dest-precompute-digests');
      assert.deepEqual(uploads(), [], proxy.log.join('\n'));
      assert.ok(proxy.log.some((l) => /^HEAD .*\/blobs\/sha256:/.test(l)));
      const raw = JSON.parse(await skopeo('inspect', NOTLS, '--raw', `docker://${reg.host}/pre/z:1`));
      assert.ok(raw.layers.every((l: { mediaType: string }) => l.mediaType.endsWith('+zstd')));
      // A new repository still gets them (uploaded from the temp file), and skopeo reads the result.
      await ok(skiff(['copy', '-q', '--dest-tls-verify=false', '--dest-compress-format', 'zstd', '--dest-precompute-digests', fixture, `docker://${proxy.host}/pre/other:1`]));
      await skopeo('copy', '-q', '--src-tls-verify=false', `docker://${reg.host}/pre/other:1`, `oci:${t.dir}/pre-back:x`);
      assert.deepEqual(await flat(`oci:${t.dir}/pre-back:x`), fixtureFlat);
    } finally {
      await proxy.stop();
    }
  });

  it('zstd and v2s2 conversions on push are read back by skopeo', async () => {
    await ok(skiff(['copy', '-q', '--dest-tls-verify=false', '--dest-compress-format', 'zstd', fixture, `docker://${reg.host}/conv/z:1`]));
    const raw = JSON.parse(await skopeo('inspect', NOTLS, '--raw', `docker://${reg.host}/conv/z:1`));
    assert.ok(raw.layers.every((l: { mediaType: string }) => l.mediaType.endsWith('+zstd')));
    await ok(skiff(['copy', '-q', '--dest-tls-verify=false', '--format', 'v2s2', fixture, `docker://${reg.host}/conv/v2:1`]));
    assert.equal(JSON.parse(await skopeo('inspect', NOTLS, '--raw', `docker://${reg.host}/conv/v2:1`)).mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
    await skopeo('copy', '-q', '--src-tls-verify=false', `docker://${reg.host}/conv/z:1`, `oci:${t.dir}/z-back:x`);
    assert.deepEqual(await flat(`oci:${t.dir}/z-back:x`), fixtureFlat);
  });

  it('delete: by tag warns that the manifest (every tag) goes; --tag-only is refused clearly by distribution', async () => {
    await ok(skiff(['copy', '-q', '--dest-tls-verify=false', fixture, `docker://${reg.host}/del/me:1`]));
    const only = await skiff(['delete', NOTLS, '--tag-only', `docker://${reg.host}/del/me:1`]);
    assert.equal(only.code, 1);
    assert.match(only.stderr, /cannot delete a tag alone.*nothing was deleted/);
    await skopeo('inspect', NOTLS, `docker://${reg.host}/del/me:1`);
    const r = await skiff(['delete', NOTLS, `docker://${reg.host}/del/me:1`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /every tag pointing at it goes too/);
    const gone = await skiff(['inspect', NOTLS, `docker://${reg.host}/del/me:1`]);
    assert.equal(gone.code, 2, gone.stderr);
  });

  it('errors: unknown manifest exits 2; unreachable registry names the host; invalid references fail before any request', async () => {
    const unknown = await skiff(['inspect', NOTLS, `docker://${reg.host}/app/one:nope`]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /MANIFEST_UNKNOWN/);
    const port = await freePort();
    const down = await skiff(['inspect', NOTLS, '--retry-times', '0', `docker://127.0.0.1:${port}/x/y:1`]);
    assert.equal(down.code, 1);
    assert.match(down.stderr, new RegExp(`127\\.0\\.0\\.1:${port}.*ECONNREFUSED`));
    for (const bad of ['docker://Upper/Case:1', `docker://${reg.host}/x:`, 'docker:nohost/x']) {
      const r = await skiff(['inspect', bad]);
      assert.equal(r.code, 1, bad);
      assert.match(r.stderr, /invalid reference|must start with \/\//, bad);
    }
  });
});

describe('docker:// auth and TLS', () => {
  let t: ReturnType<typeof tempDir>;
  let fixture: string;
  let fixtureDigest: string;
  before(async () => {
    t = tempDir();
    fixture = `oci:${t.dir}/fixture:busybox`;
    fixtureDigest = await makeBusyboxLayout(`${t.dir}/fixture`);
  });
  after(() => t.cleanup());

  it('htpasswd Basic: anonymous refused once, --dest-creds works, login stores 0600 credentials used later, logout removes them', async () => {
    const reg = await startRegistry({ htpasswd: { user: 'alice', password: 's3cret' } });
    try {
      const anon = await skiff(['copy', '-q', '--dest-tls-verify=false', fixture, `docker://${reg.host}/p/a:1`]);
      assert.equal(anon.code, 1);
      assert.match(anon.stderr, /unauthorized/i);
      await ok(skiff(['copy', '-q', '--dest-tls-verify=false', '--dest-creds', 'alice:s3cret', fixture, `docker://${reg.host}/p/a:1`]));
      const authfile = path.join(t.dir, 'auth.json');
      const wrong = await skiff(['login', NOTLS, '--authfile', authfile, '-u', 'alice', '-p', 'nope', reg.host]);
      assert.equal(wrong.code, 1);
      assert.doesNotMatch(wrong.stderr + wrong.stdout, /nope/, 'the password never appears in output');
      await assert.rejects(fsp.stat(authfile));
      await ok(run('sh', ['-c', `echo s3cret | node ${path.resolve('bin/skiff.js')} login ${NOTLS} --authfile ${authfile} -u alice --password-stdin ${reg.host}`]));
      assert.equal((await fsp.stat(authfile)).mode & 0o777, 0o600);
      assert.equal(await ok(skiff(['login', '--authfile', authfile, '--get-login', reg.host])), 'alice\n');
      await ok(skiff(['copy', '-q', '--src-tls-verify=false', '--authfile', authfile, `docker://${reg.host}/p/a:1`, `oci:${t.dir}/basic:x`]));
      assert.equal(JSON.parse(await skopeo('inspect', NOTLS, '--authfile', authfile, `docker://${reg.host}/p/a:1`)).Name, `${reg.host}/p/a`);
      await ok(skiff(['logout', '--authfile', authfile, reg.host]));
      const after = await skiff(['inspect', NOTLS, '--authfile', authfile, `docker://${reg.host}/p/a:1`]);
      assert.equal(after.code, 1);
      // A credential helper named in the auth file (credHelpers), as docker's config.json names one: run as
      // docker-credential-NAME get, the registry on its standard input, its JSON answer used.
      const helpers = path.join(t.dir, 'helpers');
      await fsp.mkdir(helpers, { recursive: true });
      await fsp.writeFile(path.join(helpers, 'docker-credential-skifftest'), `#!/bin/sh\nread server\n[ "$1" = get ] && [ "$server" = "${reg.host}" ] && echo '{"ServerURL":"${reg.host}","Username":"alice","Secret":"s3cret"}'\n`, { mode: 0o755 });
      const helperAuth = path.join(t.dir, 'helper-auth.json');
      await fsp.writeFile(helperAuth, JSON.stringify({ credHelpers: { [reg.host]: 'skifftest' } }));
      const viaHelper = await run(process.execPath, [SKIFF, 'inspect', NOTLS, '--authfile', helperAuth, `docker://${reg.host}/p/a:1`], { env: { ...process.env, PATH: `${helpers}:${process.env.PATH}` } });
      assert.equal(viaHelper.code, 0, viaHelper.stderr);
      assert.equal((JSON.parse(viaHelper.stdout) as { Name: string }).Name, `${reg.host}/p/a`);
    } finally {
      await reg.stop();
    }
  });

  it('Bearer tokens: pull+push scopes, cached (not one token per request), wrong credentials a single clear error', async () => {
    const reg = await startRegistry({ token: { user: 'bob', password: 'pw' } });
    try {
      await ok(skiff(['copy', '-q', '--dest-tls-verify=false', '--dest-creds', 'bob:pw', fixture, `docker://${reg.host}/tok/a:1`]));
      assert.ok(reg.tokenRequests.some((s) => s.includes('repository:tok/a:pull,push')), reg.tokenRequests.join('\n'));
      assert.ok(reg.tokenRequests.length <= 4, `token requests: ${reg.tokenRequests.length}`);
      await ok(skiff(['copy', '-q', '--src-tls-verify=false', '--src-creds', 'bob:pw', `docker://${reg.host}/tok/a:1`, `oci:${t.dir}/tok:x`]));
      const before = reg.tokenRequests.length;
      const bad = await skiff(['inspect', NOTLS, '--creds', 'bob:wrong', `docker://${reg.host}/tok/a:1`]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /unauthorized/i);
      assert.ok(reg.tokenRequests.length - before <= 2, 'no retry storm on bad credentials');
      // skopeo pulls what skiff pushed through the token flow
      await skopeo('copy', '-q', '--src-tls-verify=false', '--src-creds', 'bob:pw', `docker://${reg.host}/tok/a:1`, `oci:${t.dir}/tok-sk:x`);
    } finally {
      await reg.stop();
    }
  });

  it('--username/--password as skopeo takes them; --registry-token sent as is (no token asked for), a wrong one a clear error', async () => {
    const reg = await startRegistry({ token: { user: 'bob', password: 'pw' } });
    try {
      await ok(skiff(['copy', '-q', '--dest-tls-verify=false', '--dest-username', 'bob', '--dest-password', 'pw', fixture, `docker://${reg.host}/tok/u:1`]));
      assert.equal(JSON.parse(await ok(skiff(['inspect', NOTLS, '--username', 'bob', '--password', 'pw', `docker://${reg.host}/tok/u:1`]))).Digest, fixtureDigest);
      // A token from the registry's token service, for pulling this repository.
      const ping = await fetch(`http://${reg.host}/v2/`);
      const realm = /realm="([^"]+)"/.exec(ping.headers.get('www-authenticate') ?? '')![1]!;
      const service = /service="([^"]+)"/.exec(ping.headers.get('www-authenticate') ?? '')![1]!;
      const res = await fetch(`${realm}?service=${service}&scope=repository:tok/u:pull`, { headers: { authorization: `Basic ${Buffer.from('bob:pw').toString('base64')}` } });
      const { token } = (await res.json()) as { token: string };
      const asked = reg.tokenRequests.length;
      const mine = JSON.parse(await ok(skiff(['inspect', NOTLS, '--no-creds', '--registry-token', token, `docker://${reg.host}/tok/u:1`])));
      assert.equal(mine.Digest, fixtureDigest);
      await ok(skiff(['copy', '-q', '--src-tls-verify=false', '--src-registry-token', token, `docker://${reg.host}/tok/u:1`, `oci:${t.dir}/by-token:x`]));
      assert.equal(reg.tokenRequests.length, asked, 'skiff asked the token service for nothing');
      assert.equal(JSON.parse(await skopeo('inspect', NOTLS, '--registry-token', token, `docker://${reg.host}/tok/u:1`)).Digest, mine.Digest);
      const bad = await skiff(['inspect', NOTLS, '--registry-token', 'not-a-token', `docker://${reg.host}/tok/u:1`]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /unauthorized/i);
      assert.ok(!bad.stderr.includes('not-a-token'), 'the token is not printed');
    } finally {
      await reg.stop();
    }
  });

  it('TLS with a self-signed CA: refused by default with a hint, accepted with --cert-dir or --tls-verify=false', async () => {
    const reg = await startRegistry({ tls: true });
    try {
      const r = await skiff(['copy', '-q', '--retry-times', '0', fixture, `docker://${reg.host}/tls/a:1`]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /certificate|self.signed/i);
      await ok(skiff(['copy', '-q', '--dest-cert-dir', reg.certDir!, fixture, `docker://${reg.host}/tls/a:1`]));
      await ok(skiff(['inspect', '--tls-verify=false', `docker://${reg.host}/tls/a:1`]));
      await skopeo('inspect', '--cert-dir', reg.certDir!, `docker://${reg.host}/tls/a:1`);
    } finally {
      await reg.stop();
    }
  });

  it('TLS trust as skopeo\'s: the system bundle (SSL_CERT_FILE) and NODE_EXTRA_CA_CERTS, through the launcher too', async () => {
    const reg = await startRegistry({ tls: true });
    try {
      await ok(skiff(['copy', '-q', '--dest-cert-dir', reg.certDir!, fixture, `docker://${reg.host}/tls/b:1`]));
      const ca = path.join(reg.certDir!, 'ca.crt');
      const launcher = path.join(path.dirname(SKIFF), 'skiff');
      const { SSL_CERT_FILE: _s, NODE_EXTRA_CA_CERTS: _n, SKIFF_EXTRA_CA_CERTS: _k, ...clean } = process.env;
      const inspect = (cmd: string, args: string[], env: NodeJS.ProcessEnv) => run(cmd, [...args, 'inspect', '--retry-times', '0', `docker://${reg.host}/tls/b:1`], { env: { ...clean, ...env } });
      // Not trusted without them.
      const refused = await inspect(launcher, [], {});
      assert.equal(refused.code, 1, refused.stdout);
      assert.match(refused.stderr, /certificate/i);
      // A bundle made of the system's CAs and the test CA, as update-ca-certificates would make it.
      const bundle = path.join(reg.certDir!, 'bundle.pem');
      await fsp.writeFile(bundle, `${await fsp.readFile('/etc/ssl/certs/ca-certificates.crt', 'utf8').catch(() => '')}\n${await fsp.readFile(ca, 'utf8')}`);
      for (const [cmd, pre] of [[launcher, []], [process.execPath, [SKIFF]]] as const) {
        for (const env of [{ SSL_CERT_FILE: bundle }, { NODE_EXTRA_CA_CERTS: ca }]) {
          const r = await inspect(cmd, [...pre], env);
          assert.equal(r.code, 0, `${cmd} ${JSON.stringify(env)}: ${r.stderr}`);
          assert.equal((JSON.parse(r.stdout) as { Name: string }).Name, `${reg.host}/tls/b`);
        }
      }
    } finally {
      await reg.stop();
    }
  });
});

describe('docker:// faults (proxy in front of the real registry)', () => {
  let t: ReturnType<typeof tempDir>;
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let fixture: string;
  let fixtureFlat: Flat;
  const fast = ['--retry-delay', '10ms'];
  before(async () => {
    t = tempDir();
    reg = await startRegistry();
    proxy = await startFaultProxy(reg.host);
    fixture = `oci:${t.dir}/fixture:busybox`;
    await makeBusyboxLayout(`${t.dir}/fixture`);
    fixtureFlat = await flat(fixture);
    await ok(skiff(['copy', '-q', '--dest-tls-verify=false', fixture, `docker://${reg.host}/f/base:1`]));
  });
  after(async () => {
    await proxy.stop();
    await reg.stop();
    t.cleanup();
  });

  it('an insecure registry is asked over https and plain http at once: the http answer does not wait for the TLS attempt to fail', async () => {
    // In front of the registry: a TLS ClientHello (first byte 0x16) is held unanswered until a plain GET /v2/ has
    // arrived on another connection (5 s at most), then closed; plain http goes through. Asked one after the other,
    // the http probe came only after the TLS attempt had failed.
    const net = await import('node:net');
    let tlsPending = 0;
    let httpWhileTlsPending = false;
    let release: () => void = () => {};
    const httpSeen = new Promise<void>((resolve) => (release = resolve));
    const [rhost, rport] = reg.host.split(':');
    const server = net.createServer((c) => {
      c.once('data', (first) => {
        if (first[0] === 0x16) {
          tlsPending++;
          const done = (): void => {
            if (c.destroyed) return;
            tlsPending--;
            c.destroy();
          };
          setTimeout(done, 5000).unref();
          void httpSeen.then(done);
          return;
        }
        if (first.toString('latin1').startsWith('GET /v2/ ')) {
          if (tlsPending > 0) httpWhileTlsPending = true;
          release();
        }
        const up = net.connect(Number(rport), rhost!, () => {
          up.write(first);
          c.pipe(up).pipe(c);
        });
        up.on('error', () => c.destroy());
        c.on('error', () => up.destroy());
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as import('node:net').AddressInfo).port;
    try {
      const r = await ok(skiff(['inspect', NOTLS, '--retry-times', '0', '--raw', `docker://127.0.0.1:${port}/f/base:1`]));
      assert.equal(JSON.parse(r).schemaVersion, 2);
      assert.ok(httpWhileTlsPending, 'the plain http probe was sent while the TLS attempt was still open');
    } finally {
      release();
      server.close();
    }
  });

  it('503s and a 500 on blob reads are retried; the copy completes with correct digests', async () => {
    let n = 0;
    proxy.rule = (req) => (req.method === 'GET' && req.url?.includes('/blobs/') && n++ < 3 ? { kind: 'status', status: n === 2 ? 500 : 503 } : undefined);
    await ok(skiff(['copy', '-q', ...fast, '--src-tls-verify=false', `docker://${proxy.host}/f/base:1`, `oci:${t.dir}/r503:x`]));
    assert.deepEqual(await flat(`oci:${t.dir}/r503:x`), fixtureFlat);
    proxy.rule = undefined;
  });

  it('429 with Retry-After is honoured', async () => {
    let n = 0;
    proxy.rule = (req) => (req.url?.includes('/manifests/') && n++ === 0 ? { kind: 'status', status: 429, headers: { 'retry-after': '1' } } : undefined);
    const start = Date.now();
    await ok(skiff(['inspect', NOTLS, ...fast, `docker://${proxy.host}/f/base:1`]));
    assert.ok(Date.now() - start >= 1000, 'waited for Retry-After');
    proxy.rule = undefined;
  });

  it('a connection reset in the middle of a blob resumes with a Range request', async () => {
    // Every blob GET from the start is cut after 300 kB (smaller blobs pass): only Range requests can finish.
    proxy.rule = (req) => (req.method === 'GET' && req.url?.includes('/blobs/') && !req.headers.range ? { kind: 'reset-mid-body', after: 300_000 } : undefined);
    proxy.log.length = 0;
    await ok(skiff(['copy', '-q', ...fast, '--src-tls-verify=false', `docker://${proxy.host}/f/base:1`, `oci:${t.dir}/reset:x`]));
    assert.ok(proxy.log.some((l) => /bytes=\d+-/.test(l)), proxy.log.join('\n'));
    assert.deepEqual(await flat(`oci:${t.dir}/reset:x`), fixtureFlat);
    // The resume waits --retry-delay first, as every retry does.
    const start = Date.now();
    await ok(skiff(['copy', '-q', '--retry-delay', '1500ms', '--src-tls-verify=false', `docker://${proxy.host}/f/base:1`, `oci:${t.dir}/reset-delay:x`]));
    assert.ok(Date.now() - start >= 1500, `resumed after ${Date.now() - start} ms`);
    proxy.rule = undefined;
  });

  it('a blob read that stalls (connection open, no bytes) is given up after the read timeout and resumed with a Range request', { timeout: 60_000 }, async () => {
    proxy.rule = (req) => (req.method === 'GET' && req.url?.includes('/blobs/') && !req.headers.range ? { kind: 'stall-mid-body', after: 300_000 } : undefined);
    proxy.log.length = 0;
    const start = Date.now();
    const r = await run(process.execPath, [SKIFF, 'copy', '-q', ...fast, '--src-tls-verify=false', `docker://${proxy.host}/f/base:1`, `oci:${t.dir}/stall:x`], { env: { ...process.env, SKIFF_READ_TIMEOUT: '1' } });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(proxy.log.some((l) => /bytes=\d+-/.test(l)), proxy.log.join('\n'));
    assert.ok(Date.now() - start < 20_000, 'resumed after the 1 s read timeout, not the default');
    assert.deepEqual(await flat(`oci:${t.dir}/stall:x`), fixtureFlat);
    proxy.rule = undefined;
  });

  it('SKIFF_READ_TIMEOUT must be a number of seconds', async () => {
    const r = await run(process.execPath, [SKIFF, 'inspect', NOTLS, `docker://${proxy.host}/f/base:1`], { env: { ...process.env, SKIFF_READ_TIMEOUT: 'soon' } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /SKIFF_READ_TIMEOUT/);
  });

  it('a registry serving wrong bytes: the copy is refused and nothing is committed', async () => {
    proxy.rule = (req) => (req.method === 'GET' && req.url?.includes('/blobs/') ? { kind: 'corrupt-body' } : undefined);
    const r = await skiff(['copy', '-q', ...fast, '--src-tls-verify=false', `docker://${proxy.host}/f/base:1`, `oci:${t.dir}/wrong:x`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /digest mismatch/);
    await assert.rejects(fsp.stat(`${t.dir}/wrong`));
    proxy.rule = undefined;
  });

  it('uploads: a streamed blob of known size goes up with its Content-Length (no chunked encoding), as skopeo sends it', async () => {
    proxy.requests.length = 0;
    // A gzip layer over the one-PUT limit (4 MiB) and under the Content-Range chunk size: one streamed PATCH.
    const src = `oci:${t.dir}/known-size:x`;
    await makeLayout(`${t.dir}/known-size`, 'x', { layers: [{ files: [{ path: 'r.bin', content: randomBytes(6 << 20) }], compression: 'gzip' }] });
    await ok(skiff(['copy', '-q', '--dest-tls-verify=false', src, `docker://${proxy.host}/f/known-size:1`]));
    const layer = JSON.parse((await skiff(['inspect', '--raw', src])).stdout) as { layers: { digest: string; size: number }[] };
    const size = layer.layers[0]!.size;
    assert.ok(size > 4 << 20, `layer of ${size} bytes`);
    const patches = proxy.requests.filter((q) => q.method === 'PATCH');
    assert.equal(patches.length, 1, proxy.log.join('\n'));
    assert.equal(patches[0]!.headers['content-length'], String(size));
    assert.equal(patches[0]!.headers['transfer-encoding'], undefined);
    await skopeo('copy', '-q', '--src-tls-verify=false', `docker://${reg.host}/f/known-size:1`, `oci:${t.dir}/known-size-back:x`);
    assert.deepEqual(await flat(`oci:${t.dir}/known-size-back:x`), await flat(src));
  });

  it('uploads: a registry that stops taking a PATCH body (connection open) is given up after the read timeout; the blob is retried and lands', { timeout: 60_000 }, async () => {
    let patches = 0;
    proxy.rule = (req) => (req.method === 'PATCH' && patches++ === 0 ? { kind: 'stall-request', after: 100_000 } : undefined);
    proxy.log.length = 0;
    // A layer bigger than the sockets' buffers, which would otherwise take it all while the proxy reads nothing.
    const big = `oci:${t.dir}/big-layer:x`;
    await makeLayout(`${t.dir}/big-layer`, 'x', { layers: [{ files: [{ path: 'big.bin', content: randomBytes(24 << 20) }], compression: 'none' }] });
    const start = Date.now();
    const r = await run(process.execPath, [SKIFF, 'copy', '-q', ...fast, '--dest-tls-verify=false', big, `docker://${proxy.host}/f/stalled-up:1`], { env: { ...process.env, SKIFF_READ_TIMEOUT: '1' } });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(Date.now() - start < 20_000, 'gave up on the stalled upload after the 1 s read timeout');
    assert.ok(proxy.log.filter((l) => l.startsWith('PATCH')).length >= 2, proxy.log.join('\n'));
    proxy.rule = undefined;
    await skopeo('copy', '-q', '--src-tls-verify=false', `docker://${reg.host}/f/stalled-up:1`, `oci:${t.dir}/stalled-up-back:x`);
    assert.deepEqual(await flat(`oci:${t.dir}/stalled-up-back:x`), await flat(big));
  });

  it('a blob that fails for good stops the others at once: an upload still waiting on the registry is abandoned, not waited for', { timeout: 60_000 }, async () => {
    // A source whose layer is corrupt (digest mismatch: never retried), and a registry that never answers the
    // config's PUT: the copy must fail promptly, not after the 60 s the PUT's answer could take.
    const dir = `${t.dir}/corrupt-src`;
    await makeLayout(dir, 'x', sampleSpec(77));
    const index = JSON.parse(await fsp.readFile(`${dir}/index.json`, 'utf8')) as { manifests: { digest: string }[] };
    const manifest = JSON.parse(await fsp.readFile(`${dir}/blobs/sha256/${index.manifests[0]!.digest.slice(7)}`, 'utf8')) as { config: { digest: string }; layers: { digest: string }[] };
    const layer = `${dir}/blobs/sha256/${manifest.layers[0]!.digest.slice(7)}`;
    const bytes = await fsp.readFile(layer);
    bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] ?? 0) ^ 0xff;
    await fsp.writeFile(layer, bytes);
    const config = manifest.config.digest;
    proxy.rule = (req) => (req.method === 'PUT' && decodeURIComponent(req.url ?? '').includes(config) ? { kind: 'stall-request', after: 0 } : undefined);
    const start = Date.now();
    const r = await skiff(['copy', '-q', ...fast, '--dest-tls-verify=false', `oci:${dir}:x`, `docker://${proxy.host}/f/abandon:1`]);
    proxy.rule = undefined;
    assert.equal(r.code, 1);
    assert.match(r.stderr, /digest mismatch/);
    assert.ok(Date.now() - start < 15_000, `failed after ${Date.now() - start} ms`);
  });

  it('uploads: a reset during PATCH retries the blob; 5xx on manifest PUT retried; the image lands whole', async () => {
    let patches = 0;
    let puts = 0;
    proxy.rule = (req) => {
      if (req.method === 'PATCH' && patches++ === 0) return { kind: 'reset' };
      if (req.method === 'PUT' && req.url?.includes('/manifests/') && puts++ === 0) return { kind: 'status', status: 502 };
      return undefined;
    };
    await ok(skiff(['copy', '-q', ...fast, '--dest-tls-verify=false', '--dest-compress-format', 'zstd', fixture, `docker://${proxy.host}/f/up:1`]));
    proxy.rule = undefined;
    await skopeo('copy', '-q', '--src-tls-verify=false', `docker://${reg.host}/f/up:1`, `oci:${t.dir}/up-back:x`);
    assert.deepEqual(await flat(`oci:${t.dir}/up-back:x`), fixtureFlat);
  });

  it('chunked uploads (Content-Range) resume from the registry\'s upload status after a failed chunk', async () => {
    // 64 KiB chunks (SKIFF_UPLOAD_CHUNK_SIZE) so the fixture's layers take several; the fourth chunk request is
    // answered 503 by the proxy (the registry never sees it).
    let patches = 0;
    proxy.rule = (req) => (req.method === 'PATCH' && ++patches === 4 ? { kind: 'status', status: 503 } : undefined);
    proxy.log.length = 0;
    const env = { ...process.env, SKIFF_UPLOAD_CHUNK_SIZE: '65536' };
    const r = await run(process.execPath, [SKIFF, 'copy', '-q', ...fast, '--dest-tls-verify=false', fixture, `docker://${proxy.host}/f/chunked:1`], { env });
    assert.equal(r.code, 0, r.stderr);
    proxy.rule = undefined;
    const patchLines = proxy.log.filter((l) => l.startsWith('PATCH'));
    assert.ok(patchLines.length > 4, proxy.log.join('\n'));
    const failed = patchLines[3]!.replace(/^.*content-range=/, '');
    // After the failure: a status query (GET on the upload), then the same range again, not a restart from 0.
    const after = proxy.log.slice(proxy.log.indexOf(patchLines[3]!) + 1);
    assert.ok(after.some((l) => l.startsWith('GET /v2/f/chunked/blobs/uploads/')), proxy.log.join('\n'));
    assert.ok(after.some((l) => l.endsWith(`content-range=${failed}`)), `resumed with ${failed}:\n${proxy.log.join('\n')}`);
    await skopeo('copy', '-q', '--src-tls-verify=false', `docker://${reg.host}/f/chunked:1`, `oci:${t.dir}/chunked-back:x`);
    assert.deepEqual(await flat(`oci:${t.dir}/chunked-back:x`), fixtureFlat);
  });

  it('a push whose source is corrupt pushes no manifest', async () => {
    const bad = path.join(t.dir, 'badsrc');
    await makeBusyboxLayout(bad);
    const idx = JSON.parse(await fsp.readFile(path.join(bad, 'index.json'), 'utf8'));
    const m = JSON.parse(await fsp.readFile(path.join(bad, 'blobs/sha256', idx.manifests[0].digest.slice(7)), 'utf8'));
    const blob = path.join(bad, 'blobs/sha256', m.layers[1].digest.slice(7));
    const b = await fsp.readFile(blob);
    b[10] = (b[10] ?? 0) ^ 1;
    await fsp.writeFile(blob, b);
    const r = await skiff(['copy', '-q', ...fast, '--dest-tls-verify=false', `oci:${bad}:busybox`, `docker://${reg.host}/f/corrupt:1`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /digest mismatch/);
    const inspect = await skiff(['inspect', NOTLS, `docker://${reg.host}/f/corrupt:1`]);
    assert.equal(inspect.code, 2, 'no tag was created');
  });
});

describe('skiff sync', () => {
  let t: ReturnType<typeof tempDir>;
  let a: TestRegistry;
  let b: TestRegistry;
  before(async () => {
    t = tempDir();
    [a, b] = await Promise.all([startRegistry(), startRegistry()]);
    await makeBusyboxLayout(`${t.dir}/fixture`);
    for (const tag of ['1', '2', 'edge']) await ok(skiff(['copy', '-q', '--dest-tls-verify=false', `oci:${t.dir}/fixture:busybox`, `docker://${a.host}/team/app:${tag}`]));
  });
  after(async () => {
    await a.stop();
    await b.stop();
    t.cleanup();
  });

  it('all tags of a repository, registry to registry; a rerun only checks digests', async () => {
    await ok(skiff(['sync', '--src', 'docker', '--dest', 'docker', '--src-tls-verify=false', '--dest-tls-verify=false', `${a.host}/team/app`, `${b.host}/mirror`]));
    assert.deepEqual(JSON.parse(await skopeo('list-tags', NOTLS, `docker://${b.host}/mirror/app`)).Tags.sort(), ['1', '2', 'edge']);
    const again = await skiff(['sync', '--src', 'docker', '--dest', 'docker', '--src-tls-verify=false', '--dest-tls-verify=false', `${a.host}/team/app`, `${b.host}/mirror`]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /Synced 0 image\(s\), 3 already up to date/);
  });

  it('--scoped keeps the source path; docker -> dir -> oci round trip', async () => {
    // (skopeo refuses --scoped into a registry when the source host has a port: "host:port" is no path component.)
    await ok(skiff(['sync', '-q', '--src', 'docker', '--dest', 'dir', '--scoped', '--src-tls-verify=false', `${a.host}/team/app:1`, `${t.dir}/scoped`]));
    await fsp.stat(`${t.dir}/scoped/${a.host}/team/app:1/manifest.json`);
    await ok(skiff(['sync', '-q', '--src', 'docker', '--dest', 'dir', '--src-tls-verify=false', `${a.host}/team/app`, `${t.dir}/dirs`]));
    assert.deepEqual((await fsp.readdir(`${t.dir}/dirs`)).sort(), ['app:1', 'app:2', 'app:edge']);
    await ok(skiff(['sync', '-q', '--src', 'dir', '--dest', 'oci', `${t.dir}/dirs`, `${t.dir}/layouts`]));
    const idx = JSON.parse(await fsp.readFile(`${t.dir}/layouts/app/index.json`, 'utf8'));
    assert.deepEqual(idx.manifests.map((m: { annotations: Record<string, string> }) => m.annotations['org.opencontainers.image.ref.name']).sort(), ['1', '2', 'edge']);
  });

  it('a YAML list (skopeo\'s format) with tag regexes; --dry-run copies nothing; --keep-going reports failures', async () => {
    const yml = path.join(t.dir, 'sync.yml');
    await fsp.writeFile(yml, `${a.host}:\n  tls-verify: false\n  images:\n    team/app:\n      - "1"\n  images-by-tag-regex:\n    team/app: ^e.*$\n`);
    const dry = await ok(skiff(['sync', '--dry-run', '--src', 'yaml', '--dest', 'docker', yml, `${b.host}/yaml`]));
    assert.equal(dry.trim().split('\n').length, 2);
    assert.match(dry, new RegExp(`docker://${a.host}/team/app:edge docker://${b.host}/yaml/app:edge`));
    assert.equal((await skiff(['inspect', NOTLS, `docker://${b.host}/yaml/app:edge`])).code, 2, 'dry run copied nothing');
    await fsp.writeFile(yml, `${a.host}:\n  tls-verify: false\n  images:\n    team/app:\n      - "1"\n      - "missing"\n`);
    const r = await skiff(['sync', '--keep-going', '--dest-tls-verify=false', '--retry-delay', '10ms', '--src', 'yaml', '--dest', 'docker', yml, `${b.host}/yaml`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /1 of 2 image\(s\) failed/);
    await skopeo('inspect', NOTLS, `docker://${b.host}/yaml/app:1`);
  });
});

describe('registries.conf', () => {
  it('location rewrite, mirrors tried first (a dead one skipped), blocked registries refused — no traffic to the names used', async () => {
    const t = tempDir();
    const [a, b] = await Promise.all([startRegistry(), startRegistry()]);
    try {
      await makeBusyboxLayout(`${t.dir}/fixture`);
      await ok(skiff(['copy', '-q', '--dest-tls-verify=false', `oci:${t.dir}/fixture:busybox`, `docker://${a.host}/mirror/app:1`]));
      await ok(skiff(['copy', '-q', '--dest-tls-verify=false', `oci:${t.dir}/fixture:busybox`, `docker://${b.host}/lib/other:1`]));
      const dead = await freePort();
      const conf = path.join(t.dir, 'registries.conf');
      await fsp.writeFile(conf, [
        'unqualified-search-registries = []',
        '[[registry]]',
        'prefix = "mirrored.invalid/lib"',
        `location = "${b.host}/lib"`,
        'insecure = true',
        '[[registry.mirror]]',
        `location = "127.0.0.1:${dead}/lib"`,
        'insecure = true',
        '[[registry.mirror]]',
        `location = "${a.host}/mirror"`,
        'insecure = true',
        '[[registry]]',
        'prefix = "blocked.invalid"',
        'blocked = true',
        '',
      ].join('\n'));
      const env = { ...process.env, CONTAINERS_REGISTRIES_CONF: conf };
      const cli = (args: string[]) => run(process.execPath, [path.resolve('bin/skiff.js'), ...args], { env });
      // app:1 exists only on the mirror (registry a); other:1 only at the rewritten location (registry b).
      await ok(cli(['copy', '-q', '--retry-times', '0', 'docker://mirrored.invalid/lib/app:1', `oci:${t.dir}/from-mirror:x`]));
      await ok(cli(['copy', '-q', '--retry-times', '0', 'docker://mirrored.invalid/lib/other:1', `oci:${t.dir}/from-location:x`]));
      // Pushes never go to mirrors: the rewritten location (b) receives it.
      await ok(cli(['copy', '-q', '--retry-times', '0', `oci:${t.dir}/fixture:busybox`, 'docker://mirrored.invalid/lib/pushed:1']));
      await skopeo('inspect', NOTLS, `docker://${b.host}/lib/pushed:1`);
      const blocked = await cli(['inspect', 'docker://blocked.invalid/x/y:1']);
      assert.equal(blocked.code, 1);
      assert.match(blocked.stderr, /blocked/);
      const badConf = path.join(t.dir, 'bad.conf');
      await fsp.writeFile(badConf, '[[registry]\nprefix = 1\n');
      const bad = await run(process.execPath, [path.resolve('bin/skiff.js'), 'inspect', 'docker://x.invalid/y:1'], { env: { ...process.env, CONTAINERS_REGISTRIES_CONF: badConf } });
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /bad\.conf/);
    } finally {
      await a.stop();
      await b.stop();
      t.cleanup();
    }
  });
});
