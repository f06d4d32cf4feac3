#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Judge a KUnit run: test results from kunit.py's JSON, splats from the log.

Exit status 0 only if every project suite is present, every project test
case passed (skips are reported but do not fail), and the kernel log holds no
unexpected splat. Peer suites (anything not listed in dev/suites) are
reported separately and never gate.

A test that deliberately provokes a warning declares it by printing
"jq-expect-splat: begin <tag>" before and "jq-expect-splat: end <tag>"
after; splats between the two are expected, and a region with no splat at
all is itself a failure (the expected warning did not happen).
"""

import json
import re
import sys

SPLAT = re.compile(
    r"WARNING:|BUG:|\bOops\b|Kernel panic|general protection fault|"
    r"KASAN:|UBSAN:|unreferenced object 0x|kmemleak: \d+ new suspected|"
    r"INFO: (possible|inconsistent|trying to register|task .* blocked)|"
    r"rcu: INFO: .*stall|ODEBUG:|list_(add|del) corruption|"
    r"turning off the locking correctness validator|"
    r"enqueued on deprecated workqueue")
MARK = re.compile(r"jq-expect-splat: (begin|end) (\S+)")
SUBTEST = re.compile(r"^\s*# Subtest: (\S+)")
SUITE_END = re.compile(r"^(not )?ok \d+ \S")


def walk(group, suites):
    """Collects {suite: [(case, status)]} from kunit.py's JSON tree."""
    name = group.get("name", "")
    cases = group.get("test_cases", [])
    if cases and name:
        suites.setdefault(name, []).extend(
            (c.get("name", "?"), c.get("status", "?")) for c in cases)
    for sub in group.get("sub_groups", []):
        walk(sub, suites)


USER_CASE = re.compile(r"^(not )?ok (\d+) - (.*)$")
USER_SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed$")
USER_EXIT = re.compile(r"jq-run: exit (\d+)")
KTAP_CASE = re.compile(r"^\s+(not )?ok \d+ (\S+)")
SWEEP = re.compile(r"jq-stat: kunit.faults_injected (\d+)")


def userspace(path):
    """Judges the boot that ran the sample driver's userspace test mode.

    Returns (passed, failed): the client's own counts, plus one failure for
    each splat anywhere in that boot's log, and one if the client did not
    finish (no summary line, or a nonzero exit without failed cases).
    """
    print("\n== Userspace test mode (dummy_gpu_client test) ==")
    print(f"  full log: {path}")
    passed = failed = 0
    summary = rc = None
    splats = []
    try:
        lines = open(path, errors="replace").read().splitlines()
    except OSError as e:
        print(f"  cannot read: {e}")
        return 0, 1
    for n, line in enumerate(lines, 1):
        m = USER_CASE.match(line.strip())
        if m and m.group(1):
            print(f"  FAIL {m.group(2)} - {m.group(3)}")
        m = USER_SUMMARY.match(line.strip())
        if m:
            summary = (int(m.group(1)), int(m.group(2)))
        m = USER_EXIT.search(line)
        if m:
            rc = int(m.group(1))
        if SPLAT.search(line):
            splats.append((n, line.strip()))
    if summary is None:
        print("  the client printed no summary (crashed or never ran)")
        failed += 1
    else:
        passed, failed = summary
        print(f"  cases: {passed} passed, {failed} failed")
    # The KUnit fail-nth suite, re-run through debugfs with GFP_KERNEL faults
    # on (at boot they are off and its cases sweep nothing): every case must
    # pass and all five sweeps must have injected faults.
    kcases, sweeps, in_k = [], [], False
    for line in lines:
        if "jq-kunit: results begin" in line:
            in_k = True
        elif "jq-kunit: results end" in line:
            in_k = False
        elif in_k:
            m = KTAP_CASE.match(line)
            if m:
                kcases.append((m.group(2), not m.group(1) and "# SKIP" not in line))
        m = SWEEP.search(line)
        if m:
            sweeps.append(int(m.group(1)))
    kbad = [name for name, good in kcases if not good]
    if not kcases or kbad or len(sweeps) < 5 or min(sweeps) == 0:
        print(f"  KUnit fail-nth re-run: cases {len(kcases)}, failed or skipped {kbad}, "
              f"faults per sweep {sweeps}")
        failed += 1
    else:
        print(f"  KUnit fail-nth re-run: {len(kcases)} cases passed; "
              f"faults per sweep {sweeps}")
        passed += len(kcases)
    if rc != 0 and failed == 0:
        print(f"  client exit status {rc}")
        failed += 1
    for n, text in splats:
        print(f"  SPLAT (log line {n}): {text}")
    failed += len(splats)
    print(f"  splats: {len(splats)}")
    return passed, failed


