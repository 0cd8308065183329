#!/usr/bin/env bash
# Lifeline vs nginx-rtmp (and SRS when SRS_BIN names an SRS 6 build), same loads, same load
# generator, same machine, one run, the servers interleaved at every step (each load runs on
# every server, one after the other, on a fresh process, before the next load starts):
#   1 publisher at ~600 kbps -> 100, 2000, 8000 players, then upwards in steps while a server
#   keeps up (a server that fell below 99 % at one step sits out the next ones);
#   the same at 60 fps (the same ~600 kbps, twice the messages: a server's cost per message
#   shows), upwards from 8000 players in steps while a server keeps up;
#   500 publishers x 1 player (ingest); 10,000 idle connections.
# Server CPU and RSS come from /proc over each measurement window (the nginx worker process,
# the lifeline process, the srs process); the generator's own CPU is reported beside them.
# Writes bench/RESULTS.md (and bench/results.jsonl with the raw figures).
#
# Env: BENCH_WINDOW (s, default 10), BENCH_STEPS (default "100 2000 8000"), BENCH_MAX_PLAYERS
#      (step-up limit, default 18000: every player is a file descriptor of the server, and
#      the hard limit here is 20000), BENCH_STEP (2000), BENCH_STEPS_60 (the 60 fps loads,
#      default "8000 10000 12000 14000 16000 18000"), BENCH_INGEST (publishers of the
#      ingest load, default 500), BENCH_WAIT_IDLE_MAX (s to wait for a 1-min load average
#      below 1.0 first, default 0), BENCH_IDLE (idle connections, default 10000),
#      BENCH_PORT (first of the ports used, default 29350), LIFELINE_BIN (a prebuilt server),
#      SRS_BIN (an SRS 6 binary, built as upstream does, e.g. by ../shared/peers/build-srs.sh),
#      SRS_O2_BIN (one built with SRS_EXTRA_FLAGS=-O2). Without SRS_BIN the SRS columns are
#      left out.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
window=${BENCH_WINDOW:-10}
steps=${BENCH_STEPS:-100 2000 8000}
max_players=${BENCH_MAX_PLAYERS:-18000}
step=${BENCH_STEP:-2000}
steps_60=${BENCH_STEPS_60:-8000 10000 12000 14000 16000 18000}
ingest=${BENCH_INGEST:-500}
port_base=${BENCH_PORT:-29350}
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
flv60=$work/600k60.flv
ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i testsrc=size=640x360:rate=60 -f lavfi -i sine=frequency=440:sample_rate=48000 \
  -t 30 -c:v libx264 -preset veryfast -tune zerolatency -b:v 500k -maxrate 500k -bufsize 1000k \
  -g 120 -pix_fmt yuv420p -c:a aac -ar 48000 -b:a 96k -f flv "$flv60"

if [ "$wait_idle_max" -gt 0 ]; then
  waited=0
  while awk '{exit !($1 >= 1.0)}' /proc/loadavg && [ "$waited" -lt "$wait_idle_max" ]; do
    echo "load average $(cut -d' ' -f1-3 /proc/loadavg): waiting for < 1.0"; sleep 30; waited=$((waited + 30))
  done
fi
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

lifeline_port=$port_base
nginx_port=$((port_base + 1))
srs_port=$((port_base + 2))
playback_port=$((port_base + 3))
server_pid=
servers=(lifeline nginx-rtmp)
[ -n "${SRS_BIN:-}" ] && servers+=(srs)
[ -n "${SRS_O2_BIN:-}" ] && servers+=(srs-o2)

