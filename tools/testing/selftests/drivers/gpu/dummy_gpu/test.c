// SPDX-License-Identifier: GPL-2.0
/*
 * dummy_gpu_client test, failnth and unload: bad-input, success-path and
 * teardown cases, fail-nth sweeps, and unloading the module with live
 * out-fences, reported through kselftest.h.
 */
#include "dummy_gpu_client.h"

static long faults_injected, faults_absorbed;

/*
 * One case's result: "ok N NAME", or a "# NAME: why" diagnostic and then
 * "not ok N NAME".
 */
void check(int ok, const char *name, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	if (ok) {
		ksft_test_result_pass("%s\n", name);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	ksft_print_msg("%s: %s\n", name, why);
	ksft_test_result_fail("%s\n", name);
}

/* A case that cannot run here: "ok N NAME # SKIP why", counted as a skip. */
void skip(const char *name, const char *why)
{
	ksft_test_result_code(KSFT_SKIP, name, "%s", why);
}

/*
 * Ends a reporting mode: the plan, if it was not known up front, then the
 * totals; exits 0 if no case failed, else 1.
 */
static __noreturn void finish(void)
{
	if (!ksft_plan)
		ksft_set_plan(ksft_test_num());
	if (ksft_get_fail_cnt())
		ksft_exit_fail();
	ksft_exit_pass();
}

/*
 * A deadline set on a job's out-fence (SYNC_IOC_SET_DEADLINE) reaches the
 * sw_sync fence the job waits for (SW_SYNC_GET_DEADLINE): the queue forwards
 * it to its dependencies, as drm_sched does.
 */
static void deadline_case(int out_fd, int tl, int sw_fd)
{
	struct sync_set_deadline sd = { 0 };
	struct sw_sync_get_deadline gd = { 0 };
	struct timespec ts;
	int r = -1, i;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	sd.deadline_ns = (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec + 16000000;
	if (out_fd >= 0 && ioctl(out_fd, SYNC_IOC_SET_DEADLINE, &sd) == 0) {
		/* The queue's work item forwards it: allow it a moment. */
		for (i = 0; i < 1000; i++) {
			gd.deadline_ns = 0;
			gd.pad = 0;
			gd.fence_fd = sw_fd;
			r = ioctl(tl, SW_SYNC_GET_DEADLINE, &gd);
			if (r == 0 || errno != ENOENT)
				break;
			usleep(1000);
		}
	}
	check(r == 0 && gd.deadline_ns == sd.deadline_ns,
	      "deadline: SYNC_IOC_SET_DEADLINE on an out-fence reaches its sw_sync in-fence",
	      "get %d (%s), deadline %llu, want %llu", r, r ? strerror(errno) : "",
	      (unsigned long long)gd.deadline_ns, (unsigned long long)sd.deadline_ns);
}

static void expect_err(int got, int want, const char *name)
{
	check(got == -want, name, "got %d (%s), want -%d (%s)", got,
	      got < 0 ? strerror(-got) : "fd", want, strerror(want));
	if (got >= 0)
		close(got);
}

static void test_bad_input(uint32_t bo, size_t bo_size)
{
	struct drm_dummy_gpu_cmd c = fill(bo, 0, 64, 1), cs[DUMMY_GPU_MAX_CMDS + 1];
	struct drm_dummy_gpu_get_param gp = { .param = 99 };
	struct drm_dummy_gpu_bo_mmap_offset mo = { .handle = 0xdead };
	int32_t in[DUMMY_GPU_MAX_IN_FENCES + 1];
	struct submit s = { .cmds = &c, .ncmds = 1 };
	uint32_t h;
	int null_fd, i;

	expect_err(xioctl(drm_fd, DRM_IOCTL_DUMMY_GPU_GET_PARAM, &gp), EINVAL,
		   "get_param: unknown parameter -> EINVAL");
	expect_err(bo_create(drm_fd, 0, &h), EINVAL, "bo_create: size 0 -> EINVAL");
	expect_err(bo_create(drm_fd, DUMMY_GPU_MAX_BO_SIZE + 1ull, &h), E2BIG,
		   "bo_create: size over the limit -> E2BIG");
	expect_err(xioctl(drm_fd, DRM_IOCTL_DUMMY_GPU_BO_MMAP_OFFSET, &mo), ENOENT,
		   "bo_mmap_offset: bad handle -> ENOENT");

	s.ring = dev_rings;
	expect_err(submit(drm_fd, &s), ENXIO, "submit: bad ring -> ENXIO");
	s.ring = 0;
	{
		struct drm_dummy_gpu_submit a = { .cmds = (uintptr_t)&c, .cmd_count = 1 };

		expect_err(xioctl(drm_fd, DRM_IOCTL_DUMMY_GPU_SUBMIT, &a), EINVAL,
			   "submit: zero credits -> EINVAL");
	}
	s.credits = dev_credits + 1;
	expect_err(submit(drm_fd, &s), EINVAL, "submit: credits over capacity -> EINVAL");
	s.credits = 1;
	s.flags = 0x80;
	expect_err(submit(drm_fd, &s), EINVAL, "submit: unknown flag -> EINVAL");
	s.flags = 0;
	s.syncobj = 1;
	expect_err(submit(drm_fd, &s), EINVAL, "submit: syncobj without flag -> EINVAL");
	s.syncobj = 0;
	c.op = 77;
	expect_err(submit(drm_fd, &s), EOPNOTSUPP, "submit: unknown command -> EOPNOTSUPP");
	c = fill(0xdead, 0, 64, 1);
	expect_err(submit(drm_fd, &s), ENOENT, "submit: bad BO handle -> ENOENT");
	c = fill(bo, bo_size - 4, 8, 1);
	expect_err(submit(drm_fd, &s), ERANGE, "submit: range past the BO end -> ERANGE");
	c = fill(bo, ~0ull - 3, 8, 1);
	expect_err(submit(drm_fd, &s), ERANGE, "submit: offset overflow -> ERANGE");
	c = fill(bo, 2, 8, 1);
	expect_err(submit(drm_fd, &s), ERANGE, "submit: misaligned offset -> ERANGE");
	c = fill(bo, 0, 64, 1);
	c.src_handle = bo;
	expect_err(submit(drm_fd, &s), EINVAL, "submit: unused field set -> EINVAL");
	c = fill(bo, 0, 64, 1);

	in[0] = -1;
	s.in = in;
	s.nin = 1;
	expect_err(submit(drm_fd, &s), EBADF, "submit: in-fence fd -1 -> EBADF");
	null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	in[0] = null_fd;
	expect_err(submit(drm_fd, &s), EBADF, "submit: in-fence not a sync_file -> EBADF");
	close(null_fd);
	s.in = (int32_t *)8;
	expect_err(submit(drm_fd, &s), EFAULT, "submit: bad in_fences pointer -> EFAULT");
	s.in = NULL;
	s.nin = 0;
	s.cmds = (struct drm_dummy_gpu_cmd *)8;
	expect_err(submit(drm_fd, &s), EFAULT, "submit: bad cmds pointer -> EFAULT");

	for (i = 0; i <= DUMMY_GPU_MAX_CMDS; i++)
		cs[i] = fill(bo, 0, 4, i);
	s.cmds = cs;
	s.ncmds = DUMMY_GPU_MAX_CMDS + 1;
	expect_err(submit(drm_fd, &s), E2BIG, "submit: too many commands -> E2BIG");
	s.ncmds = 1;
	s.in = in;
	s.nin = DUMMY_GPU_MAX_IN_FENCES + 1;
	expect_err(submit(drm_fd, &s), E2BIG, "submit: too many in-fences -> E2BIG");
	s.in = NULL;
	s.nin = 0;
	s.busy_us = DUMMY_GPU_MAX_BUSY_US + 1;
	expect_err(submit(drm_fd, &s), E2BIG, "submit: busy time over the limit -> E2BIG");
	s.busy_us = 0;
	s.flags = DUMMY_GPU_SUBMIT_OUT_SYNCOBJ;
	s.syncobj = 0xdead;
	expect_err(submit(drm_fd, &s), ENOENT, "submit: bad out-syncobj -> ENOENT");
	s.flags = 0;
	s.syncobj = 0;
	s.out_point = 1;
	expect_err(submit(drm_fd, &s), EINVAL, "submit: out_point without OUT_SYNCOBJ -> EINVAL");
	s.out_point = 0;

	/* Syncobj in-fences. */
	{
		struct drm_dummy_gpu_syncobj_point sp[DUMMY_GPU_MAX_IN_SYNCOBJS + 1];
		struct drm_syncobj_create sc = { 0 };
		struct drm_syncobj_destroy sd = { 0 };

		memset(sp, 0, sizeof(sp));
		xioctl(drm_fd, DRM_IOCTL_SYNCOBJ_CREATE, &sc);
		s.insync = sp;
		s.ninsync = 1;
		sp[0].handle = 0xdead;
		expect_err(submit(drm_fd, &s), ENOENT, "submit: unknown in-syncobj -> ENOENT");
		sp[0].handle = sc.handle;
		expect_err(submit(drm_fd, &s), EINVAL, "submit: in-syncobj without a fence -> EINVAL");
		sp[0].pad = 1;
		expect_err(submit(drm_fd, &s), EINVAL, "submit: in-syncobj padding set -> EINVAL");
		sp[0].pad = 0;
		s.insync = (void *)8;
		expect_err(submit(drm_fd, &s), EFAULT, "submit: bad in_syncobjs pointer -> EFAULT");
		s.insync = sp;
		s.ninsync = DUMMY_GPU_MAX_IN_SYNCOBJS + 1;
		expect_err(submit(drm_fd, &s), E2BIG, "submit: too many in-syncobjs -> E2BIG");
		s.insync = NULL;
		s.ninsync = 0;
		sd.handle = sc.handle;
		xioctl(drm_fd, DRM_IOCTL_SYNCOBJ_DESTROY, &sd);
	}

	/* Buffers for implicit sync. */
	{
		struct drm_dummy_gpu_bo_ref br[DUMMY_GPU_MAX_BOS + 1];

		memset(br, 0, sizeof(br));
		s.bos = br;
		s.nbos = 1;
		s.flags = DUMMY_GPU_SUBMIT_IMPLICIT_SYNC;
		br[0].handle = 0xdead;
		expect_err(submit(drm_fd, &s), ENOENT, "submit: unknown buffer in bos -> ENOENT");
		br[0].handle = bo;
		br[0].flags = 2;
		expect_err(submit(drm_fd, &s), EINVAL, "submit: unknown buffer flag -> EINVAL");
		br[0].flags = DUMMY_GPU_BO_WRITE;
		br[1] = br[0];
		s.nbos = 2;
		expect_err(submit(drm_fd, &s), EINVAL, "submit: a buffer twice in bos -> EINVAL");
		s.bos = (void *)8;
		expect_err(submit(drm_fd, &s), EFAULT, "submit: bad bos pointer -> EFAULT");
		s.bos = br;
		s.nbos = DUMMY_GPU_MAX_BOS + 1;
		expect_err(submit(drm_fd, &s), E2BIG, "submit: too many buffers -> E2BIG");
		s.bos = NULL;
		s.nbos = 0;
		s.flags = 0;
	}
}

static void test_success_paths(uint32_t bo, uint32_t *map)
{
	struct drm_dummy_gpu_cmd c = fill(bo, 0, 256, 0xabcd0001);
	struct submit s = { .cmds = &c, .ncmds = 1, .ring = dev_rings - 1, .credits = 1 };
	struct drm_syncobj_create sc = { 0 };
	struct drm_syncobj_handle sh = { 0 };
	struct drm_syncobj_destroy sd = { 0 };
	int fd, fd2, fd3, tl2, sw, st, i, k, w, ok;
	uint64_t ts1 = 0, ts2 = 0;
	int32_t in[1];

	fd = submit(drm_fd, &s);
	st = fd >= 0 ? status_of(fd, 5000) : fd;
	ok = st == 1;
	for (i = 0; i < 64; i++)
		ok = ok && map[i] == 0xabcd0001;
	check(ok, "submit: FILL executes and signals", "status %d, word0 %#x", st, map[0]);
	if (fd >= 0)
		close(fd);

	/* A dependency on another ring orders the jobs. */
	c = fill(bo, 0, 256, 0x1111);
	s.ring = 0;
	s.busy_us = 50000;
	fd = submit(drm_fd, &s);
	c = fill(bo, 0, 256, 0x2222);
	s.ring = dev_rings > 1 ? 1 : 0;
	s.busy_us = 0;
	in[0] = fd;
	s.in = in;
	s.nin = 1;
	fd2 = submit(drm_fd, &s);
	ok = fd >= 0 && fd2 >= 0 && status_of(fd2, 5000) == 1 && status_of(fd, 5000) == 1;
	fence_info(fd, &ts1, NULL, NULL);
	fence_info(fd2, &ts2, NULL, NULL);
	check(ok && ts2 >= ts1 && map[0] == 0x2222, "submit: cross-ring dependency orders jobs",
	      "fds %d %d, ts %" PRIu64 " %" PRIu64 ", word0 %#x", fd, fd2, ts1, ts2, map[0]);
	close(fd);
	close(fd2);
	s.in = NULL;
	s.nin = 0;

	/* A foreign (sw_sync) in-fence holds the job back until it signals. */
	tl2 = sw_timeline();
	if (tl2 >= 0) {
		sw = sw_fence(tl2, 1);
		in[0] = sw;
		s.in = in;
		s.nin = 1;
		c = fill(bo, 0, 256, 0x3333);
		fd = submit(drm_fd, &s);
		usleep(20000);
		st = fd >= 0 ? fence_info(fd, NULL, NULL, NULL) : fd;
		deadline_case(fd, tl2, sw);
		sw_inc(tl2, 1);
		ok = st == 0 && status_of(fd, 5000) == 1 && map[0] == 0x3333;
		check(ok, "submit: sw_sync in-fence gates the job", "status before %d", st);
		close(fd);
		close(sw);
		close(tl2);
		s.in = NULL;
		s.nin = 0;
	} else {
		check(0, "submit: sw_sync in-fence gates the job", "no %s", SW_SYNC_PATH);
	}

	/* The out-fence can also go to a syncobj. */
	if (xioctl(drm_fd, DRM_IOCTL_SYNCOBJ_CREATE, &sc) == 0) {
		s.flags = DUMMY_GPU_SUBMIT_OUT_SYNCOBJ;
		s.syncobj = sc.handle;
		c = fill(bo, 0, 256, 0x4444);
		fd = submit(drm_fd, &s);
		sh.handle = sc.handle;
		sh.flags = DRM_SYNCOBJ_HANDLE_TO_FD_FLAGS_EXPORT_SYNC_FILE;
		sh.fd = -1;
		st = xioctl(drm_fd, DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD, &sh);
		ok = fd >= 0 && !st && status_of(sh.fd, 5000) == 1 && status_of(fd, 5000) == 1 &&
		     map[0] == 0x4444;
		check(ok, "submit: out-fence stored in a syncobj", "fd %d export %d", fd, st);
		if (fd >= 0)
			close(fd);
		if (sh.fd >= 0)
			close(sh.fd);
		sd.handle = sc.handle;
		xioctl(drm_fd, DRM_IOCTL_SYNCOBJ_DESTROY, &sd);
		s.flags = 0;
		s.syncobj = 0;
	} else {
		check(0, "submit: out-fence stored in a syncobj", "SYNCOBJ_CREATE failed");
	}

	/* A job that faults signals -EIO; a job depending on it fails and does not run. */
	c = fill(bo, 0, 256, 0x6666);
	s.flags = DUMMY_GPU_SUBMIT_FAULT;
	s.ring = 0;
	fd = submit(drm_fd, &s);
	s.flags = 0;
	s.ring = dev_rings > 1 ? 1 : 0;
	c = fill(bo, 0, 256, 0x7777);
	in[0] = fd;
	s.in = in;
	s.nin = fd >= 0;
	fd2 = submit(drm_fd, &s);
	st = fd >= 0 ? status_of(fd, 5000) : fd;
	i = fd2 >= 0 ? status_of(fd2, 5000) : fd2;
	check(st == -EIO && i == -EIO && map[0] != 0x6666 && map[0] != 0x7777,
	      "submit: faulting job signals -EIO, its dependent fails without running",
	      "faulted %d, dependent %d, word0 %#x", st, i, map[0]);
	if (fd >= 0)
		close(fd);
	if (fd2 >= 0)
		close(fd2);
	s.in = NULL;
	s.nin = 0;

	/*
	 * A job that hangs times out; the ring is reset without it, and the two
	 * innocent jobs behind it (a FILL, then an ADD that needs the FILL's
	 * result) run again: they complete Ok, with their results in the buffer.
	 */
	s.flags = DUMMY_GPU_SUBMIT_HANG;
	s.ring = 0;
	c = fill(bo, 0, 256, 0x9999);
	fd = submit(drm_fd, &s);
	s.flags = 0;
	c = fill(bo, 0, 256, 0x5555);
	fd2 = submit(drm_fd, &s);
	c = fill(bo, 0, 256, 2);
	c.op = DUMMY_GPU_OP_ADD;
	fd3 = submit(drm_fd, &s);
	st = fd >= 0 ? status_of(fd, 4 * dev_timeout_ms + 1000) : fd;
	i = fd2 >= 0 ? status_of(fd2, 4 * dev_timeout_ms + 1000) : fd2;
	k = fd3 >= 0 ? status_of(fd3, 4 * dev_timeout_ms + 1000) : fd3;
	ok = st == -ETIMEDOUT && i == 1 && k == 1;
	for (w = 0; w < 64; w++)
		ok = ok && map[w] == 0x5557;
	check(ok, "submit: hung job gets -ETIMEDOUT, the jobs behind it re-run and complete",
	      "hung %d, behind it %d %d, word0 %#x", st, i, k, map[0]);
	if (fd >= 0)
		close(fd);
	if (fd2 >= 0)
		close(fd2);
	if (fd3 >= 0)
		close(fd3);
	fd = submit(drm_fd, &s);
	check(fd >= 0 && status_of(fd, 5000) == 1 && map[0] == 0x5559,
	      "submit: the ring runs new jobs after the reset", "fd %d, word0 %#x", fd, map[0]);
	if (fd >= 0)
		close(fd);
}

/*
 * A child opens the device, submits @n jobs of @busy_us each on ring 0 and tells the parent,
 * which then either waits for it to exit normally or kills it with SIGKILL. Returns the change
 * of the device's counters once the child is gone and its work is signalled, and how long the
 * exit took (ms).
 */
static int child_close(int n, uint32_t busy_us, int sigkill, struct totals *delta, long *ms)
{
	struct totals before, after;
	int p[2], i;
	char c = 0;
	uint64_t t0;
	pid_t pid;

	if (!read_totals(&before) || pipe(p))
		return 0;
	pid = fork();
	if (pid == 0) {
		struct drm_dummy_gpu_cmd cmd;
		struct submit s = { .cmds = &cmd, .ncmds = 1, .credits = 1, .busy_us = busy_us };
		int fd = open_device();
		uint32_t bo;

		close(drm_fd);
		if (fd < 0 || bo_create(fd, 4096, &bo))
			_exit(1);
		cmd = fill(bo, 0, 64, 5);
		for (i = 0; i < n; i++)
			if (submit(fd, &s) < 0)
				_exit(1);
		/* The out-fences are closed with the rest at exit: only the file keeps the jobs. */
		if (write(p[1], &c, 1) != 1)
			_exit(1);
		if (sigkill)
			pause();
		_exit(0);
	}
	close(p[1]);
	if (pid < 0 || read(p[0], &c, 1) != 1) {
		close(p[0]);
		return 0;
	}
	close(p[0]);
	t0 = now_ns();
	if (sigkill)
		kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	*ms = (now_ns() - t0) / 1000000;
	/* The counters of a closed file are recorded when its teardown returns. */
	for (i = 0; i < 200; i++) {
		if (read_totals(&after) && after.submitted == before.submitted + n &&
		    after.in_flight == 0 && after.pending == 0)
			break;
		usleep(10000);
	}
	delta->submitted = after.submitted - before.submitted;
	delta->completed = after.completed - before.completed;
	delta->cancelled = after.cancelled - before.cancelled;
	delta->errored = after.errored - before.errored;
	delta->timed_out = after.timed_out - before.timed_out;
	return 1;
}

static void test_teardown(void)
{
	int fd2 = open_device(), tl2 = sw_timeline(), out[9], n = 0, i, ok = 1, st = 0, dep;
	struct totals d;
	long ms = 0;
	uint32_t bo;
	struct drm_dummy_gpu_cmd c;
	struct submit s = { .cmds = &c, .ncmds = 1, .credits = 1 };
	int32_t in[1];
	uint32_t *map;

	/* A client that exits normally gets its work done: closing the file flushes it. */
	ok = child_close(4, 100000, 0, &d, &ms);
	check(ok && d.submitted == 4 && d.completed == 4 && d.cancelled == 0,
	      "teardown: a normal exit completes the submitted work (flush)",
	      "submitted %" PRIu64 " completed %" PRIu64 " cancelled %" PRIu64 ", exit took %ld ms",
	      d.submitted, d.completed, d.cancelled, ms);
	/*
	 * A killed client gets it cancelled, without waiting for it (the jobs are shorter than
	 * the job timeout, but together take longer than the kill).
	 */
	ok = child_close(4, 400000, 1, &d, &ms);
	check(ok && d.submitted == 4 && d.completed == 0 && d.cancelled == 4 && ms < 400,
	      "teardown: SIGKILL cancels the submitted work at once",
	      "submitted %" PRIu64 " completed %" PRIu64 " cancelled %" PRIu64 " timed out %"
	      PRIu64 " errored %" PRIu64 ", exit took %ld ms",
	      d.submitted, d.completed, d.cancelled, d.timed_out, d.errored, ms);

	if (fd2 < 0 || tl2 < 0 || bo_create(fd2, 4096, &bo)) {
		check(0, "teardown: closing the file cancels its jobs", "setup failed");
		return;
	}
	map = bo_map(fd2, bo, 4096);
	c = fill(bo, 0, 64, 7);
	/* Jobs waiting for a fence that does not signal before close. */
	in[0] = sw_fence(tl2, 1);
	s.in = in;
	s.nin = 1;
	for (i = 0; i < 4; i++) {
		s.ring = i % dev_rings;
		out[n++] = submit(fd2, &s);
	}
	close(in[0]);
	munmap(map, 4096);
	/*
	 * The flush gives up after its bound; the jobs are then cancelled, but only once their
	 * dependency has signalled: a done fence never signals before what it waited for.
	 */
	close(fd2);
	for (i = 0; i < n; i++) {
		st = out[i] >= 0 ? status_of(out[i], 0) : out[i];
		if (st != 0)
			ok = 0;
	}
	check(ok, "teardown: closing the file leaves jobs waiting for their dependency",
	      "status %d", st);
	sw_inc(tl2, 1);
	ok = 1;
	for (i = 0; i < n; i++) {
		st = out[i] >= 0 ? status_of(out[i], 2000) : out[i];
		if (st != -ECANCELED)
			ok = 0;
	}
	check(ok, "teardown: ... which are cancelled (-ECANCELED) once it signalled",
	      "last status %d", st);

	/* A job depending on a cancelled fence fails with that error and does not run. */
	if (bo_create(drm_fd, 4096, &bo) == 0) {
		map = bo_map(drm_fd, bo, 4096);
		c = fill(bo, 0, 64, 9);
		s.in = in;
		s.nin = 1;
		in[0] = out[n - 1];
		s.ring = 0;
		dep = submit(drm_fd, &s);
		st = dep >= 0 ? status_of(dep, 2000) : dep;
		check(st == -ECANCELED && map[0] == 0,
		      "teardown: a failed in-fence fails the job, which does not run",
		      "status %d, word0 %#x", st, map[0]);
		if (dep >= 0)
			close(dep);
		munmap(map, 4096);
		bo_close(drm_fd, bo);
	}
	for (i = 0; i < n; i++)
		if (out[i] >= 0)
			close(out[i]);
	close(tl2);
}

/*
 * Suspends the emulated device (debugfs) while one job is on the ring and
 * submits another: while suspended, for more than twice the job timeout,
 * nothing completes, the new job does not execute and nothing times out;
 * after resume both complete with the right buffer contents.
 */
static void test_suspend(uint32_t bo, uint32_t *map)
{
	struct drm_dummy_gpu_cmd c1 = fill(bo, 0, 4, 0x5151), c2 = fill(bo, 4, 4, 0x5252);
	struct submit s = { .cmds = &c1, .ncmds = 1, .credits = 1, .busy_us = 100000 };
	struct totals before, after;
	int fd1, fd2, st1, st2, ok, have;
	uint32_t w1;

	/* The map is read-only; the words hold earlier values, not these. */
	have = read_totals(&before);
	fd1 = submit(drm_fd, &s);
	usleep(20000);
	write_file(DEBUGFS_SUSPEND, "1");
	s.cmds = &c2;
	s.busy_us = 0;
	fd2 = submit(drm_fd, &s);
	usleep((2 * dev_timeout_ms + 300) * 1000);
	st1 = fd1 >= 0 ? fence_info(fd1, NULL, NULL, NULL) : fd1;
	st2 = fd2 >= 0 ? fence_info(fd2, NULL, NULL, NULL) : fd2;
	w1 = map[1];
	check(st1 == 0 && st2 == 0 && w1 != 0x5252,
	      "suspend: nothing completes or runs while the device is suspended",
	      "statuses %d %d, word1 %#x", st1, st2, w1);
	write_file(DEBUGFS_SUSPEND, "0");
	st1 = fd1 >= 0 ? status_of(fd1, 5000) : fd1;
	st2 = fd2 >= 0 ? status_of(fd2, 5000) : fd2;
	ok = have && read_totals(&after) && after.timed_out == before.timed_out;
	check(st1 == 1 && st2 == 1 && map[0] == 0x5151 && map[1] == 0x5252 && ok,
	      "suspend: after resume everything completes, nothing timed out",
	      "statuses %d %d, words %#x %#x, timed out %" PRIu64 " -> %" PRIu64, st1, st2,
	      map[0], map[1], before.timed_out, have ? after.timed_out : 0);
	if (fd1 >= 0)
		close(fd1);
	if (fd2 >= 0)
		close(fd2);
}

/* The value of "key:" in /proc/self/fdinfo/@fd, or -1. */
static int64_t fdinfo_value(int fd, const char *key, char *text, size_t len)
{
	char path[64], line[256];
	size_t klen = strlen(key);
	int64_t v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, klen) || line[klen] != ':')
			continue;
		if (text)
			snprintf(text, len, "%s", line + klen + 1 + strspn(line + klen + 1, " \t"));
		v = strtoll(line + klen + 1, NULL, 10);
		break;
	}
	fclose(f);
	return v;
}

