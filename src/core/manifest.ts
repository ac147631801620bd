import { parseDigest, sha256, type Digest } from './digest.js';
import { SkiffError } from './errors.js';
import { MT, layerCompressionOf, layerMediaType, type Compression } from './media-types.js';

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
  'os.features'?: string[];
}

/** An OCI content descriptor (Docker's are the same shape). */
export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
}

export interface ImageManifest {
  kind: 'image';
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface IndexManifest {
  kind: 'index';
  mediaType: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

export type Manifest = ImageManifest | IndexManifest;

/** Manifest bytes as stored, with their media type; the digest of `bytes` is the manifest digest. */
export interface RawManifest {
  bytes: Buffer;
  mediaType: string;
}

export function isIndexType(mt: string): boolean {
  return mt === MT.ociIndex || mt === MT.dockerList;
}

function bad(what: string): never {
  throw new SkiffError('ERR_INVALID_MANIFEST', what);
}

function parseDescriptor(v: unknown, where: string): Descriptor {
  if (!v || typeof v !== 'object' || Array.isArray(v)) bad(`${where}: not an object`);
  const o = v as Record<string, unknown>;
  if (typeof o.mediaType !== 'string' || o.mediaType === '') bad(`${where}: missing mediaType`);
  const digest = parseDigest(o.digest, `${where} digest`);
  if (typeof o.size !== 'number' || !Number.isSafeInteger(o.size) || o.size < 0) bad(`${where}: invalid size ${JSON.stringify(o.size)}`);
  const d: Descriptor = { mediaType: o.mediaType, digest, size: o.size };
  if (o.urls !== undefined) {
    if (!Array.isArray(o.urls) || !o.urls.every((u) => typeof u === 'string')) bad(`${where}: invalid urls`);
    d.urls = o.urls as string[];
  }
  if (o.annotations !== undefined && o.annotations !== null) d.annotations = parseStringMap(o.annotations, `${where} annotations`);
  if (o.platform !== undefined && o.platform !== null) {
    const p = o.platform as Record<string, unknown>;
    if (typeof p !== 'object' || typeof p.architecture !== 'string' || typeof p.os !== 'string') bad(`${where}: invalid platform`);
    d.platform = p as unknown as Platform;
  }
  if (typeof o.artifactType === 'string') d.artifactType = o.artifactType;
  return d;
}

function parseStringMap(v: unknown, where: string): Record<string, string> {
  if (!v || typeof v !== 'object' || Array.isArray(v)) bad(`${where}: not an object`);
  for (const [k, s] of Object.entries(v)) if (typeof s !== 'string') bad(`${where}: value of ${k} is not a string`);
  return v as Record<string, string>;
}

/** Work out a manifest's media type from its JSON when it carries none (OCI allows that). */
export function guessManifestType(bytes: Buffer): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch {
    return '';
  }
  if (!o || typeof o !== 'object') return '';
  if (typeof o.mediaType === 'string') return o.mediaType;
  if (o.schemaVersion === 1) return o.signatures ? MT.dockerSchema1Signed : MT.dockerSchema1;
  if (Array.isArray(o.manifests)) return MT.ociIndex;
  if (o.config && Array.isArray(o.layers)) return MT.ociManifest;
  return '';
}

/**
 * Parse and validate manifest bytes. `hint` is the type the storage reported (Content-Type, a descriptor);
 * a `mediaType` inside the JSON must agree with it.
 */
export function parseManifest(bytes: Buffer, hint?: string): Manifest {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch (e) {
    bad(`malformed manifest JSON: ${(e as Error).message}`);
  }
  if (!o || typeof o !== 'object' || Array.isArray(o)) bad('manifest is not a JSON object');
  const inner = typeof o.mediaType === 'string' ? o.mediaType : undefined;
  const mt = inner ?? (hint && hint !== '' ? hint : guessManifestType(bytes));
  if (mt === MT.dockerSchema1 || mt === MT.dockerSchema1Signed || o.schemaVersion === 1) {
    throw new SkiffError('ERR_UNSUPPORTED', 'Docker schema 1 manifests are not supported (deprecated since 2017)');
  }
  if (o.schemaVersion !== 2) bad(`unsupported schemaVersion ${JSON.stringify(o.schemaVersion)}`);
  const annotations = o.annotations === undefined || o.annotations === null ? undefined : parseStringMap(o.annotations, 'manifest annotations');
  if (mt === MT.ociIndex || mt === MT.dockerList) {
    if (!Array.isArray(o.manifests)) bad(`${mt}: missing "manifests"`);
    const manifests = o.manifests.map((d, i) => parseDescriptor(d, `manifests[${i}]`));
    return { kind: 'index', mediaType: mt, manifests, ...(annotations ? { annotations } : {}) };
  }
  if (mt === MT.ociManifest || mt === MT.dockerManifest) {
    if (o.config === undefined) bad(`${mt}: missing "config"`);
    if (!Array.isArray(o.layers)) bad(`${mt}: missing "layers"`);
    const config = parseDescriptor(o.config, 'config');
    const layers = o.layers.map((d, i) => parseDescriptor(d, `layers[${i}]`));
    return { kind: 'image', mediaType: mt, config, layers, ...(annotations ? { annotations } : {}) };
  }
  throw new SkiffError('ERR_UNSUPPORTED', `unsupported manifest media type ${JSON.stringify(mt)}`);
}

export function manifestDigest(bytes: Buffer): Digest {
  return sha256(bytes);
}

/** Platform keys in the order containers/image's structs marshal them (others, which Go would drop, after). */
const PLATFORM_ORDER = ['architecture', 'os', 'os.version', 'os.features', 'variant', 'features'];

function platformJSON(p: Record<string, unknown>): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const k of PLATFORM_ORDER) if (p[k] !== undefined) o[k] = p[k];
  for (const [k, v] of Object.entries(p)) if (!(k in o)) o[k] = v;
  return o;
}

