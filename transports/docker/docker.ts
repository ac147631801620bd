import { createReadStream, promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { BlobMeter, sha256, verifyBuffer, type Digest } from '../../src/core/digest.js';
import { SkiffError } from '../../src/core/errors.js';
import { IO_CHUNK, streamToTempFile } from '../../src/core/fs.js';
import type { BlobInfo, DestinationCaps, DestinationOptions, ImageDestination, ImageRef, ImageSource, SourceOptions, Transport } from '../../src/core/image.js';
import { guessManifestType, type Descriptor, type RawManifest } from '../../src/core/manifest.js';
import { MT } from '../../src/core/media-types.js';
import { lookupCredentials, type Credentials } from '../../src/config/auth-file.js';
import { findRegistry, loadRegistriesConf } from '../../src/config/registries.js';
import { repoScope } from './auth.js';
import type { RegistryClient, Res } from './client.js';
import { isRetryable, sleep } from './retry.js';
import { blobLocations } from './locations.js';
import { DockerRef, parseDockerSpec } from './ref.js';
import { readLookaside, writeLookaside } from './lookaside.js';

export { DockerRef, parseDockerSpec };


export const ACCEPT = [MT.ociManifest, MT.ociIndex, MT.dockerManifest, MT.dockerList, MT.dockerSchema1Signed, MT.dockerSchema1].join(', ');

function parseCreds(s: string): Credentials {
  const i = s.indexOf(':');
  if (i < 0) return { username: s, password: '' };
  return { username: s.slice(0, i), password: s.slice(i + 1) };
}

export interface Endpoint {
  client: RegistryClient;
  /** Repository path at the endpoint (a registries.conf `location` may rewrite the prefix). */
  path: string;
}

/** Resolve where to talk for a reference: registries.conf (location, insecure, blocked), credentials, TLS. */
/** Split `host/path` into an endpoint host (Docker Hub's API host for docker.io) and a repository path. */
function splitLocation(full: string): { host: string; path: string } {
  const slash = full.indexOf('/');
  const host = full.slice(0, slash);
  return { host: host === 'docker.io' ? 'registry-1.docker.io' : host, path: full.slice(slash + 1) };
}

async function makeEndpoint(ref: DockerRef, o: SourceOptions, location: string, insecure: boolean): Promise<Endpoint> {
  const { host, path } = splitLocation(location);
  let creds: Credentials | undefined;
  if (o.creds) creds = parseCreds(o.creds);
  else if (!o.noCreds) creds = await lookupCredentials(ref.named.domain, ref.named.path, o.authfile);
  // undici is loaded only when a registry is used: local copies start faster and smaller without it.
  const { RegistryClient } = await import('./client.js');
  return {
    client: new RegistryClient({
      endpoint: host,
      insecure,
      ...(creds ? { creds } : {}),
      ...(o.registryToken ? { registryToken: o.registryToken } : {}),
      ...(o.certDir ? { certDir: o.certDir } : {}),
      retryTimes: o.retryTimes ?? 3,
      retryDelayMs: o.retryDelayMs ?? 1000,
      ...(o.signal ? { signal: o.signal } : {}),
    }),
    path,
  };
}

/**
 * Where to talk for a reference, per registries.conf: `blocked` refuses, `location` rewrites the prefix,
 * `insecure` allows http. For pulls (`forPull`), the [[registry.mirror]] entries that apply to this reference
 * (pull-from-mirror: all / digest-only / tag-only) come first, the registry itself last.
 */
export async function endpoints(ref: DockerRef, o: SourceOptions, forPull: boolean): Promise<Endpoint[]> {
  const conf = await loadRegistriesConf();
  const name = ref.repository;
  const entry = findRegistry(conf, name);
  if (entry?.blocked) throw new SkiffError('ERR_UNAUTHORIZED', `registry ${entry.prefix} is blocked in registries.conf`);
  const rewrite = (location: string): string => (entry && !entry.prefix.startsWith('*.') ? location + name.slice(entry.prefix.length) : name);
  const out: Endpoint[] = [];
  if (forPull && entry) {
    const byDigest = !!ref.named.digest;
    for (const m of entry.mirrors) {
      if ((m.pullFromMirror === 'digest-only' && !byDigest) || (m.pullFromMirror === 'tag-only' && byDigest)) continue;
      out.push(await makeEndpoint(ref, o, rewrite(m.location), o.tlsVerify === false || m.insecure));
    }
  }
  out.push(await makeEndpoint(ref, o, entry ? rewrite(entry.location) : name, o.tlsVerify === false || (o.tlsVerify === undefined && !!entry?.insecure)));
  return out;
}

/** The registry itself (no mirrors): for pushes, deletes, tag lists and HEAD checks. */
export async function connect(ref: DockerRef, o: SourceOptions): Promise<Endpoint> {
  const eps = await endpoints(ref, o, false);
  return eps[eps.length - 1]!;
}

function contentType(res: Res): string {
  const h = res.headers['content-type'];
  return (Array.isArray(h) ? h[0] : h)?.split(';')[0]?.trim() ?? '';
}

/** GET a manifest by tag or digest; a digest reference is verified against the bytes. */
export async function fetchManifest(ep: Endpoint, ref: DockerRef, reference: string): Promise<RawManifest> {
  const res = await ep.client.send({ method: 'GET', path: `/v2/${ep.path}/manifests/${reference}`, headers: { accept: ACCEPT }, scopes: [repoScope(ep.path, false)], ok: [200] }, `reading manifest ${reference} of ${ref}`);
  const bytes = Buffer.from(await res.body.arrayBuffer());
  if (reference.includes(':')) verifyBuffer(bytes, reference as Digest, undefined, `manifest ${reference} of ${ref}`);
  const ct = contentType(res);
  const mediaType = guessManifestType(bytes) || (ct && ct !== 'application/json' ? ct : '');
  return { bytes, mediaType };
}

/** List all tags of a repository, following `Link: <…>; rel="next"` pagination. */
export async function listTags(ep: Endpoint, ref: DockerRef): Promise<string[]> {
  const tags: string[] = [];
  let next: string | undefined = `/v2/${ep.path}/tags/list`;
  for (let pages = 0; next && pages < 10_000; pages++) {
    const res = await ep.client.send({ method: 'GET', path: next, scopes: [repoScope(ep.path, false)], ok: [200] }, `listing tags of ${ref.repository}`);
    const body = (await res.body.json()) as { tags?: string[] | null };
    tags.push(...(body.tags ?? []));
    const link = res.headers.link;
    const m = /<([^>]+)>\s*;\s*rel="?next"?/.exec(Array.isArray(link) ? link.join(',') : link ?? '');
    next = m ? (m[1]!.startsWith('http') ? m[1] : m[1]!.startsWith('/') ? m[1] : `/${m[1]}`) : undefined;
  }
  return tags;
}

/**
 * A blob body that survives dropped connections: on a network error mid-body it asks again from the byte where it
 * stopped and carries on, up to `retries` times. The response body's chunks are passed on as they come (an async
 * generator in between cost each chunk two promise round trips).
 */
class ResumingBody extends Readable {
  private body!: Res['body'];
  private offset = 0;
  private attempt = 0;

  constructor(first: Res, private readonly open: (offset: number) => Promise<Res>, private readonly retries: number, private readonly delayMs: number, private readonly what: string) {
    super({ highWaterMark: IO_CHUNK });
    this.attach(first);
  }

  private attach(res: Res): void {
    const body = res.body;
    this.body = body;
    body.on('data', (chunk: Buffer) => {
      this.offset += chunk.length;
      if (!this.push(chunk)) body.pause();
    });
    body.on('end', () => this.push(null));
    body.on('error', (e: Error) => {
      if (this.destroyed || body !== this.body) return;
      if (!isRetryable(e) || this.attempt >= this.retries) {
        this.destroy(new SkiffError('ERR_NETWORK', `${this.what}: ${e.message}`, { cause: e }));
        return;
      }
      // (--retry-delay, doubling, as for every other retry.)
      const wait = this.delayMs * 2 ** this.attempt++;
      sleep(wait)
        .then(() => (this.destroyed ? undefined : this.open(this.offset)))
        .then((next) => {
          if (!next) return;
          if (this.destroyed) next.body.destroy();
          else this.attach(next);
        }, (err: unknown) => this.destroy(err as Error));
    });
  }

  override _read(): void {
    this.body.resume();
  }

  override _destroy(err: Error | null, cb: (e: Error | null) => void): void {
    this.body.destroy();
    cb(err);
  }
}

class DockerSource implements ImageSource {
  constructor(
    readonly ref: DockerRef,
    private readonly ep: Endpoint,
    private readonly retryTimes: number,
    /** The top manifest, when already fetched (probing a mirror). */
    private top?: RawManifest,
  ) {}

  async getManifest(instance?: Digest): Promise<RawManifest> {
    if (!instance && this.top) return this.top;
    const m = await fetchManifest(this.ep, this.ref, instance ?? this.ref.reference);
    // Remember the top manifest: a tag could move between two reads within one copy.
    if (!instance) this.top = m;
    return m;
  }

  /** Signatures in the lookaside storage registries.d names for this repository (none configured: the default). */
  async getSignatures(instance?: Digest): Promise<{ signatures: Buffer[]; manifest: Digest }> {
    const digest = instance ?? sha256((await this.getManifest()).bytes);
    return { signatures: await readLookaside(this.ref.named, digest), manifest: digest };
  }

  /**
   * The blob as a stream that survives dropped connections: on a network error mid-body it asks again with
   * `Range: bytes=N-` and carries on where it stopped (registries answer 206), up to the retry budget.
   */
  async getBlob(desc: Descriptor): Promise<Readable> {
    const ep = this.ep;
    const what = `reading blob ${desc.digest} of ${this.ref}`;
    const path = `/v2/${ep.path}/blobs/${desc.digest}`;
    const open = async (offset: number): Promise<Res> => {
      let url = path;
      for (let hops = 0; hops < 5; hops++) {
        const res = await ep.client.send({ method: 'GET', path: url, headers: offset ? { range: `bytes=${offset}-` } : {}, scopes: [repoScope(ep.path, false)], ok: [200, 206, 307, 302, 303, 301, 308] }, what);
        if (res.statusCode >= 300) {
          const loc = res.headers.location;
          await res.body.dump();
          const l = Array.isArray(loc) ? loc[0] : loc;
          if (!l) throw new SkiffError('ERR_REGISTRY', `${what}: redirect without Location`);
          url = new URL(l, await ep.client.baseURL()).toString();
          continue;
        }
        if (offset && res.statusCode !== 206) {
          await res.body.dump();
          throw new SkiffError('ERR_NETWORK', `${what}: connection lost at byte ${offset} and the registry cannot resume (no Range support)`);
        }
        return res;
      }
      throw new SkiffError('ERR_REGISTRY', `${what}: too many redirects`);
    };
    const first = await open(0);
    blobLocations().record(ep.client.o.endpoint, ep.path, desc.digest);
    return new ResumingBody(first, open, this.retryTimes, ep.client.o.retryDelayMs, what);
  }

  async repoTags(): Promise<string[]> {
    return listTags(this.ep, this.ref);
  }

  async close(): Promise<void> {
    await this.ep.client.close();
  }
}

const DOCKER_CAPS: DestinationCaps = {
  manifestTypes: [MT.ociManifest, MT.dockerManifest, MT.ociIndex, MT.dockerList],
  compression: 'compress',
  multiImage: true,
};

/**
 * Uploads in flight in this process, by registry/repository/digest. Parallel copies into one repository (sync
 * --jobs, multi-platform indexes sharing layers) wait for one upload of a blob instead of sending it twice —
 * which also avoids a distribution 2.8 race where a manifest PUT fails DIGEST_INVALID while another upload of a
 * blob it references is being linked.
 */
const uploads = new Map<string, Promise<void>>();

/** Repositories a missing blob is tried to be mounted from before it is uploaded. */
const MOUNT_TRIES = 3;

/** Blobs up to this size (with a known digest) go up in one PUT; larger or unknown ones stream with PATCH. */
const MONOLITHIC_MAX = 4 * 1024 * 1024;

/**
 * Known-size blobs larger than this go up in chunks of this size (PATCH with Content-Range), so a failed upload
 * resumes from what the registry reports it has (SKIFF_UPLOAD_CHUNK_SIZE in bytes; default 64 MiB: one request per
 * chunk matters on slow links). Nothing is buffered: a retry re-reads the source and skips what was sent.
 */
function uploadChunkSize(): number {
  const v = Number(process.env.SKIFF_UPLOAD_CHUNK_SIZE);
  return Number.isInteger(v) && v > 0 ? v : 64 * 1024 * 1024;
}

/** Pull exactly `n` bytes from an async iterator of buffers, keeping what is left over for the next call. */
class Take {
  private rest: Buffer | undefined;
  constructor(private readonly it: AsyncIterator<Buffer>) {}
  async *take(n: number): AsyncGenerator<Buffer> {
    while (n > 0) {
      let c = this.rest;
      this.rest = undefined;
      if (!c) {
        const r = await this.it.next();
        if (r.done) throw new SkiffError('ERR_TRUNCATED', `blob ended ${n} bytes early`);
        c = r.value;
      }
      if (c.length > n) {
        this.rest = c.subarray(n);
        c = c.subarray(0, n);
      }
      n -= c.length;
      yield c;
    }
  }
}

/**
 * Pushes to a registry. Blobs: HEAD to skip what exists, cross-repository mount from the source when it is on the
 * same registry or from where the blob location cache saw it there, else an upload session (one PUT for small
 * known blobs, a streamed PATCH then PUT ?digest=). The registry checks every digest. Manifests are held until
 * commit(), then sent children first, so no tag points at an incomplete image.
 */
class DockerDestination implements ImageDestination {
  readonly caps = DOCKER_CAPS;
  private readonly manifests: { m: RawManifest; ref: string }[] = [];
  /** Chunked upload sessions by blob digest, kept across the copy engine's retries of a blob. */
  private readonly sessions = new Map<Digest, string>();
  /** Uploads this destination has claimed (hasBlob said no): released when putBlob ends or on close. */
  private readonly claims = new Map<Digest, () => void>();
  constructor(
    readonly ref: DockerRef,
    private readonly ep: Endpoint,
    /** Blobs whose digest is not known before they are made are written to a temp file first (see putBlob). */
    private readonly precomputeDigests = false,
  ) {}

  private get scopes(): string[] {
    return [repoScope(this.ep.path, true)];
  }

  private uploadKey(d: Digest): string {
    return `${this.ep.client.o.endpoint}/${this.ep.path}@${d}`;
  }

  async hasBlob(desc: Descriptor, from?: ImageRef): Promise<boolean> {
    const key = this.uploadKey(desc.digest);
    for (let pending = uploads.get(key); pending; pending = uploads.get(key)) await pending;
    // Claim the upload before the HEAD, so a parallel copy of the same blob waits for us instead of racing.
    let release!: () => void;
    uploads.set(key, new Promise<void>((r) => (release = r)));
    const done = (): void => {
      uploads.delete(key);
      release();
    };
    try {
      const found = await this.lookup(desc, from);
      if (found) done();
      else this.claims.set(desc.digest, done);
      return found;
    } catch (e) {
      done();
      throw e;
    }
  }

  private async lookup(desc: Descriptor, from?: ImageRef): Promise<boolean> {
    const registry = this.ep.client.o.endpoint;
    const res = await this.ep.client.send({ method: 'HEAD', path: `/v2/${this.ep.path}/blobs/${desc.digest}`, scopes: this.scopes, ok: [200, 404] }, `checking blob ${desc.digest} in ${this.ref}`);
    await res.body.dump();
    if (res.statusCode === 200) {
      blobLocations().record(registry, this.ep.path, desc.digest);
      return true;
    }
    // Mount it from another repository of this registry that has it: the copy's source, then (the blob location
    // cache) where it was last seen. A repository we cannot read or that lost the blob answers 202: next one.
    const sources = new Set<string>();
    if (from instanceof DockerRef && from.named.domain === this.ref.named.domain && from.named.path !== this.ref.named.path) sources.add(from.named.path);
    for (const repo of blobLocations().candidates(registry, desc.digest, this.ep.path)) sources.add(repo);
    for (const srcPath of [...sources].slice(0, MOUNT_TRIES)) {
      const m = await this.ep.client.send({
        method: 'POST',
        path: `/v2/${this.ep.path}/blobs/uploads/?mount=${encodeURIComponent(desc.digest)}&from=${encodeURIComponent(srcPath)}`,
        headers: { 'content-length': '0' },
        scopes: [...this.scopes, repoScope(srcPath, false)],
        ok: [201, 202],
      }, `mounting blob ${desc.digest} from ${registry}/${srcPath}`).catch((e: unknown) => {
        // (Not having pull access to a remembered repository is no reason to fail: upload instead.)
        if (e instanceof SkiffError && e.code === 'ERR_UNAUTHORIZED') return undefined;
        throw e;
      });
      if (!m) continue;
      await m.body.dump();
      if (m.statusCode === 201) {
        blobLocations().record(registry, this.ep.path, desc.digest);
        return true;
      }
      await this.cancelUpload(m);
    }
    return false;
  }

  private async cancelUpload(res: Res): Promise<void> {
    const loc = res.headers.location;
    const l = Array.isArray(loc) ? loc[0] : loc;
    if (!l) return;
    const r = await this.ep.client.send({ method: 'DELETE', path: await this.absolute(l), scopes: this.scopes, ok: [200, 202, 204, 404] }, 'cancelling upload').catch(() => undefined);
    await r?.body.dump();
  }

  private async absolute(location: string): Promise<string> {
    return new URL(location, await this.ep.client.baseURL()).toString();
  }

  private async startUpload(what: string, signal?: AbortSignal): Promise<string> {
    const res = await this.ep.client.send({ method: 'POST', path: `/v2/${this.ep.path}/blobs/uploads/`, headers: { 'content-length': '0' }, scopes: this.scopes, ok: [202], signal }, what);
    await res.body.dump();
    const loc = res.headers.location;
    const l = Array.isArray(loc) ? loc[0] : loc;
    if (!l) throw new SkiffError('ERR_REGISTRY', `${what}: upload started without a Location`);
    return this.absolute(l);
  }

  private withDigest(location: string, d: Digest): string {
    const u = new URL(location);
    u.searchParams.set('digest', d);
    return u.toString();
  }

  async putBlob(stream: Readable, info: BlobInfo): Promise<{ digest: Digest; size: number }> {
    try {
      const put = this.precomputeDigests && !info.digest ? await this.putPrecomputed(stream, info) : await this.upload(stream, info);
      blobLocations().record(this.ep.client.o.endpoint, this.ep.path, put.digest);
      return put;
    } finally {
      if (info.digest) {
        this.claims.get(info.digest)?.();
        this.claims.delete(info.digest);
      }
    }
  }

  /**
   * --dest-precompute-digests (skopeo's): a blob made on the way (recompressed) lands in a temp file, hashed, so the
   * registry can be asked for it (HEAD, then a mount) before anything is sent; only a blob it lacks is uploaded,
   * from the file.
   */
  private async putPrecomputed(stream: Readable, info: BlobInfo): Promise<{ digest: Digest; size: number }> {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'skiff-push-'));
    try {
      const t = await streamToTempFile(stream, dir);
      if (await this.lookup({ mediaType: info.mediaType, digest: t.digest, size: t.size })) return { digest: t.digest, size: t.size };
      return await this.upload(createReadStream(t.path, { highWaterMark: IO_CHUNK }), { ...info, digest: t.digest, size: t.size });
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * Where an upload session stands (GET on its location): the bytes the registry has and the location to go on
   * with, or undefined when the session is gone or unusable (then a new one starts).
   */
  private async uploadStatus(location: string, what: string, signal?: AbortSignal): Promise<{ location: string; received: number } | undefined> {
    const res = await this.ep.client.send({ method: 'GET', path: location, scopes: this.scopes, ok: [204, 200, 400, 404, 416], signal }, what).catch(() => undefined);
    if (!res) return undefined;
    await res.body.dump();
    if (res.statusCode !== 204 && res.statusCode !== 200) return undefined;
    const range = String(res.headers.range ?? '');
    const m = /^(?:bytes=)?0-(\d+)$/.exec(range);
    // ("0-0" means no bytes or one; starting over from 0 is right for the first and refused for the second.)
    const received = m && m[1] !== '0' ? Number(m[1]) + 1 : 0;
    const next = res.headers.location;
    const l = Array.isArray(next) ? next[0] : next;
    return { location: l ? await this.absolute(l) : location, received };
  }

  /**
   * A known-size blob in Content-Range chunks. The session is remembered until the blob is done, so when the copy
   * engine retries after a failure, the upload goes on from what the registry has: the fresh source stream is read
   * up to there (the engine still verifies all of it) and only the rest is sent.
   */
  private async uploadChunked(stream: Readable, digest: Digest, size: number, what: string, signal?: AbortSignal): Promise<{ digest: Digest; size: number }> {
    const chunk = uploadChunkSize();
    let loc: string | undefined;
    let offset = 0;
    const saved = this.sessions.get(digest);
    if (saved) {
      const st = await this.uploadStatus(saved, what, signal);
      if (st && st.received <= size) ({ location: loc, received: offset } = st);
    }
    loc ??= await this.startUpload(what, signal);
    this.sessions.set(digest, loc);
    const take = new Take(stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>);
    for await (const _ of take.take(offset)) {
      // already at the registry
    }
    while (offset < size) {
      const n = Math.min(chunk, size - offset);
      let res: Res;
      try {
        res = await this.ep.client.send({ method: 'PATCH', path: loc, headers: { 'content-type': 'application/octet-stream', 'content-length': String(n), 'content-range': `${offset}-${offset + n - 1}` }, body: Readable.from(take.take(n)), scopes: this.scopes, ok: [202, 204, 416], signal }, what);
      } catch (e) {
        if (!isRetryable(e)) this.sessions.delete(digest);
        throw e;
      }
      await res.body.dump();
      if (res.statusCode === 416) {
        // The registry holds a different amount than it said: this session cannot go on.
        this.sessions.delete(digest);
        throw new SkiffError('ERR_REGISTRY', `${what}: the registry refused the chunk at byte ${offset} (416); starting over`, { retryable: true });
      }
      const next = res.headers.location;
      const l = Array.isArray(next) ? next[0] : next;
      if (l) loc = await this.absolute(l);
      this.sessions.set(digest, loc);
      offset += n;
    }
    const res = await this.ep.client.send({ method: 'PUT', path: this.withDigest(loc, digest), headers: { 'content-length': '0' }, scopes: this.scopes, ok: [201], signal }, what);
    await res.body.dump();
    this.sessions.delete(digest);
    return { digest, size };
  }

  private async upload(stream: Readable, info: BlobInfo): Promise<{ digest: Digest; size: number }> {
    const what = `uploading blob ${info.digest ?? ''} to ${this.ref}`.replace('  ', ' ');
    const signal = info.signal;
    if (info.digest && info.size !== undefined && info.size > uploadChunkSize()) return this.uploadChunked(stream, info.digest, info.size, what, signal);
    const loc = await this.startUpload(what, signal);
    if (info.digest && info.size !== undefined && info.size <= MONOLITHIC_MAX) {
      const chunks: Buffer[] = [];
      for await (const c of stream) chunks.push(c as Buffer);
      const body = Buffer.concat(chunks);
      const res = await this.ep.client.send({ method: 'PUT', path: this.withDigest(loc, info.digest), headers: { 'content-type': 'application/octet-stream', 'content-length': String(body.length) }, body, scopes: this.scopes, ok: [201], signal }, what);
      await res.body.dump();
      return { digest: info.digest, size: body.length };
    }
    const meter = new BlobMeter(info.digest);
    let streamError: unknown;
    stream.once('error', (e) => {
      streamError = e;
      meter.destroy(e);
    });
    let patched: Res;
    try {
      // A known size goes as Content-Length, as skopeo sends it: the body then goes out as it is, where chunked
      // encoding framed every chunk (a size line written before each 64 KiB: ~6 % of a registry -> registry copy's
      // CPU). (Verified upstream: a stream of another length fails there, before the request could end short.)
      const length: Record<string, string> = info.digest && info.size !== undefined ? { 'content-length': String(info.size) } : {};
      patched = await this.ep.client.send({ method: 'PATCH', path: loc, headers: { 'content-type': 'application/octet-stream', ...length }, body: stream.pipe(meter), scopes: this.scopes, ok: [202, 204], signal }, what);
    } catch (e) {
      // A failure of our own stream (a digest mismatch upstream) is the real error, not the aborted request.
      await this.cancelUpload({ headers: { location: loc } } as unknown as Res);
      throw streamError ?? e;
    }
    await patched.body.dump();
    const next = patched.headers.location;
    const l = (Array.isArray(next) ? next[0] : next) ?? loc;
    const res = await this.ep.client.send({ method: 'PUT', path: this.withDigest(await this.absolute(l), meter.digest), headers: { 'content-length': '0' }, scopes: this.scopes, ok: [201], signal }, what);
    await res.body.dump();
    return { digest: meter.digest, size: meter.size };
  }

  async putManifest(m: RawManifest, instance?: Digest): Promise<void> {
    this.manifests.push({ m, ref: instance ?? this.ref.reference });
  }

  /** Kept for commit: written to the lookaside staging area once the manifests are in the registry. */
  private readonly signatures: { digest?: Digest; signatures: Buffer[] }[] = [];
  async putSignatures(signatures: Buffer[], instance?: Digest): Promise<void> {
    this.signatures.push({ ...(instance ? { digest: instance } : {}), signatures });
  }

  async commit(): Promise<void> {
    for (const { m, ref } of this.manifests) {
      const what = `writing manifest ${ref} to ${this.ref}`;
      if (ref.includes(':')) verifyBuffer(m.bytes, ref as Digest, undefined, what);
      const res = await this.ep.client.send({ method: 'PUT', path: `/v2/${this.ep.path}/manifests/${ref}`, headers: { 'content-type': m.mediaType, 'content-length': String(m.bytes.length) }, body: m.bytes, scopes: this.scopes, ok: [201, 200] }, what);
      await res.body.dump();
    }
    const top = this.manifests.find((x) => x.ref === this.ref.reference)?.m;
    for (const s of this.signatures) {
      const digest = s.digest ?? (top ? sha256(top.bytes) : undefined);
      if (digest) await writeLookaside(this.ref.named, digest, s.signatures);
    }
  }

  async close(): Promise<void> {
    for (const release of this.claims.values()) release();
    this.claims.clear();
    await this.ep.client.close();
  }
}


/**
 * Ping the registry now, in the background, rather than at the first request: a copy then meets both its
 * registries at once, while it opens the other end and fetches the manifest (registry -> registry waited for the
 * destination's ping after the source's manifest and config). A failure is not lost: ping() is shared, and the
 * first real request awaits the same attempt (with its retries) or, after a failure, tries again and reports it.
 */
function warmUp(ep: Endpoint): Endpoint {
  ep.client.ping().catch(() => undefined);
  return ep;
}

export const dockerTransport: Transport = {
  name: 'docker',
  parse: parseDockerSpec,
  async openSource(ref, opts: SourceOptions = {}) {
    const r = ref as DockerRef;
    const eps = await endpoints(r, opts, true);
    // Mirrors first: the first endpoint that serves the manifest serves the whole image.
    for (const [i, ep] of eps.entries()) {
      if (i === eps.length - 1) return new DockerSource(r, warmUp(ep), opts.retryTimes ?? 3);
      try {
        const first = await fetchManifest(ep, r, r.reference);
        return new DockerSource(r, ep, opts.retryTimes ?? 3, first);
      } catch {
        await ep.client.close();
      }
    }
    throw new SkiffError('ERR_REGISTRY', `${r}: no endpoint`);
  },
  async openDestination(ref, opts: DestinationOptions = {}) {
    // Pushing by digest is allowed: commit() checks that the manifest hashes to it.
    const r = ref as DockerRef;
    return new DockerDestination(r, warmUp(await connect(r, opts)), !!opts.precomputeDigests);
  },
  /** Delete the manifest a reference names (by tag: resolved to its digest first). */
  async delete(ref, opts: SourceOptions = {}) {
    const r = ref as DockerRef;
    const ep = await connect(r, opts);
    try {
      const digest = r.named.digest ?? (await resolveDigest(ep, r));
      const res = await ep.client.send({ method: 'DELETE', path: `/v2/${ep.path}/manifests/${digest}`, scopes: [repoScope(ep.path, true)], ok: [202, 200] }, `deleting ${r}`);
      await res.body.dump();
    } finally {
      await ep.client.close();
    }
  },
};

/** The digest a tag points at: HEAD with every Accept type, Docker-Content-Digest; else GET and hash. */
export async function resolveDigest(ep: Endpoint, r: DockerRef): Promise<Digest> {
  const res = await ep.client.send({ method: 'HEAD', path: `/v2/${ep.path}/manifests/${r.reference}`, headers: { accept: ACCEPT }, scopes: [repoScope(ep.path, false)], ok: [200] }, `resolving ${r}`);
  await res.body.dump();
  const h = res.headers['docker-content-digest'];
  const d = Array.isArray(h) ? h[0] : h;
  if (d && /^sha256:[a-f0-9]{64}$/.test(d)) return d as Digest;
  return sha256((await fetchManifest(ep, r, r.reference)).bytes);
}
