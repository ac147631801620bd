import type { Readable } from 'node:stream';
import type { Digest } from './digest.js';
import type { Descriptor, RawManifest } from './manifest.js';
import type { PlatformChoice } from './platform.js';
import type { DockerReference } from './reference.js';

/** A parsed `transport:spec` reference. Each transport owns its spec syntax. */
export interface ImageRef {
  readonly transport: string;
  /** The spec as the user would write it after the `transport:` prefix. */
  readonly spec: string;
  /** `transport:spec`, for messages. */
  toString(): string;
  /**
   * The repository a named local reference names (containers-storage, docker-archive, docker-daemon), as
   * skopeo inspect reports it in Name.
   */
  readonly dockerName?: string;
}

/** Options a copy passes to every source; transports ignore what they do not use. */
export interface SourceOptions {
  platform?: PlatformChoice;
  signal?: AbortSignal;
  /** Registry options (docker://): verify TLS (false also allows plain http), credentials, retries. */
  tlsVerify?: boolean;
  certDir?: string;
  authfile?: string;
  /** `user:password` */
  creds?: string;
  /** A Bearer token sent as is with every request to the registry (skopeo's --registry-token). */
  registryToken?: string;
  /** Use no credentials at all, not even from auth files. */
  noCreds?: boolean;
  /** Retries of a failed request or blob transfer (default 3). */
  retryTimes?: number;
  /** First retry delay in ms, doubled each time (default 1000). */
  retryDelayMs?: number;
  /** containers-storage: the store to use when a reference names none (global --root/--runroot/--storage-driver). */
  storage?: { root?: string; runroot?: string; driver?: string };
  /** docker-daemon: the Engine API address (`unix:///path`, `tcp://host:port`); default DOCKER_HOST. */
  daemonHost?: string;
  /** oci: blobs in this directory (`sha256/<hex>`) instead of the layout's `blobs/` (skopeo's --*-shared-blob-dir). */
  sharedBlobDir?: string;
}

export interface DestinationOptions extends SourceOptions {
  /** Further names the image is recorded under where a destination keeps names (docker-archive, docker-daemon). */
  additionalTags?: DockerReference[];
  /** oci: and oci-archive: keep uncompressed layers uncompressed (skopeo's --dest-oci-accept-uncompressed-layers). */
  acceptUncompressedLayers?: boolean;
  /** docker://: blobs made on the way are hashed to a temp file first, so ones the registry has are not sent. */
  precomputeDigests?: boolean;
}

/** Reads an image. Call close() when done, whatever happened. */
export interface ImageSource {
  readonly ref: ImageRef;
  /** The top-level manifest, or an instance of an index by digest, with bytes exactly as stored. */
  getManifest(instance?: Digest): Promise<RawManifest>;
  /**
   * The image's manifest as it was stored, where the source describes the image otherwise for copying
   * (containers-storage gives uncompressed layers, so its copy manifest is made anew): what `inspect` shows, as
   * skopeo shows it. Undefined where the two are the same.
   */
  storedManifest?(): Promise<RawManifest | undefined>;
  /**
   * A stream of the blob's stored bytes. Not verified: the caller checks digest and size (the copy engine does).
   * Caller must consume or destroy the stream. Missing blob: ERR_BLOB_UNKNOWN.
   */
  getBlob(desc: Descriptor): Promise<Readable>;
  /**
   * Where the source checks a blob's digest and size itself, off the thread that copies it (a file of its own
   * hashed on a thread of its own): the verdict on the bytes getBlob streams, rejecting with ERR_DIGEST_MISMATCH or
   * ERR_SIZE_MISMATCH. The engine then holds the blob's end until the verdict is in instead of hashing the bytes
   * itself. `signal`: the copy gave up, the verdict is not wanted. Undefined: the engine checks the blob.
   */
  verifyBlob?(desc: Descriptor, signal?: AbortSignal): Promise<void> | undefined;
  /**
   * The CRC-32 of the blob's bytes, where the source computed it already (with the digest verifyBlob checks):
   * gzip's trailer needs it, and the copy's main thread then need not compute it. Undefined: not known.
   */
  blobCrc32?(desc: Descriptor): Promise<number | undefined>;
  /**
   * Signatures (containers-signature(5) blobs) of the top-level manifest, or of an instance of the index, and the
   * digest of the manifest they sign: the one getManifest gives, except where the source describes the image anew
   * (containers-storage), when copying it as described would invalidate them. Absent: the source keeps none.
   */
  getSignatures?(instance?: Digest): Promise<{ signatures: Buffer[]; manifest: Digest }>;
  /** Names the source knows for the image (docker-archive RepoTags, oci ref.name), for inspect. */
  repoTags?(): Promise<string[]>;
  /** Are blobs read from local files (cheap to read at any time, nothing to wait for)? */
  readonly local?: boolean;
  close(): Promise<void>;
}

