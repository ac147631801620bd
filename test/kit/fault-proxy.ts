/**
 * An in-process HTTP proxy in front of the real registry, for fault injection only: it forwards every request
 * (Host header kept, so the registry's Location URLs point back at the proxy) unless a rule takes over.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Fault =
  | { kind: 'status'; status: number; headers?: Record<string, string> }
  | { kind: 'reset-mid-body'; after: number }
  /** Send `after` bytes of the body, then nothing more, the connection left open (a registry that hangs). */
  | { kind: 'stall-mid-body'; after: number }
  | { kind: 'corrupt-body' }
  /** Take `after` bytes of the request body, then read no more and never answer (a registry that hangs mid-upload). */
  | { kind: 'stall-request'; after: number }
  | { kind: 'reset' };

/** Return a fault for this request, or undefined to forward it untouched. */
export type Rule = (req: IncomingMessage, n: number) => Fault | undefined;

export interface FaultProxy {
  host: string;
  log: string[];
  /** Every request's method, URL and headers, in order. */
  requests: { method: string; url: string; headers: IncomingMessage['headers'] }[];
  rule: Rule | undefined;
  stop(): Promise<void>;
}

export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const [uhost, uport] = upstream.split(':');
  let n = 0;
  const proxy: FaultProxy = { host: '', log: [], requests: [], rule: undefined, stop: async () => undefined };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    n++;
    proxy.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    proxy.log.push(`${req.method} ${req.url}${req.headers.range ? ` ${req.headers.range}` : ''}${req.headers['content-range'] ? ` content-range=${req.headers['content-range']}` : ''}`);
    const fault = proxy.rule?.(req, n);
    if (fault?.kind === 'status') {
      req.resume();
      res.writeHead(fault.status, { 'content-type': 'application/json', ...(fault.headers ?? {}) });
      res.end(JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: `injected ${fault.status}` }] }));
      return;
    }
    if (fault?.kind === 'reset') {
      req.socket.destroy();
      return;
    }
    if (fault?.kind === 'stall-request') {
      let taken = 0;
      req.on('data', (c: Buffer) => {
        taken += c.length;
        if (taken >= fault.after) req.pause();
      });
      return;
    }
    const up = httpRequest({ host: uhost, port: Number(uport), method: req.method, path: req.url, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      const length = Number(ur.headers['content-length'] ?? NaN);
      if ((fault?.kind === 'reset-mid-body' || fault?.kind === 'stall-mid-body') && !(length <= fault.after)) {
        let sent = 0;
        ur.on('data', (c: Buffer) => {
          if (sent + c.length >= fault.after) {
            res.write(c.subarray(0, Math.max(0, fault.after - sent)));
            ur.destroy();
            // A stall keeps the client's connection open and silent until the client gives up on it.
            if (fault.kind === 'reset-mid-body') res.socket?.destroy();
            return;
          }
          sent += c.length;
          res.write(c);
        });
        ur.on('end', () => res.end());
        return;
      }
      if (fault?.kind === 'corrupt-body') {
        let first = true;
        ur.on('data', (c: Buffer) => {
          if (first && c.length) {
            c = Buffer.from(c);
            c[0] = (c[0] ?? 0) ^ 0xff;
            first = false;
          }
          res.write(c);
        });
        ur.on('end', () => res.end());
        return;
      }
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  proxy.host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.stop = () => new Promise((r) => {
    server.closeAllConnections();
    server.close(() => r());
  });
  return proxy;
}
