/**
 * Running one RUN step: an overlay mount of the image's layers with a fresh upper dir, an OCI runtime bundle
 * (runc), and the upper dir left behind for the differ. Runs as root or inside the user namespace skiff enters for
 * an unprivileged user (then the overlay is mounted with `userxattr`).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { SkiffError } from '../core/errors.js';
import { isRootless } from '../store/userns.js';
import { ociSeccomp, type SeccompProfile } from './seccomp.js';

export interface RunSpec {
  /** Layer diff dirs, base first. */
  lowers: string[];
  /** A scratch dir for this step: upper/, work/, merged/, bundle/ go inside. */
  dir: string;
  args: string[];
  env: string[];
  cwd: string;
  user: string;
  network: 'host' | 'none';
  runtime?: string;
  /** More OCI mounts (RUN --mount, heredoc scripts), after the standard ones. */
  mounts?: OciMount[];
  /** `oci` (default): an OCI runtime; `chroot`: namespaces and a chroot made with util-linux, no runtime. */
  isolation?: 'oci' | 'chroot';
  /** podman build's --add-host, --no-hosts, --dns*, --cap-add/--cap-drop, --shm-size. */
  container?: ContainerOptions;
}

/** How RUN's container is set up beyond the defaults (podman build's flags of the same names). */
export interface ContainerOptions {
  /** `HOST:IP` lines added to /etc/hosts. */
  addHosts?: string[];
  /** No /etc/hosts from the host: the image's own stays. */
  noHosts?: boolean;
  /** resolv.conf: these name servers (`none`: no resolv.conf from the host), search domains, options. */
  dns?: string[];
  dnsSearch?: string[];
  dnsOptions?: string[];
  capAdd?: string[];
  capDrop?: string[];
  /** /dev/shm's size in bytes. */
  shmSize?: number;
  /** --ulimit: resource limits (`name` as podman spells it: nofile, nproc, …; -1 is unlimited). */
  ulimits?: Ulimit[];
  /** --security-opt no-new-privileges. */
  noNewPrivileges?: boolean;
  /** --security-opt apparmor=PROFILE (OCI runtime only). */
  apparmor?: string;
  /** --security-opt mask=PATHS: more paths masked; unmask=PATHS|ALL: fewer (OCI runtime only). */
  mask?: string[];
  unmask?: string[];
  /** --security-opt seccomp=: `unconfined`, or a profile file; undefined is the system's default profile. */
  seccompProfile?: string;
  /**
   * --pid, --ipc, --uts, --cgroupns: `host` shares skiff's namespace, a path joins that one (OCI runtime only);
   * unset (or `private`) is a new one (for cgroup: none, as before).
   */
  namespaces?: Partial<Record<'pid' | 'ipc' | 'uts' | 'cgroup', 'private' | 'host' | string>>;
  /**
   * podman build's cgroup limits for RUN (OCI runtime only): -m/--memory and --memory-swap in bytes (-1: no limit
   * on swap), -c/--cpu-shares, --cpu-period and --cpu-quota (µs), --cpuset-cpus and --cpuset-mems, and the
   * --cgroup-parent RUN's cgroup is made under.
   */
  resources?: { memory?: number; memorySwap?: number; cpuShares?: number; cpuPeriod?: number; cpuQuota?: number; cpusetCpus?: string; cpusetMems?: string };
  cgroupParent?: string;
  /** --hooks-dir: OCI hooks (oci-hooks(5)) from these directories, later ones masking earlier files of the same name. */
  hooks?: OciHook[];
  /** --device: host device nodes in RUN's /dev (the node at `container`, with cgroup access `perms`, rwm). */
  devices?: Device[];
  /** --stdin: RUN's standard input is skiff's (default: none). */
  stdin?: boolean;
  /** --runtime-flag: global flags for the OCI runtime, without their leading `--` (`log-format=json`, `debug`). */
  runtimeFlags?: string[];
  /** The seccomp profile in effect (from seccompProfile; OCI runtime only), or what reads it when a RUN first needs it. */
  seccomp?: SeccompProfile | (() => Promise<SeccompProfile | undefined>);
}

/** One oci-hooks(5) 1.0.0 file: the hook, when it applies (every condition given must match), its stages. */
export interface OciHook {
  file: string;
  hook: { path: string; args?: string[]; env?: string[]; timeout?: number };
  when: { always?: boolean; annotations?: Record<string, string>; commands?: string[]; hasBindMounts?: boolean };
  stages: string[];
}

