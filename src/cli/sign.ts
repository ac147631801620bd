/**
 * skopeo's standalone-sign and standalone-verify: "simple signing" (containers-signature(5)), a JSON claim that a
 * Docker reference names a manifest digest, signed with GnuPG. skiff runs gpg itself (GNUPGHOME as usual), so
 * the keys are the user's keyring, as skopeo's are through gpgme.
 */
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { createRequire } from 'node:module';
import { Command } from 'commander';
import { sha256 } from '../core/digest.js';
import { SkiffError } from '../core/errors.js';
import { formatDockerReference, parseDockerReference } from '../core/reference.js';
import { writeOut } from './common.js';

const SIGNATURE_TYPE = 'atomic container signature';

/** Run gpg with `input` on stdin; resolves with its stdout, stderr and exit status. */
function gpg(args: string[], input: Buffer): Promise<{ code: number; out: Buffer; err: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn('gpg', ['--batch', '--no-tty', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    p.stdout.on('data', (c: Buffer) => out.push(c));
    p.stderr.on('data', (c: Buffer) => (err += c.toString()));
    p.on('error', (e) => reject(new SkiffError('ERR_UNSUPPORTED', `running gpg: ${e.message} (install GnuPG)`)));
    p.on('close', (code) => resolve({ code: code ?? -1, out: Buffer.concat(out), err }));
    // (gpg may exit without reading its input, a missing key, or not need any: the exit status says what went
    // wrong, and the EPIPE writing to it is no error of its own.)
    p.stdin.on('error', () => undefined);
    p.stdin.end(input);
  });
}

/** The reference as the signature records it: normalised (`busybox` -> `docker.io/library/busybox`). */
function signatureIdentity(ref: string): string {
  return formatDockerReference(parseDockerReference(ref));
}

/** Sign `manifest` as named by `ref` with the key `fingerprint`: the signature bytes (a signed OpenPGP message). */
export async function signManifest(manifest: Buffer, ref: string, fingerprint: string, passphraseFile?: string): Promise<Buffer> {
  const version = (createRequire(import.meta.url)('../../../package.json') as { version: string }).version;
  const payload = JSON.stringify({
    critical: { identity: { 'docker-reference': signatureIdentity(ref) }, image: { 'docker-manifest-digest': sha256(manifest) }, type: SIGNATURE_TYPE },
    optional: { creator: `skiff ${version}`, timestamp: Math.floor(Date.now() / 1000) },
  });
  const pass = passphraseFile ? ['--pinentry-mode', 'loopback', '--passphrase-file', passphraseFile] : [];
  const r = await gpg([...pass, '--local-user', fingerprint, '--sign', '--output', '-'], Buffer.from(payload));
  if (r.code !== 0) throw new SkiffError('ERR_UNAUTHORIZED', `signing with key ${fingerprint}: ${r.err.trim().split('\n').pop() ?? `gpg exit status ${r.code}`}`);
  return r.out;
}

/**
 * --sign-by's signer: `fingerprint` is checked first (a key gpg cannot sign with fails the command before any
 * work, not after it), then each call signs a manifest for a reference.
 */
export async function signerFor(fingerprint: string, passphraseFile?: string): Promise<(manifest: Buffer, identity: string) => Promise<Buffer>> {
  const r = await gpg(['--list-secret-keys', '--', fingerprint], Buffer.alloc(0));
  if (r.code !== 0) throw new SkiffError('ERR_USAGE', `--sign-by ${fingerprint}: no such secret key in the GnuPG keyring (${process.env.GNUPGHOME ?? '~/.gnupg'})`);
  return (manifest, identity) => signManifest(manifest, identity, fingerprint, passphraseFile);
}

/**
 * push's and manifest push's --sign-by: a signer for what goes to `destination`, the signature vouching for the
 * registry name pushed to (as podman signs); undefined without --sign-by. Refused for a destination that is no
 * registry image, and for a key gpg cannot sign with, before anything is pushed.
 */
