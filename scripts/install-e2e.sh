#!/usr/bin/env bash
# Installs what the real-gateway end-to-end tests need (reference/openclaw-gateway.md §4.1):
#   <cache>/node-24.21.0/      npm package node@24.21.0 (ships the Node 24 binary; openclaw needs >=24.16)
#   <cache>/openclaw-2026.9.6/ npm package openclaw@2026.9.6, installed with that Node first on PATH
# where <cache> = ${CLAWBRIDGE_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/clawbridge}.
#
# Needs only the system `npm` (any version). Idempotent and silent when already installed. Each part
# is installed into a temporary sibling directory and renamed into place, so an interrupted run never
# leaves a half-installed directory that looks complete.
#
# clawbridge-testkit finds the default cache location by itself. After installing (or with
# --print-env) the script prints `export` lines for the variables the harness reads, needed only when
# the tests run with a different HOME/XDG_CACHE_HOME than the install did:
#   CLAWBRIDGE_NODE_BIN_DIR   directory containing the Node 24 `node` binary
#   CLAWBRIDGE_OPENCLAW_BIN   path of the `openclaw` CLI
# CI should also set CLAWBRIDGE_REQUIRE_E2E=1 so that the end-to-end tests fail instead of skipping.
set -euo pipefail

NODE_VERSION=24.21.0
OPENCLAW_VERSION=2026.9.6

cache="${CLAWBRIDGE_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/clawbridge}"
node_dir="$cache/node-$NODE_VERSION"
openclaw_dir="$cache/openclaw-$OPENCLAW_VERSION"
node_bin_dir="$node_dir/node_modules/node/bin"
openclaw_bin="$openclaw_dir/node_modules/.bin/openclaw"

node_ok() {
  [[ -x "$node_bin_dir/node" ]] && [[ "$("$node_bin_dir/node" --version 2>/dev/null)" == "v$NODE_VERSION" ]]
}

openclaw_ok() {
  [[ -x "$openclaw_bin" ]] && PATH="$node_bin_dir:$PATH" "$openclaw_bin" --version >/dev/null 2>&1
}

# npm_install_into <final dir> <package spec>: installs into a temp dir next to <final dir>, then
# renames it into place (replacing a broken previous install). The npm log is kept on failure.
npm_install_into() {
  local final=$1 spec=$2 tmp
  tmp=$(mktemp -d "$final.tmp.XXXXXX")
  echo "install-e2e: installing $spec into $final" >&2
  if ! (cd "$tmp" && npm init -y && npm install --no-audit --no-fund "$spec") >"$tmp.log" 2>&1; then
    echo "install-e2e: npm install $spec failed; log: $tmp.log" >&2
    tail -n 30 "$tmp.log" >&2
    rm -rf "$tmp"
    return 1
  fi
  rm -rf "$final" "$tmp.log"
  mv "$tmp" "$final"
}

if ! command -v npm >/dev/null 2>&1; then
  echo "install-e2e: npm not found; install Node.js/npm (any version) first" >&2
  exit 1
fi
mkdir -p "$cache"

if ! node_ok; then
  npm_install_into "$node_dir" "node@$NODE_VERSION"
  node_ok || { echo "install-e2e: $node_bin_dir/node does not report v$NODE_VERSION" >&2; exit 1; }
  installed=1
fi

if ! openclaw_ok; then
  # openclaw's install scripts and engines check must see Node 24, not the system Node.
  (export PATH="$node_bin_dir:$PATH" && npm_install_into "$openclaw_dir" "openclaw@$OPENCLAW_VERSION")
  openclaw_ok || { echo "install-e2e: $openclaw_bin --version failed" >&2; exit 1; }
  installed=1
fi

if [[ -n "${installed:-}" || "${1:-}" == "--print-env" ]]; then
  [[ -n "${installed:-}" ]] && echo "install-e2e: done; the tests find $cache by themselves" >&2
  echo "export CLAWBRIDGE_NODE_BIN_DIR='$node_bin_dir'"
  echo "export CLAWBRIDGE_OPENCLAW_BIN='$openclaw_bin'"
fi
