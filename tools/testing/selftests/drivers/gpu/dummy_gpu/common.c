// SPDX-License-Identifier: GPL-2.0
/*
 * dummy_gpu_client: the options, the device, and the ioctl, sw_sync and
 * debugfs helpers that every mode uses.
 */
#include "dummy_gpu_client.h"

struct options opt = {
	.procs = 4, .ioctls = 100000, .kills = 10, .closes_per_m = 50,
	.jobs = 10000, .bos = 32, .bo_size = 4096, .seed = 1, .window = 256,
	.max_busy_us = 20, .sw_pct = 5, .dep_pct = 20,
};

int drm_fd = -1;
uint32_t dev_rings, dev_credits, dev_timeout_ms;
uint64_t rnd_state;

void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "dummy_gpu_client: ");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	exit(2);
}

/* ioctl that returns -errno. */
int xioctl(int fd, unsigned long req, void *arg)
{
	int r;

	do {
		r = ioctl(fd, req, arg);
	} while (r == -1 && (errno == EINTR || errno == EAGAIN));
	return r == -1 ? -errno : r;
}

int open_device(void)
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

uint64_t get_param(int fd, uint32_t p)
{
	struct drm_dummy_gpu_get_param a = { .param = p };

	if (xioctl(fd, DRM_IOCTL_DUMMY_GPU_GET_PARAM, &a))
		die("GET_PARAM %u failed\n", p);
	return a.value;
}

int bo_create(int fd, uint64_t size, uint32_t *handle)
{
	struct drm_dummy_gpu_bo_create a = { .size = size };
	int r = xioctl(fd, DRM_IOCTL_DUMMY_GPU_BO_CREATE, &a);

	*handle = a.handle;
	return r;
}

uint32_t *bo_map(int fd, uint32_t handle, size_t size)
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

void bo_close(int fd, uint32_t handle)
{
	struct drm_gem_close c = { .handle = handle };

	xioctl(fd, DRM_IOCTL_GEM_CLOSE, &c);
}

/* Returns the out-fence fd, or -errno. */
int submit(int fd, const struct submit *s)
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
int fence_info(int fd, uint64_t *ts, char *driver, char *timeline)
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
int wait_fence(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r;

	do {
		r = poll(&p, 1, timeout_ms);
	} while (r < 0 && errno == EINTR);
	return r == 1 && (p.revents & POLLIN);
}

int sw_timeline(void)
{
	return open(SW_SYNC_PATH, O_RDWR | O_CLOEXEC);
}

int sw_fence(int tl, uint32_t value)
{
	struct sw_sync_create_fence_data d = { .value = value };

	snprintf(d.name, sizeof(d.name), "pt%u", value);
	if (ioctl(tl, SW_SYNC_IOC_CREATE_FENCE, &d))
		die("sw_sync create fence: %s\n", strerror(errno));
	return d.fence;
}

void sw_inc(int tl, uint32_t by)
{
	if (by && ioctl(tl, SW_SYNC_IOC_INC, &by))
		die("sw_sync inc: %s\n", strerror(errno));
}

void print_debugfs(const char *prefix)
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

int read_totals(struct totals *t)
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

struct drm_dummy_gpu_cmd fill(uint32_t h, uint64_t off, uint64_t size, uint32_t v)
{
	struct drm_dummy_gpu_cmd c = {
		.op = DUMMY_GPU_OP_FILL, .dst_handle = h, .dst_offset = off, .size = size,
		.value = v,
	};
	return c;
}

int status_of(int fd, int wait_ms)
{
	wait_fence(fd, wait_ms);
	return fence_info(fd, NULL, NULL, NULL);
}

void write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd >= 0) {
		if (write(fd, val, strlen(val)) < 0)
			fprintf(stderr, "%s: %s\n", path, strerror(errno));
		close(fd);
	}
}

uint32_t syncobj_create(void)
{
	struct drm_syncobj_create c = { 0 };

	if (xioctl(drm_fd, DRM_IOCTL_SYNCOBJ_CREATE, &c))
		die("SYNCOBJ_CREATE: %s\n", strerror(errno));
	return c.handle;
}

void syncobj_destroy(uint32_t h)
{
	struct drm_syncobj_destroy d = { .handle = h };

	xioctl(drm_fd, DRM_IOCTL_SYNCOBJ_DESTROY, &d);
}

void stat_line(const char *name, long v)
{
	printf("jq-stat: %s %ld\n", name, v);
}