export interface DestinationCaps {
  /** Manifest media types accepted, preferred first. */
  manifestTypes: readonly string[];
  /** What the destination wants done to layers when the user asks nothing. */
  compression: 'preserve' | 'compress' | 'decompress';
  /** Can it store an index with several images? */
  multiImage: boolean;
  /**
   * Are blobs written one after another into a single stream (a tar)? Then a blob arriving while another is being
   * written must be spooled to disk and copied again later: from a local source the engine copies one blob at a
   * time instead (as containers/image does for these destinations), from a remote one it still overlaps downloads.
   */
  sequential?: boolean;
}

export interface BlobInfo {
  mediaType: string;
  /**
   * Digest and size of the bytes that will flow, when known. A set digest is a promise: the stream is verified
   * against it and errors before its end if it does not match, so the destination need not hash it again.
   */
  digest?: Digest;
  size?: number;
  isConfig: boolean;
  /**
   * The blob's place in its image as containers/image writes blobs one at a time: the layers by index, then the
   * config. Blobs arrive in whatever order they finish; a destination that keeps them in sequence (docker-archive)
   * puts them in this order.
   */
  order?: number;
  /** Aborted when the copy gives up on this blob (another blob failed): stop writing it, promptly. */
  signal?: AbortSignal;
}

/** Writes an image. Nothing becomes visible before commit(); close() without commit leaves nothing behind. */
export interface ImageDestination {
  readonly ref: ImageRef;
  readonly caps: DestinationCaps;
  /**
   * Does the destination already hold this blob (so the copy can skip it)? `from` is the copy's source: a
   * destination may make the blob available cheaply from it (a registry's cross-repository mount). `order` is the
   * blob's place in its image, as in BlobInfo: a skipped blob's turn has passed.
   */
  hasBlob(desc: Descriptor, from?: ImageRef, order?: number): Promise<boolean>;
  /** Store a blob from a stream; returns what was stored. Rejects (storing nothing) if the stream errors. */
  putBlob(stream: Readable, info: BlobInfo): Promise<{ digest: Digest; size: number }>;
  /** Store a manifest: `instance` is set for an image inside an index, absent for the top-level manifest. */
  putManifest(manifest: RawManifest, instance?: Digest): Promise<void>;
  /**
   * Store signatures (containers-signature(5) blobs) of the top-level manifest, or of an instance of the index by
   * its digest, after that manifest is put; absent where signatures cannot be stored.
   */
  putSignatures?(signatures: Buffer[], instance?: Digest): Promise<void>;
  commit(): Promise<void>;
  close(): Promise<void>;
}

/** A transport: parses its references and opens sources and destinations. */
export interface Transport {
  readonly name: string;
  /** Parse the part after `name:`; throws ERR_INVALID_REFERENCE. */
  parse(spec: string): ImageRef;
  openSource(ref: ImageRef, opts?: SourceOptions): Promise<ImageSource>;
  openDestination(ref: ImageRef, opts?: DestinationOptions): Promise<ImageDestination>;
  delete?(ref: ImageRef, opts?: SourceOptions): Promise<void>;
}
