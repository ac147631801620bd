import { readdirSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { SkiffError } from '../core/errors.js';
import { statOf } from '../core/fs.js';

export interface Mirror {
  location: string;
  insecure: boolean;
  pullFromMirror: 'all' | 'digest-only' | 'tag-only';
}

export interface RegistryEntry {
  prefix: string;
  location: string;
  insecure: boolean;
  blocked: boolean;
  mirrors: Mirror[];
}

/** registries.conf (v2), merged from the system file, drop-ins and the user's file. */
export interface RegistriesConf {
  unqualifiedSearch: string[];
  aliases: Record<string, string>;
  shortNameMode: string;
  registries: RegistryEntry[];
}

export const EMPTY_CONF: RegistriesConf = { unqualifiedSearch: [], aliases: {}, shortNameMode: 'enforcing', registries: [] };

/**
 * Files read, in order (later ones win): CONTAINERS_REGISTRIES_CONF alone when set. These few small files are
 * read synchronously, as Go reads them: each asynchronous stat, readdir and read was a trip through the thread pool
 * and the event loop, 3-16 ms before a registry command's first request where reading them takes 0.2 ms.
 */
function configFiles(): string[] {
  if (process.env.CONTAINERS_REGISTRIES_CONF) return [process.env.CONTAINERS_REGISTRIES_CONF];
  const home = process.env.XDG_CONFIG_HOME ?? path.join(os.homedir(), '.config');
  const user = path.join(home, 'containers', 'registries.conf');
  const files = [statOf(user) ? user : '/etc/containers/registries.conf'];
  for (const d of ['/etc/containers/registries.conf.d', path.join(home, 'containers', 'registries.conf.d')]) {
    let names: string[] = [];
    try {
      names = readdirSync(d);
    } catch {}
    files.push(...names.filter((n) => n.endsWith('.conf')).sort().map((n) => path.join(d, n)));
  }
  return files;
}

function asBool(v: unknown): boolean {
  return v === true;
}

/** Parse one registries.conf text into `conf` (later [[registry]] entries with the same prefix replace earlier ones). */
export function mergeRegistriesToml(conf: RegistriesConf, text: string, file: string): RegistriesConf {
  let o: Record<string, unknown>;
  try {
    o = parseToml(text) as Record<string, unknown>;
  } catch (e) {
    throw new SkiffError('ERR_USAGE', `${file}: ${(e as Error).message.split('\n')[0]}`);
  }
  const out: RegistriesConf = { ...conf, aliases: { ...conf.aliases }, registries: [...conf.registries] };
  if (Array.isArray(o['unqualified-search-registries'])) out.unqualifiedSearch = (o['unqualified-search-registries'] as unknown[]).map(String);
  if (typeof o['short-name-mode'] === 'string') out.shortNameMode = o['short-name-mode'];
  if (o.aliases && typeof o.aliases === 'object') Object.assign(out.aliases, o.aliases as Record<string, string>);
  for (const r of (Array.isArray(o.registry) ? o.registry : []) as Record<string, unknown>[]) {
    const location = typeof r.location === 'string' ? r.location : '';
    const prefix = typeof r.prefix === 'string' && r.prefix !== '' ? r.prefix : location;
    if (!prefix) throw new SkiffError('ERR_USAGE', `${file}: a [[registry]] needs a prefix or a location`);
    const mirrors = ((Array.isArray(r.mirror) ? r.mirror : []) as Record<string, unknown>[]).map((m): Mirror => ({
      location: String(m.location ?? ''),
      insecure: asBool(m.insecure),
      pullFromMirror: m['pull-from-mirror'] === 'digest-only' || m['pull-from-mirror'] === 'tag-only' ? m['pull-from-mirror'] : 'all',
    }));
    const entry: RegistryEntry = { prefix, location: location || prefix, insecure: asBool(r.insecure), blocked: asBool(r.blocked), mirrors };
    out.registries = out.registries.filter((x) => x.prefix !== prefix);
    out.registries.push(entry);
  }
  return out;
}

let cached: Promise<RegistriesConf> | undefined;

export function loadRegistriesConf(): Promise<RegistriesConf> {
  cached ??= (async () => {
    let conf = EMPTY_CONF;
    for (const f of configFiles()) {
      let text: string;
      try {
        text = readFileSync(f, 'utf8');
      } catch {
        continue;
      }
      conf = mergeRegistriesToml(conf, text, f);
    }
    return conf;
  })();
  return cached;
}

/** The [[registry]] whose prefix matches `name` (`host/repo/path`) longest, respecting component boundaries. */
export function findRegistry(conf: RegistriesConf, name: string): RegistryEntry | undefined {
  let best: RegistryEntry | undefined;
  for (const r of conf.registries) {
    const p = r.prefix.startsWith('*.') ? undefined : r.prefix;
    const match = p !== undefined
      ? name === p || name.startsWith(`${p}/`) || name.startsWith(`${p}:`) || name.startsWith(`${p}@`)
      : name.split('/')[0]!.endsWith(r.prefix.slice(1));
    if (match && (!best || r.prefix.length > best.prefix.length)) best = r;
  }
  return best;
}

/** A name is short when its first component is not a registry (no `.`, no `:`, not `localhost`). */
export function isShortName(name: string): boolean {
  const first = name.split('/')[0] ?? '';
  return !name.includes('/') || !(first.includes('.') || first.includes(':') || first === 'localhost');
}

/**
 * Where a short name may live, per registries.conf (containers-registries.conf(5)): an `[aliases]` entry wins
 * (the tag or digest carried over); otherwise each `unqualified-search-registries` entry in order. Fully
 * qualified names come back unchanged. With several candidates, `short-name-mode = "enforcing"` refuses when it
 * cannot ask (no TTY), as podman does; "permissive" and "disabled" try them in order.
 */
export function shortNameCandidates(name: string, conf: RegistriesConf, canPrompt = false): string[] {
  if (!isShortName(name)) return [name];
  const at = name.indexOf('@');
  const base = at >= 0 ? name.slice(0, at) : name;
  const colon = base.lastIndexOf(':');
  const repo = colon >= 0 ? base.slice(0, colon) : base;
  const suffix = name.slice(repo.length);
  const alias = conf.aliases[repo];
  if (alias) return [`${alias}${suffix}`];
  const candidates = conf.unqualifiedSearch.map((r) => `${r}/${repo}${suffix}`);
  if (!candidates.length) {
    throw new SkiffError('ERR_INVALID_REFERENCE', `short name ${JSON.stringify(name)}: no unqualified-search-registries are defined in registries.conf and no alias matches; use a fully qualified name`);
  }
  if (candidates.length > 1 && conf.shortNameMode === 'enforcing' && !canPrompt) {
    throw new SkiffError('ERR_INVALID_REFERENCE', `short name ${JSON.stringify(name)} is ambiguous (${candidates.join(', ')}) and short-name-mode is "enforcing": use a fully qualified name or add an alias`);
  }
  return candidates;
}
