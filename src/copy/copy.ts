import { addAbortSignal, pipeline, Readable, Transform, type TransformCallback } from 'node:stream';
import { STAGE_BUFFER, Verifier, VerdictGate, sha256, verifyBuffer, type Digest } from '../core/digest.js';
import { SkiffError, isRetryableError, wrapError } from '../core/errors.js';
import type { ImageDestination, ImageSource } from '../core/image.js';
import { readConfig } from '../core/inspect.js';
import {
  convertImageManifest, convertIndex, formatOf, parseManifest, serializeManifest,
  type Descriptor, type ImageManifest, type RawManifest,
} from '../core/manifest.js';
import { MT, layerCompressionOf, type Compression } from '../core/media-types.js';
import { choosePlatform, type PlatformChoice } from '../core/platform.js';
import { createCompressor, createDecompressor, detectCompression, peek } from '../archive/compression.js';
import { planImage, planIndex, type CopyPlan, type ImagePlan, type LayerAction, type PlanOptions } from './plan.js';

/** Receives progress events; the CLI draws bars or prints lines from them. */
export interface ProgressSink {
  blobStart(desc: Descriptor, kind: 'layer' | 'config'): void;
  blobAdvance(desc: Descriptor, bytes: number): void;
  blobDone(desc: Descriptor, how: 'copied' | 'skipped', kind: 'layer' | 'config'): void;
  manifest(digest: Digest): void;
}

export interface CopyOptions extends PlanOptions {
  compressLevel?: number;
  /** Copy the whole index rather than the instance for this platform. */
  all?: boolean;
  platform?: PlatformChoice;
  /** Blobs copied at once (default 6). */
  parallel?: number;
  /** Whole-blob retries after a transient failure (default 3), first delay in ms (default 1000, doubling). */
  retryTimes?: number;
  retryDelayMs?: number;
  signal?: AbortSignal;
  progress?: ProgressSink;
  /**
   * Sign the manifest written (skopeo's --sign-by): `sign` makes a signature of the manifest bytes for `identity`
   * (the name it vouches for). The destination must be able to store signatures; nothing is copied otherwise.
   */
  sign?: { identity: string; sign(manifest: Buffer, identity: string): Promise<Buffer> };
  /** Copy no signatures (skopeo's --remove-signatures). Otherwise the source's are copied, as skopeo does. */
  removeSignatures?: boolean;
}

export interface CopyResult {
  /** Digest of the top-level manifest written. */
  digest: Digest;
  manifest: RawManifest;
  plan: CopyPlan;
}

/** Fetch, verify (against `expected` when known) and parse a manifest. */
async function fetchManifest(src: ImageSource, instance?: Digest): Promise<{ raw: RawManifest; parsed: ReturnType<typeof parseManifest> }> {
  const raw = await src.getManifest(instance);
  if (instance) verifyBuffer(raw.bytes, instance, undefined, `manifest ${instance}`);
  return { raw, parsed: parseManifest(raw.bytes, raw.mediaType) };
}

/** Decide what to copy: fetches manifests only, moves no blob. */
export async function makePlan(src: ImageSource, dest: ImageDestination, o: CopyOptions): Promise<CopyPlan> {
  const top = await fetchManifest(src);
  if (top.parsed.kind === 'image') return { images: [planImage(top.raw, top.parsed, dest.caps, o)] };
  if (!o.all) {
    const chosen = choosePlatform(top.parsed, o.platform);
    const child = await fetchManifest(src, chosen.digest);
    if (child.parsed.kind !== 'image') throw new SkiffError('ERR_UNSUPPORTED', `nested index ${chosen.digest} is not supported`);
    return { images: [planImage(child.raw, child.parsed, dest.caps, o, chosen.digest)] };
  }
  const index = planIndex(top.raw, top.parsed, dest.caps, o);
  const childFormat = o.format ?? (index.targetType === MT.dockerList ? 'v2s2' : formatOf(index.targetType));
  const images: ImagePlan[] = [];
  for (const d of top.parsed.manifests) {
    const child = await fetchManifest(src, d.digest);
    if (child.parsed.kind !== 'image') throw new SkiffError('ERR_UNSUPPORTED', `nested index ${d.digest} is not supported`);
    // Children follow the index's format where the index is converted, so the result is homogeneous.
    const convert = index.targetType !== top.parsed.mediaType ? { ...o, format: childFormat } : o;
    images.push(planImage(child.raw, child.parsed, dest.caps, convert, d.digest));
  }
  return { images, index };
}

/** Counts bytes for progress without touching them. */
class Counter extends Transform {
  constructor(private readonly onBytes: (n: number) => void) {
    super(STAGE_BUFFER);
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.onBytes(chunk.length);
    cb(null, chunk);
  }
}

