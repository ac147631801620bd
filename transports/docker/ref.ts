/** `docker://HOST/REPO[:TAG|@DIGEST]` references: parsing only, loaded without the registry client. */
import { SkiffError } from '../../src/core/errors.js';
import type { ImageRef } from '../../src/core/image.js';
import { formatDockerReference, parseDockerReference, withDefaultTag, type DockerReference } from '../../src/core/reference.js';

export class DockerRef implements ImageRef {
  readonly transport = 'docker';
  constructor(readonly named: DockerReference) {}
  get spec(): string {
    return `//${formatDockerReference(this.named)}`;
  }
  toString(): string {
    return `docker:${this.spec}`;
  }
  /** `host/path` */
  get repository(): string {
    return `${this.named.domain}/${this.named.path}`;
  }
  /** What to ask the registry for: the digest when given, else the tag. */
  get reference(): string {
    return this.named.digest ?? this.named.tag ?? 'latest';
  }
}

export function parseDockerSpec(spec: string): DockerRef {
  if (!spec.startsWith('//')) throw new SkiffError('ERR_INVALID_REFERENCE', `docker: reference must start with // (docker://HOST/REPO:TAG), got ${JSON.stringify(`docker:${spec}`)}`);
  return new DockerRef(withDefaultTag(parseDockerReference(spec.slice(2))));
}
