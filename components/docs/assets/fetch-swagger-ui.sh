#!/usr/bin/env bash
# Re-fetches the vendored Swagger UI: npm's swagger-ui-dist at VERSION, into swagger-ui-VERSION/
# beside this script. For upgrades and audits only; builds never download anything (build.rs
# checks the committed files against SHA256SUMS instead).
#
# The tarball must have the registry's integrity recorded below, and each extracted file the
# SHA-256 in SHA256SUMS. To upgrade: set VERSION and INTEGRITY (`npm view
# swagger-ui-dist@<version> dist.integrity`), run this with --update-sums (which rewrites
# SHA256SUMS from the verified tarball), delete the old folder, and change the version in
# ../src/lib.rs (`swagger_ui!`) and ../page/index.html.
#
# Needs npm (`npm pack` downloads the tarball and runs none of the package's scripts), openssl.
set -euo pipefail

VERSION=5.35.0
INTEGRITY='sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ=='
# The browser bundle, its stylesheet and icons (served), and the licence texts (kept with them).
FILES=(swagger-ui-bundle.js swagger-ui.css favicon-32x32.png favicon-16x16.png
    LICENSE NOTICE swagger-ui-bundle.js.LICENSE.txt)

update_sums=false
case "${1:-}" in
    --update-sums) update_sums=true ;;
    "") ;;
    *) echo "usage: $0 [--update-sums]" >&2; exit 2 ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
folder="swagger-ui-$VERSION"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "swagger-ui-dist@$VERSION" >/dev/null)
tarball="$work/swagger-ui-dist-$VERSION.tgz"
actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [ "$actual" != "$INTEGRITY" ]; then
    echo "swagger-ui-dist-$VERSION.tgz has integrity $actual, not the pinned $INTEGRITY" >&2
    exit 1
fi

# shellcheck disable=SC2046
tar -xzf "$tarball" -C "$work" $(printf 'package/%s ' "${FILES[@]}")
rm -rf "${here:?}/$folder"
mkdir -p "$here/$folder"
for file in "${FILES[@]}"; do
    cp "$work/package/$file" "$here/$folder/$file"
done

cd "$here"
if $update_sums; then
    # shellcheck disable=SC2046
    sha256sum $(printf "$folder/%s " "${FILES[@]}") >SHA256SUMS
    echo "SHA256SUMS rewritten for swagger-ui-dist $VERSION: review and commit it"
fi
sha256sum --quiet -c SHA256SUMS
echo "swagger-ui-dist $VERSION: ${#FILES[@]} files verified into $folder/"
