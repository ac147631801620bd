export { dockerTransport, DockerRef, connect, listTags, resolveDigest, fetchManifest, ACCEPT } from './docker.js';
export { parseChallenge } from './auth.js';
