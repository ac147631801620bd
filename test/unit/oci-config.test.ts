import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { chrootWrappers, configJSON, rlimits } from '../../src/build/run.js';

describe('RUN container limits', () => {
  it('--ulimit in the OCI config: RLIMIT_<TYPE>, -1 as RLIM_INFINITY (2^64-1, which a JavaScript number cannot spell)', () => {
    const o = { ulimits: [{ name: 'nofile', soft: 1024, hard: 2048 }, { name: 'core', soft: -1, hard: -1 }, { name: 'nproc', soft: 10, hard: -1 }] };
    const json = configJSON({ process: { rlimits: rlimits(o) } });
    assert.equal(json, '{"process":{"rlimits":[{"type":"RLIMIT_NOFILE","soft":1024,"hard":2048},{"type":"RLIMIT_CORE","soft":18446744073709551615,"hard":18446744073709551615},{"type":"RLIMIT_NPROC","soft":10,"hard":18446744073709551615}]}}');
    assert.equal(rlimits({}), undefined, 'no --ulimit: no rlimits key (the inherited limits stay)');
  });

  it('--ulimit and no-new-privileges without a runtime: prlimit and setpriv before unshare', () => {
    assert.deepEqual(chrootWrappers({ ulimits: [{ name: 'nofile', soft: 512, hard: -1 }], noNewPrivileges: true }), ['prlimit', '--nofile=512:unlimited', '--', 'setpriv', '--no-new-privs', '--']);
    assert.deepEqual(chrootWrappers({}), []);
  });
});
