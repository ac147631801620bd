#!/usr/bin/env bash
# npm run demo: installs what is missing, makes a busybox base image locally (no network), builds examples/hello
# with skiff (rootless when run as an unprivileged user with /etc/subuid ranges), copies the result to an OCI
# layout and prints `skiff inspect` of it.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v busybox >/dev/null 2>&1 && [[ -x /bin/busybox ]] || need+=(busybox-static)
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v setfattr >/dev/null 2>&1 || need+=(attr)
command -v newuidmap >/dev/null 2>&1 || need+=(uidmap)
if ((${#need[@]})); then
  echo "demo: installing ${need[*]}" >&2
  if [[ $(id -u) -eq 0 ]]; then apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq "${need[@]}" >/dev/null; fi
fi
[[ -d node_modules ]] || npm ci --no-audit --no-fund
npx tsc -p .

work=$(mktemp -d /tmp/skiff-demo.XXXXXX)
skiff() { node bin/skiff.js --root "$work/storage" --runroot "$work/run" "$@"; }
set -x
node examples/make-busybox-image.mjs "$work/busybox"
skiff copy -q "oci:$work/busybox:busybox" containers-storage:localhost/busybox:latest
skiff build -t localhost/hello:demo examples/hello
skiff images
skiff copy -q containers-storage:localhost/hello:demo "oci:$work/hello:demo"
skiff inspect "oci:$work/hello:demo"
{ set +x; } 2>/dev/null
echo "demo: done; the store and the OCI layout are in $work" >&2
