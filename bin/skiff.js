#!/usr/bin/env node
import { main } from '../dist/src/cli/main.js';
import { inRootlessUserns, needsStorage, reexecInUserns } from '../dist/src/store/userns.js';

// An unprivileged user's store holds files owned by its subordinate IDs: work on it from inside a user
// namespace, as rootless podman does.
if (process.getuid() !== 0 && !inRootlessUserns() && needsStorage(process.argv)) process.exitCode = await reexecInUserns(process.argv);
else process.exitCode = await main(process.argv);
