# SPDX-License-Identifier: GPL-2.0
"""What the harness recognises in a kernel console log, in one place.

Imported by dev/check-log.py (dev/test, dev/run) and dev/stress-report.py
(dev/stress), which run as scripts from dev/, so "import jqlog" finds this
file. Each kind of kernel report (a "splat") is one pattern; SPLAT, which
gates dev/test and dev/run, is any of them; dev/stress counts them by kind.
"""

import re

# Lockdep's own reports. They also start with "WARNING:", so they are
# matched before WARN when counting by kind.
LOCKDEP = (r"WARNING: (possible|inconsistent|suspicious RCU|held lock|lock held|"
           r"bad unlock|nested lock|Nested lock)|INFO: (possible|inconsistent|"
           r"trying to register)|inconsistent lock state|"
           r"turning off the locking correctness validator|DEBUG_LOCKS_WARN_ON")
KASAN = r"BUG: KASAN|KASAN:"
DEBUGOBJECTS = r"ODEBUG:"
WARN = r"WARNING:|enqueued on deprecated workqueue"
BUG = (r"BUG:|\bOops\b|Kernel panic|general protection fault|UBSAN:|"
       r"list_(add|del) corruption|rcu: INFO: .*stall|INFO: task .* blocked")
# kmemleak's report (dev/stress counts leaks from its own scans instead).
KMEMLEAK = r"unreferenced object 0x|kmemleak: \d+ new suspected"

# Kernel reports by kind, in matching order (the first that matches counts).
KINDS = [
    ("lockdep", re.compile(LOCKDEP)),
    ("KASAN", re.compile(KASAN)),
    ("debugobjects", re.compile(DEBUGOBJECTS)),
    ("WARN", re.compile(WARN)),
    ("BUG/Oops", re.compile(BUG)),
]
# Any splat: a line that fails dev/test and dev/run outside a declared region.
SPLAT = re.compile("|".join((LOCKDEP, KASAN, DEBUGOBJECTS, WARN, BUG, KMEMLEAK)))

# A declared splat region: a test that provokes a warning on purpose prints
# "# expect-splat: begin <tag>" before and "# expect-splat: end <tag>" after.
MARK = re.compile(r"# expect-splat: (begin|end) (\S+)")

# KTAP structure: a suite starts, a suite (or the whole run) ends.
SUBTEST = re.compile(r"^\s*# Subtest: (\S+)")
SUITE_END = re.compile(r"^(not )?ok \d+ \S")

# A fail-nth sweep of rust_jobqueue_failnth reports how many faults it injected.
SWEEP = re.compile(r"# faults injected: (\d+)")

# KCSAN reports and stack frames ("func+0x12/0x34 [module]").
KCSAN_BEGIN = re.compile(r"BUG: KCSAN: (\S+) in (\S+)")
KCSAN_END = re.compile(r"^\s*(\[[^\]]*\]\s*)?={20,}")
FRAME = re.compile(r"^\s*(?:\[[^\]]*\]\s*)?(\S+?)\+0x[0-9a-f]+/0x[0-9a-f]+(\s+\[(\S+)\])?")


def read_log(path):
    """The lines of a console log (undecodable bytes replaced)."""
    with open(path, errors="replace") as f:
        return f.read().splitlines()


def kind(line):
    """The kind of kernel report a line starts (a KINDS name), or None."""
    for name, rx in KINDS:
        if rx.search(line):
            return name
    return None