/** Run a whole blob transfer again (from a fresh source stream) after a transient failure, with backoff. */
async function withRetries<T>(f: () => Promise<T>, o: CopyOptions): Promise<T> {
  const times = o.retryTimes ?? 3;
  for (let attempt = 0; ; attempt++) {
    try {
      return await f();
    } catch (e) {
      if (!isRetryableError(e) || attempt >= times || o.signal?.aborted) throw e;
      await new Promise((r) => setTimeout(r, (o.retryDelayMs ?? 1000) * 2 ** attempt));
    }
  }
}

/** A tiny semaphore: at most `n` tasks at once. */
function limiter(n: number): <T>(f: () => Promise<T>) => Promise<T> {
  let active = 0;
  const queue: (() => void)[] = [];
  return async <T>(f: () => Promise<T>): Promise<T> => {
    if (active >= n) await new Promise<void>((r) => queue.push(r));
    active++;
    try {
      return await f();
    } finally {
      active--;
      queue.shift()?.();
    }
  };
}

interface BlobResult {
  digest: Digest;
  size: number;
  compression: Compression;
}

/**
 * Copy one blob: source -> verify digest and size -> [decompress -> compress] -> destination, one streaming pass.
 * When decompressing, the output is checked against the diffID too.
 */
async function copyBlob(
  src: ImageSource, dest: ImageDestination, desc: Descriptor, action: LayerAction, kind: 'layer' | 'config',
  diffID: Digest | undefined, o: CopyOptions, data?: Buffer, order?: number,
): Promise<BlobResult> {
  const declared = layerCompressionOf(desc.mediaType) ?? 'none';
  if (action === 'keep' && (await dest.hasBlob(desc, src.ref, order))) {
    o.progress?.blobDone(desc, 'skipped', kind);
    return { digest: desc.digest, size: desc.size, compression: declared };
  }
  o.signal?.throwIfAborted();
  o.progress?.blobStart(desc, kind);
  // The blob's CRC-32, where its source has it (gzip's trailer needs it: if the blob goes in uncompressed, the bytes
  // as stored are the input). Asked for before the blob is opened: no wait while its stream has nobody listening.
  const knownCrc = action === 'gzip' && !data ? await src.blobCrc32?.(desc) : undefined;
  // A config already read (for its diffIDs) is not fetched a second time.
  const raw = data ? Readable.from([data]) : await src.getBlob(desc);
  if (o.signal) addAbortSignal(o.signal, raw);
  // (No progress sink, no counting stage: every stage costs each chunk a trip through the stream machinery.)
  const progress = o.progress;
  const stages: (Readable | Transform)[] = [raw, ...(progress ? [new Counter((n) => progress.blobAdvance(desc, n))] : [])];
  const check = stages.length;
  // What the output is already verified to be: the destination then counts bytes instead of hashing them again.
  let known: { digest: Digest; size?: number } | undefined = { digest: desc.digest, size: desc.size };
  if (action !== 'keep') {
    const actual = detectCompression(await peek(raw, 8));
    if (actual !== action) {
      // (When equal, the layer was mislabelled but is already what we want: bytes stay, only the media type changes.)
      known = undefined;
      const d = createDecompressor(actual);
      if (d) stages.push(d);
      if (action === 'none' && diffID) {
        stages.push(new Verifier(diffID, undefined, `layer ${desc.digest} uncompressed (diffID)`));
        known = { digest: diffID };
      }
      const c = createCompressor(action, o.compressLevel, d ? undefined : knownCrc);
      if (c) stages.push(c);
    }
  }
  // The blob is checked as it streams, or by its source (on a thread of its own), whose verdict is asked for only
  // now: nothing before the pipeline is made may throw and leave it unheard.
  const verdict = data ? undefined : src.verifyBlob?.(desc, o.signal);
  stages.splice(check, 0, verdict ? new VerdictGate(verdict) : new Verifier(desc.digest, desc.size, `blob ${desc.digest}`));
  const out = (pipeline as unknown as (...s: unknown[]) => Readable)(...stages, () => undefined);
  let put: { digest: Digest; size: number };
  try {
    put = await dest.putBlob(out, { mediaType: desc.mediaType, isConfig: kind === 'config', ...known, ...(o.signal ? { signal: o.signal } : {}), ...(order !== undefined ? { order } : {}) });
  } catch (e) {
    // A destination that gave up part-way (an upload the registry stopped taking) may have left the stream
    // unread: close the source, rather than keep it open, paused, while the blob is tried again.
    out.destroy();
    throw e;
  }
  o.progress?.blobDone(desc, 'copied', kind);
  return { ...put, compression: action === 'keep' ? declared : action };
}

