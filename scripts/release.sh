#!/usr/bin/env bash
# Release binaries into dist/: each binary without its debug info (symbol names kept, so a panic's
# backtrace still names functions), the debug info beside it as <binary>.debug (linked with
# .gnu_debuglink: gdb and addr2line find it when it sits next to the binary or in
# /usr/lib/debug), and SHA256SUMS. The release profile is fat LTO with one codegen unit.
#
#   scripts/release.sh            # then: ls -l dist/
set -euo pipefail
cd "$(dirname "$0")/.."
bins=(clawbridge kapso-whatsapp-bridge kapso-whatsapp-cli kapso-whatsapp-poller)
target="${CARGO_TARGET_DIR:-target}/release"
cargo build --release --locked -p clawbridge --bins
rm -rf dist && mkdir -p dist
for bin in "${bins[@]}"; do
  objcopy --only-keep-debug "$target/$bin" "dist/$bin.debug"
  objcopy --strip-debug --add-gnu-debuglink="dist/$bin.debug" "$target/$bin" "dist/$bin"
done
(cd dist && sha256sum "${bins[@]}" "${bins[@]/%/.debug}" >SHA256SUMS)
ls -l dist
