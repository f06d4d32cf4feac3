// SPDX-License-Identifier: GPL-2.0
/*
 * dummy_gpu_client test: the cases on syncobjs, implicit sync, a fence
 * graph over every kind of fence, and tracing. Results go through check()
 * and skip() of test.c.
 */
#include "dummy_gpu_client.h"

/* DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT for one point, at most ms milliseconds. */
static int timeline_wait(uint32_t h, uint64_t point, uint32_t flags, int ms)
{
	struct drm_syncobj_timeline_wait w = {
		.handles = (uintptr_t)&h, .points = (uintptr_t)&point,
		.timeout_nsec = (int64_t)(now_ns() + (uint64_t)ms * 1000000),
		.count_handles = 1, .flags = flags,
	};

	return xioctl(drm_fd, DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT, &w);
}

/* The last signalled point of a timeline syncobj (DRM_IOCTL_SYNCOBJ_QUERY). */
static int64_t timeline_query(uint32_t h)
{
	uint64_t point = 0;
	struct drm_syncobj_timeline_array a = {
		.handles = (uintptr_t)&h, .points = (uintptr_t)&point, .count_handles = 1,
	};
	int r = xioctl(drm_fd, DRM_IOCTL_SYNCOBJ_QUERY, &a);

	return r ? r : (int64_t)point;
}

/* The syncobj's (binary) fence as a sync_file, or -errno. */
static int syncobj_export(uint32_t h)
{
	struct drm_syncobj_handle sh = {
		.handle = h, .flags = DRM_SYNCOBJ_HANDLE_TO_FD_FLAGS_EXPORT_SYNC_FILE, .fd = -1,
	};
	int r = xioctl(drm_fd, DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD, &sh);

	return r ? r : sh.fd;
}

/*
 * Timeline syncobjs through the DRM core ioctls: a job adds its out-fence at
 * a point, later jobs wait for points, a point that has not materialised is
 * refused, and QUERY, TIMELINE_WAIT, TIMELINE_SIGNAL, TRANSFER and the
 * sync_file import and export see the job's fences.
 */
