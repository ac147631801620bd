import type { Dispatcher } from 'undici';
import { Agent, request } from '../http.js';
import { readTimeoutMs } from '../read-timeout.js';
import { Transform, type Readable } from 'node:stream';
import { SkiffError, type ErrorCode } from '../../src/core/errors.js';
import type { Credentials } from '../../src/config/auth-file.js';
import { parseChallenge, type Challenge } from './auth.js';
import { isRetryable, sleep } from './retry.js';
import { secureContextFor } from './tls.js';

export interface ClientOptions {
  /** Where to connect: `host[:port]` (after registries.conf rewriting; docker.io -> registry-1.docker.io). */
  endpoint: string;
  /** Plain http allowed (tls-verify=false or `insecure` in registries.conf): https is tried first. */
  insecure: boolean;
  creds?: Credentials;
  /** Sent as `Authorization: Bearer …` with every request to the registry; no token is asked for. */
  registryToken?: string;
  certDir?: string;
  retryTimes: number;
  retryDelayMs: number;
  signal?: AbortSignal;
}

export interface Req {
  method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';
  /** Path under the registry (`/v2/...`) or an absolute URL (upload locations, redirects). */
  path: string;
  headers?: Record<string, string>;
  /** A Buffer can be resent on retry; a stream cannot (the request is then tried once). */
  body?: Buffer | Readable;
  scopes: string[];
  /** Statuses that are success for this request; others become errors. */
  ok: number[];
  /** Abort this request (and its retries): the blob it is part of was given up. */
  signal?: AbortSignal;
}

export type Res = Dispatcher.ResponseData;

const RETRY_STATUS = new Set([408, 429, 500, 502, 503, 504]);

/**
 * Watch a streamed request body: when nothing more of it is taken for `ms` (the registry stopped reading, its
 * connection open), the signal aborts the request, so the upload fails as a dropped connection would and is
 * retried. The body passes through a stage that notes each chunk taken; `stop` ends the watch.
 */
function watchUpload(body: Readable, ms: number): { body: Readable; signal: AbortSignal; stop(): void } {
  const ac = new AbortController();
  // Each chunk taken only notes the time; one timer checks, and re-arms itself for when the watch would run out
  // (a clearTimeout and setTimeout per chunk cost a push of the bench image ~5 ms).
  let last = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const check = (): void => {
    const idle = performance.now() - last;
    if (idle >= ms) ac.abort(new Error(`the registry stopped taking the upload (nothing for ${ms / 1000} s)`));
    else timer = setTimeout(check, ms - idle);
  };
  const stop = (): void => {
    clearTimeout(timer);
    timer = undefined;
  };
  const noted = new Transform({
    highWaterMark: 256 * 1024,
    transform(chunk: Buffer, _e, cb) {
      last = performance.now();
      cb(null, chunk);
    },
    flush(cb) {
      // All of it is handed over: from here undici's wait for the response headers takes over.
      stop();
      cb();
    },
  });
  body.on('error', (e) => noted.destroy(e));
  noted.on('close', stop);
  timer = setTimeout(check, ms);
  return { body: body.pipe(noted), signal: ac.signal, stop };
}

function networkError(what: string, e: unknown): SkiffError {
  const err = e as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const detail = err.cause?.message ?? err.message ?? String(e);
  return new SkiffError('ERR_NETWORK', `${what}: ${detail}`, { cause: e });
}

