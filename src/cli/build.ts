import { spawnSync } from 'node:child_process';
import { accessSync, closeSync, existsSync, constants as fsConstants, openSync, promises as fsp, readdirSync, readFileSync, statSync, type Stats } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Command, Option } from 'commander';
import { SkiffError } from '../core/errors.js';
import { isFile, readAll, statOf } from '../core/fs.js';
import { formatPlatform, hostPlatform, parsePlatform } from '../core/platform.js';
import { fetchContext, isGitContext, isRemoteContext } from '../build/remote-context.js';
import { download } from '../build/sources.js';
import { parseDuration, parseIntOption, podmanRegistryOptions, storageFrom, storeOf, writeOut, type GlobalOptions } from './common.js';
import { capabilityName, HOOK_STAGES, ULIMITS, type ContainerOptions, type Device, type OciHook } from '../build/run.js';
import type { SeccompProfile } from '../build/seccomp.js';
import type { SourceOptions } from '../core/image.js';
import type { CopyOptions } from '../copy/copy.js';
import type { BuildOptions } from '../build/builder.js';
import type { NamedContext } from '../build/containerfile/plan.js';
import type { Store } from '../store/store.js';

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

interface BuildFlags {
  cache?: boolean;
  layers?: string | boolean;
  pull?: string;
  quiet?: boolean;
  iidfile?: string;
  network?: string;
  runtime?: string;
  timestamp?: string;
  file?: string[];
  tag?: string[];
  buildArg?: string[];
  buildArgFile?: string[];
  target?: string;
  platform?: string;
  ignorefile?: string;
  dryRun?: boolean;
  format?: 'oci' | 'docker';
  label?: string[];
  annotation?: string[];
  squash?: boolean;
  squashAll?: boolean;
  output?: string;
  secret?: string[];
  jobs?: string;
  isolation?: string;
  timings?: boolean;
  cacheFrom?: string[];
  cacheTo?: string;
  addHost?: string[];
  hosts?: boolean;
  dns?: string[];
  dnsSearch?: string[];
  dnsOption?: string[];
  capAdd?: string[];
  capDrop?: string[];
  shmSize?: string;
  device?: string[];
  cppFlag?: string[];
  memory?: string;
  memorySwap?: string;
  cpuShares?: string;
  cpuPeriod?: string;
  cpuQuota?: string;
  cpusetCpus?: string;
  cpusetMems?: string;
  cgroupParent?: string;
  hooksDir?: string[];
  allPlatforms?: boolean;
  pid?: string;
  ipc?: string;
  uts?: string;
  cgroupns?: string;
  retry?: number;
  retryDelay?: number;
  volume?: string[];
  omitHistory?: boolean;
  signBy?: string;
  logfile?: string;
  logsplit?: boolean;
  runtimeFlag?: string[];
  stdin?: boolean;
  identityLabel?: boolean;
  httpProxy?: boolean;
  osVersion?: string;
  osFeature?: string[];
  skipUnusedStages?: boolean;
  cacheTtl?: string;
  env?: string[];
  unsetenv?: string[];
  from?: string;
  buildContext?: string[];
  ssh?: string[];
  manifest?: string;
  ulimit?: string[];
  securityOpt?: string[];
  os?: string;
  arch?: string;
  variant?: string;
}

/**
 * --build-context NAME=VALUE (buildah's and docker's): VALUE is an image (`container-image://REF`,
 * `docker-image://REF` or `docker://REF`), a local directory, or an http(s) URL of an archive (fetched and unpacked
 * before the build). Git repositories are refused by name.
 */
function parseBuildContexts(specs: string[] | undefined): Record<string, NamedContext | { url: string }> {
  const out: Record<string, NamedContext | { url: string }> = {};
  for (const spec of specs ?? []) {
    const eq = spec.indexOf('=');
    const bad = (why: string): SkiffError => new SkiffError('ERR_USAGE', `--build-context ${JSON.stringify(spec)}: ${why}`);
    if (eq <= 0 || eq === spec.length - 1) throw bad('expected NAME=VALUE (a directory, or container-image://IMAGE)');
    const name = spec.slice(0, eq).toLowerCase();
    const value = spec.slice(eq + 1);
    const image = /^(container-image|docker-image|docker):\/\/(.+)$/.exec(value);
    if (image) out[name] = { image: image[2]! };
    else if (isRemoteContext(value, `--build-context ${spec.slice(0, eq)}=`)) out[name] = { url: value };
    else {
      const dir = path.resolve(value);
      if (!statOf(dir)?.isDirectory()) throw bad(`${value}: no such directory`);
      out[name] = { dir };
    }
  }
  return out;
}

/**
 * --ssh default|ID[=SOCKET] (podman build's, BuildKit's): SSH agent sockets for RUN --mount=type=ssh, by id. A bare
 * id (or `default`) is the agent of this environment ($SSH_AUTH_SOCK). Key files are refused: give an agent.
 */
function parseSsh(specs: string[] | undefined): Map<string, string> | undefined {
  if (!specs?.length) return undefined;
  const out = new Map<string, string>();
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    const id = eq < 0 ? spec : spec.slice(0, eq);
    const value = eq < 0 ? process.env.SSH_AUTH_SOCK : spec.slice(eq + 1);
    const bad = (why: string): SkiffError => new SkiffError('ERR_USAGE', `--ssh ${JSON.stringify(spec)}: ${why}`);
    if (!/^[A-Za-z0-9_.-]+$/.test(id)) throw bad('expected default or ID[=SOCKET]');
    if (!value) throw bad('SSH_AUTH_SOCK is not set: start an agent (ssh-agent) or give its socket, ID=SOCKET');
    const st = statOf(value);
    if (!st) throw bad(`${value}: no such file`);
    if (!st.isSocket()) throw bad(`${value} is not an agent's socket (key files are not supported: load the key into ssh-agent and give its socket)`);
    out.set(id, path.resolve(value));
  }
  return out;
}

/** Is this store image for `platform` (os/arch[/variant])? arm64's v8 matches an image with no variant. */
async function isForPlatform(store: Store, img: import('../store/store.js').Image, platform: string): Promise<boolean> {
  const want = parsePlatform(platform);
  const cfg = await store.bigData(img, `sha256:${img.id}`);
  if (!want || !cfg) return false;
  const c = JSON.parse(cfg.toString()) as { os?: string; architecture?: string; variant?: string };
  return c.os === want.os && c.architecture === want.architecture && (!want.variant || !c.variant || c.variant === want.variant);
}

/** podman's -v/--volume for builds: HOST-PATH:CONTAINER-PATH[:OPTIONS], options ro/rw (z, Z and U accepted). */
async function parseVolumes(specs: string[] | undefined): Promise<{ source: string; destination: string; readonly: boolean }[]> {
  const out: { source: string; destination: string; readonly: boolean }[] = [];
  for (const spec of specs ?? []) {
    const [source = '', destination = '', options = '', ...rest] = spec.split(':');
    const bad = (why: string): SkiffError => new SkiffError('ERR_USAGE', `--volume ${JSON.stringify(spec)}: ${why}`);
    if (rest.length || !destination) throw bad('expected HOST-PATH:CONTAINER-PATH[:OPTIONS]');
    if (!path.isAbsolute(source)) throw bad('the host path must be absolute (named volumes are not supported)');
    if (!path.posix.isAbsolute(destination)) throw bad('the container path must be absolute');
    const opts = options ? options.split(',') : [];
    for (const o of opts) if (!['ro', 'rw', 'z', 'Z', 'U'].includes(o)) throw bad(`unknown option ${JSON.stringify(o)} (ro, rw, z, Z, U)`);
    if (!(await fsp.stat(source).catch(() => undefined))) throw bad(`${source}: no such file or directory`);
    out.push({ source: path.resolve(source), destination: path.posix.normalize(destination), readonly: opts.includes('ro') });
  }
  return out;
}