export const HOOK_STAGES = ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'];

/** The hooks that apply to a RUN container, by stage, in file-name order (oci-hooks(5)). */
function ociHooks(hooks: OciHook[] | undefined, args: string[], mounts: OciMount[]): Record<string, unknown[]> | undefined {
  if (!hooks?.length) return undefined;
  const out: Record<string, unknown[]> = {};
  for (const h of [...hooks].sort((a, b) => (path.basename(a.file) < path.basename(b.file) ? -1 : 1))) {
    const w = h.when;
    const checks: boolean[] = [];
    if (w.always !== undefined) checks.push(w.always);
    // (RUN's containers carry no annotations: a hook that asks for one does not apply.)
    if (w.annotations && Object.keys(w.annotations).length) checks.push(false);
    if (w.commands?.length) checks.push(w.commands.some((re) => new RegExp(re).test(args[0] ?? '')));
    if (w.hasBindMounts !== undefined) checks.push(w.hasBindMounts === mounts.some((m) => m.type === 'bind'));
    if (!checks.length || checks.some((c) => !c)) continue;
    for (const stage of h.stages) (out[stage] ??= []).push({ path: h.hook.path, ...(h.hook.args ? { args: h.hook.args } : {}), ...(h.hook.env ? { env: h.hook.env } : {}), ...(h.hook.timeout !== undefined ? { timeout: h.hook.timeout } : {}) });
  }
  return Object.keys(out).length ? out : undefined;
}

export interface Device {
  host: string;
  container: string;
  perms: string;
  /** From the host node: character or block, its numbers and mode. */
  type: 'c' | 'b';
  major: number;
  minor: number;
  mode: number;
}

export interface Ulimit {
  name: string;
  soft: number;
  hard: number;
}

/** The resource limits --ulimit takes (podman's names; each is RLIMIT_<NAME> in the OCI config). */
export const ULIMITS = ['as', 'core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile', 'nproc', 'rss', 'rtprio', 'rttime', 'sigpending', 'stack'];

/** The paths runc masks and makes read-only in every RUN container (podman's --security-opt mask/unmask change them). */
const MASKED = ['/proc/kcore', '/proc/keys', '/proc/timer_list'];
const READONLY = ['/proc/sys', '/proc/sysrq-trigger'];

/** The masked and read-only paths with --security-opt mask and unmask applied. */
function maskedPaths(o: ContainerOptions | undefined): { maskedPaths: string[]; readonlyPaths: string[] } {
  const all = o?.unmask?.includes('ALL');
  const keep = (p: string): boolean => !all && !o?.unmask?.includes(p);
  return { maskedPaths: [...MASKED.filter(keep), ...(o?.mask ?? [])], readonlyPaths: READONLY.filter(keep) };
}

/** RLIM_INFINITY: 2^64-1, which a JSON number from JavaScript cannot spell. */
const INFINITY_MARK = 'skiff-rlim-infinity';

/** The OCI rlimits; unlimited ones carry a mark that configJSON turns into 18446744073709551615. */
export function rlimits(o: ContainerOptions | undefined): { type: string; soft: number | string; hard: number | string }[] | undefined {
  if (!o?.ulimits?.length) return undefined;
  const v = (n: number): number | string => (n < 0 ? INFINITY_MARK : n);
  return o.ulimits.map((u) => ({ type: `RLIMIT_${u.name.toUpperCase()}`, soft: v(u.soft), hard: v(u.hard) }));
}

/** The OCI config as JSON, unlimited rlimits spelled 18446744073709551615. */
export function configJSON(config: unknown): string {
  return JSON.stringify(config).replaceAll(`"${INFINITY_MARK}"`, '18446744073709551615');
}

/**
 * --device in the OCI config: each node in linux.devices (the runtime makes it, or binds the host's in a user
 * namespace, where nodes cannot be made) and allowed in the device cgroup with its permissions.
 */
function ociDevices(o: ContainerOptions | undefined): { devices?: unknown[]; resources?: Record<string, unknown> } {
  if (!o?.devices?.length) return {};
  return {
    devices: o.devices.map((d) => ({ path: d.container, type: d.type, major: d.major, minor: d.minor, fileMode: d.mode, uid: 0, gid: 0 })),
    resources: { devices: o.devices.map((d) => ({ allow: true, type: d.type, major: d.major, minor: d.minor, access: d.perms })) },
  };
}