/** Map a registry error response to a SkiffError with the registry's own code and message. */
async function registryError(what: string, res: Res): Promise<SkiffError> {
  let text = '';
  try {
    text = (await res.body.text()).slice(0, 2000);
  } catch {
    /* body unreadable: the status says enough */
  }
  let codes: { code?: string; message?: string }[] = [];
  try {
    codes = (JSON.parse(text) as { errors?: { code?: string; message?: string }[] }).errors ?? [];
  } catch {
    /* not JSON */
  }
  const first = codes[0];
  const msg = first ? `${first.code ?? ''}: ${first.message ?? ''}`.trim() : `HTTP ${res.statusCode}${text ? `: ${text.trim().split('\n')[0]!.slice(0, 200)}` : ''}`;
  let code: ErrorCode = 'ERR_REGISTRY';
  const rc = first?.code ?? '';
  if (res.statusCode === 401 || rc === 'UNAUTHORIZED') code = 'ERR_UNAUTHORIZED';
  else if (res.statusCode === 403 || rc === 'DENIED') code = 'ERR_UNAUTHORIZED';
  else if (rc === 'MANIFEST_UNKNOWN' || rc === 'NAME_UNKNOWN' || (res.statusCode === 404 && rc === '')) code = 'ERR_MANIFEST_UNKNOWN';
  else if (rc === 'BLOB_UNKNOWN') code = 'ERR_BLOB_UNKNOWN';
  const prefix = res.statusCode === 401 ? 'unauthorized: ' : res.statusCode === 403 ? 'denied: ' : '';
  return new SkiffError(code, `${what}: ${prefix}${msg}`, { retryable: RETRY_STATUS.has(res.statusCode) });
}

interface Token {
  value: string;
  expires: number;
}

/** What GET /v2/ told: the scheme that answered and the auth challenge, if one was asked for. */
interface Probe {
  scheme: 'https' | 'http';
  challenge?: Challenge;
}

/**
 * One registry: a keep-alive connection pool, the auth challenge it announced, Bearer tokens cached per scope
 * until they expire, and retries with backoff for network failures, 5xx and 429 (honouring Retry-After).
 * Credentials are only ever sent in headers, never logged.
 */
export class RegistryClient {
  private agent: Agent | undefined;
  private base: string | undefined;
  private pinging: Promise<void> | undefined;
  private challenge: Challenge | undefined;
  private readonly tokens = new Map<string, Token>();

  private readonly readTimeout: number;

  constructor(readonly o: ClientOptions) {
    this.readTimeout = readTimeoutMs();
  }

  /** `https://host` or, for an insecure registry that does not speak TLS, `http://host`. */
  async baseURL(): Promise<string> {
    await this.ping();
    return this.base!;
  }

  private async makeAgent(): Promise<Agent> {
    const secureContext = await secureContextFor(this.o.endpoint, this.o.certDir, !this.o.insecure);
    return new Agent({
      keepAliveTimeout: 30_000,
      connections: 16,
      connect: { rejectUnauthorized: !this.o.insecure, secureContext },
    });
  }

  /**
   * GET /v2/: learn the scheme to use and the auth challenge. Done once. An insecure registry is asked over https
   * and plain http at once: https is used where it answers (as c/image, which asks https first), and where it fails
   * the http answer is already there instead of a round trip and a TLS handshake later (~5 ms of every command on a
   * plain-http registry; a real network's round trip elsewhere). The extra probe carries no credentials.
   */
  ping(): Promise<void> {
    this.pinging ??= (async () => {
      this.agent = await this.makeAgent();
      const https = this.probe('https');
      const http = this.o.insecure ? this.probe('http') : undefined;
      // (Its failure is only read where https failed first.)
      http?.catch(() => {});
      let found: Probe;
      try {
        found = await https;
      } catch (e) {
        // An answer over https that is an error (HTTP 500 to the end of the retries) is the registry's answer.
        if (!http || e instanceof SkiffError) throw e;
        try {
          found = await http;
        } catch (e2) {
          throw e2 instanceof SkiffError ? e2 : this.pingError(e2);
        }
      }
      this.challenge = found.challenge;
      this.base = `${found.scheme}://${this.o.endpoint}`;
    })();
    this.pinging.catch(() => {
      this.pinging = undefined;
    });
    return this.pinging;
  }