start_lifeline() { # [handshake_timeout]
  # Lifeline closes a connection that neither publishes nor plays within handshake_timeout
  # (10 s by default): the idle test raises it, or there would be nothing idle to measure.
  cat > "$work/lifeline.toml" <<TOML
[rtmp]
listen = "127.0.0.1:$lifeline_port"
[liveness]
handshake_timeout = "${1:-10s}"
# Every load-generator connection comes from 127.0.0.1: lift the per-address and handshake-rate
# limits (1000 per address, 1000/s by default), which exist for the internet, not for loopback,
# and the safety caps on connections and players per stream (20,000 and 5,000).
[limits]
max_connections = 30000
max_connections_per_ip = 30000
max_players_per_stream = 30000
max_handshakes_per_second = 30000
handshake_burst = 30000
[playback]
listen = "127.0.0.1:$playback_port"
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

start_srs() { # bin
  # SRS's defaults (350 ms merged writes, gop cache) with room for the connections, and
  # time_jitter off: by default SRS rebases every player's timestamps to start at 0, which would
  # make the generator's lag (arrival vs the publisher's clock) meaningless; the rebasing costs
  # nothing measurable, so leaving it out changes no CPU figure.
  mkdir -p "$work/srs"
  cat > "$work/srs/srs.conf" <<CONF
listen              127.0.0.1:$srs_port;
max_connections     19800;
daemon              off;
srs_log_tank        console;
srs_log_level       warn;
pid                 $work/srs/srs.pid;
vhost __defaultVhost__ {
    play { time_jitter off; }
}
CONF
  (cd "$(dirname "$1")/.." && exec "$1" -c "$work/srs/srs.conf" >>"$work/srs/log" 2>&1) &
  server_pid=$!
  pids+=("$server_pid")
  wait_port "$srs_port"
}

start() { # server [handshake_timeout]
  case $1 in
    lifeline) start_lifeline "${2:-10s}" ;;
    nginx-rtmp) start_nginx ;;
    srs) start_srs "$SRS_BIN" ;;
    srs-o2) start_srs "$SRS_O2_BIN" ;;
  esac
}

port_of() {
  case $1 in
    lifeline) echo "$lifeline_port" ;;
    nginx-rtmp) echo "$nginx_port" ;;
    *) echo "$srs_port" ;;
  esac
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
  local port
  port=$(port_of "$1")
  local la
  la=$(cut -d' ' -f1 /proc/loadavg)
  echo "== $1: $2 publisher(s) x $3 player(s) (load average $la)"
  local line
  line=$("$gen" load --json --server "$1" --url "rtmp://127.0.0.1:$port/live/bench$n" --flv "${load_flv:-$flv}" \
    --publishers "$2" --players "$3" --duration "$window" --server-pid "$server_pid") || {
    echo "   load failed"; line="{\"mode\":\"load\",\"server\":\"$1\",\"publishers\":$2,\"players_per_stream\":$3,\"players\":$(($2 * $3)),\"kept_up\":0,\"kept_up_pct\":0}"; }
  # The 1-min load average as the load started, so a figure can be read against the machine.
  line="{\"load_avg_1m\":$la,\"stream\":\"${load_label:-30 fps}\",${line#\{}"
  echo "$line" >> "$results"
  echo "   $(echo "$line" | grep -o '"kept_up_pct":[0-9.]*'), $(echo "$line" | grep -o '"server_cpu_pct":[0-9.]*')"
  echo "$line" | grep -q '"kept_up_pct":\(99\.[0-9]*\|100\.0\)'
}

