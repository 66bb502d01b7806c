#!/usr/bin/env bash
# SETs per second through the router of a fresh `evenkeel up`, with 50
# concurrent clients and with one (redis-benchmark, from redis-tools), for
# one durability mode. To compare two builds, run it for each, in turns,
# two or more times (the test VMs are noisy):
#
#   scripts/durability-bench.sh [BIN] [sync|buffered]
#
# BIN defaults to target/release/evenkeel, the mode to sync. Ports
# 6397/7097; data in a temporary directory, removed afterwards.
#
# With KEYS=N (for example 200000) it then also moves data: N keys of 100
# bytes are loaded (`evenkeel bench --preload`), a fourth node is added,
# throttling is turned off (no static limits, adaptive off), and a
# rebalance (bake 1 s instead of 30) runs while 50 clients SET keys,
# of the moving partitions too (dual-writes to the destinations); it
# prints the rebalance's seconds and the SET rate during it: what the
# migration path's durability costs (in `sync` each applied page waits
# for a shared fsync).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/evenkeel}
MODE=${2:-sync}
ADMIN=127.0.0.1:7097
DIR=$(mktemp -d)
# A 1 s bake, so the rebalance's time is mostly copying.
printf '[migration]\nbake_ms = 1000\n' > "$DIR.toml"
"$BIN" up --config "$DIR.toml" --durability "$MODE" --data-dir "$DIR" --listen 127.0.0.1:6397 --admin "$ADMIN" > "$DIR.log" 2>&1 &
UP=$!
trap 'kill $UP 2>/dev/null; wait $UP 2>/dev/null || true; rm -rf "$DIR" "$DIR.log" "$DIR.toml"' EXIT
for _ in $(seq 100); do redis-cli -p 6397 ping > /dev/null 2>&1 && break; sleep 0.2; done
sleep 2
rate() { redis-benchmark -p 6397 -t set -n "$1" -c "$2" -r 100000 -q 2>&1 | tr '\r' '\n' | grep "requests per" | tail -1; }
echo "$MODE | 50 clients: $(rate 30000 50) | 1 client: $(rate 10000 1)"
[ "${KEYS:-0}" -gt 0 ] || exit 0
"$BIN" bench --target redis://127.0.0.1:6397 --keys "$KEYS" --value-size 100 --preload \
  --rate 100 --seconds 1 --recovery-seconds 0 --quiet > /dev/null 2>&1
"$BIN" node add --admin "$ADMIN" > /dev/null
"$BIN" throttle set --migration-rate none --node-rate none --adaptive off --admin "$ADMIN" > /dev/null
sleep 3
# The load runs until the rebalance ends; its progress line's "overall"
# rate is the SET rate during it.
redis-benchmark -p 6397 -t set -n 1000000000 -c 50 -r 100000 -q > "$DIR/during.txt" 2>&1 &
LOAD=$!
start=$(date +%s.%N)
"$BIN" rebalance start --wait --admin "$ADMIN" > "$DIR/rebalance.txt" 2>&1 || { cat "$DIR/rebalance.txt"; exit 1; }
end=$(date +%s.%N)
kill $LOAD; wait $LOAD 2>/dev/null || true
during=$(tr '\r' '\n' < "$DIR/during.txt" | grep -o "rps=[0-9.]* (overall: [0-9.]*" | tail -1 | sed 's/.*overall: //')
echo "$MODE | rebalance of $KEYS keys: $(python3 -c "print(f'{$end - $start:.1f}')") s | 50 clients during it: $during SET/s"
