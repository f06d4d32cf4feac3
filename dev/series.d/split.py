#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Split the overlay into the commits of the upstream series (used by dev/series).

Input: the pristine tree, the expected final tree's changed files (a stage
directory: overlay files + upstream files as patched by patches/*.patch),
and series.conf, which says which commit every file, every added item of a
shared upstream file and every later-added region of an overlay file belongs
to. Output: a `git fast-import` stream (on stdout) with one commit per
series.conf commit, on top of BASE.

Every line of every changed file gets an owner commit; the file's content
after commit k is the final content's lines owned by commits <= k (plus, for
a whole-file change to an upstream file, pristine before its owner). So the
last commit reproduces the stage exactly, and anything series.conf does not
account for (a new file, a new hunk in a shared file, a stale regex) is an
error rather than a silent difference.
"""

import difflib
import fnmatch
import os
import re
import shlex
import sys


def die(msg):
    sys.stderr.write("ERROR: series: %s\n" % msg)
    sys.exit(1)


class Commit:
    def __init__(self, idx, slug):
        self.idx = idx
        self.slug = slug
        self.files = []      # globs
        self.items = []      # (path, regex)
        self.strips = []     # (path, start, end)
        self.generate = []   # generator names


def parse_conf(path):
    commits, splits, excludes = [], {}, []
    cur = None
    with open(path) as f:
        for n, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            w = shlex.split(line)
            kw, args = w[0], w[1:]
            where = "%s:%d" % (path, n)
            if kw == "commit":
                cur = Commit(len(commits) + 1, args[0])
                commits.append(cur)
            elif kw == "split":
                splits[args[0]] = re.compile(args[1])
            elif kw == "exclude":
                excludes.append(args[0])
            elif cur is None:
                die("%s: '%s' before any commit" % (where, kw))
            elif kw == "file":
                cur.files.extend(args)
            elif kw == "item":
                cur.items.append((args[0], re.compile(args[1]), where))
            elif kw == "strip":
                cur.strips.append((args[0], re.compile(args[1]),
                                   re.compile(args[2]), where))
            elif kw == "generate":
                cur.generate.append(args[0])
            else:
                die("%s: unknown keyword %s" % (where, kw))
    return commits, splits, excludes


def read_lines(path):
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return f.read().splitlines(keepends=True)


def file_owner(commits, path):
    # A rule that names the path itself wins over globs and directories
    # (so one file of a directory can go to a later commit).
    for c in commits:
        if path in c.files:
            return c.idx
    for c in commits:
        for g in c.files:
            if fnmatch.fnmatchcase(path, g) or path.startswith(g.rstrip("/") + "/"):
                return c.idx
    return None


def items_of_block(block, split_re):
    """Split an added block into items (lists of line indices)."""
    items = []
    for i, line in block:
        starts = (split_re.search(line) if split_re
                  else line.strip() != "")
        if not items or starts:
            # Blank lines do not start items (default mode): they stay with
            # the item before them.
            items.append([])
        items[-1].append((i, line))
    # Default mode: a leading blank-only item joins the next one.
    if len(items) > 1 and all(l.strip() == "" for _, l in items[0]):
        items[1] = items[0] + items[1]
        items.pop(0)
    return items


def owners_upstream(path, pristine, final, commits, splits, fown):
    """Owner per final line of an upstream file that has item rules."""
    rules = [(c.idx, rx, where) for c in commits for (p, rx, where) in c.items if p == path]
    sm = difflib.SequenceMatcher(None, pristine, final, autojunk=False)
    owner = [None] * len(final)
    used = set()
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            for j in range(j1, j2):
                owner[j] = 0
            continue
        if tag != "insert":
            if fown is None:
                die("%s: changes pristine lines %d-%d, so it needs a 'file' rule "
                    "(only pure additions can be split into items)" % (path, i1 + 1, i2))
            return None
        block = [(j, final[j]) for j in range(j1, j2)]
        for item in items_of_block(block, splits.get(path)):
            text = "".join(l for _, l in item)
            hits = [(idx, where) for idx, rx, where in rules if rx.search(text)]
            if len(hits) > 1:
                die("%s: item %r matches several rules: %s" %
                    (path, text[:60], ", ".join(w for _, w in hits)))
            if hits:
                o = hits[0][0]
                used.add(hits[0][1])
            elif fown is not None:
                o = fown
            else:
                die("%s: no 'item' rule for the added lines:\n%s" % (path, text))
            for j, _ in item:
                owner[j] = o
    for idx, rx, where in rules:
        if where not in used:
            die("%s: rule at %s (%s) matches no added item" % (path, where, rx.pattern))
    return owner


def owners_overlay(path, final, commits, fown):
    owner = [fown] * len(final)
    for c in commits:
        for p, start, end, where in c.strips:
            if p != path:
                continue
            if c.idx <= fown:
                die("%s: strip at %s must belong to a later commit than the file" % (path, where))
            hits = 0
            i = 0
            # START may span lines ("\n" in the regex): it is matched
            # against that many lines from i on.
            span = start.pattern.count("\\n") + 1
            while i < len(final):
                if not start.match("".join(final[i:i + span])):
                    i += 1
                    continue
                # Attributes and doc comments right above belong to the item.
                while i > 0 and re.match(r"^\s*(#\[|///)", final[i - 1]):
                    i -= 1
                j = i
                while j < len(final) and not end.search(final[j]):
                    j += 1
                if j == len(final):
                    die("%s: strip at %s: no end line after line %d" % (path, where, i + 1))
                # Take one blank line with the region so that no double blank remains.
                before_blank = i == 0 or final[i - 1].strip() == ""
                after = final[j + 1] if j + 1 < len(final) else ""
                if before_blank and after.strip() == "" and j + 1 < len(final):
                    j += 1
                elif before_blank and i > 0 and after.strip().startswith("}"):
                    i -= 1
                for k in range(i, j + 1):
                    if owner[k] != fown:
                        die("%s: strip at %s overlaps another strip" % (path, where))
                    owner[k] = c.idx
                hits += 1
                i = j + 1
            if hits == 0:
                die("%s: strip at %s (%s) matches nothing" % (path, where, start.pattern))
    return owner


def maintainers(pristine_lines, template, author):
    """Insert the template's entries into MAINTAINERS in alphabetical order."""
    text = "".join(l for l in open(template) if not l.startswith("#"))
    text = text.replace("@AUTHOR@", author)
    entries = [e.strip("\n") + "\n" for e in text.split("\n\n") if e.strip()]
    out = list(pristine_lines)
    # Entries start after the "Maintainers List" header's first entry: a
    # title line preceded by a blank line and followed by a "X:\t" line.
    for e in entries:
        title = e.splitlines()[0]
        start = next(i for i, l in enumerate(out) if l.startswith("3C59X NETWORK DRIVER"))
        # Entry titles: a non-blank line after a blank one, followed by "X:\t".
        heads = [i for i in range(start, len(out) - 1)
                 if out[i - 1].strip() == "" and out[i].strip()
                 and re.match(r"^[A-Z]:\t", out[i + 1]) and out[i] != "THE REST\n"]
        # After the greatest title below ours (MAINTAINERS is not perfectly sorted,
        # so "before the first greater one" could land anywhere).
        below = [i for i in heads if out[i].rstrip("\n").upper() < title.upper()]
        if not below:
            die("MAINTAINERS: no place for %s" % title)
        prev = max(below, key=lambda i: out[i].rstrip("\n").upper())
        pos = next((i for i in heads if i > prev), None)
        if pos is None:
            die("MAINTAINERS: no entry after %s" % out[prev])
        out[pos:pos] = [l + "\n" for l in e.rstrip("\n").split("\n")] + ["\n"]
    return out


def main():
    conf, pristine, stage, listfile, base, author, when, msgdir, mtempl = sys.argv[1:10]
    commits, splits, excludes = parse_conf(conf)
    with open(listfile) as f:
        paths = [l.rstrip("\n") for l in f if l.strip()]
    paths = [p for p in paths if not any(fnmatch.fnmatchcase(p, g) or
                                         fnmatch.fnmatchcase(os.path.basename(p), g)
                                         for g in excludes)]

    # Per file: (owner list or whole-file owner, pristine lines or None, final lines)
    plan = {}
    for p in paths:
        fown = file_owner(commits, p)
        final = read_lines(os.path.join(stage, p))
        up = os.path.exists(os.path.join(pristine, p))
        pl = read_lines(os.path.join(pristine, p)) if up else None
        if up and pl == final:
            continue
        has_items = any(ip == p for c in commits for ip, _, _ in c.items)
        has_strips = any(sp == p for c in commits for sp, _, _, _ in c.strips)
        if up:
            if has_strips:
                die("%s: strip rules are for overlay files; use item rules" % p)
            if has_items:
                own = owners_upstream(p, pl, final, commits, splits, fown)
                if own is None:
                    plan[p] = ("whole", fown, pl, final)
                else:
                    plan[p] = ("lines", own, pl, final)
            elif fown is None:
                die("%s (changed by patches/) has no 'file' rule in %s" % (p, conf))
            else:
                plan[p] = ("whole", fown, pl, final)
        else:
            if fown is None:
                die("overlay file %s has no 'file' rule in %s" % (p, conf))
            if has_items:
                die("%s: item rules are for upstream files; use strip rules" % p)
            plan[p] = ("lines", owners_overlay(p, final, commits, fown), None, final)
            plan[p] += (fown,)

    # Generators.
    for c in commits:
        for g in c.generate:
            if g != "maintainers":
                die("unknown generator %s" % g)
            pl = read_lines(os.path.join(pristine, "MAINTAINERS"))
            plan["MAINTAINERS"] = ("whole", c.idx, pl, maintainers(pl, mtempl, author))

    def state(p, k):
        kind, own, pl, final = plan[p][:4]
        if kind == "whole":
            return pl if k < own else final
        if pl is None and k < plan[p][4]:
            return None
        return [l for l, o in zip(final, own) if o <= k]

    name, email = author.rsplit(" <", 1)
    email = email.rstrip(">")
    out = sys.stdout.buffer
    made = 0
    for c in commits:
        changes = []
        for p in sorted(plan):
            a, b = state(p, c.idx - 1), state(p, c.idx)
            if a != b:
                changes.append((p, b))
        if not changes:
            sys.stderr.write("==> series: commit %s is empty (nothing in the overlay for it); skipped\n" % c.slug)
            continue
        msgf = os.path.join(msgdir, c.slug)
        if not os.path.exists(msgf):
            die("no commit message %s" % msgf)
        msg = open(msgf).read().rstrip("\n") + "\n\nSigned-off-by: %s\n" % author
        mb = msg.encode()
        out.write(b"commit refs/heads/series\n")
        out.write(("author %s <%s> %s\n" % (name, email, when)).encode())
        out.write(("committer %s <%s> %s\n" % (name, email, when)).encode())
        out.write(b"data %d\n" % len(mb) + mb + b"\n")
        if made == 0:
            out.write(("from %s\n" % base).encode())
        for p, b in changes:
            if b is None:
                out.write(("D %s\n" % p).encode())
                continue
            data = "".join(b).encode("utf-8", errors="surrogateescape")
            src = os.path.join(stage, p)
            mode = "100755" if os.path.exists(src) and os.access(src, os.X_OK) else "100644"
            out.write(("M %s inline %s\n" % (mode, p)).encode())
            out.write(b"data %d\n" % len(data) + data + b"\n")
        out.write(b"\n")
        made += 1
        sys.stderr.write("==> series: %02d %-12s %d file(s)\n" % (made, c.slug, len(changes)))
    # Everything in the stage must be in the last state.
    for p in plan:
        if p == "MAINTAINERS":
            continue
        if state(p, len(commits)) != plan[p][3]:
            die("%s: the last commit does not reproduce the overlay" % p)


if __name__ == "__main__":
    main()
