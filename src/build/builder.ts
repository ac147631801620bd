/**
 * The builder: runs a plan's stages into the containers-storage store. Each step either changes the config
 * (ENV, LABEL, CMD, …: an `empty_layer` history entry) or makes a layer: COPY/ADD write a tar of the selected
 * context files; RUN runs in a container over the image's layers and the differ turns its upper dir into a layer.
 * Layers go into the store as they are made; the image (config + manifest + names) is recorded at the end.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, constants as fsc, lstatSync, openSync, promises as fsp, readdirSync, readFileSync, readlinkSync, readSync } from 'node:fs';
import { lstatFast, type LstatInfo } from '../core/lstat-fast.js';
import * as path from 'node:path';
import type { Writable } from 'node:stream';
import { addEntry, addFile, addStream, Coalesce, packInto } from '../archive/tar-pack.js';
import { createHash } from 'node:crypto';
import { digestHex, sha256, type Digest } from '../core/digest.js';
import { atomicWriteFile, IO_CHUNK, removeTree } from '../core/fs.js';
import { SkiffError } from '../core/errors.js';
import type { ImageConfig } from '../core/config.js';
import { parseConfig, rfc3339, sortConfigMaps } from '../core/config.js';
import { MT } from '../core/media-types.js';
import { serializeManifest, type ImageManifest } from '../core/manifest.js';
import { localImageName } from '../core/reference.js';
import { hostPlatform, parsePlatform } from '../core/platform.js';
import type { Store } from '../store/store.js';
import { layerId, StoreWriter, type StagedLayer } from '../store/writer.js';
import { IgnoreMatcher, parseIgnoreFile } from './containerfile/ignore.js';
import { download, expandSource, isArchive, resolveInRoot, unpackArchive, type Download } from './sources.js';
import type { BuildPlan, Step } from './containerfile/plan.js';
import { squashTar, upperDirTar } from './diff.js';
import { cgroupLimitsApply, forwardSocket, mountLayersReadOnly, probeRuntime, runStep, type ContainerOptions, type OciMount } from './run.js';
import { isRootless } from '../store/userns.js';

/** Files up to this size are read in one go when building a COPY layer. */
const SMALL_FILE = 256 * 1024;

/** The flags of RUN's cgroup limits, as the warnings name them. */
const CGROUP_LIMITS = 'cgroup limits (--memory, --cpu-*, --cpuset-*, --cgroup-parent)';

