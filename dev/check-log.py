#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Judge a KUnit run: test results from kunit.py's JSON, splats from the log.

Exit status 0 only if every project suite is present, every project test
case passed (skips are reported and not counted as passed; a suite whose
cases all skipped fails), and the kernel log holds no unexpected splat. Peer suites (anything not listed in dev/suites) are
reported separately and never gate.

A test that deliberately provokes a warning declares it by printing the
KTAP diagnostic "# expect-splat: begin <tag>" before and "# expect-splat:
end <tag>" after (kernel::kunit::ExpectSplat); splats between the two are
expected, and a region with no splat at all is itself a failure (the expected warning did not happen).

Options (dev/test passes them per leg):
  --leg ARCH     the leg's arch; the booted kernel's arch and CPU count are
                 read from its log, printed, and must match ARCH
  --smp          a multi-CPU leg: the kernel must have booted with at least
                 two CPUs, and the SMP canary case must have passed
  --numa N       the kernel must have booted with at least N NUMA nodes
  --kcsan        KCSAN reports are judged by their stacks: one that touches
                 project code fails the run, the others are only listed
                 (so is a timekeeping reader/writer pair: TK_READERS)
  --counts FILE  also write "PASSED FAILED DESCRIPTION" to FILE
  --userspace LOG  the boot that ran the sample's userspace test
"""

import json
import re
import sys

# The splat patterns and KTAP markers, shared with dev/stress-report.py.
from jqlog import (FRAME, KCSAN_BEGIN, KCSAN_END, MARK, SPLAT, SUBTEST, SUITE_END,
                   SWEEP, read_log)

# Project code: Rust symbols (v0-mangled "_R..." or demangled) of the
# project's modules, the C helpers, and the sample driver module.
RUST_OURS = re.compile(r"dma_buf|jobqueue|rcu_box|RcuBox|xarray|workqueue")
CANARY = "rust_jobqueue_stress.smp_canary_two_cpus_at_once"
# rust_doctests_kernel holds the doctests of the whole kernel crate; a splat
# in one whose ".location:" is not one of these files is upstream's (peer).
LOCATION = re.compile(r"^\s*# \S+\.location: (\S+?):\d+")
OUR_FILES = re.compile(r"^rust/kernel/(dma_buf/|drm/jobqueue/|drm/syncobj\.rs|"
                       r"sync/rcu|xarray\.rs|workqueue\.rs)")


# KCSAN reports between a reader of the timekeeping core's tk_core that
# returns the time by value (ktime_get() and friends, which read it in a
# seqcount read section and retry on a concurrent update) and the writer that
# updates it under the same seqcount from the tick. The project owns none of
# that data; it only calls the readers (the sample's engine stamps jobs with
# ktime_get()). Such a report is upstream's even when a project frame called
# the reader. Seen once, in CI (the full report is in the message of the
# commit that narrowed this rule): "data-race in ktime_get /
# timekeeping_update_from_shadow". Why KCSAN watched a read that
# read_seqcount_begin() marks atomic is not understood. Readers that store
# through a pointer the caller passes (ktime_get_ts64() ...) are not listed:
# a race on that memory would be the caller's.
TK_READERS = {"ktime_get", "ktime_get_with_offset", "ktime_get_raw", "ktime_get_seconds",
              "ktime_get_real_seconds", "ktime_get_coarse_with_offset", "ktime_mono_to_any",
              "ktime_get_resolution_ns"}
TK_WRITERS = {"timekeeping_update_from_shadow", "timekeeping_advance", "__timekeeping_advance",
              "timekeeping_forward_now", "tk_update_ktime_data"}


def title_is_upstream(title):
    """True for a KCSAN title "BUG: KCSAN: data-race in A / B" of a
    timekeeping reader and writer (TK_READERS, TK_WRITERS), in either order."""
    m = re.search(r"KCSAN: \S+ in (\S+) / (\S+)$", title.strip())
    if not m:
        return False
    pair = {m.group(1), m.group(2)}
    return len(pair) == 2 and bool(pair & TK_READERS) and bool(pair & TK_WRITERS)


def frame_is_ours(sym, module):
    if module == "rust_dummy_gpu" or sym.startswith("rust_helper_"):
        return True
    rust = sym.startswith("_R") or "::" in sym
    return bool(rust and RUST_OURS.search(sym))


def scan(lines, kcsan):
    """Returns (splats, kcsan_ours, kcsan_others) of a list of log lines.

    splats: [(line number, text)] of every splat line, KCSAN reports
    excluded when kcsan is set. The KCSAN lists hold (line number, title) of
    each report, split by whether a frame of its stacks is project code
    (and the report is not a timekeeping pair, title_is_upstream()).
    """
    splats, ours, others = [], [], []
    report = None
    for n, line in enumerate(lines, 1):
        if kcsan:
            m = KCSAN_BEGIN.search(line)
            if m:
                report = [n, line.strip(), False]
                continue
            if report is not None:
                f = FRAME.match(line)
                if f and frame_is_ours(f.group(1), f.group(3)):
                    report[2] = True
                if KCSAN_END.match(line):
                    mine = report[2] and not title_is_upstream(report[1])
                    (ours if mine else others).append((report[0], report[1]))
                    report = None
                continue
        if SPLAT.search(line):
            splats.append((n, line.strip()))
    if report is not None:
        mine = report[2] and not title_is_upstream(report[1])
        (ours if mine else others).append((report[0], report[1]))
    return splats, ours, others


def booted(lines):
    """(arch, CPUs, NUMA nodes) of the kernel that printed lines, from its own
    messages."""
    arch, cpus, nodes, seen = "unknown", None, 1, False
    for line in lines:
        if "Linux version" in line:
            seen = True
        if arch == "unknown":
            if re.search(r"BIOS-e820|x86/fpu:|x86/cpu:", line):
                arch = "x86_64"
            elif re.search(r"Booting Linux on physical CPU|Machine model:", line):
                arch = "arm64"
            elif re.search(r"Checking that ptrace can change system call numbers|"
                           r"Checking PROT_EXEC mmap in|UML running in", line):
                arch = "um"
        m = re.search(r"smp: Brought up (\d+) nodes?, (\d+) CPUs?", line)
        if m:
            nodes, cpus = int(m.group(1)), int(m.group(2))
    if cpus is None and seen:
        cpus = 1
    return arch, cpus, nodes


def walk(group, suites):
    """Collects {suite: [(case, status)]} from kunit.py's JSON tree."""
    name = group.get("name", "")
    cases = group.get("test_cases", [])
    if cases and name:
        suites.setdefault(name, []).extend(
            (c.get("name", "?"), c.get("status", "?")) for c in cases)
    for sub in group.get("sub_groups", []):
        walk(sub, suites)


