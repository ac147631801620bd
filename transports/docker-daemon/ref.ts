/** `docker-daemon:NAME[:TAG]` or, to read, `docker-daemon:sha256:ID`: parsing only, loaded without the transport. */
import type { Digest } from '../../src/core/digest.js';
import { SkiffError } from '../../src/core/errors.js';
import type { ImageRef } from '../../src/core/image.js';
import { formatDockerReference, parseDockerReference, withDefaultTag, type DockerReference } from '../../src/core/reference.js';

export class DaemonRef implements ImageRef {
  readonly transport = 'docker-daemon';
  constructor(
    readonly named?: DockerReference,
    readonly id?: Digest,
  ) {}
  get spec(): string {
    return this.named ? formatDockerReference(this.named) : this.id!;
  }
  toString(): string {
    return `docker-daemon:${this.spec}`;
  }
  get dockerName(): string | undefined {
    return this.named ? formatDockerReference({ domain: this.named.domain, path: this.named.path }) : undefined;
  }
  /** What the Engine API calls the image in a path. */
  get apiName(): string {
    return encodeURIComponent(this.named ? formatDockerReference(this.named) : this.id!);
  }
}

export function parseDaemonSpec(spec: string): DaemonRef {
  if (/^sha256:[a-f0-9]{64}$/.test(spec)) return new DaemonRef(undefined, spec as Digest);
  if (/^[a-f0-9]{64}$/.test(spec)) return new DaemonRef(undefined, `sha256:${spec}`);
  const named = parseDockerReference(spec);
  if (named.digest) throw new SkiffError('ERR_INVALID_REFERENCE', `docker-daemon: digest references are not supported (${spec}); use NAME:TAG or sha256:ID`);
  return new DaemonRef(withDefaultTag(named));
}
