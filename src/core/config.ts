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
