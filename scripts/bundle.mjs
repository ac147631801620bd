/**
 * `npm run build`, after tsc: bundle the CLI into dist/skiff.cjs (esbuild) and make its V8 code cache by running
 * representative commands on a tiny local image (no network). bin/skiff.js loads the two: a command starts ~45 ms
 * sooner than loading ~80 modules from dist one by one. The library and the tests use dist/ as tsc wrote it.
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { constants as h2 } from 'node:http2';
import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import { tarHeader } from '../dist/src/archive/tar-append.js';

const repo = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const out = path.join(repo, 'dist', 'skiff.cjs');
rmSync(`${out}.cache`, { force: true });

/**
 * undici's HTTP/2 client loads node:http2 as undici loads (~3 ms of every registry and daemon command), for ten
 * constants it reads at once; skiff never offers h2 (undici's allowH2 is off), so http2.connect is never called.
 * In the bundle undici gets those constants, copied from this Node's http2 now, and node:http2 itself only if
 * connect were ever called.
 */
const H2_NAMES = ['HTTP2_HEADER_AUTHORITY', 'HTTP2_HEADER_METHOD', 'HTTP2_HEADER_PATH', 'HTTP2_HEADER_SCHEME', 'HTTP2_HEADER_CONTENT_LENGTH', 'HTTP2_HEADER_EXPECT', 'HTTP2_HEADER_STATUS', 'HTTP2_HEADER_PROTOCOL', 'NGHTTP2_REFUSED_STREAM', 'NGHTTP2_CANCEL'];
const lazyHttp2 = {
  name: 'lazy-http2',
  setup(b) {
    b.onResolve({ filter: /^node:http2$/ }, (args) => (/[\\/]undici[\\/]/.test(args.importer) ? { path: 'lazy-http2', namespace: 'skiff' } : undefined));
    b.onLoad({ filter: /^lazy-http2$/, namespace: 'skiff' }, () => ({
      loader: 'js',
      contents: `module.exports = { constants: ${JSON.stringify(Object.fromEntries(H2_NAMES.map((n) => [n, h2[n]])))}, connect: (...a) => require('node:http2').connect(...a) };`,
    }));
  },
};

/**
 * Some built-in modules are loaded at their first use, not as the bundle loads: node:child_process (which loads
 * node:net and node:dgram: ~2.4 ms; commander requires it for executable subcommands, which skiff has none of),
 * node:zlib (~1.4 ms) and node:readline, on every command, most of which never spawn or (de)compress; and
 * node:crypto (~3.6 ms), which nothing needs before the first request leaves (a save's export was asked for ~4 ms
 * sooner). Each import of them gets an object whose properties (this Node's, listed now) require the module when
 * first read.
 */
const LAZY_BUILTINS = /^node:(child_process|zlib|readline|crypto)$/;
const lazyBuiltins = {
  name: 'lazy-builtins',
  setup(b) {
    b.onResolve({ filter: LAZY_BUILTINS }, (args) => (args.namespace === 'skiff' ? undefined : { path: args.path, namespace: 'skiff' }));
    b.onLoad({ filter: LAZY_BUILTINS, namespace: 'skiff' }, async (args) => {
      const keys = Object.keys(await import(args.path)).filter((k) => k !== 'default');
      const props = keys.map((k) => `${JSON.stringify(k)}: { enumerable: true, get: () => load()[${JSON.stringify(k)}] }`).join(',\n');
      return { loader: 'js', contents: `let m;\nconst load = () => (m ??= require(${JSON.stringify(args.path)}));\nmodule.exports = Object.defineProperties({}, {\n${props}\n});\n` };
    });
  },
};

await build({
  plugins: [lazyHttp2, lazyBuiltins],
  entryPoints: [path.join(repo, 'dist', 'src', 'cli', 'entry.js')],
  outfile: out,
  bundle: true,
  format: 'cjs',
  // bin/skiff.js runs the bundle as a vm.Script, which has no dynamic import(): esbuild turns the import() of an
  // external module (node:net, node:child_process, …: loaded only when needed) into a require() instead.
  supported: { 'dynamic-import': false },
  platform: 'node',
  target: 'node20',
  // Native addons stay outside, loaded from node_modules when first needed.
  external: ['zstd-napi', 'fs-ext'],
  // The modules find package.json and node_modules relative to themselves (createRequire(import.meta.url)): in the
  // bundle, relative to where the CLI's main module is in dist.
  define: { 'import.meta.url': '__skiffModuleURL' },
  banner: { js: "const __skiffModuleURL = require('node:url').pathToFileURL(require('node:path').join(__dirname, 'src', 'cli', 'main.js')).href;" },
  logLevel: 'warning',
  legalComments: 'none',
  minifyWhitespace: true,
  minifySyntax: true,
});