# The client's kselftest.h output: "ok N name", "not ok N name" after a
# "# name: why" line, "ok N name # SKIP why", and "# Totals: ..." at the end.
USER_CASE = re.compile(r"^(not )?ok (\d+) (.*)$")
USER_SUMMARY = re.compile(r"^# Totals: pass:(\d+) fail:(\d+) xfail:\d+ xpass:\d+ skip:\d+ "
                          r"error:(\d+)$")
USER_EXIT = re.compile(r"jq-run: exit (\d+)")
KTAP_CASE = re.compile(r"^\s+(not )?ok \d+ (\S+)")


def report_kcsan(ours, others, where):
    """Prints KCSAN reports; returns how many gate (touch project code)."""
    for n, title in ours:
        print(f"  KCSAN in project code ({where} line {n}): {title}")
    for n, title in others:
        why = "upstream timekeeping" if title_is_upstream(title) else "elsewhere"
        print(f"  KCSAN {why}, not gating ({where} line {n}): {title}")
    if ours or others:
        print(f"  KCSAN reports: {len(ours)} in project code, {len(others)} elsewhere")
    return len(ours)


def userspace(path, opts):
    """Judges the boot that ran the sample driver's userspace test mode.

    Returns (passed, failed): the client's own counts, plus one failure for
    each splat anywhere in that boot's log, and one if the client did not
    finish (no summary line, or a nonzero exit without failed cases).
    """
    print("\n== Userspace test mode (dummy_gpu_client test) ==")
    print(f"  full log: {path}")
    passed = failed = 0
    summary = rc = None
    try:
        lines = read_log(path)
    except OSError as e:
        print(f"  cannot read: {e}")
        return 0, 1
    arch, cpus, nodes = booted(lines)
    print(f"  booted: {arch}, {cpus} CPU(s), {nodes} node(s)")
    failed += check_machine(arch, cpus, nodes, opts)
    skipped = []
    # The client's TAP starts after the KUnit results (boot and debugfs re-run).
    marks = [i for i, l in enumerate(lines) if "jq-kunit: results end" in l] or \
        [i for i, l in enumerate(lines) if "jq-run: begin" in l]
    start = marks[-1] + 1 if marks else 0
    prev = ""
    for n, line in enumerate(lines):
        m = USER_CASE.match(line.strip()) if n >= start else None
        if m and m.group(1):
            why = prev[len(m.group(3)) + 4:] if prev.startswith(f"# {m.group(3)}: ") else ""
            print(f"  FAIL {m.group(2)} - {m.group(3)}{': ' + why if why else ''}")
        elif m and "# SKIP" in line:
            skipped.append(m.group(3))
        m = USER_SUMMARY.match(line.strip()) if n >= start else None
        if m:
            summary = (int(m.group(1)), int(m.group(2)) + int(m.group(3)))
        prev = line.strip()
        m = USER_EXIT.search(line)
        if m:
            rc = int(m.group(1))
    splats, k_ours, k_others = scan(lines, opts["kcsan"])
    if summary is None:
        print("  the client printed no summary (crashed or never ran)")
        failed += 1
    else:
        passed, failed_cases = summary
        failed += failed_cases
        print(f"  cases: {passed} passed, {failed_cases} failed, {len(skipped)} skipped")
        # A case skips only where the machine cannot run it (UML has no ftrace); on the
        # QEMU legs a skipped case tested nothing and fails the run.
        if arch != "um":
            for name in skipped:
                print(f"  FAIL (skipped on {arch}) {name}")
            failed += len(skipped)
    # The KUnit fail-nth suite, re-run through debugfs with GFP_KERNEL faults
    # on, after the boot's run: between its markers the guest prints the
    # re-run's results and sweeps. Every case must pass and all five sweeps of
    # the re-run must have injected faults.
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
        print(f"  SPLAT (log line {n}): {text}{leak_origin(lines, n)}")
    failed += len(splats)
    print(f"  splats: {len(splats)}")
    failed += report_kcsan(k_ours, k_others, "log")
    return passed, failed


