#!/usr/bin/env bash
# Runs every fuzz target (rtmp-proto's, lifeline-hls's fmp4_mux, the playback request parser) for N seconds each (default 60), one after the other on a
# single process, and prints libFuzzer's execution count per target. Needs a nightly toolchain and
# cargo-fuzz; without them it says so and exits 0, so it is safe to call anywhere. Not run by CI
# (CI replays the committed corpus on stable through `cargo test -p rtmp-proto`).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# New inputs go to a scratch corpus under the target dir, so fuzz/corpus/ only changes when you
# copy a crash or an interesting input there on purpose. Crashes land in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

secs="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(handshake chunk_reader amf0_decode command_parse session client_session fmp4_mux playback_request)
fi

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz.sh: skipped: no nightly toolchain (rustup toolchain install nightly)"
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: skipped: cargo-fuzz not installed (cargo install cargo-fuzz --locked)"
  exit 0
fi

scratch="${CARGO_TARGET_DIR:-target}/fuzz-corpus"
logs="${CARGO_TARGET_DIR:-target}/fuzz-logs"
mkdir -p "$logs"
cargo +nightly fuzz build -O -a -s none

printf '%-14s %12s %8s %10s\n' target execs seconds execs/s
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t"
  log="$logs/$t.log"
  status=ok
  cargo +nightly fuzz run -O -a -s none "$t" "$scratch/$t" "corpus/$t" -- \
    -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1 || status=CRASH
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  took=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | awk '{print $5}' | tail -1)
  runs="${runs:-?}"
  took="${took:-$secs}"
  rate="?"
  if [ "$runs" != "?" ] && [ "$took" -gt 0 ]; then rate=$((runs / took)); fi
  printf '%-14s %12s %8s %10s %s\n' "$t" "$runs" "$took" "$rate" "$status"
  if [ "$status" != ok ]; then
    echo "  see $log and fuzz/artifacts/$t/"
  fi
done
