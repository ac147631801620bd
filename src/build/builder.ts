/**
 * The builder: runs a plan's stages into the containers-storage store. Each step either changes the config
 * (ENV, LABEL, CMD, …: an `empty_layer` history entry) or makes a layer: COPY/ADD write a tar of the selected
 * context files; RUN runs in a container over the image's layers and the differ turns its upper dir into a layer.
 * Layers go into the store as they are made; the image (config + manifest + names) is recorded at the end.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, createReadStream, createWriteStream, lstatSync, openSync, promises as fsp, readdirSync, readFileSync, readlinkSync, readSync } from 'node:fs';
import * as path from 'node:path';
import { addEntry, addFile, packTo } from '../archive/tar-pack.js';
import { createHash } from 'node:crypto';
import { digestHex, sha256, type Digest } from '../core/digest.js';
import { atomicWriteFile } from '../core/fs.js';
import { SkiffError } from '../core/errors.js';
import type { ImageConfig } from '../core/config.js';
import { parseConfig } from '../core/config.js';
import { MT } from '../core/media-types.js';
import { serializeManifest, type ImageManifest } from '../core/manifest.js';
import { formatDockerReference, parseDockerReference, withDefaultTag } from '../core/reference.js';
import { hostPlatform } from '../core/platform.js';
import type { Store } from '../store/store.js';
import { layerId, StoreWriter } from '../store/writer.js';
import type { IgnoreMatcher } from './containerfile/ignore.js';
import type { BuildPlan, Step } from './containerfile/plan.js';
import { diffUpperDir } from './diff.js';
import { runStep } from './run.js';

/** Files up to this size are read in one go when building a COPY layer. */
const SMALL_FILE = 256 * 1024;

export interface BuildOptions {
  plan: BuildPlan;
  contextDir: string;
  ignore: IgnoreMatcher;
  store: Store;
  tags: string[];
  network: 'host' | 'none';
  runtime?: string;
  timestamp?: number;
  /** Get a base image into the store (pull); resolves with its image ID. */
  pullBase(name: string): Promise<string>;
  log(line: string): void;
  /** Use and fill the layer cache (podman's --layers, default true; --no-cache turns it off). */
  cache: boolean;
}

interface State {
  config: ImageConfig;
  /** Did this stage set CMD itself (so a later ENTRYPOINT keeps it)? */
  cmdSet?: boolean;
  /** When the last layer of this build was made (history and image times follow it). */
  lastCreated?: string;
  /** Store layer IDs and diffIDs, base first. */
  layers: { id: string; diffID: Digest; size: number }[];
}

function emptyConfig(): ImageConfig {
  const p = hostPlatform();
  return { architecture: p.architecture, os: p.os, config: {}, rootfs: { type: 'layers', diff_ids: [] }, history: [] };
}

/**
 * Clean up after builds that were killed: their containers (runc state under `skiff-<pid>-…`), their overlay
 * mounts, and their work dirs. Only builds whose process is gone are touched.
 */
