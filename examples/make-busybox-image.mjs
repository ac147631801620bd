#!/usr/bin/env node
// Makes a small example image locally from Debian's busybox-static: `oci:DIR:busybox`. No network.
import { makeBusyboxLayout } from '../dist/test/kit/fixtures.js';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: make-busybox-image.mjs DIR');
  process.exit(1);
}
const digest = await makeBusyboxLayout(dir);
console.log(digest);
