export { dirTransport, DirRef } from './dir.js';
