#!/usr/bin/env bash
# npm run demo: installs what is missing, makes a busybox image locally, and copies it
# oci -> docker-archive -> dir -> oci-archive with skiff, printing `skiff inspect` of the result.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -x /bin/busybox ]] || ! dpkg -s busybox-static >/dev/null 2>&1; then
  echo "demo: installing busybox-static (the example image's content)" >&2
  if [[ $(id -u) -eq 0 ]]; then apt-get update -qq && apt-get install -y -qq busybox-static >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq busybox-static >/dev/null; fi
fi
[[ -d node_modules ]] || npm ci --no-audit --no-fund
npx tsc -p .

work=$(mktemp -d /tmp/skiff-demo.XXXXXX)
skiff() { node bin/skiff.js "$@"; }
set -x
node examples/make-busybox-image.mjs "$work/src"
skiff copy "oci:$work/src:busybox" "docker-archive:$work/busybox.tar:localhost/busybox:demo"
skiff copy "docker-archive:$work/busybox.tar" "dir:$work/busybox-dir"
skiff copy "dir:$work/busybox-dir" "oci-archive:$work/busybox-oci.tar:demo"
skiff inspect "oci-archive:$work/busybox-oci.tar:demo"
{ set +x; } 2>/dev/null
echo "demo: done; the images are in $work" >&2
