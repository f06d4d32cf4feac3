#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turns the "# bench:" lines of a dev/bench boot into a table, JSON and plots.

Usage: bench-report.py LOG OUTDIR [SMPLOG]
SMPLOG is the log of the two-CPU run (x86_64 under QEMU): its "bench=smp"
lines make their own table, as ratios of the two schedulers in that boot.
Writes OUTDIR/results.json, OUTDIR/results.md and the plots OUTDIR/inflight.svg,
OUTDIR/deps.svg and OUTDIR/scale.svg, and prints the Markdown. When OUTDIR/..
is the repository (dev/bench passes bench/), it also writes the figures of the
documentation page, Documentation/gpu/drm-jobqueue-{inflight,deps}.svg (the
same plots), and the targets table and plots between the bench markers of
README.md. The SVGs carry no date and no trailing whitespace (checkpatch), so
a rerun on the same log rewrites them identically.
"""

import io
import json
import os
import re
import statistics
import sys

LINE = re.compile(r"\bbench: impl=(\w+) bench=(\w+) inflight=(\d+) deps=(\d+) jobs=(\d+) "
                  r"submit_ns=(-?\d+) complete_ns=(-?\d+) total_ns=(-?\d+) bytes=(\d+)")
SCALE = re.compile(r"\bbench: impl=(\w+) bench=scale queues=(\d+) jobs=(\d+) create_ns=(-?\d+) "
                   r"destroy_ns=(-?\d+) submit_ns=(-?\d+) complete_ns=(-?\d+) "
                   r"total_ns=(-?\d+) bytes=(-?\d+) threads=(-?\d+)")
NAMES = {"rust": "JobQueue (Rust)", "c": "drm_sched (C)"}
# The plots the documentation page shows (kernel-figure), by bench/ name.
DOC_FIGURES = {"inflight.svg": "drm-jobqueue-inflight.svg", "deps.svg": "drm-jobqueue-deps.svg"}


def save_svg(fig, paths):
    """Writes FIG as SVG to every path: no date, no trailing whitespace."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    text = "".join(line.rstrip() + "\n" for line in buf.getvalue().splitlines())
    for path in paths:
        with open(path, "w") as f:
            f.write(text)


def stat(v):
    return {"min": min(v), "median": statistics.median(v), "runs": v}