/*
 * fdinfo usage statistics (Documentation/gpu/drm-usage-stats.rst): a fresh
 * file runs three 30 ms jobs on ring 0 and one 20 ms job on ring 1; its
 * drm-engine-ring0/1 times must cover the jobs' busy time and stay within
 * the wall time, and the DRM core's keys and the memory keys must be there.
 */
static void test_fdinfo(void)
{
	int fd = open_device(), out[4], i, ok = 1;
	int64_t r0, r1, r2, id, total;
	struct drm_dummy_gpu_cmd c;
	struct submit s = { .cmds = &c, .ncmds = 1, .credits = 1, .busy_us = 30000 };
	char drv[64] = "";
	uint64_t t0, wall;
	uint32_t bo;

	if (fd < 0 || bo_create(fd, 4096, &bo)) {
		check(0, "fdinfo: engine time per ring", "setup failed");
		return;
	}
	c = fill(bo, 0, 4, 1);
	t0 = now_ns();
	for (i = 0; i < 4; i++) {
		s.ring = i == 3;
		s.busy_us = i == 3 ? 20000 : 30000;
		out[i] = submit(fd, &s);
	}
	for (i = 0; i < 4; i++) {
		ok &= out[i] >= 0 && status_of(out[i], 5000) == 1;
		if (out[i] >= 0)
			close(out[i]);
	}
	wall = now_ns() - t0;
	r0 = fdinfo_value(fd, "drm-engine-ring0", NULL, 0);
	r1 = fdinfo_value(fd, "drm-engine-ring1", NULL, 0);
	r2 = fdinfo_value(fd, "drm-engine-ring2", NULL, 0);
	id = fdinfo_value(fd, "drm-client-id", NULL, 0);
	fdinfo_value(fd, "drm-driver", drv, sizeof(drv));
	total = fdinfo_value(fd, "drm-total-memory", NULL, 0);
	check(ok && r0 >= 90000000 && r0 <= (int64_t)wall && r1 >= 20000000 &&
	      r1 <= (int64_t)wall && r2 == 0,
	      "fdinfo: drm-engine-<ring> covers the busy time of the file's jobs",
	      "jobs ok %d, ring0 %" PRId64 " ns, ring1 %" PRId64 " ns, ring2 %" PRId64
	      " ns, wall %" PRIu64 " ns", ok, r0, r1, r2, wall);
	check(id >= 0 && !strncmp(drv, "dummy_gpu", 9) && total >= 4,
	      "fdinfo: drm-driver, drm-client-id and memory keys",
	      "driver '%s', client id %" PRId64 ", drm-total-memory %" PRId64, drv, id, total);
	bo_close(fd, bo);
	close(fd);
}

