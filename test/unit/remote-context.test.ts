import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { isGitContext, isRemoteContext } from '../../src/build/remote-context.js';

describe('build context arguments', () => {
  it('http(s) URLs and git repositories are fetched; local paths are not, whatever their names; git over ssh and other schemes are refused', () => {
    assert.equal(isRemoteContext('https://example.org/src.tar.gz', 'build context '), true);
    assert.equal(isRemoteContext('HTTP://example.org/Containerfile', 'build context '), true);
    for (const local of ['.', 'ctx', '/srv/app', 'myrepo.git', './x.git', 'c:/odd']) assert.equal(isRemoteContext(local, 'build context '), false, local);
    for (const git of ['https://github.com/a/b.git', 'https://h/a/b.git#main:sub', 'http://h/r.git?x=1', 'git://host/r', 'git://host/r#v1', 'github.com/a/b']) {
      assert.equal(isRemoteContext(git, 'build context '), true, git);
      assert.equal(isGitContext(git), true, git);
    }
    for (const notGit of ['https://h/src.tar.gz', 'https://h/x.git/Containerfile', 'myrepo.git', './x.git']) assert.equal(isGitContext(notGit), false, notGit);
    assert.throws(() => isRemoteContext('git@github.com:a/b.git', 'build context '), /git over ssh is not supported/);
    assert.throws(() => isRemoteContext('ftp://host/x.tar', 'build context '), /only http and https URLs are supported \(and git repositories/);
  });
});
