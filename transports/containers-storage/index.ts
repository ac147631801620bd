export { containersStorageTransport, StorageRef, parseStorageSpec, openStore } from './containers-storage.js';