/** podman's --shm-size: a number and an optional unit b, k, m or g (powers of 1024; none is bytes). */
function parseSize(v: string, flag = '--shm-size'): number {
  const m = /^(\d+(?:\.\d+)?)([bkmg])?$/i.exec(v.trim());
  const n = m ? Number(m[1]) * 1024 ** 'bkmg'.indexOf((m[2] ?? 'b').toLowerCase()) : NaN;
  if (!(n > 0)) throw new SkiffError('ERR_USAGE', `${flag} ${JSON.stringify(v)}: expected a size such as 64m or 1g`);
  return Math.floor(n);
}

/** --platform's comma-separated OS/ARCH[/VARIANT] list, each checked. */
function platformList(spec: string): string[] {
  return spec.split(',').map((raw) => {
    const p = raw.trim();
    if (!/^[a-z0-9_]+\/[a-z0-9_]+(\/[a-z0-9_.]+)?$/.test(p)) throw new SkiffError('ERR_USAGE', `--platform ${JSON.stringify(raw)}: expected OS/ARCH[/VARIANT]`);
    return p;
  });
}

/**
 * --hooks-dir DIR…: the oci-hooks(5) files (*.json, version 1.0.0) in each, a later directory's file masking an
 * earlier one of the same name; each checked now (a bad one stops the build before anything is pulled).
 */
function loadHooks(dirs: string[]): OciHook[] {
  const byName = new Map<string, OciHook>();
  for (const dir of dirs) {
    let names: string[];
    try {
      names = readdirSync(dir).filter((n) => n.endsWith('.json'));
    } catch (e) {
      throw new SkiffError('ERR_USAGE', `--hooks-dir ${dir}: ${(e as Error).message}`);
    }
    for (const n of names) {
      const file = path.join(dir, n);
      const bad = (why: string): SkiffError => new SkiffError('ERR_USAGE', `hook ${file}: ${why}`);
      let h: Partial<OciHook> & { version?: string };
      try {
        h = JSON.parse(readFileSync(file, 'utf8')) as typeof h;
      } catch (e) {
        throw bad((e as Error).message);
      }
      if (h.version !== '1.0.0') throw bad(`version ${JSON.stringify(h.version)}: only 1.0.0 is read`);
      if (!h.hook || typeof h.hook.path !== 'string' || !path.isAbsolute(h.hook.path)) throw bad('hook.path must be an absolute path');
      if (!h.when || !['always', 'annotations', 'commands', 'hasBindMounts'].some((k) => (h.when as Record<string, unknown>)[k] !== undefined)) throw bad('when needs one of always, annotations, commands, hasBindMounts');
      for (const re of h.when.commands ?? []) {
        try {
          new RegExp(re);
        } catch {
          throw bad(`when.commands: ${JSON.stringify(re)} is not a regular expression`);
        }
      }
      if (!Array.isArray(h.stages) || !h.stages.length || h.stages.some((st) => !HOOK_STAGES.includes(st))) throw bad(`stages must be some of ${HOOK_STAGES.join(', ')}`);
      byName.set(n, { file, hook: h.hook, when: h.when, stages: h.stages });
    }
  }
  return [...byName.values()];
}

/** podman's cgroup limit flags for RUN, checked before building. */
function resourceOptions(flags: BuildFlags, o: ContainerOptions): void {
  const r: NonNullable<ContainerOptions['resources']> = {};
  const int = (flag: string, v: string, min: number): number => {
    if (!/^-?\d+$/.test(v) || Number(v) < min) throw new SkiffError('ERR_USAGE', `${flag} ${JSON.stringify(v)}: expected a whole number${min > 0 ? ` of at least ${min}` : ''}`);
    return Number(v);
  };
  const cpuset = (flag: string, v: string): string => {
    if (!/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(v)) throw new SkiffError('ERR_USAGE', `${flag} ${JSON.stringify(v)}: expected a list such as 0-3 or 0,2`);
    return v;
  };
  if (flags.memory !== undefined) r.memory = parseSize(flags.memory, '--memory');
  if (flags.memorySwap !== undefined) {
    r.memorySwap = flags.memorySwap === '-1' ? -1 : parseSize(flags.memorySwap, '--memory-swap');
    if (r.memory === undefined) throw new SkiffError('ERR_USAGE', '--memory-swap needs --memory');
    if (r.memorySwap !== -1 && r.memorySwap < r.memory) throw new SkiffError('ERR_USAGE', '--memory-swap is memory and swap together: it cannot be less than --memory');
  }
  if (flags.cpuShares !== undefined) r.cpuShares = int('--cpu-shares', flags.cpuShares, 2);
  if (flags.cpuPeriod !== undefined) r.cpuPeriod = int('--cpu-period', flags.cpuPeriod, 1000);
  if (flags.cpuQuota !== undefined) r.cpuQuota = int('--cpu-quota', flags.cpuQuota, 1000);
  if (flags.cpusetCpus !== undefined) r.cpusetCpus = cpuset('--cpuset-cpus', flags.cpusetCpus);
  if (flags.cpusetMems !== undefined) r.cpusetMems = cpuset('--cpuset-mems', flags.cpusetMems);
  if (Object.keys(r).length) o.resources = r;
  if (flags.cgroupParent !== undefined) {
    if (!/^[A-Za-z0-9_./-]+$/.test(flags.cgroupParent) || flags.cgroupParent.split('/').includes('..')) throw new SkiffError('ERR_USAGE', `--cgroup-parent ${JSON.stringify(flags.cgroupParent)}: expected a cgroup path such as /skiff`);
    o.cgroupParent = flags.cgroupParent;
  }
}

/**
 * podman's --device HOST[:CONTAINER][:PERMISSIONS]: a host device node (character or block) in RUN's /dev, at its
 * own path or CONTAINER, with cgroup permissions from r, w and m (default rwm).
 */
function parseDevice(spec: string): Device {
  const parts = spec.split(':');
  const bad = (why: string): SkiffError => new SkiffError('ERR_USAGE', `--device ${JSON.stringify(spec)}: ${why}`);
  if (parts.length > 3 || !parts[0]) throw bad('expected HOST[:CONTAINER][:PERMISSIONS]');
  const host = parts[0];
  let container = host;
  let perms = 'rwm';
  if (parts.length === 3) [container, perms] = [parts[1]!, parts[2]!];
  else if (parts.length === 2) {
    if (/^[rwm]+$/.test(parts[1]!)) perms = parts[1]!;
    else container = parts[1]!;
  }
  if (!path.isAbsolute(host) || !path.isAbsolute(container)) throw bad('paths must be absolute');
  if (!/^[rwm]{1,3}$/.test(perms) || new Set(perms).size !== perms.length) throw bad(`permissions ${JSON.stringify(perms)}: some of r, w, m`);
  let st: Stats;
  try {
    st = statSync(host);
  } catch (e) {
    throw bad((e as Error).message);
  }
  if (!st.isCharacterDevice() && !st.isBlockDevice()) throw bad('not a device node');
  // (Linux's dev_t: 12 bits of major, 20 of minor, split as glibc's gnu_dev_major/minor read them.)
  const rdev = BigInt(st.rdev);
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
  return { host, container, perms, type: st.isCharacterDevice() ? 'c' : 'b', major, minor, mode: st.mode & 0o7777 };
}

