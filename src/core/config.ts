import { parseDigest, type Digest } from './digest.js';
import { SkiffError } from './errors.js';

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

/** The container configuration inside an image config (OCI `config`, Docker `config`). */
export interface ContainerConfig {
  User?: string;
  ExposedPorts?: Record<string, object>;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Volumes?: Record<string, object>;
  WorkingDir?: string;
  Labels?: Record<string, string> | null;
  StopSignal?: string;
  [k: string]: unknown;
}

/** An image config: OCI and Docker v2s2 use the same JSON. Unknown fields are kept. */
export interface ImageConfig {
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  variant?: string;
  docker_version?: string;
  config?: ContainerConfig;
  rootfs: { type: string; diff_ids: Digest[] };
  history?: HistoryEntry[];
  [k: string]: unknown;
}

export function parseConfig(bytes: Buffer): ImageConfig {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new SkiffError('ERR_INVALID_CONFIG', `malformed image config JSON: ${(e as Error).message}`);
  }
  if (!o || typeof o !== 'object' || Array.isArray(o)) throw new SkiffError('ERR_INVALID_CONFIG', 'image config is not a JSON object');
  const rootfs = o.rootfs as Record<string, unknown> | undefined;
  if (!rootfs || rootfs.type !== 'layers' || !Array.isArray(rootfs.diff_ids)) {
    throw new SkiffError('ERR_INVALID_CONFIG', 'image config: missing rootfs.diff_ids');
  }
  try {
    rootfs.diff_ids.forEach((d, i) => parseDigest(d, `rootfs.diff_ids[${i}]`));
  } catch (e) {
    throw new SkiffError('ERR_INVALID_CONFIG', `image config: ${(e as Error).message}`);
  }
  if (typeof o.architecture !== 'string' || typeof o.os !== 'string') {
    throw new SkiffError('ERR_INVALID_CONFIG', 'image config: missing architecture or os');
  }
  return o as unknown as ImageConfig;
}

/**
 * A time as Go writes a time.Time in image configs (RFC 3339 with only the fractional digits there are: whole
 * seconds as `…:05Z`, not JavaScript's `…:05.000Z`), so skiff's configs read as buildah's and skopeo prints them.
 */
export function rfc3339(t: number | string): string {
  const iso = typeof t === 'number' ? new Date(t).toISOString() : t;
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(iso);
  if (!m) return iso;
  const frac = (m[2] ?? '').replace(/0+$/, '');
  return `${m[1]}${frac ? `.${frac}` : ''}${m[3]}`;
}

/** A map with its keys in the order Go marshals them: sorted. */
export function sortedKeys<V>(m: Record<string, V>): Record<string, V> {
  return Object.fromEntries(Object.entries(m).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** The config's maps (Labels, ExposedPorts, Volumes) with their keys sorted, as Go writes them. */
export function sortConfigMaps<T extends { config?: ContainerConfig }>(c: T): T {
  const cc = c.config as (ContainerConfig & Record<string, unknown>) | undefined;
  for (const k of ['Labels', 'ExposedPorts', 'Volumes']) if (cc?.[k] && typeof cc[k] === 'object') cc[k] = sortedKeys(cc[k] as Record<string, unknown>);
  return c;
}