async function sweepDeadBuilds(tmp: string, runtime: string): Promise<void> {
  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'EPERM';
    }
  };
  for (const n of await fsp.readdir(tmp).catch(() => [] as string[])) {
    const m = /^build-(\d+)-/.exec(n);
    if (!m || alive(Number(m[1]))) continue;
    const dir = path.join(tmp, n);
    const list = spawnSync(runtime, ['list', '-q'], { encoding: 'utf8' });
    for (const id of (list.stdout ?? '').split('\n')) if (id.startsWith(`skiff-${m[1]}-`)) spawnSync(runtime, ['delete', '-f', id]);
    const mounts = (await fsp.readFile('/proc/self/mounts', 'utf8')).split('\n').map((l) => l.split(' ')[1] ?? '').filter((p) => p.startsWith(`${dir}/`));
    for (const mp of mounts.sort().reverse()) spawnSync('umount', ['-l', mp]);
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

export class Builder {
  private readonly writer: StoreWriter;
  private readonly stages = new Map<number, State>();
  private work = '';
  constructor(private readonly o: BuildOptions) {
    this.writer = new StoreWriter(o.store);
  }

  private diffDir(id: string): string {
    return path.join(this.o.store.loc.root, 'overlay', id, 'diff');
  }

  /** Read a file (e.g. etc/passwd) from the image's layers, topmost first. */
  private async readFromLayers(st: State, rel: string): Promise<string | undefined> {
    for (const l of [...st.layers].reverse()) {
      const f = await fsp.readFile(path.join(this.diffDir(l.id), rel), 'utf8').catch(() => undefined);
      if (f !== undefined) return f;
    }
    return undefined;
  }

  /** Does `rel` exist in the image so far (topmost layer that mentions it wins; whiteouts hide)? */
  private async existsInLayers(st: State, rel: string): Promise<boolean> {
    for (const l of [...st.layers].reverse()) {
      const x = await fsp.lstat(path.join(this.diffDir(l.id), rel)).catch(() => undefined);
      if (x) return !(x.isCharacterDevice() && x.rdev === 0);
    }
    return false;
  }

  private async addLayer(st: State, file: string, diff: { diffID: Digest; size: number }): Promise<void> {
    const parent = st.layers.at(-1)?.id;
    const id = layerId(parent, diff.diffID);
    if (!(await this.writer.hasLayer(id))) await this.writer.createLayer(id, parent, diff.diffID, createReadStream(file));
    st.layers.push({ id, diffID: diff.diffID, size: diff.size });
    st.config.rootfs.diff_ids.push(diff.diffID);
  }

  /**
   * Add a history entry. A layer's entry is stamped now (or with the cached layer's time); a config-only entry
   * takes the time of the last layer made, so a fully cached rebuild reproduces the same config and image ID.
   */
  private history(st: State, createdBy: string, empty: boolean, at?: string): void {
    const now = new Date((this.o.timestamp ?? Math.floor(Date.now() / 1000)) * 1000).toISOString();
    const created = at ?? (empty ? st.lastCreated ?? now : now);
    if (!empty) st.lastCreated = created;
    (st.config.history ??= []).push({ created, created_by: createdBy, ...(empty ? { empty_layer: true } : {}) });
  }

  async build(): Promise<string> {
    await this.writer.open();
    await fsp.mkdir(path.join(this.o.store.loc.root, 'tmp'), { recursive: true });
    await sweepDeadBuilds(path.join(this.o.store.loc.root, 'tmp'), this.o.runtime ?? 'runc');
    this.work = await fsp.mkdtemp(path.join(this.o.store.loc.root, 'tmp', `build-${process.pid}-`));
    try {
      const total = this.o.plan.order.flat().reduce((n, i) => n + 1 + this.o.plan.stages[i]!.steps.length, 0);
      let n = 0;
      for (const batch of this.o.plan.order) {
        for (const idx of batch) {
          const stage = this.o.plan.stages[idx]!;
          this.o.log(`STEP ${++n}/${total}: FROM ${stage.from.image}${stage.name ? ` AS ${stage.name}` : ''}`);
          const st = await this.from(stage.from);
          for (const step of stage.steps) {
            this.o.log(`STEP ${++n}/${total}: ${step.text}`);
            await this.step(st, step);
          }
          this.stages.set(idx, st);
        }
      }
      return await this.commit(this.stages.get(this.o.plan.target)!);
    } finally {
      await fsp.rm(this.work, { recursive: true, force: true });
    }
  }

  private async from(f: { image: string; stage?: number }): Promise<State> {
    if (f.stage !== undefined) {
      const s = this.stages.get(f.stage)!;
      return { config: structuredClone(s.config), layers: [...s.layers] };
    }
    if (f.image === 'scratch') return { config: emptyConfig(), layers: [] };
    const id = await this.o.pullBase(f.image);
    const img = (await this.o.store.images()).find((i) => i.id === id);
    if (!img) throw new SkiffError('ERR_IMAGE_NOT_FOUND', `FROM ${f.image}: not in the store after pulling`);
    const cfgBytes = await this.o.store.bigData(img, `sha256:${img.id}`);
    if (!cfgBytes) throw new SkiffError('ERR_INVALID_CONFIG', `FROM ${f.image}: the store has no config`);
    const config = parseConfig(cfgBytes);
    const chain = await this.o.store.layerChain(img);
    return { config, layers: chain.map((l) => ({ id: l.id, diffID: l['diff-digest']!, size: l['diff-size'] ?? 0 })) };
  }

  private async step(st: State, s: Step): Promise<void> {
    const c = (st.config.config ??= {});
    switch (s.kind) {
      case 'ENV':
        for (const [k, v] of s.vars) c.Env = [...(c.Env ?? []).filter((e) => !e.startsWith(`${k}=`)), `${k}=${v}`];
        return this.history(st, `/bin/sh -c #(nop) ENV ${s.vars.map(([k, v]) => `${k}=${v}`).join(' ')}`, true);
      case 'LABEL':
        c.Labels = { ...(c.Labels ?? {}), ...Object.fromEntries(s.labels) };
        return this.history(st, `/bin/sh -c #(nop) LABEL ${s.labels.map(([k, v]) => `${k}=${v}`).join(' ')}`, true);
      case 'EXPOSE':
        c.ExposedPorts = { ...(c.ExposedPorts ?? {}), ...Object.fromEntries(s.ports.map((p) => [p, {}])) };
        return this.history(st, `/bin/sh -c #(nop) EXPOSE ${s.ports.join(' ')}`, true);
      case 'VOLUME':
        c.Volumes = { ...(c.Volumes ?? {}), ...Object.fromEntries(s.volumes.map((v) => [v, {}])) };
        return this.history(st, `/bin/sh -c #(nop) VOLUME ${JSON.stringify(s.volumes)}`, true);
      case 'USER':
        c.User = s.user;
        return this.history(st, `/bin/sh -c #(nop) USER ${s.user}`, true);
      case 'WORKDIR':
        c.WorkingDir = s.dir;
        return this.history(st, `/bin/sh -c #(nop) WORKDIR ${s.dir}`, true);
      case 'CMD':
      case 'ENTRYPOINT': {
        const shell = (c.Shell as string[] | undefined) ?? ['/bin/sh', '-c'];
        const v = s.value.form === 'exec' ? s.value.command : [...shell, s.value.command];
        if (s.kind === 'CMD') {
          c.Cmd = v;
          st.cmdSet = true;
        } else {
          c.Entrypoint = v;
          // Docker: an ENTRYPOINT resets a CMD inherited from the base image.
          if (!st.cmdSet) c.Cmd = null;
        }
        return this.history(st, `/bin/sh -c #(nop) ${s.kind} ${JSON.stringify(v)}`, true);
      }
      case 'SHELL':
        c.Shell = s.shell;
        return this.history(st, `/bin/sh -c #(nop) SHELL ${JSON.stringify(s.shell)}`, true);
      case 'STOPSIGNAL':
        c.StopSignal = s.signal;
        return this.history(st, `/bin/sh -c #(nop) STOPSIGNAL ${s.signal}`, true);
      case 'ARG':
        return;
      case 'COPY':
      case 'ADD':
        return this.cached(st, s, () => this.copy(st, s));
      case 'RUN':
        return this.cached(st, s, () => this.run(st, s));
      default:
        throw new SkiffError('ERR_UNSUPPORTED', `${s.text.split(' ')[0]} is not supported by the builder yet`);
    }
  }

  /**
   * The layer cache (BuildKit's model): key = parent layer + the resolved step + the config it runs under + a
   * content hash (no mtimes) of the context paths a COPY selects. Entries are files named by the key under
   * `<root>/skiff-cache/`, so a lookup is one stat, not a scan of every image; a hit reuses the stored layer and
   * copies or runs nothing.
   */
  private async cached(st: State, s: Extract<Step, { kind: 'COPY' | 'ADD' | 'RUN' }>, make: () => Promise<void>): Promise<void> {
    if (!this.o.cache) return make();
    const { line: _line, text: _text, ...step } = s;
    const parts = [st.layers.at(-1)?.id ?? 'scratch', JSON.stringify(step), JSON.stringify(st.config.config ?? {})];
    if ((s.kind === 'COPY' || s.kind === 'ADD') && s.from === undefined) parts.push(await this.contextHash(s.sources));
    if ((s.kind === 'COPY' || s.kind === 'ADD') && s.fromStage !== undefined) parts.push(this.stages.get(s.fromStage)?.layers.at(-1)?.id ?? '');
    const key = digestHex(sha256(parts.join('\n')));
    const dir = path.join(this.o.store.loc.root, 'skiff-cache');
    const file = path.join(dir, key);
    const hit = await fsp.readFile(file, 'utf8').then((t) => JSON.parse(t) as { id: string; diffID: Digest; size: number; createdBy: string; created?: string }, () => undefined);
    if (hit && (await this.writer.hasLayer(hit.id))) {
      this.o.log('--> Using cache');
      st.layers.push({ id: hit.id, diffID: hit.diffID, size: hit.size });
      st.config.rootfs.diff_ids.push(hit.diffID);
      this.history(st, hit.createdBy, false, this.o.timestamp !== undefined ? undefined : hit.created);
      return;
    }
    await make();
    const l = st.layers.at(-1)!;
    const h = st.config.history?.at(-1);
    await fsp.mkdir(dir, { recursive: true });
    await atomicWriteFile(file, JSON.stringify({ id: l.id, diffID: l.diffID, size: l.size, createdBy: h?.created_by ?? '', ...(h?.created ? { created: h.created } : {}) }));
  }

  /**
   * A content hash of context sources (paths, types, modes, sizes, contents; never mtimes), ignore rules applied.
   * Synchronous on purpose: it is the whole cost of a cached COPY, and thousands of small async reads cost more in
   * thread-pool round trips than in reading.
   */
  private async contextHash(sources: string[]): Promise<string> {
    const h = createHash('sha256');
    const ctx = path.resolve(this.o.contextDir);
    const buf = Buffer.allocUnsafe(1 << 20);
    const walk = (rel: string): void => {
      const full = path.join(ctx, rel);
      let st: ReturnType<typeof lstatSync>;
      try {
        st = lstatSync(full);
      } catch {
        h.update(`missing ${rel}\n`);
        return;
      }
      h.update(`${rel} ${st.mode} ${st.size}\n`);
      if (st.isSymbolicLink()) h.update(readlinkSync(full));
      else if (st.isFile() && st.size <= SMALL_FILE) h.update(readFileSync(full));
      else if (st.isFile()) {
        // Big files in 1 MiB pieces: hashing must not hold a whole file in memory.
        const fd = openSync(full, 'r');
        try {
          for (let n = readSync(fd, buf, 0, buf.length, null); n > 0; n = readSync(fd, buf, 0, buf.length, null)) h.update(buf.subarray(0, n));
        } finally {
          closeSync(fd);
        }
      } else if (st.isDirectory()) {
        for (const n of readdirSync(full).sort()) {
          const r = rel ? `${rel}/${n}` : n;
          if (!this.o.ignore.excludes(r) || !this.o.ignore.canPrune(r)) walk(r);
        }
      }
    };
    for (const src of sources) walk(path.posix.normalize(src).replace(/^(\.\/|\/)+/, ''));
    return h.digest('hex');
  }

  /** Resolve a --chown value (numbers, or names through the image's /etc/passwd and /etc/group). */
  private async chown(st: State, spec: string | undefined): Promise<{ uid: number; gid: number }> {
    if (!spec) return { uid: 0, gid: 0 };
    const [u = '', g] = spec.split(':');
    const lookup = async (file: string, name: string, col: number): Promise<number> => {
      if (/^\d+$/.test(name)) return Number(name);
      const text = (await this.readFromLayers(st, file)) ?? '';
      const line = text.split('\n').find((l) => l.split(':')[0] === name);
      if (!line) throw new SkiffError('ERR_BUILD', `--chown=${spec}: ${name} is not in the image's /${file}`);
      return Number(line.split(':')[col]);
    };
    const uid = await lookup('etc/passwd', u, 2);
    const gid = g !== undefined ? await lookup('etc/group', g, 2) : /^\d+$/.test(u) ? uid : await lookup('etc/passwd', u, 3);
    return { uid, gid };
  }

  /**
   * Mount a stage's or image's filesystem read-only for COPY --from (an overlay of its layers); returns the mount
   * point. Unmounted by the caller; a killed build's mounts are swept by the next build.
   */
  private async mountFrom(from: string, stage: number | undefined): Promise<string> {
    let layers: string[];
    if (stage !== undefined) layers = (this.stages.get(stage)?.layers ?? []).map((l) => this.diffDir(l.id));
    else {
      const id = await this.o.pullBase(from);
      const img = (await this.o.store.images()).find((i) => i.id === id)!;
      layers = (await this.o.store.layerChain(img)).map((l) => this.diffDir(l.id));
    }
    const mp = path.join(this.work, `from-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`);
    await fsp.mkdir(mp, { recursive: true });
    if (layers.length === 0) return mp;
    // overlayfs needs two lower dirs for a read-only mount; one layer is bind-mounted instead.
    const args = layers.length === 1 ? ['--bind', '-o', 'ro', layers[0]!, mp] : ['-t', 'overlay', 'overlay', '-o', `lowerdir=${[...layers].reverse().join(':')}`, mp];
    const r = spawnSync('mount', args, { encoding: 'utf8' });
    if (r.status !== 0) throw new SkiffError('ERR_BUILD', `COPY --from=${from}: mounting its filesystem: ${r.stderr.trim()}`);
    return mp;
  }

  private async copy(st: State, s: Extract<Step, { kind: 'COPY' | 'ADD' }>): Promise<void> {
    if (s.heredocs.length || s.sources.some((x) => /^[a-z]+:\/\//.test(x))) {
      throw new SkiffError('ERR_UNSUPPORTED', `${s.kind} from a URL or a heredoc is not supported by the builder yet`);
    }
    const fromRoot = s.from !== undefined ? await this.mountFrom(s.from, s.fromStage) : undefined;
    try {
      await this.copyFrom(st, s, fromRoot);
    } finally {
      if (fromRoot) {
        spawnSync('umount', [fromRoot]);
        await fsp.rm(fromRoot, { recursive: true, force: true });
      }
    }
  }

  /** COPY from the context, or (with `fromRoot`) from another stage or image, keeping its owners there. */
  private async copyFrom(st: State, s: Extract<Step, { kind: 'COPY' | 'ADD' }>, fromRoot: string | undefined): Promise<void> {
    const owner = await this.chown(st, s.chown);
    const keepOwner = fromRoot !== undefined && s.chown === undefined;
    const ignore = fromRoot ? { excludes: () => false, canPrune: () => false } : this.o.ignore;
    const cwd = st.config.config?.WorkingDir || '/';
    const destDir = s.dest.endsWith('/') || s.sources.length > 1;
    const dest = path.posix.resolve(cwd, s.dest);
    const ctx = fromRoot ?? path.resolve(this.o.contextDir);
    const items: { rel: string; target: string }[] = [];
    for (const src of s.sources) {
      const rel = path.posix.normalize(src).replace(/^(\.\/|\/)+/, '');
      if (rel.startsWith('..')) throw new SkiffError('ERR_BUILD', `${s.kind} ${src}: outside the build context`);
      const st0 = await fsp.lstat(path.join(ctx, rel)).catch(() => undefined);
      if (!st0) throw new SkiffError('ERR_BUILD', `${s.kind} ${src}: no such file or directory in the build context`);
      if (rel !== '' && ignore.excludes(rel)) throw new SkiffError('ERR_BUILD', `${s.kind} ${src}: excluded by the ignore file`);
      if (st0.isDirectory()) items.push({ rel, target: dest });
      else items.push({ rel, target: destDir ? path.posix.join(dest, path.posix.basename(rel)) : dest });
    }
    const file = path.join(this.work, `layer-${st.layers.length}.tar`);
    const mode = s.chmod ? parseInt(s.chmod, 8) : undefined;
    const t = this.o.timestamp;
    const when = (ms: number): Date => new Date(Math.min(Math.floor(ms / 1000), t ?? Infinity) * 1000);
    const diff = await packTo(createWriteStream(file), async (pack) => {
      const made = new Set<string>();
      // Directories the destination path needs: the ones the image lacks are created, owned like the copy (as
      // buildah and BuildKit do); ones the image has are left as they are.
      const parents = async (p: string): Promise<void> => {
        const parts = p.split('/').filter(Boolean).slice(0, -1);
        for (let i = 1; i <= parts.length; i++) {
          const d = parts.slice(0, i).join('/');
          if (made.has(d)) continue;
          made.add(d);
          if (await this.existsInLayers(st, d)) continue;
          await addEntry(pack, { name: `${d}/`, type: 'directory', mode: 0o755, uid: owner.uid, gid: owner.gid, mtime: when(Date.now()) });
        }
      };
      // Walk a context path (never following symlinks: a link pointing outside the context is copied as a link).
      const add = async (rel: string, target: string): Promise<void> => {
        const full = path.join(ctx, rel);
        const st1 = await fsp.lstat(full);
        const name = target.replace(/^\/+/, '');
        const base = { uid: keepOwner ? st1.uid : owner.uid, gid: keepOwner ? st1.gid : owner.gid, mtime: when(st1.mtimeMs) };
        if (st1.isDirectory()) {
          if (name) {
            await parents(`${name}/x`);
            made.add(name);
            // --chmod applies to the files copied (as buildah does); directories keep their own mode.
            await addEntry(pack, { ...base, name: `${name}/`, type: 'directory', mode: st1.mode & 0o7777 });
          }
          for (const n of (await fsp.readdir(full)).sort()) {
            const r = rel ? `${rel}/${n}` : n;
            if (ignore.excludes(r) && ignore.canPrune(r)) continue;
            if (ignore.excludes(r) && !(await fsp.lstat(path.join(ctx, r))).isDirectory()) continue;
            await add(r, `${name}/${n}`);
          }
          return;
        }
        await parents(name);
        if (st1.isSymbolicLink()) await addEntry(pack, { ...base, name, type: 'symlink', linkname: await fsp.readlink(full), mode: 0o777 });
        else if (st1.isFile() && st1.size <= SMALL_FILE) {
          // Small files in one synchronous read: thousands of them through the thread pool cost more in round trips.
          await addEntry(pack, { ...base, name, type: 'file', mode: mode ?? st1.mode & 0o7777 }, readFileSync(full));
        } else if (st1.isFile()) {
          await addFile(pack, { ...base, name, mode: mode ?? st1.mode & 0o7777, size: st1.size }, full);
        }
      };
      for (const it of items) await add(it.rel, it.target);
    });
    await this.addLayer(st, file, diff);
    this.history(st, `/bin/sh -c #(nop) ${s.kind} ${s.sources.join(' ')} ${s.dest}`, false);
  }

  private async run(st: State, s: Extract<Step, { kind: 'RUN' }>): Promise<void> {
    if (s.mounts.length || s.heredocs.length) throw new SkiffError('ERR_UNSUPPORTED', 'RUN --mount and RUN heredocs are not supported by the builder yet');
    const c = st.config.config ?? {};
    const shell = (c.Shell as string[] | undefined) ?? ['/bin/sh', '-c'];
    const args = s.run.form === 'exec' ? s.run.command : [...shell, s.run.command];
    const env = new Map<string, string>();
    for (const e of c.Env ?? []) env.set(e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1));
    for (const [k, v] of Object.entries(s.env)) if (!env.has(k)) env.set(k, v);
    if (!env.has('PATH')) env.set('PATH', '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
    const dir = path.join(this.work, `run-${st.layers.length}-${Date.now()}`);
    let upper: string;
    try {
      upper = await runStep({
        lowers: st.layers.map((l) => this.diffDir(l.id)),
        dir,
        args,
        env: [...env].map(([k, v]) => `${k}=${v}`),
        cwd: c.WorkingDir || '/',
        user: c.User ?? '',
        network: s.network === 'none' ? 'none' : this.o.network,
        ...(this.o.runtime ? { runtime: this.o.runtime } : {}),
      });
    } catch (e) {
      throw new SkiffError('ERR_BUILD', `RUN ${s.run.form === 'shell' ? s.run.command : JSON.stringify(s.run.command)} (line ${s.line}): ${(e as Error).message}`, { cause: e });
    }
    const lowers = st.layers.map((l) => this.diffDir(l.id)).reverse();
    const below = async (rel: string): Promise<{ exists: boolean; dir: boolean }> => {
      for (const l of lowers) {
        const x = await fsp.lstat(path.join(l, rel)).catch(() => undefined);
        if (x) return { exists: !(x.isCharacterDevice() && x.rdev === 0), dir: x.isDirectory() };
      }
      return { exists: false, dir: false };
    };
    const file = path.join(this.work, `layer-${st.layers.length}.tar`);
    const diff = await diffUpperDir(upper, createWriteStream(file), { below, ...(this.o.timestamp !== undefined ? { timestamp: this.o.timestamp } : {}) });
    await fsp.rm(dir, { recursive: true, force: true });
    await this.addLayer(st, file, diff);
    this.history(st, `/bin/sh -c ${s.run.form === 'shell' ? s.run.command : JSON.stringify(s.run.command)}`, false);
  }

  private async commit(st: State): Promise<string> {
    const created = this.o.timestamp !== undefined ? new Date(this.o.timestamp * 1000).toISOString() : st.lastCreated ?? new Date(Math.floor(Date.now() / 1000) * 1000).toISOString();
    const config: ImageConfig = { ...st.config, created, rootfs: { type: 'layers', diff_ids: st.layers.map((l) => l.diffID) } };
    const configBytes = Buffer.from(JSON.stringify(config));
    const m: ImageManifest = {
      kind: 'image',
      mediaType: MT.ociManifest,
      config: { mediaType: MT.ociConfig, digest: sha256(configBytes), size: configBytes.length },
      layers: st.layers.map((l) => ({ mediaType: MT.ociLayer, digest: l.diffID, size: l.size })),
    };
    const id = digestHex(sha256(configBytes));
    const names = this.o.tags.map((t) => formatDockerReference(withDefaultTag(parseDockerReference(t))));
    await this.writer.putImage({ id, layer: st.layers.at(-1)?.id, names, manifest: serializeManifest(m), config: configBytes, created });
    return id;
  }
}
