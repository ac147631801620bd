import { once } from 'node:events';
import { createReadStream, promises as fsp, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { digestHex, type Digest } from '../../src/core/digest.js';
import { SkiffError } from '../../src/core/errors.js';
import { paced } from '../../src/core/gc-pace.js';
import { followTar, type TarFollower } from '../../src/core/hash-worker.js';
import { FileWriter, IO_CHUNK, streamToTempFile } from '../../src/core/fs.js';
import { MT } from '../../src/core/media-types.js';
import { tarHeader } from '../../src/archive/tar-append.js';
import type { BlobInfo, DestinationCaps, DestinationOptions, ImageDestination, ImageSource, SourceOptions, Transport } from '../../src/core/image.js';
import { parseManifest, type Descriptor, type ImageManifest, type RawManifest } from '../../src/core/manifest.js';
import { formatDockerReference, withDefaultTag, type DockerReference } from '../../src/core/reference.js';
import { ArchiveSource, DockerArchiveRef } from '../docker-archive/index.js';
import { getHead, getToFile, type HeadResult, type PlainTarget } from './get-to-file.js';
import { readTimeoutMs } from '../read-timeout.js';
import { DaemonRef, parseDaemonSpec } from './ref.js';

export { DaemonRef };


/** Where the daemon listens: --*-daemon-host, else DOCKER_HOST, else the default socket. */
function daemonHost(o: SourceOptions): string {
  return o.daemonHost ?? process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock';
}

interface Conn {
  host: string;
  request: (method: string, p: string, body?: Readable, headers?: Record<string, string>) => Promise<import('undici').Dispatcher.ResponseData>;
  /** How long a body may stall (SKIFF_READ_TIMEOUT), in either direction. */
  idleMs: number;
  /**
   * GET `p` into `file`; any status but 200 comes with its body's text and leaves the file empty. `onSent`: called
   * once the request is out; `onWritten(end)`: the file's first `end` bytes are written (plain connections only).
   */
  download: (p: string, file: string, o?: DownloadOptions) => Promise<{ status: number; errorText?: string }>;
  close: () => Promise<void>;
}

interface DownloadOptions {
  signal?: AbortSignal;
  onSent?: () => void;
  onWritten?: (end: number) => void;
}

/**
 * Connect to the Engine API over a unix socket or tcp (TLS from DOCKER_CERT_PATH when DOCKER_TLS_VERIFY is set).
 * undici, for the small API calls and TLS, is loaded once a call needs it: on a plain connection the ping and the
 * export are read by get-to-file.ts, and a save asks for its export before undici is even loaded.
 */
async function connectDaemon(o: SourceOptions): Promise<Conn> {
  const idleMs = readTimeoutMs();
  const host = daemonHost(o);
  let connect: Record<string, unknown>;
  let origin: string;
  // Where the ping and the large export can be read without undici (get-to-file.ts): a connection without TLS.
  let plain: PlainTarget | undefined;
  if (host.startsWith('unix://')) {
    connect = { socketPath: host.slice(7) };
    origin = 'http://localhost';
    plain = { path: host.slice(7) };
  } else if (host.startsWith('tcp://') || host.startsWith('http://') || host.startsWith('https://')) {
    const tlsOn = host.startsWith('https://') || (process.env.DOCKER_TLS_VERIFY !== undefined && process.env.DOCKER_TLS_VERIFY !== '' && process.env.DOCKER_TLS_VERIFY !== '0');
    const certPath = process.env.DOCKER_CERT_PATH ?? path.join(os.homedir(), '.docker');
    connect = {};
    if (tlsOn) {
      // Files missing from a DOCKER_CERT_PATH given are an error, as for the docker command; under the default
      // ~/.docker they are optional (the system's CAs, no client certificate).
      const read = (f: string) =>
        fsp.readFile(path.join(certPath, f), 'utf8').catch((e: NodeJS.ErrnoException) => {
          if (process.env.DOCKER_CERT_PATH) throw new SkiffError('ERR_USAGE', `DOCKER_TLS_VERIFY is set: cannot read ${path.join(certPath, f)} (${e.code ?? e.message})`);
          return undefined;
        });
      const [ca, cert, key] = await Promise.all([read('ca.pem'), read('cert.pem'), read('key.pem')]);
      Object.assign(connect, { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) });
    }
    origin = `${tlsOn ? 'https' : 'http'}://${host.replace(/^\w+:\/\//, '')}`;
    if (!tlsOn) {
      const u = new URL(origin);
      plain = { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 80) };
    }
  } else {
    throw new SkiffError('ERR_INVALID_REFERENCE', `daemon host ${JSON.stringify(host)}: expected unix:///path or tcp://host:port`);
  }
  const hostHeader = new URL(origin).host;
  const unreachable = (e: unknown): SkiffError => {
    const err = e as { code?: string; message?: string };
    const what = [err.code, err.message].filter(Boolean).join(': ');
    const hint = origin.startsWith('https:') ? 'is it running, and do its certificates and those in DOCKER_CERT_PATH match?' : 'is it running?';
    return new SkiffError('ERR_NETWORK', `cannot connect to the Docker daemon at ${host}: ${what} (${hint})`, { cause: e, retryable: false });
  };
  let http: Promise<{ agent: import('../http.js').Agent; request: typeof import('../http.js').request }> | undefined;
  const undici = () => (http ??= import('../http.js').then(({ Agent, request }) => ({ agent: new Agent({ connect }), request })));
  // No limit on the wait for an answer (a daemon prepares a whole export before its first byte), nor on a request
  // body (a load is fed as the copy goes); a body that stops coming in for SKIFF_READ_TIMEOUT is given up.
  const call = async (method: string, p: string, body?: Readable, headers?: Record<string, string>, signal?: AbortSignal) => {
    const { agent, request } = await undici();
    try {
      return await request(`${origin}${p}`, { method: method as 'GET', dispatcher: agent, ...(body ? { body } : {}), ...(headers ? { headers } : {}), ...(signal ? { signal } : {}), headersTimeout: 0, bodyTimeout: idleMs });
    } catch (e) {
      if (signal?.aborted) throw e;
      throw unreachable(e);
    }
  };
  // Plain downloads in flight, dropped when the connection is closed.
  const downloads = new Set<AbortController>();
  const download = async (p: string, file: string, { signal, onSent, onWritten }: DownloadOptions = {}): Promise<{ status: number; errorText?: string }> => {
    const stop = new AbortController();
    downloads.add(stop);
    const both = signal ? AbortSignal.any([stop.signal, signal]) : stop.signal;
    try {
      if (plain) {
        const r = await getToFile(plain, hostHeader, p, file, { signal: both, idleMs, ...(onSent ? { onSent } : {}), ...(onWritten ? { onWritten } : {}) });
        return r.errorBody ? { status: r.status, errorText: r.errorBody.toString('utf8') } : { status: r.status };
      }
      onSent?.();
      const res = await call('GET', p, undefined, undefined, both);
      if (res.statusCode !== 200) return { status: res.statusCode, errorText: await res.body.text().catch(() => '') };
      // (Chunks written are garbage that V8 would let pile up: collection is paced by the bytes, as for blobs.)
      res.body.on('data', (c: Buffer) => paced(c.length));
      // (Socket-sized chunks gathered into 1 MiB writes, as blobs are written: 1.32 -> 1.22 s for the bench image.)
      await pipeline(res.body, new FileWriter(file));
      return { status: 200 };
    } catch (e) {
      if (signal?.aborted || e instanceof SkiffError) throw e;
      // A daemon that is not there; any other failure (cut short, stalled, a write error) says what it was.
      if ((e as { syscall?: string }).syscall === 'connect') throw unreachable(e);
      throw new SkiffError('ERR_NETWORK', `reading from the Docker daemon at ${host}: ${(e as Error).message}`, { cause: e, retryable: false });
    } finally {
      downloads.delete(stop);
    }
  };
  // The API version: the daemon's own, from /_ping's API-Version header, else (a daemon that does not send it) from
  // /version's ApiVersion. skiff's few requests (ping, version, image inspect, export, load) mean the same in every
  // version since 1.24, and a version of skiff's choosing can be one the daemon no longer serves: Docker 29 refuses
  // anything below 1.44, and skiff, which asked for 1.41, could not talk to it at all.
  let server: string | undefined;
  if (plain) {
    let head: HeadResult;
    try {
      head = await getHead(plain, hostHeader, '/_ping', { timeoutMs: idleMs });
    } catch (e) {
      throw (e as { syscall?: string }).syscall === 'connect' ? unreachable(e) : new SkiffError('ERR_NETWORK', `the Docker daemon at ${host}: ${(e as Error).message}`, { cause: e, retryable: false });
    }
    server = head.headers['api-version'];
  } else {
    const ping = await call('GET', '/_ping');
    await ping.body.dump();
    const v = ping.headers['api-version'];
    server = Array.isArray(v) ? v[0] : v;
  }
  if (!server) {
    const res = await call('GET', '/version');
    if (res.statusCode === 200) server = ((await res.body.json().catch(() => ({}))) as { ApiVersion?: unknown }).ApiVersion as string | undefined;
    else await res.body.dump();
    if (typeof server !== 'string') server = undefined;
  }
  // (A daemon that says neither: 1.41, which Docker 20.10 to 28 and podman speak.)
  const version = server && /^1\.\d{1,3}$/.test(server) ? server : '1.41';
  return {
    host,
    idleMs,
    request: (m, p, b, h) => call(m, `/v${version}${p}`, b, h),
    download: (p, file, d) => download(`/v${version}${p}`, file, d),
    close: async () => {
      for (const d of downloads) d.abort();
      if (http) await (await http).agent.destroy();
    },
  };
}

