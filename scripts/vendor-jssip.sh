#!/usr/bin/env bash
# Vendor the browser SIP stack (JsSIP) for the /agent and /field softphone: run by a developer when upgrading,
# never at run time (the pages load the committed file; no CDN, no build step to serve them).
#
#   scripts/vendor-jssip.sh 3.13.8
#
# JsSIP's npm package ships CommonJS sources only (no dist/ since 3.11), so this runs JsSIP's own release build
# (its npm-scripts.mjs `build`: esbuild, one IIFE exposing window.JsSIP, es2015) on the exact published version,
# and writes ivr/web/static/vendor/jssip-<version>.min.js, its LICENSE (JsSIP and the bundled modules) and VERSION.
set -euo pipefail

VERSION="${1:?usage: scripts/vendor-jssip.sh <jssip version, e.g. 3.13.8>}"
ESBUILD="${ESBUILD_VERSION:-0.27}"
ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT_DIR/ivr/web/static/vendor"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

cd "$WORK"
npm init -y >/dev/null
npm install --no-audit --no-fund --ignore-scripts=false "jssip@$VERSION" "esbuild@$ESBUILD" >/dev/null
cat > build.mjs <<'JS'
import esbuild from 'esbuild';
import fs from 'node:fs';
const pkg = JSON.parse(fs.readFileSync('node_modules/jssip/package.json', 'utf8'));
await esbuild.build({
  entryPoints: ['node_modules/jssip/lib/JsSIP.js'], outfile: process.argv[2], bundle: true, minify: true,
  sourcemap: false, format: 'iife', globalName: 'JsSIP', platform: 'browser', target: ['es2015'],
  supported: { 'template-literal': false }, legalComments: 'inline',
  banner: { js: `/*\n * JsSIP ${pkg.version}\n * ${pkg.description}\n * Homepage: ${pkg.homepage}\n`
    + ` * License: ${pkg.license} (see LICENSE next to this file)\n */` },
});
JS
rm -f "$OUT"/jssip-*.min.js
node build.mjs "$OUT/jssip-$VERSION.min.js"
{
  echo "JsSIP $VERSION (https://jssip.net, npm: jssip) and the modules bundled into jssip-$VERSION.min.js."
  for dep in jssip debug ms events sdp-transform; do
    dir="node_modules/$dep"
    echo; echo "=============================================================================="
    echo "$dep $(node -p "require('./$dir/package.json').version")"
    echo "=============================================================================="
    find "$dir" -maxdepth 1 -iname 'license*' -exec cat {} +
  done
} > "$OUT/LICENSE"
echo "$VERSION" > "$OUT/VERSION"
sha256sum "$OUT/jssip-$VERSION.min.js" | cut -d' ' -f1 > "$OUT/SHA256"
echo "vendored JsSIP $VERSION into $OUT"
