#!/usr/bin/env bash
# Instructions a gateway binary spends on 2,000 requests (200/s for 10 s, 8 connections), start-up
# included, under callgrind: a steady figure for comparing two builds on a noisy VM.
#   usage: bench/callgrind.sh HANGAR_BINARY [off|on|limited]
#   off: guards off, 64-byte prompts; on: redaction (upstream too) and injection blocking, 4 KiB;
#   limited: as off, with requests and tokens per minute (never reached) on the tenant.
# Needs valgrind and target/release/loadgen (cargo build --release -p hangar-bench).
set -eu
cd "$(dirname "$0")/.."
source bench/lib.sh
binary=$1
guards=${2:-off}
loadgen=target/release/loadgen
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
up=18601 gw=18602
new_api_key "$binary" "$tmp"
if [ "$guards" = on ]; then
  tenant=$'    injection: block\n    redactUpstream: true'
  redact='[card_number, provider_key, private_key, bearer_token, email, phone]'
  prompt=4096
else
  tenant='    injection: off'
  redact='[]'
  prompt=64
fi
if [ "$guards" = limited ]; then
  tenant=$'    injection: off\n    requestsPerMinute: 1000000\n    tokensPerMinute: 100000000'
fi
cat > "$tmp/g.yaml" <<YAML
listen: 127.0.0.1:$gw
auth:
  apiKeys:
$key_entry
tenants:
  bench:
    models: [bench-model]
$tenant
models:
  bench-model:
    versions:
      - name: v1
        url: http://127.0.0.1:$up
        weight: 100
limits:
  drain: 2s
guards:
  redact: $redact
audit:
  dir: $tmp/audit
  retentionDays: 1
YAML
valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" "$binary" gateway run --config "$tmp/g.yaml" 2> "$tmp/gw.log" &
gateway=$!
for _ in $(seq 1 100); do grep -q "serving the inference API" "$tmp/gw.log" && break; sleep 0.5; done
"$loadgen" --addr 127.0.0.1:$gw --serve-upstream 127.0.0.1:$up --key "$key" --prompt-bytes $prompt \
  rate --rate 200 --duration 10 --warmup 0 --connections 8 > "$tmp/run.json"
kill -INT $gateway
wait $gateway || true
grep -E "^totals" "$tmp/cg.out"
python3 -c "import json; r = json.load(open('$tmp/run.json')); print('errors', r.get('errors'))"
cp "$tmp/cg.out" "${CALLGRIND_OUT:-/tmp/callgrind-last.out}"
