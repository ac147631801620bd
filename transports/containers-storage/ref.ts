/** containers-storage references: parsing only, loaded without the transport (and the store code). */
import { SkiffError } from '../../src/core/errors.js';
import type { ImageRef } from '../../src/core/image.js';
import type { StoreLocation } from '../../src/store/store.js';
import { formatDockerReference, parseDockerReference } from '../../src/core/reference.js';

/** `containers-storage:[[driver@]root[+runroot][:options]]{ID|NAME[@ID]}` (containers-transports(5)). */
export class StorageRef implements ImageRef {
  readonly transport = 'containers-storage';
  constructor(
    readonly store: Partial<StoreLocation>,
    readonly name: string | undefined,
    readonly id: string | undefined,
    private readonly storeSpec: string,
  ) {}
  get spec(): string {
    const img = this.name ? `${this.name}${this.id ? `@${this.id}` : ''}` : this.id ?? '';
    return `${this.storeSpec ? `[${this.storeSpec}]` : ''}${img}`;
  }
  toString(): string {
    return `containers-storage:${this.spec}`;
  }
  get dockerName(): string | undefined {
    if (!this.name) return undefined;
    try {
      const r = parseDockerReference(this.name);
      return formatDockerReference({ domain: r.domain, path: r.path });
    } catch {
      return undefined;
    }
  }
}

export function parseStorageSpec(spec: string): StorageRef {
  let rest = spec;
  let storeSpec = '';
  const store: Partial<StoreLocation> = {};
  if (rest.startsWith('[')) {
    const end = rest.indexOf(']');
    if (end < 0) throw new SkiffError('ERR_INVALID_REFERENCE', `containers-storage: missing ] in ${JSON.stringify(spec)}`);
    storeSpec = rest.slice(1, end);
    rest = rest.slice(end + 1);
    let s = storeSpec;
    const at = s.indexOf('@');
    if (at >= 0 && (s.indexOf('/') < 0 || at < s.indexOf('/'))) {
      store.driver = s.slice(0, at);
      s = s.slice(at + 1);
    }
    const colon = s.indexOf(':');
    if (colon >= 0) s = s.slice(0, colon); // driver options: not used
    const plus = s.indexOf('+');
    if (plus >= 0) {
      store.runroot = s.slice(plus + 1);
      s = s.slice(0, plus);
    }
    if (s) {
      if (!s.startsWith('/')) throw new SkiffError('ERR_INVALID_REFERENCE', `containers-storage: the store root must be an absolute path, got ${JSON.stringify(s)}`);
      store.root = s;
    }
  }
  if (rest === '') throw new SkiffError('ERR_INVALID_REFERENCE', `containers-storage: no image named in ${JSON.stringify(spec)}`);
  let name: string | undefined = rest;
  let id: string | undefined;
  const at = rest.lastIndexOf('@');
  if (at >= 0 && /^[a-f0-9]{64}$/.test(rest.slice(at + 1))) {
    id = rest.slice(at + 1);
    name = rest.slice(0, at) || undefined;
  } else if (/^(sha256:)?[a-f0-9]{64}$/.test(rest)) {
    id = rest.replace(/^sha256:/, '');
    name = undefined;
  }
  return new StorageRef(store, name, id, storeSpec);
}