async function daemonError(res: import('undici').Dispatcher.ResponseData, what: string): Promise<SkiffError> {
  return errorOf(res.statusCode, await res.body.text().catch(() => ''), what);
}

/** The daemon's error answer (`{"message": …}`) as an error; 404 is a missing image. */
function errorOf(status: number, text: string, what: string): SkiffError {
  let msg = '';
  try {
    msg = (JSON.parse(text) as { message?: string }).message ?? '';
  } catch {
    /* no JSON */
  }
  return new SkiffError(status === 404 ? 'ERR_IMAGE_NOT_FOUND' : 'ERR_REGISTRY', `${what}: ${msg || `HTTP ${status}`}`);
}

/**
 * Reads `GET /images/{name}/get`. A `docker save` stream puts manifest.json last, so the archive has to land
 * somewhere before the first layer can be served: it is spooled once to a temp file and read in place from there.
 */
async function openDaemonSource(ref: DaemonRef, o: SourceOptions): Promise<ImageSource> {
  const conn = await connectDaemon(o);
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'skiff-daemon-'));
  let follower: TarFollower | undefined;
  try {
    // The export is asked for at once, beside the inspect that says whether the image is there: the daemon takes
    // its time before the first byte (podman writes the whole export to a file of its own first), and the
    // inspect's round trip (~14 ms with podman) need not come before that. An inspect that fails wins; closing
    // the connection then drops the export.
    const file = path.join(dir, 'image.tar');
    // The layers' digests are checked on a thread of their own (hash-worker.ts), which starts while the daemon
    // prepares the export and hashes each layer as it lands, on the CPU the download leaves idle: by the end of
    // the download the digests are known, and the copy's main thread, its bound, never hashes a layer.
    follower = followTar(file);
    let sent!: () => void;
    const requested = new Promise<void>((r) => (sent = r));
    // (Interrupting the command stops the export at once: it can be gigabytes, all before the copy proper begins.)
    const f = follower;
    const exporting = conn.download(`/images/${ref.apiName}/get`, file, { ...(o.signal ? { signal: o.signal } : {}), onSent: sent, ...(f ? { onWritten: (end: number) => f.grown(end) } : {}) });
    exporting.catch(() => undefined);
    // (The inspect waits until the export's request is out: it loads undici, ~6 ms the request would wait for.)
    await Promise.race([requested, exporting]);
    const inspect = await conn.request('GET', `/images/${ref.apiName}/json`);
    if (inspect.statusCode !== 200) throw await daemonError(inspect, `${ref}`);
    await inspect.body.dump();
    const res = await exporting;
    if (res.status !== 200) throw errorOf(res.status, res.errorText ?? '', `exporting ${ref}`);
    const hashes = follower?.finish(statSync(file).size);
    const inner = await ArchiveSource.open(new DockerArchiveRef(file, ref.named ? withDefaultTag(ref.named) : undefined, ref.named ? undefined : 0), hashes ? { knownHashes: hashes } : {});
    return {
      ref,
      // (Read from the spooled export by then: a sequential destination gets the blobs one after another, in the
      // manifest's order, as from a docker-archive file: the same archive as skopeo writes.)
      local: true,
      getManifest: (instance?: Digest) => inner.getManifest(instance),
      getBlob: (d: Descriptor) => inner.getBlob(d),
      verifyBlob: (d: Descriptor, signal?: AbortSignal) => inner.verifyBlob(d, signal),
      blobCrc32: (d: Descriptor) => inner.blobCrc32(d),
      close: async () => {
        f?.drop();
        await inner.close();
        await fsp.rm(dir, { recursive: true, force: true });
        await conn.close();
      },
    };
  } catch (e) {
    follower?.drop();
    await fsp.rm(dir, { recursive: true, force: true });
    await conn.close();
    if (o.signal?.aborted) throw new SkiffError('ERR_ABORTED', `reading ${ref}: interrupted`, { cause: e });
    throw e;
  }
}

