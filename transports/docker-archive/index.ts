export { dockerArchiveTransport, DockerArchiveRef } from './docker-archive.js';
