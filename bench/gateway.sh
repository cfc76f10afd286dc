#!/usr/bin/env bash
# The inference gateway's speed (issue 4), all on loopback on this machine: the load generator
# (`loadgen`), which also serves the fake model server on the same thread (`--serve-upstream`:
# so the load and the answers never wait on the scheduler for each other, and an extra hop's
# tail latency is the hop's own), the gateway (`hangar gateway run`) and Debian's nginx as a
# plain reverse proxy, in one run. Each round measures
#   (a) latency at a constant RATE req/s (open loop) for DURATION s after WARMUP s:
#       direct to the fake, through the gateway with guards off, through nginx (64-byte prompt);
#       the same with a 4 KiB prompt, and through the gateway with guards on (redaction of every
#       kind, injection scanning with `log`);
#   (b) the most each path serves, closed loop, MAX_CONNECTIONS connections, MAX_SECONDS s, and
#       the same through `bare_proxy` (crates/hangar-bench/examples: the gateway's HTTP stack
#       with none of its work, the floor the gateway could reach);
#   (c) STREAMS streamed answers open at once through a freshly started gateway (guards on),
#       with its peak resident memory (VmHWM in /proc/PID/status).
# ROUNDS rounds (default 3); the table at the end gives the median of each figure.
#
# usage: bench/gateway.sh [ROUNDS]
#   env: RATE=3000 DURATION=20 WARMUP=3 MAX_CONNECTIONS=64 MAX_SECONDS=10 STREAMS=1000
#        CHUNKS=100 CHUNK_MS=100 (the streams' shape: 10 s each)
#        PARTS="latency throughput streams": which of (a), (b) and (c) to run (PARTS=streams
#        checks the memory alone in a minute)
#        PROXY_CPUS=0 CLIENT_CPUS=1 (taskset lists: the gateway or nginx on one, the load
#        generator with its fake model server on the other; set both empty to let Linux place
#        them)
#        WARM_CPUS=1: during the open-loop runs, keep every CPU awake with a spinner at the
#        lowest priority (SCHED_IDLE), and run the proxy and the load generator SCHED_FIFO, so
#        that they take their CPU back from the spinner the moment they wake. On this VM an
#        idle virtual CPU takes milliseconds to wake now and then, and at 3k req/s both
#        proxies' p99 is mostly that wait. (Spinners alone are not enough: the kernel's fair
#        scheduler may leave a busy process waiting up to a 4 ms tick behind a SCHED_IDLE task.)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
rounds="${1:-3}"
rate="${RATE:-3000}"
duration="${DURATION:-20}"
warmup="${WARMUP:-3}"
max_connections="${MAX_CONNECTIONS:-64}"
max_seconds="${MAX_SECONDS:-10}"
streams="${STREAMS:-1000}"
chunks="${CHUNKS:-100}"
chunk_ms="${CHUNK_MS:-100}"
parts=" ${PARTS:-latency throughput streams} "
for p in $parts; do
  case "$p" in
    latency | throughput | streams) ;;
    *) echo "PARTS: unknown part '$p' (latency, throughput, streams)" >&2; exit 2 ;;
  esac
done
proxy_cpus="${PROXY_CPUS-0}"
client_cpus="${CLIENT_CPUS-1}"
port_base="${PORT_BASE:-18400}"
upstream_port=$((port_base + 1))
gateway_port=$((port_base + 2))
admin_port=$((port_base + 3))
nginx_port=$((port_base + 4))
bare_port=$((port_base + 5))

out=bench/out
mkdir -p "$out"
results="$out/gateway-runs.jsonl"
: > "$results"
CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}" cargo build --release --locked -q -p hangar -p hangar-bench
CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}" cargo build --release --locked -q -p hangar-bench --example bare_proxy

APT_COMMAND=nginx apt_install nginx-light || APT_COMMAND=nginx apt_install nginx

# 1,000 streams are 4,000 sockets across the processes.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

tmp=$(mktemp -d /tmp/hangar-gateway-bench.XXXXXX)
chmod 755 "$tmp"
# Copies, so that a rebuild during the run cannot change what is measured.
mkdir -p "$tmp/bin"
cp target/release/hangar target/release/loadgen target/release/examples/bare_proxy "$tmp/bin/"
bin="$tmp/bin"
echo "hangar binary: $(stat -c '%y' target/release/hangar), sha256 $(sha256sum "$bin/hangar" | cut -c1-16)" >&2
trap cleanup EXIT
trap "exit 130" INT TERM

