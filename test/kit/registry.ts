/**
 * Test kit: the real CNCF distribution registry (Debian's docker-registry) on 127.0.0.1, with a temp storage root,
 * optionally behind htpasswd Basic auth, TLS (openssl self-signed), or Bearer tokens from a tiny in-test issuer.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, createSign, generateKeyPairSync, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import * as path from 'node:path';
import bcrypt from 'bcryptjs';
import { tempDir } from './run.js';

export interface RegistryOptions {
  htpasswd?: { user: string; password: string };
  tls?: boolean;
  token?: { user: string; password: string };
}

export interface TestRegistry {
  /** `127.0.0.1:PORT` */
  host: string;
  dir: string;
  /** For TLS registries: a dir with the CA (`ca.crt`), usable as --cert-dir. */
  certDir?: string;
  /** Token issuer requests seen (scopes asked for), for auth tests. */
  tokenRequests: string[];
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

function b64url(b: Buffer | string): string {
  return Buffer.from(b).toString('base64url');
}

async function waitFor(url: string, child: ChildProcess, log: () => string, insecureTls: boolean): Promise<void> {
  const { Agent, request } = await import('undici');
  const dispatcher = new Agent({ connect: { rejectUnauthorized: !insecureTls } });
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`registry exited: ${log()}`);
    try {
      const r = await request(url, { dispatcher });
      await r.body.dump();
      await dispatcher.close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`registry did not start: ${log()}`);
}

export async function startRegistry(o: RegistryOptions = {}): Promise<TestRegistry> {
  const t = tempDir('skiff-registry-');
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const lines = [
    'version: 0.1',
    'log:',
    '  level: warn',
    'storage:',
    `  filesystem:`,
    `    rootdirectory: ${path.join(t.dir, 'data')}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: ${host}`,
    `  secret: ${randomBytes(8).toString('hex')}`,
  ];
  let certDir: string | undefined;
  if (o.tls) {
    certDir = path.join(t.dir, 'certs');
    await fsp.mkdir(certDir);
    const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
      '-keyout', path.join(t.dir, 'tls.key'), '-out', path.join(certDir, 'ca.crt')], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl: ${r.stderr}`);
    lines.push('  tls:', `    certificate: ${path.join(certDir, 'ca.crt')}`, `    key: ${path.join(t.dir, 'tls.key')}`);
  }
  const tokenRequests: string[] = [];
  let issuer: Server | undefined;
  if (o.htpasswd) {
    await fsp.writeFile(path.join(t.dir, 'htpasswd'), `${o.htpasswd.user}:${bcrypt.hashSync(o.htpasswd.password, 6)}\n`);
    lines.push('auth:', '  htpasswd:', '    realm: skiff-test', `    path: ${path.join(t.dir, 'htpasswd')}`);
  }
  if (o.token) {
    // An in-test token issuer: RS256 JWTs with the signing certificate in x5c, trusted via rootcertbundle.
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    await fsp.writeFile(path.join(t.dir, 'issuer.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const r = spawnSync('openssl', ['req', '-x509', '-new', '-key', path.join(t.dir, 'issuer.key'), '-days', '2', '-subj', '/CN=skiff-test-issuer', '-out', path.join(t.dir, 'issuer.crt')], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl: ${r.stderr}`);
    const pem = await fsp.readFile(path.join(t.dir, 'issuer.crt'), 'utf8');
    const der = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
    const tokenPort = await freePort();
    const creds = o.token;
    issuer = createServer((req, res) => {
      const u = new URL(req.url ?? '/', `http://127.0.0.1:${tokenPort}`);
      const scopes = u.searchParams.getAll('scope');
      tokenRequests.push(scopes.join(' '));
      const auth = req.headers.authorization ?? '';
      const [user, pass] = Buffer.from(auth.replace(/^Basic /, ''), 'base64').toString().split(':');
      const authed = user === creds.user && pass === creds.password;
      if (auth && !authed) {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}');
        return;
      }
      const access = authed ? scopes.map((s) => {
        const [type, name, actions] = s.split(':');
        return { type, name, actions: (actions ?? '').split(',') };
      }) : [];
      const now = Math.floor(Date.now() / 1000);
      const head = { alg: 'RS256', typ: 'JWT', x5c: [der.toString('base64')] };
      const claims = { iss: 'skiff-test-issuer', sub: authed ? creds.user : '', aud: 'skiff-test-registry', exp: now + 300, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access };
      const signing = `${b64url(JSON.stringify(head))}.${b64url(JSON.stringify(claims))}`;
      const sig = createSign('RSA-SHA256').update(signing).sign(privateKey);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: `${signing}.${b64url(sig)}`, expires_in: 300, issued_at: new Date().toISOString() }));
    });
    await new Promise<void>((r) => issuer!.listen(tokenPort, '127.0.0.1', r));
    lines.push('auth:', '  token:', `    realm: http://127.0.0.1:${tokenPort}/token`, '    service: skiff-test-registry', '    issuer: skiff-test-issuer', `    rootcertbundle: ${path.join(t.dir, 'issuer.crt')}`);
    void createHash;
  }
  await fsp.writeFile(path.join(t.dir, 'config.yml'), `${lines.join('\n')}\n`);
  let log = '';
  const child = spawn('docker-registry', ['serve', path.join(t.dir, 'config.yml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (c: Buffer) => (log = (log + c.toString()).slice(-4000)));
  child.stderr!.on('data', (c: Buffer) => (log = (log + c.toString()).slice(-4000)));
  await waitFor(`${o.tls ? 'https' : 'http'}://${host}/v2/`, child, () => log, !!o.tls);
  return {
    host,
    dir: t.dir,
    ...(certDir ? { certDir } : {}),
    tokenRequests,
    async stop() {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      issuer?.close();
      t.cleanup();
    },
  };
}