/**
 * Copy an image (or with `all`, a whole index) from `src` to `dest` and commit. Blobs stream end to end, verified
 * on the way; blobs the destination has are skipped; up to `parallel` blobs move at once. On any failure nothing
 * is committed; the caller closes `dest`, which then leaves nothing behind.
 */
export async function copyImage(src: ImageSource, dest: ImageDestination, o: CopyOptions = {}): Promise<CopyResult> {
  try {
    return await runCopy(src, dest, o);
  } catch (e) {
    if (o.signal?.aborted) throw new SkiffError('ERR_ABORTED', `copying ${src.ref} to ${dest.ref}: interrupted`, { cause: e });
    throw wrapError(`copying ${src.ref} to ${dest.ref}`, e);
  }
}

async function runCopy(src: ImageSource, dest: ImageDestination, opts: CopyOptions): Promise<CopyResult> {
  if (opts.sign && !dest.putSignatures) throw new SkiffError('ERR_UNSUPPORTED', `${dest.ref}: signatures cannot be stored in ${dest.ref.transport}: destinations`);
  const plan = await makePlan(src, dest, opts);
  const sigs = opts.removeSignatures ? undefined : await sourceSignatures(src, dest, plan);
  // The first failing blob stops the others: they are aborted and awaited, so no write is still running when the
  // caller closes (and cleans) the destination.
  const stop = new AbortController();
  const o: CopyOptions = { ...opts, signal: opts.signal ? AbortSignal.any([opts.signal, stop.signal]) : stop.signal };
  // Spooling a blob costs writing and reading it once more, worth it only to overlap waiting on a network.
  const limit = limiter(Math.max(1, o.parallel ?? (dest.caps.sequential && src.local ? 1 : 6)));
  const inflight = new Map<string, Promise<BlobResult>>();
  // Compressing is bound by the CPUs, and each blob being compressed holds buffers: more than two at once only
  // interleave (zstd compresses each on a thread of its own, with a context of several MiB; gzip compresses each
  // blob in parallel blocks). Measured on containers-storage -> oci, 6 -> 2 gzip blobs at once: same time, peak RSS
  // 99 -> 86 MiB; again with the process-wide gzip slots (ninth session): the daemon save the same either way.
  const compressSlots = { zstd: limiter(2), gzip: limiter(2) };
  const blob = (desc: Descriptor, action: LayerAction, kind: 'layer' | 'config', order: number, diffID?: Digest, data?: Buffer): Promise<BlobResult> => {
    const key = `${desc.digest}|${action}`;
    let p = inflight.get(key);
    if (!p) {
      const run = (): Promise<BlobResult> => withRetries(() => copyBlob(src, dest, desc, action, kind, diffID, o, data, order), o);
      p = limit(action === 'zstd' || action === 'gzip' ? () => compressSlots[action](run) : run);
      inflight.set(key, p);
    }
    return p;
  };

  const written: { plan: ImagePlan; raw: RawManifest; digest: Digest }[] = [];
  // All images' blobs are scheduled together so a multi-platform copy keeps every slot busy.
  const perImage = plan.images.map(async (img) => {
    // Layers copied as they are need nothing from the config: they start while it is fetched (one round trip less
    // before the first byte moves). Layers to decompress wait for its diffIDs, to check their output against.
    const cfgP = fetchConfig(src, img.manifest);
    const layerPs = img.manifest.layers.map((l, i) => {
      const action = img.layers[i]!;
      return action === 'keep' ? blob(l, action, 'layer', i) : cfgP.then((cfg) => blob(l, action, 'layer', i, cfg?.diffIDs?.[i]));
    });
    // (Awaited together below; until then a failure must not count as an unhandled rejection.)
    for (const p of layerPs) p.catch(() => undefined);
    const cfg = await cfgP;
    const [, ...layers] = await Promise.all([blob(img.manifest.config, 'keep', 'config', img.manifest.layers.length, undefined, cfg?.bytes), ...layerPs]);
    let raw: RawManifest;
    if (img.unchanged) raw = img.source;
    else {
      const m = convertImageManifest(img.manifest, formatOf(img.targetType), layers.map((r) => ({ digest: r.digest, size: r.size, compression: r.compression })));
      raw = { bytes: serializeManifest(m), mediaType: m.mediaType };
    }
    return { plan: img, raw, digest: sha256(raw.bytes) };
  });
  let results: Awaited<(typeof perImage)[number]>[];
  try {
    results = await Promise.all(perImage);
  } catch (e) {
    stop.abort(e);
    await Promise.allSettled([...perImage, ...inflight.values()]);
    throw e;
  }
  for (const [i, r] of results.entries()) {
    await dest.putManifest(r.raw, plan.index ? r.digest : undefined);
    const kept = plan.index ? sigs?.images[i] : undefined;
    if (kept?.length) await dest.putSignatures!(kept, r.digest);
    written.push(r);
  }
  let top: RawManifest;
  if (plan.index) {
    const ix = plan.index;
    const unchanged = ix.targetType === ix.manifest.mediaType && written.every((w) => w.plan.unchanged);
    if (unchanged) top = ix.source;
    else {
      const children = ix.manifest.manifests.map((d, i) => ({ ...d, mediaType: written[i]!.raw.mediaType, digest: written[i]!.digest, size: written[i]!.raw.bytes.length }));
      const m = convertIndex(ix.manifest, formatOf(ix.targetType), children);
      top = { bytes: serializeManifest(m), mediaType: m.mediaType };
    }
    await dest.putManifest(top);
  } else {
    top = written[0]!.raw;
  }
  const digest = sha256(top.bytes);
  o.progress?.manifest(digest);
  // The source's signatures, then a new one (c/image's order).
  const topSigs = [...(sigs?.top ?? []), ...(o.sign ? [await o.sign.sign(top.bytes, o.sign.identity)] : [])];
  if (topSigs.length) await dest.putSignatures!(topSigs);
  o.signal?.throwIfAborted();
  await dest.commit();
  return { digest, manifest: top, plan };
}

