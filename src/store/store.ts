/**
 * containers/storage's on-disk store (overlay driver), read side: layers.json, images.json, image big data, and
 * layer contents rebuilt through tar-split. The same files podman, buildah and skopeo use.
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { parse as parseToml } from 'smol-toml';
import type { Digest } from '../core/digest.js';
import { parseStoredList, type IndexManifest } from '../core/manifest.js';
import { SkiffError } from '../core/errors.js';
import { formatDockerReference, parseDockerReference, withDefaultTag } from '../core/reference.js';
import { layerTarStream } from './tar-split.js';
import { isRootless } from './userns.js';

export interface StoreLocation {
  driver: string;
  root: string;
  runroot: string;
}

export interface Layer {
  id: string;
  parent?: string;
  names?: string[];
  created?: string;
  'compressed-diff-digest'?: Digest;
  'compressed-size'?: number;
  'diff-digest'?: Digest;
  'diff-size'?: number;
  compression?: number;
  uidset?: number[];
  gidset?: number[];
  flags?: Record<string, unknown>;
}

export interface Image {
  id: string;
  digest?: Digest;
  names?: string[];
  layer?: string;
  metadata?: string;
  'big-data-names'?: string[];
  'big-data-sizes'?: Record<string, number>;
  'big-data-digests'?: Record<string, Digest>;
  created?: string;
  /** Every name the image has had, newest first (containers/storage's NamesHistory). */
  'names-history'?: string[];
}

/**
 * containers/storage's ImageSize (what podman shows): the uncompressed sizes of the image's layers and the sizes of
 * its big data (config, manifests). `layers`: the store's layers by ID.
 */
export function imageSize(img: Image, layers: Map<string, Layer>): number {
  let n = Object.values(img['big-data-sizes'] ?? {}).reduce((a, b) => a + b, 0);
  for (let id = img.layer; id; id = layers.get(id)?.parent) n += layers.get(id)?.['diff-size'] ?? 0;
  return n;
}

/** Where the store is: storage.conf (XDG config, /etc/containers, /usr/share/containers), else the defaults. */
export async function defaultStoreLocation(): Promise<StoreLocation> {
  const rootless = isRootless();
  const home = os.homedir();
  const files = [
    ...(process.env.CONTAINERS_STORAGE_CONF ? [process.env.CONTAINERS_STORAGE_CONF] : []),
    ...(rootless ? [path.join(process.env.XDG_CONFIG_HOME ?? path.join(home, '.config'), 'containers', 'storage.conf')] : []),
    '/etc/containers/storage.conf',
    '/usr/share/containers/storage.conf',
  ];
  let conf: { driver?: string; graphroot?: string; runroot?: string; rootless_storage_path?: string } = {};
  for (const f of files) {
    const text = await fsp.readFile(f, 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    try {
      conf = ((parseToml(text) as { storage?: typeof conf }).storage ?? {});
    } catch (e) {
      throw new SkiffError('ERR_USAGE', `${f}: ${(e as Error).message.split('\n')[0]}`);
    }
    break;
  }
  const runtimeDir = process.env.XDG_RUNTIME_DIR ?? `/tmp/skiff-run-${process.env.SUDO_UID ?? process.env.USER ?? 'user'}`;
  const root = rootless
    ? (conf.rootless_storage_path?.replace('$HOME', home) ?? path.join(process.env.XDG_DATA_HOME ?? path.join(home, '.local', 'share'), 'containers', 'storage'))
    : conf.graphroot ?? '/var/lib/containers/storage';
  const runroot = rootless ? path.join(runtimeDir, 'containers') : conf.runroot ?? '/run/containers/storage';
  return { driver: conf.driver || 'overlay', root, runroot };
}

async function readJSON<T>(file: string, empty: T): Promise<T> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return empty;
    throw e;
  }
  if (text.trim() === '') return empty;
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new SkiffError('ERR_INVALID_ARCHIVE', `${file}: corrupt (${(e as Error).message}); not touching it`);
  }
}

