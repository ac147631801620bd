/** `oci:PATH[:NAME]` references (and oci-archive's, same syntax): parsing only, loaded without the transport. */
import { SkiffError } from '../../src/core/errors.js';
import type { ImageRef } from '../../src/core/image.js';

const REF_NAME_RE = /^[A-Za-z0-9._-]+(?:[:/@+][A-Za-z0-9._-]+)*$/;

/** Split `PATH[:NAME]`; the name as OCI's ref.name allows. */
export function splitPathAndName(spec: string, transport: string): { path: string; name?: string } {
  const i = spec.indexOf(':');
  const p = i < 0 ? spec : spec.slice(0, i);
  const name = i < 0 ? undefined : spec.slice(i + 1);
  if (p === '') throw new SkiffError('ERR_INVALID_REFERENCE', `${transport}: empty path in ${JSON.stringify(`${transport}:${spec}`)}`);
  if (name !== undefined && name !== '' && !REF_NAME_RE.test(name)) {
    throw new SkiffError('ERR_INVALID_REFERENCE', `${transport}: invalid image name ${JSON.stringify(name)}`);
  }
  return name ? { path: p, name } : { path: p };
}

export class OciRef implements ImageRef {
  readonly transport: string;
  constructor(
    readonly path: string,
    readonly name: string | undefined,
    transport = 'oci',
  ) {
    this.transport = transport;
  }
  get spec(): string {
    return this.name === undefined ? this.path : `${this.path}:${this.name}`;
  }
  toString(): string {
    return `${this.transport}:${this.spec}`;
  }
}

export function parseOciSpec(spec: string): OciRef {
  const { path: p, name } = splitPathAndName(spec, 'oci');
  return new OciRef(p, name);
}

export function parseOciArchiveSpec(spec: string): OciRef {
  const { path: p, name } = splitPathAndName(spec, 'oci-archive');
  return new OciRef(p, name, 'oci-archive');
}
