#!/usr/bin/env bash
# Compares two `hangar` binaries' gateways at their most requests per second (closed loop, 64
# connections), alternating them so that the VM's slow and fast minutes fall on each alike:
# guards on with 4 KiB prompts (every kind of redaction, injection scanning with `log`), and
# guards off with 64-byte prompts. The gateway on CPU 0, the load generator with its fake model
# server on CPU 1, as in bench/gateway.sh. Prints each run, then each binary's median.
#
# usage: bench/gateway_ab.sh OLD_BINARY NEW_BINARY   (ROUNDS=4, SECONDS_EACH=8)
# Build the load generator first: cargo build --release -p hangar-bench
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
[ $# -eq 2 ] || { echo "usage: bench/gateway_ab.sh OLD_BINARY NEW_BINARY" >&2; exit 2; }
loadgen=target/release/loadgen
tmp=$(mktemp -d)
gateway_pid=""
trap '[ -n "$gateway_pid" ] && kill "$gateway_pid" 2>/dev/null; rm -rf "$tmp"' EXIT
new_api_key "$1" "$tmp"
upstream=18701 gateway=18702
GW_TENANT="    injection: log" \
  GW_REDACT="[card_number, iban, provider_key, private_key, bearer_token, email, phone]" \
  gateway_yaml "127.0.0.1:$gateway" "127.0.0.1:$upstream" "$tmp/audit" > "$tmp/on.yaml"
gateway_yaml "127.0.0.1:$gateway" "127.0.0.1:$upstream" "$tmp/audit" > "$tmp/off.yaml"
for round in $(seq "${ROUNDS:-4}"); do
  for guards in on off; do
    prompt=$([ "$guards" = on ] && echo 4096 || echo 64)
    for binary in "$1" "$2"; do
      taskset -c 0 "$binary" gateway run --config "$tmp/$guards.yaml" 2> "$tmp/gateway.log" &
      gateway_pid=$!
      wait_for_line "$tmp/gateway.log" "serving the inference API on"
      taskset -c 1 "$loadgen" --addr "127.0.0.1:$gateway" --serve-upstream "127.0.0.1:$upstream" \
        --key "$key" --prompt-bytes "$prompt" \
        max --connections 64 --duration "${SECONDS_EACH:-8}" --warmup 2 > "$tmp/run.json"
      python3 -c "import json, sys; r = json.load(open(sys.argv[1])); \
print(sys.argv[2], sys.argv[3], sys.argv[4], round(r['ok'] / r['seconds']), r['errors'])" \
        "$tmp/run.json" "$round" "guards-$guards" "$binary" | tee -a "$tmp/runs.txt"
      kill -TERM "$gateway_pid"
      wait "$gateway_pid" || true
      gateway_pid=""
      rm -rf "$tmp/audit"
    done
  done
done
python3 - "$tmp/runs.txt" <<'PY'
import collections, statistics, sys
rates = collections.defaultdict(list)
for line in open(sys.argv[1]):
    _, guards, binary, rate, _ = line.split(maxsplit=4)
    rates[(guards, binary)].append(int(rate))
for (guards, binary), values in rates.items():
    print(f"{guards} {binary}: median {statistics.median(values):.0f} req/s ({len(values)} runs)")
PY
