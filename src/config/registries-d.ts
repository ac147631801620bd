/**
 * registries.d (containers-registries.d(5)): where signatures of images in registries are kept beside them ("lookaside"
 * storage), as containers/image finds it. The directory is the global --registries.d, else
 * ~/.config/containers/registries.d when it exists, else /etc/containers/registries.d; every *.yaml in it is merged
 * (a `default-docker` section and each `docker` scope in one file only). A scope is a fully expanded reference
 * (registry.example/ns/repo:tag), a repository, a namespace above it, or a registry; the most precise configured
 * scope wins. `lookaside` (old name `sigstore`) is read, `lookaside-staging` (`sigstore-staging`) is written where set.
 * With nothing configured, containers/image's built-in default: /var/lib/containers/sigstore for root,
 * ~/.local/share/containers/sigstore for others. Signatures of manifest D of REPO are at
 * <base>/<repo path>@sha256=<hex>/signature-N.
 */
import { readdirSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { digestHex, type Digest } from '../core/digest.js';
import { SkiffError } from '../core/errors.js';
import { formatDockerReference, type DockerReference } from '../core/reference.js';
import { isRootless } from '../store/userns.js';

interface Section {
  lookaside?: string;
  'lookaside-staging'?: string;
  sigstore?: string;
  'sigstore-staging'?: string;
}

interface Merged {
  defaultDocker?: Section;
  docker: Map<string, Section>;
}

let configuredDir: string | undefined;

/** The global --registries.d DIR. */
export function setRegistriesDir(dir: string | undefined): void {
  configuredDir = dir;
  cache = undefined;
}

function registriesDir(): string {
  if (configuredDir) return configuredDir;
  const user = path.join(os.homedir(), '.config', 'containers', 'registries.d');
  try {
    readdirSync(user);
    return user;
  } catch {
    return '/etc/containers/registries.d';
  }
}

let cache: { dir: string; merged: Merged } | undefined;

async function load(): Promise<Merged> {
  const dir = registriesDir();
  if (cache?.dir === dir) return cache.merged;
  const merged: Merged = { docker: new Map() };
  let names: string[] = [];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.yaml')).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new SkiffError('ERR_USAGE', `registries.d ${dir}: ${(e as Error).message}`);
  }
  // (yaml is loaded only for a file with more than comments: containers-common's default.yaml has none.)
  const texts = names.map((n) => [path.join(dir, n), readFileSync(path.join(dir, n), 'utf8')] as const).filter(([, t]) => /^[ \t]*[^#\s]/m.test(t));
  const { parse } = texts.length ? await import('yaml') : { parse: () => null };
  const from = new Map<string, string>();
  for (const [file, text] of texts) {
    let doc: { 'default-docker'?: Section | null; docker?: Record<string, Section | null> | null } | null;
    try {
      doc = parse(text) as typeof doc;
    } catch (e) {
      throw new SkiffError('ERR_USAGE', `registries.d: parsing ${file}: ${(e as Error).message}`);
    }
    if (!doc || typeof doc !== 'object') continue;
    if (doc['default-docker']) {
      if (merged.defaultDocker) throw new SkiffError('ERR_USAGE', `registries.d: "default-docker" is defined both in ${from.get('')} and ${file}`);
      merged.defaultDocker = doc['default-docker'];
      from.set('', file);
    }
    for (const [scope, section] of Object.entries(doc.docker ?? {})) {
      if (merged.docker.has(scope)) throw new SkiffError('ERR_USAGE', `registries.d: "docker" scope ${scope} is defined both in ${from.get(scope)} and ${file}`);
      merged.docker.set(scope, section ?? {});
      from.set(scope, file);
    }
  }
  cache = { dir, merged };
  return merged;
}

function url(section: Section | undefined, write: boolean): string | undefined {
  if (!section) return undefined;
  if (write) {
    const staging = section['lookaside-staging'] ?? section['sigstore-staging'];
    if (staging) return staging;
  }
  return section.lookaside ?? section.sigstore;
}

/** The scopes a reference matches, most precise first: name:tag (or @digest), the repository, its parents, the registry. */
function scopes(ref: DockerReference): string[] {
  const name = `${ref.domain}/${ref.path}`;
  const out = [formatDockerReference(ref)];
  for (let p = name; p.includes('/'); p = p.slice(0, p.lastIndexOf('/'))) out.push(p);
  out.push(ref.domain);
  // Wildcard subdomains (*.example.com) after the registry itself, as containers/image matches them.
  const host = ref.domain.replace(/:\d+$/, '');
  const labels = host.split('.');
  for (let i = 1; i < labels.length; i++) out.push(`*.${labels.slice(i).join('.')}`);
  return [...new Set(out)];
}

/** The lookaside base URL for `ref`'s signatures, for reading or (write) for adding them; never undefined. */
export async function lookasideBase(ref: DockerReference, write: boolean): Promise<string> {
  const config = await load();
  let base: string | undefined;
  for (const s of scopes(ref)) {
    const section = config.docker.get(s);
    if (section) {
      base = url(section, write);
      if (base) break;
    }
  }
  base ??= url(config.defaultDocker, write);
  if (!base) {
    base = `file://${isRootless() ? path.join(os.homedir(), '.local', 'share', 'containers', 'sigstore') : '/var/lib/containers/sigstore'}`;
  }
  return base.replace(/\/+$/, '');
}

/** Where signature N (from 1) of manifest `digest` of `ref`'s repository is, under `base`. */
export function lookasideURL(base: string, ref: DockerReference, digest: Digest, n: number): string {
  return `${base}/${ref.path}@sha256=${digestHex(digest)}/signature-${n}`;
}
