#!/usr/bin/env bash
# e2e-setup.sh — what the browser test needs, installed at test time:
# Debian's chromium, PrivateID's web SDK (proprietary: installed from npm,
# never committed) bundled with esbuild, and public-domain face images from
# Debian's python3-skimage. Output: e2e/web/dist/. Idempotent.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
web="$root/e2e/web"
dist="$web/dist"

# shellcheck source=/dev/null
source "$root/scripts/apt.sh"

command -v chromium >/dev/null || { echo "e2e: installing chromium from Debian" >&2; apt_install chromium; }
command -v npm >/dev/null || { echo "e2e: installing npm from Debian" >&2; apt_install nodejs npm; }

mkdir -p "$dist"
if [ ! -d "$web/node_modules/@privateid/cryptonets-web-sdk-alpha" ] || [ ! -x "$web/node_modules/.bin/esbuild" ]; then
  echo "e2e: installing the PrivateID web SDK and esbuild from npm" >&2
  (cd "$web" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi
sdk="$web/node_modules/@privateid/cryptonets-web-sdk-alpha"
(cd "$web" && npm run --silent build)
cp "$web/index.html" "$dist/"
rm -rf "$dist/wasm" "$dist/workers"
cp -R "$sdk/wasm" "$sdk/workers" "$dist/"

if [ ! -f "$dist/face.png" ]; then
  echo "e2e: extracting public-domain images from Debian's python3-skimage" >&2
  tmp=$(mktemp -d)
  apt_update
  (cd "$tmp" && apt-get download python3-skimage >/dev/null 2>&1) || { echo "e2e: cannot download python3-skimage" >&2; exit 1; }
  dpkg -x "$tmp"/python3-skimage_*.deb "$tmp/x"
  data=$(find "$tmp/x" -type d -path '*skimage/data' | head -1)
  cp "$data/astronaut.png" "$dist/face.png"   # NASA portrait of Eileen Collins (public domain)
  cp "$data/camera.png" "$dist/stranger.png"  # the cameraman (public domain): a clearly different face
  rm -rf "$tmp"
fi
echo "e2e: ready in $dist" >&2
