#!/usr/bin/env bash
# Two builds of Lifeline side by side, same loads, same generator, one run, interleaved:
#   bench/ab.sh BEFORE_REF [AFTER_REF]      (AFTER_REF defaults to the working tree)
# e.g. `bench/ab.sh 6ea0281` to see what a change did to the fan-out's cost. Each build is
# compiled (release) in a throw-away worktree under /tmp; the generator is this tree's
# `lifeline-bench`. Loads: 1 publisher at ~600 kbps -> PLAYERS (default "1000 3000"),
# ROUNDS rounds (default 2), alternating before/after at every step. Prints a Markdown table
# (`lifeline-bench report`) and leaves the raw JSON lines in $AB_OUT (default /tmp/ab.jsonl).
# BEFORE_BIN / AFTER_BIN name prebuilt binaries to use instead of building the refs.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
before=${1:?usage: bench/ab.sh BEFORE_REF [AFTER_REF]}
after=${2:-}
players_list=${PLAYERS:-1000 3000}
rounds=${ROUNDS:-2}
window=${BENCH_WINDOW:-15}
out=${AB_OUT:-/tmp/ab.jsonl}

command -v ffmpeg >/dev/null || { echo "needs ffmpeg (apt-get install ffmpeg)" >&2; exit 1; }
work=$(mktemp -d /tmp/lifeline-ab.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for ref in before after; do
    [ -d "$work/$ref" ] && git -C "$root" worktree remove --force "$work/$ref" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

build() { # name ref -> path of its release binary
  if [ -z "$2" ]; then
    cargo build --release --locked -q -p lifeline >&2
    echo "${CARGO_TARGET_DIR:-$root/target}/release/lifeline"
    return
  fi
  git -C "$root" worktree add -q --detach "$work/$1" "$2" >&2
  (cd "$work/$1" && CARGO_TARGET_DIR="$work/$1/target" cargo build --release --locked -q -p lifeline >&2)
  echo "$work/$1/target/release/lifeline"
}
echo "building $before and ${after:-the working tree}" >&2
# BEFORE_BIN / AFTER_BIN: prebuilt binaries instead of building the refs.
bin_before=${BEFORE_BIN:-$(build before "$before")}
bin_after=${AFTER_BIN:-$(build after "$after")}
cargo build --release --locked -q -p lifeline-bench
gen=${CARGO_TARGET_DIR:-$root/target}/release/lifeline-bench

flv=$work/600k.flv
ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i testsrc=size=640x360:rate=30 -f lavfi -i sine=frequency=440:sample_rate=44100 \
  -t 30 -c:v libx264 -preset veryfast -tune zerolatency -b:v 500k -maxrate 500k -bufsize 1000k \
  -g 60 -pix_fmt yuv420p -c:a aac -b:a 96k -f flv "$flv"

port=19370
cat > "$work/old.toml" <<TOML
[rtmp]
listen = "127.0.0.1:$port"
[limits]
max_connections_per_ip = 20000
max_handshakes_per_second = 20000
handshake_burst = 20000
[http]
enabled = false
TOML
# Builds that know [playback] get it switched off too (only RTMP is measured).
{ cat "$work/old.toml"; printf '[playback]\nenabled = false\n'; } > "$work/new.toml"

: > "$out"
n=0
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for round in $(seq "$rounds"); do
  for players in $players_list; do
    for which in before after; do
      bin=$bin_before; [ "$which" = after ] && bin=$bin_after
      config=$work/old.toml
      "$bin" config | grep -q '^\[playback\]' && config=$work/new.toml
      RUST_LOG=warn "$bin" serve --config "$config" 2>>"$work/server.log" &
      pid=$!
      pids+=("$pid")
      for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
      n=$((n + 1))
      echo "== round $round, $which, $players players" >&2
      "$gen" load --json --server "$which" --url "rtmp://127.0.0.1:$port/live/ab$n" --flv "$flv" \
        --publishers 1 --players "$players" --duration "$window" --server-pid "$pid" >> "$out" \
        || echo "   load failed" >&2
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    done
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$gen" report "$out"
