/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers of the drm_sched benchmarks (sched_bench.c) that the Rust
 * JobQueue's benchmarks (rust/kernel/drm/jobqueue/bench.rs) call too, so that
 * both measure the same way.
 */
#ifndef _DRM_SCHED_BENCH_H_
#define _DRM_SCHED_BENCH_H_

#include <linux/types.h>

struct dma_fence;

u64 jq_bench_slab_bytes(void);
int jq_bench_threads(void);
unsigned int jq_bench_online_cpus(void);
void jq_bench_skip(const char *reason);
void jq_bench_relax(void);
int jq_bench_pin(int cpu);
void *jq_bench_spawn_on_cpu(unsigned int cpu, void (*fn)(void *), void *arg);
void jq_bench_join(void *thread);
struct dma_fence *jq_bench_dep_new(u64 ctx, u64 seqno);
unsigned int jq_bench_impls(void);
unsigned int jq_bench_repeats(void);
void jq_bench_c(const char *bench, unsigned int inflight, unsigned int deps);

#endif /* _DRM_SCHED_BENCH_H_ */