void test_syncobj_timeline(uint32_t bo, uint32_t *map)
{
	struct drm_dummy_gpu_cmd c = fill(bo, 0, 64, 0x1110);
	struct drm_dummy_gpu_syncobj_point in[1];
	struct submit s = { .cmds = &c, .ncmds = 1, .ring = 1 % dev_rings };
	uint32_t tl = syncobj_create(), bin = syncobj_create(), bin2 = syncobj_create();
	int fa, fb, fc, ok, st, e, sync, swt = sw_timeline(), swf;
	struct drm_syncobj_transfer tr = { 0 };
	struct drm_syncobj_timeline_array sig = { 0 };
	struct drm_syncobj_handle ih = { 0 };
	uint64_t point5 = 5, ts_b = 0, ts_c = 0, ts_sw = 0;
	int64_t q0, q1;

	/* A, 100 ms, adds its out-fence at point 1. */
	s.flags = DUMMY_GPU_SUBMIT_OUT_SYNCOBJ;
	s.syncobj = tl;
	s.out_point = 1;
	s.busy_us = 100000;
	fa = submit(drm_fd, &s);
	q0 = timeline_query(tl);
	st = timeline_wait(tl, 1, DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT, 5000);
	q1 = timeline_query(tl);
	ok = fa >= 0 && q0 == 0 && st == 0 && q1 == 1 && fence_info(fa, NULL, NULL, NULL) == 1 &&
	     map[0] == 0x1110;
	check(ok, "syncobj: out-fence at timeline point 1; QUERY and TIMELINE_WAIT see it",
	      "fd %d, query %" PRId64 " then %" PRId64 ", wait %d, word0 %#x", fa, q0, q1, st,
	      map[0]);

	/* B waits for point 1 and adds point 3; a point not there yet is refused. */
	in[0] = (struct drm_dummy_gpu_syncobj_point){ .handle = tl, .point = 1 };
	c = fill(bo, 0, 64, 1);
	c.op = DUMMY_GPU_OP_ADD;
	s.insync = in;
	s.ninsync = 1;
	s.out_point = 3;
	s.busy_us = 50000;
	fb = submit(drm_fd, &s);
	in[0].point = 5;
	s.flags = 0;
	s.syncobj = 0;
	s.out_point = 0;
	e = submit(drm_fd, &s);
	st = timeline_wait(tl, 3, DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT, 5000);
	ok = fb >= 0 && e == -EINVAL && st == 0 && status_of(fb, 100) == 1 && map[0] == 0x1111 &&
	     timeline_query(tl) == 3;
	check(ok, "syncobj: a job waits for a timeline point; an unmaterialised point -> EINVAL",
	      "fd %d, unmaterialised %d, wait %d, word0 %#x", fb, e, st, map[0]);
	if (e >= 0)
		close(e);

	/* TIMELINE_SIGNAL materialises point 5: a job waiting for it runs. */
	sig.handles = (uintptr_t)&tl;
	sig.points = (uintptr_t)&point5;
	sig.count_handles = 1;
	st = xioctl(drm_fd, DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL, &sig);
	s.busy_us = 0;
	fc = submit(drm_fd, &s);
	ok = st == 0 && fc >= 0 && status_of(fc, 5000) == 1 && map[0] == 0x1112 &&
	     timeline_query(tl) == 5;
	check(ok, "syncobj: TIMELINE_SIGNAL materialises a point that a job then waits for",
	      "signal %d, fd %d, word0 %#x", st, fc, map[0]);
	if (fc >= 0)
		close(fc);

	/* TRANSFER point 3 to a binary syncobj, and export it as a sync_file. */
	tr.src_handle = tl;
	tr.src_point = 3;
	tr.dst_handle = bin;
	st = xioctl(drm_fd, DRM_IOCTL_SYNCOBJ_TRANSFER, &tr);
	sync = st ? st : syncobj_export(bin);
	fence_info(fb, &ts_b, NULL, NULL);
	ok = st == 0 && sync >= 0 && status_of(sync, 100) == 1;
	check(ok, "syncobj: TRANSFER of a job's point, exported as a signalled sync_file",
	      "transfer %d, export %d", st, sync);
	if (sync >= 0)
		close(sync);

	/* A sw_sync fence imported into a binary syncobj holds a job back. */
	swf = swt >= 0 ? sw_fence(swt, 1) : -1;
	ih.handle = bin2;
	ih.flags = DRM_SYNCOBJ_FD_TO_HANDLE_FLAGS_IMPORT_SYNC_FILE;
	ih.fd = swf;
	st = swf >= 0 ? xioctl(drm_fd, DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE, &ih) : -1;
	in[0] = (struct drm_dummy_gpu_syncobj_point){ .handle = bin2, .point = 0 };
	fc = submit(drm_fd, &s);
	usleep(100000);
	e = fc >= 0 ? fence_info(fc, NULL, NULL, NULL) : fc;
	sw_inc(swt, 1);
	fence_info(swf, &ts_sw, NULL, NULL);
	ok = st == 0 && fc >= 0 && e == 0 && status_of(fc, 5000) == 1 && map[0] == 0x1113;
	fence_info(fc, &ts_c, NULL, NULL);
	ok = ok && ts_c >= ts_sw;
	check(ok, "syncobj: FD_TO_HANDLE of a sw_sync fence; the job waits for it",
	      "import %d, fd %d, before signal %d, ts %" PRIu64 " >= %" PRIu64 ", word0 %#x", st,
	      fc, e, ts_c, ts_sw, map[0]);
	if (fc >= 0)
		close(fc);
	if (swf >= 0)
		close(swf);
	if (swt >= 0)
		close(swt);
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	syncobj_destroy(tl);
	syncobj_destroy(bin);
	syncobj_destroy(bin2);
}

