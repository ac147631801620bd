export { dockerArchiveTransport, DockerArchiveRef, ArchiveSource, ArchiveDestination, MultiImageArchive } from './docker-archive.js';
