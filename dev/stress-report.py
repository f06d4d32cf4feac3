#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Summary of a dev/stress run, from the stress kernel's console log.

Prints one table; exits 1 if any failure figure is nonzero (or a phase did
not report at all), else 0. Usage: dev/stress-report.py LOG
"""

import re
import sys

# The kernel report patterns, shared with dev/check-log.py.
from jqlog import KINDS, SWEEP, kind, read_log

STAT = re.compile(r"jq-stat: (\S+) (-?\d+)")
KTAP = re.compile(r"^\s*(not )?ok \d+ (\S+)(.*)$")


def main(path):
    lines = read_log(path)
    stats, reports, kunit = {}, {k: [] for k, _ in KINDS}, []
    in_kunit = in_final = False
    for n, line in enumerate(lines, 1):
        m = STAT.search(line)
        if m:
            stats[m.group(1)] = stats.get(m.group(1), 0) + int(m.group(2))
            continue
        if "jq-stress: kunit results begin" in line:
            in_kunit = True
            continue
        if "jq-stress: kunit results end" in line:
            in_kunit = False
            continue
        if "jq-kmemleak: report begin" in line:
            in_final = True
        elif "jq-kmemleak: report end" in line:
            in_final = False
        elif in_final and "unreferenced object" in line:
            stats["kmemleak.final"] = stats.get("kmemleak.final", 0) + 1
        if in_kunit:
            m = KTAP.match(line)
            if m and m.group(2) != "rust_jobqueue_failnth":
                kunit.append((m.group(2), not m.group(1), "# SKIP" in m.group(3)))
            continue
        k = kind(line)
        if k:
            reports[k].append((n, line.strip()))

    def s(name, default=None):
        return stats.get(name, default)

    kmemleak = sum(v for k, v in stats.items() if k.startswith("kmemleak.")
                   and k != "kmemleak.boot")
    kunit_bad = sum(1 for _, ok, skip in kunit if not ok or skip)
    # Each of the 5 KUnit sweeps (queue creation, prepare with 0/1/16 deps,
    # unarmed sync_file) must have injected faults.
    kunit_sweeps = [int(m.group(1)) for m in (SWEEP.search(l) for l in lines) if m]
    faults = s("failnth.faults_injected", 0) + sum(kunit_sweeps)
    kunit_bad += 0 if len(kunit_sweeps) >= 5 and min(kunit_sweeps) > 0 else 1
    client_fail = sum(1 for k in ("failnth.client_rc", "stress.client_rc",
                                  "unload.client_rc", "fuzz.client_rc",
                                  "insmod.rc", "rmmod.rc")
                      if s(k) is None or s(k) != 0)
    rows = [
        # (figure, value, is a failure figure)
        ("jobs run (stress)", s("stress.jobs", 0), False),
        ("  dependencies / sw_sync fences", f'{s("stress.deps", 0)} / '
         f'{s("stress.sw_fences", 0)}', False),
        ("  faulting / hanging jobs", f'{s("stress.faults", 0)} / '
         f'{s("stress.hangs", 0)}', False),
        ("  file closes / process kills", f'{s("stress.closes", 0)} / '
         f'{s("stress.kills", 0)}', False),
        ("  out-fence status ok / EIO / ETIMEDOUT / ECANCELED",
         f'{s("stress.status_ok", 0)} / {s("stress.status_eio", 0)} / '
         f'{s("stress.status_etimedout", 0)} / {s("stress.status_ecanceled", 0)}', False),
        ("faults injected (KUnit + ioctl fail-nth)", faults, False),
        ("  KUnit rust_jobqueue_failnth: cases ok, sweeps", f"{len(kunit) - kunit_bad}/"
         f"{len(kunit)}, {len(kunit_sweeps)}", False),
        ("ioctls fuzzed", s("fuzz.ioctls", 0), False),
        ("lockdep reports", len(reports["lockdep"]), True),
        ("KASAN reports", len(reports["KASAN"]), True),
        ("kmemleak leaks (after each phase)", kmemleak, True),
        ("WARN reports", len(reports["WARN"]), True),
        ("debugobjects reports", len(reports["debugobjects"]), True),
        ("BUG/Oops/stall reports", len(reports["BUG/Oops"]), True),
        ("unsignalled fences", s("stress.unsignalled", 0) + s("fuzz.unsignalled", 0), True),
        ("counter imbalance (stress, fuzz)", s("stress.counter_imbalance", 1) +
         s("fuzz.counter_imbalance", 1), True),
        ("wrong fence status / failed submits", s("stress.bad_status", 0) +
         s("stress.submit_errors", 0) + s("stress.worker_failures", 0), True),
        ("failed client checks (fail-nth, unload)", s("failnth.failed_checks", 1) +
         s("unload.failed_checks", 1), True),
        ("failed/skipped KUnit fail-nth cases or sweeps",
         kunit_bad + (0 if kunit else 1), True),
        ("phases that failed or did not finish", client_fail, True),
        ("lockdep switched off by the end", 0 if s("lockdep.debug_locks") == 1 else 1, True),
    ]
    print("\n=== dev/stress summary ===")
    print(f"| {'figure':<52} | {'value':>28} |")
    print(f"|{'-' * 54}|{'-' * 30}|")
    failed = 0
    for name, value, is_failure in rows:
        bad = is_failure and value != 0
        failed += bad
        mark = "  <-- FAIL" if bad else ""
        print(f"| {name:<52} | {value!s:>28} |{mark}")
    errnos = [l.split("jq-errno: ", 1)[1] for l in lines if "jq-errno: " in l]
    if errnos:
        print("\nfuzzed ioctls by result: " + ", ".join(errnos))
    for what, found in reports.items():
        for n, line in found[:5]:
            print(f"  {what} at log line {n}: {line}")
    for k, v in sorted(stats.items()):
        if k.startswith("kmemleak.") and v:
            print(f"  {k}: {v} leak(s) (see the report in the log)")
    print(f"log: {path}")
    print("stress: PASSED" if not failed else f"stress: FAILED ({failed} failure figures)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