export async function pushSigner(destination: string, signBy: unknown, passphraseFile: unknown): Promise<{ identity: string; sign(manifest: Buffer, identity: string): Promise<Buffer> } | undefined> {
  if (typeof signBy !== 'string') return undefined;
  if (!destination.startsWith('docker://')) throw new SkiffError('ERR_USAGE', `--sign-by: ${destination} names no registry image for the signature to vouch for (push to docker://…)`);
  return { identity: destination.slice('docker://'.length), sign: await signerFor(signBy, typeof passphraseFile === 'string' ? passphraseFile : undefined) };
}

/**
 * Check a signature as containers/image does: made by `fingerprint` (a key in the keyring), of the simple-signing
 * type, for this manifest's digest and this reference. Resolves with the manifest digest.
 */
export async function verifySignature(manifest: Buffer, ref: string, fingerprint: string, signature: Buffer): Promise<string> {
  const r = await gpg(['--status-fd', '2', '--decrypt', '--output', '-'], signature);
  const signer = /^\[GNUPG:\] VALIDSIG (\S+)/m.exec(r.err)?.[1];
  if (r.code !== 0 || !signer) throw new SkiffError('ERR_UNAUTHORIZED', `Error verifying signature: ${r.err.split('\n').filter((l) => !l.startsWith('[GNUPG:]')).pop()?.replace(/^gpg: /, '') || 'not a valid signature'}`);
  const primary = /^\[GNUPG:\] VALIDSIG \S+(?: \S+){8} (\S+)/m.exec(r.err)?.[1];
  const want = fingerprint.toUpperCase();
  if (signer.toUpperCase() !== want && primary?.toUpperCase() !== want) throw new SkiffError('ERR_UNAUTHORIZED', `Error verifying signature: Signature by key ${signer} is not accepted (expected ${fingerprint})`);
  let claim: { critical?: { identity?: { 'docker-reference'?: string }; image?: { 'docker-manifest-digest'?: string }; type?: string } };
  try {
    claim = JSON.parse(r.out.toString()) as typeof claim;
  } catch {
    throw new SkiffError('ERR_UNAUTHORIZED', 'Error verifying signature: the signed content is not a signature claim (JSON)');
  }
  if (claim.critical?.type !== SIGNATURE_TYPE) throw new SkiffError('ERR_UNAUTHORIZED', `Error verifying signature: unrecognized signature type ${JSON.stringify(claim.critical?.type)}`);
  const digest = sha256(manifest);
  const signed = claim.critical.image?.['docker-manifest-digest'];
  if (signed !== digest) throw new SkiffError('ERR_UNAUTHORIZED', `Error verifying signature: Signature for docker digest ${signed} does not match ${digest}`);
  const identity = claim.critical.identity?.['docker-reference'];
  if (identity !== signatureIdentity(ref)) throw new SkiffError('ERR_UNAUTHORIZED', `Error verifying signature: Docker reference ${identity} does not match ${signatureIdentity(ref)}`);
  return digest;
}

export function signCommands(program: Command): void {
  program
    .command('standalone-sign')
    .description('Sign a manifest for a Docker reference with a GnuPG key (skopeo\'s simple signing)')
    .argument('<manifest>', 'the manifest file')
    .argument('<docker-reference>', 'the name the signature vouches for')
    .argument('<key-fingerprint>', 'the signing key')
    .requiredOption('-o, --output <signature>', 'write the signature here')
    .option('--passphrase-file <file>', 'the key\'s passphrase')
    .action(async (manifestFile: string, ref: string, fpr: string, flags: { output: string; passphraseFile?: string }) => {
      const sig = await signManifest(await fsp.readFile(manifestFile), ref, fpr, flags.passphraseFile);
      await fsp.writeFile(flags.output, sig);
    });
  program
    .command('standalone-verify')
    .description('Verify a simple-signing signature of a manifest for a Docker reference, made by a key')
    .argument('<manifest>', 'the manifest file')
    .argument('<docker-reference>', 'the name the signature must vouch for')
    .argument('<key-fingerprint>', 'the key that must have made it')
    .argument('<signature>', 'the signature file')
    .action(async (manifestFile: string, ref: string, fpr: string, sigFile: string) => {
      const digest = await verifySignature(await fsp.readFile(manifestFile), ref, fpr, await fsp.readFile(sigFile));
      await writeOut(`Signature verified, digest ${digest}\n`);
    });
}