/* The dma-buf of a BO (PRIME export), or -errno. */
static int bo_export(uint32_t h)
{
	struct drm_prime_handle p = { .handle = h, .flags = DRM_CLOEXEC | DRM_RDWR, .fd = -1 };
	int r = xioctl(drm_fd, DRM_IOCTL_PRIME_HANDLE_TO_FD, &p);

	return r ? r : p.fd;
}

static int dmabuf_export_sync_file(int dmabuf, uint32_t flags)
{
	struct dma_buf_export_sync_file e = { .flags = flags, .fd = -1 };

	return ioctl(dmabuf, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, &e) ? -errno : e.fd;
}

static int dmabuf_import_sync_file(int dmabuf, uint32_t flags, int fd)
{
	struct dma_buf_import_sync_file i = { .flags = flags, .fd = fd };

	return ioctl(dmabuf, DMA_BUF_IOCTL_IMPORT_SYNC_FILE, &i) ? -errno : 0;
}

/* Whether poll() on fd reports events (all of them) within ms milliseconds. */
static int poll_ready(int fd, short events, int ms)
{
	struct pollfd p = { .fd = fd, .events = events };

	return poll(&p, 1, ms) == 1 && (p.revents & events) == events;
}

/*
 * Implicit sync, checked only through interfaces nobody here wrote: poll() on
 * the exported dma-buf, DMA_BUF_IOCTL_EXPORT_SYNC_FILE (read and write), and
 * DMA_BUF_IOCTL_IMPORT_SYNC_FILE of a sw_sync fence that the next implicitly
 * synced job must wait for.
 */
