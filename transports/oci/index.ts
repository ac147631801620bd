export { ociTransport, OciRef, LayoutDestination, OCI_CAPS, checkPut } from './oci.js';
export { LayoutSource, LayoutWriter, splitPathAndName, blobPath, REF_NAME } from './layout.js';