def splats_only(path):
    """--splats LOG: prints the splats of a plain boot log; exit 1 if any."""
    n_found = 0
    with open(path, errors="replace") as f:
        for n, line in enumerate(f, 1):
            if SPLAT.search(line):
                print(f"  SPLAT (log line {n}): {line.strip()}")
                n_found += 1
    print(f"splats: {n_found}")
    sys.exit(1 if n_found else 0)


def main():
    args = sys.argv[1:]
    if args[:1] == ["--splats"]:
        splats_only(args[1])
    user_log = None
    if "--userspace" in args:
        i = args.index("--userspace")
        user_log = args[i + 1]
        del args[i:i + 2]
    log_path, json_path, suites_path = args[0:3]
    flt = args[3] if len(args) > 3 else ""
    expected = [l.strip() for l in open(suites_path)
                if l.strip() and not l.startswith("#")]
    if flt:
        # With a filter, only the suites it selects are expected.
        import fnmatch
        expected = [s for s in expected
                    if fnmatch.fnmatch(s, flt.split(".")[0])]
    suites = {}
    try:
        walk(json.load(open(json_path)), suites)
    except (OSError, ValueError) as e:
        print(f"cannot read KUnit JSON {json_path}: {e}")
    ok = True

    # Splats, attributed to the suite that was running.
    current = "(boot)"
    open_marks = {}
    unexpected = []
    expected_seen = 0
    with open(log_path, errors="replace") as f:
        for n, line in enumerate(f, 1):
            m = SUBTEST.match(line)
            if m and m.group(1) not in ("", "main"):
                current = m.group(1)
            elif SUITE_END.match(line):
                # A suite finished; what follows until the next one (or after the
                # last one: the kmemleak scan of --kasan) is not a suite's.
                current = "(after tests)"
            m = MARK.search(line)
            if m:
                what, tag = m.groups()
                if what == "begin":
                    open_marks[tag] = 0
                elif tag in open_marks:
                    if open_marks.pop(tag) == 0:
                        unexpected.append((current, n,
                            f"declared splat '{tag}' did not happen"))
                continue
            if SPLAT.search(line):
                if open_marks:
                    for t in open_marks:
                        open_marks[t] += 1
                    expected_seen += 1
                else:
                    unexpected.append((current, n, line.strip()))
    for t in open_marks:
        unexpected.append((current, 0, f"declared splat '{t}' never ended"))

    ours = lambda s: s in expected or s in ("(boot)", "(after tests)")
    print("\n== Project suites ==")
    passed = failed = skipped = 0
    for s in expected:
        if s not in suites:
            print(f"  MISSING  {s}")
            failed += 1
            ok = False
            continue
        p = sum(1 for _, st in suites[s] if st == "PASS")
        sk = sum(1 for _, st in suites[s] if st == "SKIP")
        fl = len(suites[s]) - p - sk
        passed += p; failed += fl; skipped += sk
        print(f"  {'ok  ' if fl == 0 else 'FAIL'}     {s}: {p} passed, {fl} failed, {sk} skipped")
        for c, st in suites[s]:
            if st not in ("PASS", "SKIP"):
                print(f"           {st}: {s}.{c}")
                ok = False
    peers = [s for s in suites if s not in expected]
    if peers:
        print("\n== Peer suites (reported, not gating) ==")
        for s in peers:
            p = sum(1 for _, st in suites[s] if st == "PASS")
            sk = sum(1 for _, st in suites[s] if st == "SKIP")
            fl = len(suites[s]) - p - sk
            print(f"  {s}: {p} passed, {fl} failed, {sk} skipped")
            for c, st in suites[s]:
                if st not in ("PASS", "SKIP"):
                    print(f"           {st}: {s}.{c}")

    print("\n== Kernel log ==")
    print(f"  full log: {log_path}")
    print(f"  declared (expected) splat lines: {expected_seen}")
    gating = [u for u in unexpected if ours(u[0])]
    peer_splats = [u for u in unexpected if not ours(u[0])]
    for s, n, text in gating:
        print(f"  SPLAT in {s} (log line {n}): {text}")
    for s, n, text in peer_splats:
        print(f"  peer splat in {s} (log line {n}, not gating): {text}")
    if gating:
        ok = False
        failed += len(gating)
    print(f"  unexpected splats: {len(gating)}")
    if user_log:
        p, fl = userspace(user_log)
        passed += p
        failed += fl
    print(f"{passed} passed, {failed} failed")
    sys.exit(0 if ok and failed == 0 else 1)


if __name__ == "__main__":
    main()
