#!/usr/bin/env node
import { setFlagsFromString } from 'node:v8';
import { inRootlessUserns, needsStorage, reexecInUserns } from '../dist/src/store/userns.js';

// undici parses HTTP with llhttp compiled to WebAssembly; V8's optimizing tier compiles it again in the background
// and the process waits for that at exit (~50 ms and ~35 MiB on every registry command). The baseline compiler alone
// parses HTTP just as well for skiff's traffic.
setFlagsFromString('--liftoff-only');

// An unprivileged user's store holds files owned by its subordinate IDs: work on it from inside a user
// namespace, as rootless podman does. (Decided before the CLI loads: the outer process only waits.)
if (process.getuid() !== 0 && !inRootlessUserns() && needsStorage(process.argv)) process.exitCode = await reexecInUserns(process.argv);
else process.exitCode = await (await import('../dist/src/cli/main.js')).main(process.argv);
