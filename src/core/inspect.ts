import type { Digest } from './digest.js';
import { sha256, verifyBuffer } from './digest.js';
import { parseConfig, rfc3339, sortedKeys, type ImageConfig } from './config.js';
import type { ImageSource } from './image.js';
import { parseManifest, type ImageManifest, type RawManifest } from './manifest.js';
import { MT } from './media-types.js';
import { choosePlatform, type PlatformChoice } from './platform.js';
import { readAll } from './fs.js';
import { SkiffError } from './errors.js';

/** skopeo inspect's output, field for field (Variant and LayersData as newer skopeo prints them). */
export interface InspectOutput {
  Name?: string;
  Digest: Digest;
  RepoTags: string[];
  Created: string | null;
  DockerVersion: string;
  Labels: Record<string, string> | null;
  Architecture: string;
  Variant?: string;
  Os: string;
  Layers: Digest[];
  LayersData: { MIMEType: string; Digest: Digest; Size: number; Annotations: Record<string, string> | null }[];
  Env: string[] | null;
}

/** The manifest `inspect` shows: the stored one where a source keeps one apart (see ImageSource.storedManifest). */
export async function inspectedManifest(src: ImageSource): Promise<RawManifest> {
  return (await src.storedManifest?.()) ?? (await src.getManifest());
}

/** The image manifest for the chosen platform (the manifest itself when it is not an index). */
export async function resolveImage(src: ImageSource, platform?: PlatformChoice, o: { stored?: boolean } = {}): Promise<{ topDigest: Digest; manifest: ImageManifest }> {
  // (For inspect, the stored manifest where the source keeps one apart; for reading blobs, the source's own.)
  const top = o.stored ? await inspectedManifest(src) : await src.getManifest();
  const parsed = parseManifest(top.bytes, top.mediaType);
  if (parsed.kind === 'image') return { topDigest: sha256(top.bytes), manifest: parsed };
  const chosen = choosePlatform(parsed, platform);
  const child = await src.getManifest(chosen.digest);
  verifyBuffer(child.bytes, chosen.digest, chosen.size, `manifest ${chosen.digest}`);
  const m = parseManifest(child.bytes, child.mediaType);
  if (m.kind !== 'image') throw new SkiffError('ERR_UNSUPPORTED', `nested index ${chosen.digest} is not supported`);
  return { topDigest: sha256(top.bytes), manifest: m };
}

export async function readConfig(src: ImageSource, m: ImageManifest): Promise<{ bytes: Buffer; config: ImageConfig }> {
  const bytes = await readAll(await src.getBlob(m.config), 1 << 24);
  verifyBuffer(bytes, m.config.digest, m.config.size, `config ${m.config.digest}`);
  return { bytes, config: parseConfig(bytes) };
}

export async function inspectImage(src: ImageSource, opts: { platform?: PlatformChoice; name?: string; repoTags?: string[] } = {}): Promise<InspectOutput> {
  const { topDigest, manifest } = await resolveImage(src, opts.platform, { stored: true });
  const { config } = await readConfig(src, manifest);
  const out: InspectOutput = {
    ...(opts.name ? { Name: opts.name } : {}),
    Digest: topDigest,
    RepoTags: opts.repoTags ?? (src.repoTags ? await src.repoTags() : []),
    // (As skopeo prints it: Go's RFC 3339, whatever the config's own spelling. Without one, skopeo reads a Docker
    // image's config into a Go time that is then zero, an OCI one's into a pointer that is then nil.)
    Created: config.created !== undefined ? rfc3339(config.created) : manifest.mediaType === MT.dockerManifest ? '0001-01-01T00:00:00Z' : null,
    DockerVersion: config.docker_version ?? '',
    Labels: config.config?.Labels ? sortedKeys(config.config.Labels) : null,
    Architecture: config.architecture,
    ...(config.variant ? { Variant: config.variant } : {}),
    Os: config.os,
    Layers: manifest.layers.map((l) => l.digest),
    LayersData: manifest.layers.map((l) => ({ MIMEType: l.mediaType, Digest: l.digest, Size: l.size, Annotations: l.annotations ?? null })),
    Env: config.config?.Env ?? null,
  };
  return out;
}
