#!/usr/bin/env python3
"""Samples every thread of every process once a second, until PID exits.

    scripts/thread-sample.py PID OUT_FILE

Each second it writes, per thread, `TIME pid tid comm ticks run_ns wait_ns
slices minflt` (CPU ticks from /proc/<pid>/task/<tid>/stat; run time,
run-queue wait and time slices from .../schedstat; minor page faults),
and the machine's counters as `TIME STAT key values...`: the cpu lines of
/proc/stat, ctxt, procs_running, softirq, the interrupt total,
/proc/interrupts' local timer, rescheduling, function-call and TLB
shootdown counts summed over CPUs (`irq LOC RES CAL TLB`: the last three
are interrupts one CPU sends another, each a trip into the hypervisor on a
VM), and /proc/vmstat's pgfault, pgalloc_normal, pgfree and pgpgout. One
long-lived process, reading /proc only: about 0.2% of a core here.
scripts/rebalance-acceptance.sh runs it with THREADS=1, and
scripts/acceptance-threads.py splits its output by stage of the moves.
"""
import os, sys, time

pid, out = int(sys.argv[1]), sys.argv[2]
me = str(os.getpid())


def alive(p):
    try:
        os.kill(p, 0)
        return True
    except OSError:
        return False


with open(out, "w") as f:
    while alive(pid):
        t = time.time()
        for line in open("/proc/stat"):
            k = line.split(None, 1)[0]
            if k.startswith("cpu") or k in ("ctxt", "softirq", "procs_running"):
                f.write(f"{t:.3f} STAT {line.strip()}\n")
            elif k == "intr":
                f.write(f"{t:.3f} STAT intr {line.split()[1]}\n")
        irq = {}
        for line in open("/proc/interrupts"):
            f2 = line.split()
            if f2 and f2[0] in ("LOC:", "RES:", "CAL:", "TLB:"):
                irq[f2[0][:3]] = sum(int(x) for x in f2[1:] if x.isdigit())
        f.write(f"{t:.3f} STAT irq {irq.get('LOC', 0)} {irq.get('RES', 0)} {irq.get('CAL', 0)} {irq.get('TLB', 0)}\n")
        vm = dict(l.split() for l in open("/proc/vmstat"))
        f.write(f"{t:.3f} STAT vm {vm['pgfault']} {vm['pgalloc_normal']} {vm['pgfree']} {vm.get('pgpgout', 0)}\n")
        for p in os.listdir("/proc"):
            if not p.isdigit() or p == me:
                continue
            try:
                tids = os.listdir(f"/proc/{p}/task")
            except OSError:
                continue
            for tid in tids:
                try:
                    st = open(f"/proc/{p}/task/{tid}/stat").read()
                    run, wait, slices = open(f"/proc/{p}/task/{tid}/schedstat").read().split()[:3]
                except OSError:
                    continue
                comm = st[st.index("(") + 1:st.rindex(")")].replace(" ", "_")
                r = st[st.rindex(")") + 2:].split()
                f.write(f"{t:.3f} {p} {tid} {comm} {int(r[11]) + int(r[12])} {run} {wait} {slices} {r[7]}\n")
        f.flush()
        time.sleep(max(0.0, 1 - (time.time() - t)))
