/**
 * docker-daemon: against podman's Docker-compatible API (`podman system service`, temp storage), the only Engine
 * API these machines run: both directions, flattened filesystems compared, DOCKER_HOST, and the failure modes.
 */
import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { makeBusyboxLayout } from '../kit/fixtures.js';
import { makeLayout, pseudoRandom } from '../kit/image.js';
import { ok, run, skiff, SKIFF, tempDir } from '../kit/run.js';
import { flatRef as flat, type Flat } from '../kit/validate.js';
import { startPodmanService, type PodmanService } from '../kit/podman.js';


describe('docker-daemon via podman system service', () => {
  let t: ReturnType<typeof tempDir>;
  let svc: PodmanService;
  let sock: string;
  let fixtureFlat: Flat;
  before(async () => {
    t = tempDir();
    svc = await startPodmanService(t.dir);
    sock = svc.host.slice('unix://'.length);
    await makeBusyboxLayout(`${t.dir}/fixture`);
    fixtureFlat = await flat(`oci:${t.dir}/fixture:busybox`);
  });
  after(async () => {
    await svc.stop();
    t.cleanup();
  });
  /** For the fault-injecting proxies below: pass a request on to podman's socket as it is, and its answer back. */
  const forward = (req: IncomingMessage, res: ServerResponse): void => {
    const up = httpRequest({ socketPath: sock, method: req.method, path: req.url, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
    });
    req.pipe(up);
  };

  it('skiff loads an image into the daemon; podman lists it; skiff and skopeo read it back identical', async () => {
    const r = await skiff(['copy', '-q', '--dest-daemon-host', `unix://${sock}`, `oci:${t.dir}/fixture:busybox`, 'docker-daemon:localhost/app:1']);
    assert.equal(r.code, 0, r.stderr);
    const images = await run('podman', [...svc.storeFlags, 'images', '--format', '{{.Repository}}:{{.Tag}}']);
    assert.match(images.stdout, /localhost\/app:1/);
    // --additional-tag: loaded under the further names too.
    await ok(skiff(['copy', '-q', '--dest-daemon-host', `unix://${sock}`, '--additional-tag', 'localhost/app:also', `oci:${t.dir}/fixture:busybox`, 'docker-daemon:localhost/app:2']));
    const more = await run('podman', [...svc.storeFlags, 'images', '--format', '{{.Repository}}:{{.Tag}}']);
    assert.match(more.stdout, /localhost\/app:2/);
    assert.match(more.stdout, /localhost\/app:also/);
    const back = await skiff(['copy', '-q', '--src-daemon-host', `unix://${sock}`, 'docker-daemon:localhost/app:1', `oci:${t.dir}/back:x`]);
    assert.equal(back.code, 0, back.stderr);
    assert.deepEqual(await flat(`oci:${t.dir}/back:x`), fixtureFlat);
    const sk = await run('skopeo', ['copy', '-q', '--src-daemon-host', `unix://${sock}`, 'docker-daemon:localhost/app:1', `oci:${t.dir}/sk:x`]);
    assert.equal(sk.code, 0, sk.stderr);
    assert.deepEqual(await flat(`oci:${t.dir}/sk:x`), fixtureFlat);
    // Into a docker-archive, both write the same bytes: blobs in the manifest's order (the export is a local file by
    // then), not as they finish (a small config before a large layer).
    await makeLayout(`${t.dir}/two`, 'img', { layers: [3, 4].map((seed) => ({ files: [{ path: `big${seed}`, content: pseudoRandom(6 << 20, seed) }] })) });
    await ok(skiff(['copy', '-q', '--dest-daemon-host', `unix://${sock}`, `oci:${t.dir}/two:img`, 'docker-daemon:localhost/two:1']));
    await ok(run('skopeo', ['copy', '-q', '--src-daemon-host', `unix://${sock}`, 'docker-daemon:localhost/two:1', `docker-archive:${t.dir}/two-sk.tar:localhost/two:1`]));
    await ok(skiff(['copy', '-q', '--src-daemon-host', `unix://${sock}`, 'docker-daemon:localhost/two:1', `docker-archive:${t.dir}/two-mine.tar:localhost/two:1`]));
    assert.ok((await fsp.readFile(`${t.dir}/two-mine.tar`)).equals(await fsp.readFile(`${t.dir}/two-sk.tar`)));
  });

  it('reads what skopeo loaded, by name and by image ID, with DOCKER_HOST', async () => {
    const sk = await run('skopeo', ['copy', '-q', '--dest-daemon-host', `unix://${sock}`, `oci:${t.dir}/fixture:busybox`, 'docker-daemon:localhost/by-skopeo:2']);
    assert.equal(sk.code, 0, sk.stderr);
    const env = { ...process.env, DOCKER_HOST: `unix://${sock}` };
    const inspect = await run(process.execPath, [SKIFF, 'inspect', 'docker-daemon:localhost/by-skopeo:2'], { env });
    assert.equal(inspect.code, 0, inspect.stderr);
    const config = await run(process.execPath, [SKIFF, 'inspect', '--config', '--raw', 'docker-daemon:localhost/by-skopeo:2'], { env });
    const id = `sha256:${JSON.parse(await run('podman', [...svc.storeFlags, 'image', 'inspect', 'localhost/by-skopeo:2']).then((r) => r.stdout))[0].Id}`;
    assert.ok(config.stdout.length > 0);
    const byId = await run(process.execPath, [SKIFF, 'copy', '-q', `docker-daemon:${id}`, `oci:${t.dir}/by-id:x`], { env });
    assert.equal(byId.code, 0, byId.stderr);
    assert.deepEqual(await flat(`oci:${t.dir}/by-id:x`), fixtureFlat);
  });

  it('skiff build --output type=docker loads the built image into the daemon (DOCKER_HOST)', async () => {
    const g = ['--root', `${t.dir}/broot`, '--runroot', `${t.dir}/brun`];
    const env = { ...process.env, DOCKER_HOST: `unix://${sock}` };
    await fsp.mkdir(`${t.dir}/bctx`, { recursive: true });
    await fsp.writeFile(`${t.dir}/bctx/Containerfile`, 'FROM scratch\nCOPY hello.txt /hello.txt\nCMD ["/hello.txt"]\n');
    await fsp.writeFile(`${t.dir}/bctx/hello.txt`, 'hello daemon\n');
    const r = await run(process.execPath, [SKIFF, ...g, 'build', '-q', '-t', 'localhost/built:1', '--output', 'type=docker', `${t.dir}/bctx`], { env });
    assert.equal(r.code, 0, r.stderr);
    const images = await run('podman', [...svc.storeFlags, 'images', '--format', '{{.Repository}}:{{.Tag}}']);
    assert.match(images.stdout, /localhost\/built:1/);
    const fromDaemon = await flat('docker-daemon:localhost/built:1', { daemonHost: `unix://${sock}` });
    assert.deepEqual(fromDaemon, await flat(`containers-storage:[overlay@${t.dir}/broot+${t.dir}/brun]localhost/built:1`));
    const noTag = await run(process.execPath, [SKIFF, ...g, 'build', '-q', '--output', 'type=docker', `${t.dir}/bctx`], { env });
    assert.equal(noTag.code, 1);
    assert.match(noTag.stderr, /give -t/);
  });

  it('a load that fails mid-copy (corrupt source blob) loads nothing and does not hang', async () => {
    await fsp.cp(`${t.dir}/fixture`, `${t.dir}/corrupt`, { recursive: true });
    const index = JSON.parse(await fsp.readFile(`${t.dir}/corrupt/index.json`, 'utf8')) as { manifests: { digest: string }[] };
    const manifest = JSON.parse(await fsp.readFile(`${t.dir}/corrupt/blobs/sha256/${index.manifests[0]!.digest.slice(7)}`, 'utf8')) as { layers: { digest: string }[] };
    const blob = `${t.dir}/corrupt/blobs/sha256/${manifest.layers.at(-1)!.digest.slice(7)}`;
    const bytes = await fsp.readFile(blob);
    const mid = Math.floor(bytes.length / 2);
    bytes[mid] = bytes[mid]! ^ 0xff;
    await fsp.writeFile(blob, bytes);
    const r = await skiff(['copy', '-q', '--dest-daemon-host', `unix://${sock}`, `oci:${t.dir}/corrupt:busybox`, 'docker-daemon:localhost/corrupt:1']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /digest mismatch|invalid|corrupt|unexpected end/i);
    const images = await run('podman', [...svc.storeFlags, 'images', '--format', '{{.Repository}}:{{.Tag}}']);
    assert.doesNotMatch(images.stdout, /localhost\/corrupt/);
  });

  it('a missing image: exit 2, clear message, nothing written at the destination', async () => {
    const r = await skiff(['copy', '-q', '--src-daemon-host', `unix://${sock}`, 'docker-daemon:localhost/nope:1', `oci:${t.dir}/missing:x`]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /nope/);
    await assert.rejects(fsp.stat(`${t.dir}/missing`));
  });

  it('a daemon whose /_ping sends no API-Version: the version comes from /version, and every request uses it; over unix and plain tcp', async () => {
    // A proxy in front of podman's socket (fault injection on the real daemon): /_ping loses its API-Version header,
    // /version says 1.40; what skiff then asks for is recorded.
    const proxySock = `${t.dir}/apiver.sock`;
    const seen: string[] = [];
    const proxy = createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      if (req.method === 'GET' && /\/get$/.test(req.url ?? '')) seen.push(`  Host: ${req.headers.host}`);
      const up = httpRequest({ socketPath: sock, method: req.method, path: req.url, headers: req.headers }, (ur) => {
        const headers = { ...ur.headers };
        if (req.url === '/_ping') delete headers['api-version'];
        if (req.url === '/version') {
          const parts: Buffer[] = [];
          ur.on('data', (c: Buffer) => parts.push(c));
          ur.on('end', () => {
            const body = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.concat(parts).toString()), ApiVersion: '1.40' }));
            res.writeHead(ur.statusCode ?? 502, { ...headers, 'content-length': String(body.length) });
            res.end(body);
          });
          return;
        }
        res.writeHead(ur.statusCode ?? 502, headers);
        ur.pipe(res);
      });
      req.pipe(up);
    });
    await new Promise<void>((r) => proxy.listen(proxySock, r));
    // The same proxy over tcp: a daemon at tcp://HOST:PORT without TLS.
    const tcpProxy = createServer((req, res) => proxy.emit('request', req, res));
    await new Promise<void>((r) => tcpProxy.listen(0, '127.0.0.1', r));
    const tcpHost = `tcp://127.0.0.1:${(tcpProxy.address() as { port: number }).port}`;
    try {
      await ok(skiff(['copy', '-q', '--dest-daemon-host', `unix://${proxySock}`, `oci:${t.dir}/fixture:busybox`, 'docker-daemon:localhost/apiver:1']));
      await ok(skiff(['copy', '-q', '--src-daemon-host', `unix://${proxySock}`, 'docker-daemon:localhost/apiver:1', `oci:${t.dir}/apiver-back:x`]));
      assert.deepEqual(await flat(`oci:${t.dir}/apiver-back:x`), fixtureFlat);
      await ok(skiff(['copy', '-q', '--src-daemon-host', tcpHost, 'docker-daemon:localhost/apiver:1', `oci:${t.dir}/apiver-tcp:x`]));
      assert.deepEqual(await flat(`oci:${t.dir}/apiver-tcp:x`), fixtureFlat);
      assert.ok(seen.includes('GET /version'), seen.join('\n'));
      assert.ok(seen.includes(`  Host: ${tcpHost.slice(6)}`), seen.join('\n'));
      const api = seen.filter((l) => !/ \/(_ping|version)$/.test(l) && !l.startsWith('  Host'));
      assert.ok(api.length >= 3, seen.join('\n'));
      for (const l of api) assert.match(l, / \/v1\.40\//, seen.join('\n'));
    } finally {
      proxy.close();
      tcpProxy.close();
    }
  });

  it('an export corrupted on the way (a byte of a layer flipped): digest mismatch, exit 1, nothing at the destination', async () => {
    // A proxy in front of podman (fault injection on the real daemon) flips one byte 100 KB into the export, inside
    // the first layer (busybox's, ~1 MB: its digest is checked on skiff's hashing thread, hash-worker.ts).
    const badSock = `${t.dir}/flip.sock`;
    const proxy = createServer((req, res) => {
      if (!(req.method === 'GET' && /\/get$/.test(req.url ?? ''))) return forward(req, res);
      const up = httpRequest({ socketPath: sock, method: req.method, path: req.url, headers: req.headers }, (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        let at = 0;
        ur.on('data', (c: Buffer) => {
          const i = 100_000 - at;
          if (i >= 0 && i < c.length) c[i] = c[i]! ^ 0x01;
          at += c.length;
          res.write(c);
        });
        ur.on('end', () => res.end());
      });
      req.pipe(up);
    });
    await new Promise<void>((r) => proxy.listen(badSock, r));
    try {
      await ok(skiff(['copy', '-q', '--dest-daemon-host', `unix://${sock}`, `oci:${t.dir}/fixture:busybox`, 'docker-daemon:localhost/flip:1']));
      const tmp = `${t.dir}/flip-tmp`;
      await fsp.mkdir(tmp);
      for (const dest of [`oci:${t.dir}/flipped:x`, `docker-archive:${t.dir}/flipped.tar`]) {
        const r = await run(process.execPath, [SKIFF, 'copy', '-q', '--src-daemon-host', `unix://${badSock}`, 'docker-daemon:localhost/flip:1', dest], { env: { ...process.env, TMPDIR: tmp } });
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, /digest mismatch/);
        assert.deepEqual(await fsp.readdir(tmp), []);
      }
      assert.deepEqual((await fsp.readdir(t.dir)).filter((f) => f.startsWith('flipped') || f.startsWith('.flipped')), []);
    } finally {
      proxy.close();
    }
  });

  it('a daemon that no longer serves old API versions (as Docker 29: API 1.52, minimum 1.44): save and load speak its version', async () => {
    // A proxy in front of podman (fault injection on the real daemon) that answers as Docker 29 does: /_ping says
    // API-Version 1.52, and a request for a version below 1.44 gets Docker's 400. skiff asked for 1.41 whatever the
    // daemon said, and could do nothing with such a daemon.
    const proxySock = `${t.dir}/docker29.sock`;
    const seen: string[] = [];
    const proxy = createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      const m = /^\/v1\.(\d+)\//.exec(req.url ?? '');
      if (m && Number(m[1]) < 44) {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ message: `client version 1.${m[1]} is too old. Minimum supported API version is 1.44, please upgrade your client to a newer version` }));
        return;
      }
      const up = httpRequest({ socketPath: sock, method: req.method, path: req.url, headers: req.headers }, (ur) => {
        res.writeHead(ur.statusCode ?? 502, { ...ur.headers, ...(req.url === '/_ping' ? { 'api-version': '1.52' } : {}) });
        ur.pipe(res);
      });
      req.pipe(up);
    });
    await new Promise<void>((r) => proxy.listen(proxySock, r));
    try {
      await ok(skiff(['copy', '-q', '--dest-daemon-host', `unix://${proxySock}`, `oci:${t.dir}/fixture:busybox`, 'docker-daemon:localhost/docker29:1']));
      await ok(skiff(['copy', '-q', '--src-daemon-host', `unix://${proxySock}`, 'docker-daemon:localhost/docker29:1', `oci:${t.dir}/docker29-back:x`]));
      assert.deepEqual(await flat(`oci:${t.dir}/docker29-back:x`), fixtureFlat);
      const api = seen.filter((l) => !l.endsWith(' /_ping'));
      assert.ok(api.some((l) => l.endsWith('/get')) && api.some((l) => l.includes('/images/load')), seen.join('\n'));
      for (const l of api) assert.match(l, / \/v1\.52\//, seen.join('\n'));
    } finally {
      proxy.close();
    }
  });

  it('Ctrl-C while the export arrives: exit 130 at once, the spooled export removed, nothing at the destination; a stalled export is given up after SKIFF_READ_TIMEOUT', async () => {
    // A proxy in front of podman (fault injection on the real daemon) whose export sends a start and then stalls:
    // without the interrupt reaching the download, skiff waited for an end that never comes.
    const stallSock = `${t.dir}/stall.sock`;
    const proxy = createServer((req, res) => {
      if (req.method === 'GET' && /\/get$/.test(req.url ?? '')) {
        res.writeHead(200, { 'content-type': 'application/x-tar' });
        res.write(Buffer.alloc(3 << 20));
        return;
      }
      forward(req, res);
    });
    await new Promise<void>((r) => proxy.listen(stallSock, r));
    const tmp = `${t.dir}/int-tmp`;
    await fsp.mkdir(tmp);
    try {
      await ok(skiff(['copy', '-q', '--dest-daemon-host', `unix://${sock}`, `oci:${t.dir}/fixture:busybox`, 'docker-daemon:localhost/int:1']));
      const child = spawn(process.execPath, [SKIFF, 'copy', '-q', '--src-daemon-host', `unix://${stallSock}`, 'docker-daemon:localhost/int:1', `oci:${t.dir}/int-out:x`], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, TMPDIR: tmp } });
      let stderr = '';
      child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
      // Interrupted once the export has started landing in the spool file.
      const spooling = async (): Promise<boolean> => {
        for (const d of await fsp.readdir(tmp)) if ((await fsp.stat(`${tmp}/${d}/image.tar`).catch(() => undefined))?.size) return true;
        return false;
      };
      for (let i = 0; i < 400 && !(await spooling()); i++) await new Promise((r) => setTimeout(r, 25));
      assert.ok(await spooling(), 'the export started arriving');
      const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
      const t0 = Date.now();
      child.kill('SIGINT');
      const timeout = new Promise<'hung'>((r) => setTimeout(() => r('hung'), 10_000).unref());
      const code = await Promise.race([exited, timeout]);
      if (code === 'hung') child.kill('SIGKILL');
      assert.equal(code, 130, stderr);
      assert.ok(Date.now() - t0 < 5000, `exited ${Date.now() - t0} ms after the interrupt`);
      assert.match(stderr, /interrupted/);
      assert.deepEqual(await fsp.readdir(tmp), []);
      assert.deepEqual((await fsp.readdir(t.dir)).filter((n) => n.includes('int-out')), []);
      // Left alone, a stalled export is given up after SKIFF_READ_TIMEOUT, the same way.
      const started = Date.now();
      const left = spawn(process.execPath, [SKIFF, 'copy', '-q', '--src-daemon-host', `unix://${stallSock}`, 'docker-daemon:localhost/int:1', `oci:${t.dir}/int-out:x`], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, TMPDIR: tmp, SKIFF_READ_TIMEOUT: '1' } });
      const stalled = { code: null as number | null | 'hung', stderr: '' };
      left.stderr!.on('data', (c: Buffer) => (stalled.stderr += c.toString()));
      // (Killed if it hangs, so that a regression fails here instead of holding the suite forever.)
      const guard = setTimeout(() => left.kill('SIGKILL'), 15_000);
      stalled.code = await new Promise<number | null>((r) => left.on('exit', (c) => r(c)));
      clearTimeout(guard);
      assert.equal(stalled.code, 1, stalled.stderr);
      assert.match(stalled.stderr, /reading from the Docker daemon at unix:\/\/.*stall\.sock: nothing received for 1 s/);
      assert.ok(Date.now() - started < 8000, `gave up after ${Date.now() - started} ms`);
      assert.deepEqual(await fsp.readdir(tmp), []);
      assert.deepEqual((await fsp.readdir(t.dir)).filter((n) => n.includes('int-out')), []);
    } finally {
      proxy.close();
    }
  });

  it('a daemon that stops taking a load: given up after SKIFF_READ_TIMEOUT, nothing loaded', async () => {
    // A proxy that takes the load request and then reads nothing more of it (fault injection in front of podman).
    const stuckSock = `${t.dir}/stuck.sock`;
    const proxy = createServer((req, res) => {
      if (req.method === 'POST' && /\/images\/load/.test(req.url ?? '')) {
        req.pause();
        return;
      }
      forward(req, res);
    });
    await new Promise<void>((r) => proxy.listen(stuckSock, r));
    const big = `${t.dir}/stuck-src`;
    await makeLayout(big, 'img', { layers: [{ files: [{ path: 'f', content: pseudoRandom(8 << 20, 7) }] }] });
    try {
      const started = Date.now();
      const child = spawn(process.execPath, [SKIFF, 'copy', '-q', '--dest-daemon-host', `unix://${stuckSock}`, `oci:${big}:img`, 'docker-daemon:localhost/stuck:1'], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, SKIFF_READ_TIMEOUT: '1' } });
      let stderr = '';
      child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
      // (Killed if it hangs, so that a regression fails here instead of holding the suite forever.)
      const guard = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
      clearTimeout(guard);
      assert.equal(code, 1, stderr);
      assert.match(stderr, /it took nothing for 1 s/);
      assert.ok(Date.now() - started < 10_000, `gave up after ${Date.now() - started} ms`);
      const images = await run('podman', [...svc.storeFlags, 'images', '--format', '{{.Repository}}:{{.Tag}}']);
      assert.doesNotMatch(images.stdout, /stuck/);
    } finally {
      proxy.close();
    }
  });

  it('a daemon at tcp:// with DOCKER_TLS_VERIFY and DOCKER_CERT_PATH: both directions over mutual TLS', async () => {
    // podman serves only plain sockets: in front of it, a TLS proxy that wants a client certificate, as a Docker
    // daemon with --tlsverify does. Its certificate is its own CA (ca.pem); the client's is in cert.pem/key.pem.
    const certs = `${t.dir}/docker-certs`;
    await fsp.mkdir(certs);
    const openssl = (args: string[]): void => {
      const r = spawnSync('openssl', args, { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
    };
    openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', `${t.dir}/server.key`, '-out', `${certs}/ca.pem`]);
    openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=skiff-client', '-keyout', `${certs}/key.pem`, '-out', `${certs}/cert.pem`]);
    const clients: string[] = [];
    const proxy = createHttpsServer({ key: await fsp.readFile(`${t.dir}/server.key`), cert: await fsp.readFile(`${certs}/ca.pem`), ca: await fsp.readFile(`${certs}/cert.pem`), requestCert: true, rejectUnauthorized: true }, (req, res) => {
      clients.push(`${(req.socket as import('node:tls').TLSSocket).getPeerCertificate().subject?.CN} ${req.method} ${req.url}`);
      forward(req, res);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const host = `tcp://127.0.0.1:${(proxy.address() as { port: number }).port}`;
    const env = { ...process.env, DOCKER_HOST: host, DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: certs };
    try {
      const load = await run(process.execPath, [SKIFF, 'copy', '-q', `oci:${t.dir}/fixture:busybox`, 'docker-daemon:localhost/tls:1'], { env });
      assert.equal(load.code, 0, load.stderr);
      const save = await run(process.execPath, [SKIFF, 'copy', '-q', 'docker-daemon:localhost/tls:1', `oci:${t.dir}/tls-back:x`], { env });
      assert.equal(save.code, 0, save.stderr);
      assert.deepEqual(await flat(`oci:${t.dir}/tls-back:x`), fixtureFlat);
      assert.ok(clients.some((c) => /^skiff-client POST \/v[\d.]+\/images\/load/.test(c)), clients.join('\n'));
      assert.ok(clients.some((c) => /^skiff-client GET \/v[\d.]+\/images\/.*\/get$/.test(c)), clients.join('\n'));
      // A client certificate the daemon does not trust: it refuses the connection, and the error says where to look.
      openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=stranger', '-keyout', `${certs}/key.pem`, '-out', `${certs}/cert.pem`]);
      const refused = await run(process.execPath, [SKIFF, 'copy', '-q', 'docker-daemon:localhost/tls:1', `oci:${t.dir}/tls-no:x`], { env });
      assert.equal(refused.code, 1, refused.stderr);
      assert.match(refused.stderr, new RegExp(`cannot connect to the Docker daemon at ${host.replace(/[.]/g, '\\.')}: .*DOCKER_CERT_PATH`));
      // A DOCKER_CERT_PATH without the files: said before anything is sent.
      await fsp.rm(`${certs}/cert.pem`);
      const before = clients.length;
      const missing = await run(process.execPath, [SKIFF, 'copy', '-q', 'docker-daemon:localhost/tls:1', `oci:${t.dir}/tls-no:x`], { env });
      assert.notEqual(missing.code, 0);
      assert.match(missing.stderr, /DOCKER_TLS_VERIFY is set: cannot read .*cert\.pem \(ENOENT\)/);
      assert.equal(clients.length, before, 'nothing was sent to the daemon');
      assert.deepEqual((await fsp.readdir(t.dir)).filter((n) => n.startsWith('tls-no')), []);
    } finally {
      proxy.close();
    }
  });

  it('no daemon: a clear error naming the socket', async () => {
    const r = await skiff(['inspect', '--daemon-host', `unix://${t.dir}/absent.sock`, 'docker-daemon:localhost/app:1']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`cannot connect to the Docker daemon at unix://${t.dir}/absent\\.sock`));
  });
});