/**
 * The source's signatures to copy (skopeo copies them unless told not to): of the top-level manifest (for one image
 * chosen from an index, that instance's, as it becomes the top level), and with --all each instance's. A signature
 * vouches for exact manifest bytes, so a copy that would change a signed manifest (another format, layers
 * re-compressed, an image the source describes anew) is refused before anything moves, as is a destination that
 * cannot keep signatures; --remove-signatures copies without them. (skopeo instead keeps such a manifest unchanged
 * where the destination allows, ignoring --format or --dest-compress-format without a word.)
 */
async function sourceSignatures(src: ImageSource, dest: ImageDestination, plan: CopyPlan): Promise<{ top: Buffer[]; images: Buffer[][] } | undefined> {
  if (!src.getSignatures) return undefined;
  const get = src.getSignatures.bind(src);
  const check = (found: { signatures: Buffer[]; manifest: Digest }, written: Digest | undefined, what: string, why: string): Buffer[] => {
    if (!found.signatures.length) return [];
    const hint = '--remove-signatures copies the image without them';
    if (!dest.putSignatures) throw new SkiffError('ERR_UNSUPPORTED', `cannot copy the signatures of ${what} to ${dest.ref}: ${dest.ref.transport}: destinations cannot store signatures (${hint})`);
    if (written !== found.manifest) throw new SkiffError('ERR_CONVERSION', `copying would change ${what} (${why}), which invalidates its ${found.signatures.length === 1 ? 'signature' : `${found.signatures.length} signatures`} (${hint})`);
    return found.signatures;
  };
  // The manifest an image plan writes, when it writes the source's bytes; what changes them otherwise.
  const same = (p: ImagePlan): Digest | undefined => (p.unchanged ? sha256(p.source.bytes) : undefined);
  const why = (p: ImagePlan): string => {
    if (p.targetType !== p.manifest.mediaType) return `${p.manifest.mediaType} -> ${p.targetType}`;
    if (p.layers.some((a) => a !== 'keep')) return 'layers re-compressed';
    return 'the source describes its image anew';
  };
  if (!plan.index) {
    const p = plan.images[0]!;
    return { top: check(await get(p.instance), same(p), p.instance ? `the image ${p.instance}` : 'the image', why(p)), images: [] };
  }
  const ix = plan.index;
  const images = [];
  for (const p of plan.images) images.push(check(await get(p.instance), same(p), `the image ${p.instance}`, why(p)));
  const ixSame = ix.targetType === ix.manifest.mediaType && plan.images.every((p) => p.unchanged) ? sha256(ix.source.bytes) : undefined;
  const top = check(await get(), ixSame, 'the index', ix.targetType !== ix.manifest.mediaType ? `${ix.manifest.mediaType} -> ${ix.targetType}` : 'its images change');
  return { top, images };
}

/** The config (bytes verified, parsed) and its diffIDs, when it is an image config; undefined for artifacts. */
async function fetchConfig(src: ImageSource, m: ImageManifest): Promise<{ bytes: Buffer; diffIDs: Digest[] } | undefined> {
  if (m.config.mediaType !== MT.ociConfig && m.config.mediaType !== MT.dockerConfig) return undefined;
  const { bytes, config } = await readConfig(src, m);
  if (config.rootfs.diff_ids.length !== m.layers.length) {
    throw new SkiffError('ERR_INVALID_CONFIG', `config lists ${config.rootfs.diff_ids.length} diff_ids for ${m.layers.length} layers`);
  }
  return { bytes, diffIDs: config.rootfs.diff_ids };
}
