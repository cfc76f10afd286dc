# Sourced by the bench scripts. `measure CMD…` runs CMD five times and prints the median wall
# time, the best, and the largest peak RSS in KiB (GNU time). The machine is a shared VM, so
# single runs vary; the median and the best say more than one run.
measure() {
  : > "$out/runs.txt"
  for _ in 1 2 3 4 5; do
    /usr/bin/time -f '%e %M' -o "$out/time.txt" "$@" >/dev/null 2>&1 || true
    tail -n 1 "$out/time.txt" >> "$out/runs.txt"
  done
  sort -n "$out/runs.txt" | awk '{w[NR]=$1; if ($2 > m) m=$2} END {print w[3], w[1], m}'
}
