/**
 * Writing the containers-storage store (overlay driver) the way containers/storage does: layer IDs from the
 * diffID chain, `overlay/<id>/{diff,link,lower|empty,work,merged}` and `l/` links, tar-split beside layers.json,
 * images.json entries with their big data. layers.json and images.json change only under their fcntl locks and
 * are replaced atomically; a layer is recorded `incomplete` before it is applied and such leftovers are removed
 * the next time a writer opens the store.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { digestHex, sha256, type Digest } from '../core/digest.js';
import { SkiffError } from '../core/errors.js';
import { atomicWriteFile, removeTree } from '../core/fs.js';
import { applyLayer, type Applied } from './apply.js';
import { withLock } from './lock.js';
import { bigDataFile, type Image, type Layer, type Store } from './store.js';

/** Layer ID for a diffID on top of `parent`: the diffID's hex for a base layer, else sha256(parent+"+"+hex). */
export function layerId(parent: string | undefined, diffID: Digest): string {
  return parent ? digestHex(sha256(`${parent}+${digestHex(diffID)}`)) : digestHex(diffID);
}

const LINK_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const newLink = (): string => Array.from({ length: 26 }, () => LINK_CHARS[randomInt(LINK_CHARS.length)]).join('');

/** A layer unpacked into a staging dir by stageLayer, waiting to be moved into the store. */
export interface StagedLayer {
  dir: string;
  applied: Applied;
}

