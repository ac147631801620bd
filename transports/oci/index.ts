export { ociTransport, OciRef, LayoutDestination, OCI_CAPS } from './oci.js';
export { LayoutSource, LayoutWriter, splitPathAndName, blobPath, REF_NAME } from './layout.js';
