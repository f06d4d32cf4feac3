// SPDX-License-Identifier: GPL-2.0
/*
 * Userspace client of the dummy GPU sample driver (samples/rust/dummy_gpu).
 *
 *   dummy_gpu_client demo [options]   random job DAG across all rings, with
 *                                     sw_sync foreign fences; verifies every
 *                                     buffer against a CPU reference; report
 *   dummy_gpu_client test [options]   bad-input and teardown cases;
 *                                     prints "N passed, M failed"
 *   dummy_gpu_client failnth          fail-nth sweeps of SUBMIT and BO_CREATE
 *   dummy_gpu_client stress [options] --jobs jobs from --procs processes:
 *                                     random DAGs, sw_sync, faults, hangs,
 *                                     random closes and process kills
 *   dummy_gpu_client fuzz [options]   --ioctls random ioctls; errno counts
 *   dummy_gpu_client unload --module NAME
 *                                     unload with live out-fences
 *
 * The reliability modes print "jq-stat: NAME VALUE" lines for dev/stress.
 *
 * Options: --jobs N, --rings N, --bos N, --bo-size BYTES, --seed N,
 * --window N (jobs in flight before the demo waits; 0: one at a time),
 * --max-busy-us N, --sw-sync-pct N, --dep-pct N, --device PATH,
 * --module NAME (test: unload that module last, with live fences),
 * --no-sw-sync, --procs N, --ioctls N, --kills N, --closes-per-1000k N.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <drm/drm.h>
#include <drm/dummy_gpu_drm.h>
#include <linux/dma-buf.h>
#include <linux/sync_file.h>

/* sw_sync's private uapi (drivers/dma-buf/sw_sync.c). */
struct sw_sync_create_fence_data {
	__u32 value;
	char name[32];
	__s32 fence;
};

#define SW_SYNC_IOC_CREATE_FENCE _IOWR('W', 0, struct sw_sync_create_fence_data)
#define SW_SYNC_IOC_INC _IOW('W', 1, __u32)

struct sw_sync_get_deadline {
	__u64 deadline_ns;
	__u32 pad;
	__s32 fence_fd;
};

#define SW_SYNC_GET_DEADLINE _IOWR('W', 2, struct sw_sync_get_deadline)
#define SW_SYNC_PATH "/sys/kernel/debug/sync/sw_sync"
#define DEBUGFS_RINGS "/sys/kernel/debug/dummy_gpu/rings"
#define DEBUGFS_SUSPEND "/sys/kernel/debug/dummy_gpu/suspend"

static struct {
	const char *mode;
	long jobs;
	int rings;
	int bos;
	long bo_size;
	unsigned int seed;
	int window;
	int max_busy_us;
	int sw_pct;
	int dep_pct;
	const char *device;
	const char *module;
	int no_sw_sync;
	int procs;
	long ioctls;
	int kills;
	long closes_per_m;
} opt = {
	.procs = 4, .ioctls = 100000, .kills = 10, .closes_per_m = 50,
	.jobs = 10000, .bos = 32, .bo_size = 4096, .seed = 1, .window = 256,
	.max_busy_us = 20, .sw_pct = 5, .dep_pct = 20,
};

static int drm_fd = -1;
static uint32_t dev_rings, dev_credits, dev_timeout_ms;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static uint64_t rnd_state;

static uint32_t rnd(void)
{
	/* xorshift64*: deterministic for a given --seed. */
	rnd_state ^= rnd_state >> 12;
	rnd_state ^= rnd_state << 25;
	rnd_state ^= rnd_state >> 27;
	return (uint32_t)((rnd_state * 2685821657736338717ull) >> 32);
}

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "dummy_gpu_client: ");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	exit(2);
}

/* ioctl that returns -errno. */
static int xioctl(int fd, unsigned long req, void *arg)
{
	int r;

	do {
		r = ioctl(fd, req, arg);
	} while (r == -1 && (errno == EINTR || errno == EAGAIN));
	return r == -1 ? -errno : r;
}

static int open_device(void)
{
	glob_t g;
	size_t i;
	int fd = -1;

	if (opt.device)
		return open(opt.device, O_RDWR | O_CLOEXEC);
	if (glob("/dev/dri/renderD*", 0, NULL, &g))
		return -1;
	for (i = 0; i < g.gl_pathc && fd < 0; i++) {
		char name[64] = "";
		struct drm_version v = { .name = name, .name_len = sizeof(name) - 1 };
		int f = open(g.gl_pathv[i], O_RDWR | O_CLOEXEC);

		if (f < 0)
			continue;
		if (!xioctl(f, DRM_IOCTL_VERSION, &v) && !strcmp(name, "dummy_gpu"))
			fd = f;
		else
			close(f);
	}
	globfree(&g);
	return fd;
}

static uint64_t get_param(int fd, uint32_t p)
{
	struct drm_dummy_gpu_get_param a = { .param = p };

	if (xioctl(fd, DRM_IOCTL_DUMMY_GPU_GET_PARAM, &a))
		die("GET_PARAM %u failed\n", p);
	return a.value;
}

static int bo_create(int fd, uint64_t size, uint32_t *handle)
{
	struct drm_dummy_gpu_bo_create a = { .size = size };
	int r = xioctl(fd, DRM_IOCTL_DUMMY_GPU_BO_CREATE, &a);

	*handle = a.handle;
	return r;
}

