#!/usr/bin/env bash
# Installs the end-to-end toolchain if needed (scripts/install-e2e.sh), then runs the testkit's
# real-gateway smoke test with CLAWBRIDGE_REQUIRE_E2E=1 so that it fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-e2e.sh >/dev/null
CLAWBRIDGE_REQUIRE_E2E=1 exec cargo test -p clawbridge-testkit -- real_gateway_smoke --nocapture