# Allocator and kmemleak frames, skipped when naming where a leak came from.
ALLOC_FRAME = re.compile(r"kmemleak|kmalloc|kmem_cache|slab|alloc_hooks|krealloc|"
                         r"kvmalloc|kasan|__alloc|alloc_pages|_noprof$")


def leak_origin(lines, n):
    """For a kmemleak "unreferenced object" line (1-based n), its task and the
    first frames past the allocator, so that a report read only from the
    summary (CI) says what leaked."""
    if "unreferenced object" not in lines[n - 1]:
        return ""
    comm, frames = "", []
    for line in lines[n:n + 30]:
        if "unreferenced object" in line:
            break
        m = re.search(r'comm "([^"]*)"', line)
        if m:
            comm = m.group(1)
        f = FRAME.match(line)
        if f and not ALLOC_FRAME.search(f.group(1)):
            frames.append(f.group(1))
    return f' [comm "{comm}"; {" < ".join(frames[:4])}]'


def check_machine(arch, cpus, nodes, opts):
    """Failures for a booted machine that is not what the leg claims."""
    bad = 0
    if opts["leg"] and arch != opts["leg"]:
        print(f"  FAIL: the leg is {opts['leg']} but the kernel booted as {arch}")
        bad += 1
    if opts["smp"] and (cpus or 0) < 2:
        print(f"  FAIL: a multi-CPU leg booted with {cpus} CPU(s)")
        bad += 1
    if opts["numa"] and nodes < int(opts["numa"]):
        print(f"  FAIL: the leg needs {opts['numa']} NUMA nodes, it booted with {nodes}")
        bad += 1
    return bad


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


def take(args, flag, value=False):
    """Removes --flag (and its value) from args; returns the value or a bool."""
    if flag not in args:
        return None if value else False
    i = args.index(flag)
    v = args[i + 1] if value else True
    del args[i:i + (2 if value else 1)]
    return v


