import { SkiffError } from './errors.js';
import type { Descriptor, IndexManifest, Platform } from './manifest.js';

/** What the user asked for with --override-os/--override-arch/--override-variant. */
export interface PlatformChoice {
  os?: string;
  architecture?: string;
  variant?: string;
}

const GOARCH: Record<string, string> = { x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', mips: 'mips', mipsel: 'mipsle', loong64: 'loong64' };

/** The platform skiff runs on, in OCI (Go) names. */
export function hostPlatform(): Platform {
  const architecture = GOARCH[process.arch] ?? process.arch;
  const p: Platform = { os: process.platform === 'win32' ? 'windows' : process.platform, architecture };
  if (architecture === 'arm64') p.variant = 'v8';
  if (architecture === 'arm') p.variant = `v${(process.config.variables as Record<string, unknown>).arm_version ?? '7'}`;
  return p;
}

export function wantedPlatform(choice: PlatformChoice = {}): Platform {
  const host = hostPlatform();
  const p: Platform = { os: choice.os ?? host.os, architecture: choice.architecture ?? host.architecture };
  const variant = choice.variant ?? (choice.architecture && choice.architecture !== host.architecture ? undefined : host.variant);
  if (variant) p.variant = variant;
  return p;
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

/** `os/arch[/variant]` as a platform (formatPlatform's inverse); undefined when it is not of that form. */
export function parsePlatform(s: string): Platform | undefined {
  const [os, architecture, variant, ...rest] = s.split('/');
  if (!os || !architecture || rest.length) return undefined;
  return { os, architecture, ...(variant ? { variant } : {}) };
}

/**
 * Choose the instance of an index for a platform: os and architecture must match; a requested variant must match
 * (arm64's "v8" also matches an absent variant); among several, the exact variant wins, then the first listed.
 */
export function choosePlatform(index: IndexManifest, choice: PlatformChoice = {}): Descriptor {
  const want = wantedPlatform(choice);
  const normVariant = (arch: string, v: string | undefined): string | undefined => (arch === 'arm64' && v === 'v8' ? undefined : v);
  const wantVariant = normVariant(want.architecture, want.variant);
  const candidates = index.manifests.filter((d) => d.platform && d.platform.os === want.os && d.platform.architecture === want.architecture);
  const exact = candidates.find((d) => normVariant(want.architecture, d.platform?.variant) === wantVariant);
  const chosen = exact ?? (choice.variant ? undefined : candidates[0]);
  if (!chosen) {
    const have = index.manifests.map((d) => (d.platform ? formatPlatform(d.platform) : 'unknown')).join(', ');
    throw new SkiffError('ERR_NO_PLATFORM', `no image found in manifest list for platform ${formatPlatform(want)} (have: ${have || 'none'})`);
  }
  return chosen;
}