/*
 * Kernel threads other than kworkers (whose number the workqueue code changes
 * on demand): a workqueue with WQ_MEM_RECLAIM adds a rescuer thread named
 * after it. Returns -1 if /proc cannot be read.
 */
static int count_kthreads(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char path[64], buf[256], *name, *rp;
		int ppid = -1;
		FILE *f;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%.16s/stat", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(buf, sizeof(buf), f)) {
			name = strchr(buf, '(');
			rp = strrchr(buf, ')');
			if (name && rp && sscanf(rp + 2, "%*c %d", &ppid) == 1 && ppid == 2 &&
			    strncmp(name + 1, "kworker/", 8))
				n++;
		}
		fclose(f);
	}
	closedir(d);
	return n;
}

/*
 * Opens @n files (each with its rings: dev_rings queues) and runs one job on
 * every ring of every file, keeping all files open, then closes them. The
 * queues share the device's workqueues: no kernel thread is added, and none
 * is left behind. (Out-fences are closed as they signal: the default hard
 * limit of open files is 4096.)
 */
static void test_many_files(int n)
{
	int *fds = calloc(n, sizeof(*fds)), out[16];
	int k0 = count_kthreads(), k1 = -1, k2, opened = 0, done = 0, i, r;
	struct drm_dummy_gpu_cmd c;
	struct submit s = { .cmds = &c, .ncmds = 1, .credits = 1 };
	uint32_t *bos = calloc(n, sizeof(*bos));
	uint64_t t0 = now_ns();

	if (!fds || !bos || dev_rings > 16) {
		check(0, "scale: many files", "out of memory");
		return;
	}
	for (i = 0; i < n; i++) {
		fds[i] = open_device();
		if (fds[i] < 0 || bo_create(fds[i], 4096, &bos[i]))
			break;
		opened++;
		c = fill(bos[i], 0, 64, i);
		for (r = 0; r < (int)dev_rings; r++) {
			s.ring = r;
			out[r] = submit(fds[i], &s);
		}
		for (r = 0; r < (int)dev_rings; r++) {
			if (out[r] >= 0 && status_of(out[r], 10000) == 1)
				done++;
			if (out[r] >= 0)
				close(out[r]);
		}
	}
	k1 = count_kthreads();
	for (i = 0; i < opened; i++)
		close(fds[i]);
	k2 = count_kthreads();
	check(opened == n && done == n * (int)dev_rings,
	      "scale: 1,000 files with all their rings run a job each",
	      "opened %d of %d, %d of %d jobs done", opened, n, done, n * dev_rings);
	check(k0 >= 0 && k1 == k0 && k2 == k0,
	      "scale: the queues add no kernel thread, and leave none",
	      "kernel threads (no kworkers) %d before, %d with %d files open, %d after", k0,
	      k1, opened, k2);
	ksft_print_msg("scale: %d files x %u rings in %" PRIu64 " ms, %d kernel threads\n",
		       opened, dev_rings, (now_ns() - t0) / 1000000, k0);
	free(fds);
	free(bos);
}

