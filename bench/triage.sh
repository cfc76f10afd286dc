#!/usr/bin/env bash
# Wall time and peak memory of `hangar triage` on a `kubectl cluster-info dump` of one namespace
# with 500 pods (each with ~200 log lines), from a directory and from the single stream kubectl
# prints without --output-directory. Prints Markdown rows for bench/BENCHMARKS.md.
#
# usage: bench/triage.sh [PODS]      (default 500)
set -euo pipefail
cd "$(dirname "$0")/.."
pods="${1:-500}"
out=bench/out
mkdir -p "$out"
CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}" cargo build --release --locked -q -p hangar
bin=target/release/hangar

dump="$out/dump$pods"
[ -d "$dump" ] || python3 bench/gen_dump.py --pods "$pods" "$dump"
# The same dump as one stream, as `kubectl cluster-info dump` prints it to stdout.
stream="$out/dump$pods.txt"
if [ ! -f "$stream" ]; then
  { cat "$dump/nodes.json"
    for list in events replicationcontrollers services daemonsets deployments replicasets pods; do
      cat "$dump/bulk/$list.json"
    done
    cat "$dump"/bulk/*/logs.txt; } > "$stream"
fi

. bench/measure.sh

size=$(du -sh "$dump" | cut -f1)
echo "| input | pods | command | median wall (s) | best wall (s) | peak RSS (MiB) |"
echo "|---|---|---|---|---|---|"
read -r wall best kb <<<"$(measure "$bin" triage --from "$dump" -n bulk --format json)"
echo "| dump$pods ($size) | $pods | \`hangar triage --from $dump -n bulk --format json\` | $wall | $best | $((kb / 1024)) |"
read -r wall best kb <<<"$(measure "$bin" triage --from "$stream" -n bulk --format json)"
echo "| dump$pods.txt | $pods | \`hangar triage --from $stream -n bulk --format json\` | $wall | $best | $((kb / 1024)) |"
read -r wall best kb <<<"$(measure "$bin" triage --from "$dump" -n bulk)"
echo "| dump$pods ($size) | $pods | \`hangar triage --from $dump -n bulk\` (table) | $wall | $best | $((kb / 1024)) |"
"$bin" triage --from "$dump" -n bulk --format json \
  | python3 -c 'import sys, json, collections; r = json.load(sys.stdin); print("verdicts by category:", dict(collections.Counter(e["verdict"]["category"] for e in r["endpoints"])))'
