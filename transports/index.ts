import type { Transport } from '../src/core/image.js';
import { dirTransport } from './dir/index.js';
import { dockerArchiveTransport } from './docker-archive/index.js';
import { dockerTransport } from './docker/index.js';
import { dockerDaemonTransport } from './docker-daemon/index.js';
import { containersStorageTransport } from './containers-storage/index.js';
import { ociArchiveTransport } from './oci-archive/index.js';
import { ociTransport } from './oci/index.js';

/** Every transport skiff knows. The CLI passes this list to parseImageRef; nothing registers itself. */
export const transports: readonly Transport[] = [dockerTransport, ociTransport, ociArchiveTransport, dirTransport, dockerArchiveTransport, dockerDaemonTransport, containersStorageTransport];
