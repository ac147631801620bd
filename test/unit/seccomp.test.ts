import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { ociSeccomp, type SeccompProfile } from '../../src/build/seccomp.js';

const profile: SeccompProfile = {
  file: 'test',
  defaultAction: 'SCMP_ACT_ERRNO',
  defaultErrnoRet: 38,
  archMap: [
    { architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86', 'SCMP_ARCH_X32'] },
    { architecture: 'SCMP_ARCH_AARCH64', subArchitectures: ['SCMP_ARCH_ARM'] },
  ],
  syscalls: [
    { names: ['read', 'write'], action: 'SCMP_ACT_ALLOW' },
    { name: 'personality', action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 0, op: 'SCMP_CMP_EQ' }] },
    { names: ['arch_prctl'], action: 'SCMP_ACT_ALLOW', includes: { arches: ['amd64', 'x32'] } },
    { names: ['arm_fadvise64_64'], action: 'SCMP_ACT_ALLOW', includes: { arches: ['arm', 'arm64'] } },
    { names: ['chroot'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_CHROOT'] } },
    { names: ['chroot'], action: 'SCMP_ACT_ERRNO', errnoRet: 1, excludes: { caps: ['CAP_SYS_CHROOT'] } },
    { names: ['future_call'], action: 'SCMP_ACT_ALLOW', includes: { minKernel: '999.0' } },
  ],
};

describe('seccomp profiles (Docker format) for the OCI runtime', () => {
  it('keeps the rules for this architecture and for the capabilities the container has', () => {
    const withChroot = ociSeccomp(profile, ['CAP_CHOWN', 'CAP_SYS_CHROOT']) as { defaultAction: string; defaultErrnoRet: number; architectures: string[]; syscalls: { names: string[]; action: string; errnoRet?: number; args?: unknown[] }[] };
    assert.equal(withChroot.defaultAction, 'SCMP_ACT_ERRNO');
    assert.equal(withChroot.defaultErrnoRet, 38);
    const x64 = process.arch === 'x64';
    assert.deepEqual(withChroot.architectures, x64 ? ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'] : process.arch === 'arm64' ? ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'] : []);
    const names = withChroot.syscalls.map((r) => `${r.names.join(',')}:${r.action}`);
    assert.ok(names.includes('read,write:SCMP_ACT_ALLOW'));
    assert.ok(names.includes('personality:SCMP_ACT_ALLOW'), 'a single "name" is read too');
    assert.deepEqual(withChroot.syscalls.find((r) => r.names[0] === 'personality')!.args, [{ index: 0, value: 0, valueTwo: 0, op: 'SCMP_CMP_EQ' }]);
    assert.equal(names.includes('arch_prctl:SCMP_ACT_ALLOW'), x64, 'amd64-only rule');
    assert.equal(names.includes('arm_fadvise64_64:SCMP_ACT_ALLOW'), process.arch === 'arm64', 'arm-only rule');
    assert.ok(names.includes('chroot:SCMP_ACT_ALLOW') && !names.includes('chroot:SCMP_ACT_ERRNO'), 'with CAP_SYS_CHROOT');
    assert.ok(!names.includes('future_call:SCMP_ACT_ALLOW'), 'a rule for a kernel newer than this one');
    const without = ociSeccomp(profile, ['CAP_CHOWN']) as { syscalls: { names: string[]; action: string; errnoRet?: number }[] };
    const chroot = without.syscalls.filter((r) => r.names[0] === 'chroot');
    assert.deepEqual(chroot, [{ names: ['chroot'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }], 'without the capability, refused');
  });
});