// bin/skiff.js reads the bundle as latin1 (half the time of utf8 for 1.5 MB): that is only the same text if it is
// all ASCII, which esbuild ensures outside regular expression literals. Check it.
const text = readFileSync(out);
const bad = text.findIndex((b) => b > 0x7f);
if (bad >= 0) throw new Error(`${out}: a non-ASCII byte at offset ${bad} (${JSON.stringify(text.subarray(Math.max(0, bad - 40), bad + 10).toString())}): write it as an escape in the source`);

// A one-layer OCI layout to exercise the copy paths.
const tmp = mkdtempSync(path.join(tmpdir(), 'skiff-train-'));
try {
  const layout = path.join(tmp, 'src');
  mkdirSync(path.join(layout, 'blobs', 'sha256'), { recursive: true });
  const put = (b) => {
    const hex = createHash('sha256').update(b).digest('hex');
    writeFileSync(path.join(layout, 'blobs', 'sha256', hex), b);
    return { digest: `sha256:${hex}`, size: b.length };
  };
  const tar = Buffer.concat([tarHeader('hello.txt', 6, 'file', 0o644), Buffer.from('hello\n'), Buffer.alloc(506 + 1024)]);
  const layer = put(gzipSync(tar));
  const config = put(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [`sha256:${createHash('sha256').update(tar).digest('hex')}`] } })));
  const manifest = put(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }] })));
  writeFileSync(path.join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(path.join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': 'x' } }] }));
  const src = `oci:${layout}:x`;
  const o = (n) => path.join(tmp, n);
  const { port, close } = await trainingRegistry();
  const reg = `docker://127.0.0.1:${port}`;
  const ctx = o('ctx');
  mkdirSync(ctx);
  writeFileSync(path.join(ctx, 'Containerfile'), 'FROM scratch\nARG V=1\nENV A=$V\nCOPY a.txt /a.txt\nLABEL x=y\nCMD ["/a"]\n');
  writeFileSync(path.join(ctx, 'a.txt'), 'a\n');
  const store = ['--root', o('store/root'), '--runroot', o('store/run'), '--storage-driver', 'overlay'];
  const runs = [
    ['--help'],
    ['copy', '-q', src, `oci:${o('oci')}:y`],
    ['copy', '-q', '--dest-compress-format', 'zstd', src, `oci:${o('zstd')}:y`],
    ['copy', '-q', src, `dir:${o('dir')}`],
    ['copy', '-q', src, `docker-archive:${o('a.tar')}:x/y:1`],
    ['copy', '-q', src, `oci-archive:${o('o.tar')}`],
    ['copy', '-q', `docker-archive:${o('a.tar')}`, `oci:${o('oci2')}:y`],
    ['inspect', src],
    ['inspect', '--raw', src],
    // Refused at once (nothing listens on port 9): loads and runs the registry client's request path.
    ['inspect', '--tls-verify=false', '--retry-times', '0', 'docker://127.0.0.1:9/x/y:1'],
    // The registry paths against a throwaway in-process registry: push, pull, registry to registry, inspect, tags.
    ['copy', '-q', '--dest-tls-verify=false', src, `${reg}/t/x:1`],
    ['copy', '-q', '--src-tls-verify=false', `${reg}/t/x:1`, `oci:${o('pulled')}:y`],
    ['copy', '-q', '--src-tls-verify=false', '--dest-tls-verify=false', `${reg}/t/x:1`, `${reg}/t/z:1`],
    ['inspect', '--tls-verify=false', `${reg}/t/x:1`],
    ['list-tags', '--tls-verify=false', `${reg}/t/x`],
    // containers-storage and the builder (as root; an unprivileged build fails early, after loading its code).
    [...store, 'copy', '-q', src, 'containers-storage:localhost/x:1'],
    [...store, 'copy', '-q', 'containers-storage:localhost/x:1', `oci:${o('fromstore')}:y`],
    [...store, 'images'],
    [...store, 'build', '-q', '-t', 'localhost/b:1', ctx],
    [...store, 'build', '-q', '-t', 'localhost/b:2', ctx],
  ];
  const child = spawn(process.execPath, [path.join(repo, 'bin', 'skiff.js')], {
    env: { ...process.env, SKIFF_CODE_CACHE_TRAIN: JSON.stringify(runs), HOME: tmp, XDG_CONFIG_HOME: o('config'), XDG_RUNTIME_DIR: o('run'), REGISTRY_AUTH_FILE: o('auth.json') },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const status = await new Promise((resolve) => child.on('close', resolve));
  await close();
  if (status !== 0) throw new Error(`making the code cache failed: ${stderr}`);
  if (process.env.SKIFF_TRAIN_LOG) process.stderr.write(stderr);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

/** Enough of the registry API (distribution spec) in memory for the training runs: pull, push, tags. */
async function trainingRegistry() {
  const blobs = new Map();
  const manifests = new Map();
  const uploads = new Map();
  const body = (req) => new Promise((resolve) => {
    const parts = [];
    req.on('data', (d) => parts.push(d));
    req.on('end', () => resolve(Buffer.concat(parts)));
  });
  const server = createServer(async (req, res) => {
    const u = new URL(req.url, 'http://localhost');
    const data = await body(req);
    const send = (status, headers = {}, payload) => {
      res.writeHead(status, { 'content-length': payload?.length ?? 0, ...headers });
      res.end(req.method === 'HEAD' ? undefined : payload);
    };
    let m;
    if (u.pathname === '/v2/') return send(200, { 'content-type': 'application/json' }, Buffer.from('{}'));
    if ((m = /^\/v2\/(.+)\/tags\/list$/.exec(u.pathname))) {
      const tags = [...manifests.keys()].filter((k) => k.startsWith(`${m[1]}:`) && !k.includes('@')).map((k) => k.slice(m[1].length + 1));
      return send(200, { 'content-type': 'application/json' }, Buffer.from(JSON.stringify({ name: m[1], tags })));
    }
    if ((m = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(u.pathname))) {
      if (req.method === 'PUT') {
        const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
        const entry = { bytes: data, type: req.headers['content-type'], digest };
        manifests.set(`${m[1]}:${m[2]}`, entry);
        manifests.set(`${m[1]}@${digest}`, entry);
        return send(201, { 'docker-content-digest': digest, location: u.pathname });
      }
      const e = manifests.get(m[2].includes(':') ? `${m[1]}@${m[2]}` : `${m[1]}:${m[2]}`);
      return e ? send(200, { 'content-type': e.type, 'docker-content-digest': e.digest }, e.bytes) : send(404);
    }
    if ((m = /^\/v2\/(.+)\/blobs\/uploads\/?$/.exec(u.pathname))) {
      const from = u.searchParams.get('mount');
      if (from && blobs.has(from)) return send(201, { 'docker-content-digest': from, location: `/v2/${m[1]}/blobs/${from}` });
      const id = String(uploads.size + 1);
      uploads.set(id, [data]);
      return send(202, { location: `/v2/${m[1]}/blobs/uploads/${id}`, range: '0-0' });
    }
    if ((m = /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/.exec(u.pathname))) {
      const parts = uploads.get(m[2]) ?? [];
      parts.push(data);
      uploads.set(m[2], parts);
      if (req.method === 'PATCH') return send(202, { location: u.pathname, range: `0-${Buffer.concat(parts).length - 1}` });
      const digest = u.searchParams.get('digest');
      blobs.set(digest, Buffer.concat(parts));
      return send(201, { 'docker-content-digest': digest, location: `/v2/${m[1]}/blobs/${digest}` });
    }
    if ((m = /^\/v2\/(.+)\/blobs\/([^/]+)$/.exec(u.pathname))) {
      const b = blobs.get(m[2]);
      return b ? send(200, { 'content-type': 'application/octet-stream', 'docker-content-digest': m[2] }, b) : send(404);
    }
    return send(404);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: server.address().port, close: () => new Promise((resolve) => server.close(resolve)) };
}
