import { existsSync } from 'node:fs';
import { Command } from 'commander';
import { SkiffError } from '../core/errors.js';
import { parseImageRef } from '../core/ref.js';
import type { DestinationOptions, ImageDestination, ImageRef, ImageSource, SourceOptions, Transport } from '../core/image.js';
import type { PlatformChoice } from '../core/platform.js';
import { transports } from '../../transports/index.js';
import { defaultStoreLocation, Store } from '../store/store.js';

export interface GlobalOptions {
  debug?: boolean;
  root?: string;
  runroot?: string;
  storageDriver?: string;
  overrideOs?: string;
  overrideArch?: string;
  overrideVariant?: string;
}

/** The containers-storage store named by the global --root/--runroot/--storage-driver flags. */
export function storageFrom(g: GlobalOptions): NonNullable<SourceOptions['storage']> {
  return { ...(g.root ? { root: g.root } : {}), ...(g.runroot ? { runroot: g.runroot } : {}), ...(g.storageDriver ? { driver: g.storageDriver } : {}) };
}

/** The containers-storage store the global options name (--root, --runroot, --storage-driver), else the default. */
export async function storeOf(g: GlobalOptions): Promise<Store> {
  const def = await defaultStoreLocation();
  const s = storageFrom(g);
  return new Store({ driver: s.driver ?? def.driver, root: s.root ?? def.root, runroot: s.runroot ?? def.runroot });
}

export function platformFrom(g: GlobalOptions): PlatformChoice {
  const p: PlatformChoice = {};
  if (g.overrideOs) p.os = g.overrideOs;
  if (g.overrideArch) p.architecture = g.overrideArch;
  if (g.overrideVariant) p.variant = g.overrideVariant;
  return p;
}

/**
 * An image location: `TRANSPORT:SPEC` as typed, or already parsed (what commands taking a plain file path build, so
 * a path with a `:` in it is not read as a separator).
 */
export type Location = string | { transport: Transport; ref: ImageRef };

export async function openSource(input: Location, opts: SourceOptions = {}): Promise<ImageSource> {
  const { transport, ref } = typeof input === 'string' ? parseImageRef(input, transports) : input;
  return transport.openSource(ref, opts);
}

export async function openDestination(input: Location, opts: DestinationOptions = {}): Promise<ImageDestination> {
  const { transport, ref } = typeof input === 'string' ? parseImageRef(input, transports) : input;
  return transport.openDestination(ref, opts);
}

export function parseIntOption(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(n)) throw new Error(`${name}: not a whole number: ${v}`);
    return n;
  };
}

/** Write data (digests, JSON) to stdout and wait until it is flushed. */
export function writeOut(data: string | Buffer): Promise<void> {
  return new Promise((resolve, reject) => process.stdout.write(data, (e) => (e ? reject(e) : resolve())));
}

export type CommandFactory = (program: Command) => void;

/** --authfile, --retry-times and --retry-delay: shared by every command that may talk to a registry. */
export function addRetryFlags(cmd: Command): Command {
  return cmd
    .option('--authfile <file>', 'auth.json to use for registries')
    .option('--retry-times <n>', 'retries of a failed request or blob (default 3)', parseIntOption('--retry-times'))
    .option('--retry-delay <duration>', 'first retry delay, doubled each time (default 1s)', parseDuration);
}

/** Flags every registry-touching command takes (skopeo's names); `prefix` is '' , 'src' or 'dest'. */
export function addRegistryFlags(cmd: Command, prefix: '' | 'src' | 'dest', o: { login?: boolean } = {}): Command {
  const p = prefix ? `${prefix}-` : '';
  const who = prefix === 'src' ? ' for the source' : prefix === 'dest' ? ' for the destination' : '';
  cmd.option(`--${p}tls-verify [bool]`, `require HTTPS and verify certificates${who} (false also allows plain http)`, (v: string) => v !== 'false');
  cmd.option(`--${p}creds <user:password>`, `registry credentials${who}`);
  // (login has its own -u/--username and -p/--password, for what it stores.)
  if (!o.login) {
    cmd.option(`--${p}username <name>`, `registry user name${who} (with --${p}password; or --${p}creds)`);
    cmd.option(`--${p}password <password>`, `registry password${who}`);
    cmd.option(`--${p}registry-token <token>`, `a Bearer token to send to the registry${who}, as is`);
  }
  cmd.option(`--${p}no-creds`, `access the registry anonymously${who}`);
  cmd.option(`--${p}cert-dir <dir>`, `certificates (*.crt CAs, *.cert/*.key client) for the registry${who}`);
  if (prefix) cmd.option(`--${p}authfile <file>`, `auth.json${who}`);
  cmd.option(`--${p}daemon-host <host>`, `Docker Engine API address${who} (docker-daemon:; default DOCKER_HOST)`);
  return cmd;
}

