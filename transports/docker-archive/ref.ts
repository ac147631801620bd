/** `docker-archive:PATH[:NAME:TAG|@N]` references: parsing only, loaded without the transport. */
import { SkiffError } from '../../src/core/errors.js';
import type { ImageRef } from '../../src/core/image.js';
import { formatDockerReference, parseDockerReference, withDefaultTag, type DockerReference } from '../../src/core/reference.js';

export class DockerArchiveRef implements ImageRef {
  readonly transport = 'docker-archive';
  constructor(
    readonly path: string,
    readonly named?: DockerReference,
    readonly sourceIndex?: number,
  ) {}
  get spec(): string {
    if (this.named) return `${this.path}:${formatDockerReference(this.named)}`;
    if (this.sourceIndex !== undefined) return `${this.path}:@${this.sourceIndex}`;
    return this.path;
  }
  toString(): string {
    return `docker-archive:${this.spec}`;
  }
  get dockerName(): string | undefined {
    return this.named ? formatDockerReference({ domain: this.named.domain, path: this.named.path }) : undefined;
  }
}

export function parseDockerArchiveSpec(spec: string): DockerArchiveRef {
  const i = spec.indexOf(':');
  const p = i < 0 ? spec : spec.slice(0, i);
  if (p === '') throw new SkiffError('ERR_INVALID_REFERENCE', 'docker-archive: empty path');
  if (i < 0 || spec.slice(i + 1) === '') return new DockerArchiveRef(p);
  const rest = spec.slice(i + 1);
  if (rest.startsWith('@')) {
    const n = Number(rest.slice(1));
    if (!/^[0-9]+$/.test(rest.slice(1)) || !Number.isSafeInteger(n)) throw new SkiffError('ERR_INVALID_REFERENCE', `docker-archive: invalid source index ${JSON.stringify(rest)}`);
    return new DockerArchiveRef(p, undefined, n);
  }
  const named = withDefaultTag(parseDockerReference(rest));
  if (named.digest) throw new SkiffError('ERR_INVALID_REFERENCE', `docker-archive: digest references are not supported (${rest})`);
  return new DockerArchiveRef(p, named);
}