/**
 * A descriptor in the field order containers/image marshals it, so that a manifest skiff writes is byte for byte
 * the one skopeo writes for the same change, digest included: OCI's mediaType, digest, size, urls, annotations,
 * platform, artifactType; Docker's (v2s2 and its lists) mediaType, size, digest, urls, platform, which has no
 * annotations (c/image drops them converting to Docker, as its struct has no such field).
 */
function descriptorJSON(d: Descriptor, docker: boolean): Record<string, unknown> {
  if (docker) {
    const o: Record<string, unknown> = { mediaType: d.mediaType, size: d.size, digest: d.digest };
    if (d.urls?.length) o.urls = d.urls;
    if (d.platform) o.platform = platformJSON(d.platform as unknown as Record<string, unknown>);
    return o;
  }
  const o: Record<string, unknown> = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  if (d.urls?.length) o.urls = d.urls;
  if (d.annotations && Object.keys(d.annotations).length) o.annotations = d.annotations;
  if (d.platform) o.platform = platformJSON(d.platform as unknown as Record<string, unknown>);
  if (d.artifactType) o.artifactType = d.artifactType;
  return o;
}

/** Serialise a manifest (compact JSON, c/image field order). */
export function serializeManifest(m: Manifest): Buffer {
  const docker = m.mediaType === MT.dockerManifest || m.mediaType === MT.dockerList;
  const o: Record<string, unknown> = { schemaVersion: 2, mediaType: m.mediaType };
  if (m.kind === 'image') {
    o.config = descriptorJSON(m.config, docker);
    o.layers = m.layers.map((l) => descriptorJSON(l, docker));
  } else {
    o.manifests = m.manifests.map((d) => descriptorJSON(d, docker));
  }
  if (!docker && m.annotations && Object.keys(m.annotations).length) o.annotations = m.annotations;
  return Buffer.from(JSON.stringify(o));
}

export type ManifestFormat = 'oci' | 'v2s2';

export function formatOf(mediaType: string): ManifestFormat {
  return mediaType === MT.dockerManifest || mediaType === MT.dockerList ? 'v2s2' : 'oci';
}

function convertLayerType(l: Descriptor, to: ManifestFormat, compression: Compression | undefined): string {
  const c = compression ?? layerCompressionOf(l.mediaType);
  if (c === undefined) {
    if (to === formatOf(l.mediaType)) return l.mediaType;
    throw new SkiffError('ERR_CONVERSION', `cannot convert layer media type ${l.mediaType} to ${to}`);
  }
  const nondist = /nondistributable|foreign/.test(l.mediaType);
  if (nondist) {
    if (to === 'oci') return c === 'zstd' ? 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd' : c === 'gzip' ? MT.ociLayerNondistGzip : 'application/vnd.oci.image.layer.nondistributable.v1.tar';
    if (c === 'gzip') return MT.dockerForeignLayerGzip;
  }
  const t = layerMediaType(to, c);
  if (!t) throw new SkiffError('ERR_CONVERSION', `the Docker v2s2 format has no ${c}-compressed layers; use --format oci`);
  return t;
}

/**
 * Rewrite an image manifest for `to` format, with layers replaced by `newLayers` (same count; a changed
 * compression changes the media type). Config bytes are never changed: OCI and Docker configs are the same JSON.
 */
export function convertImageManifest(
  m: ImageManifest,
  to: ManifestFormat,
  newLayers?: { digest: Digest; size: number; compression: Compression }[],
): ImageManifest {
  const layers = m.layers.map((l, i) => {
    const n = newLayers?.[i];
    const mediaType = convertLayerType(l, to, n?.compression);
    const d: Descriptor = { ...l, mediaType };
    if (n) {
      d.digest = n.digest;
      d.size = n.size;
    }
    return d;
  });
  const config: Descriptor = { ...m.config, mediaType: to === 'oci' ? MT.ociConfig : MT.dockerConfig };
  if (to === 'v2s2' && m.config.mediaType !== MT.ociConfig && m.config.mediaType !== MT.dockerConfig) {
    throw new SkiffError('ERR_CONVERSION', `cannot convert an artifact (config ${m.config.mediaType}) to Docker v2s2`);
  }
  if (to === 'oci' && m.config.mediaType !== MT.dockerConfig) config.mediaType = m.config.mediaType;
  const out: ImageManifest = { kind: 'image', mediaType: to === 'oci' ? MT.ociManifest : MT.dockerManifest, config, layers };
  // Docker v2s2 has no annotations; c/image drops them on that conversion.
  if (to === 'oci' && m.annotations) out.annotations = m.annotations;
  return out;
}

export function convertIndex(m: IndexManifest, to: ManifestFormat, children: Descriptor[]): IndexManifest {
  const out: IndexManifest = { kind: 'index', mediaType: to === 'oci' ? MT.ociIndex : MT.dockerList, manifests: children };
  if (to === 'oci' && m.annotations) out.annotations = m.annotations;
  return out;
}

/**
 * A manifest list as podman stores it, or undefined when `raw` is not one. podman writes an empty list with
 * `"manifests": null`, which is read as no entries.
 */
export function parseStoredList(raw: Buffer): IndexManifest | undefined {
  try {
    const o = JSON.parse(raw.toString()) as { manifests?: unknown };
    const fixed = o && typeof o === 'object' && o.manifests === null ? Buffer.from(JSON.stringify({ ...o, manifests: [] })) : raw;
    const m = parseManifest(fixed);
    return m.kind === 'index' ? m : undefined;
  } catch {
    return undefined;
  }
}