/** What buildah passes to RUN from its own environment (containers/common's config.ProxyEnv). */
const PROXY_ENV = ['http_proxy', 'https_proxy', 'ftp_proxy', 'no_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'FTP_PROXY', 'NO_PROXY'];

export interface BuildOptions {
  plan: BuildPlan;
  contextDir: string;
  ignore: IgnoreMatcher;
  store: Store;
  tags: string[];
  network: 'host' | 'none';
  /** RUN's container beyond the defaults: --add-host, --no-hosts, --dns*, --cap-add/--cap-drop, --shm-size. */
  container?: ContainerOptions;
  /** --omit-history: the image has no history. */
  omitHistory?: boolean;
  /** --os-version, --os-feature: the image's required OS version and features (mostly for Windows images). */
  osVersion?: string;
  osFeatures?: string[];
  /** --http-proxy=false: RUN does not get the proxy variables skiff was given (default: it does, as buildah's). */
  httpProxy?: boolean;
  /** Proxy build arguments (--build-arg HTTP_PROXY=…, Docker's predefined ones): every RUN has them, unrecorded. */
  proxyArgs?: Record<string, string>;
  /** --sign-by: a signature of the final image's manifest, vouching for the name given (its first tag). */
  sign?: (manifest: Buffer, identity: string) => Promise<Buffer>;
  /** --env KEY=VALUE: set in the final image's environment; --unsetenv KEY: removed from it. */
  env?: string[];
  unsetEnv?: string[];
  /** -v/--volume: host paths bind-mounted into every RUN; what is written there stays out of the layers. */
  volumes?: { source: string; destination: string; readonly: boolean }[];
  runtime?: string;
  /** How RUN is isolated: an OCI runtime (default) or chroot (no runtime needed). */
  isolation?: 'oci' | 'chroot';
  /** --platform: the target (os/arch[/variant]) of stages without FROM --platform; the host's by default. */
  platform?: string;
  timestamp?: number;
  /**
   * Get a base image into the store (pull); resolves with its image ID. `platform` (os/arch[/variant]): the image
   * for that platform (FROM --platform, or the build's --platform); undefined: the build's target.
   */
  pullBase(name: string, platform?: string): Promise<string>;
  log(line: string): void;
  /** Warnings (the CLI prints them with -q too); `log` when not given. */
  warn?(line: string): void;
  /** --timings: called with each step's duration. */
  timing?(line: string): void;
  /** Use and fill the layer cache (podman's --layers, default true; --no-cache turns it off). */
  cache: boolean;
  /** --cache-ttl: cached layers made longer ago than this (ms) are not used. */
  cacheTtlMs?: number;
  /** Image format: OCI (default) or Docker v2s2. Both keep Healthcheck, Shell and OnBuild in the config. */
  format?: 'oci' | 'docker';
  /** --label: labels set on the final image. */
  labels?: Record<string, string>;
  /** --secret: secret contents by id, for RUN --mount=type=secret. */
  secrets?: Map<string, Buffer>;
  /** --ssh: SSH agent sockets by id, for RUN --mount=type=ssh. */
  ssh?: Map<string, string>;
  /**
   * --cache-from / --cache-to: a registry repository of cache images tagged by cache key. `pull` resolves with the
   * store image ID of `<repo>:<key>` when a --cache-from repository has it; `push` sends a store image there.
   */
  remoteCache?: { to: boolean; pull(key: string): Promise<string | undefined>; push(id: string, key: string): Promise<void> };
  /** --jobs: stages built at the same time (default 1). */
  jobs?: number;
  /** --squash: the new layers become one (`new`), or --squash-all: every layer (`all`). */
  squash?: 'new' | 'all';
  /** --annotation: OCI manifest annotations (the Docker format has none). */
  annotations?: Record<string, string>;
}

/**
 * Context files' content digests as one build saw them, in the order it visited them: per file its path, inode,
 * size, mtime and ctime (in `meta`, four numbers each) and digest. Kept as parallel arrays, which JSON parses in a
 * third of the time of an object per file (5,000 files: ~2.5 ms, not ~7.5).
 */
interface StatRecords {
  rels: string[];
  meta: number[];
  digests: string[];
}

/**
 * The stat cache of one context. The next build walks the same paths in the same order, so entries are matched by
 * a cursor, with no lookup table; only when the context changed (a file added or removed) is an index built.
 */
interface StatCache {
  ctx: string;
  file: string;
  old: StatRecords;
  cursor: number;
  index?: Map<string, number>;
  /** What this build saw, saved in place of `old` when it differs. */
  seen: StatRecords;
  dirty: boolean;
}

/** What the layer cache remembers of a step. */
interface CacheEntry {
  id: string;
  diffID: Digest;
  size: number;
  createdBy: string;
  created?: string;
}

interface State {
  config: ImageConfig;
  /** Did this stage set CMD itself (so a later ENTRYPOINT keeps it)? */
  cmdSet?: boolean;
  /** When the last layer of this build was made (history and image times follow it). */
  lastCreated?: string;
  /** Store layer IDs and diffIDs, base first. */
  layers: { id: string; diffID: Digest; size: number }[];
  /** How many of `layers` came from the base image (FROM). */
  baseLayers: number;
}

/** The PATH an image FROM scratch starts with (BuildKit and buildah set it). */
export const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** A FROM scratch stage's config: the target platform's architecture and OS (the host's by default). */
function emptyConfig(platform?: string): ImageConfig {
  const p = (platform && parsePlatform(platform)) || hostPlatform();
  return { architecture: p.architecture, os: p.os, ...(p.variant && platform ? { variant: p.variant } : {}), config: { Env: [DEFAULT_PATH] }, rootfs: { type: 'layers', diff_ids: [] }, history: [] };
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
  /** Where layers are unpacked before they are moved into the store (see addLayer). */
  private stage = '';
  private seq = 0;
  /** Store writes one at a time: stages built in parallel share one process, so the store lock cannot order them. */
  private storeTurn: Promise<unknown> = Promise.resolve();
  constructor(private readonly o: BuildOptions) {
    this.writer = new StoreWriter(o.store);
  }

  /** A fresh number for work file names (stages may run in parallel). */
  private next(): number {
    return ++this.seq;
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

  /** Is `rel` in the image so far, and a directory (topmost layer that mentions it wins; whiteouts hide)? */
  private async inLayers(st: State, rel: string): Promise<{ exists: boolean; dir: boolean }> {
    for (const l of [...st.layers].reverse()) {
      const x = await fsp.lstat(path.join(this.diffDir(l.id), rel)).catch(() => undefined);
      if (x) return { exists: !(x.isCharacterDevice() && x.rdev === 0), dir: x.isDirectory() };
    }
    return { exists: false, dir: false };
  }

  private async existsInLayers(st: State, rel: string): Promise<boolean> {
    return (await this.inLayers(st, rel)).exists;
  }

  /** Unmount and remove a mount point made by mountFrom. */
  private async releaseMount(mp: string): Promise<void> {
    spawnSync('umount', [mp]);
    await fsp.rm(mp, { recursive: true, force: true });
  }

  /**
   * Make a layer from what `produce` writes (a tar, which it ends): the tar streams straight into a staging dir of
   * the store, applied and hashed on the way, and the staged layer is moved into place under its ID (or dropped,
   * when the store has that layer already). No temp tar is written and read back: a 64 MiB COPY wrote and read
   * 64 MiB less.
   */
  private async addLayer(st: State, produce: (out: Writable) => Promise<void>): Promise<void> {
    const dir = path.join(this.stage, `layer-${this.next()}`);
    const tar = new Coalesce(IO_CHUNK);
    const staging = this.writer.stageLayer(tar, dir);
    // A layer the store refuses (an unsafe path) stops the producer too, instead of leaving it blocked on a full pipe.
    staging.catch((e: Error) => tar.destroy(e));
    let staged: StagedLayer;
    try {
      await produce(tar);
      staged = await staging;
    } catch (e) {
      tar.destroy();
      await staging.catch(() => undefined);
      await removeTree(dir).catch(() => undefined);
      throw e;
    }
    const { diffDigest: diffID, diffSize: size } = staged.applied;
    const parent = st.layers.at(-1)?.id;
    const id = layerId(parent, diffID);
    const write = this.storeTurn.then(async () => {
      if (!(await this.writer.hasLayer(id))) await this.writer.createLayer(id, parent, diffID, staged);
    });
    this.storeTurn = write.catch(() => undefined);
    try {
      await write;
    } finally {
      await removeTree(dir).catch(() => undefined);
    }
    st.layers.push({ id, diffID, size });
    st.config.rootfs.diff_ids.push(diffID);
  }

  /**
   * Add a history entry. A layer's entry is stamped now (or with the cached layer's time); a config-only entry
   * takes the time of the last layer made, so a fully cached rebuild reproduces the same config and image ID.
   */
  private history(st: State, createdBy: string, empty: boolean, at?: string): void {
    const now = rfc3339((this.o.timestamp ?? Math.floor(Date.now() / 1000)) * 1000);
    const created = at !== undefined ? rfc3339(at) : empty ? st.lastCreated ?? now : now;
    if (!empty) st.lastCreated = created;
    (st.config.history ??= []).push({ created, created_by: createdBy, ...(empty ? { empty_layer: true } : {}) });
  }

  async build(): Promise<string> {
    await this.writer.open();
    await fsp.mkdir(path.join(this.o.store.loc.root, 'tmp'), { recursive: true });
    await sweepDeadBuilds(path.join(this.o.store.loc.root, 'tmp'), this.o.runtime ?? 'runc');
    this.work = await fsp.mkdtemp(path.join(this.o.store.loc.root, 'tmp', `build-${process.pid}-`));
    this.stage = await this.writer.stagingArea();
    try {
      const total = this.o.plan.order.flat().reduce((n, i) => n + 1 + this.o.plan.stages[i]!.steps.length, 0);
      // Step numbers are fixed up front (the order stages would run in one at a time), so parallel stages print the
      // same numbers as a serial build.
      const first = new Map<number, number>();
      let n = 0;
      for (const idx of this.o.plan.order.flat()) {
        first.set(idx, n);
        n += 1 + this.o.plan.stages[idx]!.steps.length;
      }
      const buildStage = async (idx: number): Promise<void> => {
        const stage = this.o.plan.stages[idx]!;
        let k = first.get(idx)!;
        const timed = async <T>(label: string, f: () => Promise<T>): Promise<T> => {
          this.o.log(label);
          // (process.hrtime, not performance.now(): the global `performance` loads node:perf_hooks, ~0.7 ms.)
          const t0 = process.hrtime.bigint();
          const r = await f();
          this.o.timing?.(`${label.replace(/^(STEP \d+\/\d+):.*$/s, '$1')}: ${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(3)}s`);
          return r;
        };
        const st = await timed(`STEP ${++k}/${total}: FROM ${stage.from.image}${stage.name ? ` AS ${stage.name}` : ''}`, () => this.from(stage.from));
        for (const step of stage.steps) await timed(`STEP ${++k}/${total}: ${step.text}`, () => this.step(st, step).catch((e: unknown) => { throw this.located(e, step); }));
        this.stages.set(idx, st);
      };
      // --jobs: the stages of one batch depend only on earlier batches, so up to `jobs` of them run at once.
      const jobs = Math.max(1, this.o.jobs ?? 1);
      for (const batch of this.o.plan.order) {
        const queue = [...batch];
        const failures: unknown[] = [];
        await Promise.all(Array.from({ length: Math.min(jobs, queue.length) }, async () => {
          for (let idx = queue.shift(); idx !== undefined && !failures.length; idx = queue.shift()) {
            await buildStage(idx).catch((e: unknown) => void failures.push(e));
          }
        }));
        if (failures.length) throw failures[0];
      }
      await this.saveStatCache();
      const final = this.stages.get(this.o.plan.target)!;
      if (this.o.squash) await this.squash(final, this.o.squash === 'all' ? 0 : final.baseLayers);
      return await this.commit(final);
    } finally {
      await fsp.rm(this.work, { recursive: true, force: true });
      await removeTree(this.stage).catch(() => undefined);
    }
  }

  private async from(f: { image: string; stage?: number; platform?: string }): Promise<State> {
    if (f.stage !== undefined) {
      const s = this.stages.get(f.stage)!;
      return { config: structuredClone(s.config), layers: [...s.layers], baseLayers: s.baseLayers };
    }
    if (f.image === 'scratch') return { config: emptyConfig(f.platform ?? this.o.platform), layers: [], baseLayers: 0 };
    const id = await this.o.pullBase(f.image, f.platform);
    const img = (await this.o.store.images()).find((i) => i.id === id);
    if (!img) throw new SkiffError('ERR_IMAGE_NOT_FOUND', `FROM ${f.image}: not in the store after pulling`);
    const cfgBytes = await this.o.store.bigData(img, `sha256:${img.id}`);
    if (!cfgBytes) throw new SkiffError('ERR_INVALID_CONFIG', `FROM ${f.image}: the store has no config`);
    const config = parseConfig(cfgBytes);
    // The base's ONBUILD triggers were planned into this stage; the new image does not carry them on (Docker).
    if (config.config && 'OnBuild' in config.config) delete config.config.OnBuild;
    const chain = await this.o.store.layerChain(img);
    return { config, layers: chain.map((l) => ({ id: l.id, diffID: l['diff-digest']!, size: l['diff-size'] ?? 0 })), baseLayers: chain.length };
  }

  /**
   * A step's failure names the Containerfile and line, as the front end's errors do (`Containerfile:3: COPY x: no
   * such file…`); a message that already names its line (a RUN's) is left as it is.
   */
  private located(e: unknown, s: Step): unknown {
    if (!(e instanceof SkiffError) || /\(line \d+\)/.test(e.message) || e.message.startsWith(`${this.o.plan.file}:`)) return e;
    e.message = `${this.o.plan.file}:${s.line}: ${e.message}`;
    return e;
  }

  private async step(st: State, s: Step): Promise<void> {
    const c = (st.config.config ??= {});
    switch (s.kind) {
      case 'ENV':
        // A variable set again keeps its place (Docker replaces it in the list).
        for (const [k, v] of s.vars) {
          const env = c.Env ?? [];
          const at = env.findIndex((e) => e.startsWith(`${k}=`));
          c.Env = at >= 0 ? env.map((e, i) => (i === at ? `${k}=${v}` : e)) : [...env, `${k}=${v}`];
        }
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
        return this.cached(st, s, () => this.workdir(st, s.dir), [], true);
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
      case 'HEALTHCHECK': {
        // Docker's Healthcheck: durations in nanoseconds, zero values left out.
        const ns = (ms: number | undefined): number | undefined => (ms ? Math.round(ms * 1e6) : undefined);
        if (s.none) c.Healthcheck = { Test: ['NONE'] };
        else {
          const hc: Record<string, unknown> = { Test: s.test.form === 'exec' ? ['CMD', ...s.test.command] : ['CMD-SHELL', s.test.command] };
          for (const [k, v] of [['Interval', s.interval], ['Timeout', s.timeout], ['StartPeriod', s.startPeriod], ['StartInterval', s.startInterval]] as const) if (ns(v)) hc[k] = ns(v);
          if (s.retries) hc.Retries = s.retries;
          c.Healthcheck = hc;
        }
        return this.history(st, `/bin/sh -c #(nop) ${s.text}`, true);
      }
      case 'ONBUILD':
        c.OnBuild = [...((c.OnBuild as string[] | null | undefined) ?? []), s.trigger];
        return this.history(st, `/bin/sh -c #(nop) ONBUILD ${s.trigger}`, true);
      case 'MAINTAINER':
        st.config.author = s.maintainer;
        return this.history(st, `/bin/sh -c #(nop) MAINTAINER ${s.maintainer}`, true);
      case 'ARG':
        return;
      case 'COPY':
      case 'ADD': {
        const dls = await this.downloads(s);
        return this.cached(st, s, () => this.copy(st, s, dls), [...dls.values()].map((d) => d.sha256));
      }
      case 'RUN':
        return this.cached(st, s, () => this.run(st, s));
    }
  }

  /**
   * The layer cache (BuildKit's model): key = parent layer + the resolved step + the config it runs under + a
   * content hash (no mtimes) of the context paths a COPY selects. Entries are files named by the key under
   * `<root>/skiff-cache/`, so a lookup is one stat, not a scan of every image; a hit reuses the stored layer and
   * copies or runs nothing.
   */
  private async cached(st: State, s: Extract<Step, { kind: 'COPY' | 'ADD' | 'RUN' | 'WORKDIR' }>, make: () => Promise<void>, extra: string[] = [], mayBeEmpty = false): Promise<void> {
    if (!this.o.cache) return make();
    const { line: _line, text: _text, ...step } = s;
    // (A --build-context directory is in the key by its content, not by where it is.)
    const parts = [st.layers.at(-1)?.id ?? 'scratch', JSON.stringify(step, (k, v: unknown) => (k === 'fromDir' ? undefined : v)), JSON.stringify(st.config.config ?? {}), ...extra];
    if (s.kind === 'COPY' || s.kind === 'ADD') {
      if (s.from === undefined) parts.push(await this.contextHash(s.sources));
      else if (s.fromDir !== undefined) parts.push(await this.contextHash(s.sources, s.fromDir));
      else if (s.fromStage !== undefined) parts.push(this.stages.get(s.fromStage)?.layers.at(-1)?.id ?? '');
      // An image by its ID, not its name: a tag moved to another image is another input.
      else parts.push(await this.o.pullBase(s.from));
    }
    if (s.kind === 'RUN') {
      // What a bind or cache mount shows the step is part of its input (secrets are not, as in BuildKit).
      for (const m of s.mounts) {
        if (m.type !== 'bind' && !(m.type === 'cache' && m.from !== undefined)) continue;
        const fromStage = m.from !== undefined && !m.fromImage && m.fromDir === undefined ? this.stageIndex(m.from) : undefined;
        if (m.from === undefined) parts.push(await this.contextHash([m.source ?? '.']));
        else if (m.fromDir !== undefined) parts.push(await this.contextHash([m.source ?? '.'], m.fromDir));
        else if (fromStage !== undefined) parts.push(this.stages.get(fromStage)?.layers.at(-1)?.id ?? '');
        else parts.push(await this.o.pullBase(m.from));
      }
    }
    const key = digestHex(sha256(parts.join('\n')));
    const dir = path.join(this.o.store.loc.root, 'skiff-cache');
    const file = path.join(dir, key);
    let hit = await fsp.readFile(file, 'utf8').then((t) => JSON.parse(t) as CacheEntry, () => undefined);
    // (--cache-ttl: a local entry's age is its file's, written when the step ran; --timestamp fixes the history's.)
    if (hit && this.o.cacheTtlMs !== undefined && Date.now() - (await fsp.stat(file)).mtimeMs > this.o.cacheTtlMs) hit = undefined;
    if (!(hit && (await this.writer.hasLayer(hit.id))) && this.o.remoteCache) hit = await this.fromRemoteCache(st, key);
    if (hit && (await this.writer.hasLayer(hit.id))) {
      this.o.log('--> Using cache');
      st.layers.push({ id: hit.id, diffID: hit.diffID, size: hit.size });
      st.config.rootfs.diff_ids.push(hit.diffID);
      this.history(st, hit.createdBy, false, this.o.timestamp !== undefined ? undefined : hit.created);
      return;
    }
    const before = st.layers.length;
    await make();
    // A step that made no layer (WORKDIR of an existing directory) has nothing to remember.
    if (mayBeEmpty && st.layers.length === before) return;
    const l = st.layers.at(-1)!;
    const h = st.config.history?.at(-1);
    await fsp.mkdir(dir, { recursive: true });
    await atomicWriteFile(file, JSON.stringify({ id: l.id, diffID: l.diffID, size: l.size, createdBy: h?.created_by ?? '', ...(h?.created ? { created: h.created } : {}) }));
    if (this.o.remoteCache?.to) {
      // --cache-to: this step's result as an image tagged with its cache key, for other machines' --cache-from.
      const id = await this.record(st, [], false);
      await this.o.remoteCache.push(id, key).catch((e: Error) => this.warn(`skiff: warning: --cache-to: pushing the cache image for ${s.text}: ${e.message}`));
    }
  }

  /**
   * --cache-from: look for the step's cache key as a tag in the cache repositories; a hit is pulled into the store
   * and its top layer (with its history entry) stands for the step.
   */
  private async fromRemoteCache(st: State, key: string): Promise<CacheEntry | undefined> {
    const found = await this.o.remoteCache!.pull(key).catch((e: Error) => {
      this.warn(`skiff: warning: --cache-from: ${e.message}`);
      return undefined;
    });
    if (!found) return undefined;
    const img = (await this.o.store.images()).find((i) => i.id === found);
    const cfg = img ? await this.o.store.bigData(img, `sha256:${img.id}`) : undefined;
    if (!img || !cfg) return undefined;
    const config = parseConfig(cfg);
    const chain = await this.o.store.layerChain(img);
    const top = chain.at(-1);
    // The cache image must be this state plus one layer, or it is not this step's result.
    if (!top || chain.length !== st.layers.length + 1 || chain.slice(0, -1).some((l, i) => l.id !== st.layers[i]!.id)) return undefined;
    const h = (config.history ?? []).filter((x) => !x.empty_layer).at(-1);
    return { id: top.id, diffID: top['diff-digest']!, size: top['diff-size'] ?? 0, createdBy: h?.created_by ?? '', ...(h?.created ? { created: h.created } : {}) };
  }

  /**
   * A content hash of context sources (paths, types, modes, sizes, contents; never mtimes), ignore rules applied.
   * Synchronous on purpose: it is the whole cost of a cached COPY, and thousands of small async reads cost more in
   * thread-pool round trips than in reading.
   */
  private async contextHash(sources: string[], root?: string): Promise<string> {
    const h = createHash('sha256');
    const ctx = path.resolve(root ?? this.o.contextDir);
    // (The ignore file is the main context's; a --build-context directory is taken whole, as buildah takes it.)
    const ignore = root === undefined ? this.o.ignore : { excludes: () => false, canPrune: () => false };
    const buf = Buffer.allocUnsafe(1 << 20);
    const known = await this.statCache(ctx);
    const fileDigest = (rel: string, full: string, st: LstatInfo): string => {
      const old = known.old;
      let i: number | undefined;
      if (old.rels[known.cursor] === rel) i = known.cursor++;
      else {
        known.index ??= new Map(old.rels.map((r, k) => [r, k]));
        i = known.index.get(rel);
        known.dirty = true;
      }
      let digest: string;
      const m = i === undefined ? -1 : i * 4;
      if (i !== undefined && old.meta[m] === st.ino && old.meta[m + 1] === st.size && old.meta[m + 2] === st.mtimeMs && old.meta[m + 3] === st.ctimeMs) digest = old.digests[i]!;
      else {
        known.dirty = true;
        const fh = createHash('sha256');
        if (st.size <= SMALL_FILE) fh.update(readFileSync(full));
        else {
          // Big files in 1 MiB pieces: hashing must not hold a whole file in memory.
          const fd = openSync(full, 'r');
          try {
            for (let n = readSync(fd, buf, 0, buf.length, null); n > 0; n = readSync(fd, buf, 0, buf.length, null)) fh.update(buf.subarray(0, n));
          } finally {
            closeSync(fd);
          }
        }
        digest = fh.digest('hex');
        // A file changed within the last seconds could change again within the same timestamp: not remembered.
        if (Date.now() - st.ctimeMs <= 2000) return digest;
      }
      known.seen.rels.push(rel);
      known.seen.meta.push(st.ino, st.size, st.mtimeMs, st.ctimeMs);
      known.seen.digests.push(digest);
      return digest;
    };
    // What is hashed is gathered in a string and hashed in large pieces: three hash updates per file cost more
    // than the lstat (5,000 files: ~15 ms of a ~150 ms cached build).
    let text = '';
    const flush = (): void => {
      h.update(text);
      text = '';
    };
    const walk = (rel: string): void => {
      // (rel is normalized and relative: a join would normalize it again, for every file.)
      const full = rel ? `${ctx}/${rel}` : ctx;
      const st = lstatFast(full);
      if (!st) {
        text += `missing ${rel}\n`;
        return;
      }
      text += `${rel} ${st.mode} ${st.size}\n`;
      const type = st.mode & fsc.S_IFMT;
      if (type === fsc.S_IFLNK) text += readlinkSync(full);
      else if (type === fsc.S_IFREG) text += fileDigest(rel, full, st);
      else if (type === fsc.S_IFDIR) {
        if (text.length > 1 << 16) flush();
        for (const n of readdirSync(full).sort()) {
          const r = rel ? `${rel}/${n}` : n;
          if (!ignore.excludes(r) || !ignore.canPrune(r)) walk(r);
        }
      }
    };
    for (const src of sources) {
      if (/^[a-z][a-z0-9+.-]*:\/\//i.test(src)) continue;
      const rel = path.posix.normalize(src).replace(/^(\.\/|\/)+/, '');
      // Wildcards hash what they match now: a new matching file misses the cache.
      const matched = await expandSource(ctx, rel === '.' ? '' : rel, src).catch(() => [rel]);
      for (const m of matched) walk(m);
    }
    flush();
    return h.digest('hex');
  }

  /**
   * Content digests of the context's files from earlier builds, trusted while a file's inode, size, mtime and ctime
   * are unchanged (git's index does the same): an unchanged context is stat'ed, not read. ctime cannot be set back
   * by tools, so a rewritten file is always read again. Saved at the end of the build.
   */
  private readonly statCaches = new Map<string, StatCache>();
  private async statCache(ctx: string): Promise<StatCache> {
    const have = this.statCaches.get(ctx);
    if (have) return have;
    const file = path.join(this.o.store.loc.root, 'skiff-cache', 'context', `${digestHex(sha256(ctx))}.json`);
    const empty = (): StatRecords => ({ rels: [], meta: [], digests: [] });
    const saved = await fsp.readFile(file, 'utf8').then((t) => JSON.parse(t) as Partial<StatRecords> & { v?: number }, () => undefined);
    // (Another layout, from an older skiff, counts as empty: its files are hashed once more.)
    const old = saved?.v === 2 && Array.isArray(saved.rels) && Array.isArray(saved.meta) && Array.isArray(saved.digests) ? (saved as StatRecords) : empty();
    const c: StatCache = { ctx, file, old, cursor: 0, seen: empty(), dirty: false };
    this.statCaches.set(ctx, c);
    return c;
  }

  private async saveStatCache(): Promise<void> {
    for (const c of this.statCaches.values()) await this.saveOneStatCache(c);
  }

  private async saveOneStatCache(c: StatCache): Promise<void> {
    if (!c.dirty && c.seen.rels.length === c.old.rels.length) return;
    await fsp.mkdir(path.dirname(c.file), { recursive: true });
    await atomicWriteFile(c.file, JSON.stringify({ v: 2, ...c.seen }));
    c.old = c.seen;
    c.seen = { rels: [], meta: [], digests: [] };
    c.cursor = 0;
    c.index = undefined;
    c.dirty = false;
  }

  /**
   * WORKDIR creates its directory when the image lacks it (as BuildKit and buildah do): a layer with the missing
   * directories, owned by the current USER; an existing directory changes nothing (an empty_layer entry).
   */
  private async workdir(st: State, dir: string): Promise<void> {
    const parts = dir.split('/').filter(Boolean);
    const missing: string[] = [];
    for (let i = 1; i <= parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!(await this.existsInLayers(st, d))) missing.push(d);
    }
    if (!missing.length) return this.history(st, `/bin/sh -c #(nop) WORKDIR ${dir}`, true);
    const owner = await this.chown(st, st.config.config?.User || undefined);
    const mtime = new Date(Math.min(Math.floor(Date.now() / 1000), this.o.timestamp ?? Infinity) * 1000);
    await this.addLayer(st, (out) => packInto(out, async (pack) => {
      for (const d of missing) await addEntry(pack, { name: `${d}/`, type: 'directory', mode: 0o755, uid: owner.uid, gid: owner.gid, mtime });
    }));
    this.history(st, `/bin/sh -c #(nop) WORKDIR ${dir}`, false);
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
    mountLayersReadOnly(layers, mp, `COPY --from=${from}`);
    return mp;
  }

  /** ADD's remote sources, fetched before the cache lookup (their content is part of the key). */
  private async downloads(s: Extract<Step, { kind: 'COPY' | 'ADD' }>): Promise<Map<string, Download>> {
    const out = new Map<string, Download>();
    if (s.kind !== 'ADD') return out;
    for (const [i, src] of s.sources.entries()) {
      if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(src) && !src.startsWith('git@')) continue;
      if (src.startsWith('git@') || /^git:\/\//.test(src) || /\.git(#.*)?$/.test(src)) throw new SkiffError('ERR_UNSUPPORTED', `ADD ${src} (line ${s.line}): git sources are not supported`);
      if (s.checksum && s.sources.length > 1) throw new SkiffError('ERR_BUILD', `ADD --checksum (line ${s.line}) needs exactly one source`);
      out.set(src, await download(src, path.join(this.work, `download-${this.next()}-${i}`), s.checksum));
    }
    return out;
  }

  private async copy(st: State, s: Extract<Step, { kind: 'COPY' | 'ADD' }>, downloads: Map<string, Download>): Promise<void> {
    const mounted = s.from !== undefined && s.fromDir === undefined ? await this.mountFrom(s.from, s.fromStage) : undefined;
    try {
      await this.copyFrom(st, s, s.fromDir ?? mounted, downloads);
    } finally {
      if (mounted) await this.releaseMount(mounted);
      for (const d of downloads.values()) await fsp.rm(d.file, { force: true });
    }
  }

  /**
   * COPY/ADD from the context, or (with `fromRoot`) from another stage or image keeping its owners there. Sources:
   * paths and wildcards (`--exclude` patterns relative to each source, `--parents` keeping the source path), heredocs,
   * and for ADD remote files (mode 600 as Docker) and local tar archives, unpacked into the destination.
   */
  private async copyFrom(st: State, s: Extract<Step, { kind: 'COPY' | 'ADD' }>, fromRoot: string | undefined, downloads: Map<string, Download>): Promise<void> {
    const owner = await this.chown(st, s.chown);
    const keepOwner = fromRoot !== undefined && s.chown === undefined;
    const ignore = fromRoot ? { excludes: () => false, canPrune: () => false } : this.o.ignore;
    const exclude = s.exclude.length ? new IgnoreMatcher(parseIgnoreFile(s.exclude.join('\n'))) : undefined;
    const cwd = st.config.config?.WorkingDir || '/';
    const dest = path.posix.resolve(cwd, s.dest);
    const ctx = fromRoot ?? path.resolve(this.o.contextDir);
    type Item = { kind: 'path'; rel: string; dir: boolean; archive: boolean } | { kind: 'url'; url: string; dl: Download } | { kind: 'heredoc'; name: string; body: string };
    const items: Item[] = [];
    for (const src of s.sources) {
      const dl = downloads.get(src);
      if (dl) {
        items.push({ kind: 'url', url: src, dl });
        continue;
      }
      const rel0 = path.posix.normalize(src).replace(/^(\.\/|\/)+/, '');
      if (rel0.startsWith('..')) throw new SkiffError('ERR_BUILD', `${s.kind} ${src}: outside the build context`);
      for (const rel of await expandSource(ctx, rel0 === '.' ? '' : rel0, `${s.kind} ${src}`)) {
        const st0 = await fsp.lstat(path.join(ctx, rel)).catch(() => undefined);
        if (!st0) throw new SkiffError('ERR_BUILD', `${s.kind} ${src}: no such file or directory in the ${s.fromDir !== undefined ? `build context ${s.from} (${s.fromDir})` : fromRoot ? `image of --from=${s.from}` : 'build context'}`);
        if (rel !== '' && ignore.excludes(rel)) {
          if (rel === rel0) throw new SkiffError('ERR_BUILD', `${s.kind} ${src}: excluded by the ignore file`);
          continue;
        }
        if (exclude && rel !== '' && (exclude.excludes(rel) || exclude.excludes(path.posix.basename(rel)))) continue;
        const archive = s.kind === 'ADD' && fromRoot === undefined && st0.isFile() && (await isArchive(path.join(ctx, rel)));
        items.push({ kind: 'path', rel, dir: st0.isDirectory(), archive });
      }
    }
    for (const h of s.heredocs) items.push({ kind: 'heredoc', name: h.name, body: h.body });
    const destDir = s.dest.endsWith('/') || items.length > 1;
    const mode = s.chmod ? parseInt(s.chmod, 8) : undefined;
    const t = this.o.timestamp;
    const when = (ms: number): Date => new Date(Math.min(Math.floor(ms / 1000), t ?? Infinity) * 1000);
    await this.addLayer(st, (out) => packInto(out, async (pack) => {
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
      const hasIncluded = async (rel: string): Promise<boolean> => {
        for (const n of await fsp.readdir(path.join(ctx, rel))) {
          const r = `${rel}/${n}`;
          if (!ignore.excludes(r)) return true;
          if ((await fsp.lstat(path.join(ctx, r))).isDirectory() && (await hasIncluded(r))) return true;
        }
        return false;
      };
      // Walk a source path (never following symlinks: a link pointing outside the context is copied as a link).
      // (Metadata reads are synchronous, as in contextHash: 5,000 files' lstats through the thread pool one at a time
      // cost more in round trips than the syscalls themselves.)
      const add = async (rel: string, target: string, root: string): Promise<void> => {
        const full = path.join(ctx, rel);
        const st1 = lstatSync(full);
        const name = target.replace(/^\/+/, '');
        const base = { uid: keepOwner ? st1.uid : owner.uid, gid: keepOwner ? st1.gid : owner.gid, mtime: when(st1.mtimeMs) };
        if (st1.isDirectory()) {
          if (name) {
            await parents(`${name}/x`);
            made.add(name);
            // --chmod applies to the files copied (as buildah does); directories keep their own mode.
            await addEntry(pack, { ...base, name: `${name}/`, type: 'directory', mode: st1.mode & 0o7777 });
          }
          for (const n of readdirSync(full).sort()) {
            const r = rel ? `${rel}/${n}` : n;
            if (ignore.excludes(r) && ignore.canPrune(r)) continue;
            // An excluded directory is walked only for what an exception (`!pattern`) brings back into it.
            if (ignore.excludes(r) && !(lstatSync(path.join(ctx, r)).isDirectory() && (await hasIncluded(r)))) continue;
            if (exclude?.excludes(path.posix.relative(root, r) || n)) continue;
            await add(r, `${name}/${n}`, root);
          }
          return;
        }
        await parents(name);
        if (st1.isSymbolicLink()) await addEntry(pack, { ...base, name, type: 'symlink', linkname: readlinkSync(full), mode: 0o777 });
        else if (st1.isFile() && st1.size <= SMALL_FILE) {
          // Small files in one synchronous read: thousands of them through the thread pool cost more in round trips.
          await addEntry(pack, { ...base, name, type: 'file', mode: mode ?? st1.mode & 0o7777 }, readFileSync(full));
        } else if (st1.isFile()) {
          await addFile(pack, { ...base, name, mode: mode ?? st1.mode & 0o7777, size: st1.size }, full);
        }
      };
      for (const it of items) {
        if (it.kind === 'url') {
          // The URL's last path segment, decoded, and never more than a file name (`..%2Fx` is `x`).
          const last = path.posix.basename(decodeURIComponent(new URL(it.url).pathname.split('/').filter(Boolean).at(-1) ?? ''));
          const urlName = last && last !== '..' && last !== '.' ? last : 'index.html';
          const name = (destDir ? path.posix.join(dest, urlName) : dest).replace(/^\/+/, '');
          await parents(name);
          await addFile(pack, { name, mode: mode ?? 0o600, uid: owner.uid, gid: owner.gid, mtime: when(it.dl.mtime?.getTime() ?? Date.now()), size: it.dl.size }, it.dl.file);
        } else if (it.kind === 'heredoc') {
          const name = (destDir ? path.posix.join(dest, it.name) : dest).replace(/^\/+/, '');
          await parents(name);
          await addEntry(pack, { name, type: 'file', mode: mode ?? 0o644, uid: owner.uid, gid: owner.gid, mtime: when(Date.now()) }, Buffer.from(it.body));
        } else if (it.archive) {
          const d = dest.replace(/^\/+/, '');
          if (d) {
            await parents(`${d}/x`);
            if (!made.has(d) && !(await this.existsInLayers(st, d))) await addEntry(pack, { name: `${d}/`, type: 'directory', mode: 0o755, uid: owner.uid, gid: owner.gid, mtime: when(Date.now()) });
            made.add(d);
          }
          await unpackArchive(path.join(ctx, it.rel), d, async (h, body) => {
            if (h.type === 'directory') made.add(h.name.replace(/\/+$/, ''));
            else await parents(h.name);
            if (body) await addStream(pack, h, body);
            else await addEntry(pack, h);
          }, s.chown !== undefined ? owner : undefined);
        } else {
          const target = s.parents ? path.posix.join(dest, it.rel) : it.dir ? dest : destDir ? path.posix.join(dest, path.posix.basename(it.rel)) : dest;
          await add(it.rel, target, it.dir ? it.rel : path.posix.dirname(it.rel));
        }
      }
    }));
    this.history(st, `/bin/sh -c #(nop) ${s.kind} ${[...s.sources, ...s.heredocs.map((h) => `<<${h.name}`)].join(' ')} ${s.dest}`, false);
  }

  /**
   * The command a RUN step executes. Heredocs follow BuildKit: `RUN <<EOF` alone runs the body as the script (a body
   * starting with `#!` is written to a file and executed directly); otherwise the line with its heredocs is handed
   * to the shell, which expands unquoted bodies itself.
   */
  private runCommand(s: Extract<Step, { kind: 'RUN' }>, shell: string[]): { args: string[]; script?: { name: string; body: string }; shown: string } {
    if (s.run.form === 'exec') return { args: s.run.command, shown: JSON.stringify(s.run.command) };
    if (!s.heredocs.length) return { args: [...shell, s.run.command], shown: s.run.command };
    const only = s.heredocs[0]!;
    if (s.heredocs.length === 1 && s.run.command.trim() === '<<0') {
      if (only.body.startsWith('#!')) return { args: [`/dev/pipes/${only.name}`], script: { name: only.name, body: only.body }, shown: `<<${only.name}\n${only.body}${only.name}` };
      return { args: [...shell, only.body], shown: only.body };
    }
    const line = s.run.command.replace(/<<(\d+)/g, (m, n: string) => {
      const h = s.heredocs[Number(n)];
      return h ? `<<${h.quoted ? `'${h.name}'` : h.name}` : m;
    });
    const script = `${line}\n${s.heredocs.map((h) => `${h.body}${h.body && !h.body.endsWith('\n') ? '\n' : ''}${h.name}\n`).join('')}`;
    return { args: [...shell, script], shown: script };
  }

  /** The stage a `from=` names (a stage name or index), if it is one. */
  private stageIndex(from: string): number | undefined {
    const byName = this.o.plan.stages.find((x) => x.name === from.toLowerCase());
    if (byName) return byName.index;
    return /^\d+$/.test(from) && Number(from) < this.o.plan.stages.length ? Number(from) : undefined;
  }

  /**
   * The OCI mounts for a RUN step's `--mount`s (BuildKit's semantics): bind (read-only unless rw, writes then
   * discarded), cache (a directory kept under the store by id), tmpfs, secret (a copy with the asked mode and owner,
   * removed after the step). `undo` unmounts and removes what was prepared.
   */
  private async runMounts(st: State, s: Extract<Step, { kind: 'RUN' }>, dir: string): Promise<{ mounts: OciMount[]; env: Record<string, string>; undo: () => Promise<void> }> {
    const mounts: OciMount[] = [];
    const env: Record<string, string> = {};
    const undo: (() => Promise<void>)[] = [];
    const done = async (): Promise<void> => {
      for (const u of undo.reverse()) await u();
    };
    const cwd = st.config.config?.WorkingDir || '/';
    let sshMounts = 0;
    try {
      for (const [i, m] of s.mounts.entries()) {
        const target = m.target !== undefined ? path.posix.resolve(cwd, m.target) : undefined;
        // The source with its symlinks resolved inside its root (a context link to /etc must not mount the host's
        // /etc; an image's absolute links point into the image).
        const inside = (root: string, rel: string | undefined): Promise<string> => resolveInRoot(root, rel ?? '');
        const fromRoot = async (): Promise<string> => {
          if (m.from === undefined) return path.resolve(this.o.contextDir);
          if (m.fromDir !== undefined) return m.fromDir;
          const mp = await this.mountFrom(m.from, m.fromImage ? undefined : this.stageIndex(m.from));
          undo.push(() => this.releaseMount(mp));
          return mp;
        };
        switch (m.type) {
          case 'bind': {
            const src = await inside(await fromRoot(), m.source);
            const st0 = await fsp.lstat(src).catch(() => undefined);
            if (!st0) throw new SkiffError('ERR_BUILD', `RUN --mount=type=bind: source ${m.source ?? '.'} does not exist${m.from === undefined ? ' in the build context' : ` in ${m.from}`}`);
            if (m.readonly === false) {
              // Writable bind: writes land in a throw-away copy (an overlay for a directory), as BuildKit discards them.
              const scratch = path.join(dir, `bind-${i}`);
              if (st0.isDirectory()) {
                for (const d of ['upper', 'work', 'merged']) await fsp.mkdir(path.join(scratch, d), { recursive: true });
                const r = spawnSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${src},upperdir=${scratch}/upper,workdir=${scratch}/work${isRootless() ? ',userxattr' : ''}`, `${scratch}/merged`], { encoding: 'utf8' });
                if (r.status !== 0) throw new SkiffError('ERR_BUILD', `RUN --mount=type=bind,rw: ${r.stderr.trim()}`);
                undo.push(async () => void spawnSync('umount', [`${scratch}/merged`]));
                mounts.push({ destination: target!, type: 'bind', source: `${scratch}/merged`, options: ['rbind', 'rw'] });
              } else {
                await fsp.mkdir(scratch, { recursive: true });
                await fsp.copyFile(src, path.join(scratch, 'file'));
                mounts.push({ destination: target!, type: 'bind', source: path.join(scratch, 'file'), options: ['rbind', 'rw'] });
              }
            } else mounts.push({ destination: target!, type: 'bind', source: src, options: ['rbind', 'ro'] });
            break;
          }
          case 'cache': {
            const id = m.id ?? target!;
            const cacheDir = path.join(this.o.store.loc.root, 'skiff-cache-mounts', digestHex(sha256(id)));
            if (!(await fsp.stat(cacheDir).then(() => true, () => false))) {
              const fresh = `${cacheDir}.${process.pid}.tmp`;
              await fsp.rm(fresh, { recursive: true, force: true });
              await fsp.mkdir(fresh, { recursive: true });
              if (m.from !== undefined) {
                const src = await inside(await fromRoot(), m.source);
                const r = spawnSync('cp', ['-a', `${src}/.`, fresh], { encoding: 'utf8' });
                if (r.status !== 0) throw new SkiffError('ERR_BUILD', `RUN --mount=type=cache,from=${m.from}: ${r.stderr.trim()}`);
              }
              await fsp.chmod(fresh, m.mode ? parseInt(m.mode, 8) : 0o755);
              await fsp.chown(fresh, m.uid ?? 0, m.gid ?? 0);
              await fsp.rename(fresh, cacheDir).catch(async () => fsp.rm(fresh, { recursive: true, force: true }));
            }
            mounts.push({ destination: target!, type: 'bind', source: cacheDir, options: ['rbind', m.readonly ? 'ro' : 'rw'] });
            break;
          }
          case 'tmpfs':
            mounts.push({ destination: target!, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', ...(m.size ? [`size=${m.size}`] : [])] });
            break;
          case 'secret': {
            const id = m.id ?? (target ? path.posix.basename(target) : undefined);
            if (!id) throw new SkiffError('ERR_BUILD', 'RUN --mount=type=secret needs an id or a target');
            const value = this.o.secrets?.get(id);
            if (value === undefined) {
              if (m.required) throw new SkiffError('ERR_BUILD', `RUN --mount=type=secret,id=${id}: no such secret (give it with --secret id=${id},src=FILE)`);
              break;
            }
            if (m.env) env[m.env] = value.toString('utf8');
            if (m.env && !target) break;
            const file = path.join(dir, `secret-${i}`);
            await fsp.writeFile(file, value, { mode: 0o600 });
            await fsp.chown(file, m.uid ?? 0, m.gid ?? 0);
            await fsp.chmod(file, m.mode ? parseInt(m.mode, 8) : 0o400);
            undo.push(() => fsp.rm(file, { force: true }));
            mounts.push({ destination: target ?? `/run/secrets/${id}`, type: 'bind', source: file, options: ['rbind', 'ro'] });
            break;
          }
          case 'ssh': {
            // BuildKit's way: the step sees a socket of its own (mode, uid, gid as asked; 0600 root by default),
            // forwarded to the agent --ssh named; SSH_AUTH_SOCK points at the first. Not part of the cache key.
            const id = m.id ?? 'default';
            const agent = this.o.ssh?.get(id);
            if (!agent) {
              if (m.required) throw new SkiffError('ERR_BUILD', `RUN --mount=type=ssh,id=${id}: no SSH agent for it (give one with --ssh ${id === 'default' ? 'default' : `${id}=SOCKET`})`);
              break;
            }
            const sock = path.join(dir, `ssh-${i}.sock`);
            const close = await forwardSocket(sock, agent, m.mode ? parseInt(m.mode, 8) : 0o600, m.uid ?? 0, m.gid ?? 0);
            undo.push(close);
            const dest = target ?? `/run/buildkit/ssh_agent.${sshMounts++}`;
            env.SSH_AUTH_SOCK ??= dest;
            mounts.push({ destination: dest, type: 'bind', source: sock, options: ['rbind', 'rw'] });
            break;
          }
        }
      }
    } catch (e) {
      await done();
      throw e;
    }
    return { mounts, env, undo: done };
  }

  /**
   * Mount points the runtime created in the container's filesystem for this step's mounts (the target and parent
   * directories the image did not have): removed from the upper dir when still empty, so they leave no trace.
   */
  private async removeStubs(st: State, upper: string, targets: string[]): Promise<void> {
    for (const t of targets) {
      const parts = t.split('/').filter(Boolean);
      for (let i = parts.length; i > 0; i--) {
        const rel = parts.slice(0, i).join('/');
        if (await this.existsInLayers(st, rel)) break;
        const full = path.join(upper, rel);
        const x = await fsp.lstat(full).catch(() => undefined);
        if (!x) continue;
        if (x.isDirectory()) await fsp.rmdir(full).catch(() => undefined);
        else if (i === parts.length && x.isFile() && x.size === 0) await fsp.rm(full, { force: true });
      }
    }
  }

  /**
   * The isolation RUN steps really get, settled at the first RUN: a runtime that cannot run containers here (crun
   * 1.8 on hybrid cgroups) is replaced by runc, or by chroot isolation when runc cannot either, with a warning.
   */
  private isolation?: Promise<{ isolation: 'oci' | 'chroot'; runtime?: string }>;
  private effectiveIsolation(): Promise<{ isolation: 'oci' | 'chroot'; runtime?: string }> {
    this.isolation ??= (async () => {
      const r = await this.chooseIsolation();
      const c = this.o.container;
      // (The default seccomp profile is the runtime's to apply: under chroot isolation RUN has none, as before;
      // a profile asked for by name is worth a warning.)
      const namedSeccomp = c?.seccompProfile !== undefined && c.seccompProfile !== 'unconfined';
      const lost = [c?.capAdd?.length || c?.capDrop?.length ? '--cap-add/--cap-drop' : '', c?.apparmor ? 'apparmor=' : '', c?.mask?.length || c?.unmask?.length ? 'mask=/unmask=' : '', namedSeccomp ? 'seccomp=' : '', c?.runtimeFlags?.length ? '--runtime-flag' : '', c?.resources || c?.cgroupParent ? CGROUP_LIMITS : '', c?.hooks?.length ? '--hooks-dir' : ''].filter(Boolean);
      if (r.isolation === 'chroot' && lost.length) this.warn(`skiff: warning: ${lost.join(', ')} need an OCI runtime: not applied with chroot isolation`);
      else if (r.isolation === 'oci' && (c?.resources || c?.cgroupParent) && !cgroupLimitsApply()) this.warn(`skiff: warning: ${CGROUP_LIMITS} are not applied: an unprivileged user has no cgroups of its own on cgroups v1 (podman ignores them too)`);
      return r;
    })();
    return this.isolation;
  }

  private warn(line: string): void {
    (this.o.warn ?? this.o.log)(line);
  }

  private async chooseIsolation(): Promise<{ isolation: 'oci' | 'chroot'; runtime?: string }> {
    if (this.o.isolation === 'chroot') return { isolation: 'chroot' as const };
    const tried: string[] = [];
    for (const runtime of [...new Set([this.o.runtime ?? 'runc', 'runc'])]) {
      const why = await probeRuntime(runtime, path.join(this.work, `probe-${this.next()}`));
      if (!why) {
        if (tried.length) this.warn(`skiff: warning: ${tried.join('; ')}: using ${runtime}`);
        return { isolation: 'oci' as const, runtime };
      }
      tried.push(`the OCI runtime ${runtime} cannot run containers here (${why})`);
    }
    this.warn(`skiff: warning: ${tried.join('; ')}: RUN steps use --isolation chroot`);
    return { isolation: 'chroot' as const };
  }

  private async run(st: State, s: Extract<Step, { kind: 'RUN' }>): Promise<void> {
    if (s.security === 'insecure') throw new SkiffError('ERR_UNSUPPORTED', `RUN --security=insecure (line ${s.line}): privileged build steps are not supported`);
    const c = st.config.config ?? {};
    const shell = (c.Shell as string[] | undefined) ?? ['/bin/sh', '-c'];
    const cmd = this.runCommand(s, shell);
    const env = new Map<string, string>();
    // The proxy variables skiff was given, for RUN only (not in the image, not in the cache key), under the image's
    // and the step's own: buildah's --http-proxy, on by default.
    // (A proxy build argument of the same name wins over the variable; the image's ENV over both.)
    if (this.o.httpProxy !== false) for (const k of PROXY_ENV) if (process.env[k] !== undefined) env.set(k, process.env[k]!);
    for (const [k, v] of Object.entries(this.o.proxyArgs ?? {})) env.set(k, v);
    const fromImage = new Set<string>();
    for (const e of c.Env ?? []) {
      const k = e.slice(0, e.indexOf('='));
      env.set(k, e.slice(e.indexOf('=') + 1));
      fromImage.add(k);
    }
    for (const [k, v] of Object.entries(s.env)) if (!fromImage.has(k)) env.set(k, v);
    if (!env.has('PATH')) env.set('PATH', '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
    const dir = path.join(this.work, `run-${this.next()}`);
    await fsp.mkdir(dir, { recursive: true });
    const extra = await this.runMounts(st, s, dir);
    for (const [k, v] of Object.entries(extra.env)) env.set(k, v);
    for (const v of this.o.volumes ?? []) extra.mounts.push({ destination: v.destination, type: 'bind', source: v.source, options: ['rbind', v.readonly ? 'ro' : 'rw'] });
    if (cmd.script) {
      const f = path.join(dir, 'script');
      await fsp.writeFile(f, cmd.script.body, { mode: 0o755 });
      extra.mounts.push({ destination: `/dev/pipes/${cmd.script.name}`, type: 'bind', source: f, options: ['rbind', 'ro'] });
    }
    let upper: string;
    try {
      upper = await runStep({
        lowers: st.layers.map((l) => this.diffDir(l.id)),
        dir,
        args: cmd.args,
        env: [...env].map(([k, v]) => `${k}=${v}`),
        cwd: c.WorkingDir || '/',
        user: c.User ?? '',
        network: s.network === 'none' ? 'none' : s.network === 'host' ? 'host' : this.o.network,
        mounts: extra.mounts,
        ...(this.o.container ? { container: this.o.container } : {}),
        ...(await this.effectiveIsolation()),
      });
    } catch (e) {
      throw new SkiffError('ERR_BUILD', `RUN ${cmd.shown} (line ${s.line}): ${(e as Error).message}`, { cause: e });
    } finally {
      await extra.undo();
    }
    await this.removeStubs(st, upper, extra.mounts.filter((m) => !m.destination.startsWith('/dev/')).map((m) => m.destination));
    const below = (rel: string): Promise<{ exists: boolean; dir: boolean }> => this.inLayers(st, rel);
    await this.addLayer(st, (out) => packInto(out, upperDirTar(upper, { below, ...(this.o.timestamp !== undefined ? { timestamp: this.o.timestamp } : {}) })));
    await fsp.rm(dir, { recursive: true, force: true });
    this.history(st, `/bin/sh -c ${cmd.shown}`, false);
  }

  /**
   * Replace the layers after the first `keep` with one layer holding their combined changes. History stays whole;
   * the squashed steps' entries become empty_layer but the last, so history still matches the layers.
   */
  private async squash(st: State, keep: number): Promise<void> {
    if (st.layers.length - keep <= 1) return;
    this.o.log(`--> Squashing ${st.layers.length - keep} layers`);
    const all = st.layers.map((l) => this.diffDir(l.id));
    const merged = path.join(this.work, 'squash-all');
    const base = path.join(this.work, 'squash-base');
    await fsp.mkdir(merged, { recursive: true });
    await fsp.mkdir(base, { recursive: true });
    const mounted = [mountLayersReadOnly(all, merged, '--squash') ? merged : '', mountLayersReadOnly(all.slice(0, keep), base, '--squash') ? base : ''].filter(Boolean);
    const below = async (rel: string): Promise<{ exists: boolean; dir: boolean }> => {
      const x = await fsp.lstat(path.join(base, rel)).catch(() => undefined);
      return { exists: !!x, dir: !!x?.isDirectory() };
    };
    st.layers = st.layers.slice(0, keep);
    st.config.rootfs.diff_ids = st.config.rootfs.diff_ids.slice(0, keep);
    try {
      await this.addLayer(st, async (out) => packInto(out, await squashTar(all.slice(keep), merged, { below, ...(this.o.timestamp !== undefined ? { timestamp: this.o.timestamp } : {}) })));
    } finally {
      for (const m of mounted) spawnSync('umount', [m]);
    }
    let seen = 0;
    const nonEmpty = (st.config.history ?? []).filter((h) => !h.empty_layer).length;
    for (const h of st.config.history ?? []) {
      if (h.empty_layer) continue;
      if (++seen > keep && seen < nonEmpty) h.empty_layer = true;
    }
  }

  private async commit(st: State): Promise<string> {
    // (Short names go under localhost/, as podman build names them.)
    const names = this.o.tags.map(localImageName);
    return this.record(st, names, true);
  }

  /**
   * --os-version replaces the base's `os.version`; --os-feature adds to its `os.features` (`NAME-` takes one off).
   * Both go right after `os`, where Go's image config struct writes them.
   */
  private osFields<T extends Record<string, unknown>>(c: T): T {
    if (this.o.osVersion === undefined && !this.o.osFeatures?.length) return c;
    const version = this.o.osVersion ?? (c['os.version'] as string | undefined);
    let features = [...((c['os.features'] as string[] | undefined) ?? [])];
    for (const f of this.o.osFeatures ?? []) {
      if (f.endsWith('-')) features = features.filter((x) => x !== f.slice(0, -1));
      else if (!features.includes(f)) features.push(f);
    }
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(c)) {
      if (k === 'os.version' || k === 'os.features') continue;
      out[k] = v;
      if (k === 'os') {
        if (version) out['os.version'] = version;
        if (features.length) out['os.features'] = features;
      }
    }
    return out as T;
  }

  /** Write the image a state describes into the store (the final image, or an intermediate one for --cache-to). */
  private async record(st: State, names: string[], final: boolean): Promise<string> {
    const created = this.o.timestamp !== undefined ? rfc3339(this.o.timestamp * 1000) : st.lastCreated ?? rfc3339(Math.floor(Date.now() / 1000) * 1000);
    // (Keys in the order Go's image config struct writes them, as buildah's: created first, history last.)
    const { created: _created, rootfs: _rootfs, history, ...base } = structuredClone(st.config);
    const rest = final ? this.osFields(base) : base;
    const config: ImageConfig = { created, ...rest, rootfs: { type: 'layers', diff_ids: st.layers.map((l) => l.diffID) }, ...(history ? { history } : {}) };
    if (final && this.o.labels && Object.keys(this.o.labels).length) config.config = { ...config.config, Labels: { ...(config.config?.Labels ?? {}), ...this.o.labels } };
    // --omit-history: no history at all in the image, as buildah writes it (intermediate cache images keep theirs).
    if (final && this.o.omitHistory) delete config.history;
    // --env and --unsetenv: the final image's environment, as buildah documents them (RUN steps do not see them).
    if (final && (this.o.env?.length || this.o.unsetEnv?.length)) {
      const keyOf = (kv: string): string => (kv.includes('=') ? kv.slice(0, kv.indexOf('=')) : kv);
      let env = config.config?.Env ?? [];
      // (A key set again moves to the end, in the order given, as buildah writes it.)
      for (const kv of this.o.env ?? []) env = [...env.filter((x) => keyOf(x) !== keyOf(kv)), kv];
      const unset = new Set(this.o.unsetEnv ?? []);
      config.config = { ...config.config, Env: env.filter((x) => !unset.has(keyOf(x))) };
    }
    const configBytes = Buffer.from(JSON.stringify(sortConfigMaps(config)));
    const docker = this.o.format === 'docker';
    const annotations = final && !docker && this.o.annotations && Object.keys(this.o.annotations).length ? this.o.annotations : undefined;
    const m: ImageManifest = {
      kind: 'image',
      mediaType: docker ? MT.dockerManifest : MT.ociManifest,
      config: { mediaType: docker ? MT.dockerConfig : MT.ociConfig, digest: sha256(configBytes), size: configBytes.length },
      layers: st.layers.map((l) => ({ mediaType: docker ? MT.dockerLayer : MT.ociLayer, digest: l.diffID, size: l.size })),
      ...(annotations ? { annotations } : {}),
    };
    const id = digestHex(sha256(configBytes));
    const manifest = serializeManifest(m);
    // (Signed as buildah signs a commit: the manifest stored, for the image's first name.)
    const signatures = final && this.o.sign && names[0] ? [await this.o.sign(manifest, names[0])] : undefined;
    const write = this.storeTurn.then(() => this.writer.putImage({ id, layer: st.layers.at(-1)?.id, names, manifest, config: configBytes, created, ...(signatures ? { signatures } : {}) }));
    this.storeTurn = write.catch(() => undefined);
    await write;
    return id;
  }
}
