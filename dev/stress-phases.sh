# SPDX-License-Identifier: GPL-2.0
# The phases of dev/stress, run by sh inside the stress kernel (sourced by the
# script dev/stress writes, which sets MOD CLIENT JOBS PROCS IOCTLS SEED, and
# DEV, the harness's dev/ directory).
# Everything the report needs is printed as "jq-stat: NAME VALUE" lines and
# "jq-stress: ..." markers; dev/stress-report.py reads the console log.

. "$DEV/kmemleak-scan.sh"
KM=$KMEMLEAK
PL=$PROVE_LOCKING
SUITE=/sys/kernel/debug/kunit/rust_jobqueue_failnth

phase() {
	echo "jq-stress: phase $1"
}

# kmemleak_scan (dev/kmemleak-scan.sh) turns lockdep's prove_locking off for
# the scan; it is switched back on right after. Reported leaks are counted,
# printed and then cleared, so each phase counts only its own.
leakscan() {
	kmemleak_scan
	n=$(grep -c '^unreferenced object' $KM)
	echo "jq-stat: kmemleak.$1 $n"
	echo "jq-stress: kmemleak report $1 begin"
	cat $KM
	echo "jq-stress: kmemleak report $1 end"
	echo clear > $KM
	[ -w $PL ] && echo 1 > $PL
}

fault_injection() {
	for f in failslab fail_page_alloc; do
		echo "$1" > /sys/kernel/debug/$f/ignore-gfp-wait
		echo 0 > /sys/kernel/debug/$f/verbose
	done
}

[ -w $KM ] || echo "jq-stat: setup.no_kmemleak 1"
[ -d $SUITE ] || echo "jq-stat: setup.no_kunit_debugfs 1"
# What booting left behind (KUnit at boot, module init) is not ours to count.
leakscan boot

want() {
	case " $PHASES " in *" $1 "*) return 0 ;; esac
	return 1
}

if want 1; then
phase "1 fail-nth"
# The Rust API: the KUnit suite, now with GFP_KERNEL faults enabled.
fault_injection N
echo run > $SUITE/run
fault_injection Y
echo "jq-stress: kunit results begin"
cat $SUITE/results
echo "jq-stress: kunit results end"
# The SUBMIT and BO_CREATE ioctls (the client switches GFP_KERNEL faults on).
insmod "$MOD" timeout_ms=200
echo "jq-stat: insmod.rc $?"
$CLIENT failnth
echo "jq-stat: failnth.client_rc $?"
fault_injection Y
leakscan failnth
else
insmod "$MOD" timeout_ms=200
fi

if want 2; then
phase "2 stress"
$CLIENT stress --jobs "$JOBS" --procs "$PROCS" --seed "$SEED"
echo "jq-stat: stress.client_rc $?"
leakscan stress
fi

if want 3; then
phase "3 unload"
$CLIENT unload --module rust_dummy_gpu
echo "jq-stat: unload.client_rc $?"
leakscan unload
else
rmmod rust_dummy_gpu
fi

if want 4; then
phase "4 fuzz"
insmod "$MOD" timeout_ms=200
echo "jq-stat: insmod.rc $?"
$CLIENT fuzz --ioctls "$IOCTLS" --seed "$SEED"
echo "jq-stat: fuzz.client_rc $?"
rmmod rust_dummy_gpu
echo "jq-stat: rmmod.rc $?"
leakscan fuzz
fi

phase "end"
echo "jq-stat: lockdep.debug_locks $(sed -n 's/.*debug_locks: *//p' /proc/lockdep_stats)"
