import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Digest } from '../../src/core/digest.js';
import { SkiffError } from '../../src/core/errors.js';
import { IO_CHUNK } from '../../src/core/fs.js';
import type { BlobInfo, DestinationOptions, ImageDestination, ImageRef, ImageSource, SourceOptions, Transport } from '../../src/core/image.js';
import type { Descriptor, RawManifest } from '../../src/core/manifest.js';
import { formatDockerReference, parseDockerReference, withDefaultTag, type DockerReference } from '../../src/core/reference.js';
import { ArchiveDestination, ArchiveSource, DockerArchiveRef } from '../docker-archive/index.js';

/** `docker-daemon:NAME[:TAG]` or, to read, `docker-daemon:sha256:ID`. */
export class DaemonRef implements ImageRef {
  readonly transport = 'docker-daemon';
  constructor(
    readonly named?: DockerReference,
    readonly id?: Digest,
  ) {}
  get spec(): string {
    return this.named ? formatDockerReference(this.named) : this.id!;
  }
  toString(): string {
    return `docker-daemon:${this.spec}`;
  }
  /** What the Engine API calls the image in a path. */
  get apiName(): string {
    return encodeURIComponent(this.named ? formatDockerReference(this.named) : this.id!);
  }
}

/** Where the daemon listens: --*-daemon-host, else DOCKER_HOST, else the default socket. */
function daemonHost(o: SourceOptions): string {
  return o.daemonHost ?? process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock';
}

interface Conn {
  base: string;
  host: string;
  request: (method: string, p: string, body?: Readable, headers?: Record<string, string>) => Promise<import('undici').Dispatcher.ResponseData>;
  close: () => Promise<void>;
}

/** Connect to the Engine API over a unix socket or tcp (TLS from DOCKER_CERT_PATH when DOCKER_TLS_VERIFY is set). */
async function connectDaemon(o: SourceOptions): Promise<Conn> {
  const { Agent, request } = await import('../http.js');
  const host = daemonHost(o);
  let agent: InstanceType<typeof Agent>;
  let origin: string;
  if (host.startsWith('unix://')) {
    agent = new Agent({ connect: { socketPath: host.slice(7) } });
    origin = 'http://localhost';
  } else if (host.startsWith('tcp://') || host.startsWith('http://') || host.startsWith('https://')) {
    const tlsOn = host.startsWith('https://') || (process.env.DOCKER_TLS_VERIFY !== undefined && process.env.DOCKER_TLS_VERIFY !== '' && process.env.DOCKER_TLS_VERIFY !== '0');
    const certPath = process.env.DOCKER_CERT_PATH ?? path.join(os.homedir(), '.docker');
    const connect: Record<string, unknown> = {};
    if (tlsOn) {
      const read = (f: string) => fsp.readFile(path.join(certPath, f), 'utf8').catch(() => undefined);
      const [ca, cert, key] = await Promise.all([read('ca.pem'), read('cert.pem'), read('key.pem')]);
      Object.assign(connect, { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) });
    }
    agent = new Agent({ connect });
    origin = `${tlsOn ? 'https' : 'http'}://${host.replace(/^\w+:\/\//, '')}`;
  } else {
    throw new SkiffError('ERR_INVALID_REFERENCE', `daemon host ${JSON.stringify(host)}: expected unix:///path or tcp://host:port`);
  }
  const call = async (method: string, p: string, body?: Readable, headers?: Record<string, string>) => {
    try {
      return await request(`${origin}${p}`, { method: method as 'GET', dispatcher: agent, ...(body ? { body } : {}), ...(headers ? { headers } : {}), headersTimeout: 0, bodyTimeout: 0 });
    } catch (e) {
      const err = e as { code?: string; message?: string };
      throw new SkiffError('ERR_NETWORK', `cannot connect to the Docker daemon at ${host}: ${err.code ?? err.message} (is it running?)`, { cause: e, retryable: false });
    }
  };
  // API version: the server's, capped at 1.41 (what skiff speaks), from /_ping.
  const ping = await call('GET', '/_ping');
  await ping.body.dump();
  const v = ping.headers['api-version'];
  const server = Array.isArray(v) ? v[0] : v;
  const version = server && /^1\.\d+$/.test(server) && Number(server.split('.')[1]) < 41 ? server : '1.41';
  return { base: `/v${version}`, host, request: (m, p, b, h) => call(m, `/v${version}${p}`, b, h), close: () => agent.close() };
}

async function daemonError(res: import('undici').Dispatcher.ResponseData, what: string): Promise<SkiffError> {
  let msg = '';
  try {
    const body = (await res.body.json()) as { message?: string };
    msg = body.message ?? '';
  } catch {
    /* no JSON */
  }
  return new SkiffError(res.statusCode === 404 ? 'ERR_IMAGE_NOT_FOUND' : 'ERR_REGISTRY', `${what}: ${msg || `HTTP ${res.statusCode}`}`);
}