# Runs "$@" on the CPUs in $1 (all of them when $1 is empty).
on_cpus() {
  local cpus="$1"
  shift
  if [ -n "$cpus" ]; then taskset -c "$cpus" "$@"; else "$@"; fi
}

# The same for a server started with `&`: exec, so that $! is the server's own PID.
exec_on_cpus() {
  local cpus="$1"
  shift
  if [ -n "$cpus" ]; then exec taskset -c "$cpus" "$@"; else exec "$@"; fi
}

# Waits until LOG has a line matching PATTERN (the process says it is ready).
wait_for_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1 after 10 s" >&2
  return 1
}

# Per cent of the machine's CPU time busy over one second.
busy_percent() {
  local a b
  read -r -a a < /proc/stat
  sleep 1
  read -r -a b < /proc/stat
  local busy=0 total=0 i
  for i in 1 2 3 6 7 8; do busy=$((busy + b[i] - a[i])); done
  for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
  echo $((total > 0 ? 100 * busy / total : 0))
}

# Every figure here shares two cores, so each run waits (up to QUIET_WAIT s, default 900) until
# nothing else is using more than a tenth of the machine, and records whether it was.
quiet="true"
wait_quiet() {
  local waited=0 busy
  busy=$(busy_percent)
  while [ "$busy" -gt 10 ] && [ "$waited" -lt "${QUIET_WAIT:-900}" ]; do
    [ "$waited" -eq 0 ] && echo "waiting for the machine to be quiet ($busy% busy)" >&2
    sleep 4
    waited=$((waited + 5))
    busy=$(busy_percent)
  done
  if [ "$busy" -gt 10 ]; then quiet="false"; echo "measuring on a busy machine ($busy%)" >&2; else quiet="true"; fi
}

cpu_count() {
  if [ -n "$1" ]; then taskset -c "$1" nproc; else nproc; fi
}

# --- nginx: a plain reverse proxy with keep-alive to the fake, as many workers as the gateway
# has threads, its access log on (the gateway writes its audit log) ----------------------------
proxy_threads=$(cpu_count "$proxy_cpus")
write_nginx_conf "$tmp/nginx" "$proxy_threads" "$upstream_port" "$nginx_port"
exec_on_cpus "$proxy_cpus" nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -g 'daemon off;' \
  2> "$tmp/nginx/stderr.log" &
nginx_pid=$!
started+=($nginx_pid)
wait_for_port "$nginx_port"

# --- the floor: a proxy on the gateway's stack doing nothing else (crates/hangar-bench/examples) -
exec_on_cpus "$proxy_cpus" "$bin/bare_proxy" "127.0.0.1:$bare_port" "http://127.0.0.1:$upstream_port" \
  2> "$tmp/bare.log" &
bare_pid=$!
started+=($bare_pid)
wait_for_port "$bare_port"

# --- the gateway -------------------------------------------------------------------------------
new_api_key "$bin/hangar" "$tmp"

# gateway_config NAME INJECTION REDACT_LIST
gateway_config() {
  GW_ADMIN=127.0.0.1:$admin_port GW_TENANT="    injection: $2" GW_REDACT=$3 \
    gateway_yaml "127.0.0.1:$gateway_port" "127.0.0.1:$upstream_port" "$tmp/audit-$1" \
    > "$tmp/$1.yaml"
}
gateway_config guards-off off "[]"
gateway_config guards-on log "[card_number, iban, provider_key, private_key, bearer_token, email, phone]"

gateway_pid=""
start_gateway() {
  exec_on_cpus "$proxy_cpus" "$bin/hangar" gateway run --config "$tmp/$1.yaml" 2> "$tmp/gateway.log" &
  gateway_pid=$!
  wait_for_line "$tmp/gateway.log" "serving the inference API on"
}
stop_gateway() {
  kill -TERM "$gateway_pid"
  wait "$gateway_pid" || true
  gateway_pid=""
}

# CPU time (user + system, in clock ticks) used so far by the processes in "$@".
cpu_ticks() {
  local total=0 pid
  for pid in "$@"; do
    [ -r "/proc/$pid/stat" ] || continue
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$total"
}

# The processes serving PORT: the gateway, or nginx's master and workers (the fake model server
# lives in the load generator).
servers_on() {
  case "$1" in
    "$upstream_port") echo "" ;;
    "$gateway_port") echo "$gateway_pid" ;;
    "$nginx_port") echo "$nginx_pid $(pgrep -P "$nginx_pid" | tr '\n' ' ')" ;;
    "$bare_port") echo "$bare_pid" ;;
  esac
}

