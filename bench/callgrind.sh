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
prompt=64
case "$guards" in
  on)
    export GW_TENANT=$'    injection: block\n    redactUpstream: true'
    export GW_REDACT='[card_number, iban, provider_key, private_key, bearer_token, email, phone]'
    prompt=4096
    ;;
  limited) export GW_TENANT=$'    injection: "off"\n    requestsPerMinute: 1000000\n    tokensPerMinute: 100000000' ;;
esac
gateway_yaml 127.0.0.1:$gw 127.0.0.1:$up "$tmp/audit" > "$tmp/g.yaml"
valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" "$binary" gateway run --config "$tmp/g.yaml" 2> "$tmp/gw.log" &
gateway=$!
wait_for_line "$tmp/gw.log" "serving the inference API" 50
"$loadgen" --addr 127.0.0.1:$gw --serve-upstream 127.0.0.1:$up --key "$key" --prompt-bytes $prompt \
  rate --rate 200 --duration 10 --warmup 0 --connections 8 > "$tmp/run.json"
kill -INT $gateway
wait $gateway || true
grep -E "^totals" "$tmp/cg.out"
python3 -c "import json; r = json.load(open('$tmp/run.json')); print('errors', r.get('errors'))"
cp "$tmp/cg.out" "${CALLGRIND_OUT:-/tmp/callgrind-last.out}"