def boot_ok(path):
    """--boot-ok LOG: exit 0 if the KUnit boot got to its first suite without a
    splat, and finished; else print why (dev/kernel.sh then boots once more)."""
    lines = read_log(path)
    first = next((n for n, l in enumerate(lines) if SUBTEST.match(l)), None)
    if first is None:
        print("no KUnit suite started (hang or crash during boot)")
        sys.exit(1)
    early = [l.strip() for l in lines[:first] if SPLAT.search(l)]
    if early:
        print(f"splat during boot, before any test: {early[0]}")
        sys.exit(1)
    # Finished: the full run's last suite, or its totals, or (a filtered run,
    # e.g. the benchmarks) an orderly shutdown after the tests, which a
    # panic does not print.
    shutdown = re.compile(r"reboot: (Restarting system|Power down|System halted)")
    if not any(re.match(r"^(not )?ok \d+ rust_doctests_kernel", l) for l in lines) \
            and not any("# Totals" in l for l in lines[-5:]) \
            and not any(shutdown.search(l) for l in lines[first:]):
        print("the run did not finish")
        sys.exit(1)
    sys.exit(0)


def main():
    args = sys.argv[1:]
    if args[:1] == ["--splats"]:
        splats_only(args[1])
    if args[:1] == ["--boot-ok"]:
        boot_ok(args[1])
    opts = {
        "leg": take(args, "--leg", True),
        "smp": take(args, "--smp"),
        "numa": take(args, "--numa", True),
        "kcsan": take(args, "--kcsan"),
    }
    counts_path = take(args, "--counts", True)
    user_log = take(args, "--userspace", True)
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
    try:
        lines = read_log(log_path)
    except OSError as e:
        print(f"cannot read the kernel log {log_path}: {e}")
        lines = []
    arch, cpus, nodes = booted(lines)
    desc = f"{arch}, {cpus} CPU(s)" + (f", {nodes} NUMA nodes" if nodes > 1 else "")
    print(f"\n== KUnit boot: {desc} ==")
    import os
    retries = os.path.join(os.path.dirname(log_path), "retries")
    if os.path.exists(retries):
        for line in open(retries):
            print(f"  note: {line.strip()} (that boot: {log_path}.boot1)")
    machine_bad = check_machine(arch, cpus, nodes, opts)

    # Splats, attributed to the suite that was running.
    current = suite = "(boot)"
    open_marks = {}
    unexpected = []
    expected_seen = 0
    splat_lines = {n for n, _ in scan(lines, opts["kcsan"])[0]}
    for n, line in enumerate(lines, 1):
        m = SUBTEST.match(line)
        loc = LOCATION.match(line)
        if m and m.group(1) not in ("", "main"):
            current = suite = m.group(1)
        elif loc and current.startswith("rust_doctests_kernel"):
            current = suite if OUR_FILES.match(loc.group(1)) else \
                f"{suite} (upstream doctest {loc.group(1)})"
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
        if n in splat_lines:
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
        # A suite that skipped every case tested nothing.
        all_skipped = sk > 0 and p == 0 and fl == 0
        if all_skipped:
            failed += 1
            ok = False
        print(f"  {'ok  ' if fl == 0 and not all_skipped else 'FAIL'}     {s}: {p} passed, "
              f"{fl} failed, {sk} skipped{' (every case skipped)' if all_skipped else ''}")
        for c, st in suites[s]:
            if st not in ("PASS", "SKIP"):
                print(f"           {st}: {s}.{c}")
                ok = False
    if opts["smp"]:
        suite, case = CANARY.split(".")
        if suite in expected:
            st = dict(suites.get(suite, [])).get(case, "MISSING")
            print(f"  SMP canary {CANARY}: {st}")
            if st != "PASS":
                failed += 1
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
    if opts["kcsan"]:
        _, k_ours, k_others = scan(lines, True)
        failed += report_kcsan(k_ours, k_others, "log")
    failed += machine_bad
    if user_log:
        p, fl = userspace(user_log, opts)
        passed += p
        failed += fl
    leg = opts["leg"] or arch
    print(f"{leg} leg ({desc}): {passed} passed, {failed} failed")
    if counts_path:
        with open(counts_path, "w") as f:
            f.write(f"{passed} {failed} {leg} leg ({desc}{', KCSAN' if opts['kcsan'] else ''})\n")
    sys.exit(0 if ok and failed == 0 else 1)


if __name__ == "__main__":
    main()
