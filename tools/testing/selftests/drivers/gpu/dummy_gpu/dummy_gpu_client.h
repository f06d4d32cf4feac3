/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dummy_gpu_client: what its files share.
 *
 * The test, failnth and unload modes report through kselftest.h, whose
 * counters are static, one set per object file: every result goes through
 * check() and skip() of test.c, which alone counts and ends (ksft_exit_*()).
 * The other files call none of its result or exit functions.
 */
#ifndef DUMMY_GPU_CLIENT_H
#define DUMMY_GPU_CLIENT_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
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

#include "kselftest.h"

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

struct options {
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
};

extern struct options opt;
extern int drm_fd;
extern uint32_t dev_rings, dev_credits, dev_timeout_ms;
extern uint64_t rnd_state;

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static inline uint32_t rnd(void)
{
	/* xorshift64*: deterministic for a given --seed. */
	rnd_state ^= rnd_state >> 12;
	rnd_state ^= rnd_state << 25;
	rnd_state ^= rnd_state >> 27;
	return (uint32_t)((rnd_state * 2685821657736338717ull) >> 32);
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

/* The "all" row of the debugfs counters. */
struct totals {
	uint64_t submitted, completed, errored, timed_out, cancelled, in_flight, pending,
		credits;
};

/* common.c */
__noreturn __printf(1, 2) void die(const char *fmt, ...);
int xioctl(int fd, unsigned long req, void *arg);
int open_device(void);
uint64_t get_param(int fd, uint32_t p);
int bo_create(int fd, uint64_t size, uint32_t *handle);
uint32_t *bo_map(int fd, uint32_t handle, size_t size);
void bo_close(int fd, uint32_t handle);
int submit(int fd, const struct submit *s);
int fence_info(int fd, uint64_t *ts, char *driver, char *timeline);
int wait_fence(int fd, int timeout_ms);
int sw_timeline(void);
int sw_fence(int tl, uint32_t value);
void sw_inc(int tl, uint32_t by);
void print_debugfs(const char *prefix);
int read_totals(struct totals *t);
uint32_t syncobj_create(void);
void syncobj_destroy(uint32_t h);
void stat_line(const char *name, long v);
struct drm_dummy_gpu_cmd fill(uint32_t h, uint64_t off, uint64_t size, uint32_t v);
int status_of(int fd, int wait_ms);
void write_file(const char *path, const char *val);

/* test.c */
__printf(3, 4) void check(int ok, const char *name, const char *fmt, ...);
void skip(const char *name, const char *why);
int test(void);
int failnth_mode(void);
int unload_mode(void);

/* sync.c */
void test_syncobj_timeline(uint32_t bo, uint32_t *map);
void test_implicit_sync(void);
void test_fence_graph(void);
void test_trace(uint32_t bo);

/* demo.c, stress.c, fuzz.c */
int demo(void);
int stress_mode(void);
int fuzz_mode(void);

#endif /* DUMMY_GPU_CLIENT_H */
