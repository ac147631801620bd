/**
 * Signatures of registry images kept beside the registry ("lookaside" storage, containers-registries.d(5)): read from
 * a file:// or http(s):// base, written only to a file:// one (the staging area c/image writes; publishing it is the
 * user's business). signature-1, signature-2, … until the first missing one.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Digest } from '../../src/core/digest.js';
import { SkiffError } from '../../src/core/errors.js';
import { atomicWriteFile } from '../../src/core/fs.js';
import type { DockerReference } from '../../src/core/reference.js';
import { lookasideBase, lookasideURL } from '../../src/config/registries-d.js';
import { defaultSecureContext } from '../../src/config/trust.js';

const MAX_SIGNATURE = 4 << 20;

export async function readLookaside(ref: DockerReference, digest: Digest): Promise<Buffer[]> {
  const base = await lookasideBase(ref, false);
  if (!/^(file|https?):\/\//.test(base)) throw new SkiffError('ERR_USAGE', `registries.d: signature storage ${base}: only file://, http:// and https:// are supported`);
  let agent: import('../http.js').Agent | undefined;
  /** Signature n, or undefined past the last one. */
  const read = async (u: string): Promise<Buffer | undefined> => {
    if (u.startsWith('file://')) {
      return fsp.readFile(fileURLToPath(u)).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return undefined;
        throw new SkiffError('ERR_IO', `reading signature ${u}: ${e.message}`, { cause: e });
      });
    }
    const { Agent, request } = await import('../http.js');
    // (The CAs registry connections trust: the system's bundle and NODE_EXTRA_CA_CERTS.)
    agent ??= new Agent({ connect: u.startsWith('https:') ? { secureContext: await defaultSecureContext() } : {} });
    const res = await request(u, { method: 'GET', dispatcher: agent }).catch((e: Error) => {
      throw new SkiffError('ERR_NETWORK', `reading signature ${u}: ${e.message}`, { cause: e });
    });
    if (res.statusCode !== 200) {
      await res.body.dump();
      if (res.statusCode === 404) return undefined;
      throw new SkiffError('ERR_REGISTRY', `reading signature ${u}: HTTP ${res.statusCode}`);
    }
    return Buffer.from(await res.body.arrayBuffer());
  };
  try {
    const out: Buffer[] = [];
    for (let n = 1; ; n++) {
      const u = lookasideURL(base, ref, digest, n);
      const sig = await read(u);
      if (!sig) return out;
      if (sig.length > MAX_SIGNATURE) throw new SkiffError('ERR_IO', `signature ${u} is larger than ${MAX_SIGNATURE} bytes`);
      out.push(sig);
    }
  } finally {
    await agent?.close();
  }
}

/** Write `signatures` as the signatures of manifest `digest` (replacing any there: c/image's PutSignatures). */
export async function writeLookaside(ref: DockerReference, digest: Digest, signatures: Buffer[]): Promise<void> {
  const base = await lookasideBase(ref, true);
  if (!base.startsWith('file://')) throw new SkiffError('ERR_UNSUPPORTED', `writing signatures of ${ref.domain}/${ref.path}: the signature storage ${base} is not a file:// location (set lookaside-staging in registries.d)`);
  for (const [i, sig] of signatures.entries()) {
    const file = fileURLToPath(lookasideURL(base, ref, digest, i + 1));
    await fsp.mkdir(path.dirname(file), { recursive: true });
    await atomicWriteFile(file, sig);
  }
  // Any further signatures from before are not this set's: removed, so readers stop at the right count.
  for (let n = signatures.length + 1; ; n++) {
    const file = fileURLToPath(lookasideURL(base, ref, digest, n));
    try {
      await fsp.unlink(file);
    } catch {
      break;
    }
  }
}
