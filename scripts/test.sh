#!/usr/bin/env bash
# Lifeline's whole test suite: installs what the tests use when missing (as root), then the
# format check, clippy with warnings denied, and every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v rtmpdump >/dev/null || need+=(rtmpdump)
command -v nft >/dev/null || need+=(nftables)
command -v ping >/dev/null || need+=(iputils-ping)
command -v ip >/dev/null || need+=(iproute2)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
  else
    echo "not root, cannot install: ${need[*]}; the tests that need them print that they are skipped"
  fi
fi

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
# Benchmarks in smoke mode (each bench runs once, nothing timed) so they cannot rot.
cargo bench --workspace --locked --bench '*' -- --test
