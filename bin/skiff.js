#!/usr/bin/env node
import { setFlagsFromString } from 'node:v8';
import { inRootlessUserns, needsStorage, reexecInUserns } from '../dist/src/store/userns.js';

// undici parses HTTP with llhttp compiled to WebAssembly; V8's optimizing tier compiles it again in the background
// and the process waits for that at exit (~50 ms and ~35 MiB on every registry command). The baseline compiler alone
// parses HTTP just as well for skiff's traffic.
setFlagsFromString('--liftoff-only');

// The thread pool does skiff's file I/O and (de)compression: layers with many small files are unpacked by up to 16
// writes at once, and creating files is their main cost. (libuv reads this when the pool first starts.)
process.env.UV_THREADPOOL_SIZE ??= '16';

// An unprivileged user's store holds files owned by its subordinate IDs: work on it from inside a user
// namespace, as rootless podman does. (Decided before the CLI loads: the outer process only waits.)
if (process.getuid() !== 0 && !inRootlessUserns() && needsStorage(process.argv)) process.exitCode = await reexecInUserns(process.argv);
else process.exitCode = await (await import('../dist/src/cli/main.js')).main(process.argv);