/*
 * The syzkaller technique: fail the k-th fault-injection point of a SUBMIT,
 * for k = 1, 2, ... until a SUBMIT goes through without hitting one. Every
 * failed SUBMIT must fail with -ENOMEM and queue nothing.
 */
static void test_failnth(uint32_t bo, int ndeps, int syncobj)
{
	struct drm_dummy_gpu_cmd c = fill(bo, 0, 64, 0x77);
	struct submit s = { .cmds = &c, .ncmds = 1, .credits = 1 };
	struct drm_syncobj_create sc = { 0 };
	struct drm_syncobj_destroy sd = { 0 };
	int32_t in[DUMMY_GPU_MAX_IN_FENCES];
	int tls[DUMMY_GPU_MAX_IN_FENCES];
	int nth, k, r, left, injected = 0, bad = 0, first_bad = 0, ok = 0, i, st = 0;
	int absorbed = 0;
	struct totals before, after;
	char buf[32], name[96];

	snprintf(name, sizeof(name), "fail-nth: every allocation of SUBMIT (%d deps%s)", ndeps,
		 syncobj ? ", out-syncobj" : "");
	nth = open("/proc/thread-self/fail-nth", O_RDWR | O_CLOEXEC);
	if (nth < 0) {
		check(0, name, "no /proc/thread-self/fail-nth (CONFIG_FAULT_INJECTION)");
		return;
	}
	for (i = 0; i < ndeps; i++) {
		tls[i] = sw_timeline();
		in[i] = tls[i] >= 0 ? sw_fence(tls[i], 1) : -1;
	}
	s.in = in;
	s.nin = ndeps;
	if (syncobj && !xioctl(drm_fd, DRM_IOCTL_SYNCOBJ_CREATE, &sc)) {
		s.flags = DUMMY_GPU_SUBMIT_OUT_SYNCOBJ;
		s.syncobj = sc.handle;
	}
	read_totals(&before);
	for (k = 1; k < 2000; k++) {
		snprintf(buf, sizeof(buf), "%d", k);
		if (pwrite(nth, buf, strlen(buf), 0) < 0)
			break;
		r = submit(drm_fd, &s);
		memset(buf, 0, sizeof(buf));
		if (pread(nth, buf, sizeof(buf) - 1, 0) < 0)
			break;
		left = atoi(buf);
		if (left && r < 0) {
			/* Not injected, yet failed: report it. */
			if (!bad)
				first_bad = r;
			bad++;
			pwrite(nth, "0", 1, 0);
			break;
		}
		if (left) {
			/* Not injected: this SUBMIT went through. */
			pwrite(nth, "0", 1, 0);
			ok = r >= 0;
			if (r >= 0) {
				for (i = 0; i < ndeps; i++)
					sw_inc(tls[i], 1);
				st = status_of(r, 5000);
				close(r);
			}
			break;
		}
		injected++;
		if (r >= 0) {
			/* The failure was absorbed (an allocation retried); the job is queued. */
			for (i = 0; i < ndeps; i++)
				sw_inc(tls[i], 1);
			if (status_of(r, 5000) != 1)
				bad++;
			close(r);
			absorbed++;
			continue;
		}
		if (r != -ENOMEM) {
			if (!bad)
				first_bad = r;
			bad++;
			if (r >= 0)
				close(r);
		}
	}
	read_totals(&after);
	check(ok && !bad && st == 1 && after.submitted == before.submitted + 1 + absorbed &&
	      after.pending == 0 && after.in_flight == 0, name,
	      "%d faults injected, %d not -ENOMEM (first %d), final submit %s, status %d, submitted +%"
	      PRIu64, injected, bad, first_bad, ok ? "ok" : "failed", st,
	      after.submitted - before.submitted);
	ksft_print_msg("%s: %d faults injected (%d absorbed by a retry)\n", name, injected,
		       absorbed);
	faults_injected += injected;
	faults_absorbed += absorbed;
	for (i = 0; i < ndeps; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (tls[i] >= 0)
			close(tls[i]);
	}
	if (sc.handle) {
		sd.handle = sc.handle;
		xioctl(drm_fd, DRM_IOCTL_SYNCOBJ_DESTROY, &sd);
	}
	close(nth);
}

