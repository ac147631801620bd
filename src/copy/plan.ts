import type { Digest } from '../core/digest.js';
import { SkiffError } from '../core/errors.js';
import type { DestinationCaps } from '../core/image.js';
import { isIndexType, type ImageManifest, type IndexManifest, type RawManifest } from '../core/manifest.js';
import { MT, layerCompressionOf, type Compression } from '../core/media-types.js';

/** What the user asked of a copy that shapes the plan. */
export interface PlanOptions {
  format?: 'oci' | 'v2s2';
  compressFormat?: 'gzip' | 'zstd';
  decompress?: boolean;
  preserveDigests?: boolean;
}

/** For each layer: copy the stored bytes (`keep`) or re-encode them to a compression. */
export type LayerAction = 'keep' | Compression;

export interface ImagePlan {
  /** Digest of this image's manifest in the source index (copied whole, or this one picked from it); undefined for a lone image. */
  instance?: Digest;
  source: RawManifest;
  manifest: ImageManifest;
  /** Media type of the manifest the destination gets. */
  targetType: string;
  layers: LayerAction[];
  /** True when the source manifest bytes go over unchanged (so the digest is preserved). */
  unchanged: boolean;
}

export interface IndexPlan {
  source: RawManifest;
  manifest: IndexManifest;
  targetType: string;
}

export interface CopyPlan {
  images: ImagePlan[];
  /** Present when a whole index is copied (--all). */
  index?: IndexPlan;
}

const IMAGE_TYPES = [MT.ociManifest, MT.dockerManifest] as const;

function layerAction(mediaType: string, caps: DestinationCaps, o: PlanOptions): LayerAction {
  const c = layerCompressionOf(mediaType);
  if (c === undefined) return 'keep'; // not a layer we know how to re-encode (artifacts): bytes go as they are
  if (o.decompress || caps.compression === 'decompress') return c === 'none' ? 'keep' : 'none';
  if (o.compressFormat) return c === o.compressFormat ? 'keep' : o.compressFormat;
  if (caps.compression === 'compress' && c === 'none') return 'gzip';
  return 'keep';
}

function canExpress(type: string, compressions: Compression[]): boolean {
  return type !== MT.dockerManifest || !compressions.includes('zstd');
}

/** Plan one image: layer actions and the manifest type the destination gets. Pure. */
export function planImage(source: RawManifest, manifest: ImageManifest, caps: DestinationCaps, o: PlanOptions, instance?: Digest): ImagePlan {
  const layers = manifest.layers.map((l) => layerAction(l.mediaType, caps, o));
  const finalCompressions = manifest.layers.map((l, i) => {
    const a = layers[i]!;
    return a === 'keep' ? (layerCompressionOf(l.mediaType) ?? 'none') : a;
  });
  const accepted = IMAGE_TYPES.filter((t) => caps.manifestTypes.includes(t));
  let targetType: string;
  if (o.format) {
    targetType = o.format === 'oci' ? MT.ociManifest : MT.dockerManifest;
    if (!accepted.includes(targetType as (typeof IMAGE_TYPES)[number])) {
      throw new SkiffError('ERR_CONVERSION', `the destination does not accept ${o.format} manifests (accepts ${accepted.join(', ')})`);
    }
    if (!canExpress(targetType, finalCompressions)) {
      throw new SkiffError('ERR_CONVERSION', 'Docker v2s2 manifests cannot reference zstd-compressed layers; use --format oci');
    }
  } else if ((accepted as readonly string[]).includes(manifest.mediaType) && canExpress(manifest.mediaType, finalCompressions)) {
    targetType = manifest.mediaType;
  } else {
    const t = caps.manifestTypes.find((x) => (IMAGE_TYPES as readonly string[]).includes(x) && canExpress(x, finalCompressions));
    if (!t) throw new SkiffError('ERR_CONVERSION', `no manifest type the destination accepts can describe this image (${manifest.mediaType})`);
    targetType = t;
  }
  const unchanged = targetType === manifest.mediaType && layers.every((a) => a === 'keep');
  if (o.preserveDigests && !unchanged) {
    throw new SkiffError('ERR_CONVERSION', `--preserve-digests: copying would change the manifest (${manifest.mediaType} -> ${targetType}${layers.some((a) => a !== 'keep') ? ', layers re-compressed' : ''})`);
  }
  const p: ImagePlan = { source, manifest, targetType, layers, unchanged };
  if (instance) p.instance = instance;
  return p;
}

/** The index type the destination gets; pure. */
export function planIndex(source: RawManifest, manifest: IndexManifest, caps: DestinationCaps, o: PlanOptions): IndexPlan {
  if (!caps.multiImage) throw new SkiffError('ERR_UNSUPPORTED', 'the destination holds a single image; copy one platform (drop --all)');
  let targetType: string;
  if (o.format) targetType = o.format === 'oci' ? MT.ociIndex : MT.dockerList;
  else if (caps.manifestTypes.includes(manifest.mediaType)) targetType = manifest.mediaType;
  else targetType = caps.manifestTypes.find(isIndexType) ?? '';
  if (!caps.manifestTypes.includes(targetType)) throw new SkiffError('ERR_CONVERSION', `the destination does not accept ${targetType || 'an index'}`);
  if (o.preserveDigests && targetType !== manifest.mediaType) {
    throw new SkiffError('ERR_CONVERSION', `--preserve-digests: copying would convert the index to ${targetType}`);
  }
  return { source, manifest, targetType };
}
