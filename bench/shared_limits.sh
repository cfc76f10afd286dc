#!/usr/bin/env bash
# What sharing the rate limits through Redis (`limits.shared`) costs the gateway, on loopback:
# the gateway with a rate-limited tenant (limits it never reaches), its buckets kept locally,
# then in Redis, then in Redis with its requests in flight too (`maxConcurrent`, a cap it never
# reaches), then in Redis with the callers' extraction windows too (`extraction`, which the two
# before turn off), alternating, ROUNDS rounds. Each run measures
#   (a) latency at RATE req/s (open loop, 64-byte prompts, DURATION s after 2 s of warm-up);
#   (b) the most it serves (closed loop, 64 connections, 6 s), with the CPU time the gateway
#       and Redis used per request (from /proc/PID/stat).
# The gateway and redis-server share CPU 0 (REDIS_CPUS), the load generator with its fake model
# server runs on CPU 1, as in bench/gateway.sh. In a cluster Redis runs elsewhere; here its work
# takes from the gateway's core, so (b) is the worst case for the gateway.
#
# usage: bench/shared_limits.sh [ROUNDS]
#   env: RATE=3000 DURATION=10 REDIS_CPUS=0 MODES="local shared inflight windows"
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
rounds="${1:-3}"
rate="${RATE:-3000}"
duration="${DURATION:-10}"
redis_cpus="${REDIS_CPUS-0}"
base="${PORT_BASE:-18520}"
upstream=$((base + 1)) gateway=$((base + 2)) admin=$((base + 3)) redis_port=$((base + 9))

CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}" cargo build --release --locked -q -p hangar -p hangar-bench
apt_install redis-server

tmp=$(mktemp -d /tmp/hangar-shared-bench.XXXXXX)
cp target/release/hangar target/release/loadgen "$tmp/"
trap cleanup EXIT

taskset -c "$redis_cpus" redis-server --port "$redis_port" --bind 127.0.0.1 --save "" \
  --appendonly no > "$tmp/redis.log" &
redis_pid=$!
started+=("$redis_pid")

new_api_key "$tmp/hangar" "$tmp"
# config NAME [SHARED_LINE] [TENANT_LINE]
config() {
  GW_ADMIN=127.0.0.1:$admin GW_LIMITS="${2:-}" \
    GW_TENANT=$'    injection: "off"\n    requestsPerMinute: 1000000000\n    tokensPerMinute: 1000000000000\n'"${3:-}" \
    gateway_yaml "127.0.0.1:$gateway" "127.0.0.1:$upstream" "$tmp/audit-$1" > "$tmp/$1.yaml"
}
config local
config shared "  shared: {url: \"redis://127.0.0.1:$redis_port\", extraction: false}"
config inflight "  shared: {url: \"redis://127.0.0.1:$redis_port\", extraction: false}" "    maxConcurrent: 100000"
config windows "  shared: {url: \"redis://127.0.0.1:$redis_port\"}"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
load() { taskset -c 1 "$tmp/loadgen" --addr "127.0.0.1:$gateway" --serve-upstream "127.0.0.1:$upstream" --key "$key" "$@" 2>/dev/null | tail -1; }

printf '| round | limits | p50 (ms) | p99 (ms) | p99.9 (ms) | closed loop (req/s) | gateway CPU per request (µs) | Redis CPU per request (µs) | decided without Redis |\n'
printf '|---|---|---|---|---|---|---|---|---|\n'
for round in $(seq "$rounds"); do
  for mode in ${MODES:-local shared inflight windows}; do
    taskset -c 0 "$tmp/hangar" gateway run --config "$tmp/$mode.yaml" 2> "$tmp/gateway-$mode.log" &
    gateway_pid=$!
    for _ in $(seq 100); do grep -q "serving the inference API" "$tmp/gateway-$mode.log" && break; sleep 0.1; done
    open=$(load rate --rate "$rate" --duration "$duration" --warmup 2)
    g0=$(cpu_ticks "$gateway_pid") r0=$(cpu_ticks "$redis_pid")
    closed=$(load max --connections 64 --duration 6 --warmup 0)
    g1=$(cpu_ticks "$gateway_pid") r1=$(cpu_ticks "$redis_pid")
    fallbacks=$(curl -s "http://127.0.0.1:$admin/metrics" | awk '/^hangar_gateway_shared_limits_fallbacks_total/ {n += $2} END {print n + 0}')
    kill "$gateway_pid"
    wait "$gateway_pid" 2>/dev/null || true
    python3 - "$round" "$mode" "$open" "$closed" $((g1 - g0)) $((r1 - r0)) "$fallbacks" "$(getconf CLK_TCK)" <<'PY'
import json, sys
round_, mode, open_, closed, gateway, redis, fallbacks, hz = sys.argv[1:]
o, c = json.loads(open_), json.loads(closed)
per = 1e6 / int(hz) / max(c["ok"], 1)
print(f"| {round_} | {mode} | {o['p50_ms']:.3f} | {o['p99_ms']:.3f} | {o['p999_ms']:.3f} | "
      f"{c['rate']:.0f} | {int(gateway) * per:.1f} | {int(redis) * per:.1f} | {fallbacks} |")
PY
  done
done
