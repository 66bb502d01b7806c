#!/usr/bin/env python3
"""Catches host freezes in a kernel trace: what each CPU did while a thread
that only sleeps could not run.

    sudo scripts/freeze-trace.py [--limit-ms 15] [--max 4] [--seconds 120] OUT_DIR

A thread sleeps 1 ms in a loop (like `evenkeel bench --host-probe`). The
kernel traces scheduler, interrupt and block-layer events into its ring
buffer (tracefs); on a wake-up LIMIT_MS or more late the trace is stopped,
saved to OUT_DIR/freezeN.txt, summarised, and restarted, at most MAX times
or for SECONDS. Run it next to an acceptance run (scripts/rebalance-acceptance.sh)
started a little later, so it covers the baseline and the rebalance.

The summary says, per CPU, how many events it logged inside the late
wake-up's window and which task it ran there. On the 2-core test VM every
freeze of 30-40 ms looked the same: no event on either CPU for the whole
window, one CPU stopped inside an interrupt handler or an IPI send. No guest
thread held the CPUs, the hypervisor did; the bench's p99 outside freezes
(`host freezes` line of its report) is the figure that leaves them out.

Needs root and tracefs at /sys/kernel/tracing. Leaves tracing off and the
event list empty when it ends.
"""
import argparse
import os
import re
import sys
import time

TRACING = "/sys/kernel/tracing"
EVENTS = [
    "sched:sched_switch",
    "sched:sched_waking",
    "irq:irq_handler_entry",
    "irq:softirq_entry",
    "block:block_rq_issue",
    "block:block_rq_complete",
]
LINE = re.compile(r"^\s*(?P<task>.+?)-(?P<pid>\d+)\s+\[(?P<cpu>\d+)\]\s+\S+\s+(?P<ts>[\d.]+):\s+(?P<event>\w+):\s*(?P<rest>.*)$")


def write(name, value):
    with open(os.path.join(TRACING, name), "w") as f:
        f.write(value)


def setup(buffer_kb):
    write("tracing_on", "0")
    write("trace_clock", "mono")
    write("buffer_size_kb", str(buffer_kb))
    write("set_event", "")
    # Appending adds an event; a plain write would replace the list. (No
    # seek: tracefs refuses the one Python's append mode makes.)
    fd = os.open(os.path.join(TRACING, "set_event"), os.O_WRONLY | os.O_APPEND)
    try:
        for e in EVENTS:
            os.write(fd, (e + "\n").encode())
    finally:
        os.close(fd)
    write("trace", "")


def teardown():
    write("tracing_on", "0")
    write("set_event", "")
    write("trace", "")


def summarise(path, start, end):
    """Events per CPU in [start, end] (CLOCK_MONOTONIC seconds) and the task
    each CPU switched to last before the window."""
    per_cpu = {}
    last_task = {}
    with open(path) as f:
        for line in f:
            m = LINE.match(line)
            if not m:
                continue
            ts, cpu = float(m["ts"]), int(m["cpu"])
            if ts < start:
                if m["event"] == "sched_switch":
                    nxt = re.search(r"next_comm=(.+?) next_pid", m["rest"])
                    last_task[cpu] = nxt.group(1) if nxt else "?"
                continue
            if ts <= end:
                per_cpu.setdefault(cpu, []).append((ts, m["event"], m["task"]))
    cpus = sorted(set(per_cpu) | set(last_task))
    out = []
    for cpu in cpus:
        evs = per_cpu.get(cpu, [])
        gaps = [b[0] - a[0] for a, b in zip([(start, "", "")] + evs, evs + [(end, "", "")])]
        out.append(f"cpu{cpu}: {len(evs)} events in the window, longest gap {max(gaps) * 1e3:.1f} ms, running {last_task.get(cpu, '?')} when it began")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--limit-ms", type=float, default=15.0)
    ap.add_argument("--max", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--buffer-kb", type=int, default=16384, help="ring buffer per CPU")
    a = ap.parse_args()
    if not os.path.isdir(TRACING):
        sys.exit(f"no tracefs at {TRACING}")
    os.makedirs(a.out, exist_ok=True)
    setup(a.buffer_kb)
    caught = 0
    end_at = time.monotonic() + a.seconds
    write("tracing_on", "1")
    try:
        while caught < a.max and time.monotonic() < end_at:
            asked = time.monotonic()
            time.sleep(0.001)
            woke = time.monotonic()
            late_ms = (woke - asked - 0.001) * 1e3
            if late_ms < a.limit_ms:
                continue
            write("tracing_on", "0")
            path = os.path.join(a.out, f"freeze{caught}.txt")
            with open(os.path.join(TRACING, "trace")) as src, open(path, "w") as dst:
                dst.write(src.read())
            print(f"freeze {caught}: woke {late_ms:.1f} ms late at {time.strftime('%T')} (monotonic {woke:.3f}); trace in {path}", flush=True)
            for line in summarise(path, asked + 0.001, woke):
                print("  " + line, flush=True)
            caught += 1
            write("trace", "")
            write("tracing_on", "1")
    finally:
        teardown()
    print(f"{caught} freezes of {a.limit_ms} ms or more caught")


if __name__ == "__main__":
    main()
