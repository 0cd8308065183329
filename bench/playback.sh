#!/usr/bin/env bash
# Lifeline's HTTP playback beside its RTMP fan-out, same loads, same load generator, one run:
#   1 publisher at ~600 kbps -> RTMP 1000, HTTP-FLV 1000, RTMP 3000, HTTP-FLV 3000 players
#   (interleaved, BENCH_ROUNDS times, so each HTTP-FLV/RTMP ratio comes from neighbouring
#   runs), then 1000 low-latency HLS viewers (blocking reload + part, one connection each),
#   then the same HLS load again under tcpdump to measure the blocking answers on the wire.
# Every load gets a fresh server process (so its RSS is its own). Server CPU and RSS come from
# /proc over each measurement window; the generator's own CPU is reported beside them.
# Writes bench/PLAYBACK.md (tables; the notes after the "<!-- notes -->" line of the existing
# file are kept) and bench/playback.jsonl (raw figures).
#
# Env: BENCH_WINDOW (s, default 15), BENCH_ROUNDS (default 3), BENCH_COUNTS ("1000 3000"),
#      BENCH_HLS (HLS viewers, default 1000), BENCH_WIRE (1: the tcpdump run, default 1),
#      BENCH_WAIT_IDLE_MAX (s to wait for a 1-min load average below 1.0 first, default 0),
#      BENCH_PORT (RTMP port, default 19370; playback is the next one),
#      BENCH_PROFILE (a directory: perf record -g the server during the HTTP-FLV and RTMP
#      loads at the largest count, reports written there), LIFELINE_BIN (a prebuilt server).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
window=${BENCH_WINDOW:-15}
rounds=${BENCH_ROUNDS:-3}
counts=${BENCH_COUNTS:-1000 3000}
hls_viewers=${BENCH_HLS:-1000}
wire=${BENCH_WIRE:-1}
wait_idle_max=${BENCH_WAIT_IDLE_MAX:-0}
rtmp_port=${BENCH_PORT:-19370}
play_port=$((rtmp_port + 1))
profile_dir=${BENCH_PROFILE:-}
started_at=$(date +%s)

need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
if [ "$wire" = 1 ]; then command -v tcpdump >/dev/null || need+=(tcpdump); fi
if [ -n "$profile_dir" ]; then command -v perf >/dev/null || need+=(linux-perf); fi
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "need root to install: ${need[*]}" >&2; exit 1; }
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
fi

target=${CARGO_TARGET_DIR:-$root/target}
if [ -n "${LIFELINE_BIN:-}" ]; then
  cargo build --release --locked -p lifeline-bench
  lifeline=$LIFELINE_BIN
else
  cargo build --release --locked -p lifeline -p lifeline-bench
  lifeline=$target/release/lifeline
fi
gen=$target/release/lifeline-bench

work=$(mktemp -d /tmp/lifeline-playback.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# The generator and the server each hold up to 3000+ sockets.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

flv=$work/600k.flv
echo "making a 30 s, ~600 kbps test stream"
ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i testsrc=size=640x360:rate=30 -f lavfi -i sine=frequency=440:sample_rate=44100 \
  -t 30 -c:v libx264 -preset veryfast -tune zerolatency -b:v 500k -maxrate 500k -bufsize 1000k \
  -g 60 -pix_fmt yuv420p -c:a aac -b:a 96k -f flv "$flv"

if [ "$wait_idle_max" -gt 0 ]; then
  waited=0
  while awk '{exit !($1 >= 1.0)}' /proc/loadavg && [ "$waited" -lt "$wait_idle_max" ]; do
    echo "load average $(cut -d' ' -f1-3 /proc/loadavg): waiting for < 1.0"; sleep 30; waited=$((waited + 30))
  done
fi
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

cat > "$work/lifeline.toml" <<TOML
[rtmp]
listen = "127.0.0.1:$rtmp_port"
# Every load-generator connection comes from 127.0.0.1: lift the per-address and handshake-rate
# limits (1000 per address, 1000/s by default), which exist for the internet, not for loopback.
[limits]
max_connections_per_ip = 20000
max_handshakes_per_second = 20000
handshake_burst = 20000
[http]
enabled = false
[playback]
listen = "127.0.0.1:$play_port"
TOML

server_pid=
start_server() {
  RUST_LOG=warn "$lifeline" serve --config "$work/lifeline.toml" 2>>"$work/lifeline.log" &
  server_pid=$!
  pids+=("$server_pid")
  wait_port "$rtmp_port"
  wait_port "$play_port"
}

stop_server() {
  kill "$server_pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$server_pid" 2>/dev/null || true
}

wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "server did not listen on $1" >&2
  exit 1
}