static uint32_t *bo_map(int fd, uint32_t handle, size_t size)
{
	struct drm_dummy_gpu_bo_mmap_offset a = { .handle = handle };
	void *p;

	if (xioctl(fd, DRM_IOCTL_DUMMY_GPU_BO_MMAP_OFFSET, &a))
		die("BO_MMAP_OFFSET failed\n");
	p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, a.offset);
	if (p == MAP_FAILED)
		die("mmap: %s\n", strerror(errno));
	return p;
}

static void bo_close(int fd, uint32_t handle)
{
	struct drm_gem_close c = { .handle = handle };

	xioctl(fd, DRM_IOCTL_GEM_CLOSE, &c);
}

struct submit {
	uint32_t ring, credits, flags, syncobj, busy_us;
	struct drm_dummy_gpu_cmd *cmds;
	uint32_t ncmds;
	int32_t *in;
	uint32_t nin;
	struct drm_dummy_gpu_syncobj_point *insync;
	uint32_t ninsync;
	struct drm_dummy_gpu_bo_ref *bos;
	uint32_t nbos;
	uint64_t out_point;
};

/* Returns the out-fence fd, or -errno. */
static int submit(int fd, const struct submit *s)
{
	struct drm_dummy_gpu_submit a = {
		.ring = s->ring, .credits = s->credits ? s->credits : 1,
		.cmds = (uintptr_t)s->cmds, .cmd_count = s->ncmds,
		.in_fences = (uintptr_t)s->in, .in_fence_count = s->nin,
		.flags = s->flags, .out_syncobj = s->syncobj, .busy_us = s->busy_us,
		.out_fence = -1,
		.in_syncobjs = (uintptr_t)s->insync, .in_syncobj_count = s->ninsync,
		.bos = (uintptr_t)s->bos, .bo_count = s->nbos, .out_point = s->out_point,
	};
	int r = xioctl(fd, DRM_IOCTL_DUMMY_GPU_SUBMIT, &a);

	return r ? r : a.out_fence;
}

/* Fence status (1 signalled, 0 active, <0 error) and signal timestamp. */
static int fence_info(int fd, uint64_t *ts, char *driver, char *timeline)
{
	struct sync_fence_info fi;
	struct sync_file_info info;

	memset(&fi, 0, sizeof(fi));
	memset(&info, 0, sizeof(info));
	info.num_fences = 1;
	info.sync_fence_info = (uintptr_t)&fi;
	if (ioctl(fd, SYNC_IOC_FILE_INFO, &info))
		return -1000 - errno;
	if (ts)
		*ts = fi.timestamp_ns;
	if (driver)
		snprintf(driver, 32, "%s", fi.driver_name);
	if (timeline)
		snprintf(timeline, 32, "%s", fi.obj_name);
	return fi.status;
}

/* Waits for fd with poll(); returns 1 when readable, 0 on timeout. */
static int wait_fence(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r;

	do {
		r = poll(&p, 1, timeout_ms);
	} while (r < 0 && errno == EINTR);
	return r == 1 && (p.revents & POLLIN);
}

static int sw_timeline(void)
{
	return open(SW_SYNC_PATH, O_RDWR | O_CLOEXEC);
}

static int sw_fence(int tl, uint32_t value)
{
	struct sw_sync_create_fence_data d = { .value = value };

	snprintf(d.name, sizeof(d.name), "pt%u", value);
	if (ioctl(tl, SW_SYNC_IOC_CREATE_FENCE, &d))
		die("sw_sync create fence: %s\n", strerror(errno));
	return d.fence;
}

static void sw_inc(int tl, uint32_t by)
{
	if (by && ioctl(tl, SW_SYNC_IOC_INC, &by))
		die("sw_sync inc: %s\n", strerror(errno));
}

static void print_debugfs(const char *prefix)
{
	char line[512];
	FILE *f = fopen(DEBUGFS_RINGS, "r");

	if (!f) {
		printf("%s(debugfs %s unavailable)\n", prefix, DEBUGFS_RINGS);
		return;
	}
	while (fgets(line, sizeof(line), f))
		printf("%s%s", prefix, line);
	fclose(f);
}

/* The "all" row of the debugfs counters. */
struct totals {
	uint64_t submitted, completed, errored, timed_out, cancelled, in_flight, pending,
		credits;
};

static int read_totals(struct totals *t)
{
	char line[512];
	int ok = 0;
	FILE *f = fopen(DEBUGFS_RINGS, "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "all %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
			   " %" SCNu64 " %" SCNu64 " %" SCNu64, &t->submitted, &t->completed,
			   &t->errored, &t->timed_out, &t->cancelled, &t->in_flight, &t->pending,
			   &t->credits) == 8)
			ok = 1;
	fclose(f);
	return ok;
}

/* ------------------------------------------------------------------ demo */

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

static uint32_t syncobj_create(void);
static void syncobj_destroy(uint32_t h);

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

static int demo(void)
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

/* ------------------------------------------------------------------ test */

static int t_pass, t_fail, t_num;
static long faults_injected, faults_absorbed;

