import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { rootCertificates } from 'node:tls';

export interface TlsFiles {
  ca?: string[];
  cert?: string;
  key?: string;
}

/**
 * TLS material for `hostport` from certs.d (containers-certs.d(5)): `*.crt` are CAs (added to the system ones),
 * `*.cert` + `*.key` a client certificate. `certDir` replaces the search path (--cert-dir).
 */
export async function loadCertsFor(hostport: string, certDir?: string): Promise<TlsFiles> {
  const home = process.env.XDG_CONFIG_HOME ?? path.join(os.homedir(), '.config');
  const dirs = certDir ? [certDir] : [path.join(home, 'containers', 'certs.d', hostport), path.join('/etc/containers/certs.d', hostport), path.join('/etc/docker/certs.d', hostport)];
  const out: TlsFiles = {};
  for (const d of dirs) {
    const names = await fsp.readdir(d).catch(() => undefined);
    if (!names) continue;
    for (const n of names.sort()) {
      const f = path.join(d, n);
      if (n.endsWith('.crt')) (out.ca ??= [...rootCertificates]).push(await fsp.readFile(f, 'utf8'));
      else if (n.endsWith('.cert')) {
        const key = path.join(d, `${n.slice(0, -5)}.key`);
        out.cert = await fsp.readFile(f, 'utf8');
        out.key = await fsp.readFile(key, 'utf8');
      }
    }
    if (certDir || out.ca || out.cert) break;
  }
  return out;
}