/**
 * Can RUN's cgroup limits be applied? As root, yes; an unprivileged user's only through cgroups v2 (delegated to
 * the user); on cgroups v1 podman ignores them with a warning, and so does skiff (the builder warns).
 */
export function cgroupLimitsApply(): boolean {
  return !isRootless() || existsSync('/sys/fs/cgroup/cgroup.controllers');
}

/** The OCI config's linux.resources: the device rules above and the cgroup limits. */
function ociResources(o: ContainerOptions | undefined): { devices?: unknown[]; resources?: Record<string, unknown> } {
  const dev = ociDevices(o);
  const r = o?.resources;
  if (!r || !cgroupLimitsApply()) return dev;
  const memory = { ...(r.memory !== undefined ? { limit: r.memory } : {}), ...(r.memorySwap !== undefined ? { swap: r.memorySwap } : {}) };
  const cpu = {
    ...(r.cpuShares !== undefined ? { shares: r.cpuShares } : {}),
    ...(r.cpuQuota !== undefined ? { quota: r.cpuQuota } : {}),
    ...(r.cpuPeriod !== undefined ? { period: r.cpuPeriod } : {}),
    ...(r.cpusetCpus !== undefined ? { cpus: r.cpusetCpus } : {}),
    ...(r.cpusetMems !== undefined ? { mems: r.cpusetMems } : {}),
  };
  return {
    ...dev,
    resources: { ...(dev.resources ?? {}), ...(Object.keys(memory).length ? { memory } : {}), ...(Object.keys(cpu).length ? { cpu } : {}) },
  };
}

/** util-linux's prlimit and setpriv before a command: --ulimit and no-new-privileges without an OCI runtime. */
export function chrootWrappers(o: ContainerOptions | undefined): string[] {
  const out: string[] = [];
  if (o?.ulimits?.length) out.push('prlimit', ...o.ulimits.map((u) => `--${u.name}=${u.soft < 0 ? 'unlimited' : u.soft}:${u.hard < 0 ? 'unlimited' : u.hard}`), '--');
  if (o?.noNewPrivileges) out.push('setpriv', '--no-new-privs', '--');
  return out;
}

