#!/usr/bin/env bash
# Omen's whole test suite: Rust unit tests and the end-to-end tests, which drive the real `omen`
# binary, real pytest (the pytest-omen plugin's pytester suite) and real cargo-nextest (a fixture
# crate) and real gitlab-ci-local (the GitLab component). Installs what it needs: pytest and the
# plugin into target/py, cargo-nextest if missing, gitlab-ci-local into target/node, rsync, and
# Debian's chromium (which renders the HTML report).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

venv="$root/target/py"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "pytest>=7" -e reporters/pytest-omen
export OMEN_TEST_PYTHON="$venv/bin/python"

if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi

# gitlab-ci-local runs the GitLab component for real.
bash "$root/.ci/install-gitlab-ci-local" >/dev/null
# Headless Chromium renders the HTML report.
OMEN_TEST_CHROMIUM="$(bash "$root/.ci/install-chromium")"
export OMEN_TEST_CHROMIUM

cargo nextest run --workspace --no-fail-fast "$@"