  /** One scheme's GET /v2/, retried as other requests are; a TLS failure is final (the other scheme may do). */
  private async probe(scheme: 'https' | 'http'): Promise<Probe> {
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await request(`${scheme}://${this.o.endpoint}/v2/`, { method: 'GET', dispatcher: this.agent, signal: this.o.signal, headersTimeout: 30_000 });
        await res.body.dump();
        if (res.statusCode === 401) return { scheme, challenge: this.readChallenge(res) };
        if (RETRY_STATUS.has(res.statusCode) && attempt < this.o.retryTimes) {
          await sleep(this.delay(attempt, res), this.o.signal);
          continue;
        }
        if (res.statusCode !== 200 && res.statusCode !== 404) throw new SkiffError('ERR_REGISTRY', `pinging registry ${this.o.endpoint}: HTTP ${res.statusCode}`);
        return { scheme };
      } catch (e) {
        if (e instanceof SkiffError) throw e;
        const tlsProblem = /SSL|TLS|certificate|wrong version number|EPROTO/i.test(String((e as Error).message) + String((e as { cause?: Error }).cause?.message ?? ''));
        if (tlsProblem || !isRetryable(e) || attempt >= this.o.retryTimes) throw scheme === 'https' && this.o.insecure ? e : this.pingError(e);
        await sleep(this.delay(attempt), this.o.signal);
      }
    }
  }

  private pingError(last: unknown): SkiffError {
    const err = networkError(`pinging registry ${this.o.endpoint}`, last);
    const text = String((last as Error)?.message) + String((last as { cause?: Error })?.cause?.message ?? '');
    if (/certificate|SSL|TLS/i.test(text)) err.message += ' (for a registry without valid TLS use --tls-verify=false, or add its CA under certs.d)';
    return err;
  }

  private readChallenge(res: Res): Challenge | undefined {
    const h = res.headers['www-authenticate'];
    const v = Array.isArray(h) ? h[0] : h;
    return v ? parseChallenge(v) : undefined;
  }

  private delay(attempt: number, res?: Res): number {
    const ra = res?.headers['retry-after'];
    const v = Array.isArray(ra) ? ra[0] : ra;
    if (v) {
      const secs = Number(v);
      if (Number.isFinite(secs)) return Math.min(secs * 1000, 60_000);
      const when = Date.parse(v);
      if (Number.isFinite(when)) return Math.max(0, Math.min(when - Date.now(), 60_000));
    }
    return this.o.retryDelayMs * 2 ** attempt;
  }

  private async token(scopes: string[], force: boolean): Promise<string | undefined> {
    const ch = this.challenge;
    if (!ch) return undefined;
    if (ch.scheme === 'basic') {
      return this.o.creds ? `Basic ${Buffer.from(`${this.o.creds.username}:${this.o.creds.password}`).toString('base64')}` : undefined;
    }
    const key = [...scopes].sort().join(' ');
    const cached = this.tokens.get(key);
    if (!force && cached && cached.expires > Date.now()) return `Bearer ${cached.value}`;
    const u = new URL(ch.params.realm!);
    if (ch.params.service) u.searchParams.set('service', ch.params.service);
    for (const s of scopes) u.searchParams.append('scope', s);
    const headers: Record<string, string> = {};
    if (this.o.creds) headers.authorization = `Basic ${Buffer.from(`${this.o.creds.username}:${this.o.creds.password}`).toString('base64')}`;
    let res: Res;
    try {
      res = await request(u, { method: 'GET', headers, dispatcher: this.agent, signal: this.o.signal });
    } catch (e) {
      throw networkError(`getting a token from ${u.origin}`, e);
    }
    if (res.statusCode !== 200) {
      const err = await registryError(`getting a token from ${u.origin}${u.pathname}`, res);
      if (res.statusCode === 401 || res.statusCode === 403) throw new SkiffError('ERR_UNAUTHORIZED', `${this.o.endpoint}: unauthorized: ${err.message}`);
      throw err;
    }
    let body: { token?: string; access_token?: string; expires_in?: number; issued_at?: string };
    try {
      body = (await res.body.json()) as typeof body;
    } catch {
      throw new SkiffError('ERR_REGISTRY', `token endpoint ${u.origin} returned no JSON`);
    }
    const value = body.token ?? body.access_token;
    if (!value) throw new SkiffError('ERR_REGISTRY', `token endpoint ${u.origin} returned no token`);
    const issued = body.issued_at ? Date.parse(body.issued_at) : Date.now();
    const ttl = Math.max(60, body.expires_in ?? 60) * 1000;
    this.tokens.set(key, { value, expires: (Number.isFinite(issued) ? issued : Date.now()) + ttl - 10_000 });
    return `Bearer ${value}`;
  }

  /**
   * Send a request with auth and retries; resolves with a response whose status is in `req.ok` (the caller
   * consumes or dumps its body), else throws a SkiffError with the registry's message. `what` names the operation.
   */
  async send(req: Req, what: string): Promise<Res> {
    await this.ping();
    const url = req.path.startsWith('http') ? req.path : `${this.base}${req.path}`;
    const replayable = !(req.body && typeof (req.body as Readable).pipe === 'function');
    // Waits between tries end early when the command is interrupted or the blob given up.
    const stop = req.signal && this.o.signal ? AbortSignal.any([req.signal, this.o.signal]) : req.signal ?? this.o.signal;
    let reauthed = false;
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = { ...(req.headers ?? {}) };
      const sameHost = new URL(url).host === this.o.endpoint;
      const auth = !sameHost ? undefined : this.o.registryToken ? `Bearer ${this.o.registryToken}` : await this.token(req.scopes, false);
      if (auth) headers.authorization = auth;
      let res: Res;
      // A streamed upload the registry stops taking would wait forever (undici times out reading, not writing).
      const watch = replayable ? undefined : watchUpload(req.body as Readable, this.readTimeout);
      try {
        // (256 KiB response buffers, as the pipeline stages have: fewer chunks through hashing and writing.)
        const signal = watch ? (stop ? AbortSignal.any([stop, watch.signal]) : watch.signal) : stop;
        res = await request(url, { method: req.method, headers, body: watch?.body ?? req.body, dispatcher: this.agent, signal, headersTimeout: Math.max(60_000, this.readTimeout), bodyTimeout: this.readTimeout, highWaterMark: 256 * 1024 });
      } catch (e) {
        if (this.o.signal?.aborted || req.signal?.aborted) throw e;
        if (watch?.signal.aborted) throw new SkiffError('ERR_NETWORK', `${what}: ${(watch.signal.reason as Error).message}`, { cause: e });
        if (replayable && isRetryable(e) && attempt < this.o.retryTimes) {
          await sleep(this.delay(attempt), stop);
          continue;
        }
        throw networkError(what, e);
      }
      watch?.stop();
      if (req.ok.includes(res.statusCode)) return res;
      if (res.statusCode === 401 && !reauthed && sameHost && !this.o.registryToken) {
        reauthed = true;
        const ch = this.readChallenge(res);
        await res.body.dump();
        if (ch) this.challenge = ch;
        if (this.challenge && replayable) {
          await this.token(req.scopes, true);
          attempt--;
          continue;
        }
        throw new SkiffError('ERR_UNAUTHORIZED', `${what}: unauthorized`);
      }
      if (RETRY_STATUS.has(res.statusCode) && replayable && attempt < this.o.retryTimes) {
        const wait = this.delay(attempt, res);
        await res.body.dump();
        await sleep(wait, stop);
        continue;
      }
      throw await registryError(what, res);
    }
  }

  /**
   * Done with the registry: connections are closed at once. (undici's graceful close() waits for every request to
   * finish; one whose body a failed copy had stopped reading never did, and with nothing else left the process
   * ended there, exiting 0 without a word.)
   */
  async close(): Promise<void> {
    await this.agent?.destroy();
  }
}
