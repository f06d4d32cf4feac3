// SPDX-License-Identifier: GPL-2.0
/*
 * dummy_gpu_client demo: a random job DAG across all rings, with sw_sync
 * foreign fences, verified against a CPU reference.
 */
#include "dummy_gpu_client.h"

struct job {
	int fd;
	int ring;
	uint64_t point;		/* its point on its ring's timeline syncobj */
	int retired;
	int status;
	uint64_t t_submit;
	uint64_t latency;
};

struct bo {
	uint32_t handle;
	uint32_t *map;
	uint32_t *shadow;
	long last_job;
};

static void apply_cpu(struct bo *bos, const struct drm_dummy_gpu_cmd *c)
{
	uint32_t *dst = bos[c->dst_handle].shadow;
	uint64_t i, n = c->size / 4, d = c->dst_offset / 4, s = c->src_offset / 4;

	for (i = 0; i < n; i++) {
		switch (c->op) {
		case DUMMY_GPU_OP_FILL:
			dst[d + i] = c->value;
			break;
		case DUMMY_GPU_OP_ADD:
			dst[d + i] += c->value;
			break;
		case DUMMY_GPU_OP_COPY:
			dst[d + i] = bos[c->src_handle].shadow[s + i];
			break;
		}
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static struct job *jobs;
static long n_retired, n_errors, n_stuck;
static int tl = -1;
static uint32_t sw_created, sw_signalled;

static void sw_release_all(void)
{
	if (tl >= 0 && sw_signalled < sw_created) {
		sw_inc(tl, sw_created - sw_signalled);
		sw_signalled = sw_created;
	}
}

/* Waits for jobs [from, to) (all unretired), with one poll() over their fds. */
static void retire_range(long from, long to)
{
	struct pollfd *p = calloc(to - from, sizeof(*p));
	long i, left = 0;
	uint64_t deadline = now_ns() + 30ull * 1000000000ull;

	/* They may depend on sw_sync points: release those first. */
	sw_release_all();
	for (i = from; i < to; i++) {
		p[i - from].fd = jobs[i].fd;
		p[i - from].events = POLLIN;
		left++;
	}
	while (left && now_ns() < deadline) {
		int r = poll(p, to - from, 1000);

		if (r < 0 && errno != EINTR)
			die("poll: %s\n", strerror(errno));
		for (i = from; r > 0 && i < to; i++) {
			struct pollfd *q = &p[i - from];
			uint64_t ts = 0;

			if (q->fd < 0 || !(q->revents & POLLIN))
				continue;
			jobs[i].status = fence_info(jobs[i].fd, &ts, NULL, NULL);
			jobs[i].latency = ts > jobs[i].t_submit ? ts - jobs[i].t_submit : 0;
			if (jobs[i].status != 1) {
				if (n_errors < 5)
					fprintf(stderr, "job %ld: fence status %d\n", i,
						jobs[i].status);
				n_errors++;
			}
			close(jobs[i].fd);
			jobs[i].fd = -1;
			jobs[i].retired = 1;
			q->fd = -1;
			n_retired++;
			left--;
		}
	}
	for (i = from; i < to; i++)
		if (!jobs[i].retired) {
			if (n_stuck < 5)
				fprintf(stderr, "job %ld: not signalled after 30 s\n", i);
			n_stuck++;
			close(jobs[i].fd);
			jobs[i].fd = -1;
			jobs[i].retired = 1;
		}
	free(p);
}

/* How the demo expresses a dependency on an earlier job. */
enum dep_kind { DEP_SYNC_FILE, DEP_BINARY_SYNCOBJ, DEP_TIMELINE_POINT, DEP_KINDS };

static uint32_t ring_timeline[64], binary_pool[DUMMY_GPU_MAX_IN_SYNCOBJS];
static uint64_t ring_point[64];
static long dep_kind_count[DEP_KINDS], implicit_jobs;

/*
 * Adds a dependency of the submission @s on the earlier job @j, through a
 * sync_file, a binary syncobj (its fence imported from the job's sync_file)
 * or the job's point on its ring's timeline syncobj, picked at random.
 */
static void add_job_dep(struct submit *s, int32_t *in, struct drm_dummy_gpu_syncobj_point *insync,
			long j)
{
	enum dep_kind k = rnd() % DEP_KINDS;

	if (k == DEP_BINARY_SYNCOBJ) {
		struct drm_syncobj_handle h = {
			.fd = jobs[j].fd,
			.handle = binary_pool[s->ninsync],
			.flags = DRM_SYNCOBJ_FD_TO_HANDLE_FLAGS_IMPORT_SYNC_FILE,
		};

		if (xioctl(drm_fd, DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE, &h))
			die("SYNCOBJ_FD_TO_HANDLE failed\n");
		insync[s->ninsync++] = (struct drm_dummy_gpu_syncobj_point){ .handle = h.handle };
	} else if (k == DEP_TIMELINE_POINT) {
		insync[s->ninsync++] = (struct drm_dummy_gpu_syncobj_point){
			.handle = ring_timeline[jobs[j].ring], .point = jobs[j].point };
	} else {
		in[s->nin++] = jobs[j].fd;
	}
	dep_kind_count[k]++;
}

/* Adds buffer @h to the job's buffer list, merging the access flags. */
static void add_bo_ref(struct submit *s, uint32_t h, int write)
{
	uint32_t k;

	for (k = 0; k < s->nbos; k++)
		if (s->bos[k].handle == h) {
			s->bos[k].flags |= write ? DUMMY_GPU_BO_WRITE : 0;
			return;
		}
	s->bos[s->nbos++] = (struct drm_dummy_gpu_bo_ref){
		.handle = h, .flags = write ? DUMMY_GPU_BO_WRITE : 0 };
}

int demo(void)
{
	struct bo *bos = calloc(opt.bos, sizeof(*bos));
	long words = opt.bo_size / 4, i, oldest = 0, mismatches = 0;
	long dep_same = 0, dep_cross = 0, dep_foreign = 0, dep_bo = 0;
	uint64_t t0, t1, *lat;
	int rings = opt.rings ? opt.rings : (int)dev_rings;
	struct totals tot;
	int b;

	if (rings > (int)dev_rings)
		die("--rings %d, but the device has %u rings per file (module parameter rings=)\n",
		    rings, dev_rings);
	if (rings > 64)
		die("--rings: at most 64\n");
	if (opt.bo_size < 64 || opt.bo_size % 4)
		die("--bo-size must be a multiple of 4, at least 64\n");
	jobs = calloc(opt.jobs, sizeof(*jobs));
	lat = calloc(opt.jobs, sizeof(*lat));
	if (!bos || !jobs || !lat)
		die("out of memory\n");
	if (!opt.no_sw_sync) {
		tl = sw_timeline();
		if (tl < 0)
			die("%s: %s (CONFIG_SW_SYNC, debugfs)\n", SW_SYNC_PATH, strerror(errno));
	}
	for (b = 0; b < opt.bos; b++) {
		if (bo_create(drm_fd, opt.bo_size, &bos[b].handle))
			die("BO_CREATE failed\n");
		bos[b].map = bo_map(drm_fd, bos[b].handle, opt.bo_size);
		bos[b].shadow = calloc(words, 4);
		bos[b].last_job = -1;
	}

	for (b = 0; b < rings; b++)
		ring_timeline[b] = syncobj_create();
	for (b = 0; b < DUMMY_GPU_MAX_IN_SYNCOBJS; b++)
		binary_pool[b] = syncobj_create();

	printf("dummy_gpu: %ld jobs on %d rings (%u credits each), %d BOs of %ld bytes, seed %u\n",
	       opt.jobs, rings, dev_credits, opt.bos, opt.bo_size, opt.seed);
	fflush(stdout);
	t0 = now_ns();
	for (i = 0; i < opt.jobs; i++) {
		struct drm_dummy_gpu_cmd cmds[3], ucmds[3];
		int32_t in[DUMMY_GPU_MAX_IN_FENCES];
		struct drm_dummy_gpu_syncobj_point insync[DUMMY_GPU_MAX_IN_SYNCOBJS];
		struct drm_dummy_gpu_bo_ref brefs[6];
		struct submit s = { .cmds = ucmds, .in = in, .insync = insync, .bos = brefs };
		int sw_fd = -1, c, k, r, implicit;

		s.ring = rnd() % rings;
		s.credits = 1 + rnd() % (dev_credits < 4 ? dev_credits : 4);
		s.busy_us = opt.max_busy_us ? rnd() % (opt.max_busy_us + 1) : 0;
		s.ncmds = 1 + rnd() % 3;
		for (c = 0; c < (int)s.ncmds; c++) {
			struct drm_dummy_gpu_cmd *m = &cmds[c];
			long n = 1 + rnd() % (words < 256 ? words : 256);

			memset(m, 0, sizeof(*m));
			m->op = 1 + rnd() % 3;
			m->dst_handle = rnd() % opt.bos;
			m->dst_offset = 4 * (rnd() % (words - n + 1));
			m->size = 4 * n;
			if (m->op == DUMMY_GPU_OP_COPY) {
				m->src_handle = rnd() % opt.bos;
				m->src_offset = 4 * (rnd() % (words - n + 1));
			} else {
				m->value = rnd();
			}
			ucmds[c] = *m;
			ucmds[c].dst_handle = bos[m->dst_handle].handle;
			if (m->op == DUMMY_GPU_OP_COPY)
				ucmds[c].src_handle = bos[m->src_handle].handle;
		}
		/*
		 * Every job lists its buffers, so that its fence goes into their
		 * reservation objects. A quarter of the jobs wait for the
		 * earlier users of their buffers through those (implicit sync);
		 * the others wait explicitly for the previous job that used each
		 * buffer, through a sync_file, a binary syncobj or a timeline
		 * point.
		 */
		for (c = 0; c < (int)s.ncmds; c++) {
			add_bo_ref(&s, ucmds[c].dst_handle, 1);
			if (cmds[c].op == DUMMY_GPU_OP_COPY)
				add_bo_ref(&s, ucmds[c].src_handle, 0);
		}
		implicit = rnd() % 4 == 0;
		if (implicit) {
			s.flags |= DUMMY_GPU_SUBMIT_IMPLICIT_SYNC;
			implicit_jobs++;
		}
		for (c = 0; c < (int)s.ncmds; c++) {
			uint32_t used[2] = { cmds[c].dst_handle, cmds[c].src_handle };

			for (k = 0; k < (cmds[c].op == DUMMY_GPU_OP_COPY ? 2 : 1); k++) {
				long j = bos[used[k]].last_job;

				if (j >= 0 && !jobs[j].retired) {
					if (!implicit)
						add_job_dep(&s, in, insync, j);
					dep_bo++;
					if (jobs[j].ring == (int)s.ring)
						dep_same++;
					else
						dep_cross++;
				}
			}
		}
		/* Plus a random earlier job, on any ring. */
		if (i > oldest && (int)(rnd() % 100) < opt.dep_pct) {
			long j = oldest + rnd() % (i - oldest);

			if (!jobs[j].retired) {
				add_job_dep(&s, in, insync, j);
				if (jobs[j].ring == (int)s.ring)
					dep_same++;
				else
					dep_cross++;
			}
		}
		/* Plus, sometimes, a foreign fence that this process signals later. */
		if (tl >= 0 && (int)(rnd() % 100) < opt.sw_pct) {
			sw_fd = sw_fence(tl, ++sw_created);
			in[s.nin++] = sw_fd;
			dep_foreign++;
		}

		/* Each job's out-fence is the next point of its ring's timeline. */
		s.flags |= DUMMY_GPU_SUBMIT_OUT_SYNCOBJ;
		s.syncobj = ring_timeline[s.ring];
		s.out_point = ++ring_point[s.ring];
		jobs[i].point = s.out_point;
		jobs[i].ring = s.ring;
		jobs[i].t_submit = now_ns();
		r = submit(drm_fd, &s);
		if (r < 0)
			die("SUBMIT of job %ld failed: %s\n", i, strerror(-r));
		jobs[i].fd = r;
		if (sw_fd >= 0)
			close(sw_fd);
		for (c = 0; c < (int)s.ncmds; c++) {
			apply_cpu(bos, &cmds[c]);
			bos[cmds[c].dst_handle].last_job = i;
			if (cmds[c].op == DUMMY_GPU_OP_COPY)
				bos[cmds[c].src_handle].last_job = i;
		}
		/* Foreign fences stay unsignalled for up to 32 submissions. */
		if (i % 32 == 31)
			sw_release_all();
		if (i + 1 - oldest > opt.window) {
			long to = oldest + 64 < i + 1 ? oldest + 64 : i + 1;

			retire_range(oldest, to);
			oldest = to;
		}
	}
	retire_range(oldest, opt.jobs);
	t1 = now_ns();

	for (b = 0; b < opt.bos; b++) {
		long w;

		for (w = 0; w < words; w++)
			if (bos[b].map[w] != bos[b].shadow[w]) {
				if (mismatches < 5)
					fprintf(stderr, "BO %d word %ld: GPU %#x, CPU %#x\n", b, w,
						bos[b].map[w], bos[b].shadow[w]);
				mismatches++;
			}
		munmap(bos[b].map, opt.bo_size);
		bo_close(drm_fd, bos[b].handle);
		free(bos[b].shadow);
	}

	for (i = 0; i < opt.jobs; i++)
		lat[i] = jobs[i].latency;
	qsort(lat, opt.jobs, sizeof(*lat), cmp_u64);

	printf("\n=== dummy_gpu %s report ===\n", opt.mode);
	printf("jobs:              %ld on %d rings (%ld signalled)\n", opt.jobs, rings,
	       n_retired);
	printf("dependencies:      %ld intra-ring, %ld cross-ring, %ld foreign (sw_sync); ",
	       dep_same, dep_cross, dep_foreign);
	printf("%ld from buffer hazards\n", dep_bo);
	printf("fence kinds:       %ld sync_file, %ld binary syncobj, %ld timeline point, ",
	       dep_kind_count[DEP_SYNC_FILE], dep_kind_count[DEP_BINARY_SYNCOBJ],
	       dep_kind_count[DEP_TIMELINE_POINT]);
	printf("%ld sw_sync; %ld jobs with implicit sync (dma_resv)\n", dep_foreign,
	       implicit_jobs);
	printf("wall time:         %.3f s\n", (t1 - t0) / 1e9);
	printf("throughput:        %.0f jobs/s\n", opt.jobs / ((t1 - t0) / 1e9));
	printf("submit->signal:    p50 %.1f us, p99 %.1f us, max %.1f us\n",
	       lat[opt.jobs / 2] / 1e3, lat[opt.jobs * 99 / 100] / 1e3,
	       lat[opt.jobs - 1] / 1e3);
	printf("fence errors:      %ld\n", n_errors);
	printf("unsignalled:       %ld\n", n_stuck);
	printf("buffers verified:  %d x %ld words, %ld mismatches\n", opt.bos, words,
	       mismatches);
	printf("driver counters (%s):\n", DEBUGFS_RINGS);
	print_debugfs("  ");
	if (read_totals(&tot) && tot.submitted != tot.completed + tot.errored +
	    tot.timed_out + tot.cancelled + tot.in_flight + tot.pending) {
		printf("counters do not balance\n");
		mismatches++;
	}
	printf("result:            %s\n",
	       n_errors || n_stuck || mismatches ? "FAILED" : "VERIFIED");
	if (tl >= 0)
		close(tl);
	for (b = 0; b < rings; b++)
		syncobj_destroy(ring_timeline[b]);
	for (b = 0; b < DUMMY_GPU_MAX_IN_SYNCOBJS; b++)
		syncobj_destroy(binary_pool[b]);
	free(lat);
	free(jobs);
	free(bos);
	return n_errors || n_stuck || mismatches ? 1 : 0;
}