static void check(int ok, const char *name, const char *fmt, ...)
{
	va_list ap;

	t_num++;
	if (ok) {
		t_pass++;
		printf("ok %d - %s\n", t_num, name);
		return;
	}
	t_fail++;
	printf("not ok %d - %s: ", t_num, name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

/* A case that cannot run here: printed as skipped, counted neither way. */
static void skip(const char *name, const char *why)
{
	printf("ok %d - %s # SKIP %s\n", ++t_num, name, why);
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

static struct drm_dummy_gpu_cmd fill(uint32_t h, uint64_t off, uint64_t size, uint32_t v)
{
	struct drm_dummy_gpu_cmd c = {
		.op = DUMMY_GPU_OP_FILL, .dst_handle = h, .dst_offset = off, .size = size,
		.value = v,
	};
	return c;
}

static int status_of(int fd, int wait_ms)
{
	wait_fence(fd, wait_ms);
	return fence_info(fd, NULL, NULL, NULL);
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

static void write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd >= 0) {
		if (write(fd, val, strlen(val)) < 0)
			fprintf(stderr, "%s: %s\n", path, strerror(errno));
		close(fd);
	}
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
	printf("# scale: %d files x %u rings in %" PRIu64 " ms, %d kernel threads\n", opened,
	       dev_rings, (now_ns() - t0) / 1000000, k0);
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
	printf("# %s: %d faults injected (%d absorbed by a retry)\n", name, injected, absorbed);
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

/* ------------------------------------------- syncobjs, implicit sync, tracing */

static uint32_t syncobj_create(void)
{
	struct drm_syncobj_create c = { 0 };

	if (xioctl(drm_fd, DRM_IOCTL_SYNCOBJ_CREATE, &c))
		die("SYNCOBJ_CREATE: %s\n", strerror(errno));
	return c.handle;
}

static void syncobj_destroy(uint32_t h)
{
	struct drm_syncobj_destroy d = { .handle = h };

	xioctl(drm_fd, DRM_IOCTL_SYNCOBJ_DESTROY, &d);
}

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
static void test_syncobj_timeline(uint32_t bo, uint32_t *map)
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
static void test_implicit_sync(void)
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
static void test_fence_graph(void)
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
static void test_trace(uint32_t bo)
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
		printf("# after unload, fence %d: status %d, driver '%s', timeline '%s'\n", i,
		       st[i], drv[i], tln[i]);
	}
	check(ok, "unload: out-fences stay readable after the module is gone, names detached",
	      "delete_module %d (%s), status %d/%d/%d, names '%s'/'%s', close took %ld ms", rc,
	      rc ? strerror(errno) : "ok", st[0], st[1], st[2], drv[0], tln[0], close_ms);
	for (i = 0; i < 3; i++)
		if (out[i] >= 0)
			close(out[i]);
	close(tl2);
}

static int test(void)
{
	struct totals before, after;
	uint32_t bo, *map;
	int fd_probe, fd_probe2, have;

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
	printf("%d passed, %d failed\n", t_pass, t_fail);
	return t_fail ? 1 : 0;
}

/* ------------------------------------------------------- reliability modes */

static void stat_line(const char *name, long v)
{
	printf("jq-stat: %s %ld\n", name, v);
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
	printf("# fail-nth: BO_CREATE: %d faults injected\n", injected);
	faults_injected += injected;
	close(nth);
}

static int failnth_mode(void)
{
	struct totals t;
	uint32_t bo;

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
	stat_line("failnth.failed_checks", t_fail);
	printf("%d passed, %d failed\n", t_pass, t_fail);
	return t_fail ? 1 : 0;
}

static int unload_mode(void)
{
	if (!opt.module)
		die("unload needs --module NAME\n");
	close(drm_fd);
	drm_fd = -1;
	test_unload();
	stat_line("unload.failed_checks", t_fail);
	printf("%d passed, %d failed\n", t_pass, t_fail);
	return t_fail ? 1 : 0;
}

/* Counters shared by the stress workers (an anonymous shared mapping). */
struct stress_shared {
	long submitted, ok, eio, etimedout, ecanceled, other, unsignalled, bad_status,
		submit_errors, closes, kills, faults, hangs, sw_fences, deps, worker_failures;
};

static struct stress_shared *sh;

static void sh_add(long *counter, long n)
{
	__atomic_add_fetch(counter, n, __ATOMIC_RELAXED);
}

static long sh_get(long *counter)
{
	return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

struct sjob {
	int fd;
	uint32_t flags;
	uint32_t sw_need;
};

#define STRESS_WINDOW 128
#define STRESS_BOS 8

/* Waits for one of the worker's out-fences and classifies its status. */
static void stress_retire(struct sjob *j, int tl, uint32_t *sw_done)
{
	int st;

	/* Its sw_sync dependencies (direct or through older jobs) must be signalled. */
	if (j->sw_need > *sw_done) {
		sw_inc(tl, j->sw_need - *sw_done);
		*sw_done = j->sw_need;
	}
	st = fence_info(j->fd, NULL, NULL, NULL);
	if (st == 0 && !wait_fence(j->fd, 4 * dev_timeout_ms + 20000)) {
		sh_add(&sh->unsignalled, 1);
		fprintf(stderr, "stress: out-fence did not signal (flags %#x)\n", j->flags);
		close(j->fd);
		return;
	}
	if (st == 0)
		st = fence_info(j->fd, NULL, NULL, NULL);
	switch (st) {
	case 1:
		sh_add(&sh->ok, 1);
		if (j->flags & (DUMMY_GPU_SUBMIT_HANG | DUMMY_GPU_SUBMIT_FAULT))
			sh_add(&sh->bad_status, 1);
		break;
	case -EIO:
		sh_add(&sh->eio, 1);
		break;
	case -ETIMEDOUT:
		sh_add(&sh->etimedout, 1);
		break;
	case -ECANCELED:
		sh_add(&sh->ecanceled, 1);
		break;
	default:
		sh_add(&sh->other, 1);
		sh_add(&sh->bad_status, 1);
		fprintf(stderr, "stress: unexpected fence status %d\n", st);
	}
	close(j->fd);
}

static int stress_open(uint32_t *bos)
{
	int fd = open_device(), i;

	if (fd < 0)
		die("stress: cannot open the device\n");
	for (i = 0; i < STRESS_BOS; i++)
		if (bo_create(fd, 4096, &bos[i]))
			die("stress: BO_CREATE failed\n");
	return fd;
}

static struct drm_dummy_gpu_cmd stress_cmd(const uint32_t *bos)
{
	struct drm_dummy_gpu_cmd c = { 0 };
	uint64_t size = 4 * (1 + rnd() % 64);

	c.op = 1 + rnd() % 3;
	c.dst_handle = bos[rnd() % STRESS_BOS];
	c.size = size;
	c.dst_offset = 4 * (rnd() % ((4096 - size) / 4 + 1));
	if (c.op == DUMMY_GPU_OP_COPY) {
		c.src_handle = bos[rnd() % STRESS_BOS];
		c.src_offset = 4 * (rnd() % ((4096 - size) / 4 + 1));
	} else {
		c.value = rnd();
	}
	return c;
}

static int stress_worker(int id, long target)
{
	uint64_t close_every = opt.closes_per_m ? 1000000 / opt.closes_per_m : 0;
	struct drm_dummy_gpu_cmd cmds[3];
	struct sjob win[STRESS_WINDOW];
	uint32_t bos[STRESS_BOS], sw_next = 0, sw_done = 0;
	int32_t in[8];
	int head = 0, n = 0, fd, tl, i;

	rnd_state = 0x9e3779b97f4a7c15ull ^ opt.seed ^ ((uint64_t)id << 32) ^ getpid();
	fd = stress_open(bos);
	tl = sw_timeline();
	if (tl < 0)
		die("stress: no sw_sync\n");
	while (sh_get(&sh->submitted) < target) {
		struct submit s = { .cmds = cmds, .in = in };
		uint32_t r = rnd() % 10000, sw_need = 0, sw_fd = -1;
		int nd, out;

		s.ncmds = 1 + rnd() % 3;
		for (i = 0; i < (int)s.ncmds; i++)
			cmds[i] = stress_cmd(bos);
		nd = n && rnd() % 100 < 70 ? rnd() % 5 : 0;
		for (i = 0; i < nd; i++) {
			struct sjob *d = &win[(head + rnd() % n) % STRESS_WINDOW];

			in[i] = d->fd;
			if (d->sw_need > sw_need)
				sw_need = d->sw_need;
		}
		if (rnd() % 100 < 3) {
			sw_fd = sw_fence(tl, ++sw_next);
			in[nd++] = sw_fd;
			sw_need = sw_next;
			sh_add(&sh->sw_fences, 1);
		}
		s.nin = nd;
		s.flags = r < 5 ? DUMMY_GPU_SUBMIT_HANG : r < 105 ? DUMMY_GPU_SUBMIT_FAULT : 0;
		s.busy_us = rnd() % 20;
		s.ring = rnd() % dev_rings;
		s.credits = 1 + rnd() % 4;
		out = submit(fd, &s);
		if (sw_fd >= 0)
			close(sw_fd);
		if (out < 0) {
			sh_add(&sh->submit_errors, 1);
			fprintf(stderr, "stress: SUBMIT failed: %s\n", strerror(-out));
			continue;
		}
		sh_add(&sh->submitted, 1);
		sh_add(&sh->deps, nd);
		if (s.flags & DUMMY_GPU_SUBMIT_HANG)
			sh_add(&sh->hangs, 1);
		if (s.flags & DUMMY_GPU_SUBMIT_FAULT)
			sh_add(&sh->faults, 1);
		if (n == STRESS_WINDOW) {
			stress_retire(&win[head], tl, &sw_done);
			head = (head + 1) % STRESS_WINDOW;
			n--;
		}
		win[(head + n) % STRESS_WINDOW] = (struct sjob){ out, s.flags, sw_need };
		n++;
		if (close_every && rnd() % close_every == 0) {
			/* Close the file with jobs in flight: they are cancelled. */
			close(fd);
			sh_add(&sh->closes, 1);
			for (; n; n--, head = (head + 1) % STRESS_WINDOW)
				stress_retire(&win[head], tl, &sw_done);
			fd = stress_open(bos);
		}
	}
	for (; n; n--, head = (head + 1) % STRESS_WINDOW)
		stress_retire(&win[head], tl, &sw_done);
	close(fd);
	close(tl);
	return 0;
}

static pid_t stress_spawn(int id, long target)
{
	pid_t pid = fork();

	if (pid == 0) {
		close(drm_fd);
		_exit(stress_worker(id, target));
	}
	if (pid < 0)
		die("fork: %s\n", strerror(errno));
	return pid;
}

static int stress_mode(void)
{
	long target = opt.jobs, kill_every = opt.kills ? opt.jobs / (opt.kills + 1) : 0;
	long next_kill = kill_every ? kill_every : -1, last = 0;
	uint64_t t0 = now_ns(), tlast = t0;
	int live, i, next_id = 0, failures = 0;
	pid_t *pids = calloc(opt.procs, sizeof(*pids));
	struct totals t = { 0 };
	int have, balance;

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED || !pids)
		die("stress: no memory\n");
	memset(sh, 0, sizeof(*sh));
	printf("stress: %ld jobs, %d processes x %u rings, %d kills, %ld closes per 1M jobs\n",
	       target, opt.procs, dev_rings, opt.kills, opt.closes_per_m);
	for (i = 0; i < opt.procs; i++)
		pids[i] = stress_spawn(next_id++, target);
	live = opt.procs;
	while (live) {
		long done = sh_get(&sh->submitted);
		int status;
		pid_t p;

		usleep(50000);
		while ((p = waitpid(-1, &status, WNOHANG)) > 0) {
			for (i = 0; i < opt.procs; i++)
				if (pids[i] == p)
					pids[i] = 0, live--;
			if (!WIFEXITED(status) || WEXITSTATUS(status)) {
				fprintf(stderr, "stress: worker %d failed (status %#x)\n", p,
					status);
				failures++;
			}
		}
		if (next_kill > 0 && done >= next_kill && done < target && live) {
			/* SIGKILL a random worker mid-flight and start a new one. */
			int victim = rnd() % opt.procs;

			while (!pids[victim])
				victim = (victim + 1) % opt.procs;
			kill(pids[victim], SIGKILL);
			waitpid(pids[victim], &status, 0);
			sh_add(&sh->kills, 1);
			pids[victim] = stress_spawn(next_id++, target);
			next_kill += kill_every;
		}
		if (now_ns() - tlast > 10000000000ull) {
			printf("stress: %ld jobs, %.0f jobs/s\n", done,
			       (done - last) / ((now_ns() - tlast) / 1e9));
			last = done;
			tlast = now_ns();
		}
	}
	sh_add(&sh->worker_failures, failures);
	have = read_totals(&t);
	balance = have && t.submitted == t.completed + t.errored + t.timed_out + t.cancelled &&
		  t.pending == 0 && t.in_flight == 0 && t.credits == 0;
	printf("stress: %ld jobs in %.1f s (%.0f jobs/s)\n", sh_get(&sh->submitted),
	       (now_ns() - t0) / 1e9, sh_get(&sh->submitted) / ((now_ns() - t0) / 1e9));
	printf("stress: client saw ok %ld, -EIO %ld, -ETIMEDOUT %ld, -ECANCELED %ld, other %ld\n",
	       sh->ok, sh->eio, sh->etimedout, sh->ecanceled, sh->other);
	print_debugfs("stress: ");
	stat_line("stress.jobs", sh->submitted);
	stat_line("stress.kernel_submitted", t.submitted);
	stat_line("stress.deps", sh->deps);
	stat_line("stress.sw_fences", sh->sw_fences);
	stat_line("stress.faults", sh->faults);
	stat_line("stress.hangs", sh->hangs);
	stat_line("stress.closes", sh->closes);
	stat_line("stress.kills", sh->kills);
	stat_line("stress.status_ok", sh->ok);
	stat_line("stress.status_eio", sh->eio);
	stat_line("stress.status_etimedout", sh->etimedout);
	stat_line("stress.status_ecanceled", sh->ecanceled);
	stat_line("stress.unsignalled", sh->unsignalled);
	stat_line("stress.bad_status", sh->bad_status);
	stat_line("stress.submit_errors", sh->submit_errors);
	stat_line("stress.worker_failures", sh->worker_failures);
	stat_line("stress.counter_imbalance", !balance);
	return sh->unsignalled || sh->bad_status || sh->submit_errors || failures || !balance ||
	       sh->submitted < target;
}

/* -------------------------------------------------------------------- fuzz */

enum {
	F_GET_PARAM, F_BO_CREATE, F_BO_MMAP, F_SUBMIT, F_RAW, F_GEM_CLOSE, F_SYNCOBJ, F_PRIME, F_N
};

static const char *const fuzz_names[F_N] = {
	"GET_PARAM", "BO_CREATE", "BO_MMAP_OFFSET", "SUBMIT", "random-nr", "GEM_CLOSE",
	"SYNCOBJ_*", "PRIME_*",
};

#define FUZZ_ERRNOS 160
static long fuzz_count[F_N][FUZZ_ERRNOS + 1]; /* [0] = success */
static uint64_t fuzz_ns[F_N];

static uint8_t *arena;		/* two RW pages, then a PROT_NONE page */
#define ARENA_RW (2 * 4096)

static uint64_t fuzz_ptr(void)
{
	switch (rnd() % 10) {
	case 0:
		return 0;
	case 1:
		return 8;
	case 2:
		/* Runs into the PROT_NONE page. */
		return (uintptr_t)arena + ARENA_RW - 4 * (1 + rnd() % 16);
	case 3:
		return (uintptr_t)arena + ARENA_RW;
	case 4:
		/* A kernel address. */
		return 0xffff888000000000ull + rnd();
	case 5:
		return ((uint64_t)rnd() << 32) | rnd();
	case 6:
		return ~0ull - rnd() % 64;
	default:
		return (uintptr_t)arena + 4 * (rnd() % 512);
	}
}

static uint64_t fuzz_u64(const uint64_t *interesting, int n)
{
	switch (rnd() % 4) {
	case 0:
		return ((uint64_t)rnd() << 32) | rnd();
	case 1:
		return rnd() % 256;
	default:
		return interesting[rnd() % n];
	}
}

static void fuzz_fill_random(void *p, size_t len)
{
	uint8_t *b = p;
	size_t i;

	for (i = 0; i < len; i++)
		b[i] = rnd();
}

struct fuzz_pool {
	int fds[48];
	int nfds;
	uint32_t handles[16];
	int nhandles;
	uint32_t syncobjs[8];
	int nsyncobjs;
	int keep[256];		/* out-fences to close later */
	int nkeep;
	uint32_t sw_next, sw_signalled;
};

static int fuzz_fd(struct fuzz_pool *p)
{
	switch (rnd() % 6) {
	case 0:
		return -1;
	case 1:
		return rnd() % 1024;
	default:
		return p->fds[rnd() % p->nfds];
	}
}

static void fuzz_keep(struct fuzz_pool *p, int fd)
{
	if (fd < 0 || fd < 3)
		return;
	if (p->nkeep == 256) {
		/* Keep fds bounded: the oldest out-fence goes. */
		close(p->keep[0]);
		memmove(p->keep, p->keep + 1, 255 * sizeof(int));
		p->nkeep--;
	}
	p->keep[p->nkeep++] = fd;
}

static void fuzz_reopen(struct fuzz_pool *p, int tl)
{
	struct drm_syncobj_create sc = { 0 };
	int i;

	if (drm_fd >= 0)
		close(drm_fd);
	for (i = 2; i < p->nfds; i++)
		close(p->fds[i]);
	drm_fd = open_device();
	if (drm_fd < 0)
		die("fuzz: cannot reopen the device\n");
	p->nhandles = 0;
	for (i = 0; i < 4; i++)
		if (!bo_create(drm_fd, 4096 << i, &p->handles[p->nhandles]))
			p->nhandles++;
	p->nsyncobjs = 0;
	for (i = 0; i < 2; i++)
		if (!xioctl(drm_fd, DRM_IOCTL_SYNCOBJ_CREATE, &sc))
			p->syncobjs[p->nsyncobjs++] = sc.handle;
	/* fd pool: the device, sw_sync fences, a timeline, /dev/null, out-fences. */
	p->nfds = 0;
	p->fds[p->nfds++] = drm_fd;
	p->fds[p->nfds++] = tl;
	/* sw_sync fences, signalled at the next reopen (or the end). */
	sw_inc(tl, p->sw_next - p->sw_signalled);
	p->sw_signalled = p->sw_next;
	for (i = 0; i < 4; i++)
		p->fds[p->nfds++] = sw_fence(tl, ++p->sw_next);
	p->fds[p->nfds++] = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static uint32_t fuzz_handle(struct fuzz_pool *p)
{
	static const uint64_t h[] = { 0, 1, 2, 3, 0xffffffff, 0x80000000 };

	if (p->nhandles && rnd() % 3)
		return p->handles[rnd() % p->nhandles];
	return fuzz_u64(h, 6);
}

static void fuzz_cmds(struct fuzz_pool *p, struct drm_dummy_gpu_cmd *c, int n)
{
	static const uint64_t off[] = { 0, 4, 2, 4092, 4096, 8192, 65532, ~0ull - 3, 1ull << 63 };
	static const uint64_t sz[] = { 0, 4, 64, 4096, 4097, 8192, 1 << 20, ~0ull, 3 };
	int i;

	for (i = 0; i < n; i++) {
		c[i].op = rnd() % 8 ? 1 + rnd() % 3 : rnd();
		c[i].dst_handle = fuzz_handle(p);
		c[i].dst_offset = fuzz_u64(off, 9);
		c[i].size = fuzz_u64(sz, 9);
		c[i].src_handle = rnd() % 2 ? fuzz_handle(p) : 0;
		c[i].value = rnd();
		c[i].src_offset = rnd() % 2 ? fuzz_u64(off, 9) : 0;
	}
}

static uint32_t fuzz_syncobj(struct fuzz_pool *p)
{
	return p->nsyncobjs && rnd() % 2 ? p->syncobjs[rnd() % p->nsyncobjs] : rnd();
}

static int fuzz_one(struct fuzz_pool *p, int *kind)
{
	static const uint64_t rings[] = { 0, 1, 2, 3, 4, 7, 8, 64, 0xffffffff };
	static const uint64_t credits[] = { 0, 1, 2, 64, 65, 0xffffffff };
	static const uint64_t counts[] = { 0, 1, 2, 3, 32, 33, 64, 65, 0xffffffff };
	static const uint64_t busy[] = { 0, 1, 10, 1000, 1000000, 1000001, 0xffffffff };
	static const uint64_t sizes[] = { 0, 1, 4095, 4096, 4097, 65536, 0x1000000,
					  0x1000001, ~0ull, 1ull << 40 };
	union {
		struct drm_dummy_gpu_submit sub;
		struct drm_dummy_gpu_bo_create bc;
		struct drm_dummy_gpu_bo_mmap_offset mo;
		struct drm_dummy_gpu_get_param gp;
		struct drm_gem_close gc;
		struct drm_syncobj_handle sh;
		struct drm_syncobj_create scr;
		struct drm_syncobj_destroy sd;
		struct drm_prime_handle ph;
		uint8_t raw[256];
	} a;
	unsigned long req;
	void *arg = &a;
	int r, i, bad_arg = rnd() % 20 == 0;
	uint32_t op = rnd() % 100;

	memset(&a, 0, sizeof(a));
	if (op < 40) {
		*kind = F_SUBMIT;
		req = DRM_IOCTL_DUMMY_GPU_SUBMIT;
		if (rnd() % 10 == 0) {
			fuzz_fill_random(&a.sub, sizeof(a.sub));
		} else {
			int ncmd = rnd() % 4 ? rnd() % 4 : fuzz_u64(counts, 9);
			int nin = rnd() % 3 ? rnd() % 3 : fuzz_u64(counts, 9);
			struct drm_dummy_gpu_cmd *cmds = (void *)arena;
			int32_t *fds = (int32_t *)(arena + 4096);

			a.sub.ring = rnd() % 4 ? rnd() % dev_rings : fuzz_u64(rings, 9);
			a.sub.credits = rnd() % 4 ? 1 + rnd() % 4 : fuzz_u64(credits, 6);
			a.sub.cmd_count = ncmd;
			a.sub.in_fence_count = nin;
			fuzz_cmds(p, cmds, ncmd < 64 ? ncmd : 64);
			for (i = 0; i < (nin < 64 ? nin : 64); i++)
				fds[i] = fuzz_fd(p);
			a.sub.cmds = rnd() % 8 ? (uintptr_t)cmds : fuzz_ptr();
			a.sub.in_fences = rnd() % 8 ? (uintptr_t)fds : fuzz_ptr();
			switch (rnd() % 8) {
			case 0:
				a.sub.flags = rnd();
				break;
			case 1:
				a.sub.flags = 1u << (rnd() % 4);
				break;
			case 2:
				a.sub.flags = DUMMY_GPU_SUBMIT_FAULT;
				break;
			case 3:
				a.sub.flags = rnd() % 16 ? 0 : DUMMY_GPU_SUBMIT_HANG;
				break;
			default:
				a.sub.flags = 0;
			}
			if (a.sub.flags & DUMMY_GPU_SUBMIT_OUT_SYNCOBJ || rnd() % 16 == 0)
				a.sub.out_syncobj = p->nsyncobjs && rnd() % 4 ?
					p->syncobjs[rnd() % p->nsyncobjs] : rnd();
			a.sub.busy_us = rnd() % 4 ? rnd() % 100 : fuzz_u64(busy, 7);
			a.sub.out_fence = rnd();
		}
	} else if (op < 50) {
		*kind = F_BO_CREATE;
		req = DRM_IOCTL_DUMMY_GPU_BO_CREATE;
		a.bc.size = rnd() % 4 ? 4096 * (1 + rnd() % 4) : fuzz_u64(sizes, 10);
		a.bc.flags = rnd() % 8 ? 0 : rnd();
		a.bc.handle = rnd();
	} else if (op < 58) {
		*kind = F_BO_MMAP;
		req = DRM_IOCTL_DUMMY_GPU_BO_MMAP_OFFSET;
		a.mo.handle = fuzz_handle(p);
		a.mo.pad = rnd() % 8 ? 0 : rnd();
	} else if (op < 64) {
		*kind = F_GET_PARAM;
		req = DRM_IOCTL_DUMMY_GPU_GET_PARAM;
		a.gp.param = rnd() % 4 ? rnd() % 5 : rnd();
		a.gp.pad = rnd() % 8 ? 0 : rnd();
	} else if (op < 80) {
		/* Any driver ioctl number, direction and size, random contents. */
		*kind = F_RAW;
		req = _IOC(rnd() % 4, DRM_IOCTL_BASE, DRM_COMMAND_BASE + rnd() % 16,
			   rnd() % 4 ? rnd() % 64 : rnd() % 256);
		fuzz_fill_random(&a, sizeof(a));
	} else if (op < 86) {
		*kind = F_GEM_CLOSE;
		req = DRM_IOCTL_GEM_CLOSE;
		a.gc.handle = fuzz_handle(p);
		a.gc.pad = rnd() % 8 ? 0 : rnd();
		if (a.gc.handle && rnd() % 4 == 0) {
			/* Closing one of ours: forget it (after the ioctl). */
			for (i = 0; i < p->nhandles; i++)
				if (p->handles[i] == a.gc.handle)
					p->handles[i] = p->handles[--p->nhandles];
		} else if (p->nhandles && a.gc.handle == p->handles[0]) {
			a.gc.handle = 0x7fffffff;
		}
	} else if (op < 94) {
		*kind = F_SYNCOBJ;
		switch (rnd() % 3) {
		case 0:
			req = DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD;
			a.sh.handle = fuzz_syncobj(p);
			a.sh.flags = rnd() % 2 ? DRM_SYNCOBJ_HANDLE_TO_FD_FLAGS_EXPORT_SYNC_FILE :
						 rnd();
			break;
		case 1:
			req = DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE;
			a.sh.fd = fuzz_fd(p);
			a.sh.handle = fuzz_syncobj(p);
			a.sh.flags = rnd() % 2 ? DRM_SYNCOBJ_FD_TO_HANDLE_FLAGS_IMPORT_SYNC_FILE :
						 rnd();
			break;
		default:
			req = DRM_IOCTL_SYNCOBJ_CREATE;
			a.scr.flags = rnd() % 2 ? DRM_SYNCOBJ_CREATE_SIGNALED : rnd();
		}
	} else {
		*kind = F_PRIME;
		if (rnd() % 2) {
			req = DRM_IOCTL_PRIME_HANDLE_TO_FD;
			a.ph.handle = fuzz_handle(p);
			a.ph.flags = rnd() % 2 ? DRM_CLOEXEC | DRM_RDWR : rnd();
		} else {
			req = DRM_IOCTL_PRIME_FD_TO_HANDLE;
			a.ph.fd = fuzz_fd(p);
		}
	}
	if (bad_arg)
		arg = (void *)(uintptr_t)fuzz_ptr();
	r = ioctl(drm_fd, req, arg);
	r = r < 0 ? -errno : r;
	if (r >= 0 && arg == &a) {
		/* Whatever fds and handles it made: keep fds bounded, adopt handles. */
		if (req == DRM_IOCTL_DUMMY_GPU_SUBMIT)
			fuzz_keep(p, a.sub.out_fence);
		else if (req == DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD)
			fuzz_keep(p, a.sh.fd);
		else if (req == DRM_IOCTL_PRIME_HANDLE_TO_FD)
			fuzz_keep(p, a.ph.fd);
		else if (req == DRM_IOCTL_DUMMY_GPU_BO_CREATE && p->nhandles < 16)
			p->handles[p->nhandles++] = a.bc.handle;
		else if (req == DRM_IOCTL_DUMMY_GPU_BO_CREATE)
			bo_close(drm_fd, a.bc.handle);
		else if (req == DRM_IOCTL_SYNCOBJ_CREATE && p->nsyncobjs < 8)
			p->syncobjs[p->nsyncobjs++] = a.scr.handle;
	}
	return r;
}

static int fuzz_mode(void)
{
	struct fuzz_pool p = { 0 };
	long i, per_errno[FUZZ_ERRNOS + 1] = { 0 }, unsignalled = 0, ok_submits = 0;
	int tl = sw_timeline(), k, e;
	struct totals t = { 0 };
	int balance;
	uint64_t t0 = now_ns();

	arena = mmap(NULL, ARENA_RW + 4096, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (arena == MAP_FAILED || tl < 0 || mprotect(arena + ARENA_RW, 4096, PROT_NONE))
		die("fuzz: setup failed\n");
	fuzz_reopen(&p, tl);
	for (i = 0; i < opt.ioctls; i++) {
		uint64_t t1 = now_ns();
		int kind = F_RAW, r = fuzz_one(&p, &kind);

		fuzz_ns[kind] += now_ns() - t1;

		e = r >= 0 ? 0 : -r > FUZZ_ERRNOS ? FUZZ_ERRNOS : -r;
		fuzz_count[kind][e]++;
		per_errno[e]++;
		if (kind == F_SUBMIT && r >= 0)
			ok_submits++;
		if (i % 10000 == 9999) {
			/* Tear the file down with whatever is in flight. */
			fuzz_reopen(&p, tl);
		}
	}
	/* Everything that went through must signal (files closed: cancelled). */
	close(drm_fd);
	drm_fd = -1;
	sw_inc(tl, p.sw_next - p.sw_signalled);
	for (k = 0; k < p.nkeep; k++) {
		if (!wait_fence(p.keep[k], 4 * dev_timeout_ms + 10000)) {
			char link[64], target[128] = "";

			snprintf(link, sizeof(link), "/proc/self/fd/%d", p.keep[k]);
			if (readlink(link, target, sizeof(target) - 1) < 0)
				strcpy(target, "?");
			fprintf(stderr, "fuzz: fd %d (%s) not signalled, status %d\n", p.keep[k],
				target, fence_info(p.keep[k], NULL, NULL, NULL));
			unsignalled++;
		}
		close(p.keep[k]);
	}
	print_debugfs("fuzz: ");
	balance = read_totals(&t) && t.pending == 0 && t.in_flight == 0 &&
		  t.submitted == t.completed + t.errored + t.timed_out + t.cancelled;
	printf("fuzz: %ld ioctls in %.1f s, %ld SUBMITs went through\n", opt.ioctls,
	       (now_ns() - t0) / 1e9, ok_submits);
	printf("fuzz: %-16s %8s %8s", "ioctl", "ms", "ok");
	for (e = 1; e <= FUZZ_ERRNOS; e++)
		if (per_errno[e])
			printf(" %9s", e == FUZZ_ERRNOS ? "other" : strerrorname_np(e));
	printf("\n");
	for (k = 0; k < F_N; k++) {
		printf("fuzz: %-16s %8.0f %8ld", fuzz_names[k], fuzz_ns[k] / 1e6, fuzz_count[k][0]);
		for (e = 1; e <= FUZZ_ERRNOS; e++)
			if (per_errno[e])
				printf(" %9ld", fuzz_count[k][e]);
		printf("\n");
	}
	for (e = 0; e <= FUZZ_ERRNOS; e++)
		if (per_errno[e])
			printf("jq-errno: %s %ld\n", e == 0 ? "ok" : e == FUZZ_ERRNOS ? "other" :
			       strerrorname_np(e), per_errno[e]);
	stat_line("fuzz.ioctls", opt.ioctls);
	stat_line("fuzz.submits_ok", ok_submits);
	stat_line("fuzz.unsignalled", unsignalled);
	stat_line("fuzz.counter_imbalance", !balance);
	return unsignalled || !balance;
}

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