/** Big-data file name inside `overlay-images/<id>/`: the key itself if it is `[.0-9a-z]+`, else `=` + base64. */
export function bigDataFile(key: string): string {
  return /^[.0-9a-z]+$/.test(key) ? key : `=${Buffer.from(key).toString('base64')}`;
}

export class Store {
  constructor(readonly loc: StoreLocation) {
    if (loc.driver !== 'overlay') throw new SkiffError('ERR_UNSUPPORTED', `storage driver ${JSON.stringify(loc.driver)}: only overlay is supported`);
  }

  private get layersDir(): string {
    return path.join(this.loc.root, 'overlay-layers');
  }
  private get imagesDir(): string {
    return path.join(this.loc.root, 'overlay-images');
  }

  async layers(): Promise<Layer[]> {
    const persistent = await readJSON<Layer[]>(path.join(this.layersDir, 'layers.json'), []);
    const volatile = await readJSON<Layer[]>(path.join(this.loc.runroot, 'overlay-layers', 'volatile-layers.json'), []);
    return [...persistent, ...volatile];
  }

  async images(): Promise<Image[]> {
    return readJSON<Image[]>(path.join(this.imagesDir, 'images.json'), []);
  }

  /** The containers podman and buildah have made from this store's images (overlay-containers/containers.json). */
  async containers(): Promise<{ id: string; names?: string[]; image?: string; layer?: string }[]> {
    return readJSON(path.join(this.loc.root, 'overlay-containers', 'containers.json'), []);
  }

  /**
   * Find an image the way podman does: by full ID, ID prefix (3+ hex chars), exact name, or a short name
   * normalised (`busybox` -> `docker.io/library/busybox:latest`, also tried under `localhost/`).
   */
  async findImage(nameOrId: string): Promise<Image | undefined> {
    return (await this.resolveImage(nameOrId))?.image;
  }

  /** findImage, telling also which of the image's names matched (none: it was found by ID). */
  async resolveImage(nameOrId: string): Promise<{ image: Image; name?: string } | undefined> {
    const images = await this.images();
    const byId = images.find((i) => i.id === nameOrId || `sha256:${i.id}` === nameOrId);
    if (byId) return { image: byId };
    const exact = images.find((i) => i.names?.includes(nameOrId));
    if (exact) return { image: exact, name: nameOrId };
    const candidates: string[] = [];
    try {
      const n = withDefaultTag(parseDockerReference(nameOrId));
      candidates.push(formatDockerReference(n));
      if (!nameOrId.includes('/') || n.domain === 'docker.io') candidates.push(`localhost/${nameOrId.includes(':') || nameOrId.includes('@') ? nameOrId : `${nameOrId}:latest`}`);
    } catch {
      /* not a name: maybe an ID prefix */
    }
    for (const c of candidates) {
      const named = images.find((i) => i.names?.includes(c));
      if (named) return { image: named, name: c };
    }
    if (/^[a-f0-9]{3,63}$/.test(nameOrId)) {
      const pre = images.filter((i) => i.id.startsWith(nameOrId));
      if (pre.length === 1) return { image: pre[0]! };
      if (pre.length > 1) throw new SkiffError('ERR_INVALID_REFERENCE', `ID prefix ${nameOrId} matches ${pre.length} images`);
    }
    return undefined;
  }

