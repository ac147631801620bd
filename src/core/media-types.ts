/** Media types skiff understands. */
export const MT = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociLayerNondistGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

export type Compression = 'none' | 'gzip' | 'zstd';

/** The compression a layer media type declares, or undefined for a type that is not a known layer. */
export function layerCompressionOf(mediaType: string): Compression | undefined {
  switch (mediaType) {
    case MT.ociLayer:
    case MT.dockerLayer:
    case 'application/vnd.oci.image.layer.nondistributable.v1.tar':
      return 'none';
    case MT.ociLayerGzip:
    case MT.dockerLayerGzip:
    case MT.dockerForeignLayerGzip:
    case MT.ociLayerNondistGzip:
      return 'gzip';
    case MT.ociLayerZstd:
    case 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd':
      return 'zstd';
    default:
      return undefined;
  }
}

/** The layer media type for a manifest format and a compression; undefined where the format has none (docker+zstd). */
export function layerMediaType(format: 'oci' | 'v2s2', c: Compression): string | undefined {
  if (format === 'oci') return c === 'none' ? MT.ociLayer : c === 'gzip' ? MT.ociLayerGzip : MT.ociLayerZstd;
  return c === 'none' ? MT.dockerLayer : c === 'gzip' ? MT.dockerLayerGzip : undefined;
}
