#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests, the store conformance
# suite on SQLite and PostgreSQL, and the end-to-end tests against a real OpenClaw gateway.
# Installs what it needs (Node 24 and openclaw from npm, cached under ~/.cache/clawbridge).
set -euo pipefail
cd "$(dirname "$0")/.."

export CLAWBRIDGE_TEST_DATABASE_URL="${CLAWBRIDGE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
# Never skip the real-gateway tests here: a missing install is a failure, not a pass.
export CLAWBRIDGE_REQUIRE_E2E="${CLAWBRIDGE_REQUIRE_E2E:-1}"

echo "== installing the end-to-end prerequisites (Node 24, openclaw@2026.9.6)"
bash scripts/install-e2e.sh

echo "== browser tests: Debian's chromium, chromium-driver and a CJK font"
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi "noto.*cjk"; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-noto-cjk >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-noto-cjk >/dev/null; }
  else
    echo "chromium, chromium-driver or fonts-noto-cjk is missing: install them (apt-get install chromium chromium-driver fonts-noto-cjk)" >&2
    exit 1
  fi
fi
# A missing browser is a failure here, not a skipped test.
export CLAWBRIDGE_REQUIRE_CHROMIUM="${CLAWBRIDGE_REQUIRE_CHROMIUM:-1}"

echo "== checking PostgreSQL at ${CLAWBRIDGE_TEST_DATABASE_URL%%\?*}"
if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -d "$CLAWBRIDGE_TEST_DATABASE_URL"; then
  echo "PostgreSQL does not answer at $CLAWBRIDGE_TEST_DATABASE_URL." >&2
  echo "Start it, or point CLAWBRIDGE_TEST_DATABASE_URL at one (CLAWBRIDGE_SKIP_POSTGRES=1 skips those tests)." >&2
  exit 1
fi

echo "== formatting and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== one TLS crypto provider (aws-lc-rs), no OpenSSL"
for crate in ring openssl-sys native-tls; do
  if cargo tree --workspace --locked -e normal,build,dev -i "$crate" 2>/dev/null | grep -q "^$crate v"; then
    echo "error: $crate is in the dependency tree (see reference/rust-stack.md §2.2)" >&2
    exit 1
  fi
done

echo "== tests"
cargo test --workspace --locked --no-fail-fast

echo "== deployment files (systemd units, alert rules, dashboard)"
bash scripts/check-deploy.sh