/** The RUN container flags, checked before anything is built. */
function containerOptions(flags: BuildFlags): ContainerOptions {
  const o: ContainerOptions = {};
  if (flags.hosts === false) {
    if (flags.addHost?.length) throw new SkiffError('ERR_USAGE', '--no-hosts and --add-host cannot be used together');
    o.noHosts = true;
  }
  if (flags.addHost?.length) {
    for (const h of flags.addHost) if (!/^[^:\s]+:\S+$/.test(h)) throw new SkiffError('ERR_USAGE', `--add-host ${JSON.stringify(h)}: expected HOST:IP`);
    o.addHosts = flags.addHost;
  }
  if (flags.dns?.length) {
    if (flags.dns.includes('none') && flags.dns.length > 1) throw new SkiffError('ERR_USAGE', '--dns none cannot be combined with name servers');
    o.dns = flags.dns;
  }
  if (flags.dnsSearch?.length) o.dnsSearch = flags.dnsSearch;
  if (flags.dnsOption?.length) o.dnsOptions = flags.dnsOption;
  if (flags.capAdd?.length) o.capAdd = flags.capAdd.flatMap((c) => c.split(',')).map(capabilityName);
  if (flags.capDrop?.length) o.capDrop = flags.capDrop.flatMap((c) => c.split(',')).map(capabilityName);
  if (flags.shmSize !== undefined) o.shmSize = parseSize(flags.shmSize);
  for (const spec of flags.device ?? []) (o.devices ??= []).push(parseDevice(spec));
  resourceOptions(flags, o);
  if (flags.hooksDir?.length) o.hooks = loadHooks(flags.hooksDir);
  for (const [flag, type] of [['pid', 'pid'], ['ipc', 'ipc'], ['uts', 'uts'], ['cgroupns', 'cgroup']] as const) {
    const v = flags[flag];
    if (v === undefined) continue;
    // podman's values: private (a new namespace), host (skiff's own), or the path of one to join (not for cgroupns).
    if (v !== 'private' && v !== 'host' && (type === 'cgroup' || !path.isAbsolute(v))) throw new SkiffError('ERR_USAGE', `--${flag} ${JSON.stringify(v)}: expected private, host${type === 'cgroup' ? '' : ' or the path of a namespace to join'}`);
    if (path.isAbsolute(v) && !existsSync(v)) throw new SkiffError('ERR_USAGE', `--${flag} ${v}: no such namespace file`);
    (o.namespaces ??= {})[type] = v;
  }
  if (flags.runtimeFlag?.length) o.runtimeFlags = flags.runtimeFlag.map((f) => f.replace(/^--/, ''));
  if (flags.stdin) o.stdin = true;
  for (const u of flags.ulimit ?? []) {
    // podman's TYPE=SOFT[:HARD] (-1 or unlimited: no limit; no HARD: the same as SOFT); `host` is the default here.
    if (u === 'host') continue;
    const m = /^([a-z]+)=(-?\d+|unlimited)(?::(-?\d+|unlimited))?$/.exec(u);
    const bad = (why: string): SkiffError => new SkiffError('ERR_USAGE', `--ulimit ${JSON.stringify(u)}: ${why}`);
    if (!m) throw bad('expected TYPE=SOFT[:HARD]');
    if (!ULIMITS.includes(m[1]!)) throw bad(`unknown type ${JSON.stringify(m[1])} (${ULIMITS.join(', ')})`);
    const num = (v: string): number => (v === 'unlimited' ? -1 : Number(v));
    const soft = num(m[2]!);
    const hard = m[3] !== undefined ? num(m[3]) : soft;
    if (soft < -1 || hard < -1) throw bad('a limit is a number, or -1 for none');
    if (hard >= 0 && (soft < 0 || soft > hard)) throw bad('the soft limit is above the hard one');
    (o.ulimits ??= []).push({ name: m[1]!, soft, hard });
  }
  for (const opt of flags.securityOpt ?? []) {
    const eq = opt.indexOf('=');
    const key = eq < 0 ? opt : opt.slice(0, eq);
    const value = eq < 0 ? '' : opt.slice(eq + 1);
    const bad = (why: string): SkiffError => new SkiffError('ERR_USAGE', `--security-opt ${JSON.stringify(opt)}: ${why}`);
    if (key === 'no-new-privileges') {
      if (!['', 'true', 'false'].includes(value)) throw bad('expected no-new-privileges[=true|false]');
      o.noNewPrivileges = value !== 'false';
    } else if (key === 'label') {
      // (No SELinux labels are set on RUN's container: disabling them is what skiff does anyway.)
      if (value !== 'disable') throw bad('SELinux labels are not supported (label=disable is accepted)');
    } else if (key === 'seccomp') {
      // unconfined, or a profile file in Docker's format (read, and checked, before the build starts).
      if (!value) throw bad('expected seccomp=unconfined or seccomp=PROFILE.json');
      o.seccompProfile = value;
    } else if (key === 'apparmor') {
      if (!value) throw bad('expected apparmor=PROFILE or apparmor=unconfined');
      if (value !== 'unconfined') o.apparmor = value;
    } else if (key === 'mask' || key === 'unmask') {
      const paths = value.split(':').filter(Boolean);
      if (!paths.length || paths.some((x) => !(x.startsWith('/') || (key === 'unmask' && x === 'ALL')))) throw bad(`expected ${key}=/PATH[:/PATH...]${key === 'unmask' ? ' or unmask=ALL' : ''}`);
      (o[key] ??= []).push(...paths);
    } else throw bad('unknown option (no-new-privileges, label=disable, seccomp=, apparmor=, mask=, unmask=)');
  }
  return o;
}

/** A comma-separated `key=value` list (a bare key has the value ''), as --secret and --output take. */
function csvFields(spec: string): Map<string, string> {
  return new Map(spec.split(',').map((f): [string, string] => {
    const eq = f.indexOf('=');
    return eq < 0 ? [f, ''] : [f.slice(0, eq), f.slice(eq + 1)];
  }));
}

type OutputSpec = { type: 'local' | 'tar' | 'oci' | 'docker'; dest?: string };

/** podman's --output: `type=local,dest=DIR`, `type=tar,dest=FILE` (`-` is stdout), `type=oci|docker,dest=FILE`, or a bare path (local; `-` = tar on stdout). */
function parseOutput(spec: string): OutputSpec {
  if (!spec.includes('=')) return spec === '-' ? { type: 'tar', dest: '-' } : { type: 'local', dest: spec };
  const kv = csvFields(spec);
  const type = kv.get('type') ?? 'local';
  if (!['local', 'tar', 'oci', 'docker'].includes(type)) throw new SkiffError('ERR_USAGE', `--output ${spec}: unknown type ${JSON.stringify(type)} (local, tar, oci, docker)`);
  const dest = kv.get('dest');
  if (!dest && type !== 'docker') throw new SkiffError('ERR_USAGE', `--output ${spec}: dest= is required for type=${type}`);
  return { type: type as OutputSpec['type'], ...(dest ? { dest } : {}) };
}

