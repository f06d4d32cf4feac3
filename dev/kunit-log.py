#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Cleans an SMP kernel console log for kunit.py parse; prints it on stdout.

With several CPUs printing, the console of 7.3 sometimes stops in the middle
of a record to print another CPU's, then prints "** replaying previous printk
message **" and the whole interrupted record again. kunit.py's parser then
sees a KTAP line twice (or a truncated one) and can report a suite MISSING
although all its cases ran. This drops the marker and the partial copy that
preceded it, so that each record appears once.
"""

import sys

REPLAY = "** replaying previous printk message **"


def body(line):
    """The text of a console line without its "[   12.345678] " timestamp."""
    s = line.rstrip("\r\n")
    if s.startswith("[") and "] " in s:
        s = s.split("] ", 1)[1]
    return s


def main():
    lines = open(sys.argv[1], errors="replace").read().splitlines(keepends=True)
    out = []
    i = 0
    while i < len(lines):
        if REPLAY in lines[i]:
            nxt = body(lines[i + 1]) if i + 1 < len(lines) else ""
            # Drop the last line printed before the marker if the replayed
            # record starts with it (its interrupted first copy).
            for j in range(len(out) - 1, max(len(out) - 40, -1), -1):
                prev = body(out[j]).strip()
                if prev and nxt.strip().startswith(prev):
                    del out[j]
                    break
            i += 1
            continue
        out.append(lines[i])
        i += 1
    sys.stdout.write("".join(out))


if __name__ == "__main__":
    main()
