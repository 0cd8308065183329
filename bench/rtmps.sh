#!/usr/bin/env bash
# RTMPS vs RTMP fan-out on ONE Lifeline listening on both ([rtmp] and [rtmps]), same stream
# kind, same generator, one run, interleaved: 1 publisher at ~600 kbps (over rtmp://) ->
# PLAYERS players over rtmp://, then PLAYERS over rtmps://, ROUNDS times (default 2), each
# load on a fresh stream. The certificate is self-signed, made by openssl in a temp dir
# (nothing committed); the generator accepts it with --insecure (it still checks the
# handshake's signatures). Server CPU and RSS come from /proc over each window; the
# generator's own CPU (which decrypts in the RTMPS loads) is reported beside them.
#   flock /tmp/lifeline-heavy.lock bash bench/rtmps.sh
# Writes the section "RTMPS vs RTMP fan-out, 1000 players" of bench/RESULTS.md and the raw
# JSON lines to bench/rtmps.jsonl.
#
# Env: PLAYERS (default 1000), ROUNDS (2), BENCH_WINDOW (s, 15), BENCH_PORT (29460; +1 for
#      RTMPS), LIFELINE_BIN / BENCH_BIN (prebuilt binaries instead of building release),
#      RTMPS_SMOKE=1 (5 players, 1 round, 2 s windows, a 5 s stream; writes nothing under
#      bench/ and fails unless every player of both kinds kept up: a check the script works).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
smoke=${RTMPS_SMOKE:-0}
if [ "$smoke" = 1 ]; then
  players=${PLAYERS:-5}; rounds=${ROUNDS:-1}; window=${BENCH_WINDOW:-2}; warmup=0.5; clip=5
else
  players=${PLAYERS:-1000}; rounds=${ROUNDS:-2}; window=${BENCH_WINDOW:-15}; warmup=3; clip=30
fi
port=${BENCH_PORT:-29460}
tls_port=$((port + 1))
started_at=$(date +%s)

command -v ffmpeg >/dev/null || { echo "needs ffmpeg (apt-get install ffmpeg)" >&2; exit 1; }
command -v openssl >/dev/null || { echo "needs openssl" >&2; exit 1; }

target=${CARGO_TARGET_DIR:-$root/target}
if [ -z "${LIFELINE_BIN:-}" ] || [ -z "${BENCH_BIN:-}" ]; then
  cargo build --release --locked -q -p lifeline -p lifeline-bench
fi
lifeline=${LIFELINE_BIN:-$target/release/lifeline}
gen=${BENCH_BIN:-$target/release/lifeline-bench}