# The gateway's metrics page when PORT is the gateway's (empty otherwise).
overhead() {
  [ "$1" = "$gateway_port" ] || return 0
  python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$admin_port/metrics').read().decode())" \
    2>/dev/null || true
}

# load LABEL ROUND PORT PROMPT_BYTES MODE ARGS… : one loadgen run, its JSON appended to results
# with the CPU seconds the proxy on PORT used during the whole run (warm-up included).
load() {
  local label="$1" round="$2" port="$3" prompt="$4" mode="$5"
  shift 5
  wait_quiet
  local servers proxy_before proxy_after hz
  servers=$(servers_on "$port")
  hz=$(getconf CLK_TCK)
  # shellcheck disable=SC2086
  proxy_before=$(cpu_ticks $servers)
  overhead "$port" > "$tmp/overhead-before.txt"
  local spinners=() realtime=()
  if [ -n "${WARM_CPUS:-}" ] && [ "$mode" = rate ]; then
    local cpu pid
    # shellcheck disable=SC2086
    for pid in $servers; do chrt -a -f -p 1 "$pid"; done
    for cpu in $(seq 0 $(($(nproc) - 1))); do
      chrt -i 0 taskset -c "$cpu" sh -c 'while :; do :; done' &
      spinners+=($!)
    done
    realtime=(chrt -f 1)
  fi
  on_cpus "$client_cpus" "${realtime[@]}" "$bin/loadgen" --label "$label" --addr "127.0.0.1:$port" \
    --serve-upstream "127.0.0.1:$upstream_port" --upstream-chunks "$chunks" \
    --upstream-interval-ms "$chunk_ms" \
    --key "$key" --prompt-bytes "$prompt" "$mode" "$@" > "$tmp/run.json"
  if [ "${#spinners[@]}" -gt 0 ]; then
    kill "${spinners[@]}"
    wait "${spinners[@]}" 2>/dev/null || true
    # shellcheck disable=SC2086
    for pid in $servers; do chrt -a -o -p 0 "$pid"; done
  fi
  # shellcheck disable=SC2086
  proxy_after=$(cpu_ticks $servers)
  overhead "$port" > "$tmp/overhead-after.txt"
  python3 - "$tmp/run.json" "$round" "$quiet" "$(( proxy_after - proxy_before ))" \
    "$hz" "$tmp/overhead-before.txt" "$tmp/overhead-after.txt" >> "$results" <<'PY'
import json, re, sys
path, round_, quiet, server_ticks, hz, before, after = sys.argv[1:]
# The gateway's own time per request (total minus waiting on the model server), from its
# `hangar_gateway_overhead_seconds` histogram: the bucket bound under which 99% of this run fell.
def buckets(path):
    found = {}
    for line in open(path):
        m = re.match(r'hangar_gateway_overhead_seconds_bucket\{.*le="([^"]+)"\} (\d+)', line)
        if m:
            found[float("inf") if m.group(1) == "+Inf" else float(m.group(1))] = int(m.group(2))
    return found
b, a = buckets(before), buckets(after)

r = json.load(open(path))
r["round"] = int(round_)
r["quiet"] = quiet == "true"
r["server_cpu_s"] = int(server_ticks) / int(hz)
if a:
    deltas = sorted((le, a[le] - b.get(le, 0)) for le in a)
    total = deltas[-1][1]
    r["overhead_p99_ms"] = next(le for le, n in deltas if n >= 0.99 * total) * 1000
print(json.dumps(r))
PY
}

rate_args=(--rate "$rate" --duration "$duration" --warmup "$warmup")
max_args=(--connections "$max_connections" --duration "$max_seconds" --warmup 2)

# Whether PARTS names $1.
part() { [[ "$parts" == *" $1 "* ]]; }

