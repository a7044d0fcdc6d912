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

if ! command -v promtool >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "== installing promtool (Debian package prometheus; the service is not started)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
fi
if command -v promtool >/dev/null 2>&1; then
  promtool check rules deploy/prometheus/alerts.yml >/dev/null
  promtool test rules deploy/prometheus/alerts.test.yml >/dev/null
  echo "ok    deploy/prometheus/alerts.yml (promtool check + test rules)"
else
  echo "error: promtool is not installed and cannot be (not root, or no apt-get): install Debian's prometheus package" >&2
  exit 1
fi

# The dashboard is JSON, and every metric it or the alerts name is one the code records.
python3 - <<'PY'
import json, pathlib, re, sys
dashboard = json.loads(pathlib.Path("deploy/grafana/clawbridge.json").read_text())
exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
text = "\n".join(exprs) + pathlib.Path("deploy/prometheus/alerts.yml").read_text()
names = {re.sub(r"_(bucket|count|sum)$", "", n) for n in re.findall(r"\bclawbridge_[a-z_]+", text)}
source = "\n".join(p.read_text() for p in pathlib.Path("crates").glob("*/src/**/*.rs"))
# Names the code builds from parts: clawbridge_{queue}_depth.
built = {"clawbridge_inbox_depth", "clawbridge_outbox_depth"} if "clawbridge_{queue}_depth" in source else set()
missing = sorted(n for n in names if f'"{n}"' not in source and n not in built)
if missing:
    sys.exit(f"deploy/: metrics no code records: {', '.join(missing)}")
print(f"ok    deploy/grafana/clawbridge.json ({len(dashboard['panels'])} panels; {len(names)} metrics, all recorded by the code)")
PY