/*
 * Unloads the module while out-fence sync_files are still open: one fence that
 * signalled, one cancelled while waiting for a dependency, one cancelled while
 * hung on the ring. They must stay readable and pollable, and report the names
 * a fence has once detached from its (gone) issuer.
 */
static void test_unload(void)
{
	int fd = open_device(), tl2 = sw_timeline(), out[3], st[3], rc, i, ok;
	uint64_t t0;
	long close_ms;
	/* Done; cancelled once its dependency signalled; timed out during the close's flush. */
	static const int want[3] = { 1, -ECANCELED, -ETIMEDOUT };
	char drv[3][32], tln[3][32];
	struct drm_dummy_gpu_cmd c;
	struct submit s = { .cmds = &c, .ncmds = 1, .credits = 1 };
	int32_t in[1];
	uint32_t bo;

	if (fd < 0 || tl2 < 0 || bo_create(fd, 4096, &bo)) {
		check(0, "unload: module unload with live out-fences", "setup failed");
		return;
	}
	c = fill(bo, 0, 64, 1);
	out[0] = submit(fd, &s);
	in[0] = sw_fence(tl2, 1);
	s.in = in;
	s.nin = 1;
	out[1] = submit(fd, &s);
	close(in[0]);
	s.in = NULL;
	s.nin = 0;
	s.flags = DUMMY_GPU_SUBMIT_HANG;
	s.ring = dev_rings - 1;
	out[2] = submit(fd, &s);
	status_of(out[0], 2000);
	t0 = now_ns();
	close(fd);
	close_ms = (now_ns() - t0) / 1000000;
	/* The job waiting for it is cancelled only now; the module's exit would wait for it. */
	sw_inc(tl2, 1);
	status_of(out[1], 2000);
	rc = syscall(SYS_delete_module, opt.module, O_NONBLOCK);
	ok = rc == 0;
	for (i = 0; i < 3; i++) {
		drv[i][0] = 0;
		tln[i][0] = 0;
		st[i] = out[i] >= 0 ? fence_info(out[i], NULL, drv[i], tln[i]) : out[i];
		ok = ok && st[i] == want[i] && wait_fence(out[i], 0) &&
		     !strcmp(drv[i], "detached-driver") && !strcmp(tln[i], "signaled-timeline");
		ksft_print_msg("after unload, fence %d: status %d, driver '%s', timeline '%s'\n",
			       i, st[i], drv[i], tln[i]);
	}
	check(ok, "unload: out-fences stay readable after the module is gone, names detached",
	      "delete_module %d (%s), status %d/%d/%d, names '%s'/'%s', close took %ld ms", rc,
	      rc ? strerror(errno) : "ok", st[0], st[1], st[2], drv[0], tln[0], close_ms);
	for (i = 0; i < 3; i++)
		if (out[i] >= 0)
			close(out[i]);
	close(tl2);
}