for round in $(seq "$rounds"); do
  echo "round $round of $rounds" >&2
  if part latency || part throughput; then
    start_gateway guards-off
    if part latency; then
      load direct-64B "$round" "$upstream_port" 64 rate "${rate_args[@]}"
      load gateway-off-64B "$round" "$gateway_port" 64 rate "${rate_args[@]}"
      load nginx-64B "$round" "$nginx_port" 64 rate "${rate_args[@]}"
      load direct-4KiB "$round" "$upstream_port" 4096 rate "${rate_args[@]}"
      load gateway-off-4KiB "$round" "$gateway_port" 4096 rate "${rate_args[@]}"
      load nginx-4KiB "$round" "$nginx_port" 4096 rate "${rate_args[@]}"
    fi
    if part throughput; then
      load max-direct-64B "$round" "$upstream_port" 64 max "${max_args[@]}"
      load max-gateway-off-64B "$round" "$gateway_port" 64 max "${max_args[@]}"
      load max-nginx-64B "$round" "$nginx_port" 64 max "${max_args[@]}"
      load max-bare-64B "$round" "$bare_port" 64 max "${max_args[@]}"
    fi
    stop_gateway

    start_gateway guards-on
    if part latency; then
      load gateway-on-4KiB "$round" "$gateway_port" 4096 rate "${rate_args[@]}"
    fi
    if part throughput; then
      load max-direct-4KiB "$round" "$upstream_port" 4096 max "${max_args[@]}"
      load max-gateway-on-4KiB "$round" "$gateway_port" 4096 max "${max_args[@]}"
      load max-nginx-4KiB "$round" "$nginx_port" 4096 max "${max_args[@]}"
      load max-bare-4KiB "$round" "$bare_port" 4096 max "${max_args[@]}"
    fi
    stop_gateway
  fi

  part streams || continue
  # A fresh gateway with an empty audit directory, so its peak resident memory is that of the
  # streams (a gateway resuming a big audit file reads all of it at start: see BENCHMARKS.md).
  gateway_config "streams-$round" log "[card_number, iban, provider_key, private_key, bearer_token, email, phone]"
  start_gateway "streams-$round"
  idle_kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$gateway_pid/status")
  load streams "$round" "$gateway_port" 64 streams --streams "$streams" --watch-pid "$gateway_pid" \
    --timeout $((chunks * chunk_ms / 1000 + 60))
  python3 - "$results" "$idle_kib" <<'EOF'
import json, sys
path, idle = sys.argv[1], int(sys.argv[2])
lines = open(path).read().splitlines()
last = json.loads(lines[-1])
last["rss_idle_kib"] = idle
lines[-1] = json.dumps(last)
open(path, "w").write("\n".join(lines) + "\n")
EOF
  stop_gateway
done

python3 - "$results" "$rate" "$proxy_cpus" "$client_cpus" "$warmup" "$duration" "$max_seconds" <<'EOF'
import json, os, sys, statistics
from collections import defaultdict
path, rate, proxy_cpus, client_cpus = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
rate_seconds = float(sys.argv[5]) + float(sys.argv[6])
max_seconds = 2 + float(sys.argv[7])
runs = [json.loads(line) for line in open(path) if line.strip()]
by = defaultdict(dict)  # label -> round -> run
for r in runs:
    by[r["label"]][r["round"]] = r
rounds = sorted({r["round"] for r in runs})
med = lambda xs: statistics.median(xs) if xs else float("nan")
def m(label, key):
    return med([by[label][k][key] for k in rounds if k in by[label] and key in by[label][k]])
def added(label, base):
    return [by[label][k]["p99_ms"] - by[base][k]["p99_ms"] for k in rounds if k in by[label] and k in by[base]]

warm = "; open-loop runs with every CPU kept awake by a SCHED_IDLE spinner, proxy and load generator SCHED_FIFO" if os.environ.get("WARM_CPUS") else ""
print(f"\nmedian of {len(rounds)} rounds; proxy CPUs: {proxy_cpus or 'any'}, load generator (with the fake model server) CPUs: {client_cpus or 'any'}{warm}\n")
rows = [("direct", "64B", None), ("gateway-off", "64B", "direct-64B"), ("nginx", "64B", "direct-64B"),
        ("direct", "4KiB", None), ("gateway-off", "4KiB", "direct-4KiB"), ("gateway-on", "4KiB", "direct-4KiB"),
        ("nginx", "4KiB", "direct-4KiB")]
