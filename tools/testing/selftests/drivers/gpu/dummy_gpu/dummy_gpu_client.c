// SPDX-License-Identifier: GPL-2.0
/*
 * Userspace client of the dummy GPU sample driver (samples/rust/dummy_gpu).
 *
 *   dummy_gpu_client demo [options]   random job DAG across all rings, with
 *                                     sw_sync foreign fences; verifies every
 *                                     buffer against a CPU reference; report
 *   dummy_gpu_client test [options]   bad-input and teardown cases;
 *                                     kselftest TAP and totals
 *   dummy_gpu_client failnth          fail-nth sweeps of SUBMIT and BO_CREATE
 *   dummy_gpu_client stress [options] --jobs jobs from --procs processes:
 *                                     random DAGs, sw_sync, faults, hangs,
 *                                     random closes and process kills
 *   dummy_gpu_client fuzz [options]   --ioctls random ioctls; errno counts
 *   dummy_gpu_client unload --module NAME
 *                                     unload with live out-fences
 *
 * test, failnth and unload report each case through kselftest.h (test.c).
 * The reliability modes print "jq-stat: NAME VALUE" lines for a stress harness.
 *
 * Files: common.c (options, device, ioctl and sw_sync helpers), demo.c,
 * test.c and sync.c (the test, failnth and unload modes), stress.c, fuzz.c.
 *
 * Options: --jobs N, --rings N, --bos N, --bo-size BYTES, --seed N,
 * --window N (jobs in flight before the demo waits; 0: one at a time),
 * --max-busy-us N, --sw-sync-pct N, --dep-pct N, --device PATH,
 * --module NAME (test: unload that module last, with live fences),
 * --no-sw-sync, --procs N, --ioctls N, --kills N, --closes-per-1000k N.
 */
#include "dummy_gpu_client.h"

int main(int argc, char **argv)
{
	struct rlimit rl;
	int i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		die("usage: %s demo|test [options]\n", argv[0]);
	opt.mode = argv[1];
	for (i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--no-sw-sync")) {
			opt.no_sw_sync = 1;
			continue;
		}
		if (!v)
			die("option %s needs a value\n", a);
		i++;
		if (!strcmp(a, "--jobs"))
			opt.jobs = atol(v);
		else if (!strcmp(a, "--rings"))
			opt.rings = atoi(v);
		else if (!strcmp(a, "--bos"))
			opt.bos = atoi(v);
		else if (!strcmp(a, "--bo-size"))
			opt.bo_size = atol(v);
		else if (!strcmp(a, "--seed"))
			opt.seed = strtoul(v, NULL, 0);
		else if (!strcmp(a, "--window"))
			opt.window = atoi(v);
		else if (!strcmp(a, "--max-busy-us"))
			opt.max_busy_us = atoi(v);
		else if (!strcmp(a, "--sw-sync-pct"))
			opt.sw_pct = atoi(v);
		else if (!strcmp(a, "--dep-pct"))
			opt.dep_pct = atoi(v);
		else if (!strcmp(a, "--device"))
			opt.device = v;
		else if (!strcmp(a, "--module"))
			opt.module = v;
		else if (!strcmp(a, "--procs"))
			opt.procs = atoi(v);
		else if (!strcmp(a, "--ioctls"))
			opt.ioctls = atol(v);
		else if (!strcmp(a, "--kills"))
			opt.kills = atoi(v);
		else if (!strcmp(a, "--closes-per-1000k"))
			opt.closes_per_m = atol(v);
		else
			die("unknown option %s\n", a);
	}
	if (opt.jobs < 1 || opt.bos < 1 || opt.window < 0 || opt.procs < 1)
		die("--jobs and --bos must be positive, --window not negative\n");
	rnd_state = 0x9e3779b97f4a7c15ull ^ opt.seed;
	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	drm_fd = open_device();
	if (drm_fd < 0)
		die("no dummy_gpu render node found\n");
	dev_rings = get_param(drm_fd, DUMMY_GPU_PARAM_NUM_RINGS);
	dev_credits = get_param(drm_fd, DUMMY_GPU_PARAM_RING_CREDITS);
	dev_timeout_ms = get_param(drm_fd, DUMMY_GPU_PARAM_TIMEOUT_MS);
	if (!strcmp(opt.mode, "demo"))
		return demo();
	if (!strcmp(opt.mode, "test"))
		return test();
	if (!strcmp(opt.mode, "failnth"))
		return failnth_mode();
	if (!strcmp(opt.mode, "stress"))
		return stress_mode();
	if (!strcmp(opt.mode, "fuzz"))
		return fuzz_mode();
	if (!strcmp(opt.mode, "unload"))
		return unload_mode();
	die("unknown mode %s\n", opt.mode);
	return 2;
}
