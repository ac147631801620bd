/**
 * Test kit: makes OCI layouts from scratch with plain fs + tar-stream + zlib, independent of skiff's transports,
 * so transport tests have an outside oracle to compare with.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar-stream';

export interface FileSpec {
  path: string;
  content?: Buffer | string;
  type?: 'file' | 'dir' | 'symlink' | 'whiteout' | 'opaque';
  target?: string;
  mode?: number;
  uid?: number;
}

export interface LayerSpec {
  files: FileSpec[];
  compression?: 'gzip' | 'none';
}

export interface ImageSpec {
  layers: LayerSpec[];
  architecture?: string;
  os?: string;
  variant?: string;
  env?: string[];
  labels?: Record<string, string>;
  /** Manifest flavour: OCI (default) or Docker v2s2. */
  docker?: boolean;
  /** The config's created time (default 2024-01-01T00:00:00Z). */
  created?: string | null;
}

export const hash = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Deterministic pseudo-random bytes (incompressible-ish), so fixtures are reproducible. */
export function pseudoRandom(size: number, seed = 1): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update(`seed${seed}`).digest();
  for (let off = 0; off < size; off += 32) {
    block.copy(out, off, 0, Math.min(32, size - off));
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

export async function tarOf(files: FileSpec[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const ended = new Promise<void>((r) => pack.on('end', () => r()));
  const add = (h: Partial<tar.Header> & { name: string }, data?: Buffer): Promise<void> =>
    new Promise((res, rej) => pack.entry({ mtime: new Date(1700000000000), uid: 0, gid: 0, ...h }, data ?? Buffer.alloc(0), (e) => (e ? rej(e) : res())));
  for (const f of files) {
    const base = { name: f.path, mode: f.mode ?? 0o644, uid: f.uid ?? 0 };
    switch (f.type ?? 'file') {
      case 'dir':
        await add({ ...base, type: 'directory', mode: f.mode ?? 0o755 });
        break;
      case 'symlink':
        await add({ ...base, type: 'symlink', linkname: f.target ?? '' });
        break;
      case 'whiteout': {
        const d = path.posix.dirname(f.path);
        await add({ ...base, name: `${d === '.' ? '' : `${d}/`}.wh.${path.posix.basename(f.path)}`, type: 'file' });
        break;
      }
      case 'opaque':
        await add({ ...base, name: `${f.path.replace(/\/$/, '')}/.wh..wh..opq`, type: 'file' });
        break;
      default:
        await add({ ...base, type: 'file' }, Buffer.from(f.content ?? ''));
    }
  }
  pack.finalize();
  await ended;
  return Buffer.concat(chunks);
}

async function putBlob(dir: string, data: Buffer): Promise<string> {
  const d = hash(data);
  await fsp.mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  await fsp.writeFile(path.join(dir, 'blobs', 'sha256', d.slice(7)), data);
  return d;
}

/** Write one image's blobs into a layout dir; returns its manifest descriptor (not yet in index.json). */
export async function writeImageBlobs(dir: string, spec: ImageSpec): Promise<{ mediaType: string; digest: string; size: number; platform: Record<string, string> }> {
  const diffIDs: string[] = [];
  const layers: { mediaType: string; digest: string; size: number }[] = [];
  for (const l of spec.layers) {
    const raw = await tarOf(l.files);
    diffIDs.push(hash(raw));
    const gz = (l.compression ?? 'gzip') === 'gzip';
    const blob = gz ? gzipSync(raw) : raw;
    const mediaType = spec.docker ? (gz ? 'application/vnd.docker.image.rootfs.diff.tar.gzip' : 'application/vnd.docker.image.rootfs.diff.tar') : gz ? 'application/vnd.oci.image.layer.v1.tar+gzip' : 'application/vnd.oci.image.layer.v1.tar';
    layers.push({ mediaType, digest: await putBlob(dir, blob), size: blob.length });
  }
  const platform: Record<string, string> = { architecture: spec.architecture ?? 'amd64', os: spec.os ?? 'linux' };
  if (spec.variant) platform.variant = spec.variant;
  const config = Buffer.from(JSON.stringify({
    // (null: no created at all, as some images have.)
    ...(spec.created === null ? {} : { created: spec.created ?? '2024-01-01T00:00:00Z' }),
    ...platform,
    config: { Env: spec.env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/bin/sh'], ...(spec.labels ? { Labels: spec.labels } : {}) },
    rootfs: { type: 'layers', diff_ids: diffIDs },
    history: spec.layers.map((_, i) => ({ created: '2024-01-01T00:00:00Z', created_by: `layer ${i}` })),
  }));
  const configDesc = { mediaType: spec.docker ? 'application/vnd.docker.container.image.v1+json' : 'application/vnd.oci.image.config.v1+json', digest: await putBlob(dir, config), size: config.length };
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: spec.docker ? 'application/vnd.docker.distribution.manifest.v2+json' : 'application/vnd.oci.image.manifest.v1+json',
    config: configDesc,
    layers,
  }, null, 2));
  const mediaType = spec.docker ? 'application/vnd.docker.distribution.manifest.v2+json' : 'application/vnd.oci.image.manifest.v1+json';
  return { mediaType, digest: await putBlob(dir, manifest), size: manifest.length, platform };
}