work=$(mktemp -d /tmp/lifeline-rtmps.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

flv=$work/600k.flv
ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i testsrc=size=640x360:rate=30 -f lavfi -i sine=frequency=440:sample_rate=44100 \
  -t "$clip" -c:v libx264 -preset veryfast -tune zerolatency -b:v 500k -maxrate 500k -bufsize 1000k \
  -g 60 -pix_fmt yuv420p -c:a aac -b:a 96k -f flv "$flv"

cat > "$work/lifeline.toml" <<TOML
[rtmp]
listen = "127.0.0.1:$port"
[rtmps]
listen = "127.0.0.1:$tls_port"
cert = "$work/cert.pem"
key = "$work/key.pem"
# Every generator connection comes from 127.0.0.1: the per-address and handshake-rate limits
# exist for the internet, not for loopback.
[limits]
max_connections = 30000
max_connections_per_ip = 30000
max_players_per_stream = 30000
max_handshakes_per_second = 30000
handshake_burst = 30000
[playback]
enabled = false
[http]
enabled = false
TOML
RUST_LOG=warn "$lifeline" serve --config "$work/lifeline.toml" 2>>"$work/lifeline.log" &
server_pid=$!
pids+=("$server_pid")
for p in "$port" "$tls_port"; do
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break; sleep 0.1; done
done

out=$work/rtmps.jsonl
: > "$out"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
n=0
for round in $(seq "$rounds"); do
  for kind in rtmp rtmps; do
    n=$((n + 1))
    player_url="rtmp://127.0.0.1:$port/live/tls$n"
    [ "$kind" = rtmps ] && player_url="rtmps://127.0.0.1:$tls_port/live/tls$n"
    la=$(cut -d' ' -f1 /proc/loadavg)
    echo "== round $round, $players players over $kind (load average $la)" >&2
    if line=$("$gen" load --json --server "$kind" --url "rtmp://127.0.0.1:$port/live/tls$n" \
      --player-url "$player_url" --insecure --flv "$flv" --publishers 1 --players "$players" \
      --warmup "$warmup" --duration "$window" --server-pid "$server_pid"); then
      line="{\"load_avg_1m\":$la,\"round\":$round,${line#\{}"
      echo "$line" >> "$out"
      echo "   $(echo "$line" | grep -o '"kept_up_pct":[0-9.]*'), $(echo "$line" | grep -o '"server_cpu_pct_per_gbps":[0-9.]*')" >&2
    else
      echo "   load failed" >&2
      [ "$smoke" = 1 ] && exit 1
    fi
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
kill -0 "$server_pid" 2>/dev/null || { echo "the server died: $(tail -5 "$work/lifeline.log")" >&2; exit 1; }

# Means over the rounds of each kind, and the ratios rtmps / rtmp.
summary() {
  python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
keys = ["server_cpu_pct_per_gbps", "server_cpu_pct", "delivered_gbps", "wire_gbps",
        "lag_ms_p50", "lag_ms_p95", "lag_ms_p99", "server_rss_kib", "kept_up_pct",
        "generator_cpu_pct"]
def mean(kind, k):
    v = [r[k] for r in rows if r.get("server") == kind and r.get(k) is not None]
    return sum(v) / len(v) if v else None
m = {kind: {k: mean(kind, k) for k in keys} for kind in ("rtmp", "rtmps")}
fmt = lambda x, d=1: "–" if x is None else f"{x:.{d}f}"
print("| mean over the rounds | kept up % | server CPU % | delivered Gbit/s | on the wire Gbit/s | server CPU % per Gbit/s | lag p50 / p95 / p99 ms | server RSS MiB | generator CPU % |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for kind in ("rtmp", "rtmps"):
    r = m[kind]
    rss = None if r["server_rss_kib"] is None else r["server_rss_kib"] / 1024
    print(f"| {kind} | {fmt(r['kept_up_pct'])} | {fmt(r['server_cpu_pct'])} | {fmt(r['delivered_gbps'], 3)} | {fmt(r['wire_gbps'], 3)} | {fmt(r['server_cpu_pct_per_gbps'])} | {fmt(r['lag_ms_p50'], 0)} / {fmt(r['lag_ms_p95'], 0)} / {fmt(r['lag_ms_p99'], 0)} | {fmt(rss)} | {fmt(r['generator_cpu_pct'])} |")
a, b = m["rtmps"]["server_cpu_pct_per_gbps"], m["rtmp"]["server_cpu_pct_per_gbps"]
if a and b:
    print(f"\nServer CPU per delivered Gbit/s, RTMPS / RTMP: **{a / b:.2f}**.")
PY
}

if [ "$smoke" = 1 ]; then
  summary >&2
  kinds=$(grep -c '"kept_up_pct":100' "$out" || true)
  [ "$kinds" -eq 2 ] || { echo "smoke: not every player of both kinds kept up" >&2; cat "$out" >&2; exit 1; }
  echo "smoke: rtmp and rtmps players kept up" >&2
  exit 0
fi

cp "$out" "$root/bench/rtmps.jsonl"
elapsed=$(( $(date +%s) - started_at ))
section=$work/section.md
{
  echo "<!-- rtmps.sh: begin -->"
  echo "## RTMPS vs RTMP fan-out, $players players"
  echo
  echo "Written by \`bench/rtmps.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') in ${elapsed} s, Lifeline $(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- crates || echo ' (+ uncommitted changes)'), release build. Raw figures: \`bench/rtmps.jsonl\`."
  echo
  echo "- One Lifeline listening on RTMP and RTMPS (rustls 0.23, ring; TLS 1.3, the generator's"
  echo "  first choice TLS13_AES_256_GCM_SHA384; self-signed P-256 certificate made by openssl for"
  echo "  the run), 1 publisher at ~600 kbps over RTMP, $players players over RTMP, then $players over"
  echo "  RTMPS, $rounds rounds alternating, each load on a fresh stream; ${window} s window after a ${warmup} s warm-up."
  echo "- Load average (1/5/15 min) before: $load_before; after: $load_after. $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), kernel $(uname -r); no kernel TLS (this kernel has no \`tls\` ULP), so TLS is encrypted in user space."
  echo "- The generator (one thread) decrypts every RTMPS player's stream: its CPU is beside the server's."
  echo
  summary
  echo
  echo "Every load:"
  echo
  "$gen" report "$out" --ours rtmps --theirs rtmp | sed '/^### Ratios/,$d' | sed 's/^### /#### /'
  echo "<!-- rtmps.sh: end -->"
} > "$section"
results=$root/bench/RESULTS.md
python3 - "$results" "$section" <<'PY'
import sys, re
path, section = sys.argv[1], open(sys.argv[2]).read()
text = open(path).read() if __import__("os").path.exists(path) else ""
pat = re.compile(r"<!-- rtmps.sh: begin -->.*?<!-- rtmps.sh: end -->\n?", re.S)
text = pat.sub(lambda _: section, text) if pat.search(text) else text.rstrip("\n") + "\n\n" + section
open(path, "w").write(text)
PY
echo "wrote the RTMPS section of bench/RESULTS.md and bench/rtmps.jsonl" >&2
