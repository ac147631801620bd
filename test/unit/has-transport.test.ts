import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { hasTransport } from '../../src/cli/common.js';

describe('destinations of push and manifest push', () => {
  it('a transport prefix is one of the transports; a registry with a port is a registry reference', () => {
    for (const s of ['docker://x/y:1', 'oci:/tmp/l:1', 'oci-archive:/tmp/a.tar', 'dir:/tmp/d', 'docker-archive:/tmp/a.tar', 'docker-daemon:x:1', 'containers-storage:x']) assert.equal(hasTransport(s), true, s);
    // (These went to the transport parser before, and failed as an unknown transport "localhost".)
    for (const s of ['localhost:5000/app:1', 'registry.example:443/team/app', 'quay.io/x/y:1', 'busybox']) assert.equal(hasTransport(s), false, s);
  });
});