const LOAD_CAPS: DestinationCaps = { manifestTypes: [MT.dockerManifest, MT.ociManifest], compression: 'preserve', multiImage: false, sequential: true };

/**
 * Loads into the daemon while copying: `POST /images/load` starts at once and its body is a docker-archive tar
 * written as the blobs arrive. Layers go in as they are stored (compressed): the daemon decompresses them anyway
 * (Docker and podman both accept compressed layer files in a loaded archive), their sizes are known so each goes
 * straight into the request, and nothing is decompressed or written to disk twice. One member is written at a
 * time; a blob arriving meanwhile, or one of unknown size, is spooled to a temp file and added at commit.
 */
class DaemonDestination implements ImageDestination {
  readonly caps = LOAD_CAPS;
  private readonly body = new PassThrough({ highWaterMark: IO_CHUNK });
  private readonly load: Promise<{ ok: true } | { ok: false; error: unknown }>;
  private busy = false;
  private manifest: ImageManifest | undefined;
  /** digest -> member name, for blobs in the tar; spooled ones wait in temp files. */
  private readonly inTar = new Map<Digest, string>();
  private readonly spooled = new Map<Digest, { file: string; size: number; isConfig: boolean }>();
  private committed = false;
  private constructor(
    readonly ref: DaemonRef,
    /** The name the image is loaded under (tag defaulted). */
    private readonly name: DockerReference,
    private readonly conn: Conn,
    private readonly dir: string,
    /** Further names to load the image under (skopeo's --additional-tag). */
    private readonly additionalTags: DockerReference[] = [],
  ) {
    // The request runs alongside the copy; its outcome is read at commit.
    this.load = (async () => {
      const res = await conn.request('POST', '/images/load?quiet=1', this.body, { 'content-type': 'application/x-tar' });
      if (res.statusCode !== 200) throw await daemonError(res, `loading ${ref} into the daemon at ${conn.host}`);
      const text = await res.body.text();
      // The daemon reports load errors inside a 200 stream: {"errorDetail": …}
      const bad = /"error(?:Detail)?"\s*:\s*(?:\{"message":)?"([^"]*)"/.exec(text);
      if (bad) throw new SkiffError('ERR_REGISTRY', `loading ${ref} into the daemon: ${bad[1]}`);
    })().then(() => ({ ok: true as const }), (error: unknown) => ({ ok: false as const, error }));
  }

  static async open(ref: DaemonRef, o: DestinationOptions): Promise<DaemonDestination> {
    if (!ref.named) throw new SkiffError('ERR_INVALID_REFERENCE', `${ref}: an image ID cannot be written; name the image (docker-daemon:NAME:TAG)`);
    const conn = await connectDaemon(o);
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'skiff-daemon-'));
    return new DaemonDestination(ref, withDefaultTag(ref.named), conn, dir, o.additionalTags);
  }

  private memberName(d: Digest, isConfig: boolean): string {
    return `${digestHex(d)}.${isConfig ? 'json' : 'tar'}`;
  }

  /**
   * Write bytes into the request body, waiting while the daemon is behind; a daemon that takes nothing for
   * SKIFF_READ_TIMEOUT (connection open) fails the load, which undici, timing reads only, would wait on forever.
   */
  private async write(b: Buffer): Promise<void> {
    if (this.body.destroyed) throw new SkiffError('ERR_DESTINATION', `loading ${this.ref}: the daemon closed the connection`);
    if (this.body.write(b)) return;
    const stop = new AbortController();
    const timer = setTimeout(() => stop.abort(), this.conn.idleMs);
    try {
      await once(this.body, 'drain', { signal: stop.signal });
    } catch (e) {
      if (!stop.signal.aborted) throw e;
      const err = new SkiffError('ERR_DESTINATION', `loading ${this.ref} into the daemon at ${this.conn.host}: it took nothing for ${this.conn.idleMs / 1000} s`);
      this.body.destroy(err);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** One tar member of `size` bytes from `data`; a wrong length fails (the request is then abandoned). */
  private async member(name: string, size: number, data: AsyncIterable<Buffer> | Iterable<Buffer>): Promise<void> {
    await this.write(tarHeader(name, size));
    let n = 0;
    for await (const c of data) {
      n += c.length;
      if (n > size) break;
      await this.write(c);
    }
    if (n !== size) throw new SkiffError('ERR_DESTINATION', `loading ${this.ref}: ${name} is ${n} bytes, not ${size}`);
    if (size % 512) await this.write(Buffer.alloc(512 - (size % 512)));
  }

  async hasBlob(desc: Descriptor): Promise<boolean> {
    return this.inTar.has(desc.digest) || this.spooled.has(desc.digest);
  }

  async putBlob(stream: Readable, info: BlobInfo): Promise<{ digest: Digest; size: number }> {
    if (!this.busy && info.digest && info.size !== undefined) {
      this.busy = true;
      try {
        // (The copy engine verifies the bytes against info.digest before the stream ends.)
        await this.member(this.memberName(info.digest, info.isConfig), info.size, stream);
        this.inTar.set(info.digest, this.memberName(info.digest, info.isConfig));
        return { digest: info.digest, size: info.size };
      } catch (e) {
        this.body.destroy(e as Error);
        throw e;
      } finally {
        this.busy = false;
      }
    }
    const t = await streamToTempFile(stream, this.dir, info.digest);
    this.spooled.set(t.digest, { file: t.path, size: t.size, isConfig: info.isConfig });
    return { digest: t.digest, size: t.size };
  }

  async putManifest(m: RawManifest, instance?: Digest): Promise<void> {
    if (instance) throw new SkiffError('ERR_UNSUPPORTED', `${this.ref}: the daemon loads single images, not an index`);
    const parsed = parseManifest(m.bytes, m.mediaType);
    if (parsed.kind !== 'image') throw new SkiffError('ERR_UNSUPPORTED', `${this.ref}: the daemon loads single images, not an index`);
    this.manifest = parsed;
  }

  async commit(): Promise<void> {
    const m = this.manifest;
    if (!m) throw new SkiffError('ERR_DESTINATION', `${this.ref}: commit without a manifest`);
    try {
      for (const [d, sp] of this.spooled) {
        await this.member(this.memberName(d, sp.isConfig), sp.size, createReadStream(sp.file, { highWaterMark: IO_CHUNK }));
        this.inTar.set(d, this.memberName(d, sp.isConfig));
      }
      const name = (d: Digest): string => {
        const n = this.inTar.get(d);
        if (!n) throw new SkiffError('ERR_DESTINATION', `${this.ref}: blob ${d} was never written`);
        return n;
      };
      const manifestJson = Buffer.from(JSON.stringify([{ Config: name(m.config.digest), RepoTags: [this.name, ...this.additionalTags].map((t) => formatDockerReference(t)), Layers: m.layers.map((l) => name(l.digest)) }]));
      await this.member('manifest.json', manifestJson.length, [manifestJson]);
      await this.write(Buffer.alloc(1024));
      this.body.end();
    } catch (e) {
      this.body.destroy(e as Error);
      throw e;
    }
    const r = await this.load;
    if (!r.ok) throw r.error;
    this.committed = true;
  }

  async close(): Promise<void> {
    // Without a commit the request is abandoned mid-archive: the daemon loads nothing.
    if (!this.committed) this.body.destroy(new Error('copy abandoned'));
    await this.load;
    await fsp.rm(this.dir, { recursive: true, force: true });
    await this.conn.close();
  }
}

export const dockerDaemonTransport: Transport = {
  name: 'docker-daemon',
  parse: parseDaemonSpec,

  openSource(ref, opts = {}) {
    return openDaemonSource(ref as DaemonRef, opts);
  },
  async openDestination(ref, opts = {}) {
    return DaemonDestination.open(ref as DaemonRef, opts);
  },
};