/** `--secret id=ID,src=FILE` or `id=ID,env=VAR` (podman's forms; `type=file|env` optional): contents by id. */
async function readSecrets(list: string[] | undefined): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const spec of list ?? []) {
    const kv = csvFields(spec);
    const id = kv.get('id');
    if (!id) throw new SkiffError('ERR_USAGE', `--secret ${JSON.stringify(spec)}: missing id=`);
    const src = kv.get('src') ?? kv.get('source');
    const env = kv.get('env');
    const type = kv.get('type') ?? (env !== undefined && src === undefined ? 'env' : 'file');
    if (type === 'env') {
      const v = process.env[env ?? src ?? id];
      if (v === undefined) throw new SkiffError('ERR_USAGE', `--secret id=${id}: environment variable ${env ?? src ?? id} is not set`);
      out.set(id, Buffer.from(v));
    } else {
      const file = src ?? id;
      out.set(id, await fsp.readFile(file).catch((e: Error) => {
        throw new SkiffError('ERR_USAGE', `--secret id=${id}: ${file}: ${e.message}`);
      }));
    }
  }
  return out;
}

/** A repository name for cache images (`docker://` optional, no tag). */
function cacheRepo(flag: string, repo: string): string {
  const r = repo.replace(/^docker:\/\//, '');
  if (!r || /[:@][^/]*$/.test(r.replace(/^[^/]*\//, ''))) throw new SkiffError('ERR_USAGE', `--${flag} ${repo}: expected a repository without a tag or digest`);
  return r;
}

/** --cache-from / --cache-to over the copy engine: cache images are `<repo>:<cache key>`. */
function remoteCache(from: string[], to: string | undefined, o: SourceOptions, store: Store, copy: (src: string, dst: string, o: SourceOptions, c: CopyOptions) => Promise<string>): NonNullable<BuildOptions['remoteCache']> {
  const repos = from.map((r) => cacheRepo('cache-from', r));
  const dest = to !== undefined ? cacheRepo('cache-to', to) : undefined;
  return {
    to: dest !== undefined,
    async pull(key) {
      for (const repo of repos) {
        try {
          await copy(`docker://${repo}:${key}`, `containers-storage:${repo}:${key}`, o, {});
        } catch (e) {
          if (e instanceof SkiffError && (e.code === 'ERR_MANIFEST_UNKNOWN' || e.code === 'ERR_IMAGE_NOT_FOUND')) continue;
          throw e;
        }
        return (await store.findImage(`${repo}:${key}`))?.id;
      }
      return undefined;
    },
    async push(id, key) {
      await copy(`containers-storage:${id}`, `docker://${dest}:${key}`, o, {});
    },
  };
}

/** `KEY=VALUE` pairs of --label/--annotation (a bare KEY means an empty value, as podman does). */
function keyValues(flag: string, list: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const a of list ?? []) {
    const eq = a.indexOf('=');
    if (eq === 0) throw new SkiffError('ERR_USAGE', `--${flag} ${JSON.stringify(a)}: missing name`);
    out[eq < 0 ? a : a.slice(0, eq)] = eq < 0 ? '' : a.slice(eq + 1);
  }
  return out;
}

/** `--build-arg K=V` or `--build-arg K` (value from the environment, as podman does). */
function parseBuildArgs(list: string[], files: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = { ...files };
  for (const a of list) {
    const eq = a.indexOf('=');
    if (eq === 0) throw new SkiffError('ERR_USAGE', `--build-arg ${JSON.stringify(a)}: missing name`);
    if (eq < 0) {
      const v = process.env[a];
      if (v !== undefined) out[a] = v;
    } else out[a.slice(0, eq)] = a.slice(eq + 1);
  }
  return out;
}

async function readBuildArgFiles(files: string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const f of files) {
    const text = await fsp.readFile(f, 'utf8').catch((e: Error) => {
      throw new SkiffError('ERR_USAGE', `--build-arg-file ${f}: ${e.message}`);
    });
    for (const [n, line] of text.split('\n').entries()) {
      const l = line.trim();
      if (!l || l.startsWith('#')) continue;
      const eq = l.indexOf('=');
      if (eq <= 0) throw new SkiffError('ERR_USAGE', `${f}:${n + 1}: expected KEY=VALUE`);
      out[l.slice(0, eq)] = l.slice(eq + 1);
    }
  }
  return out;
}

/**
 * buildah's Containerfile.in: `cpp -E -iquote CONTEXT -traditional -undef`, then BUILDAH_CPPFLAGS and --cpp-flag,
 * the file on its standard input (its #include "…" found in the context). cpp's line markers are comments.
 */
function preprocess(file: string, text: string, context: string, flags: string[]): { text: string; where(line: number): string } {
  const extra = process.env.BUILDAH_CPPFLAGS ? process.env.BUILDAH_CPPFLAGS.split(/\s+/).filter(Boolean) : [];
  const r = spawnSync('cpp', ['-E', '-iquote', context, '-traditional', '-undef', ...extra, ...flags, '-'], { input: text, encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.error) throw new SkiffError('ERR_USAGE', `${file}: preprocessing it needs cpp (the C preprocessor): ${r.error.message}`);
  if (r.status !== 0) throw new SkiffError('ERR_USAGE', `preprocessing ${file}: ${r.stderr.trim().replace(/^<stdin>:/gm, `${file}:`)}`);
  // Where each output line came from, by cpp's line markers (`# LINE "FILE" FLAGS`): errors name that place.
  const origin: string[] = [];
  let name = file;
  let next = 1;
  for (const line of r.stdout.split('\n')) {
    const m = /^# (\d+) "((?:[^"\\]|\\.)*)"/.exec(line);
    if (m) {
      next = Number(m[1]);
      name = m[2] === '<stdin>' ? file : m[2]!;
      origin.push('');
      continue;
    }
    origin.push(`${name}:${next++}`);
  }
  return { text: r.stdout, where: (n) => origin[n - 1] || `${file} (after cpp, line ${n})` };
}

/** A Containerfile given as `-f -`. */
async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) throw new SkiffError('ERR_USAGE', '-f -: the Containerfile is read from standard input, which is a terminal: pipe it in');
  return (await readAll(process.stdin)).toString('utf8');
}

/**
 * The Containerfile: -f (relative to the working directory), else Containerfile, then Dockerfile, in the context.
 * (This and the other lookups before the plan are synchronous: a cached build is ~100 ms, and each of these small
 * calls through the thread pool cost more than the call itself.)
 */
function locateContainerfile(context: string, given?: string): string {
  if (given) {
    if (!isFile(given)) throw new SkiffError('ERR_USAGE', `${given}: no such Containerfile`);
    return given;
  }
  for (const n of ['Containerfile', 'Dockerfile']) {
    const p = path.join(context, n);
    if (isFile(p)) return p;
  }
  throw new SkiffError('ERR_USAGE', `no Containerfile or Dockerfile in ${context} (use -f)`);
}

/** Is `name` (a path, or a command looked up in PATH) an executable? */
function executable(name: string): boolean {
  const dirs = name.includes('/') ? [''] : (process.env.PATH ?? '/usr/bin:/bin').split(':');
  return dirs.some((d) => {
    try {
      accessSync(d ? path.join(d, name) : name, fsConstants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * --logfile FILE, as buildah's: everything the build prints, its RUN steps' output and the image ID included, goes
 * to FILE instead of standard output and error. The build runs again as a child whose output is that file (RUN's
 * processes inherit it, as they inherit standard error otherwise); its exit status is the command's.
 */
async function buildIntoLogfile(file: string, extra: string[] = [], drop: string[] = []): Promise<void> {
  const args: string[] = [];
  const argv = process.argv.slice(2);
  // (--logfile FILE or --logfile=FILE, and the flags in `drop` likewise: --platform takes a value, --logsplit none.)
  const valued = new Set(['--logfile', '--platform']);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const name = a.includes('=') ? a.slice(0, a.indexOf('=')) : a;
    if (name === '--logfile' || drop.includes(name)) {
      if (!a.includes('=') && valued.has(name)) i++;
    } else args.push(a);
  }
  args.push(...extra);
  const fd = openSync(file, 'w', 0o600);
  try {
    const { spawn } = await import('node:child_process');
    const code = await new Promise<number>((resolve, reject) => {
      const p = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...args], { stdio: ['inherit', fd, fd] });
      p.on('error', reject);
      p.on('close', (c, sig) => resolve(c ?? (sig ? 128 + (os.constants.signals[sig] ?? 0) : 1)));
    });
    if (code !== 0) throw new SkiffError('ERR_BUILD', '', { exitCode: code });
  } finally {
    closeSync(fd);
  }
}

/** `skiff build`: podman build's flags. Today it parses, validates and plans; --dry-run prints the plan as JSON. */
export function buildCommand(program: Command): void {
  program
    .command('build')
    .alias('bud')
    .description('Build an image from a Containerfile into local storage (--dry-run prints the plan instead)')
    .argument('[context]', 'build context directory', '.')
    .option('-f, --file <file>', 'Containerfile (repeatable: the first is used)', collect)
    .option('-t, --tag <name>', 'name for the image (repeatable)', collect)
    .option('--build-arg <arg>', 'KEY=VALUE, or KEY to take it from the environment (repeatable)', collect)
    .option('--build-arg-file <file>', 'file of KEY=VALUE lines (repeatable)', collect)
    .option('--target <stage>', 'build up to this stage')
    .option('--platform <os/arch[/variant]>', 'target platform')
    .option('--ignorefile <file>', 'ignore file instead of .containerignore/.dockerignore')
    .addOption(new Option('--format <format>', 'image format').choices(['oci', 'docker']))
    .option('--layers [bool]', 'cache intermediate layers (default true)')
    .option('--no-cache', 'do not use cached layers')
    .addOption(new Option('--pull [policy]', 'always, missing, never, newer').choices(['always', 'missing', 'never', 'newer', 'true', 'false']))
    // (The parser makes --tls-verify=false a boolean; as a plain string it used to be ignored.)
    .option('--tls-verify [bool]', 'require HTTPS and verify certificates (false also allows plain http)', (v: string) => v !== 'false')
    .option('--cert-dir <dir>', 'CA and client certificates for registries')
    .option('--creds <user:password>', 'registry credentials')
    .option('--authfile <file>', 'auth.json')
    .option('--squash', 'squash the new layers into one')
    .option('--squash-all', 'squash all layers, the base image\'s too, into one')
    .option('--iidfile <file>', 'write the image ID here')
    .option('--label <k=v>', 'image label (repeatable)', collect)
    .option('--annotation <k=v>', 'manifest annotation (repeatable)', collect)
    .option('-o, --output <spec>', 'type=local|tar|oci,dest=…')
    .option('--secret <spec>', 'id=…,src=… (repeatable)', collect)
    .option('--jobs <n>', 'stages built in parallel')
    .option('--cache-from <repo>', 'registry repository to take cached steps from (repeatable)', collect)
    .option('--cache-to <repo>', 'registry repository to push cached steps to')
    .option('--timestamp <seconds>', 'created time of new layers and the image')
    .option('--network <mode>', 'host or none for RUN')
    .option('--isolation <kind>', 'oci or chroot')
    .option('--runtime <path>', 'OCI runtime')
    .option('-q, --quiet', 'only print the image ID')
    .option('--timings', 'print how long each step took (stderr)')
    .option('--dry-run', 'validate and print the resolved plan as JSON; build nothing')
    .option('--omit-history', 'write no history into the image')
    .option('--stdin', 'RUN steps read skiff\'s standard input (default: none)')
    .option('--identity-label [bool]', 'accepted for podman\'s scripts: skiff adds no builder identity label (buildah\'s io.buildah.version)', (v: string) => v !== 'false')
    .option('--runtime-flag <flag>', 'a global flag for the OCI runtime, without its leading -- (log-format=json, debug; repeatable)', collect)
    .option('--logfile <file>', 'write everything the build prints (steps, RUN output, errors, the image ID) to this file instead')
    .option('--logsplit', 'with --logfile and --platform: one log per platform, FILE_OS_ARCH (buildah\'s)')
    .option('--os-version <version>', 'the OS version the image requires (os.version), instead of the base\'s')
    .option('--os-feature <feature>', 'an OS feature the image requires (os.features), added to the base\'s; FEATURE- removes one (repeatable)', collect)
    .option('--skip-unused-stages [bool]', 'build only the stages the target needs (default true; false builds every stage up to it)', (v: string) => v !== 'false')
    .option('--cache-ttl <duration>', 'use only cached layers made less than this long ago (a Go duration: 30m, 1h30m; 0 is --no-cache)')
    .option('--http-proxy [bool]', 'pass the proxy variables set for skiff (http_proxy, https_proxy, ftp_proxy, no_proxy and upper case) to RUN (default true; never in the image)', (v: string) => v !== 'false')
    .option('--sign-by <fingerprint>', 'sign the image with this GnuPG key (simple signing, kept with it in the store; the first --tag is the name signed)')
    .option('--from <image>', 'the image the first FROM uses instead of the one it names')
    .option('--ssh <default|id[=socket]>', 'an SSH agent for RUN --mount=type=ssh (repeatable)', collect)
    .option('--manifest <list>', 'add the image to this manifest list in local storage (created when missing)')
    .option('--build-context <name=value>', 'a named context for FROM, COPY --from and RUN --mount from=: a directory, or container-image://IMAGE (repeatable)', collect)
    .option('--env <key[=value]>', 'set in the built image\'s environment; KEY alone takes this environment\'s value (repeatable)', collect)
    .option('--unsetenv <key>', 'remove from the built image\'s environment (repeatable)', collect)
    .option('--os <os>', 'target OS (with --arch and --variant, instead of --platform)')
    .option('--arch <arch>', 'target architecture')
    .option('--variant <variant>', 'target architecture variant')
    .option('-v, --volume <host:container[:ro]>', 'a host path bind-mounted into every RUN; what is written there is not in the image (repeatable)', collect)
    .option('--add-host <host:ip>', 'a line added to /etc/hosts in RUN (repeatable)', collect)
    .option('--no-hosts', 'RUN sees the image\'s own /etc/hosts, not one from the host')
    .option('--dns <ip>', 'name server for RUN\'s resolv.conf, or none (repeatable)', collect)
    .option('--dns-search <domain>', 'search domain for RUN\'s resolv.conf (repeatable)', collect)
    .option('--dns-option <option>', 'option for RUN\'s resolv.conf (repeatable)', collect)
    .option('--cap-add <cap>', 'capability added for RUN (repeatable; ALL for every one)', collect)
    .option('--cap-drop <cap>', 'capability dropped for RUN (repeatable; ALL for every one)', collect)
    .option('--ulimit <type=soft[:hard]>', 'a resource limit for RUN, as podman: nofile=1024:2048, nproc=-1 (repeatable)', collect)
    .option('--security-opt <option>', 'RUN\'s container: no-new-privileges, apparmor=, mask=, unmask=; label=disable and seccomp=unconfined are accepted (repeatable)', collect)
    .option('--shm-size <size>', 'size of /dev/shm in RUN (e.g. 64m, 1g; default 64m)')
    .option('-m, --memory <limit>', 'memory limit for RUN (e.g. 512m, 2g; cgroups, OCI runtime)')
    .option('--memory-swap <limit>', 'memory and swap together for RUN (-1: no limit on swap)')
    .option('-c, --cpu-shares <shares>', 'CPU shares (relative weight) for RUN')
    .option('--cpu-period <us>', 'CPU CFS period for RUN, in microseconds')
    .option('--cpu-quota <us>', 'CPU CFS quota for RUN, in microseconds per period')
    .option('--cpuset-cpus <cpus>', 'CPUs RUN may use (0-3, 0,2)')
    .option('--cpuset-mems <nodes>', 'memory nodes RUN may use (0-3, 0,1)')
    .option('--cgroup-parent <path>', 'the cgroup RUN\'s cgroup is made under')
    .option('--all-platforms', 'build for every platform the base images are all available for (with --manifest)')
    .option('--hooks-dir <dir>', 'OCI hooks (oci-hooks(5) JSON files) for RUN\'s containers (repeatable; later directories win)', collect)
    .option('--cpp-flag <flag>', 'a flag for cpp, which preprocesses a Containerfile named *.in (repeatable; also BUILDAH_CPPFLAGS)', collect)
    .option('--pid <mode>', 'RUN\'s PID namespace: private (default), host, or the path of one to join')
    .option('--ipc <mode>', 'RUN\'s IPC namespace: private (default), host, or the path of one to join')
    .option('--uts <mode>', 'RUN\'s UTS namespace (hostname): private (default), host, or the path of one to join')
    .option('--cgroupns <mode>', 'RUN\'s cgroup namespace: host (default) or private')
    .option('--device <host[:container][:perms]>', 'a host device node in RUN\'s /dev, as podman: /dev/fuse, /dev/null:/dev/mine:r (repeatable)', collect)
    .option('--retry <n>', 'retries of a failed base image pull (default 3)', parseIntOption('--retry'))
    .option('--retry-delay <duration>', 'first retry delay, doubled each time (default 1s)', parseDuration)
    .option('--rm [bool]', 'accepted for docker\'s and podman\'s scripts: skiff keeps no build containers')
    .option('--force-rm [bool]', 'accepted for docker\'s and podman\'s scripts: skiff keeps no build containers')
    .option('--disable-compression', 'accepted for podman\'s scripts: layers are stored uncompressed; push compresses')
    .option('--compress', 'accepted for podman\'s scripts (it only concerns layers written to a dir: destination)')
    .option('--disable-content-trust [bool]', 'accepted for docker\'s scripts (podman ignores it too)')
    .action(async (context: string, flags: BuildFlags, cmd: Command) => {
      if (flags.logsplit) {
        // buildah's --logsplit: one build per --platform, each logged to LOGFILE_OS_ARCH.
        if (flags.logfile === undefined) throw new SkiffError('ERR_USAGE', '--logsplit splits the --logfile: give --logfile FILE');
        if (!flags.platform) throw new SkiffError('ERR_USAGE', '--logsplit splits the log per platform: give --platform (one or several, comma-separated)');
        const platforms = platformList(flags.platform);
        if (platforms.length > 1 && !flags.manifest) throw new SkiffError('ERR_USAGE', `--platform ${flags.platform}: several platforms need --manifest LIST to gather the images in`);
        for (const p of platforms) {
          const [pos, parch] = p.split('/');
          await buildIntoLogfile(`${flags.logfile}_${pos}_${parch}`, ['--platform', p], ['--platform', '--logsplit']);
        }
        return;
      }
      if (flags.logfile !== undefined) return buildIntoLogfile(flags.logfile);
      // Downloaded contexts and Containerfiles (URLs) live in temporary directories until the build is done.
      const temps: string[] = [];
      try {
        // `-f -`: the Containerfile comes from standard input (as buildah and docker take it); errors name it `-`.
        const fromStdin = flags.file?.[0] === '-';
        // A URL for the context or the Containerfile is fetched first (buildah's way): an archive is the context,
        // any other file the Containerfile (with an empty context).
        let given = flags.file?.[0];
        if (isRemoteContext(context, 'build context ')) {
          const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'skiff-context-'));
          temps.push(work);
          const r = await fetchContext(context, work, 'build context ');
          context = r.dir;
          if (r.containerfile && given === undefined) given = r.containerfile;
        }
        if (given !== undefined && isGitContext(given)) throw new SkiffError('ERR_USAGE', `-f ${given}: a Containerfile is a file, not a git repository (give the repository as the context, #REF:DIR for a directory in it)`);
        if (given !== undefined && given !== '-' && isRemoteContext(given, '-f ')) {
          const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'skiff-containerfile-'));
          temps.push(work);
          const f = path.join(work, 'Containerfile');
          await download(given, f, undefined, `-f ${given}`);
          given = f;
        }
        const file = fromStdin ? '-' : locateContainerfile(context, given);
        if (!statOf(context)?.isDirectory()) throw new SkiffError('ERR_USAGE', `build context ${context}: no such directory`);
        const buildArgs = parseBuildArgs(flags.buildArg ?? [], await readBuildArgFiles(flags.buildArgFile ?? []));
        const raw = fromStdin ? await readStdin() : readFileSync(file, 'utf8');
        // A Containerfile whose name ends in .in goes through the C preprocessor first, as buildah does it.
        const cpp = file.endsWith('.in') ? preprocess(file, raw, context, flags.cppFlag ?? []) : undefined;
        const text = cpp?.text ?? raw;
        const ignoreAnchor = fromStdin ? undefined : file;
        const secrets = await readSecrets(flags.secret);
        if (flags.jobs !== undefined && !/^\d+$/.test(flags.jobs)) throw new SkiffError('ERR_USAGE', `--jobs ${flags.jobs}: expected a number (0: no limit)`);
        const containerOpts = containerOptions(flags);
        const ssh = parseSsh(flags.ssh);
        // RUN's seccomp filter, as buildah's: the system's profile (containers-common), the one named, or none.
        // A profile named is read now (a bad one fails before anything is pulled); the system's when the first RUN
        // runs (a fully cached build reads none).
        if (containerOpts.seccompProfile !== 'unconfined') {
          const { loadSeccompProfile } = await import('../build/seccomp.js');
          const load = async () => {
            const profile = await loadSeccompProfile(containerOpts.seccompProfile);
            if (!profile) process.stderr.write('skiff: warning: no seccomp profile on this machine (containers-common\'s /usr/share/containers/seccomp.json): RUN steps run without a seccomp filter\n');
            return profile;
          };
          if (containerOpts.seccompProfile !== undefined) containerOpts.seccomp = await load();
          else {
            let once: Promise<SeccompProfile | undefined> | undefined;
            containerOpts.seccomp = () => (once ??= load());
          }
        }
        // --os/--arch/--variant, as podman takes them: the parts of --platform not given are the host's.
        let platform = flags.platform;
        if (flags.os || flags.arch || flags.variant) {
          if (platform) throw new SkiffError('ERR_USAGE', '--platform and --os/--arch/--variant cannot be used together');
          const h = hostPlatform();
          platform = `${flags.os ?? h.os}/${flags.arch ?? h.architecture}${flags.variant ? `/${flags.variant}` : ''}`;
        }
        if (platform) platformList(platform);
        // What both plans (before and after the bases are known) are made with.
        // (A URL context is fetched once the Containerfile is known to be valid; until then it plans as a directory.)
        const fetchLater = new Map<string, string>();
        const contexts: Record<string, NamedContext> = {};
        for (const [name, c] of Object.entries(parseBuildContexts(flags.buildContext))) {
          if ('url' in c) fetchLater.set(name, c.url);
          contexts[name] = 'url' in c ? { dir: c.url } : c;
        }
        // (Validated for the first platform; each build plans again for its own.)
        const planOpts = { file, buildArgs, contexts, ...(flags.skipUnusedStages === false ? { allStages: true } : {}), ...(flags.target ? { target: flags.target } : {}), ...(platform ? { platform: platform.split(',')[0]!.trim() } : {}), ...(flags.from ? { fromOverride: flags.from } : {}) };
        const volumes = await parseVolumes(flags.volume);
        // --env KEY=VALUE, or KEY for this environment's value (empty when it has none, as buildah 1.28 does).
        const envOpts = { env: [] as string[], unset: flags.unsetenv ?? [] };
        for (const e of flags.env ?? []) {
          const eq = e.indexOf('=');
          const key = eq < 0 ? e : e.slice(0, eq);
          if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new SkiffError('ERR_USAGE', `--env ${JSON.stringify(e)}: expected KEY=VALUE or KEY`);
          envOpts.env.push(eq >= 0 ? e : `${key}=${process.env[key] ?? ''}`);
        }
        // --isolation (or BUILDAH_ISOLATION, as buildah reads it): oci, or chroot; with no runtime installed, chroot.
        let isolation = flags.isolation ?? process.env.BUILDAH_ISOLATION;
        if (isolation !== undefined && isolation !== 'oci' && isolation !== 'chroot') throw new SkiffError('ERR_USAGE', `--isolation ${isolation}: expected oci or chroot`);
        if (isolation === undefined) {
          // (A PATH lookup, not a run of the runtime: this is on every build's path, cached ones too.)
          if (!executable(flags.runtime ?? 'runc')) {
            process.stderr.write(`skiff: warning: no OCI runtime (${flags.runtime ?? 'runc'}) found: RUN steps use --isolation chroot\n`);
            isolation = 'chroot';
          }
        }
        for (const [k, v] of Object.entries(containerOpts.namespaces ?? {})) {
          if (isolation === 'chroot' && path.isAbsolute(v)) throw new SkiffError('ERR_USAGE', `--${k === 'cgroup' ? 'cgroupns' : k} ${v}: joining a namespace needs the OCI runtime, not --isolation chroot`);
        }
        const output = flags.output !== undefined ? parseOutput(flags.output) : undefined;
        if (output?.type === 'docker' && !output.dest && !flags.tag?.length) throw new SkiffError('ERR_USAGE', '--output type=docker loads the image into the Docker daemon under its -t name: give -t (or dest=FILE for a docker-archive)');
        // The front end (dockerfile-ast and friends) is loaded only when building.
        const { planContainerfile, PROXY_ARGS } = await import('../build/containerfile/plan.js');
        const { findIgnoreFile } = await import('../build/containerfile/ignore.js');
        let plan: ReturnType<typeof planContainerfile>;
        try {
          plan = planContainerfile(text, planOpts);
        } catch (e) {
          // (Lines of the preprocessed text, named as the lines of the file they came from.)
          if (cpp && e instanceof SkiffError) e.message = e.message.split(`${file}:`).map((part, i) => (i === 0 ? part : part.replace(/^(\d+):/, (_m, n: string) => `${cpp.where(Number(n))}:`))).join('');
          throw e;
        }
        if (flags.ignorefile && !existsSync(flags.ignorefile)) throw new SkiffError('ERR_USAGE', `--ignorefile ${flags.ignorefile}: no such file`);
        const ignorefile = findIgnoreFile(context, ignoreAnchor, flags.ignorefile);
        for (const a of plan.unusedBuildArgs) process.stderr.write(`skiff: warning: build argument ${a} was not consumed by any ARG\n`);
        if (flags.dryRun) {
          await writeOut(`${JSON.stringify({ ...plan, context: path.resolve(context), ignorefile: ignorefile ?? null, tags: flags.tag ?? [] }, null, 2)}\n`);
          return;
        }
        let cacheTtl: number | undefined;
        if (flags.cacheTtl !== undefined) {
          try {
            cacheTtl = parseDuration(flags.cacheTtl);
          } catch (e) {
            throw new SkiffError('ERR_USAGE', `--cache-ttl: ${(e as Error).message}`);
          }
        }
        // --sign-by: checked before building (a wrong fingerprint found after the build would waste it).
        let signBy: ((manifest: Buffer, identity: string) => Promise<Buffer>) | undefined;
        if (flags.signBy) {
          if (!flags.tag?.length) throw new SkiffError('ERR_USAGE', '--sign-by: the image needs a name (-t) for the signature to vouch for');
          signBy = await (await import('./sign.js')).signerFor(flags.signBy);
        }
        for (const [name, url] of fetchLater) {
          const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'skiff-context-'));
          temps.push(work);
          const r = await fetchContext(url, work, `--build-context ${name}=`);
          if (r.containerfile) throw new SkiffError('ERR_USAGE', `--build-context ${name}=${url}: not an archive (a tar, plain or compressed)`);
          contexts[name] = { dir: r.dir };
        }
        // Everything is valid: now get the base images, and plan again with their ENV known (FROM's ENV is visible
        // to later expansions, as in BuildKit).
        const g = cmd.optsWithGlobals() as GlobalOptions;
        const { pullIntoStore, copyBetween } = await import('./storage.js');
        const { Builder } = await import('../build/builder.js');
        const { loadIgnore } = await import('../build/containerfile/ignore.js');
        const store = await storeOf(g);
        const regOpts = { ...podmanRegistryOptions({ ...(flags as unknown as Record<string, unknown>), retryTimes: flags.retry, retryDelay: flags.retryDelay }), storage: storageFrom(g) };
        const bases = new Map<string, string>();
        /** One build for one target platform (undefined: the host's); resolves with the image ID. */
        const buildFor = async (target: string | undefined): Promise<string> => {
          // --pull: missing (default) uses a local image; always and true pull every time; newer pulls (only what
          // changed is fetched) but keeps the local image when the registry cannot be reached; never/false never pull.
          // For a platform (FROM --platform, or --platform) a local image counts only if it is for that platform (the
          // name may point at another platform's image, pulled before); otherwise that platform's is pulled.
          const pullBase = async (image: string, wanted?: string): Promise<string> => {
            const plat = wanted ?? target;
            const key = plat ? `${image}|${plat}` : image;
            const policy = flags.pull === undefined ? 'missing' : flags.pull === 'true' ? 'always' : flags.pull === 'false' ? 'never' : flags.pull;
            let local = bases.get(key);
            // With no platform asked for, a local image for another platform is still a fallback (a base built
            // here for another architecture has nowhere to be pulled from).
            let otherPlatform: string | undefined;
            if (!local && policy !== 'always') {
              const img = await store.findImage(image);
              const host = formatPlatform(hostPlatform());
              if (img && (await isForPlatform(store, img, plat ?? host))) local = img.id;
              else if (img && plat && policy === 'never') throw new SkiffError('ERR_IMAGE_NOT_FOUND', `FROM ${image}: the local image is not for ${plat}, and --pull=never`);
              else if (img && !plat) {
                if (policy === 'never') local = img.id;
                else otherPlatform = img.id;
              }
            }
            if (local && (bases.has(key) || policy !== 'newer')) return local;
            if (!local && policy === 'never') throw new SkiffError('ERR_IMAGE_NOT_FOUND', `FROM ${image}: not in local storage and --pull=never`);
            let id: string;
            try {
              const choice = plat ? parsePlatform(plat) : undefined;
              id = await pullIntoStore(image, choice ? { ...regOpts, platform: choice } : regOpts, g, !!flags.quiet);
            } catch (e) {
              if (otherPlatform) {
                process.stderr.write(`skiff: warning: FROM ${image}: the local image is for another platform, and pulling this one's failed (${(e as Error).message}): using the local image\n`);
                id = otherPlatform;
              } else {
                if (!local || !(e instanceof SkiffError) || e.code !== 'ERR_NETWORK') throw e;
                process.stderr.write(`skiff: warning: --pull=newer: ${e.message}; using the local ${image}\n`);
                id = local;
              }
            }
            bases.set(key, id);
            return id;
          };
          const baseEnv = new Map<string, string[]>();
          const baseOnBuild = new Map<string, string[]>();
          for (const st of plan.stages) {
            if (st.from.stage !== undefined || st.from.image === 'scratch') continue;
            const id = await pullBase(st.from.image, st.from.platform);
            const img = (await store.images()).find((i) => i.id === id);
            const cfg = img ? await store.bigData(img, `sha256:${img.id}`) : undefined;
            const c = cfg ? (JSON.parse(cfg.toString()) as { config?: { Env?: string[]; OnBuild?: string[] | null } }).config : undefined;
            baseEnv.set(st.from.image, c?.Env ?? []);
            if (c?.OnBuild?.length) baseOnBuild.set(st.from.image, c.OnBuild);
          }
          const full = planContainerfile(text, { ...planOpts, ...(target ? { platform: target } : {}), baseEnv: (image) => baseEnv.get(image), baseOnBuild: (image) => baseOnBuild.get(image) });
          const timestamp = flags.timestamp !== undefined ? Number(flags.timestamp) : process.env.SOURCE_DATE_EPOCH ? Number(process.env.SOURCE_DATE_EPOCH) : undefined;
          const builder = new Builder({
            plan: full,
            contextDir: context,
            ignore: loadIgnore(context, ignoreAnchor, flags.ignorefile),
            store,
            tags: flags.tag ?? [],
            network: flags.network === 'none' ? 'none' : 'host',
            container: containerOpts,
            ...(flags.omitHistory ? { omitHistory: true } : {}),
            ...(flags.httpProxy === false ? { httpProxy: false } : {}),
            ...(flags.osVersion !== undefined ? { osVersion: flags.osVersion } : {}),
            ...(flags.osFeature?.length ? { osFeatures: flags.osFeature } : {}),
            proxyArgs: Object.fromEntries(Object.entries(buildArgs).filter(([k]) => PROXY_ARGS.has(k))),
            ...(signBy ? { sign: signBy } : {}),
            ...(envOpts.env.length ? { env: envOpts.env } : {}),
            ...(envOpts.unset.length ? { unsetEnv: envOpts.unset } : {}),
            ...(volumes.length ? { volumes } : {}),
            ...(flags.runtime ? { runtime: flags.runtime } : {}),
            ...(isolation ? { isolation: isolation as 'oci' | 'chroot' } : {}),
            ...(timestamp !== undefined && Number.isFinite(timestamp) ? { timestamp } : {}),
            pullBase,
            ...(target ? { platform: target } : {}),
            ...(flags.format ? { format: flags.format } : {}),
            labels: keyValues('label', flags.label),
            secrets,
            ...(ssh ? { ssh } : {}),
            ...(flags.cacheFrom?.length || flags.cacheTo ? { remoteCache: remoteCache(flags.cacheFrom ?? [], flags.cacheTo, regOpts, store, copyBetween) } : {}),
            ...(flags.jobs !== undefined ? { jobs: Number(flags.jobs) === 0 ? Infinity : Number(flags.jobs) } : {}),
            ...(flags.squashAll ? { squash: 'all' as const } : flags.squash ? { squash: 'new' as const } : {}),
            annotations: keyValues('annotation', flags.annotation),
            cache: flags.cache !== false && flags.layers !== 'false' && flags.layers !== false && cacheTtl !== 0,
            ...(cacheTtl !== undefined ? { cacheTtlMs: cacheTtl } : {}),
            ...(flags.timings ? { timing: (line: string) => void process.stderr.write(`[timings] ${line}\n`) } : {}),
            log: (line) => {
              if (!flags.quiet) process.stderr.write(`${line}\n`);
            },
            warn: (line) => void process.stderr.write(`${line}\n`),
          });
          return builder.build();
        };
        if (flags.allPlatforms) {
          // podman's --all-platforms: every platform all the base images are available for (scratch says nothing).
          if (platform) throw new SkiffError('ERR_USAGE', '--all-platforms and --platform (or --os/--arch/--variant) cannot be used together');
          if (!flags.manifest) throw new SkiffError('ERR_USAGE', '--all-platforms builds one image per platform: give --manifest LIST to gather them in');
          const { imagePlatforms } = await import('./storage.js');
          let common: string[] | undefined;
          for (const st of plan.stages) {
            if (st.from.stage !== undefined || st.from.image === 'scratch' || st.from.platform) continue;
            const these = await imagePlatforms(st.from.image, regOpts);
            common = common ? common.filter((x) => these.includes(x)) : these;
          }
          if (!common) throw new SkiffError('ERR_USAGE', '--all-platforms: no base image to take platforms from (scratch has none): use --platform');
          if (!common.length) throw new SkiffError('ERR_USAGE', '--all-platforms: the base images have no platform in common');
          platform = common.join(',');
        }
        const platforms = platform ? platform.split(',').map((x) => x.trim()) : [undefined];
        if (platforms.length > 1) {
          // podman's multi-platform build: one image per platform, gathered in the --manifest list; its ID is printed.
          if (!flags.manifest) throw new SkiffError('ERR_USAGE', `--platform ${platform}: several platforms need --manifest LIST to gather the images in`);
          if (flags.tag?.length || output) throw new SkiffError('ERR_USAGE', `--platform ${platform}: several platforms give one image each: name the list with --manifest, not -t or --output`);
          const { addToList } = await import('./manifest.js');
          for (const p of platforms) {
            if (!flags.quiet) process.stderr.write(`[${p}]\n`);
            await addToList(store, flags.manifest, await buildFor(p));
          }
          const { localImageName } = await import('../core/reference.js');
          const list = await store.findImage(localImageName(flags.manifest));
          await writeOut(`${list!.id}\n`);
          return;
        }
        const id = await buildFor(platforms[0]);
        if (flags.manifest) await (await import('./manifest.js')).addToList(store, flags.manifest, id);
        if (flags.iidfile) await fsp.writeFile(flags.iidfile, `sha256:${id}`);
        if (!flags.quiet && flags.tag?.length) process.stderr.write(`COMMIT ${flags.tag.join(', ')}\n`);
        if (output) {
          if (output.type === 'local' || output.type === 'tar') {
            const { exportRootfs } = await import('../build/export.js');
            await exportRootfs(store, id, { type: output.type, dest: output.dest! });
          } else {
            // The image itself, through the copy engine: an OCI archive, a docker-archive, or the Docker daemon.
            const { copyBetween } = await import('./storage.js');
            const { formatDockerReference, parseDockerReference, withDefaultTag } = await import('../core/reference.js');
            const name = flags.tag?.[0] ? formatDockerReference(withDefaultTag(parseDockerReference(flags.tag[0]))) : undefined;
            const dest = output.type === 'oci' ? `oci-archive:${output.dest}` : output.dest ? `docker-archive:${output.dest}${name ? `:${name}` : ''}` : `docker-daemon:${name}`;
            await copyBetween(`containers-storage:${id}`, dest, regOpts, {});
          }
          if (!flags.quiet) process.stderr.write(`Output written to ${output.dest ?? 'the Docker daemon'} (type=${output.type})\n`);
          if (output.dest === '-') return;
        }
        await writeOut(`${id}\n`);
      } finally {
        for (const d of temps) await fsp.rm(d, { recursive: true, force: true });
      }
    });
}
