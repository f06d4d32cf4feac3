// SPDX-License-Identifier: GPL-2.0
/*
 * dummy_gpu_client fuzz: random ioctls with random and interesting
 * arguments; counts the errno of each.
 */
#include "dummy_gpu_client.h"

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

int fuzz_mode(void)
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
