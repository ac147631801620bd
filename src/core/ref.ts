import { SkiffError } from './errors.js';
import type { ImageRef, Transport } from './image.js';

/** Parse `transport:spec` with the given transports (the CLI passes transports/index.ts's list). */
export function parseImageRef(input: string, transports: readonly Transport[]): { transport: Transport; ref: ImageRef } {
  const i = input.indexOf(':');
  if (i <= 0) {
    throw new SkiffError('ERR_INVALID_REFERENCE', `invalid image reference ${JSON.stringify(input)}: expected TRANSPORT:SPEC (e.g. oci:./dir:tag, docker://host/repo:tag)`);
  }
  const name = input.slice(0, i);
  const transport = transports.find((t) => t.name === name);
  if (!transport) {
    throw new SkiffError('ERR_UNKNOWN_TRANSPORT', `unknown transport ${JSON.stringify(name)} in ${JSON.stringify(input)} (known: ${transports.map((t) => t.name).join(', ')})`);
  }
  return { transport, ref: transport.parse(input.slice(i + 1)) };
}
