#!/usr/bin/env python3
"""Where a latency tail waits for a CPU: per-thread scheduling delay under a load.

Runs COMMAND under `perf sched record` (system-wide, all CPUs), then reads
`perf sched timehist` and prints, per thread group (the thread name with
digits and pool suffixes folded: `SendMessageThr`, `broker-io`, ...), how many
times its threads were switched in, their scheduling delay (wake-up to
running: the time a woken thread waited for a CPU) p50/p99/p99.9/max, and
their total run time. Threads of processes not named in --keep are summed
into one row per process name, so a compiler running beside the benchmark
shows up as what it is.

    sudo bench-harness/scripts/sched-delay.py --out /tmp/sched.txt -- \
        target/release/ferromq-bench broker --broker 127.0.0.1:10911 \
        --producers 1 --inflight 16 --consumers 1 --rate 10000 --seconds 5

Needs `perf` with the sched tracepoints (root, or perf_event_paranoid <= 1).
Nothing in CI runs it; it is a diagnostic for issue 19's send -> consume tail.
"""
import argparse
import re
import subprocess
import sys
import tempfile
import os

ROW = re.compile(
    r"^\s*(?P<time>\d+\.\d+)\s+\[(?P<cpu>\d+)\]\s+(?P<name>.+?)\[(?P<tid>\d+)(?:/(?P<pid>\d+))?\]"
    r"\s+(?P<wait>\d+\.\d+)\s+(?P<delay>\d+\.\d+)\s+(?P<run>\d+\.\d+)"
)


def group_name(name: str) -> str:
    """Fold per-thread numbers: `SendMessageThr-1` and `-0` are one group."""
    return re.sub(r"[-_ #:]?\d+$", "", name.strip()) or name.strip()


def pct(sorted_vals, q):
    if not sorted_vals:
        return 0.0
    i = min(len(sorted_vals) - 1, int(q * len(sorted_vals)))
    return sorted_vals[i]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="also write the table here")
    ap.add_argument("--min-switches", type=int, default=20, help="hide groups switched in fewer times")
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if not cmd:
        ap.error("give the command to run after --")
    with tempfile.TemporaryDirectory(prefix="sched-delay-") as tmp:
        data = os.path.join(tmp, "perf.data")
        rc = subprocess.call(["perf", "sched", "record", "-a", "-o", data, "--"] + cmd)
        hist = subprocess.run(
            ["perf", "sched", "timehist", "-i", data],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=True,
        ).stdout
    groups = {}
    for line in hist.splitlines():
        m = ROW.match(line)
        if not m or m.group("name").startswith("<idle>"):
            continue
        g = groups.setdefault(group_name(m.group("name")), {"delay": [], "run": 0.0})
        g["delay"].append(float(m.group("delay")) * 1000.0)  # ms -> us
        g["run"] += float(m.group("run"))
    rows = []
    for name, g in groups.items():
        d = sorted(g["delay"])
        if len(d) < a.min_switches:
            continue
        rows.append((name, len(d), pct(d, 0.5), pct(d, 0.99), pct(d, 0.999), d[-1], g["run"]))
    rows.sort(key=lambda r: -r[6])
    out = ["| thread group | switched in | sched delay p50 us | p99 us | p99.9 us | max us | run ms |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r[0]} | {r[1]} | {r[2]:.0f} | {r[3]:.0f} | {r[4]:.0f} | {r[5]:.0f} | {r[6]:.1f} |")
    text = "\n".join(out)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    return rc


if __name__ == "__main__":
    sys.exit(main())