  async bigData(image: Image, key: string): Promise<Buffer | undefined> {
    return fsp.readFile(path.join(this.imagesDir, image.id, bigDataFile(key))).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined;
      throw e;
    });
  }

  /**
   * The nameless images another image is directly built on: podman's intermediate images, which `images` hides
   * without -a and `image prune` keeps (a nameless image without such a child is dangling). A child, as podman
   * (containers/common's libimage) decides it: its top layer lies directly on the parent's, or is the same; it has
   * the parent's diffIDs first; and its history is the parent's plus one entry.
   */
  async intermediateImages(images: Image[]): Promise<Set<string>> {
    const out = new Set<string>();
    const nameless = images.filter((i) => !i.names?.length);
    if (!nameless.length) return out;
    const { isChild, parentOf } = await this.lineage();
    for (const parent of nameless) {
      if (!parent.layer) continue;
      for (const child of images) {
        if (child === parent || !child.layer || (child.layer !== parent.layer && parentOf.get(child.layer) !== parent.layer)) continue;
        if (await isChild(parent, child)) {
          out.add(parent.id);
          break;
        }
      }
    }
    return out;
  }

  /** The image `image` was directly built on, by the rules above (podman inspect's Parent), if it is in the store. */
  async parentImage(image: Image, images: Image[]): Promise<Image | undefined> {
    if (!image.layer) return undefined;
    const { isChild, parentOf } = await this.lineage();
    const below = parentOf.get(image.layer);
    for (const parent of images) {
      if (parent === image || !parent.layer || (parent.layer !== image.layer && parent.layer !== below)) continue;
      if (await isChild(parent, image)) return parent;
    }
    return undefined;
  }

  /** The layer tree's parent links and libimage's parent-and-child test, with each image's config read once. */
  private async lineage(): Promise<{ isChild(parent: Image, child: Image): Promise<boolean>; parentOf: Map<string, string | undefined> }> {
    const parentOf = new Map((await this.layers()).map((l) => [l.id, l.parent]));
    type Cfg = { rootfs?: { diff_ids?: string[] }; history?: Record<string, unknown>[] } | undefined;
    const configs = new Map<string, Cfg>();
    const config = async (i: Image): Promise<Cfg> => {
      if (!configs.has(i.id)) {
        const b = await this.bigData(i, `sha256:${i.id}`);
        let c: Cfg;
        try {
          c = b ? (JSON.parse(b.toString()) as Cfg) : undefined;
        } catch {
          c = undefined;
        }
        configs.set(i.id, c);
      }
      return configs.get(i.id);
    };
    const entry = (h: Record<string, unknown>): string => JSON.stringify([h.created ? Date.parse(String(h.created)) : null, h.created_by ?? '', h.author ?? '', h.comment ?? '', !!h.empty_layer]);
    const isChild = async (parent: Image, child: Image): Promise<boolean> => {
      const [p, c] = [await config(parent), await config(child)];
      if (!p || !c) return false;
      const pd = p.rootfs?.diff_ids ?? [];
      const cd = c.rootfs?.diff_ids ?? [];
      if (pd.length > cd.length || pd.some((d, k) => cd[k] !== d)) return false;
      const ph = p.history ?? [];
      const ch = c.history ?? [];
      return ph.length + 1 === ch.length && ph.every((h, k) => entry(h) === entry(ch[k]!));
    };
    return { isChild, parentOf };
  }

  /** The manifest list an image holds (podman's `manifest create`), or undefined when it is not a list. */
  async listOf(image: Image): Promise<IndexManifest | undefined> {
    if (image.layer !== undefined) return undefined;
    const raw = await this.bigData(image, 'manifest');
    return raw ? parseStoredList(raw) : undefined;
  }

  /** The layer chain of an image, base first. */
  async layerChain(image: Image): Promise<Layer[]> {
    const all = new Map((await this.layers()).map((l) => [l.id, l]));
    const chain: Layer[] = [];
    for (let id = image.layer; id; ) {
      const l = all.get(id);
      if (!l) throw new SkiffError('ERR_BLOB_UNKNOWN', `image ${image.id.slice(0, 12)}: layer ${id} missing from the store`);
      if (l.flags?.incomplete) throw new SkiffError('ERR_BLOB_UNKNOWN', `image ${image.id.slice(0, 12)}: layer ${id} is incomplete`);
      chain.unshift(l);
      id = l.parent;
    }
    return chain;
  }

  /** A layer's original tar (uncompressed), from tar-split + its diff dir. */
  async layerTar(layer: Layer): Promise<Readable> {
    const ts = path.join(this.layersDir, `${layer.id}.tar-split.gz`);
    if (!(await fsp.stat(ts).then(() => true, () => false))) {
      throw new SkiffError('ERR_UNSUPPORTED', `layer ${layer.id.slice(0, 12)} has no tar-split; its exact tar cannot be rebuilt`);
    }
    return layerTarStream(ts, path.join(this.loc.root, 'overlay', layer.id, 'diff'));
  }
}
