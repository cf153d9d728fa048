#!/usr/bin/env bash
# Refresh the vendored Graphviz-as-WebAssembly build that the HTML explorer lays graphs out with.
#
#   tools/vendor_viz.sh            # the pinned version below
#   tools/vendor_viz.sh 3.32.0     # another version (then update VERSION here and the CHANGELOG)
#
# It downloads @viz-js/viz from the npm registry with `npm pack`, checks the tarball against the
# registry's sha512 integrity, and copies its single-file UMD build (JavaScript with the WASM
# inlined as base64, so the page needs no fetch) to graphviz_grad/render/assets/viz-global.js.
set -euo pipefail

VERSION="${1:-3.31.0}"
HERE="$(cd "$(dirname "$0")/.." && pwd)"
ASSETS="$HERE/graphviz_grad/render/assets"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

cd "$WORK"
npm pack --silent "@viz-js/viz@$VERSION" >/dev/null
TARBALL="viz-js-viz-$VERSION.tgz"
WANT="$(npm view "@viz-js/viz@$VERSION" dist.integrity)"
GOT="sha512-$(openssl dgst -sha512 -binary "$TARBALL" | base64 -w0)"
if [ "$WANT" != "$GOT" ]; then
  echo "integrity mismatch for $TARBALL: registry says $WANT, file is $GOT" >&2
  exit 1
fi
tar xzf "$TARBALL"
cp package/dist/viz-global.js "$ASSETS/viz-global.js"
printf '%s\n' "@viz-js/viz $VERSION" "$WANT" > "$ASSETS/viz-version.txt"
echo "vendored @viz-js/viz $VERSION ($(wc -c < "$ASSETS/viz-global.js") bytes) into $ASSETS"
