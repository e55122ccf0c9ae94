#!/usr/bin/env bash
# The browser libraries of the agent desk: JsSIP (the in-page softphone's SIP stack) from the npm
# registry, pinned by package-lock.json, bundled once into one IIFE script that the API serves at
# /pages/vendor/jssip.min.js (never from a CDN). The jssip package has no browser build, hence
# esbuild. Re-runs are free: nothing happens unless package-lock.json changed or the bundle is gone.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=build/web/jssip.min.js
STAMP=node_modules/.helpline-lock.sha256

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "==> apt-get install nodejs npm (Debian's)"
  if [[ $(id -u) -ne 0 ]]; then
    echo "need root to install nodejs and npm (sudo apt-get install nodejs npm)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

lock=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -f $STAMP || $(cat "$STAMP") != "$lock" ]]; then
  echo "==> npm ci (jssip, esbuild)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock" > "$STAMP"
  rm -f "$OUT"
fi
if [[ ! -s $OUT ]]; then
  echo "==> bundling JsSIP into $OUT"
  mkdir -p "$(dirname "$OUT")"
  node_modules/.bin/esbuild node_modules/jssip/lib/JsSIP.js --bundle --minify --format=iife \
    --global-name=JsSIP --log-level=warning --outfile="$OUT.tmp"
  mv "$OUT.tmp" "$OUT"
fi