results=$root/bench/playback.jsonl
: > "$results"
n=0
load() { # kind players [perf-name]
  n=$((n + 1))
  start_server
  local avg perf_pid=
  avg=$(cut -d' ' -f1-3 /proc/loadavg)
  echo "== $1: $2 viewer(s) (load average $avg)"
  if [ -n "${3:-}" ]; then
    perf record -g -F 499 -p "$server_pid" -o "$profile_dir/$3.data" 2>>"$work/perf.log" &
    perf_pid=$!
    pids+=("$perf_pid")
  fi
  local line
  line=$("$gen" load --json --server lifeline --url "rtmp://127.0.0.1:$rtmp_port/live/pb$n" \
    --playback "127.0.0.1:$play_port" --player-kind "$1" --flv "$flv" \
    --players "$2" --duration "$window" --server-pid "$server_pid") || {
    echo "   load failed"
    line="{\"mode\":\"load\",\"server\":\"lifeline\",\"player_kind\":\"$1\",\"publishers\":1,\"players_per_stream\":$2,\"players\":$2,\"kept_up\":0,\"kept_up_pct\":0}"; }
  if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
  fi
  echo "${line%\}},\"loadavg\":\"$avg\"}" >> "$results"
  echo "   $(echo "$line" | grep -o '"kept_up_pct":[0-9.]*'), $(echo "$line" | grep -o '"server_cpu_pct":[0-9.]*'), $(echo "$line" | grep -o '"server_cpu_pct_per_gbps":[0-9.]*')"
  stop_server
}

[ -n "$profile_dir" ] && mkdir -p "$profile_dir"
largest=$(echo "$counts" | tr ' ' '\n' | sort -n | tail -1)
for round in $(seq "$rounds"); do
  for count in $counts; do
    prof_rtmp= prof_flv=
    if [ -n "$profile_dir" ] && [ "$round" = 1 ] && [ "$count" = "$largest" ]; then
      prof_rtmp=rtmp-$count prof_flv=http-flv-$count
    fi
    load rtmp "$count" $prof_rtmp
    load http-flv "$count" $prof_flv
  done
done
load hls "$hls_viewers"

if [ "$wire" = 1 ]; then
  # The same HLS load under tcpdump: the blocking answers timed by the kernel. Its CPU
  # figures are not reported (tcpdump shares the cores); only the wire delays are.
  n=$((n + 1))
  start_server
  echo "== hls: $hls_viewers viewer(s) under tcpdump"
  tcpdump -i lo -s 200 -w "$work/hls.pcap" "tcp port $play_port" 2>>"$work/tcpdump.log" &
  tcpdump_pid=$!
  pids+=("$tcpdump_pid")
  sleep 1
  "$gen" load --json --server lifeline --url "rtmp://127.0.0.1:$rtmp_port/live/pb$n" \
    --playback "127.0.0.1:$play_port" --player-kind hls --flv "$flv" \
    --players "$hls_viewers" --duration "$window" > "$work/hls-wire-load.json" || echo "   load failed"
  kill -INT "$tcpdump_pid" 2>/dev/null || true
  wait "$tcpdump_pid" 2>/dev/null || true
  stop_server
  "$gen" wire-delays --server lifeline --port "$play_port" "$work/hls.pcap" >> "$results" || echo "   wire-delays failed"
  sed -n '$p' "$results"
fi

if [ -n "$profile_dir" ]; then
  for f in "$profile_dir"/*.data; do
    perf report -i "$f" --no-children --sort symbol -g none --stdio 2>/dev/null | grep -v '^$' | head -400 > "${f%.data}.symbols.txt" || true
    perf report -i "$f" --no-children --sort dso --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -30 > "${f%.data}.dso.txt" || true
  done
  echo "profiles in $profile_dir"
fi

load_after=$(cut -d' ' -f1-3 /proc/loadavg)
elapsed=$(( $(date +%s) - started_at ))
md=$root/bench/PLAYBACK.md
notes=
if [ -f "$md" ]; then notes=$(sed -n '/^<!-- notes -->$/,$p' "$md"); fi
{
  echo "# Playback benchmarks: HTTP-FLV and LL-HLS beside RTMP"
  echo
  echo "Written by \`bench/playback.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') in ${elapsed} s. Raw figures: \`bench/playback.jsonl\`."
  echo
  echo "## Machine"
  echo
  echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores online"
  echo "- Memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "- OS: $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)"
  echo "- Lifeline $(git -C "$root" rev-parse --short HEAD), release build, default configuration except the per-address and handshake-rate limits, lifted because every client is 127.0.0.1 (loopback listeners, HTTP admin off); a fresh server process per load"
  echo "- Load average (1/5/15 min) before: $load_before; after: $load_after; at the start of each load: the \`loadavg\` field of \`bench/playback.jsonl\`"
  echo "- Generator: \`lifeline-bench\`, one thread; the generator and the server share the machine's cores"
  echo "- Test stream: 30 s of 640x360 at 30 fps, H.264 500 kbps with a 2 s GOP, AAC 96 kbps, looped in real time"
  echo "- Measurement window per load: ${window} s after all viewers started + 3 s warm-up; a viewer kept up when the media"
  echo "  timestamps it received advanced by ≥ 99 % of the window (HLS: the parts it fetched cover the window to within 0.5 s)"
  echo
  echo "## Results"
  echo
  "$gen" playback-report "$results"
  if [ -n "$notes" ]; then echo; echo "$notes"; fi
} > "$md"
echo "wrote bench/PLAYBACK.md"
