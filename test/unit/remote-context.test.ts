import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { isRemoteContext } from '../../src/build/remote-context.js';

describe('build context arguments', () => {
  it('http(s) URLs are fetched; local paths are not, whatever their names; git and other schemes are refused', () => {
    assert.equal(isRemoteContext('https://example.org/src.tar.gz', 'build context '), true);
    assert.equal(isRemoteContext('HTTP://example.org/Containerfile', 'build context '), true);
    for (const local of ['.', 'ctx', '/srv/app', 'myrepo.git', './x.git', 'c:/odd']) assert.equal(isRemoteContext(local, 'build context '), false, local);
    for (const git of ['https://github.com/a/b.git', 'git@github.com:a/b.git', 'git://host/r', 'github.com/a/b']) assert.throws(() => isRemoteContext(git, 'build context '), /git repositories are not supported/, git);
    assert.throws(() => isRemoteContext('ftp://host/x.tar', 'build context '), /only http and https URLs are supported/);
  });
});
