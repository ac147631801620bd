import { SkiffError } from './errors.js';
import { isDigest, type Digest } from './digest.js';

/** A normalised Docker image reference: `docker.io/library/busybox:latest`, `host:5000/a/b@sha256:…`. */
export interface DockerReference {
  /** Registry host[:port], normalised (`docker.io` for Docker Hub). */
  domain: string;
  /** Repository path inside the registry (`library/busybox`). */
  path: string;
  tag?: string;
  digest?: Digest;
}

const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN_RE = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`);
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const NAME_MAX = 255;

export const DEFAULT_DOMAIN = 'docker.io';

function invalid(input: string, why: string): never {
  throw new SkiffError('ERR_INVALID_REFERENCE', `invalid reference ${JSON.stringify(input)}: ${why}`);
}

/**
 * Parse a Docker reference the way docker/distribution's ParseNormalizedNamed does:
 * `busybox` -> docker.io/library/busybox; the first component is a registry only if it has `.` or `:` or is
 * `localhost`. Tag and digest may both be given. Throws ERR_INVALID_REFERENCE with the reason.
 */
export function parseDockerReference(input: string): DockerReference {
  if (input === '') invalid(input, 'empty reference');
  let rest = input;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    const d = rest.slice(at + 1);
    if (!isDigest(d)) invalid(input, `invalid digest ${JSON.stringify(d)}`);
    digest = d;
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    if (!TAG_RE.test(tag)) invalid(input, tag === '' ? 'empty tag' : `invalid tag ${JSON.stringify(tag)}`);
    rest = rest.slice(0, colon);
  }
  if (rest === '') invalid(input, 'empty repository name');
  let domain = DEFAULT_DOMAIN;
  let path = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost') {
      domain = first;
      path = rest.slice(slash + 1);
    }
  }
  if (!DOMAIN_RE.test(domain)) invalid(input, `invalid registry host ${JSON.stringify(domain)}`);
  if (domain === 'index.docker.io') domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !path.includes('/')) path = `library/${path}`;
  for (const comp of path.split('/')) {
    if (!PATH_COMPONENT_RE.test(comp)) {
      if (/[A-Z]/.test(comp)) invalid(input, 'repository name must be lowercase');
      invalid(input, `invalid repository path component ${JSON.stringify(comp)}`);
    }
  }
  if (domain.length + 1 + path.length > NAME_MAX) invalid(input, `repository name longer than ${NAME_MAX} characters`);
  const ref: DockerReference = { domain, path };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/** `docker.io/library/busybox` */
export function repositoryName(r: DockerReference): string {
  return `${r.domain}/${r.path}`;
}

/** The full normalised string: `docker.io/library/busybox:latest@sha256:…`. */
export function formatDockerReference(r: DockerReference): string {
  return `${repositoryName(r)}${r.tag !== undefined ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}

/** Add `:latest` when neither tag nor digest is given (what docker and skopeo do). */
export function withDefaultTag(r: DockerReference): DockerReference {
  return r.tag === undefined && r.digest === undefined ? { ...r, tag: 'latest' } : r;
}

/** The short form users type: `busybox:latest` for Docker Hub library images. */
export function familiarName(r: DockerReference): string {
  let name = repositoryName(r);
  if (r.domain === DEFAULT_DOMAIN) name = r.path.startsWith('library/') && r.path.split('/').length === 2 ? r.path.slice(8) : r.path;
  return `${name}${r.tag !== undefined ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}

/**
 * The name a locally made image gets, as podman gives it (`podman tag`, `build -t`, `manifest create`): a name with
 * no registry is put under `localhost/` (`myapp` -> `localhost/myapp:latest`, `team/app:1` ->
 * `localhost/team/app:1`); a name with one keeps it (`docker.io/x` -> `docker.io/library/x:latest`).
 */
export function localImageName(input: string): string {
  const first = input.split('/')[0] ?? '';
  const qualified = input.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  return formatDockerReference(withDefaultTag(parseDockerReference(qualified ? input : `localhost/${input}`)));
}