/** Every capability Linux 5.9+ knows, for `--cap-add ALL`. */
const ALL_CAPS = ['CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'SETPCAP', 'LINUX_IMMUTABLE', 'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_ADMIN', 'NET_RAW', 'IPC_LOCK', 'IPC_OWNER', 'SYS_MODULE', 'SYS_RAWIO', 'SYS_CHROOT', 'SYS_PTRACE', 'SYS_PACCT', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_NICE', 'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'MKNOD', 'LEASE', 'AUDIT_WRITE', 'AUDIT_CONTROL', 'SETFCAP', 'MAC_OVERRIDE', 'MAC_ADMIN', 'SYSLOG', 'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ', 'PERFMON', 'BPF', 'CHECKPOINT_RESTORE'].map((c) => `CAP_${c}`);

/** A capability name as given (`net_raw`, `CAP_NET_RAW`, `ALL`) in its canonical form; unknown names are errors. */
export function capabilityName(c: string): string {
  const n = c.toUpperCase();
  if (n === 'ALL') return n;
  const full = n.startsWith('CAP_') ? n : `CAP_${n}`;
  if (!ALL_CAPS.includes(full)) throw new SkiffError('ERR_USAGE', `unknown capability ${JSON.stringify(c)}`);
  return full;
}

/** The default set with --cap-add and --cap-drop applied (drops first, as podman does; ALL works both ways). */
function capabilities(o: ContainerOptions | undefined): string[] {
  const caps = new Set(CAPS);
  for (const c of o?.capDrop ?? []) {
    if (c === 'ALL') caps.clear();
    else caps.delete(c);
  }
  for (const c of o?.capAdd ?? []) for (const x of c === 'ALL' ? ALL_CAPS : [c]) caps.add(x);
  return [...caps];
}

/**
 * A unix socket at `at` (mode, owner as given) whose every connection is piped to the socket at `to`: RUN's view of
 * an SSH agent (--ssh), so the step can use the agent whatever its user, and never touches the agent's own socket.
 * Resolves with a function that closes it (connections still open are cut).
 */
export async function forwardSocket(at: string, to: string, mode: number, uid: number, gid: number): Promise<() => Promise<void>> {
  const { createServer, connect } = await import('node:net');
  const open = new Set<import('node:net').Socket>();
  const server = createServer((c) => {
    const a = connect(to);
    for (const s of [c, a]) {
      open.add(s);
      s.on('close', () => open.delete(s));
      s.on('error', () => {
        c.destroy();
        a.destroy();
      });
    }
    c.pipe(a).pipe(c);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(at, () => resolve());
  });
  await fsp.chmod(at, mode);
  await fsp.chown(at, uid, gid);
  return async () => {
    for (const s of open) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
}

/** The /etc/hosts and /etc/resolv.conf bind mounts for a RUN container, files written into `dir` when changed. */
async function networkFiles(dir: string, o: ContainerOptions | undefined): Promise<OciMount[]> {
  const out: OciMount[] = [];
  const read = (f: string): Promise<string | undefined> => fsp.readFile(f, 'utf8').catch(() => undefined);
  const bind = (destination: string, source: string): number => out.push({ destination, type: 'bind', source, options: ['rbind', 'ro'] });
  if (!o?.noHosts) {
    const hosts = await read('/etc/hosts');
    if (o?.addHosts?.length) {
      const f = path.join(dir, 'hosts');
      const added = o.addHosts.map((h) => {
        const i = h.indexOf(':');
        return `${h.slice(i + 1)}\t${h.slice(0, i)}\n`;
      });
      await fsp.writeFile(f, `${hosts ?? ''}${hosts && !hosts.endsWith('\n') ? '\n' : ''}${added.join('')}`);
      bind('/etc/hosts', f);
    } else if (hosts !== undefined) bind('/etc/hosts', '/etc/hosts');
  }
  if (o?.dns?.includes('none')) return out;
  if (o?.dns?.length || o?.dnsSearch?.length || o?.dnsOptions?.length) {
    const host = (await read('/etc/resolv.conf')) ?? '';
    // (What is not given comes from the host's file.)
    const keep = (key: string): string[] => host.split('\n').filter((l) => l.trim().startsWith(key));
    const lines = [
      ...(o.dns?.length ? o.dns.map((d) => `nameserver ${d}`) : keep('nameserver')),
      ...(o.dnsSearch?.length ? [`search ${o.dnsSearch.join(' ')}`] : keep('search')),
      ...(o.dnsOptions?.length ? [`options ${o.dnsOptions.join(' ')}`] : keep('options')),
    ];
    const f = path.join(dir, 'resolv.conf');
    await fsp.writeFile(f, `${lines.join('\n')}\n`);
    bind('/etc/resolv.conf', f);
  } else if (await fsp.stat('/etc/resolv.conf').then(() => true, () => false)) bind('/etc/resolv.conf', '/etc/resolv.conf');
  return out;
}

/**
 * chroot isolation (buildah's `--isolation chroot`): new pid/mount/uts/ipc (and network, for `none`) namespaces,
 * /proc, a /dev of the host's basic nodes, /sys read-only, hosts and resolv.conf, the step's mounts, then
 * `unshare --root --wd --setuid --setgid` runs the command. Arguments: merged dir, cwd, uid, gid, /dev/shm size,
 * the host namespaces shared (P pid, U uts, I ipc; `-` none), mount quads (type source destination ro|rw|options), `--`, the command. (--cap-add/--cap-drop need the runtime.)
 */
const CHROOT_SCRIPT = `
M=$1; W=$2; U=$3; G=$4; SHM=$5; HOSTNS=$6; shift 6
CP=$PATH; PATH=/usr/sbin:/usr/bin:/sbin:/bin
UNSHARE=$(command -v unshare)
case $HOSTNS in *U*) ;; *) hostname skiff-build ;; esac
mkdir -p "$M/proc" "$M/dev" "$M/sys"
case $HOSTNS in *P*) mount --rbind /proc "$M/proc" ;; *) mount -t proc proc "$M/proc" ;; esac
mount -t tmpfs -o nosuid,mode=755,size=65536k tmpfs "$M/dev"
for n in null zero full random urandom tty; do touch "$M/dev/$n"; mount --bind "/dev/$n" "$M/dev/$n"; done
mkdir -p "$M/dev/shm" "$M/dev/pts"
case $HOSTNS in *I*) mount --rbind /dev/shm "$M/dev/shm" ;; *) mount -t tmpfs -o nosuid,nodev,noexec,mode=1777,size=$SHM shm "$M/dev/shm" ;; esac
ln -s /proc/self/fd "$M/dev/fd"; ln -s /proc/self/fd/0 "$M/dev/stdin"; ln -s /proc/self/fd/1 "$M/dev/stdout"; ln -s /proc/self/fd/2 "$M/dev/stderr"
mount --rbind /sys "$M/sys"; mount -o remount,bind,ro "$M/sys" 2>/dev/null || true
while [ "$1" != "--" ]; do
  T=$1; S=$2; D="$M$3"; O=$4; shift 4
  if [ "$T" = tmpfs ]; then mkdir -p "$D"; mount -t tmpfs -o "$O" tmpfs "$D"; continue; fi
  if [ -d "$S" ]; then mkdir -p "$D"; else mkdir -p "$(dirname "$D")"; [ -e "$D" ] || touch "$D"; fi
  mount --rbind "$S" "$D"
  if [ "$O" = ro ]; then mount -o remount,bind,ro "$D"; fi
done
shift
PATH=$CP; export PATH
exec "$UNSHARE" --root="$M" --wd="$W" --setgid "$G" --setuid "$U" -- "$@"
`;

export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options?: string[];
}

/** Run a command; with `inherit` its output goes to our stderr (stdout is for data: the image ID). */
function exec(cmd: string, args: string[], inherit = false, stdin = false): Promise<{ code: number; err: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: inherit ? [stdin ? 0 : 'ignore', 2, 2] : ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr?.on('data', (c: Buffer) => (err += c.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, err }));
  });
}

