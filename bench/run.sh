#!/usr/bin/env bash
# Wall time and peak memory of `hangar audit` on synthetic clusters of 1k, 10k and 100k objects,
# and Checkov on the 10k cluster for comparison. Prints Markdown rows for bench/BENCHMARKS.md.
#
# usage: bench/run.sh            (set SKIP_CHECKOV=1 to skip the Checkov comparison)
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/out
mkdir -p "$out"
CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}" cargo build --release --locked -q -p hangar
bin=target/release/hangar

for n in 1000 10000 100000; do
  [ -d "$out/c$n" ] || python3 bench/gen_cluster.py "$n" "$out/c$n" >/dev/null
done

. bench/measure.sh

echo "| input | objects | command | median wall (s) | best wall (s) | peak RSS (MiB) |"
echo "|---|---|---|---|---|---|"
for n in 1000 10000 100000; do
  read -r wall best kb <<<"$(measure "$bin" audit "$out/c$n" --format json --fail-on never)"
  objects=$("$bin" audit "$out/c$n" --format json --fail-on never | python3 -c 'import sys, json; print(json.load(sys.stdin)["summary"]["objects"])')
  echo "| c$n | $objects | \`hangar audit bench/out/c$n --format json\` | $wall | $best | $((kb / 1024)) |"
done

# Checkov on the 1k and 10k clusters, each stopped after CHECKOV_TIMEOUT seconds (default 30 min).
if [ -z "${SKIP_CHECKOV:-}" ]; then
  command -v checkov >/dev/null 2>&1 || pip install -q checkov
  limit="${CHECKOV_TIMEOUT:-1800}"
  for n in 1000 10000; do
    /usr/bin/time -f '%e %M' -o "$out/checkov-time.txt" \
      timeout "$limit" checkov -d "$out/c$n" --framework kubernetes --quiet --compact -o json \
      >"$out/checkov-$n.json" 2>/dev/null || true
    read -r cwall ckb < <(tail -n 1 "$out/checkov-time.txt")
    read -r hwall _ _ <<<"$(measure "$bin" audit "$out/c$n" --format json --fail-on never)"
    if awk "BEGIN{exit !($cwall >= $limit)}"; then
      echo "| c$n | Checkov | \`checkov -d bench/out/c$n --framework kubernetes\` | did not finish in $limit | $((ckb / 1024)) |"
      echo "hangar on c$n: ${hwall}s; checkov: more than ${limit}s; speed-up: more than $(awk "BEGIN{printf \"%.0f\", $limit / $hwall}")x"
    else
      echo "| c$n | Checkov | \`checkov -d bench/out/c$n --framework kubernetes\` | $cwall | $((ckb / 1024)) |"
      echo "hangar on c$n: ${hwall}s; checkov: ${cwall}s; speed-up: $(awk "BEGIN{printf \"%.0f\", $cwall / $hwall}")x"
    fi
  done
fi