async function writeIndex(dir: string, entries: object[]): Promise<void> {
  await fsp.writeFile(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await fsp.writeFile(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: entries }));
}

/** An OCI layout at `dir` holding one image named `name`. Returns the manifest digest. */
export async function makeLayout(dir: string, name: string, spec: ImageSpec): Promise<string> {
  const d = await writeImageBlobs(dir, spec);
  await writeIndex(dir, [{ mediaType: d.mediaType, digest: d.digest, size: d.size, annotations: { 'org.opencontainers.image.ref.name': name } }]);
  return d.digest;
}

/** An OCI layout whose `name` is an index over several platform images. Returns the index digest. */
export async function makeMultiPlatformLayout(dir: string, name: string, specs: ImageSpec[], docker = false): Promise<string> {
  const children = [];
  for (const s of specs) children.push(await writeImageBlobs(dir, { ...s, docker }));
  const index = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: docker ? 'application/vnd.docker.distribution.manifest.list.v2+json' : 'application/vnd.oci.image.index.v1+json',
    manifests: children,
  }));
  const digest = await putBlob(dir, index);
  await writeIndex(dir, [{ mediaType: docker ? 'application/vnd.docker.distribution.manifest.list.v2+json' : 'application/vnd.oci.image.index.v1+json', digest, size: index.length, annotations: { 'org.opencontainers.image.ref.name': name } }]);
  return digest;
}

/** A two-layer image with a few of every entry kind, small enough for unit tests. */
export function sampleSpec(seed = 1): ImageSpec {
  return {
    layers: [
      { files: [
        { path: 'bin/', type: 'dir' },
        { path: 'bin/tool', content: pseudoRandom(40000, seed), mode: 0o755 },
        { path: 'etc/', type: 'dir' },
        { path: 'etc/hello', content: 'hello\n' },
        { path: 'etc/gone', content: 'to be deleted\n' },
        { path: 'etc/link', type: 'symlink', target: 'hello' },
        { path: 'var/', type: 'dir' },
        { path: 'var/cache/', type: 'dir' },
        { path: 'var/cache/x', content: 'x' },
      ] },
      { files: [
        { path: 'etc/', type: 'dir' },
        { path: 'etc/gone', type: 'whiteout' },
        { path: 'etc/new', content: `seed ${seed}\n`, uid: 1000 },
        { path: 'var/cache/', type: 'opaque' },
      ] },
    ],
    labels: { 'org.example.seed': String(seed) },
  };
}

/**
 * An image whose one layer is uncompressed and made of this machine's own files (libraries, programs, documents
 * under /usr, in path order, up to `bytes`): what real layers hold. The generated layers above are half random,
 * half one repeated sentence, which any compressor gets through quickly; recompressing real files is where gzip
 * and zstd speeds differ. (Both tools read the same layer; it differs from machine to machine.)
 */
export async function makeRealFilesImage(dir: string, bytes: number): Promise<void> {
  const files: string[] = [];
  const seen = new Set<number>();
  let total = 0;
  const walk = async (d: string): Promise<void> => {
    let entries;
    try {
      entries = (await fsp.readdir(d, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    } catch {
      return;
    }
    for (const e of entries) {
      if (total >= bytes * 0.99) return;
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        const st = await fsp.stat(p).catch(() => undefined);
        // (Hard links to a file already taken would go into the tar as links, not data.)
        if (!st || seen.has(st.ino) || total + st.size > bytes) continue;
        seen.add(st.ino);
        files.push(p.slice(1));
        total += st.size;
      }
    }
  };
  for (const d of ['/usr/lib/x86_64-linux-gnu', '/usr/lib', '/usr/bin', '/usr/share']) await walk(d);
  await fsp.mkdir(path.join(dir, 'blobs/sha256'), { recursive: true });
  const list = path.join(dir, 'files');
  await fsp.writeFile(list, `${files.join('\n')}\n`);
  const tarFile = path.join(dir, 'layer.tar');
  const r = spawnSync('tar', ['-cf', tarFile, '-C', '/', '--no-recursion', '-T', list]);
  if (r.status !== 0) throw new Error(`tar: ${r.stderr}`);
  await fsp.rm(list);
  const h = createHash('sha256');
  for await (const c of createReadStream(tarFile)) h.update(c as Buffer);
  const d = h.digest('hex');
  const size = (await fsp.stat(tarFile)).size;
  await fsp.rename(tarFile, path.join(dir, 'blobs/sha256', d));
  const put = async (b: Buffer) => {
    const x = createHash('sha256').update(b).digest('hex');
    await fsp.writeFile(path.join(dir, 'blobs/sha256', x), b);
    return { digest: `sha256:${x}`, size: b.length };
  };
  const config = await put(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [`sha256:${d}`] } })));
  const manifest = await put(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${d}`, size }] })));
  await fsp.writeFile(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await fsp.writeFile(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': 'bench' } }] }));
}
