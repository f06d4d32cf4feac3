# SPDX-License-Identifier: GPL-2.0
# The kmemleak scan of the harness's guest scripts (POSIX sh, sourced inside
# the booted kernel): dev/guest-init and dev/uml-kmemleak-init after their
# workload, dev/stress-phases.sh after each phase.

KMEMLEAK=/sys/kernel/debug/kmemleak
PROVE_LOCKING=/sys/module/lockdep/parameters/prove_locking

# kmemleak_scan: scans for leaks, leaving the result in $KMEMLEAK. kmemleak
# only reports objects older than 5 s: let the last allocations age. Then two
# scans, as Documentation/dev-tools/kmemleak.rst advises, so that objects in
# flight during the first are not reported. The tests ran under lockdep; the
# scan is the harness's own tool: in 7.3 it takes object->lock with
# interrupts on, which lockdep reports as an inversion against any
# hardirq-safe lock held while memory was freed or allocated earlier (an
# upstream kmemleak issue, not the tests'). So lockdep's prove_locking is
# switched off first; the caller switches it back on if it goes on.
kmemleak_scan() {
	[ -w $PROVE_LOCKING ] && echo 0 > $PROVE_LOCKING
	sleep 6
	echo scan > $KMEMLEAK
	sleep 1
	echo scan > $KMEMLEAK
}

# kmemleak_report: kmemleak_scan, then the report between the
# "jq-kmemleak: report begin" and "... end" lines that dev/check-log.py and
# dev/stress-report.py read.
kmemleak_report() {
	kmemleak_scan
	echo "jq-kmemleak: report begin"
	cat $KMEMLEAK
	echo "jq-kmemleak: report end"
}
