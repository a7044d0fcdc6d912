#!/usr/bin/env bash
# Idle memory of `clawbridge serve`, for BENCHMARKS.md: each binary given is started with a fresh
# SQLite state dir, connected to a real OpenClaw gateway (installed by install-e2e.sh, no channel
# configured), left idle 3 s after /readyz answers 200, and its /proc/<pid>/status read. The
# binaries run in turn, ROUNDS times (default 5), so that page-cache and machine noise fall on all
# of them alike; the summary gives min / median / max of each (MB = 1000 of /proc's kB, as before).
#
#   scripts/idle-rss.sh target/release/clawbridge [/path/to/other/clawbridge …]
set -euo pipefail
cd "$(dirname "$0")/.."
(($# > 0)) || { echo "usage: $0 BINARY [BINARY …]" >&2; exit 2; }
rounds="${ROUNDS:-5}"
eval "$(bash scripts/install-e2e.sh --print-env)"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
work="$(mktemp -d)"
token="idle-rss-token-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
gateway_port="$(free_port)"
mkdir -p "$work/gw/home/.openclaw" "$work/gw/tmp"
chmod 700 "$work/gw/tmp"
cat >"$work/gw/home/.openclaw/openclaw.json" <<JSON
{"gateway": {"mode": "local", "bind": "loopback", "port": $gateway_port, "auth": {"mode": "token", "token": "$token"}},
 "update": {"checkOnStart": false}, "models": {"mode": "merge", "catalogRefresh": {"enabled": false}}}
JSON
gw="$work/gw"
env -i PATH="$CLAWBRIDGE_NODE_BIN_DIR:$(dirname "$CLAWBRIDGE_OPENCLAW_BIN"):/usr/bin:/bin" HOME="$gw/home" \
  OPENCLAW_HOME="$gw/home" XDG_CONFIG_HOME="$gw/home/.config" XDG_STATE_HOME="$gw/home/.local/state" \
  XDG_CACHE_HOME="$gw/home/.cache" XDG_DATA_HOME="$gw/home/.local/share" TMPDIR="$gw/tmp" XDG_RUNTIME_DIR="$gw/tmp" \
  OPENCLAW_SKIP_CHANNELS=1 OPENCLAW_DISABLE_BONJOUR=1 OPENCLAW_NO_RESPAWN=1 OPENCLAW_NO_AUTO_UPDATE=1 \
  OPENCLAW_OFFLINE=1 DO_NOT_TRACK=1 \
  "$CLAWBRIDGE_OPENCLAW_BIN" gateway run --bind loopback --port "$gateway_port" >"$gw/gateway.log" 2>&1 &
gateway_pid=$!
trap 'kill "$gateway_pid" 2>/dev/null; wait "$gateway_pid" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 600); do
  grep -q "\[gateway\].*ready" "$gw/gateway.log" 2>/dev/null && break
  sleep 0.1
done

measure() { # binary → "VmRSS RssAnon RssFile" in kB
  local state port pid
  state="$(mktemp -d -p "$work")"
  port="$(free_port)"
  env -i PATH=/usr/bin:/bin HOME="$state" CLAWBRIDGE_STATE_DIR="$state" CLAWBRIDGE_LISTEN="127.0.0.1:$port" \
    OPENCLAW_GATEWAY_URL="ws://127.0.0.1:$gateway_port" OPENCLAW_TOKEN="$token" RUST_LOG=warn \
    "$1" serve >/dev/null 2>"$state/stderr" &
  pid=$!
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { echo "$1 never became ready:" >&2; cat "$state/stderr" >&2; exit 1; }
  sleep 3
  awk '/^(VmRSS|RssAnon|RssFile):/ {printf "%s ", $2}' "/proc/$pid/status"
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
}

declare -A results
for round in $(seq 1 "$rounds"); do
  for binary in "$@"; do
    line="$(measure "$binary")"
    results["$binary"]+="$line"$'\n'
    echo "round $round  $binary  VmRSS/RssAnon/RssFile kB: $line"
  done
done
echo
for binary in "$@"; do
  printf '%s\n' "${results[$binary]}" | awk -v name="$binary" 'BEGIN { n = 0 } NF == 3 {rss[n] = $1; anon[n] = $2; file[n] = $3; n++}
    function stat(a,   i, j, t, s) { for (i = 0; i < n; i++) s[i] = a[i]
      for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (s[j] < s[i]) { t = s[i]; s[i] = s[j]; s[j] = t }
      return sprintf("%.1f / %.1f / %.1f MB", s[0] / 1000, s[int(n / 2)] / 1000, s[n - 1] / 1000) }
    END { printf "%s\n  VmRSS   %s\n  RssAnon %s\n  RssFile %s   (min / median / max of %d)\n", name, stat(rss), stat(anon), stat(file), n }'
done