void test_implicit_sync(void)
{
	uint32_t a, b, *ma, *mb;
	int dmabuf, fw, fr, fn, rd, wr, swt, swf, st, e, ok, w;
	struct drm_dummy_gpu_bo_ref refs[2];
	struct drm_dummy_gpu_cmd c;
	struct submit s = { .cmds = &c, .ncmds = 1, .bos = refs, .ring = 2 % dev_rings };
	uint64_t ts_r = 0, ts_sw = 0;

	if (bo_create(drm_fd, 4096, &a) || bo_create(drm_fd, 4096, &b)) {
		check(0, "implicit sync: setup", "BO_CREATE failed");
		return;
	}
	ma = bo_map(drm_fd, a, 4096);
	mb = bo_map(drm_fd, b, 4096);
	dmabuf = bo_export(a);
	check(dmabuf >= 0, "implicit sync: BO exported as a dma-buf (PRIME)", "fd %d", dmabuf);
	if (dmabuf < 0)
		goto out;

	/* A 200 ms write of A: its fence is a write fence of the dma-buf. */
	c = fill(a, 0, 4096, 0xaaaa);
	refs[0] = (struct drm_dummy_gpu_bo_ref){ .handle = a, .flags = DUMMY_GPU_BO_WRITE };
	s.nbos = 1;
	s.flags = DUMMY_GPU_SUBMIT_IMPLICIT_SYNC;
	s.busy_us = 200000;
	fw = submit(drm_fd, &s);
	rd = dmabuf_export_sync_file(dmabuf, DMA_BUF_SYNC_READ);
	wr = dmabuf_export_sync_file(dmabuf, DMA_BUF_SYNC_WRITE);
	ok = fw >= 0 && !poll_ready(dmabuf, POLLIN, 0) && rd >= 0 && wr >= 0 &&
	     fence_info(rd, NULL, NULL, NULL) == 0 && fence_info(wr, NULL, NULL, NULL) == 0;
	check(ok, "implicit sync: a running write blocks poll() and the exported sync_files",
	      "fd %d, read %d, write %d", fw, rd, wr);
	ok = wait_fence(rd, 5000) && fence_info(fw, NULL, NULL, NULL) == 1 &&
	     status_of(wr, 1000) == 1 && poll_ready(dmabuf, POLLIN | POLLOUT, 1000);
	for (w = 0; w < 1024; w++)
		ok = ok && ma[w] == 0xaaaa;
	check(ok, "implicit sync: the exported fences signal when the job does, then poll() is ready",
	      "job %d, word0 %#x", fw >= 0 ? fence_info(fw, NULL, NULL, NULL) : fw, ma[0]);
	if (rd >= 0)
		close(rd);
	if (wr >= 0)
		close(wr);

	/* A sw_sync write fence imported into the dma-buf holds back a reader of A. */
	swt = sw_timeline();
	swf = swt >= 0 ? sw_fence(swt, 1) : -1;
	st = swf >= 0 ? dmabuf_import_sync_file(dmabuf, DMA_BUF_SYNC_WRITE, swf) : -1;
	c = (struct drm_dummy_gpu_cmd){ .op = DUMMY_GPU_OP_COPY, .dst_handle = b, .size = 4096,
					.src_handle = a };
	refs[0] = (struct drm_dummy_gpu_bo_ref){ .handle = a, .flags = 0 };
	refs[1] = (struct drm_dummy_gpu_bo_ref){ .handle = b, .flags = DUMMY_GPU_BO_WRITE };
	s.nbos = 2;
	s.busy_us = 0;
	fr = submit(drm_fd, &s);
	/* Without IMPLICIT_SYNC a job (on another ring) does not wait for the buffer's fences. */
	s.flags = 0;
	s.ring = 3 % dev_rings;
	s.nbos = 1;
	refs[0].flags = DUMMY_GPU_BO_WRITE;
	c = fill(b, 0, 4, 0x1234);
	c.dst_handle = a;
	c.dst_offset = 4092;
	fn = submit(drm_fd, &s);
	e = fn >= 0 ? status_of(fn, 5000) : fn;
	usleep(100000);
	st = st == 0 && fr >= 0 && fence_info(fr, NULL, NULL, NULL) == 0 && e == 1;
	sw_inc(swt, 1);
	fence_info(swf, &ts_sw, NULL, NULL);
	ok = st && status_of(fr, 5000) == 1;
	fence_info(fr, &ts_r, NULL, NULL);
	ok = ok && ts_r >= ts_sw && mb[0] == 0xaaaa && mb[1022] == 0xaaaa;
	check(ok, "implicit sync: IMPORT_SYNC_FILE of a sw_sync fence holds the next reader back",
	      "import/held %d, explicit job %d, reader ts %" PRIu64 " >= %" PRIu64 ", b[0] %#x",
	      st, e, ts_r, ts_sw, mb[0]);
	if (fr >= 0)
		close(fr);
	if (fn >= 0)
		close(fn);
	if (swf >= 0)
		close(swf);
	if (swt >= 0)
		close(swt);
	if (fw >= 0)
		close(fw);
	close(dmabuf);
out:
	munmap(ma, 4096);
	munmap(mb, 4096);
	bo_close(drm_fd, a);
	bo_close(drm_fd, b);
}

/*
 * One dependency graph over every kind of fence: a sw_sync fence gates job A
 * (sync_file in-fence), B waits for A's timeline point (syncobj), C waits for
 * B through the buffer's reservation object only (implicit sync), and D
 * waits for C's binary syncobj exported as a sync_file. At the end the
 * buffers hold the results in order, and the fences signalled in order.
 */