/** An image's metadata string as c/image writes it (a JSON object), or an empty object. */
export function parseMetadata(m: string | undefined): Record<string, unknown> {
  if (!m) return {};
  try {
    const o = JSON.parse(m) as unknown;
    return o && typeof o === 'object' && !Array.isArray(o) ? (o as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

export class StoreWriter {
  private readonly layersDir: string;
  private readonly imagesDir: string;
  private readonly overlay: string;
  constructor(readonly store: Store) {
    this.layersDir = path.join(store.loc.root, 'overlay-layers');
    this.imagesDir = path.join(store.loc.root, 'overlay-images');
    this.overlay = path.join(store.loc.root, 'overlay');
  }

  /**
   * Create the store's directories, then drop layers a killed writer left `incomplete`. Every writer (skiff and
   * containers/storage alike) holds layers.lock while it applies a layer, so an incomplete entry seen under the
   * lock is always stale.
   */
  async open(): Promise<void> {
    for (const d of [this.layersDir, this.imagesDir, path.join(this.overlay, 'l')]) await fsp.mkdir(d, { recursive: true, mode: 0o700 });
    await fsp.chmod(path.join(this.overlay, 'l'), 0o755);
    await this.editLayers(async (layers) => {
      const keep: Layer[] = [];
      for (const l of layers) {
        if (l.flags?.incomplete) await this.removeLayerFiles(l.id);
        else keep.push(l);
      }
      // Rewritten only when something was dropped (an unchanged store stays untouched: no write, no fsync).
      return keep.length < layers.length ? keep : undefined;
    });
  }

  private async readJSON<T>(file: string): Promise<T[]> {
    const text = await fsp.readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return '';
      throw e;
    });
    if (text.trim() === '') return [];
    try {
      return JSON.parse(text) as T[];
    } catch (e) {
      throw new SkiffError('ERR_INVALID_ARCHIVE', `${file}: corrupt (${(e as Error).message}); not touching it`);
    }
  }

  /** Read-modify-write layers.json under layers.lock. */
  private editLayers(f: (layers: Layer[]) => Promise<Layer[] | void>): Promise<void> {
    const file = path.join(this.layersDir, 'layers.json');
    return withLock(path.join(this.layersDir, 'layers.lock'), true, async () => {
      const layers = await this.readJSON<Layer>(file);
      const out = await f(layers);
      if (out) await atomicWriteFile(file, JSON.stringify(out), 0o600);
    });
  }

  private async removeLayerFiles(id: string): Promise<void> {
    const dir = path.join(this.overlay, id);
    const link = await fsp.readFile(path.join(dir, 'link'), 'utf8').catch(() => undefined);
    if (link) await fsp.rm(path.join(this.overlay, 'l', link.trim()), { force: true });
    await fsp.chmod(path.join(dir, 'diff'), 0o755).catch(() => undefined);
    await fsp.rm(dir, { recursive: true, force: true, maxRetries: 3 });
    await fsp.rm(path.join(this.layersDir, `${id}.tar-split.gz`), { force: true });
  }

  /** Is the layer there and complete? */
  async hasLayer(id: string): Promise<boolean> {
    return (await this.store.layers()).some((l) => l.id === id && !l.flags?.incomplete);
  }

  /**
   * A private staging dir for layers (`overlay/.skiff-stage-<pid>-<random>`; those of processes that are gone are
   * removed first). Inside overlay/ itself: containers/storage bind-mounts that dir onto itself, so a layer unpacked
   * anywhere else could not be renamed into place. The caller removes it when done.
   */
  async stagingArea(): Promise<string> {
    const overlay = path.join(this.store.loc.root, 'overlay');
    await sweepDeadDirs(overlay, /^\.skiff-stage-(\d+)-[0-9a-f]+$/);
    const dir = path.join(overlay, `.skiff-stage-${process.pid}-${randomBytes(4).toString('hex')}`);
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    return dir;
  }

  /**
   * Apply a layer tar into a staging dir (`<dir>/diff` and `<dir>/tar-split.gz`) outside the store's records, so
   * layers can be unpacked in parallel while they arrive; createLayer then moves one into place.
   */
  async stageLayer(tar: Readable, dir: string): Promise<StagedLayer> {
    await fsp.mkdir(path.join(dir, 'diff'), { recursive: true, mode: 0o755 });
    const applied = await applyLayer(tar, path.join(dir, 'diff'), path.join(dir, 'tar-split.gz'));
    return { dir, applied };
  }

  /**
   * Apply a layer tar (or move a staged one) as layer `id` over `parent`. The entry is recorded incomplete first;
   * the diffID is checked against `diffID` before the layer is marked complete.
   */
  async createLayer(id: string, parent: string | undefined, diffID: Digest, tar: Readable | StagedLayer, blob?: { digest: Digest; size: number; compression: number }): Promise<Layer> {
    // Like containers/storage, hold layers.lock for the whole application: podman treats an incomplete layer it
    // can see under the lock as debris and deletes it, so nobody may see ours half-done without the lock held.
    return withLock(path.join(this.layersDir, 'layers.lock'), true, async () => {
      const file = path.join(this.layersDir, 'layers.json');
      const layers = await this.readJSON<Layer>(file);
      const found = layers.find((l) => l.id === id);
      if (found && !found.flags?.incomplete) return found; // another writer made it while we waited
      if (found) await this.removeLayerFiles(id);
      const created = new Date().toISOString();
      const others = layers.filter((l) => l.id !== id);
      await atomicWriteFile(file, JSON.stringify([...others, { id, ...(parent ? { parent } : {}), created, flags: { incomplete: true } }]), 0o600);
      try {
        const layer = await this.applyLayerFiles(id, parent, diffID, tar, created, blob);
        await atomicWriteFile(file, JSON.stringify([...others, layer]), 0o600);
        return layer;
      } catch (e) {
        await this.removeLayerFiles(id).catch(() => undefined);
        await atomicWriteFile(file, JSON.stringify(others), 0o600).catch(() => undefined);
        throw e;
      }
    });
  }

  /** Lay out overlay/<id> and apply the tar into its diff/; the caller holds layers.lock and cleans up on failure. */
  private async applyLayerFiles(id: string, parent: string | undefined, diffID: Digest, tar: Readable | StagedLayer, created: string, blob?: { digest: Digest; size: number; compression: number }): Promise<Layer> {
    const dir = path.join(this.overlay, id);
    const staged = 'applied' in tar ? tar : undefined;
    await fsp.mkdir(dir, { mode: 0o700 });
    for (const d of ['diff', 'work', 'merged']) if (!(staged && d === 'diff')) await fsp.mkdir(path.join(dir, d), { mode: d === 'diff' ? 0o755 : 0o700 });
    const link = newLink();
    await fsp.writeFile(path.join(dir, 'link'), link, { mode: 0o644 });
    await fsp.symlink(`../${id}/diff`, path.join(this.overlay, 'l', link));
    if (parent) {
      const lowers = [`l/${(await fsp.readFile(path.join(this.overlay, parent, 'link'), 'utf8')).trim()}`];
      const grand = await fsp.readFile(path.join(this.overlay, parent, 'lower'), 'utf8').catch(() => '');
      if (grand.trim()) lowers.push(...grand.trim().split(':'));
      await fsp.writeFile(path.join(dir, 'lower'), lowers.join(':'), { mode: 0o644 });
    } else {
      await fsp.mkdir(path.join(dir, 'empty'), { mode: 0o700 });
    }
    let applied: Applied;
    if (staged) {
      // Unpacked already (in parallel, while arriving): moved into place, same filesystem.
      await fsp.rename(path.join(staged.dir, 'diff'), path.join(dir, 'diff'));
      // (overlay/ may be its own mount, as containers/storage bind-mounts it: the small tar-split is copied across.)
      const ts = path.join(this.layersDir, `${id}.tar-split.gz`);
      await fsp.rename(path.join(staged.dir, 'tar-split.gz'), ts).catch(async (e: NodeJS.ErrnoException) => {
        if (e.code !== 'EXDEV') throw e;
        await fsp.copyFile(path.join(staged.dir, 'tar-split.gz'), ts);
      });
      applied = staged.applied;
    } else applied = await applyLayer(tar as Readable, path.join(dir, 'diff'), path.join(this.layersDir, `${id}.tar-split.gz`));
    if (applied.diffDigest !== diffID) {
      throw new SkiffError('ERR_DIGEST_MISMATCH', `layer ${id.slice(0, 12)}: uncompressed digest ${applied.diffDigest}, the image config says ${diffID}`);
    }
    await fsp.chmod(path.join(dir, 'diff'), 0o555);
    return {
      id,
      ...(parent ? { parent } : {}),
      created,
      ...(blob ? { 'compressed-diff-digest': blob.digest, 'compressed-size': blob.size } : {}),
      'diff-digest': applied.diffDigest,
      'diff-size': applied.diffSize,
      compression: blob?.compression ?? 0,
      uidset: applied.uids,
      gidset: applied.gids,
    };
  }

  /**
   * Record an image: its ID (the config digest's hex), top layer, names (taken away from any other image that had
   * them, as containers/storage does) and big data (config, manifest).
   */
  async putImage(img: { id: string; layer: string | undefined; names: string[]; manifest: Buffer; config: Buffer; created?: string; signatures?: Buffer[] }): Promise<Image> {
    const manifestDigest = sha256(img.manifest);
    const big: [string, Buffer][] = [[`sha256:${img.id}`, img.config], [`manifest-${manifestDigest}`, img.manifest], ['manifest', img.manifest]];
    // Signatures of the manifest, as c/image keeps them: concatenated under "signatures" and under
    // "signature-<hex>", their sizes in the image's metadata (a JSON string) as "signature-sizes" and, by manifest
    // digest, "signatures-sizes". An image recorded again without signatures keeps none.
    const sigs = img.signatures ?? [];
    if (sigs.length) big.push(['signatures', Buffer.concat(sigs)], [`signature-${digestHex(manifestDigest)}`, Buffer.concat(sigs)]);
    const digests = Object.fromEntries(big.map(([k, v]) => [k, sha256(v)]));
    const file = path.join(this.imagesDir, 'images.json');
    let result!: Image;
    await withLock(path.join(this.imagesDir, 'images.lock'), true, async () => {
      const images = await this.readJSON<Image>(file);
      const dir = path.join(this.imagesDir, img.id);
      await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
      const existing = images.find((i) => i.id === img.id);
      for (const [k, v] of big) {
        // The same image again (a cached build under a new tag): its big data is already there, byte for byte.
        const f = path.join(dir, bigDataFile(k));
        if (existing?.['big-data-digests']?.[k] === digests[k] && (await fsp.stat(f).catch(() => undefined))?.size === v.length) continue;
        await atomicWriteFile(f, v, 0o600);
      }
      const names = [...new Set([...(existing?.names ?? []), ...img.names])];
      for (const other of images) if (other.id !== img.id && other.names) other.names = other.names.filter((n) => !img.names.includes(n));
      result = {
        ...(existing ?? {}),
        id: img.id,
        digest: manifestDigest,
        names,
        ...(img.layer ? { layer: img.layer } : {}),
        'big-data-names': big.map(([k]) => k),
        'big-data-sizes': Object.fromEntries(big.map(([k, v]) => [k, v.length])),
        'big-data-digests': digests,
        created: img.created ?? new Date().toISOString(),
      } as Image;
      const metadata = parseMetadata(existing?.metadata);
      delete metadata['signature-sizes'];
      delete metadata['signatures-sizes'];
      if (sigs.length) Object.assign(metadata, { 'signature-sizes': sigs.map((x) => x.length), 'signatures-sizes': { [manifestDigest]: sigs.map((x) => x.length) } });
      if (Object.keys(metadata).length) result.metadata = JSON.stringify(metadata);
      else delete result.metadata;
      StoreWriter.setNames(result, names);
      const out = existing ? images.map((i) => (i.id === img.id ? result : i)) : [...images, result];
      await atomicWriteFile(file, JSON.stringify(out), 0o600);
    });
    return result;
  }

  /**
   * Record a manifest list as podman keeps one (`podman manifest create`): an image with no layer whose "manifest"
   * is the list and whose "instances.json" maps each instance's digest to where it came from (the key "" to the
   * list's own ID). `id` updates that list in place; without it a new one is made with a random ID, as podman's
   * are, its name taken off any image that had it.
   */
  async putList(list: { id?: string; names: string[]; manifest: Buffer; instances: Record<string, string> }): Promise<Image> {
    const id = list.id ?? randomBytes(32).toString('hex');
    const instances = Buffer.from(JSON.stringify({ '': id, ...list.instances }));
    const big: [string, Buffer][] = [['manifest', list.manifest], ['instances.json', instances]];
    let result!: Image;
    await this.editImages(async (images) => {
      const existing = images.find((i) => i.id === id);
      if (list.id && !existing) throw new SkiffError('ERR_IMAGE_NOT_FOUND', `manifest list ${id.slice(0, 12)} is not in the store`);
      const dir = path.join(this.imagesDir, id);
      await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
      for (const [k, v] of big) await atomicWriteFile(path.join(dir, bigDataFile(k)), v, 0o600);
      for (const other of images) if (other.id !== id && other.names) other.names = other.names.filter((n) => !list.names.includes(n));
      result = {
        ...(existing ?? {}),
        id,
        digest: existing?.digest ?? sha256(list.manifest),
        'big-data-names': big.map(([k]) => k),
        'big-data-sizes': Object.fromEntries(big.map(([k, v]) => [k, v.length])),
        'big-data-digests': Object.fromEntries(big.map(([k, v]) => [k, sha256(v)])),
        created: existing?.created ?? new Date().toISOString(),
      } as Image;
      StoreWriter.setNames(result, [...new Set([...(existing?.names ?? []), ...list.names])]);
      return existing ? images.map((i) => (i.id === id ? result : i)) : [...images, result];
    });
    return result;
  }

  /**
   * The names an image is given, recorded in its names-history as containers/storage does when it sets names: each
   * name, in order, moved to the front (so the newest comes first, and no name twice).
   */
  private static setNames(img: Image, names: string[]): void {
    let history = img['names-history'] ?? [];
    for (const n of names) history = [n, ...history.filter((x) => x !== n)];
    img['names-history'] = history;
    // (c/storage leaves an empty list out of images.json.)
    if (names.length) img.names = names;
    else delete img.names;
  }

  /** Add names to an image (moved off any other image that had them). */
  async tag(id: string, names: string[]): Promise<void> {
    await this.editImages(async (images) => {
      const img = images.find((i) => i.id === id);
      if (!img) throw new SkiffError('ERR_IMAGE_NOT_FOUND', `image ${id.slice(0, 12)} is not in the store`);
      for (const other of images) if (other !== img && other.names) other.names = other.names.filter((n) => !names.includes(n));
      StoreWriter.setNames(img, [...new Set([...(img.names ?? []), ...names])]);
      return images;
    });
  }

  /**
   * Take names off an image, all of them when `names` is undefined; the image stays, nameless if none are left
   * (podman untag). A name the image does not have is an error, and then nothing changes.
   */
  async untag(id: string, names?: string[]): Promise<void> {
    await this.editImages(async (images) => {
      const img = images.find((i) => i.id === id);
      if (!img) throw new SkiffError('ERR_IMAGE_NOT_FOUND', `image ${id.slice(0, 12)} is not in the store`);
      const has = img.names ?? [];
      const missing = (names ?? []).find((n) => !has.includes(n));
      if (missing) throw new SkiffError('ERR_IMAGE_NOT_FOUND', `${missing}: tag not known`);
      StoreWriter.setNames(img, names ? has.filter((n) => !names.includes(n)) : []);
      return images;
    });
  }

  /**
   * Remove an image, or with `name` and other names left only untag it (podman rmi semantics). Its layers go too
   * unless another image or a container still uses them. Returns the layer IDs removed.
   */
  async removeImage(id: string, name?: string): Promise<{ untagged: boolean; layers: string[] }> {
    let removedImage: Image | undefined;
    let untagged = false;
    await this.editImages(async (images) => {
      const img = images.find((i) => i.id === id);
      if (!img) throw new SkiffError('ERR_IMAGE_NOT_FOUND', `image ${id.slice(0, 12)} is not in the store`);
      if (name && (img.names?.length ?? 0) > 1) {
        StoreWriter.setNames(img, img.names!.filter((n) => n !== name));
        untagged = true;
        return images;
      }
      removedImage = img;
      return images.filter((i) => i !== img);
    });
    if (!removedImage) return { untagged, layers: [] };
    await fsp.rm(path.join(this.imagesDir, id), { recursive: true, force: true });
    const removed: string[] = [];
    const images = await this.store.images();
    const containers = await this.readJSON<{ layer?: string }>(path.join(this.store.loc.root, 'overlay-containers', 'containers.json'));
    await this.editLayers(async (layers) => {
      const byId = new Map(layers.map((l) => [l.id, l]));
      // Layers still reachable from another image or a container stay.
      const used = new Set<string>();
      const mark = (top: string | undefined): void => {
        for (let l = top; l && !used.has(l); l = byId.get(l)?.parent) used.add(l);
      };
      for (const i of images) mark(i.layer);
      for (const c of containers) mark(c.layer);
      for (let l = removedImage!.layer; l && !used.has(l); l = byId.get(l)?.parent) removed.push(l);
      for (const l of removed) await this.removeLayerFiles(l);
      return layers.filter((l) => !removed.includes(l.id));
    });
    return { untagged, layers: removed };
  }

  private editImages(f: (images: Image[]) => Promise<Image[]>): Promise<void> {
    const file = path.join(this.imagesDir, 'images.json');
    return withLock(path.join(this.imagesDir, 'images.lock'), true, async () => {
      await atomicWriteFile(file, JSON.stringify(await f(await this.readJSON<Image>(file))), 0o600);
    });
  }
}

/** Remove the dirs in `dir` named (by `pattern`'s first group) after a process that is gone: a killed copy's or build's. */
export async function sweepDeadDirs(dir: string, pattern: RegExp): Promise<void> {
  for (const n of await fsp.readdir(dir).catch(() => [] as string[])) {
    const m = pattern.exec(n);
    if (!m) continue;
    try {
      process.kill(Number(m[1]), 0);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ESRCH') await removeTree(path.join(dir, n)).catch(() => undefined);
    }
  }
}
