#!/usr/bin/env node
'use strict';
// The skiff command. CommonJS (bin/package.json): Node starts a CommonJS entry ~5 ms faster than an ES module.
const fs = require('node:fs');
const path = require('node:path');
const v8 = require('node:v8');
const vm = require('node:vm');
const { createRequire, wrap } = require('node:module');

// undici parses HTTP with llhttp compiled to WebAssembly; V8's optimizing tier compiles it again in the background
// and the process waits for that at exit (~50 ms and ~35 MiB on every registry command). The baseline compiler alone
// parses HTTP just as well for skiff's traffic. (Set before any code is compiled: the code cache below records it.)
v8.setFlagsFromString('--liftoff-only');
// A command lives for a fraction of a second to a few seconds: V8's optimizing compiler, run on a background thread
// for every function that gets warm, took ~20 % of a registry -> registry copy's CPU, on the cores the pipeline
// needs. Four times the default budget before a function is optimized leaves only the really hot ones to it:
// alternating, median of 7-9, docker-archive -> oci 0.43 -> 0.39 s (CPU 0.66 -> 0.60 s), containers-storage ->
// oci 0.48 -> 0.45 s, oci -> docker-archive 0.34 -> 0.31 s, zstd 0.36 -> 0.34 s, pull CPU 0.28 -> 0.24 s; a 1 GiB
// layer the same (its hot code is optimized all the same). (--no-opt instead: docker-archive -> oci 0.45 -> 0.68 s.)
v8.setFlagsFromString('--interrupt-budget=270336');
// The CLI paces garbage collection by bytes streamed (src/core/gc-pace.ts). Set here, before anything is compiled:
// V8 accepts a code cache only under the flags it was made with.
v8.setFlagsFromString('--expose-gc');

// The thread pool does skiff's file I/O and (de)compression: gzip is compressed in parallel blocks, up to four per
// layer, and with the default four threads file writes waited behind them (containers-storage -> oci 0.70 s, with
// 16 threads 0.64 s). (libuv reads this when the pool first starts.)
process.env.UV_THREADPOOL_SIZE ??= '16';

/**
 * The CLI from dist/skiff.cjs, one file made by `npm run build` (scripts/bundle.mjs), compiled with the V8 code
 * cache next to it: loading ~80 modules one by one and compiling them took ~45 ms of every command's start.
 * A cache V8 rejects (another Node version) only costs the compile. Without the bundle, the compiled modules.
 */
function loadCli() {
  const file = path.join(__dirname, '..', 'dist', 'skiff.cjs');
  let source;
  try {
    // tsc alone (not `npm run build`) leaves the bundle older than the modules: then those run, not stale code.
    if (fs.statSync(file).mtimeMs < fs.statSync(path.join(__dirname, '..', 'dist', 'src', 'cli', 'entry.js')).mtimeMs) return undefined;
    // (All ASCII, which scripts/bundle.mjs checks: latin1 decodes it as utf8 would, in half the time.)
    source = fs.readFileSync(file, 'latin1');
  } catch {
    return undefined;
  }
  let cachedData;
  try {
    cachedData = fs.readFileSync(`${file}.cache`);
  } catch {}
  const script = new vm.Script(wrap(source), { filename: file, cachedData });
  const mod = { exports: {} };
  script.runInThisContext()(mod.exports, createRequire(file), mod, file, path.dirname(file));
  return { cli: mod.exports, script, file };
}

async function run() {
  const loaded = loadCli();
  const cli = loaded?.cli ?? (await import('../dist/src/cli/entry.js'));
  if (process.env.SKIFF_CODE_CACHE_CHECK) {
    // For the tests: is the CLI running from the bundle, and did V8 take its cache?
    process.stdout.write(`${!loaded ? 'no bundle' : loaded.script.cachedDataRejected === false ? 'cache accepted' : 'cache rejected'}\n`);
    return 0;
  }
  const train = process.env.SKIFF_CODE_CACHE_TRAIN;
  if (train && loaded) {
    // scripts/bundle.mjs: run these command lines, then save the code V8 compiled for them as the cache.
    for (const argv of JSON.parse(train)) await cli.main([process.argv[0], process.argv[1], ...argv]);
    fs.writeFileSync(`${loaded.file}.cache`, loaded.script.createCachedData());
    return 0;
  }
  // An unprivileged user's store holds files owned by its subordinate IDs: work on it from inside a user
  // namespace, as rootless podman does. (Decided before the CLI runs: the outer process only waits.)
  if (process.getuid() !== 0 && !cli.inRootlessUserns() && cli.needsStorage(process.argv)) return cli.reexecInUserns(process.argv);
  return cli.main(process.argv);
}

// Node exits when nothing is left to wait for, even if the command never finished (a promise nobody will settle):
// that must not look like success.
let finished = false;
process.on('exit', (code) => {
  if (finished || code !== 0) return;
  process.stderr.write('skiff: internal error: the command stopped before it finished (an operation was left waiting)\n');
  process.exitCode = 70;
});
run().then((code) => {
  finished = true;
  process.exitCode = code;
});
