#!/usr/bin/env bash
# Lifeline vs nginx-rtmp, same loads, same load generator, same machine, one run:
#   1 publisher at ~600 kbps -> 100, 500, 1000, 2000 players, then upwards in steps until a
#   server stops keeping up; 50 publishers x 2 players; 10,000 idle connections.
# Server CPU and RSS come from /proc over each measurement window (the nginx worker process,
# the lifeline process); the generator's own CPU is reported beside them. Writes
# bench/RESULTS.md (and bench/results.jsonl with the raw figures).
#
# Env: BENCH_WINDOW (s, default 15), BENCH_MAX_PLAYERS (default 6000), BENCH_STEP (1000),
#      BENCH_WAIT_IDLE_MAX (s to wait for a 1-min load average below 1.0 first, default 0),
#      BENCH_IDLE (idle connections, default 10000), LIFELINE_BIN (a prebuilt server).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
window=${BENCH_WINDOW:-15}
max_players=${BENCH_MAX_PLAYERS:-6000}
step=${BENCH_STEP:-1000}
wait_idle_max=${BENCH_WAIT_IDLE_MAX:-0}
idle_conns=${BENCH_IDLE:-10000}
started_at=$(date +%s)

need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v nginx >/dev/null || need+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ] || need+=(libnginx-mod-rtmp)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "need root to install: ${need[*]}" >&2; exit 1; }
  apt-get update -q
  # A policy-rc.d denying service starts: installing nginx must not start the system's nginx.
  drop_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && drop_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
  if [ "$drop_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
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

work=$(mktemp -d /tmp/lifeline-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# The generator and the servers each hold up to 10,000+ sockets.
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

lifeline_port=19350
nginx_port=19351
server_pid=

start_lifeline() { # [handshake_timeout]
  # Lifeline closes a connection that neither publishes nor plays within handshake_timeout
  # (10 s by default): the idle test raises it, or there would be nothing idle to measure.
  cat > "$work/lifeline.toml" <<TOML
[rtmp]
listen = "127.0.0.1:$lifeline_port"
[liveness]
handshake_timeout = "${1:-10s}"
# Every load-generator connection comes from 127.0.0.1: lift the per-address and handshake-rate
# limits (1000 per address, 1000/s by default), which exist for the internet, not for loopback.
[limits]
max_connections_per_ip = 20000
max_handshakes_per_second = 20000
handshake_burst = 20000
[http]
enabled = false
TOML
  RUST_LOG=warn "$lifeline" serve --config "$work/lifeline.toml" 2>>"$work/lifeline.log" &
  server_pid=$!
  pids+=("$server_pid")
  wait_port "$lifeline_port"
}

start_nginx() {
  mkdir -p "$work/nginx/logs"
  sed "s|@PREFIX@|$work/nginx|g; s|@PORT@|$nginx_port|g" "$root/bench/nginx-rtmp.conf" > "$work/nginx/nginx.conf"
  nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" 2>>"$work/nginx/stderr" &
  local master=$!
  pids+=("$master")
  wait_port "$nginx_port"
  # Sample the worker: it holds every connection; the master only supervises.
  server_pid=$(pgrep -P "$master" | head -1)
  nginx_master=$master
}

stop_server() {
  local p=${nginx_master:-$server_pid}
  kill "$p" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$p" 2>/dev/null || true
  nginx_master=
}

wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "server did not listen on $1" >&2
  exit 1
}

results=$root/bench/results.jsonl
: > "$results"
n=0
load() { # server publishers players
  n=$((n + 1))
  local port=$lifeline_port
  [ "$1" = nginx-rtmp ] && port=$nginx_port
  echo "== $1: $2 publisher(s) x $3 player(s)"
  local line
  line=$("$gen" load --json --server "$1" --url "rtmp://127.0.0.1:$port/live/bench$n" --flv "$flv" \
    --publishers "$2" --players "$3" --duration "$window" --server-pid "$server_pid") || {
    echo "   load failed"; line="{\"mode\":\"load\",\"server\":\"$1\",\"publishers\":$2,\"players_per_stream\":$3,\"players\":$(($2 * $3)),\"kept_up\":0,\"kept_up_pct\":0}"; }
  echo "$line" >> "$results"
  echo "   $(echo "$line" | grep -o '"kept_up_pct":[0-9.]*'), $(echo "$line" | grep -o '"server_cpu_pct":[0-9.]*')"
  echo "$line" | grep -q '"kept_up_pct":\(99\.[0-9]*\|100\.0\)'
}

for server in lifeline nginx-rtmp; do
  if [ "$server" = lifeline ]; then start_lifeline; else start_nginx; fi
  for players in 100 500 1000 2000; do load "$server" 1 "$players" || true; done
  players=2000
  while [ $((players + step)) -le "$max_players" ]; do
    players=$((players + step))
    load "$server" 1 "$players" || break
  done
  # A fresh process for the many-streams load, so its RSS is its own (not the high-water mark
  # of the largest fan-out before it).
  stop_server
  if [ "$server" = lifeline ]; then start_lifeline; else start_nginx; fi
  load "$server" 50 2 || true
  # Idle connections on a fresh process, so its RSS baseline is its idle size.
  stop_server
  if [ "$server" = lifeline ]; then start_lifeline 1h; else start_nginx; fi
  sleep 1
  echo "== $server: $idle_conns idle connections"
  port=$lifeline_port; [ "$server" = nginx-rtmp ] && port=$nginx_port
  "$gen" idle --json --server "$server" --url "rtmp://127.0.0.1:$port/live/idle" \
    --connections "$idle_conns" --hold "$window" --server-pid "$server_pid" >> "$results" || echo "   idle failed"
  stop_server
done

load_after=$(cut -d' ' -f1-3 /proc/loadavg)
elapsed=$(( $(date +%s) - started_at ))
{
  echo "# Benchmark results: Lifeline vs nginx-rtmp"
  echo
  echo "Written by \`bench/compare.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') in ${elapsed} s. Raw figures: \`bench/results.jsonl\`."
  echo
  echo "## Machine"
  echo
  echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores online"
  echo "- Memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "- OS: $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)"
  echo "- nginx $(nginx -v 2>&1 | sed 's|.*/||'), libnginx-mod-rtmp $(dpkg-query -W -f '${Version}' libnginx-mod-rtmp 2>/dev/null || echo '?'), 1 worker"
  echo "- Lifeline $(git -C "$root" rev-parse --short HEAD), release build, default configuration except the per-address and handshake-rate limits, lifted because every client is 127.0.0.1 (loopback listener, HTTP admin off)"
  echo "- Load average (1/5/15 min) before: $load_before; after: $load_after"
  echo "- Generator: \`lifeline-bench\`, one thread; the generator and the server share the machine's cores"
  echo "- Measurement window per load: ${window} s after all players started + 3 s warm-up; a player kept up when"
  echo "  the media timestamps it received advanced by ≥ 99 % of the window"
  echo
  echo "## Results"
  echo
  "$gen" report "$results"
  if [ -f "$root/bench/NOTES.md" ]; then echo; cat "$root/bench/NOTES.md"; fi
} > "$root/bench/RESULTS.md"
echo "wrote bench/RESULTS.md"
