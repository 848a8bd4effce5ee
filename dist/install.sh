#!/usr/bin/env bash
# Installs the `omen` binary for the GitHub Action (and anyone else):
#   1. the pinned release asset for this runner's OS and architecture, verified against its
#      published SHA-256 — a mismatch is an error, never an unverified install;
#   2. when no asset exists for this version or platform (or OMEN_VERSION=source), a build from
#      the action's own checkout with `cargo install --locked`.
# Environment: OMEN_VERSION (e.g. v0.1.0, or "source"), OMEN_RELEASE_BASE_URL (default: GitHub
# releases of omen-ci/omen), OMEN_INSTALL_DIR, OMEN_SOURCE_DIR (default: this checkout).
set -euo pipefail

version="${OMEN_VERSION:-source}"
base="${OMEN_RELEASE_BASE_URL:-https://github.com/omen-ci/omen/releases/download}"
dest="${OMEN_INSTALL_DIR:-${RUNNER_TEMP:-/tmp}/omen-bin}"
src="${OMEN_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
mkdir -p "$dest/bin"

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) target=x86_64-unknown-linux-gnu ;;
  Linux-aarch64 | Linux-arm64) target=aarch64-unknown-linux-gnu ;;
  Darwin-x86_64) target=x86_64-apple-darwin ;;
  Darwin-arm64 | Darwin-aarch64) target=aarch64-apple-darwin ;;
  *) target="" ;;
esac

sha256() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1; else shasum -a 256 "$1" | cut -d' ' -f1; fi
}

from_source() {
  echo "omen: building $version from source ($1)" >&2
  cargo install --locked --quiet --path "$src/crates/omen-cli" --root "$dest"
}

installed=""
# Installed earlier in this job (the setup step before the tests): reuse it.
if [ -x "$dest/bin/omen" ] && [ "$(cat "$dest/installed-version" 2>/dev/null)" = "$version" ]; then
  installed="(already installed in this job)"
elif [ "$version" != "source" ] && [ -n "$target" ]; then
  asset="omen-$version-$target.tar.gz"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  status=$(curl -sS -L --retry 3 -o "$tmp/$asset" -w '%{http_code}' "$base/$version/$asset" || echo 000)
  if [ "$status" = "200" ]; then
    curl -fsS -L --retry 3 -o "$tmp/$asset.sha256" "$base/$version/$asset.sha256"
    expected="$(cut -d' ' -f1 < "$tmp/$asset.sha256" | tr -d '[:space:]')"
    actual="$(sha256 "$tmp/$asset")"
    if [ -z "$expected" ] || [ "$expected" != "$actual" ]; then
      echo "omen: checksum mismatch for $asset (expected '$expected', got '$actual'); refusing to install it" >&2
      exit 1
    fi
    tar -xzf "$tmp/$asset" -C "$tmp"
    install -m 0755 "$tmp/omen" "$dest/bin/omen"
    installed="release $version ($target, sha256 $actual)"
  elif [ "$status" = "404" ]; then
    from_source "no release asset $asset"
    installed="source"
  else
    echo "omen: downloading $base/$version/$asset failed (HTTP $status)" >&2
    from_source "download failed"
    installed="source"
  fi
else
  from_source "${target:+version $version}${target:-no release asset for $(uname -s)-$(uname -m)}"
  installed="source"
fi

printf '%s' "$version" > "$dest/installed-version"
if [ -n "${GITHUB_PATH:-}" ]; then
  echo "$dest/bin" >> "$GITHUB_PATH"
fi
echo "omen: installed $installed at $dest/bin/omen" >&2
