#!/bin/bash
# Usage: scripts/big-hash-move.sh BIN LABEL [up flags...]
# A 100,000-field hash (about 6 MB, one record): the cost of one HSET on it
# (redis-benchmark, one client, 200 requests; csv: rps avg min p50 p95 p99
# max) and the bytes the process wrote to disk per HSET, an HGET, then a
# move of its partition to another node while one client keeps writing it
# (`move --wait`, at most 120 s), and what `migrations` says of the move.
# BIN is a copy of target/release/evenkeel; runs on 127.0.0.1:6482/7482 with
# its data in /tmp/zr (removed first). The writing client starts WARM_S
# seconds (default 70) before the move: the p99 health gate compares a
# node's p99 with its usual p99 once it has a minute of it (this
# workload's own p99 is about 50 ms, the gate's absolute limit). Pass
# `--config F` to set the gate (`[throttle.health]`).
set -u
BIN=$1; L=$2; shift 2
HERE=$(cd "$(dirname "$0")" && pwd)
export EVENKEEL_ADMIN=http://127.0.0.1:7482
pkill -f "data-dir /tmp/zr --listen"; sleep 2; rm -rf /tmp/zr
"$BIN" up "$@" --data-dir /tmp/zr --listen 127.0.0.1:6482 --admin 127.0.0.1:7482 > "/tmp/up-$L.log" 2>&1 &
PID=$!
sleep 5
python3 "$HERE/load-big-hash.py" 6482 bigh 100000 >/dev/null
V=vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv
sleep 3
w0=$(awk '/^write_bytes/{print $2}' /proc/$PID/io)
echo "[$L] steady HSET (csv: rps avg min p50 p95 p99 max):"
redis-benchmark -p 6482 -n 200 -r 100000 -c 1 --csv hset bigh f__rand_int__ $V | tail -1
w1=$(awk '/^write_bytes/{print $2}' /proc/$PID/io)
echo "[$L] disk bytes written per HSET: $(( (w1-w0)/200 ))"
redis-benchmark -p 6482 -n 300 -c 1 --csv hget bigh f5 | tail -1 | sed "s/^/[$L] HGET: /"
P=$("$BIN" cluster partitions | awk 'NR==2{print $1}'); OWN=$("$BIN" cluster partitions | awk 'NR==2{print $2}')
T=$(( OWN % 3 + 1 ))
timeout 200 redis-benchmark -p 6482 -n 1000000 -r 100000 -c 1 --csv hset bigh f__rand_int__ $V > "/tmp/hb-$L.log" 2>&1 &
sleep "${WARM_S:-70}"
t0=$(date +%s.%N)
timeout 120 "$BIN" move "$P" "$T" --wait > "/tmp/move-$L.log" 2>&1; rc=$?
t1=$(date +%s.%N)
echo "[$L] move of partition $P ($OWN -> $T): rc=$rc in $(echo "$t1 - $t0" | bc) s"
"$BIN" migrations | tail -3
pkill -f "redis-benchmark -p 6482"
sleep 1
redis-cli -p 6482 hlen bigh | sed "s/^/[$L] HLEN after: /"
kill $PID
