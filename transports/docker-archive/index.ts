export { dockerArchiveTransport, DockerArchiveRef, ArchiveSource, ArchiveDestination } from './docker-archive.js';
