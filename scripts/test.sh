#!/usr/bin/env bash
# Lifeline's whole test suite: installs what the tests use when missing (as root), then the
# format check, clippy with warnings denied, and every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
# The cluster tests (crates/lifeline/tests/cluster.rs) start their own etcd.
command -v etcd >/dev/null || need+=(etcd-server)
command -v rtmpdump >/dev/null || need+=(rtmpdump)
command -v nft >/dev/null || need+=(nftables)
command -v ping >/dev/null || need+=(iputils-ping)
command -v ip >/dev/null || need+=(iproute2)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
  else
    echo "not root, cannot install: ${need[*]}; the tests that need them print that they are skipped"
  fi
fi

# Every skipped test appends its reason here (testkit::skip); the summary below shows them, and
# under LIFELINE_REQUIRE_ROOT=1 (set by .ci/run) a skip fails its test instead.
export LIFELINE_SKIP_LOG="${LIFELINE_SKIP_LOG:-$(mktemp -t lifeline-skips.XXXXXX)}"
: >"$LIFELINE_SKIP_LOG"
summary() {
  local n
  n=$(wc -l <"$LIFELINE_SKIP_LOG")
  if [ "$n" -gt 0 ]; then
    echo "== $n test(s) skipped:"
    sort "$LIFELINE_SKIP_LOG"
  else
    echo "== no test skipped"
  fi
  rm -f "$LIFELINE_SKIP_LOG"
}
trap summary EXIT

# No module of a crate may import another that imports it back (a one-way graph).
python3 scripts/module-cycles.py .
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
# Benchmarks in smoke mode (each bench runs once, nothing timed) so they cannot rot.
cargo bench --workspace --locked --bench '*' -- --test
# bench/rtmps.sh in smoke mode (5 RTMP and 5 RTMPS players, 2 s windows, debug binaries; ~10 s)
# so the script and the generator's TLS client cannot rot.
cargo build --locked -q -p lifeline -p lifeline-bench
target=${CARGO_TARGET_DIR:-target}
RTMPS_SMOKE=1 LIFELINE_BIN="$target/debug/lifeline" BENCH_BIN="$target/debug/lifeline-bench" bash bench/rtmps.sh
