#!/usr/bin/env bash
# Runs each fuzz target for a bounded time: FUZZ_SECONDS per target (default 30).
#   fuzz/run.sh                 all targets
#   fuzz/run.sh redact canary   only these
# New inputs go to fuzz/corpus/<target> (git-ignored); fuzz/seeds/<target> is read as extra
# corpus. Crashes land in fuzz/artifacts/<target> and make the script fail.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-30}"
toolchain="${FUZZ_TOOLCHAIN:-nightly}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo "+$toolchain" fuzz list)
fi

for target in "${targets[@]}"; do
    echo "== $target: ${seconds}s"
    mkdir -p "corpus/$target"
    corpora=("corpus/$target")
    if [ -d "seeds/$target" ]; then
        corpora+=("seeds/$target")
    fi
    cargo "+$toolchain" fuzz run "$target" "${corpora[@]}" -- \
        -max_total_time="$seconds" -max_len=16384 -timeout=10 -print_final_stats=1
done