const camel = (s: string): string => s.replace(/-(\w)/g, (_, c: string) => c.toUpperCase());

/**
 * registryOptions for podman's commands (pull, push, build, manifest): podman refuses an --authfile that does not
 * exist (skopeo, whose commands use registryOptions, reads it as empty), with its exit status 125.
 */
export function podmanRegistryOptions(flags: Record<string, unknown>): SourceOptions {
  const file = flags.authfile;
  if (typeof file === 'string' && !existsSync(file)) throw new SkiffError('ERR_USAGE', `--authfile ${file}: no such file`, { exitCode: 125 });
  return registryOptions(flags, '');
}

/** SourceOptions from the flags addRegistryFlags added (plus the shared --authfile, --retry-times, --retry-delay). */
export function registryOptions(flags: Record<string, unknown>, prefix: '' | 'src' | 'dest'): SourceOptions {
  const get = (name: string): unknown => flags[camel(prefix ? `${prefix}-${name}` : name)];
  const o: SourceOptions = {};
  const tls = get('tls-verify');
  if (typeof tls === 'boolean') o.tlsVerify = tls;
  const creds = get('creds');
  const flag = (name: string): string => `--${prefix ? `${prefix}-` : ''}${name}`;
  const username = get('username');
  const password = get('password');
  // (skopeo's rules and words for these combinations.)
  if (typeof username === 'string' || typeof password === 'string') {
    if (typeof creds === 'string') throw new SkiffError('ERR_USAGE', `${flag('creds')} and ${flag('username')} cannot be specified at the same time`);
    if (typeof password !== 'string') throw new SkiffError('ERR_USAGE', `${flag('password')} must be specified when ${flag('username')} is specified`);
    if (typeof username !== 'string') throw new SkiffError('ERR_USAGE', `${flag('username')} must be specified when ${flag('password')} is specified`);
    o.creds = `${username}:${password}`;
  }
  if (typeof creds === 'string') o.creds = creds;
  // commander turns --no-creds into creds === false; --src-no-creds into srcCreds === false.
  const noCreds = creds === false || get('no-creds') === true;
  if (noCreds && o.creds !== undefined) throw new SkiffError('ERR_USAGE', `${flag('creds')} and ${flag('no-creds')} cannot be specified at the same time`);
  if (noCreds) o.noCreds = true;
  const token = get('registry-token');
  if (typeof token === 'string') o.registryToken = token;
  const certDir = get('cert-dir');
  if (typeof certDir === 'string') o.certDir = certDir;
  const authfile = (prefix ? get('authfile') : undefined) ?? flags.authfile;
  if (typeof authfile === 'string') o.authfile = authfile;
  const daemon = get('daemon-host');
  if (typeof daemon === 'string') o.daemonHost = daemon;
  const shared = get('shared-blob-dir');
  if (typeof shared === 'string') o.sharedBlobDir = shared;
  if (typeof flags.retryTimes === 'number') o.retryTimes = flags.retryTimes;
  if (typeof flags.retryDelay === 'number') o.retryDelayMs = flags.retryDelay;
  return o;
}

/** A Go duration (`500ms`, `2s`, `1m`, `1h30m`; ns, us, ms, s, m, h) or plain seconds, in milliseconds. */
export function parseDuration(v: string): number {
  const t = v.trim();
  if (/^\d+(?:\.\d+)?$/.test(t)) return Number(t) * 1000;
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, '\u00b5s': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const parts = [...t.matchAll(/(\d+(?:\.\d+)?)(ns|us|\u00b5s|ms|s|m|h)/g)];
  if (!parts.length || parts.map((p) => p[0]).join('') !== t) throw new Error(`invalid duration ${JSON.stringify(v)} (e.g. 500ms, 2s, 1m, 1h30m)`);
  return parts.reduce((sum, p) => sum + Number(p[1]) * unit[p[2]!]!, 0);
}

/**
 * Does `spec` start with a transport (`docker://…`, `oci:…`, `containers-storage:…`)? A registry with a port
 * (`localhost:5000/app`) does not: for podman's push and manifest commands that is a registry reference.
 */
export function hasTransport(spec: string): boolean {
  const colon = spec.indexOf(':');
  return colon > 0 && transports.some((t) => t.name === spec.slice(0, colon));
}