void test_fence_graph(void)
{
	uint32_t x, y, tl = syncobj_create(), bin = syncobj_create(), *mx, *my;
	struct drm_dummy_gpu_syncobj_point pt = { .handle = tl, .point = 1 };
	struct drm_dummy_gpu_bo_ref ref[2];
	struct drm_dummy_gpu_cmd c;
	struct submit s = { .cmds = &c, .ncmds = 1 };
	int swt = sw_timeline(), swf, f[4], cs, i, ok, early;
	uint64_t ts[4] = { 0 };
	int32_t in[1];

	if (swt < 0 || bo_create(drm_fd, 4096, &x) || bo_create(drm_fd, 4096, &y)) {
		check(0, "fence graph: setup", "sw_sync or BO_CREATE failed");
		return;
	}
	mx = bo_map(drm_fd, x, 4096);
	my = bo_map(drm_fd, y, 4096);
	swf = sw_fence(swt, 1);
	/* A: X = 0x100 once the sw_sync fence signals; point 1 of tl; writes X. */
	in[0] = swf;
	c = fill(x, 0, 256, 0x100);
	ref[0] = (struct drm_dummy_gpu_bo_ref){ .handle = x, .flags = DUMMY_GPU_BO_WRITE };
	s = (struct submit){ .cmds = &c, .ncmds = 1, .ring = 0, .in = in, .nin = 1,
			     .flags = DUMMY_GPU_SUBMIT_OUT_SYNCOBJ, .syncobj = tl, .out_point = 1,
			     .bos = ref, .nbos = 1 };
	f[0] = submit(drm_fd, &s);
	/* B (another ring): X += 0x20 after point 1; writes X, implicitly synced too. */
	c = fill(x, 0, 256, 0x20);
	c.op = DUMMY_GPU_OP_ADD;
	s = (struct submit){ .cmds = &c, .ncmds = 1, .ring = 1 % dev_rings, .insync = &pt,
			     .ninsync = 1, .bos = ref, .nbos = 1,
			     .flags = DUMMY_GPU_SUBMIT_IMPLICIT_SYNC };
	f[1] = submit(drm_fd, &s);
	/* C (a third ring): Y = X, only through X's reservation object; out binary syncobj. */
	c = (struct drm_dummy_gpu_cmd){ .op = DUMMY_GPU_OP_COPY, .dst_handle = y, .size = 256,
					.src_handle = x };
	ref[0].flags = 0;
	ref[1] = (struct drm_dummy_gpu_bo_ref){ .handle = y, .flags = DUMMY_GPU_BO_WRITE };
	s = (struct submit){ .cmds = &c, .ncmds = 1, .ring = 2 % dev_rings, .bos = ref, .nbos = 2,
			     .flags = DUMMY_GPU_SUBMIT_IMPLICIT_SYNC | DUMMY_GPU_SUBMIT_OUT_SYNCOBJ,
			     .syncobj = bin };
	f[2] = submit(drm_fd, &s);
	/* D (a fourth ring): Y += 3 after C's syncobj, exported as a sync_file. */
	cs = syncobj_export(bin);
	in[0] = cs;
	c = fill(y, 0, 256, 3);
	c.op = DUMMY_GPU_OP_ADD;
	s = (struct submit){ .cmds = &c, .ncmds = 1, .ring = 3 % dev_rings, .in = in, .nin = 1 };
	f[3] = submit(drm_fd, &s);
	usleep(100000);
	early = 0;
	for (i = 0; i < 4; i++)
		early += f[i] >= 0 && fence_info(f[i], NULL, NULL, NULL) != 0;
	sw_inc(swt, 1);
	ok = cs >= 0 && early == 0;
	for (i = 0; i < 4; i++) {
		ok = ok && f[i] >= 0 && status_of(f[i], 5000) == 1;
		if (f[i] >= 0)
			fence_info(f[i], &ts[i], NULL, NULL);
		ok = ok && (i == 0 || ts[i] >= ts[i - 1]);
	}
	for (i = 0; i < 64; i++)
		ok = ok && mx[i] == 0x120 && my[i] == 0x123;
	check(ok, "fence graph: sw_sync -> sync_file -> timeline syncobj -> dma_resv -> binary syncobj",
	      "signalled early %d, fds %d %d %d %d, x %#x, y %#x", early, f[0], f[1], f[2], f[3],
	      mx[0], my[0]);
	for (i = 0; i < 4; i++)
		if (f[i] >= 0)
			close(f[i]);
	if (cs >= 0)
		close(cs);
	close(swf);
	close(swt);
	munmap(mx, 4096);
	munmap(my, 4096);
	bo_close(drm_fd, x);
	bo_close(drm_fd, y);
	syncobj_destroy(tl);
	syncobj_destroy(bin);
}

