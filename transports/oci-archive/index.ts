export { ociArchiveTransport } from './oci-archive.js';
