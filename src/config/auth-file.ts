import { promises as fsp, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SkiffError } from '../core/errors.js';
import { atomicWriteFile } from '../core/fs.js';

export interface Credentials {
  username: string;
  password: string;
}

interface AuthFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
  [k: string]: unknown;
}

/** The auth.json skiff writes by default: podman's (`$XDG_RUNTIME_DIR/containers/auth.json`), else ~/.config. */
export function defaultAuthFile(): string {
  if (process.env.REGISTRY_AUTH_FILE) return process.env.REGISTRY_AUTH_FILE;
  if (process.env.XDG_RUNTIME_DIR) return path.join(process.env.XDG_RUNTIME_DIR, 'containers', 'auth.json');
  return path.join(process.env.XDG_CONFIG_HOME ?? path.join(os.homedir(), '.config'), 'containers', 'auth.json');
}

/** Files searched for credentials, in containers/image's order. */
export function authFileSearchPath(explicit?: string): string[] {
  if (explicit) return [explicit];
  const out: string[] = [];
  if (process.env.REGISTRY_AUTH_FILE) out.push(process.env.REGISTRY_AUTH_FILE);
  if (process.env.XDG_RUNTIME_DIR) out.push(path.join(process.env.XDG_RUNTIME_DIR, 'containers', 'auth.json'));
  out.push(path.join(process.env.XDG_CONFIG_HOME ?? path.join(os.homedir(), '.config'), 'containers', 'auth.json'));
  out.push(process.env.DOCKER_CONFIG ? path.join(process.env.DOCKER_CONFIG, 'config.json') : path.join(os.homedir(), '.docker', 'config.json'));
  return out;
}

/** (Read synchronously: a small file, read before a registry command's first request; see configFiles in registries.ts.) */
function readAuthFile(file: string): AuthFile | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SkiffError('ERR_IO', `reading ${file}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text) as AuthFile;
  } catch (e) {
    throw new SkiffError('ERR_USAGE', `${file}: malformed JSON: ${(e as Error).message}`);
  }
}

/** Keys to try for `host/repo/path`, longest first: `host/ns/repo`, `host/ns`, `host`. */
function keysFor(registryKey: string, repository?: string): string[] {
  const out: string[] = [];
  if (repository) {
    const parts = repository.split('/');
    for (let i = parts.length; i > 0; i--) out.push(`${registryKey}/${parts.slice(0, i).join('/')}`);
  }
  out.push(registryKey);
  return out;
}

function normaliseKey(k: string): string {
  return k.replace(/^https?:\/\//, '').replace(/\/v[12]\/?$/, '').replace(/\/$/, '');
}

async function runHelper(helper: string, server: string): Promise<Credentials | undefined> {
  // (node:child_process only when a helper is configured: most registry commands never start one.)
  const { spawn } = await import('node:child_process');
  return new Promise((resolve, reject) => {
    const p = spawn(`docker-credential-${helper}`, ['get'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (c: Buffer) => (out += c.toString()));
    p.on('error', (e) => reject(new SkiffError('ERR_UNAUTHORIZED', `credential helper docker-credential-${helper}: ${e.message}`)));
    p.on('close', (code) => {
      if (code !== 0) return resolve(undefined);
      try {
        const o = JSON.parse(out) as { Username?: string; Secret?: string };
        resolve(o.Username !== undefined && o.Secret !== undefined ? { username: o.Username, password: o.Secret } : undefined);
      } catch {
        resolve(undefined);
      }
    });
    p.stdin.end(server);
  });
}

/**
 * Credentials for `registryKey` (`docker.io`, `host:port`) and repository, from auth files in c/image's order;
 * the longest matching key wins within a file; `credHelpers`/`credsStore` run `docker-credential-NAME get`.
 */
export async function lookupCredentials(registryKey: string, repository: string | undefined, authfile?: string): Promise<Credentials | undefined> {
  for (const file of authFileSearchPath(authfile)) {
    const f = readAuthFile(file);
    if (!f) continue;
    const helper = f.credHelpers?.[registryKey] ?? undefined;
    if (helper) return runHelper(helper, registryKey);
    const auths = Object.fromEntries(Object.entries(f.auths ?? {}).map(([k, v]) => [normaliseKey(k), v]));
    for (const k of keysFor(registryKey, repository)) {
      const e = auths[k];
      if (!e) continue;
      if (e.auth) {
        const dec = Buffer.from(e.auth, 'base64').toString('utf8');
        const i = dec.indexOf(':');
        if (i < 0) throw new SkiffError('ERR_USAGE', `${file}: invalid auth for ${k}`);
        return { username: dec.slice(0, i), password: dec.slice(i + 1) };
      }
      if (e.username !== undefined && e.password !== undefined) return { username: e.username, password: e.password };
    }
    if (f.credsStore) {
      const c = await runHelper(f.credsStore, registryKey).catch(() => undefined);
      if (c) return c;
    }
  }
  return undefined;
}

/** Store credentials under `key` (`host` or `host/ns/repo`) in `file`, created 0600. */
export async function storeCredentials(file: string, key: string, c: Credentials): Promise<void> {
  const f = readAuthFile(file) ?? {};
  f.auths = { ...(f.auths ?? {}), [key]: { auth: Buffer.from(`${c.username}:${c.password}`).toString('base64') } };
  await fsp.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await atomicWriteFile(file, `${JSON.stringify(f, null, '\t')}\n`, 0o600);
}

/** Remove `key` (or every entry when `all`); returns whether anything was removed. */
export async function removeCredentials(file: string, key: string | undefined, all: boolean): Promise<boolean> {
  const f = readAuthFile(file);
  if (!f?.auths) return false;
  if (all) {
    const had = Object.keys(f.auths).length > 0;
    f.auths = {};
    await atomicWriteFile(file, `${JSON.stringify(f, null, '\t')}\n`, 0o600);
    return had;
  }
  const k = Object.keys(f.auths).find((x) => normaliseKey(x) === key);
  if (!k) return false;
  delete f.auths[k];
  await atomicWriteFile(file, `${JSON.stringify(f, null, '\t')}\n`, 0o600);
  return true;
}
