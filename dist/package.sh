#!/usr/bin/env bash
# Packages a built `omen` binary as a release asset plus its SHA-256 file, in the layout
# dist/install.sh expects: omen-<version>-<target>.tar.gz and omen-<version>-<target>.tar.gz.sha256.
# Usage: dist/package.sh VERSION TARGET PATH/TO/omen OUTDIR
set -euo pipefail
version="$1" target="$2" binary="$3" out="$4"
asset="omen-$version-$target.tar.gz"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$binary" "$work/omen"
mkdir -p "$out"
tar -czf "$out/$asset" -C "$work" omen
( cd "$out" && if command -v sha256sum >/dev/null; then sha256sum "$asset"; else shasum -a 256 "$asset"; fi ) > "$out/$asset.sha256"
echo "$out/$asset"