/** Resolve USER (name or uid[:gid]) through the image's /etc/passwd and /etc/group. */
async function resolveUser(root: string, user: string): Promise<{ uid: number; gid: number; additionalGids: number[] }> {
  if (!user) user = '0';
  const [u = '', g] = user.split(':');
  const passwd = await fsp.readFile(path.join(root, 'etc/passwd'), 'utf8').catch(() => '');
  const group = await fsp.readFile(path.join(root, 'etc/group'), 'utf8').catch(() => '');
  let uid = Number.NaN;
  let gid = Number.NaN;
  if (/^\d+$/.test(u)) uid = Number(u);
  for (const line of passwd.split('\n')) {
    const f = line.split(':');
    if (f[0] === u || (f[2] !== undefined && Number(f[2]) === uid)) {
      uid = Number(f[2]);
      gid = Number(f[3]);
      break;
    }
  }
  if (Number.isNaN(uid)) throw new SkiffError('ERR_BUILD', `USER ${user}: no such user in the image's /etc/passwd`);
  if (g !== undefined) {
    if (/^\d+$/.test(g)) gid = Number(g);
    else {
      const line = group.split('\n').find((l) => l.split(':')[0] === g);
      if (!line) throw new SkiffError('ERR_BUILD', `USER ${user}: no such group in the image's /etc/group`);
      gid = Number(line.split(':')[2]);
    }
  }
  const primary = Number.isNaN(gid) ? 0 : gid;
  // Supplementary groups as Docker sets them: the primary group and every group listing the user by name.
  const name = passwd.split('\n').map((l) => l.split(':')).find((f) => f[2] !== undefined && Number(f[2]) === uid)?.[0];
  const extra = new Set<number>([primary]);
  for (const line of group.split('\n')) {
    const f = line.split(':');
    if (name && f[3]?.split(',').includes(name) && /^\d+$/.test(f[2] ?? '')) extra.add(Number(f[2]));
  }
  return { uid, gid: primary, additionalGids: [...extra] };
}

const CAPS = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_NET_BIND_SERVICE', 'CAP_SETFCAP', 'CAP_SETGID', 'CAP_SETPCAP', 'CAP_SETUID', 'CAP_SYS_CHROOT'];

