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
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/evenkeel}
MODE=${2:-sync}
DIR=$(mktemp -d)
"$BIN" up --durability "$MODE" --data-dir "$DIR" --listen 127.0.0.1:6397 --admin 127.0.0.1:7097 > "$DIR.log" 2>&1 &
UP=$!
trap 'kill $UP 2>/dev/null; wait $UP 2>/dev/null || true; rm -rf "$DIR" "$DIR.log"' EXIT
for _ in $(seq 100); do redis-cli -p 6397 ping > /dev/null 2>&1 && break; sleep 0.2; done
sleep 2
rate() { redis-benchmark -p 6397 -t set -n "$1" -c "$2" -r 100000 -q 2>&1 | tr '\r' '\n' | grep "requests per" | tail -1; }
echo "$MODE | 50 clients: $(rate 30000 50) | 1 client: $(rate 10000 1)"