int test(void)
{
	struct totals before, after;
	uint32_t bo, *map;
	int fd_probe, fd_probe2, have;

	/* The number of cases depends on the machine: the plan comes last. */
	ksft_print_header();
	if (bo_create(drm_fd, 4096, &bo))
		die("BO_CREATE failed\n");
	map = bo_map(drm_fd, bo, 4096);

	have = read_totals(&before);
	fd_probe = open("/dev/null", O_RDONLY);
	close(fd_probe);
	test_bad_input(bo, 4096);
	fd_probe2 = open("/dev/null", O_RDONLY);
	close(fd_probe2);
	check(fd_probe == fd_probe2, "bad input leaves no file descriptor behind",
	      "next fd %d, was %d", fd_probe2, fd_probe);
	check(have && read_totals(&after) && after.submitted == before.submitted,
	      "bad input queues no job", "submitted %" PRIu64 " -> %" PRIu64,
	      before.submitted, after.submitted);

	test_success_paths(bo, map);
	test_syncobj_timeline(bo, map);
	test_implicit_sync();
	test_fence_graph();
	test_trace(bo);
	test_suspend(bo, map);
	test_fdinfo();
	test_many_files(1000);
	/* Let GFP_KERNEL allocations fail too; quietly. */
	write_file("/sys/kernel/debug/failslab/ignore-gfp-wait", "N");
	write_file("/sys/kernel/debug/fail_page_alloc/ignore-gfp-wait", "N");
	write_file("/sys/kernel/debug/failslab/verbose", "0");
	write_file("/sys/kernel/debug/fail_page_alloc/verbose", "0");
	test_failnth(bo, 0, 0);
	test_failnth(bo, 1, 0);
	test_failnth(bo, 16, 0);
	test_failnth(bo, 1, 1);
	test_teardown();
	munmap(map, 4096);
	bo_close(drm_fd, bo);

	check(read_totals(&after) && after.pending == 0 && after.in_flight == 0 &&
	      after.credits == 0 && after.submitted == after.completed + after.errored +
	      after.timed_out + after.cancelled,
	      "counters balance, nothing left in flight",
	      "submitted %" PRIu64 " completed %" PRIu64 " errored %" PRIu64 " timed_out %"
	      PRIu64 " cancelled %" PRIu64 " in_flight %" PRIu64 " pending %" PRIu64,
	      after.submitted, after.completed, after.errored, after.timed_out,
	      after.cancelled, after.in_flight, after.pending);
	print_debugfs("# ");
	if (opt.module) {
		close(drm_fd);
		drm_fd = -1;
		test_unload();
	}
	finish();
}

