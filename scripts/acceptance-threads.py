#!/usr/bin/env python3
"""Where the machine's CPU went in each stage of an acceptance run.

    scripts/acceptance-threads.py OUT_DIR

OUT_DIR is a scripts/rebalance-acceptance.sh output directory run with
THREADS=1 (OUT_DIR/threads.txt, from scripts/thread-sample.py). Splits the
run into before; copy (first copy start to last cutover), bake (to the
first cleanup), cleanup (to the last move's end); after (or before,
during, after when nothing moved) and prints, per stage:
- the machine: busy ticks a second out of 100 per CPU (wall minus idle,
  iowait and steal; the kernel's user and system ticks drift on some VMs,
  see docs/disruption-budget.md), context switches, interrupts (with the local
  timer's and the inter-processor kinds: rescheduling, function call, TLB
  shootdown), softirqs and page faults a second;
- per thread group (threads named alike, per process; a node's bulk,
  writer and reader threads each on their own): % of a core, run-queue
  wait in ms a second and µs per time slice, and minor faults a second.
A rise that no group shows is outside the processes (the kernel, or the
host); one the runtime workers show is the request path itself, or the
machine charging more per unit of work: a line after the table divides
the runtime workers' CPU by the bench's load thread's, whose work per
request is the same in every stage, and the last gives the runtime
workers' time slices a second and CPU per slice.
"""
import collections, json, re, sys

out = sys.argv[1]
r = json.load(open(f"{out}/report.json"))
t0 = r["started_unix_ms"] / 1000
phases = {p["name"]: (p["start_s"], p["end_s"]) for p in r["timeline"]["phases"]}
moves = (r.get("migrations") or {}).get("migrations") or []
stages = {"before": phases["before"]}
if moves:
    copied = max(m["completed_s"] for m in moves)
    cleaning = min(m["cleanup_s"] for m in moves)
    stages["copy"] = (min(m["copy_s"] for m in moves), copied)
    if cleaning > copied:
        stages["bake"] = (copied, cleaning)
    stages["cleanup"] = (cleaning, max(m["end_s"] for m in moves))
else:
    stages["during"] = phases["during"]
stages["after"] = phases["after"]

threads = collections.defaultdict(list)
machine = collections.defaultdict(list)
names = {}
for line in open(f"{out}/threads.txt"):
    f = line.split()
    t = float(f[0]) - t0
    if f[1] == "STAT":
        machine[f[2]].append((t, [int(x) for x in f[3:]]))
        continue
    pid, tid, comm = f[1], f[2], f[3]
    threads[(pid, tid)].append((t, comm, *map(int, f[4:9])))
    if pid == tid:
        names[pid] = comm


def group(pid, comm):
    m = re.match(r"(ek-(?:bulk|writer|reader)-\d+)", comm)
    if m:
        g = m.group(1)
    else:
        g = re.sub(r"[-\d]+$", "", re.sub(r"[/:]\S*$", "", comm))
    proc = names.get(pid, "?")
    return f"{proc}:{g}" if proc in ("evenkeel", "python3") else g


def per_second(key, a, b):
    s = [x for x in machine[key] if a <= x[0] < b]
    if len(s) < 2:
        return None
    el = s[-1][0] - s[0][0]
    return [(y - x) / el for x, y in zip(s[0][1], s[-1][1])]


print("stages (s):", ", ".join(f"{n} {a:.0f}-{b:.0f}" for n, (a, b) in stages.items()))
for n, (a, b) in stages.items():
    cpu, ctxt, intr, soft, vm = (per_second(k, a, b) for k in ("cpu", "ctxt", "intr", "softirq", "vm"))
    if not cpu:
        print(f"{n:8} (no samples)")
        continue
    cpus = sum(1 for k in machine if re.fullmatch(r"cpu\d+", k))
    busy = 100 * cpus - (cpu[3] + cpu[4] + cpu[7])
    irq = per_second("irq", a, b)
    kinds = f" (timer {irq[0]:.0f}, resched {irq[1]:.0f}, call {irq[2]:.0f}, tlb {irq[3]:.0f})" if irq else ""
    print(f"{n:8} busy {busy:.0f} of {100 * cpus} ticks/s, ctxt {ctxt[0]:.0f}/s, interrupts {intr[0]:.0f}/s{kinds}, softirqs {soft[0]:.0f}/s, page faults {vm[0]:.0f}/s")

table = collections.defaultdict(dict)
for n, (a, b) in stages.items():
    acc = collections.defaultdict(lambda: [0.0, 0.0, 0, 0, 0.0, 0.0])
    for (pid, _), rows in threads.items():
        inside = [x for x in rows if a <= x[0] < b]
        if len(inside) < 2:
            continue
        first, last = inside[0], inside[-1]
        el = last[0] - first[0]
        g = acc[group(pid, last[1])]
        g[0] += (last[3] - first[3]) / el / 1e7  # run ns -> % of a core
        g[1] += (last[4] - first[4]) / el / 1e6  # wait ns -> ms a second
        g[2] += last[5] - first[5]               # slices
        g[3] += last[4] - first[4]               # wait ns
        g[4] += (last[6] - first[6]) / el        # faults a second
        g[5] += (last[5] - first[5]) / el        # slices a second
    for g, v in acc.items():
        table[g][n] = v

cols = list(stages)
print()
print("group".ljust(28) + "".join(f"{n:>34}" for n in cols))
print(" " * 28 + "".join(f"{'cpu%  wait ms/s  µs/slice  flt/s':>34}" for _ in cols))
for g in sorted(table, key=lambda g: -max(v[0] for v in table[g].values()))[:20]:
    cells = []
    for n in cols:
        v = table[g].get(n)
        cells.append(f"{v[0]:6.1f} {v[1]:9.1f} {v[3] / 1e3 / v[2] if v[2] else 0:9.0f} {v[4]:6.0f}" if v else "")
    print(g[:28].ljust(28) + "".join(f"{c:>34}" for c in cells))

# The bench's load thread does the same work for every request in every
# stage, so its CPU is a yardstick for what the machine charges per unit of
# work: on these VMs a busier machine makes every thread's CPU time per
# request grow (the bench's own rose 11% in a copy stage). The runtime
# workers' CPU over it is the request path's cost with that drift taken out;
# a rise there that the control run does not show is the cluster's own.
yard = table.get("evenkeel:bench-load", {})
work = table.get("evenkeel:tokio-rt-worker", {})
if all(yard.get(n) and work.get(n) for n in cols):
    print()
    print("runtime workers' CPU over the bench's load thread's (request path per unit of work):",
          ", ".join(f"{n} {work[n][0] / yard[n][0]:.2f}" for n in cols))
    # How the runtime workers ran: time slices a second (schedstat's count
    # of times on a CPU, summed over the workers) and CPU per slice. On the
    # test VMs their CPU was higher whenever their slices were fewer and
    # longer, with or without a rebalance (docs/disruption-budget.md, "A
    # third kind of test VM").
    print("runtime workers' time slices:", ", ".join(
        f"{n} {work[n][5]:.0f}/s of {work[n][0] * 1e4 / work[n][5]:.1f} µs CPU" if work[n][5] else f"{n} -" for n in cols))
