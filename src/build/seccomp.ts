/**
 * The seccomp filter of RUN's container, as buildah sets it: the system's profile (containers-common's
 * seccomp.json, in Docker's format), or the one `--security-opt seccomp=FILE` names, turned into the OCI runtime's
 * form for this machine and this container's capabilities: rules for other architectures, and rules whose
 * capability conditions the container does not meet, are left out.
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import { SkiffError } from '../core/errors.js';

/** Where containers-common puts the default profile; /etc overrides /usr/share, as in containers/common. */
const DEFAULT_PROFILES = ['/etc/containers/seccomp.json', '/usr/share/containers/seccomp.json'];

interface DockerRule {
  name?: string;
  names?: string[];
  action: string;
  errnoRet?: number;
  args?: { index: number; value: number; valueTwo?: number; op: string }[] | null;
  includes?: { arches?: string[]; caps?: string[]; minKernel?: string } | null;
  excludes?: { arches?: string[]; caps?: string[]; minKernel?: string } | null;
}

export interface SeccompProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  archMap?: { architecture: string; subArchitectures?: string[] }[] | null;
  architectures?: string[] | null;
  syscalls?: DockerRule[] | null;
  /** Where it was read from, for messages. */
  file: string;
}

/** Read and check a profile; `file` undefined: the system's default, or undefined when the machine has none. */
export async function loadSeccompProfile(file?: string): Promise<SeccompProfile | undefined> {
  const candidates = file ? [file] : DEFAULT_PROFILES;
  for (const f of candidates) {
    let text: string;
    try {
      text = await fsp.readFile(f, 'utf8');
    } catch (e) {
      if (file) throw new SkiffError('ERR_USAGE', `--security-opt seccomp=${file}: ${(e as Error).message}`);
      continue;
    }
    let p: SeccompProfile;
    try {
      p = JSON.parse(text) as SeccompProfile;
    } catch (e) {
      throw new SkiffError('ERR_USAGE', `seccomp profile ${f}: malformed JSON: ${(e as Error).message}`);
    }
    if (typeof p?.defaultAction !== 'string' || (p.syscalls != null && !Array.isArray(p.syscalls))) throw new SkiffError('ERR_USAGE', `seccomp profile ${f}: expected defaultAction and a syscalls list (Docker's format)`);
    return { ...p, file: f };
  }
  return undefined;
}

/** This machine's architecture as Go names it (the profile's `arches`) and as libseccomp does. */
function hostArch(): { go: string; scmp: string } {
  switch (process.arch) {
    case 'x64':
      return { go: 'amd64', scmp: 'SCMP_ARCH_X86_64' };
    case 'arm64':
      return { go: 'arm64', scmp: 'SCMP_ARCH_AARCH64' };
    case 'ia32':
      return { go: '386', scmp: 'SCMP_ARCH_X86' };
    case 'arm':
      return { go: 'arm', scmp: 'SCMP_ARCH_ARM' };
    case 'ppc64':
      return { go: os.endianness() === 'LE' ? 'ppc64le' : 'ppc64', scmp: os.endianness() === 'LE' ? 'SCMP_ARCH_PPC64LE' : 'SCMP_ARCH_PPC64' };
    case 's390x':
      return { go: 's390x', scmp: 'SCMP_ARCH_S390X' };
    default:
      return { go: process.arch, scmp: '' };
  }
}

/** Go's names for an architecture as profiles write them in `arches` (x86 for 386, as Docker's profile does). */
const ARCH_ALIASES: Record<string, string[]> = { amd64: ['amd64', 'x86_64'], '386': ['386', 'x86'], arm64: ['arm64', 'aarch64'] };

function kernelAtLeast(min: string): boolean {
  const have = os.release().split(/[.-]/).map(Number);
  const want = min.split('.').map(Number);
  for (let i = 0; i < want.length; i++) {
    const h = have[i] ?? 0;
    const w = want[i] ?? 0;
    if (h !== w) return h > w;
  }
  return true;
}

/** The profile as the OCI runtime takes it (config.json's linux.seccomp), for a container with capabilities `caps`. */
export function ociSeccomp(p: SeccompProfile, caps: string[]): Record<string, unknown> {
  const arch = hostArch();
  const names = ARCH_ALIASES[arch.go] ?? [arch.go];
  const entry = p.archMap?.find((a) => a.architecture === arch.scmp);
  const architectures = entry ? [entry.architecture, ...(entry.subArchitectures ?? [])] : p.architectures ?? [];
  const have = new Set(caps);
  const syscalls = [];
  for (const r of p.syscalls ?? []) {
    const inc = r.includes ?? {};
    const exc = r.excludes ?? {};
    if (inc.arches?.length && !inc.arches.some((a) => names.includes(a))) continue;
    if (exc.arches?.some((a) => names.includes(a))) continue;
    if (inc.caps?.length && !inc.caps.every((c) => have.has(c))) continue;
    if (exc.caps?.some((c) => have.has(c))) continue;
    if (inc.minKernel && !kernelAtLeast(inc.minKernel)) continue;
    if (exc.minKernel && kernelAtLeast(exc.minKernel)) continue;
    const list = r.names ?? (r.name ? [r.name] : []);
    if (!list.length) continue;
    syscalls.push({
      names: list,
      action: r.action,
      ...(r.errnoRet !== undefined ? { errnoRet: r.errnoRet } : {}),
      ...(r.args?.length ? { args: r.args.map((a) => ({ index: a.index, value: a.value, valueTwo: a.valueTwo ?? 0, op: a.op })) } : {}),
    });
  }
  return { defaultAction: p.defaultAction, ...(p.defaultErrnoRet !== undefined ? { defaultErrnoRet: p.defaultErrnoRet } : {}), architectures, syscalls };
}