static void set_fault_injection(int on)
{
	/* With on, fail-nth also fails allocations that may sleep; quietly. */
	write_file("/sys/kernel/debug/failslab/ignore-gfp-wait", on ? "N" : "Y");
	write_file("/sys/kernel/debug/fail_page_alloc/ignore-gfp-wait", on ? "N" : "Y");
	write_file("/sys/kernel/debug/failslab/verbose", "0");
	write_file("/sys/kernel/debug/fail_page_alloc/verbose", "0");
}

/* fail-nth sweep of BO_CREATE: every failure -ENOMEM (or -ENOSPC), nothing left behind. */
static void test_failnth_bo_create(void)
{
	int nth = open("/proc/thread-self/fail-nth", O_RDWR | O_CLOEXEC);
	int k, r, left, injected = 0, bad = 0, ok = 0, first_bad = 0;
	struct drm_gem_close gc = { 0 };
	uint32_t h = 0, probe;
	char buf[32];

	if (nth < 0) {
		check(0, "fail-nth: every allocation of BO_CREATE", "no fail-nth");
		return;
	}
	for (k = 1; k < 2000; k++) {
		snprintf(buf, sizeof(buf), "%d", k);
		if (pwrite(nth, buf, strlen(buf), 0) < 0)
			break;
		r = bo_create(drm_fd, 65536, &h);
		memset(buf, 0, sizeof(buf));
		if (pread(nth, buf, sizeof(buf) - 1, 0) < 0)
			break;
		left = atoi(buf);
		pwrite(nth, "0", 1, 0);
		if (!r) {
			gc.handle = h;
			xioctl(drm_fd, DRM_IOCTL_GEM_CLOSE, &gc);
		}
		if (left) {
			ok = !r;
			break;
		}
		injected++;
		/* shmem reports a failed inode allocation as -ENOSPC (documented). */
		if (r && r != -ENOMEM && r != -ENOSPC && !bad++)
			first_bad = r;
	}
	/* A failed BO_CREATE must not have used a handle: the next one is the lowest. */
	if (!bo_create(drm_fd, 4096, &probe)) {
		gc.handle = probe;
		xioctl(drm_fd, DRM_IOCTL_GEM_CLOSE, &gc);
	}
	check(ok && !bad && injected > 0, "fail-nth: every allocation of BO_CREATE",
	      "%d injected, %d not -ENOMEM (first %d), final %s", injected, bad, first_bad,
	      ok ? "ok" : "failed");
	ksft_print_msg("fail-nth: BO_CREATE: %d faults injected\n", injected);
	faults_injected += injected;
	close(nth);
}

