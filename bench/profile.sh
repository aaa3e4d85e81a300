#!/usr/bin/env bash
# Where a scenario's CPU goes under Spin: samples every process on the machine (perf, 999 Hz)
# for 5 s inside the measured window of a floor and of a scenario, then splits the samples by
# process and by what ran: Spin's own binary (wasmtime, SQLite, hyper), the app's compiled
# Wasm ([JIT]), glibc, the kernel, the load generator.
#
#   bench/profile.sh <floor> <scenario> [bench options...]
#   bench/profile.sh sqlite-read catalog-get -d 8 -w 1 --items 20000 --listings 1000 --log-entries 1000
#
# Needs perf (Debian: linux-perf) and permission to sample the whole machine.
set -euo pipefail
cd "$(dirname "$0")/.."
floor=$1
scenario=$2
shift 2
out=$(mktemp -d)
log=$out/bench.log
cargo build --release -p bench >/dev/null
./target/release/bench "$scenario" "$@" --out "$out/results.md" >"$log" 2>&1 &
bench=$!
for name in "$floor" "$scenario"; do
    until grep -q "measuring $name\.\.\." "$log"; do
        kill -0 "$bench" 2>/dev/null || { cat "$log"; exit 1; }
        sleep 0.2
    done
    sleep 1
    perf record -a -F 999 -o "$out/$name.data" -- sleep 5 >/dev/null 2>&1
done
wait "$bench"
grep -E "^\| ($floor|$scenario) " "$out/results.md"
for name in "$floor" "$scenario"; do
    echo
    echo "$name: share of all samples, by process id and code"
    perf script -i "$out/$name.data" -F pid,ip,dso 2>/dev/null | awk '
        { dso = $NF; gsub(/[()]/, "", dso)
          if (dso ~ /JIT|jitted|perf-|memfd/) dso = "[JIT] (the Wasm components)"
          sub(/.*\//, "", dso)
          count[$1 " " dso]++; total++ }
        END { for (key in count) if (count[key] / total >= 0.005)
                  printf "%6.1f%%  %s\n", 100 * count[key] / total, key }' | sort -rn
done
rm -rf "$out"