/* Appends the first of /sys/kernel/tracing and /sys/kernel/debug/tracing that exists. */
static const char *tracefs(void)
{
	static const char * const dirs[] = { "/sys/kernel/tracing", "/sys/kernel/debug/tracing" };
	char path[128];
	unsigned int i;

	for (i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/events/drm_jobqueue/enable", dirs[i]);
		if (!access(path, W_OK))
			return dirs[i];
	}
	return NULL;
}

/*
 * The JobQueue's trace events, in drm_sched's format: for a job with one
 * dependency, queue -> add_dep -> run -> done with the same fence=ctx:seqno.
 */
void test_trace(uint32_t bo)
{
	const char *dir = tracefs();
	char path[160], line[512], want[64];
	struct drm_dummy_gpu_cmd c = fill(bo, 0, 64, 7);
	struct submit s = { .cmds = &c, .ncmds = 1, .ring = 0 };
	int swt, swf, fd, pos[4] = { -1, -1, -1, -1 }, n = 0, ok;
	unsigned long long ctx = 0, seq = 0, dctx, dseq;
	static const char *ev[4] = { "drm_jobqueue_job_queue:", "drm_jobqueue_job_add_dep:",
				     "drm_jobqueue_job_run:", "drm_jobqueue_job_done:" };
	int32_t in[1];
	FILE *f;
	int i;

	if (!dir) {
		skip("trace: queue -> add_dep -> run -> done with matching fence=ctx:seqno",
		     "no tracefs with drm_jobqueue events (UML has no ftrace)");
		return;
	}
	snprintf(path, sizeof(path), "%s/trace", dir);
	fd = open(path, O_WRONLY | O_TRUNC);
	if (fd >= 0)
		close(fd);
	snprintf(path, sizeof(path), "%s/events/drm_jobqueue/enable", dir);
	write_file(path, "1");
	swt = sw_timeline();
	swf = sw_fence(swt, 1);
	in[0] = swf;
	s.in = in;
	s.nin = 1;
	fd = submit(drm_fd, &s);
	sw_inc(swt, 1);
	ok = fd >= 0 && status_of(fd, 5000) == 1;
	write_file(path, "0");
	/* The job's fence is the one that depends on the sw_sync fence. */
	snprintf(path, sizeof(path), "%s/trace", dir);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f)) {
		char *p = strstr(line, "depends on fence=");

		if (p && strstr(line, ev[1]) &&
		    sscanf(strstr(line, "fence="), "fence=%llu:%llu", &ctx, &seq) == 2 &&
		    sscanf(p, "depends on fence=%llu:%llu", &dctx, &dseq) == 2)
			break;
	}
	if (f)
		rewind(f);
	snprintf(want, sizeof(want), "fence=%llu:%llu", ctx, seq);
	while (f && ctx && fgets(line, sizeof(line), f)) {
		n++;
		for (i = 0; i < 4; i++)
			if (strstr(line, ev[i]) && strstr(line, want) && pos[i] < 0)
				pos[i] = n;
	}
	if (f)
		fclose(f);
	ok = ok && ctx && pos[0] > 0 && pos[0] < pos[1] && pos[1] < pos[2] && pos[2] < pos[3];
	check(ok, "trace: queue -> add_dep -> run -> done with matching fence=ctx:seqno",
	      "job %s, lines queue %d add_dep %d run %d done %d", want, pos[0], pos[1], pos[2],
	      pos[3]);
	if (fd >= 0)
		close(fd);
	close(swf);
	close(swt);
}
