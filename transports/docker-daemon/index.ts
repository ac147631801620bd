export { dockerDaemonTransport, DaemonRef } from './docker-daemon.js';
