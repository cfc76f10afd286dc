#!/usr/bin/env bash
# Memory a gateway binary holds for requests waiting on a model server that answers only once
# it has generated the whole answer (as vLLM, TGI and SGLang do when not streaming): CONNECTIONS
# clients each keep one such request waiting, a chat of 20 messages, 16 KiB in all, without
# `max_tokens` (as the SDKs send it), for 3 s each, over 10 s.
#   usage: bench/held_bodies.sh HANGAR_BINARY [CONNECTIONS]
# Prints the gateway's resident memory idle and its peak (VmHWM), in KiB.
# Needs target/release/fake-upstream and target/release/loadgen (cargo build --release -p hangar-bench).
set -eu
cd "$(dirname "$0")/.."
source bench/lib.sh
binary=$1
connections=${2:-500}
tmp=$(mktemp -d)
trap cleanup EXIT
up=18611 gw=18612
new_api_key "$binary" "$tmp"
python3 - "$tmp/body.json" <<'PY'
import json, sys
words = "the quick brown fox jumps over the lazy dog while the model thinks ".split()
text = " ".join(words[i % len(words)] for i in range(150))[:800]
messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": text} for i in range(20)]
json.dump({"model": "bench-model", "messages": messages}, open(sys.argv[1], "w"))
PY
GW_TENANT=$'    maxTokens: 64\n    injection: "off"' GW_LIMITS='  timeouts: {firstToken: 30s}' \
  gateway_yaml 127.0.0.1:$gw 127.0.0.1:$up "$tmp/audit" > "$tmp/g.yaml"
target/release/fake-upstream --listen 127.0.0.1:$up --whole-delay-ms 3000 2> "$tmp/up.log" &
started+=($!)
"$binary" gateway run --config "$tmp/g.yaml" 2> "$tmp/gw.log" &
gateway=$!
started+=($gateway)
wait_for_line "$tmp/gw.log" "serving the inference API"
idle=$(awk '/^VmRSS:/ {print $2}' "/proc/$gateway/status")
target/release/loadgen --addr 127.0.0.1:$gw --key "$key" --body "$tmp/body.json" \
  max --connections "$connections" --duration 10 --warmup 0 > "$tmp/run.json"
peak=$(awk '/^VmHWM:/ {print $2}' "/proc/$gateway/status")
python3 - "$tmp/run.json" "$idle" "$peak" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))
print(f"idle_kib {sys.argv[2]} peak_kib {sys.argv[3]} answered {run.get('ok')} errors {run.get('errors')}")
PY
