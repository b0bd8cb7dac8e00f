#!/usr/bin/env bash
# Re-fetches the vendored Chart.js from the npm registry and checks it against the
# pinned integrity before replacing chart.umd.min.js and LICENSE.md here. Only the
# minified UMD build is kept: one self-contained file (it bundles its one
# dependency, @kurkle/color, MIT, whose banner it keeps) that the report inlines.
#
#   report/assets/vendor.sh            # the pinned version: the files must come out identical
#   VERSION=4.x.y INTEGRITY=sha512-... report/assets/vendor.sh   # an upgrade: pin both below afterwards
set -euo pipefail

VERSION=${VERSION:-4.6.1}
INTEGRITY=${INTEGRITY:-sha512-hJyniucsFmq//EvXYvJ6c6mahPoI3kaxdjVH8awTaJ/fDNWeSqqqArixMJWkWNN6fcYvPU3HneSANFNYtRi61g==}

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

published=$(npm view "chart.js@$VERSION" dist.integrity)
if [[ $published != "$INTEGRITY" ]]; then
  echo "vendor: the registry publishes $published for chart.js@$VERSION, pinned $INTEGRITY" >&2
  exit 1
fi
npm pack --silent "chart.js@$VERSION" >/dev/null
tarball=chart.js-$VERSION.tgz
got="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [[ $got != "$INTEGRITY" ]]; then
  echo "vendor: $tarball hashes to $got, pinned $INTEGRITY" >&2
  exit 1
fi
tar xzf "$tarball" package/dist/chart.umd.min.js package/LICENSE.md
if grep -qi '</script' package/dist/chart.umd.min.js; then
  echo "vendor: chart.umd.min.js contains </script: it cannot be inlined in the report" >&2
  exit 1
fi
cp package/dist/chart.umd.min.js "$here/chart.umd.min.js"
cp package/LICENSE.md "$here/LICENSE.md"
echo "$VERSION $INTEGRITY" >"$here/VERSION"
echo "vendor: chart.js $VERSION ($INTEGRITY) into $here"