def main():
    log, out = sys.argv[1], sys.argv[2]
    text = open(log, errors="replace").read()
    smp_text = open(sys.argv[3], errors="replace").read() if len(sys.argv) > 3 else ""
    groups = {}
    for m in list(LINE.finditer(text)) + list(LINE.finditer(smp_text)):
        impl, bench, n, k, jobs, sub, comp, tot, b = m.groups()
        jobs = int(jobs)
        g = groups.setdefault((impl, bench, int(n), int(k)),
                              {"total": [], "submit": [], "complete": [], "bytes": int(b)})
        g["total"].append(int(tot) / jobs)
        g["submit"].append(int(sub) / jobs)
        g["complete"].append(int(comp) / jobs)
    if not groups:
        print(f"no bench lines in {log}")
        sys.exit(1)
    # Scale: per queue (create, destroy, bytes, threads) and per job (ns).
    scale = {}
    for m in SCALE.finditer(text):
        impl, n, jobs, cr, de, sub, comp, tot, b, th = m.groups()
        n, jobs = int(n), int(jobs)
        g = scale.setdefault((impl, n), {k: [] for k in
                                         ("create", "destroy", "job", "bytes", "threads")})
        g["create"].append(int(cr) / n)
        g["destroy"].append(int(de) / n)
        g["job"].append(int(tot) / jobs)
        g["bytes"].append(int(b) / n)
        g["threads"].append(int(th) / n)

    res = {"measurements": [], "userspace": {}}
    for (impl, bench, n, k), g in sorted(groups.items()):
        res["measurements"].append({
            "impl": impl, "bench": bench, "inflight": n, "deps": k,
            "ns_per_job_total": stat(g["total"]), "ns_per_job_submit": stat(g["submit"]),
            "ns_per_job_complete": stat(g["complete"]), "bytes_per_job": g["bytes"]})
    text, _, single = text.partition("jq-bench: single-job latency")
    lat1 = re.search(r"submit->signal:\s+p50 ([\d.]+) us, p99 ([\d.]+) us", single)
    if lat1:
        res["userspace_single"] = {"p50_us": float(lat1.group(1)),
                                   "p99_us": float(lat1.group(2)),
                                   "verified": "result:            VERIFIED" in single}
    m = re.search(r"throughput:\s+(\d+) jobs/s", text)
    lat = re.search(r"submit->signal:\s+p50 ([\d.]+) us, p99 ([\d.]+) us", text)
    jobs = re.search(r"jobs:\s+(\d+) on (\d+) rings", text)
    verified = "result:            VERIFIED" in text
    if m and lat:
        res["userspace"] = {"jobs": int(jobs.group(1)) if jobs else None,
                            "jobs_per_s": int(m.group(1)), "p50_us": float(lat.group(1)),
                            "p99_us": float(lat.group(2)), "verified": verified}

    def get(impl, bench, n, k, what="total", how="median"):
        g = groups.get((impl, bench, n, k))
        if not g:
            return None
        v = g[what]
        return min(v) if how == "min" else statistics.median(v)

    md = []
    fmt = lambda x: "n/a" if x is None else (f"{x:,.0f}" if x >= 100 else f"{x:.1f}")
    ratio = lambda a, b: "n/a" if a is None or b is None or b == 0 else f"{a / b:.2f}"
    fc, fr = get("c", "fence_floor", 0, 0), get("rust", "fence_floor", 0, 0)
    md.append("### Fence floor (ns per fence: init + signal + put, memory allocated beforehand)\n")
    md.append("| | min | median |\n|---|---|---|")
    md.append(f"| C `dma_fence` | {fmt(get('c', 'fence_floor', 0, 0, how='min'))} | {fmt(fc)} |")
    md.append(f"| Rust `DriverFence` | {fmt(get('rust', 'fence_floor', 0, 0, how='min'))} | {fmt(fr)} |")
    md.append(f"\nRust / C: medians **{ratio(fr, fc)}**, minimums "
              f"{ratio(get('rust', 'fence_floor', 0, 0, how='min'), get('c', 'fence_floor', 0, 0, how='min'))}\n")

    def sweep(title, bench, keys, label):
        md.append(f"### {title}\n")
        md.append(f"| {label} | JobQueue ns/job (min / median) | drm_sched ns/job (min / median) "
                  "| JobQueue / drm_sched | JobQueue submit / complete ns/job "
                  "| drm_sched submit / complete ns/job | JobQueue jobs/s | drm_sched jobs/s |")
        md.append("|---|---|---|---|---|---|---|---|")
        for n, k in keys:
            r, c = get("rust", bench, n, k), get("c", bench, n, k)
            md.append(
                f"| {n if label == 'in flight' else k} "
                f"| {fmt(get('rust', bench, n, k, how='min'))} / {fmt(r)} "
                f"| {fmt(get('c', bench, n, k, how='min'))} / {fmt(c)} | {ratio(r, c)} "
                f"| {fmt(get('rust', bench, n, k, 'submit'))} / {fmt(get('rust', bench, n, k, 'complete'))} "
                f"| {fmt(get('c', bench, n, k, 'submit'))} / {fmt(get('c', bench, n, k, 'complete'))} "
                f"| {fmt(1e9 / r) if r else 'n/a'} | {fmt(1e9 / c) if c else 'n/a'} |")
        md.append("")

    inflight = sorted({n for (i, b, n, k) in groups if b == "inflight"})
    deps = sorted({k for (i, b, n, k) in groups if b == "deps"})
    dn = next((n for (i, b, n, k) in groups if b == "deps"), 4096)
    sweep("End to end per job, by jobs in flight (no dependencies)", "inflight",
          [(n, 0) for n in inflight], "in flight")
    sweep(f"End to end per job, by dependencies per job ({dn} in flight)", "deps",
          [(dn, k) for k in deps], "dependencies")

    smp = sorted({n for (i, b, n, k) in groups if b == "smp"})
    if smp:
        md.append("### Two CPUs: submitter on CPU 0, completion on CPU 1 (x86_64, QEMU TCG, "
                  "2 vCPUs)\n")
        md.append("| ring credits | JobQueue / drm_sched, end to end "
                  "| JobQueue / drm_sched, submit | JobQueue end to end, ns/job (TCG) |")
        md.append("|---|---|---|---|")
        for n in smp:
            md.append(f"| {n} | {ratio(get('rust', 'smp', n, 0), get('c', 'smp', n, 0))} "
                      f"| {ratio(get('rust', 'smp', n, 0, 'submit'), get('c', 'smp', n, 0, 'submit'))} "
                      f"| {fmt(get('rust', 'smp', n, 0))} |")
        md.append("\n16384 jobs back to back per measurement; end to end until the last done "
                  "fence signalled (drm_sched: and every job was freed). The ns/job column is "
                  "TCG time, to compare between the three credit counts only.\n")
        if not any(b == "smp" and i == "c" for (i, b, n, k) in groups):
            md.append("drm_sched's two-CPU case was skipped (see the KUnit log), so there is "
                      "no ratio; n/a above is not a result.\n")

    md.append("### Memory per waiting job (sum of `ksize()` of what one job holds)\n")
    md.append("| dependencies | JobQueue bytes | drm_sched bytes |\n|---|---|---|")
    for k in deps:
        gr, gc = groups.get(("rust", "deps", dn, k)), groups.get(("c", "deps", dn, k))
        md.append(f"| {k} | {gr['bytes'] if gr else 'n/a'} | {gc['bytes'] if gc else 'n/a'} |")
    md.append("")
    def sget(impl, n, what):
        g = scale.get((impl, n))
        return statistics.median(g[what]) if g else None

    scale_ns = sorted({n for (i, n) in scale})
    if scale_ns:
        md.append("### Many queues on one device (shared workqueues; medians per queue, "
                  "one job in flight on each queue)\n")
        md.append("| queues | bytes per queue, JobQueue / drm_sched | kthreads per queue "
                  "| create ns per queue | destroy ns per queue | ns per job "
                  "| JobQueue / drm_sched ns per job |")
        md.append("|---|---|---|---|---|---|---|")
        for n in scale_ns:
            pair = lambda w: f"{fmt(sget('rust', n, w))} / {fmt(sget('c', n, w))}"
            md.append(f"| {n:,} | {pair('bytes')} "
                      f"| {sget('rust', n, 'threads') or 0:g} / {sget('c', n, 'threads') or 0:g} "
                      f"| {pair('create')} | {pair('destroy')} | {pair('job')} "
                      f"| {ratio(sget('rust', n, 'job'), sget('c', n, 'job'))} |")
        md.append("\nBytes: slab memory the queues added (page granular: at 1 queue it "
                  "shows whether a slab page was taken, not the queue's size).\n")
        res["scale"] = [{"impl": i, "queues": n, **{k: stat(v) for k, v in g.items()}}
                        for (i, n), g in sorted(scale.items())]

    u = res["userspace"]
    md.append("### Userspace end to end (sample driver, SUBMIT ioctl to out-fence)\n")
    if u:
        md.append(f"{u['jobs']} jobs of the `dev/run` demo workload: **{u['jobs_per_s']} jobs/s**, "
                  f"submit-to-signal p50 {u['p50_us']:.1f} us, p99 {u['p99_us']:.1f} us "
                  f"({'verified' if u['verified'] else 'NOT verified'}).\n")
    else:
        md.append("(the demo did not report)\n")
    u1 = res.get("userspace_single")
    if u1:
        md.append(f"Single job (1 in flight, no dependency, busy time 0), SUBMIT ioctl to "
                  f"out-fence signal: p50 **{u1['p50_us']:.1f} us**, p99 {u1['p99_us']:.1f} us "
                  f"({'verified' if u1['verified'] else 'NOT verified'}).\n")

    # Targets.
    t = []
    # The targets of the performance issue: every scenario, JobQueue <= 0.5 x drm_sched.
    for (bench, n, k) in ([("inflight", n, 0) for n in inflight] +
                          [("deps", dn, k) for k in deps]):
        r, c = get("rust", bench, n, k), get("c", bench, n, k)
        what = f"{n} in flight" if bench == "inflight" else f"{k} deps ({n} in flight)"
        t.append((f"JobQueue <= 0.5 x drm_sched, {what}", f"{ratio(r, c)}",
                  r is not None and c and r <= 0.5 * c))
    worst = None
    for n in inflight:
        r = get("rust", "inflight", n, 0, "submit")
        c = get("c", "inflight", n, 0, "submit")
        if r is not None and c:
            worst = max(worst or 0, r / c)
    t.append(("submit ns/job <= drm_sched's at every depth (JobQueue's includes the direct "
              "run)", f"worst ratio {worst:.2f}" if worst is not None else "n/a",
              worst is not None and worst <= 1))
    j64 = get("rust", "inflight", 64, 0)
    t.append(("JobQueue <= 3 x fence floor (C) at 64 in flight",
              f"{fmt(j64)} ns vs floor {fmt(fc)} ns = {ratio(j64, fc)}",
              j64 is not None and fc and j64 <= 3 * fc))
    t.append(("Rust DriverFence <= 1.1 x C floor", f"{ratio(fr, fc)}",
              fr is not None and fc and fr <= 1.1 * fc))
    for k in deps:
        gr, gc = groups.get(("rust", "deps", dn, k)), groups.get(("c", "deps", dn, k))
        t.append((f"bytes per waiting job <= drm_sched at {k} deps",
                  f"{gr['bytes'] if gr else 'n/a'} vs {gc['bytes'] if gc else 'n/a'}",
                  bool(gr and gc and gr["bytes"] <= gc["bytes"])))
    a, b = get("rust", "inflight", 65536, 0), get("rust", "inflight", 1, 0)
    t.append(("per-job cost at 65536 in flight <= 1.5 x at 1", f"{ratio(a, b)}",
              a is not None and b and a <= 1.5 * b))
    if scale_ns:
        top = scale_ns[-1]
        th = max((sget("rust", n, "threads") or 0 for n in scale_ns), default=0)
        t.append(("0 kthreads per queue (JobQueue)", f"max {th:g}", th <= 0))
        br, bc = sget("rust", top, "bytes"), sget("c", top, "bytes")
        t.append((f"bytes per queue <= drm_sched's ({top:,} queues)",
                  f"{fmt(br)} vs {fmt(bc)}", br is not None and bc and br <= bc))
        j1, jn = sget("rust", scale_ns[0], "job"), sget("rust", top, "job")
        t.append((f"per-job cost flat from {scale_ns[0]} to {top:,} queues "
                  "(<= 1.5 x)", f"{fmt(j1)} -> {fmt(jn)} ns = {ratio(jn, j1)}",
                  j1 is not None and jn and jn <= 1.5 * j1))
    md.append("### Targets\n")
    targets = ["| target | measured | holds |\n|---|---|---|"]
    for name, val, ok in t:
        targets.append(f"| {name} | {val} | {'yes' if ok else '**no**'} |")
    md += targets
    res["targets"] = [{"target": n, "measured": v, "holds": bool(o)} for n, v, o in t]

    out_md = "\n".join(md) + "\n"
    open(f"{out}/results.md", "w").write(out_md)
    # Keep the README's copy current (between its bench markers): the targets
    # and the plots; the full tables stay in bench/results.md.
    readme = f"{out}/../README.md"
    try:
        r = open(readme).read()
        a, b = "<!-- bench:begin -->", "<!-- bench:end -->"
        if a in r and b in r:
            body = ("Targets of the last `dev/bench` run (UML, compare the two schedulers, "
                    "not absolute values; every table in [bench/results.md](bench/results.md)):\n\n" +
                    "\n".join(targets) + "\n"
                    "\n![ns per job by jobs in flight](bench/inflight.svg)\n"
                    "![ns per job by dependencies](bench/deps.svg)\n"
                    "![cost per queue by queues](bench/scale.svg)\n")
            r = r[:r.index(a) + len(a)] + "\n" + body + r[r.index(b):]
            open(readme, "w").write(r)
    except OSError:
        pass
    json.dump(res, open(f"{out}/results.json", "w"), indent=1)
    print(out_md)

    doc = os.path.join(out, "..", "Documentation", "gpu")
    doc = doc if os.path.isfile(os.path.join(doc, "drm-jobqueue.rst")) else None
    written = []
    import matplotlib
    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "drm-jobqueue"   # stable element ids
    import matplotlib.pyplot as plt
    for bench, xs, key, xlabel, fname, logx in (
            ("inflight", inflight, lambda x: (x, 0), "jobs in flight", "inflight.svg", True),
            ("deps", deps, lambda x: (dn, x), f"dependencies per job ({dn} in flight)",
             "deps.svg", False)):
        fig, ax = plt.subplots(figsize=(6.4, 4))
        for impl, style in (("rust", "o-"), ("c", "s-")):
            ys = [get(impl, bench, *key(x)) for x in xs]
            ax.plot(xs, ys, style, label=NAMES[impl])
        if fc:
            ax.axhline(fc, color="gray", linestyle="--", label="fence floor (C)")
        if fr:
            ax.axhline(fr, color="gray", linestyle=":", label="fence floor (Rust)")
        if logx:
            ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        reps = max((len(g["total"]) for k, g in groups.items() if k[1] == bench), default=0)
        ax.set_ylabel(f"ns per job, end to end (median of {reps})")
        ax.set_title(f"JobQueue vs drm_sched: {xlabel}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        paths = [f"{out}/{fname}"]
        if doc:
            paths.append(os.path.join(doc, DOC_FIGURES[fname]))
        save_svg(fig, paths)
        written += paths
    if scale_ns:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for impl, style in (("rust", "o-"), ("c", "s-")):
            axes[0].plot(scale_ns, [sget(impl, n, "bytes") for n in scale_ns], style,
                         label=NAMES[impl])
            axes[1].plot(scale_ns, [sget(impl, n, "job") for n in scale_ns], style,
                         label=NAMES[impl])
        for ax, ylabel in ((axes[0], "slab bytes per queue"),
                           (axes[1], "ns per job (one in flight per queue)")):
            ax.set_xscale("log")
            ax.set_xlabel("queues on the device")
            ax.set_ylabel(ylabel)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
        axes[0].set_title("memory per queue")
        axes[1].set_title("per-job cost")
        fig.tight_layout()
        save_svg(fig, [f"{out}/scale.svg"])
        written.append(f"{out}/scale.svg")
    print(f"wrote {out}/results.md, {out}/results.json, " +
          ", ".join(os.path.normpath(p) for p in written))


if __name__ == "__main__":
    main()
