#!/usr/bin/env python3
"""summarize.py PREFIX: one markdown row per run-PREFIX-* (out.json of ferromq-bench broker --json)."""
import glob, json, sys, os, statistics
pre = sys.argv[1]
rows = []
def fmt(ms):
    for u, n in (("h", 3600000), ("m", 60000), ("s", 1000)):
        if ms % n == 0:
            return f"{ms//n}{u}"
    return f"{ms}ms"
for d in sorted(glob.glob(f"run-{pre}-*"), key=lambda p: int(p.split('-')[-2]) if p.split('-')[-2].isdigit() else 0):
    try:
        v = json.loads(open(os.path.join(d, "out.json")).read().strip().splitlines()[-1])
    except Exception as e:
        print(f"| {d} | no result ({e}) |"); continue
    f, w = v["figures"], v["workload"]
    m = f.get("broker_memory") or {}
    rows.append((d[4:], ("timer " + ",".join(fmt(x) for x in w["timer_delays_ms"])) if w.get("timer_delays_ms") else "plain",
                 f["messages"], f["seconds"], f["msgs_per_sec"], f["latency_us"]["p50"], f["latency_us"]["p99"],
                 f.get("broker_cpu_ns_per_msg") or 0, m.get("vm_rss_kib", 0)/1024, m.get("rss_anon_kib", 0)/1024, f["errors"]))
print("| run | kind | msgs acked | s | msgs/s | send->ack p50 us | p99 us | broker CPU ns/msg | VmRSS MiB | RssAnon MiB | errors |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.1f} | {r[4]:.0f} | {r[5]:.1f} | {r[6]:.1f} | {r[7]:.0f} | {r[8]:.1f} | {r[9]:.1f} | {r[10]} |")
pl = [r[4] for r in rows if r[1] == "plain"]; tm = [r[4] for r in rows if r[1] != "plain"]
if pl and tm:
    print(f"\nplain median {statistics.median(pl):.0f} msgs/s (n={len(pl)}, {min(pl):.0f}-{max(pl):.0f}); "
          f"timer median {statistics.median(tm):.0f} msgs/s (n={len(tm)}, {min(tm):.0f}-{max(tm):.0f}); "
          f"timer/plain {statistics.median(tm)/statistics.median(pl):.2f}")