# Interleaved: every load on every server (fresh process each), then the next load.
run_step() { # publishers players -> prints the servers that kept up
  local server ok=()
  for server in "${active[@]}"; do
    start "$server"
    if load "$server" "$1" "$2" >&2; then ok+=("$server"); fi
    stop_server
  done
  echo "${ok[@]}"
}
active=("${servers[@]}")
players=0
for players in $steps; do
  read -r -a kept <<<"$(run_step 1 "$players")"
  active=("${kept[@]}")
  [ ${#active[@]} -gt 0 ] || break
done
while [ ${#active[@]} -gt 0 ] && [ $((players + step)) -le "$max_players" ]; do
  players=$((players + step))
  read -r -a kept <<<"$(run_step 1 "$players")"
  active=("${kept[@]}")
done
# 60 fps: the same step-up with the other stream.
active=("${servers[@]}")
load_flv=$flv60 load_label="60 fps"
for players in $steps_60; do
  [ ${#active[@]} -gt 0 ] || break
  read -r -a kept <<<"$(run_step 1 "$players")"
  active=("${kept[@]}")
done
load_flv= load_label=
active=("${servers[@]}")
run_step "$ingest" 1 >/dev/null
# Idle connections on a fresh process, so its RSS baseline is its idle size.
for server in "${servers[@]}"; do
  start "$server" 1h
  sleep 1
  echo "== $server: $idle_conns idle connections"
  la=$(cut -d' ' -f1 /proc/loadavg)
  if line=$("$gen" idle --json --server "$server" --url "rtmp://127.0.0.1:$(port_of "$server")/live/idle" \
    --connections "$idle_conns" --hold "$window" --server-pid "$server_pid"); then
    echo "{\"load_avg_1m\":$la,${line#\{}" >> "$results"
  else
    echo "   idle failed"
  fi
  stop_server
done

load_after=$(cut -d' ' -f1-3 /proc/loadavg)
elapsed=$(( $(date +%s) - started_at ))
# bench/rtmps.sh's section of RESULTS.md is its own run: kept across this rewrite.
rtmps_section=$(sed -n '/^<!-- rtmps.sh: begin -->/,/^<!-- rtmps.sh: end -->/p' "$root/bench/RESULTS.md" 2>/dev/null || true)
{
  echo "# Benchmark results: Lifeline vs ${servers[*]:1}"
  echo
  echo "Written by \`bench/compare.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') in ${elapsed} s. Raw figures: \`bench/results.jsonl\`."
  echo
  echo "## Machine"
  echo
  echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores online"
  echo "- Memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "- OS: $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)"
  echo "- nginx $(nginx -v 2>&1 | sed 's|.*/||'), libnginx-mod-rtmp $(dpkg-query -W -f '${Version}' libnginx-mod-rtmp 2>/dev/null || echo '?'), 1 worker"
  [ -n "${SRS_BIN:-}" ] && echo "- srs: SRS $("$SRS_BIN" -v 2>&1 | tail -1) as upstream builds it (-g -O0), its defaults (350 ms merged writes) except max_connections and time_jitter off (see compare.sh)"
  [ -n "${SRS_O2_BIN:-}" ] && echo "- srs-o2: the same SRS built with -O2"
  echo "- Lifeline $(git -C "$root" rev-parse --short HEAD), release build, default configuration except the per-address and handshake-rate limits, lifted because every client is 127.0.0.1 (loopback listener, HTTP admin off)"
  echo "- Load average (1/5/15 min) before: $load_before; after: $load_after"
  echo "- Generator: \`lifeline-bench\`, one thread; the generator and the server share the machine's cores"
  echo "- Open files per process: hard limit $(ulimit -Hn) (\`ulimit -Hn\`); every player is one of the server's, so no step goes beyond $max_players players"
  echo "- Streams: 30 fps (640x360 H.264 500 kbps + AAC 44.1 kHz 96 kbps, ~73 messages/s) and 60 fps (the same at 60 fps + AAC 48 kHz, ~107 messages/s), both ~600 kbps"
  echo "- Measurement window per load: ${window} s after all players started + 3 s warm-up; a player kept up when"
  echo "  the media timestamps it received advanced by ≥ 99 % of the window"
  echo
  echo "## Results"
  echo
  theirs=()
  for s in "${servers[@]:1}"; do theirs+=(--theirs "$s"); done
  "$gen" report "$results" "${theirs[@]}"
  if [ -f "$root/bench/NOTES.md" ]; then echo; cat "$root/bench/NOTES.md"; fi
  if [ -n "$rtmps_section" ]; then echo; echo "$rtmps_section"; fi
} > "$root/bench/RESULTS.md"
echo "wrote bench/RESULTS.md"