/**
 * Reads `GET /images/{name}/get`. A `docker save` stream puts manifest.json last, so the archive has to land
 * somewhere before the first layer can be served: it is spooled once to a temp file and read in place from there.
 */
async function openDaemonSource(ref: DaemonRef, o: SourceOptions): Promise<ImageSource> {
  const conn = await connectDaemon(o);
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'skiff-daemon-'));
  try {
    const inspect = await conn.request('GET', `/images/${ref.apiName}/json`);
    if (inspect.statusCode !== 200) throw await daemonError(inspect, `${ref}`);
    await inspect.body.dump();
    const res = await conn.request('GET', `/images/${ref.apiName}/get`);
    if (res.statusCode !== 200) throw await daemonError(res, `exporting ${ref}`);
    const file = path.join(dir, 'image.tar');
    await pipeline(res.body, createWriteStream(file, { highWaterMark: IO_CHUNK }));
    const inner = await ArchiveSource.open(new DockerArchiveRef(file, ref.named ? withDefaultTag(ref.named) : undefined, ref.named ? undefined : 0));
    return {
      ref,
      getManifest: (instance?: Digest) => inner.getManifest(instance),
      getBlob: (d: Descriptor) => inner.getBlob(d),
      close: async () => {
        await inner.close();
        await fsp.rm(dir, { recursive: true, force: true });
        await conn.close();
      },
    };
  } catch (e) {
    await fsp.rm(dir, { recursive: true, force: true });
    await conn.close();
    throw e;
  }
}

/** Writes a docker-archive to a temp file while copying, then streams it to `POST /images/load` on commit. */
class DaemonDestination implements ImageDestination {
  private constructor(
    readonly ref: DaemonRef,
    private readonly conn: Conn,
    private readonly dir: string,
    private readonly archive: ArchiveDestination,
    private readonly file: string,
  ) {}

  get caps() {
    return this.archive.caps;
  }

  static async open(ref: DaemonRef, o: DestinationOptions): Promise<DaemonDestination> {
    if (!ref.named) throw new SkiffError('ERR_INVALID_REFERENCE', `${ref}: an image ID cannot be written; name the image (docker-daemon:NAME:TAG)`);
    const conn = await connectDaemon(o);
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'skiff-daemon-'));
    const file = path.join(dir, 'image.tar');
    const archive = await ArchiveDestination.open(new DockerArchiveRef(file, withDefaultTag(ref.named)));
    return new DaemonDestination(ref, conn, dir, archive, file);
  }

  hasBlob(desc: Descriptor): Promise<boolean> {
    return this.archive.hasBlob(desc);
  }
  putBlob(stream: Readable, info: BlobInfo): Promise<{ digest: Digest; size: number }> {
    return this.archive.putBlob(stream, info);
  }
  putManifest(m: RawManifest, instance?: Digest): Promise<void> {
    return this.archive.putManifest(m, instance);
  }

  async commit(): Promise<void> {
    await this.archive.commit();
    const res = await this.conn.request('POST', '/images/load?quiet=1', createReadStream(this.file, { highWaterMark: IO_CHUNK }), { 'content-type': 'application/x-tar' });
    if (res.statusCode !== 200) throw await daemonError(res, `loading ${this.ref} into the daemon at ${this.conn.host}`);
    const text = await res.body.text();
    // The daemon reports load errors inside a 200 stream: {"errorDetail": …}
    const bad = /"error(?:Detail)?"\s*:\s*(?:\{"message":)?"([^"]*)"/.exec(text);
    if (bad) throw new SkiffError('ERR_REGISTRY', `loading ${this.ref} into the daemon: ${bad[1]}`);
  }

  async close(): Promise<void> {
    await this.archive.close();
    await fsp.rm(this.dir, { recursive: true, force: true });
    await this.conn.close();
  }
}

export const dockerDaemonTransport: Transport = {
  name: 'docker-daemon',
  parse(spec: string): DaemonRef {
    if (/^sha256:[a-f0-9]{64}$/.test(spec)) return new DaemonRef(undefined, spec as Digest);
    if (/^[a-f0-9]{64}$/.test(spec)) return new DaemonRef(undefined, `sha256:${spec}`);
    const named = parseDockerReference(spec);
    if (named.digest) throw new SkiffError('ERR_INVALID_REFERENCE', `docker-daemon: digest references are not supported (${spec}); use NAME:TAG or sha256:ID`);
    return new DaemonRef(withDefaultTag(named));
  },
  openSource(ref, opts = {}) {
    return openDaemonSource(ref as DaemonRef, opts);
  },
  async openDestination(ref, opts = {}) {
    return DaemonDestination.open(ref as DaemonRef, opts);
  },
};
