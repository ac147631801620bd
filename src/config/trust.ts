/**
 * Which certificate authorities skiff's TLS connections trust (registries, ADD of https URLs).
 */
import { promises as fsp } from 'node:fs';
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';

/**
 * The system's CA bundle, where Go (and so skopeo) finds it: the file SSL_CERT_FILE names, else the first of the
 * distributions' bundle files present. (Node on its own trusts only the roots compiled into it: a CA installed
 * system-wide, as a company's often is, would be trusted by skopeo and not by skiff.)
 */
const BUNDLES = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt', '/etc/ssl/ca-bundle.pem', '/etc/pki/tls/cacert.pem', '/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem', '/etc/ssl/cert.pem'];

let base: Promise<string[]> | undefined;

/**
 * The CAs every verified connection trusts: the system's bundle (Node's own roots where there is none), plus the
 * file NODE_EXTRA_CA_CERTS names. The launcher (bin/skiff) hands that variable over as SKIFF_EXTRA_CA_CERTS: Node
 * reads and parses the file as it starts (~30 ms for a distribution's bundle), for commands that make no TLS
 * connection too; here it is read when a connection first needs it.
 */
export function baseCAs(): Promise<string[]> {
  base ??= (async () => {
    const read = (f: string): Promise<string | undefined> => fsp.readFile(f, 'utf8').catch(() => undefined);
    let system: string | undefined;
    for (const f of process.env.SSL_CERT_FILE ? [process.env.SSL_CERT_FILE] : BUNDLES) if ((system = await read(f))) break;
    const out = system ? [system] : [...rootCertificates];
    const extra = process.env.SKIFF_EXTRA_CA_CERTS || process.env.NODE_EXTRA_CA_CERTS;
    const text = extra ? await read(extra) : undefined;
    if (text) out.push(text);
    return out;
  })();
  return base;
}

let shared: Promise<SecureContext> | undefined;

/** The context for verified connections with no certs.d entry (registries, ADD of https URLs): made once. */
export function defaultSecureContext(): Promise<SecureContext> {
  shared ??= baseCAs().then((ca) => createSecureContext({ ca }));
  return shared;
}