/** Run the step; resolves with the upper dir (the step's changes). Throws ERR_BUILD with the exit code. */
export async function runStep(s: RunSpec): Promise<string> {
  const upper = path.join(s.dir, 'upper');
  const work = path.join(s.dir, 'work');
  const merged = path.join(s.dir, 'merged');
  const bundle = path.join(s.dir, 'bundle');
  const empty = path.join(s.dir, 'empty');
  for (const d of [upper, work, merged, bundle, empty]) await fsp.mkdir(d, { recursive: true });
  const lowers = s.lowers.length ? [...s.lowers].reverse() : [empty];
  const opts = `lowerdir=${lowers.join(':')},upperdir=${upper},workdir=${work}${isRootless() ? ',userxattr' : ''}`;
  const m = await exec('mount', ['-t', 'overlay', 'overlay', '-o', opts, merged]);
  if (m.code !== 0) throw new SkiffError('ERR_BUILD', `mounting the build container's filesystem: ${m.err.trim()}`);
  try {
    await fsp.mkdir(path.join(merged, s.cwd), { recursive: true });
    const { uid, gid, additionalGids } = await resolveUser(merged, s.user);
    const shm = `${Math.ceil((s.container?.shmSize ?? 64 * 1024 * 1024) / 1024)}k`;
    const mounts: OciMount[] = [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', `size=${shm}`] },
      { destination: '/sys', type: 'bind', source: '/sys', options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'] },
    ];
    mounts.push(...(await networkFiles(s.dir, s.container)));
    mounts.push(...(s.mounts ?? []));
    if (s.isolation === 'chroot') {
      // (No runtime to make device nodes: the host's are bound in, as a rootless runtime does.)
      for (const d of s.container?.devices ?? []) mounts.push({ destination: d.container, type: 'bind', source: d.host, options: ['bind', d.perms.includes('w') ? 'rw' : 'ro'] });
      const quads = (mounts as OciMount[]).filter((x) => x.type === 'bind' || (x.type === 'tmpfs' && !x.destination.startsWith('/dev'))).filter((x) => x.destination !== '/sys').flatMap((x) => [x.type, x.source, x.destination, x.type === 'tmpfs' ? (x.options ?? []).join(',') || 'mode=1777' : x.options?.includes('ro') ? 'ro' : 'rw']);
      const shared = s.container?.namespaces ?? {};
      const ns = [...(shared.pid === 'host' ? [] : ['--pid', '--fork']), '--mount', ...(shared.uts === 'host' ? [] : ['--uts']), ...(shared.ipc === 'host' ? [] : ['--ipc']), ...(shared.cgroup === 'private' ? ['--cgroup'] : []), ...(s.network === 'none' ? ['--net'] : []), '--propagation', 'private'];
      const flags = `${shared.pid === 'host' ? 'P' : ''}${shared.uts === 'host' ? 'U' : ''}${shared.ipc === 'host' ? 'I' : ''}` || '-';
      const env = Object.fromEntries(s.env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
      const r = await new Promise<number>((resolve, reject) => {
        // (Limits and no_new_privs are inherited: set on unshare, they hold for the command it runs.)
        const [cmd, ...pre] = [...chrootWrappers(s.container), 'unshare'];
        const p = spawn(cmd!, [...pre, ...ns, '/bin/sh', '-ec', CHROOT_SCRIPT, 'skiff-chroot', merged, s.cwd, String(uid), String(gid), shm, flags, ...quads, '--', ...s.args], { stdio: [s.container?.stdin ? 0 : 'ignore', 2, 2], env });
        p.on('error', reject);
        p.on('close', (code) => resolve(code ?? -1));
      });
      if (r !== 0) throw new SkiffError('ERR_BUILD', `exit status ${r}`);
      return upper;
    }
    const ns = s.container?.namespaces ?? {};
    const joined = (type: 'pid' | 'ipc' | 'uts' | 'cgroup', byDefault: boolean): { type: string; path?: string }[] => {
      const v = ns[type];
      if (v === 'host' || (v === undefined && !byDefault)) return [];
      return v && v !== 'private' ? [{ type, path: v }] : [{ type }];
    };
    const namespaces = [...joined('pid', true), ...joined('ipc', true), ...joined('uts', true), ...joined('cgroup', false), { type: 'mount' }, ...(s.network === 'none' ? [{ type: 'network' }] : [])];
    // The host's PID namespace: its /proc, bound (a new proc mount needs a PID namespace of the user namespace's
    // own when rootless); the host's IPC namespace: its /dev/shm.
    if (ns.pid === 'host') mounts.splice(mounts.findIndex((x) => x.destination === '/proc'), 1, { destination: '/proc', type: 'bind', source: '/proc', options: ['rbind', 'nosuid', 'noexec', 'nodev'] });
    if (ns.ipc === 'host') mounts.splice(mounts.findIndex((x) => x.destination === '/dev/shm'), 1, { destination: '/dev/shm', type: 'bind', source: '/dev/shm', options: ['rbind', 'nosuid', 'noexec', 'nodev'] });
    const caps = capabilities(s.container);
    const seccomp = typeof s.container?.seccomp === 'function' ? await s.container.seccomp() : s.container?.seccomp;
    const hooks = ociHooks(s.container?.hooks, s.args, mounts);
    const id = `skiff-${process.pid}-${path.basename(s.dir)}`;
    const config = {
      ociVersion: '1.0.2',
      process: {
        terminal: false, user: { uid, gid, additionalGids }, args: s.args, env: s.env, cwd: s.cwd, capabilities: { bounding: caps, effective: caps, permitted: caps },
        noNewPrivileges: !!s.container?.noNewPrivileges,
        ...(rlimits(s.container) ? { rlimits: rlimits(s.container) } : {}),
        ...(s.container?.apparmor ? { apparmorProfile: s.container.apparmor } : {}),
      },
      root: { path: merged, readonly: false },
      ...(hooks ? { hooks } : {}),
      // (A hostname needs a UTS namespace of the container's own.)
      ...(ns.uts === undefined || ns.uts === 'private' ? { hostname: 'skiff-build' } : {}),
      mounts,
      linux: {
        namespaces,
        ...maskedPaths(s.container),
        ...(seccomp ? { seccomp: ociSeccomp(seccomp, caps) } : {}),
        ...ociResources(s.container),
        ...(s.container?.cgroupParent && cgroupLimitsApply() ? { cgroupsPath: path.posix.join('/', s.container.cgroupParent, id) } : {}),
      },
    };
    await fsp.writeFile(path.join(bundle, 'config.json'), configJSON(config));
    const global = (s.container?.runtimeFlags ?? []).map((f) => `--${f}`);
    const r = await exec(s.runtime ?? 'runc', [...global, 'run', '--bundle', bundle, id], true, !!s.container?.stdin);
    if (r.code !== 0) throw new SkiffError('ERR_BUILD', `exit status ${r.code}`);
  } finally {
    await exec('umount', [merged]);
  }
  return upper;
}

/**
 * Mount layer diff dirs (base first) read-only at `mp` as one filesystem. overlayfs needs two lower dirs for a
 * read-only mount, so a single layer is bind-mounted; none leaves `mp` an empty directory (returns false). Inside a
 * user namespace overlayfs reads whiteout and opaque markers from user.* xattrs (userxattr).
 */
export function mountLayersReadOnly(layers: string[], mp: string, what: string): boolean {
  if (layers.length === 0) return false;
  const args = layers.length === 1 ? ['--bind', '-o', 'ro', layers[0]!, mp] : ['-t', 'overlay', 'overlay', '-o', `lowerdir=${[...layers].reverse().join(':')}${isRootless() ? ',userxattr' : ''}`, mp];
  const r = spawnSync('mount', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new SkiffError('ERR_BUILD', `${what}: mounting its filesystem: ${r.stderr.trim()}`);
  return true;
}

/**
 * Can this OCI runtime run containers here? crun 1.8, for one, refuses hosts with hybrid cgroups. A container
 * whose process does not exist is started in `dir`: a runtime that got as far as exec'ing it (its error names the
 * missing file) works; any other failure is returned as the reason it does not.
 */
export async function probeRuntime(runtime: string, dir: string): Promise<string | undefined> {
  const rootfs = path.join(dir, 'rootfs');
  await fsp.mkdir(rootfs, { recursive: true });
  const config = {
    ociVersion: '1.0.2',
    process: { terminal: false, user: { uid: 0, gid: 0 }, args: ['/skiff-runtime-probe'], env: ['PATH=/'], cwd: '/', capabilities: { bounding: CAPS, effective: CAPS, permitted: CAPS } },
    root: { path: rootfs, readonly: true },
    mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
    linux: { namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }] },
  };
  await fsp.writeFile(path.join(dir, 'config.json'), JSON.stringify(config));
  const r = await new Promise<{ code: number; err: string }>((resolve) => {
    const p = spawn(runtime, ['run', '--bundle', dir, `skiff-${process.pid}-probe-${path.basename(dir)}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (c: Buffer) => (err += c.toString()));
    p.on('error', (e) => resolve({ code: -1, err: e.message }));
    p.on('close', (code) => resolve({ code: code ?? -1, err }));
  });
  spawnSync(runtime, ['delete', '-f', `skiff-${process.pid}-probe-${path.basename(dir)}`]);
  if (r.code === 0 || r.err.includes('skiff-runtime-probe')) return undefined;
  return r.err.trim().split('\n').pop() || `exit status ${r.code}`;
}
