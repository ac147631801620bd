import type { ImageRef, Transport } from '../src/core/image.js';
import { parseStorageSpec } from './containers-storage/ref.js';
import { parseDirSpec } from './dir/ref.js';
import { parseDockerArchiveSpec } from './docker-archive/ref.js';
import { parseDaemonSpec } from './docker-daemon/ref.js';
import { parseDockerSpec } from './docker/ref.js';
import { parseOciArchiveSpec, parseOciSpec } from './oci/ref.js';

/**
 * A transport whose code loads when an image is opened: references parse from a small module of each transport,
 * so a command loads only the transports it uses (every one loaded cost ~10 ms and ~7 MiB at start).
 */
function lazy(name: string, parse: (spec: string) => ImageRef, load: () => Promise<Transport>): Transport {
  return {
    name,
    parse,
    async openSource(ref, opts) {
      return (await load()).openSource(ref, opts);
    },
    async openDestination(ref, opts) {
      return (await load()).openDestination(ref, opts);
    },
  };
}

/** Every transport skiff knows. The CLI passes this list to parseImageRef; nothing registers itself. */
export const transports: readonly Transport[] = [
  lazy('docker', parseDockerSpec, async () => (await import('./docker/index.js')).dockerTransport),
  lazy('oci', parseOciSpec, async () => (await import('./oci/index.js')).ociTransport),
  lazy('oci-archive', parseOciArchiveSpec, async () => (await import('./oci-archive/index.js')).ociArchiveTransport),
  lazy('dir', parseDirSpec, async () => (await import('./dir/index.js')).dirTransport),
  lazy('docker-archive', parseDockerArchiveSpec, async () => (await import('./docker-archive/index.js')).dockerArchiveTransport),
  lazy('docker-daemon', parseDaemonSpec, async () => (await import('./docker-daemon/index.js')).dockerDaemonTransport),
  lazy('containers-storage', parseStorageSpec, async () => (await import('./containers-storage/index.js')).containersStorageTransport),
];
