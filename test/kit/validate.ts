/** The oracle of transport tests: re-hash everything an ImageSource serves, and flatten its filesystem. */
import { createHash } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { Writable, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import * as tar from 'tar-stream';
import { DecompressStream } from 'zstd-napi';
import type { ImageSource, SourceOptions } from '../../src/core/image.js';
import { parseImageRef } from '../../src/core/ref.js';
import { transports } from '../../transports/index.js';
import { parseManifest, type Descriptor, type ImageManifest } from '../../src/core/manifest.js';
import { readConfig, resolveImage } from '../../src/core/inspect.js';
import { detectCompression, peek } from '../../src/archive/compression.js';

async function hashStream(s: Readable): Promise<{ digest: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  await pipeline(s, new Writable({ write(c: Buffer, _e, cb) { h.update(c); size += c.length; cb(); } }));
  return { digest: `sha256:${h.digest('hex')}`, size };
}

async function uncompressed(src: ImageSource, d: Descriptor): Promise<Readable> {
  const s = await src.getBlob(d);
  const c = detectCompression(await peek(s, 8));
  if (c === 'gzip') return s.pipe(createGunzip());
  if (c === 'zstd') return s.pipe(new DecompressStream());
  return s;
}

async function validateOne(src: ImageSource, m: ImageManifest): Promise<void> {
  const { config } = await readConfig(src, m);
  if (config.rootfs.diff_ids.length !== m.layers.length) throw new Error('diff_ids count differs from layers');
  for (const [i, l] of m.layers.entries()) {
    const got = await hashStream(await src.getBlob(l));
    if (got.digest !== l.digest || got.size !== l.size) throw new Error(`layer ${i}: stored ${got.digest}/${got.size}, manifest says ${l.digest}/${l.size}`);
    const diff = await hashStream(await uncompressed(src, l));
    if (diff.digest !== config.rootfs.diff_ids[i]) throw new Error(`layer ${i}: diffID ${diff.digest}, config says ${config.rootfs.diff_ids[i]}`);
  }
}

/** Re-hash every manifest, config and layer (compressed and uncompressed); throws on the first inconsistency. */
export async function validateImage(src: ImageSource): Promise<{ images: number }> {
  const top = await src.getManifest();
  const parsed = parseManifest(top.bytes, top.mediaType);
  if (parsed.kind === 'image') {
    await validateOne(src, parsed);
    return { images: 1 };
  }
  for (const d of parsed.manifests) {
    const raw = await src.getManifest(d.digest);
    const h = createHash('sha256').update(raw.bytes).digest('hex');
    if (`sha256:${h}` !== d.digest || raw.bytes.length !== d.size) throw new Error(`index child ${d.digest} does not match its bytes`);
    const m = parseManifest(raw.bytes, raw.mediaType);
    if (m.kind !== 'image') throw new Error('nested index');
    await validateOne(src, m);
  }
  return { images: parsed.manifests.length };
}

export type Flat = Map<string, string>;

/** Apply the image's layers in order (whiteouts and opaque dirs honoured) and describe every path that remains. */
export async function flattenImage(src: ImageSource, platform?: { architecture?: string }): Promise<Flat> {
  const { manifest } = await resolveImage(src, platform);
  return flattenLayers(manifest.layers.map((l) => () => uncompressed(src, l)));
}

export async function flattenLayers(layers: (() => Promise<Readable>)[]): Promise<Flat> {
  const fs: Flat = new Map();
  for (const open of layers) {
    const ex = tar.extract();
    const done = new Promise<void>((resolve, reject) => {
      ex.on('entry', (h, stream, next) => {
        const name = h.name.replace(/^\.\//, '').replace(/\/$/, '');
        const dir = name.includes('/') ? name.slice(0, name.lastIndexOf('/')) : '';
        const base = name.slice(name.lastIndexOf('/') + 1);
        const h2 = createHash('sha256');
        stream.on('data', (c: unknown) => h2.update(c as Buffer));
        stream.on('end', () => {
          if (base === '.wh..wh..opq') {
            for (const k of [...fs.keys()]) if (k.startsWith(`${dir}/`)) fs.delete(k);
          } else if (base.startsWith('.wh.')) {
            const victim = `${dir ? `${dir}/` : ''}${base.slice(4)}`;
            for (const k of [...fs.keys()]) if (k === victim || k.startsWith(`${victim}/`)) fs.delete(k);
          } else {
            const xattrs = Object.entries(h.pax ?? {}).filter(([k]) => k.startsWith('SCHILY.xattr.')).sort(([a], [b]) => (a < b ? -1 : 1));
            const xdesc = xattrs.map(([k, v]) => ` ${k.slice(13)}=${Buffer.from(v, 'latin1').toString('hex')}`).join('');
            const desc = `${h.type} mode=${((h.mode ?? 0) & 0o7777).toString(8)} uid=${h.uid} gid=${h.gid}${h.type === 'file' ? ` size=${h.size} ${h2.digest('hex').slice(0, 16)}` : ''}${h.linkname ? ` -> ${h.linkname}` : ''}${xdesc}`;
            fs.set(name, desc);
          }
          next();
        });
        stream.on('error', reject);
      });
      ex.on('finish', resolve);
      ex.on('error', reject);
    });
    (await open()).pipe(ex);
    await done;
  }
  return fs;
}

/** Open any `transport:spec` reference as a source, run `f`, close. */
export async function withRef<T>(ref: string, f: (s: ImageSource) => Promise<T>, opts: SourceOptions = {}): Promise<T> {
  const r = parseImageRef(ref, transports);
  const s = await r.transport.openSource(r.ref, opts);
  try {
    return await f(s);
  } finally {
    await s.close();
  }
}

/** validateImage, then the flattened filesystem, of a reference. */
export function flatRef(ref: string, opts: SourceOptions = {}): Promise<Flat> {
  return withRef(ref, async (s) => {
    await validateImage(s);
    return flattenImage(s);
  }, opts);
}