int failnth_mode(void)
{
	struct totals t;
	uint32_t bo;

	ksft_print_header();
	/* Five SUBMIT sweeps, the BO_CREATE sweep, the final balance. */
	ksft_set_plan(7);
	if (bo_create(drm_fd, 4096, &bo))
		die("BO_CREATE failed\n");
	set_fault_injection(1);
	test_failnth(bo, 0, 0);
	test_failnth(bo, 1, 0);
	test_failnth(bo, 16, 0);
	test_failnth(bo, 1, 1);
	test_failnth(bo, 16, 1);
	test_failnth_bo_create();
	set_fault_injection(0);
	bo_close(drm_fd, bo);
	check(read_totals(&t) && t.pending == 0 && t.in_flight == 0 &&
	      t.submitted == t.completed + t.errored + t.timed_out + t.cancelled,
	      "fail-nth: nothing left pending or unsignalled, counters balance",
	      "pending %" PRIu64 " in_flight %" PRIu64, t.pending, t.in_flight);
	stat_line("failnth.faults_injected", faults_injected);
	stat_line("failnth.faults_absorbed", faults_absorbed);
	stat_line("failnth.failed_checks", ksft_get_fail_cnt());
	finish();
}

int unload_mode(void)
{
	if (!opt.module)
		die("unload needs --module NAME\n");
	ksft_print_header();
	ksft_set_plan(1);
	close(drm_fd);
	drm_fd = -1;
	test_unload();
	stat_line("unload.failed_checks", ksft_get_fail_cnt());
	finish();
}