names = {"direct": "direct to the fake", "gateway-off": "gateway, guards off", "gateway-on": "gateway, guards on", "nginx": "nginx", "bare": "bare proxy on the gateway's stack"}
if "direct-64B" in by:
    print(f"(a) open loop at {rate:.0f} req/s")
    print("| path | prompt | p50 (ms) | p99 (ms) | p99.9 (ms) | added p99 vs direct (ms) | p99 inside the gateway (ms) | achieved req/s | errors | proxy CPU per request (µs) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
for path_, size, base in rows:
    label = f"{path_}-{size}"
    if label not in by: continue
    extra = "—"
    if base:
        diffs = added(label, base)
        extra = f"{med(diffs):+.3f} (rounds: {', '.join(f'{d:+.3f}' for d in diffs)})"
    errors = sum(by[label][k]["errors"] for k in rounds if k in by[label])
    cpu = m(label, "server_cpu_s") / (rate * rate_seconds) * 1e6
    cpu = f"{cpu:.0f}" if path_ != "direct" else "—"
    inside = m(label, "overhead_p99_ms")
    inside = f"≤ {inside:g}" if inside == inside else "—"
    print(f"| {names[path_]} | {size} | {m(label,'p50_ms'):.3f} | {m(label,'p99_ms'):.3f} | {m(label,'p999_ms'):.3f} | {extra} | {inside} | {m(label,'rate'):.0f} | {errors} | {cpu} |")

if "max-direct-64B" in by:
    print(f"\n(b) closed loop, most requests per second")
    print("| path | prompt | req/s (median) | rounds | p50 (ms) | p99 (ms) | errors | proxy CPU (cores) |")
    print("|---|---|---|---|---|---|---|---|")
for path_, size in [("direct","64B"),("gateway-off","64B"),("nginx","64B"),("bare","64B"),("direct","4KiB"),("gateway-on","4KiB"),("nginx","4KiB"),("bare","4KiB")]:
    label = f"max-{path_}-{size}"
    if label not in by: continue
    each = ", ".join(f"{by[label][k]['rate']:.0f}" for k in rounds if k in by[label])
    errors = sum(by[label][k]["errors"] for k in rounds if k in by[label])
    cores = m(label, "server_cpu_s") / max_seconds
    shown = f"{cores:.2f}" if path_ != "direct" else "—"
    print(f"| {names[path_]} | {size} | {m(label,'rate'):.0f} | {each} | {m(label,'p50_ms'):.3f} | {m(label,'p99_ms'):.3f} | {errors} | {shown} |")

if "streams" in by:
    s = by["streams"]
    hwm_rounds = ", ".join(f"{s[k]['vm_hwm_kib'] / 1024:.1f}" for k in rounds if k in s)
    print(f"\n(c) streams through the gateway (guards on)")
    print("| streams | completed | peak open together | first event p50 / p99 (ms) | gateway RSS idle (MiB) | RSS with all open (MiB) | peak RSS VmHWM (MiB) | errors |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {m('streams','streams'):.0f} | {m('streams','ok'):.0f} | {m('streams','peak_open'):.0f} | {m('streams','p50_ms'):.1f} / {m('streams','p99_ms'):.1f} | "
          f"{m('streams','rss_idle_kib')/1024:.1f} | {m('streams','rss_all_open_kib')/1024:.1f} | {m('streams','vm_hwm_kib')/1024:.1f} "
          f"(rounds: {hwm_rounds}) | {sum(s[k]['errors'] for k in rounds if k in s)} |")

busy = [f"{r['label']} (round {r['round']})" for r in runs if not r.get("quiet", True)]
print("\nruns started while something else used more than 10% of the CPU: " + (", ".join(busy) if busy else "none"))

print("\ntargets")
def verdict(ok): return "met" if ok else "MISSED"
for label, base, what, target in [("gateway-off-64B", "direct-64B", "guards off", 0.5),
                                  ("gateway-on-4KiB", "direct-4KiB", "guards on, 4 KiB prompt", 1.0)]:
    if label in by:
        a = med(added(label, base))
        print(f"- added p99 at {rate:.0f} req/s, {what}: {a:.3f} ms (target <= {target:g} ms): {verdict(a <= target)}")
for label, what in [("gateway-off-64B", "guards off, 64 B"), ("gateway-on-4KiB", "guards on, 4 KiB")]:
    inside = m(label, "overhead_p99_ms")
    if inside == inside:
        print(f"  (inside the gateway, {what}: p99 <= {inside:g} ms, from its overhead histogram)")
for size, gw in [("64B", "gateway-off"), ("4KiB", "gateway-on")]:
    if f"max-{gw}-{size}" not in by: continue
    g, n = m(f"max-{gw}-{size}", "rate"), m(f"max-nginx-{size}", "rate")
    print(f"- max throughput, {size}: gateway {g:.0f} req/s vs nginx {n:.0f} req/s ({g / n:.2f}x): {verdict(g >= n)}")
if "streams" in by:
    hwm = m("streams", "vm_hwm_kib") / 1024
    print(f"- peak RSS with {m('streams','peak_open'):.0f} streams open: {hwm:.1f} MiB (target < 64 MiB): {verdict(hwm < 64)}")
EOF
echo "raw runs: $results" >&2
