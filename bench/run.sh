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

# Best of three wall times, and the peak RSS of that run, via GNU time.
measure() {
  local best="" rss=""
  for _ in 1 2 3; do
    /usr/bin/time -f '%e %M' -o "$out/time.txt" "$@" >/dev/null 2>&1 || true
    read -r wall kb < "$out/time.txt"
    if [ -z "$best" ] || awk "BEGIN{exit !($wall < $best)}"; then best=$wall; rss=$kb; fi
  done
  echo "$best $rss"
}

echo "| input | objects | command | wall (s) | peak RSS (MiB) |"
echo "|---|---|---|---|---|"
for n in 1000 10000 100000; do
  read -r wall kb <<<"$(measure "$bin" audit "$out/c$n" --format json --fail-on never)"
  objects=$("$bin" audit "$out/c$n" --format json --fail-on never | python3 -c 'import sys, json; print(json.load(sys.stdin)["summary"]["objects"])')
  echo "| c$n | $objects | \`hangar audit bench/out/c$n --format json\` | $wall | $((kb / 1024)) |"
done

if [ -z "${SKIP_CHECKOV:-}" ]; then
  command -v checkov >/dev/null 2>&1 || pip install -q checkov
  start=$(date +%s.%N)
  /usr/bin/time -f '%e %M' -o "$out/checkov-time.txt" checkov -d "$out/c10000" --framework kubernetes --quiet --compact -o json >"$out/checkov.json" 2>/dev/null || true
  read -r cwall ckb < "$out/checkov-time.txt"
  read -r hwall hkb <<<"$(measure "$bin" audit "$out/c10000" --format json --fail-on never)"
  echo "| c10000 | Checkov | \`checkov -d bench/out/c10000 --framework kubernetes\` | $cwall | $((ckb / 1024)) |"
  echo
  echo "hangar on c10000: ${hwall}s; checkov: ${cwall}s; speed-up: $(awk "BEGIN{printf \"%.0f\", $cwall / $hwall}")x"
fi
