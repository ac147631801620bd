import { readdirSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import { baseCAs, defaultSecureContext } from '../../src/config/trust.js';

export interface TlsFiles {
  ca?: string[];
  cert?: string;
  key?: string;
}

/**
 * The TLS context for connections to `hostport`, made once and shared by its connections (given CAs as a list,
 * Node would parse all of them again for every connection). `verify` false (an insecure registry): no CA is loaded,
 * since none is checked.
 */
export async function secureContextFor(hostport: string, certDir: string | undefined, verify: boolean): Promise<SecureContext> {
  const files = loadCertsFor(hostport, certDir);
  const client = files.cert ? { cert: files.cert, key: files.key } : {};
  if (!verify) return createSecureContext({ ca: [], ...client });
  if (!files.ca && !files.cert) return defaultSecureContext();
  return createSecureContext({ ca: [...(await baseCAs()), ...(files.ca ?? [])], ...client });
}

/**
 * TLS material for `hostport` from certs.d (containers-certs.d(5)): `*.crt` are CAs (added to the system ones),
 * `*.cert` + `*.key` a client certificate. `certDir` replaces the search path (--cert-dir). Read synchronously: a
 * few small files, before the registry's first connection (see configFiles in src/config/registries.ts).
 */
export function loadCertsFor(hostport: string, certDir?: string): TlsFiles {
  const home = process.env.XDG_CONFIG_HOME ?? path.join(os.homedir(), '.config');
  const dirs = certDir ? [certDir] : [path.join(home, 'containers', 'certs.d', hostport), path.join('/etc/containers/certs.d', hostport), path.join('/etc/docker/certs.d', hostport)];
  const out: TlsFiles = {};
  for (const d of dirs) {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      continue;
    }
    for (const n of names.sort()) {
      const f = path.join(d, n);
      if (n.endsWith('.crt')) (out.ca ??= []).push(readFileSync(f, 'utf8'));
      else if (n.endsWith('.cert')) {
        const key = path.join(d, `${n.slice(0, -5)}.key`);
        out.cert = readFileSync(f, 'utf8');
        out.key = readFileSync(key, 'utf8');
      }
    }
    if (certDir || out.ca || out.cert) break;
  }
  return out;
}
