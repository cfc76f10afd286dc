#!/usr/bin/env bash
# Compares `hangar audit` binaries on the same input, alternating them so that the VM's slow and
# fast minutes fall on each alike. Prints each binary's median CPU (user + system) and wall time.
#
# usage: bench/ab.sh OLD_BINARY NEW_BINARY [MORE…]   (ROUNDS=5, INPUT=bench/out/c100000)
set -euo pipefail
cd "$(dirname "$0")/.."
input="${INPUT:-bench/out/c100000}"
[ -d "$input" ] || python3 bench/gen_cluster.py 100000 "$input" >/dev/null
times=$(mktemp)
trap 'rm -f "$times"' EXIT
for _ in $(seq 1 "${ROUNDS:-5}"); do
  for bin in "$@"; do
    /usr/bin/time -a -o "$times" -f "$bin %U %S %e" \
      "$bin" audit "$input" --format json --fail-on never >/dev/null 2>&1 || true
  done
done
python3 - "$times" "$@" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    binary, user, system, wall = line.split()
    runs.setdefault(binary, []).append((float(user) + float(system), float(wall)))
for binary in sys.argv[2:]:
    cpu = statistics.median(c for c, _ in runs[binary])
    wall = statistics.median(w for _, w in runs[binary])
    print(f"{binary}: median CPU {cpu:.2f} s, median wall {wall:.2f} s, {len(runs[binary])} runs")
PY
