/** `dir:PATH` references: parsing only, loaded without the transport. */
import { SkiffError } from '../../src/core/errors.js';
import type { ImageRef } from '../../src/core/image.js';

export class DirRef implements ImageRef {
  readonly transport = 'dir';
  constructor(readonly path: string) {}
  get spec(): string {
    return this.path;
  }
  toString(): string {
    return `dir:${this.path}`;
  }
}

export function parseDirSpec(spec: string): DirRef {
  if (spec === '') throw new SkiffError('ERR_INVALID_REFERENCE', 'dir: empty path');
  return new DirRef(spec);
}
