// SPDX-License-Identifier: GPL-2.0
/*
 * drm_sched benchmarks, next to the Rust JobQueue's
 * (rust/kernel/drm/jobqueue/bench.rs), with the same scenarios and the same
 * mock hardware, and the C dma_fence floor.
 *
 * One line per measurement:
 *   # <case>: bench: impl=c bench=<name> inflight=<N> deps=<K> jobs=<n>
 *             submit_ns=<t> complete_ns=<t> total_ns=<t> bytes=<b>
 * Times are totals over jobs (or fences).
 *
 * The mock hardware is the benchmark thread: run_job only puts the job's
 * hardware fence (embedded in the job, as drivers do) on the ring; once the
 * whole round is on the ring, the thread signals the round's hardware fences
 * with interrupts off, as an interrupt handler would.
 *
 * The sweeps live in rust_jobqueue_bench, which calls jq_bench_c() for each
 * drm_sched measurement, alternately before and after the JobQueue's own.
 */

#include <drm/gpu_scheduler.h>
#include <kunit/device.h>
#include <kunit/test.h>
#include <kunit/test-bug.h>
#include <linux/cpumask.h>
#include <linux/dma-fence.h>
#include <linux/kthread.h>
#include <linux/ktime.h>
#include <linux/mm.h>
#include <linux/moduleparam.h>
#include <linux/rcupdate.h>
#include <linux/sched/stat.h>
#include <linux/slab.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>

#include "sched_bench.h"

/*
 * Repetitions of every paired measurement (rust_jobqueue_bench asks for it):
 * drm_sched's time at one depth jumps between two levels from one measurement
 * to the next (28 or 43 ms for 65536 jobs at 64 in flight in one run), which
 * the median of five did not settle. Even, so that each scheduler goes first
 * as often as the other.
 */
#define REPEATS 12
#define JOBS 65536

/* The scale benchmark: jobs (at least) per measurement. */
#define SCALE_JOBS 20000
#define SCALE_ROUNDS 4

/* Jobs per two-CPU measurement. */
#define SMP_JOBS 16384

/*
 * Which schedulers the paired cases of rust_jobqueue_bench measure: bit 0 the
 * JobQueue, bit 1 drm_sched. Profiles set one bit (sched_bench.impls=1 or 2).
 */
static unsigned int impls = 3;
module_param(impls, uint, 0444);
MODULE_PARM_DESC(impls, "Schedulers the paired benchmarks measure: 1 JobQueue, 2 drm_sched, 3 both");

unsigned int jq_bench_impls(void)
{
	if (!(impls & 3))
		pr_warn_once("sched_bench.impls=%u measures nothing\n", impls);
	return impls;
}

unsigned int jq_bench_repeats(void)
{
	return REPEATS;
}

/* Bytes of slab memory in use. */
u64 jq_bench_slab_bytes(void)
{
	return (u64)(global_node_page_state_pages(NR_SLAB_UNRECLAIMABLE_B) +
		     global_node_page_state_pages(NR_SLAB_RECLAIMABLE_B)) << PAGE_SHIFT;
}

/* Threads in the system, kernel threads included. */
int jq_bench_threads(void)
{
	return READ_ONCE(nr_threads);
}

unsigned int jq_bench_online_cpus(void)
{
	return num_online_cpus();
}

/* Marks the running KUnit case skipped. */
void jq_bench_skip(const char *reason)
{
	struct kunit *test = kunit_get_current_test();

	if (test)
		kunit_mark_skipped(test, "%s", reason);
}

/* One round of a polling loop. */
void jq_bench_relax(void)
{
	cond_resched();
	cpu_relax();
}

/* Binds the calling thread to @cpu, or lets it run anywhere again if @cpu < 0. */
int jq_bench_pin(int cpu)
{
	return set_cpus_allowed_ptr(current, cpu < 0 ? cpu_possible_mask : cpumask_of(cpu));
}

struct jq_bench_thread {
	struct task_struct *task;
	void (*fn)(void *arg);
	void *arg;
};

static int jq_bench_thread_fn(void *data)
{
	struct jq_bench_thread *t = data;

	t->fn(t->arg);
	/* Stay until jq_bench_join(): kthread_stop() needs the task. */
	set_current_state(TASK_INTERRUPTIBLE);
	while (!kthread_should_stop()) {
		schedule();
		set_current_state(TASK_INTERRUPTIBLE);
	}
	__set_current_state(TASK_RUNNING);
	return 0;
}

/* Runs fn(arg) on a kernel thread bound to @cpu; NULL on failure. */
void *jq_bench_spawn_on_cpu(unsigned int cpu, void (*fn)(void *), void *arg)
{
	struct jq_bench_thread *t = kzalloc_obj(*t, GFP_KERNEL);

	if (!t)
		return NULL;
	t->fn = fn;
	t->arg = arg;
	t->task = kthread_run_on_cpu(jq_bench_thread_fn, t, cpu, "bench-completer/%u");
	if (IS_ERR(t->task)) {
		kfree(t);
		return NULL;
	}
	return t;
}

/* Waits until the thread of jq_bench_spawn_on_cpu() has returned from fn. */
void jq_bench_join(void *thread)
{
	struct jq_bench_thread *t = thread;

	kthread_stop(t->task);
	kfree(t);
}

struct bench_hw {
	spinlock_t fence_lock;	/* of the hardware fences */
	spinlock_t lock;	/* on_ring, target, ring */
	spinlock_t irq;		/* stands for the interrupt controller */
	wait_queue_head_t wq;
	u64 on_ring, target, context, seqno;
	atomic64_t freed;
	struct dma_fence **ring;	/* each holds a reference until signalled */
	unsigned int ring_len;
};

struct bench_job {
	struct drm_sched_job base;
	struct dma_fence hw_fence;
	struct bench_hw *hw;
};

static const char *bench_name(struct dma_fence *f)
{
	return "bench";
}

static void bench_job_free_rcu(struct rcu_head *rcu)
{
	struct dma_fence *f = container_of(rcu, struct dma_fence, rcu);

	kfree(container_of(f, struct bench_job, hw_fence));
}

/* The job lives as long as its hardware fence. */
static void bench_hw_fence_release(struct dma_fence *f)
{
	call_rcu(&f->rcu, bench_job_free_rcu);
}

static const struct dma_fence_ops bench_hw_fence_ops = {
	.get_driver_name = bench_name,
	.get_timeline_name = bench_name,
	.release = bench_hw_fence_release,
};

static struct dma_fence *bench_run_job(struct drm_sched_job *sched_job)
{
	struct bench_job *job = container_of(sched_job, struct bench_job, base);
	struct bench_hw *hw = job->hw;

	spin_lock(&hw->lock);
	dma_fence_init(&job->hw_fence, &bench_hw_fence_ops, &hw->fence_lock, hw->context,
		       ++hw->seqno);
	/*
	 * The ring holds a reference until it has signalled the fence, as a
	 * driver's fence array does. Without one, the two-CPU case oopsed in the
	 * completer's dma_fence_signal(): the callback list it walked led into
	 * the rcu_head of a freed hardware fence.
	 */
	hw->ring[hw->ring_len++] = dma_fence_get(&job->hw_fence);
	if (++hw->on_ring == hw->target)
		wake_up_all(&hw->wq);
	spin_unlock(&hw->lock);
	/* One reference for the scheduler; the job keeps its own until free_job. */
	return dma_fence_get(&job->hw_fence);
}

static enum drm_gpu_sched_stat bench_timedout_job(struct drm_sched_job *sched_job)
{
	return DRM_GPU_SCHED_STAT_NO_HANG;
}

static void bench_free_job(struct drm_sched_job *sched_job)
{
	struct bench_job *job = container_of(sched_job, struct bench_job, base);
	struct bench_hw *hw = job->hw;

	drm_sched_job_cleanup(sched_job);
	dma_fence_put(&job->hw_fence);
	atomic64_inc(&hw->freed);
	wake_up_all(&hw->wq);
}

static const struct drm_sched_backend_ops bench_ops = {
	.run_job = bench_run_job,
	.timedout_job = bench_timedout_job,
	.free_job = bench_free_job,
};

static const struct dma_fence_ops dep_fence_ops = {
	.get_driver_name = bench_name,
	.get_timeline_name = bench_name,
};

/*
 * The benchmarks' dependencies: plain dma_fences of foreign timelines, made
 * and signalled by the same code for both schedulers (the Rust suite calls
 * these too), so that neither pays for the other's fence type.
 */
static DEFINE_SPINLOCK(dep_lock);

/* A dependency fence of timeline @ctx with @seqno, one reference; NULL on ENOMEM. */
struct dma_fence *jq_bench_dep_new(u64 ctx, u64 seqno)
{
	struct dma_fence *f = kzalloc_obj(*f, GFP_KERNEL);

	if (f)
		dma_fence_init(f, &dep_fence_ops, &dep_lock, ctx, seqno);
	return f;
}

/* Signals @f and drops the reference of jq_bench_dep_new(). */
static void jq_bench_dep_signal(struct dma_fence *f)
{
	dma_fence_signal(f);
	dma_fence_put(f);
}

KUNIT_DEFINE_ACTION_WRAPPER(kvfree_action, kvfree, const void *);

/* The mock hardware of one measurement, with a ring of @ring_size; freed with the test. */
static struct bench_hw *bench_hw_create(struct kunit *test, unsigned int ring_size)
{
	struct bench_hw *hw = kunit_kzalloc(test, sizeof(*hw), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, hw);
	spin_lock_init(&hw->fence_lock);
	spin_lock_init(&hw->lock);
	spin_lock_init(&hw->irq);
	init_waitqueue_head(&hw->wq);
	hw->context = dma_fence_context_alloc(1);
	hw->ring = kvcalloc(ring_size, sizeof(*hw->ring), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, hw->ring);
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, kvfree_action, hw->ring), 0);
	return hw;
}

/* A device for drm_sched_init(), unregistered with the test. */
static struct device *bench_device(struct kunit *test)
{
	static unsigned int instance;
	struct device *dev;
	char name[32];

	snprintf(name, sizeof(name), "sched-bench-%u", instance++);
	dev = kunit_device_register(test, name);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, dev);
	return dev;
}

/* One scheduler and its entity: what a firmware-scheduled driver makes per ring. */
struct bench_queue {
	struct drm_gpu_scheduler sched;
	struct drm_sched_entity entity;
};

/*
 * Allocated by the caller, never on the stack: the scheduler's work items
 * must not be (debugobjects reports them, and a later run reusing the stack
 * would find them).
 */
static int bench_queue_init(struct bench_queue *q, const struct drm_sched_init_args *args,
			    enum drm_sched_priority prio)
{
	struct drm_gpu_scheduler *list[] = { &q->sched };
	int ret = drm_sched_init(&q->sched, args);

	if (ret)
		return ret;
	ret = drm_sched_entity_init(&q->entity, prio, list, 1, NULL);
	if (ret)
		drm_sched_fini(&q->sched);
	return ret;
}

static void bench_queue_fini(struct bench_queue *q)
{
	drm_sched_entity_destroy(&q->entity);
	drm_sched_fini(&q->sched);
}

static void report(struct kunit *test, const char *bench, unsigned int inflight,
		   unsigned int deps, unsigned long jobs, s64 submit, s64 complete, s64 total,
		   size_t bytes)
{
	kunit_info(test,
		   "bench: impl=c bench=%s inflight=%u deps=%u jobs=%lu submit_ns=%lld complete_ns=%lld total_ns=%lld bytes=%zu\n",
		   bench, inflight, deps, jobs, submit, complete, total, bytes);
}

/* What a submitted, waiting job holds: job, scheduler fence, dependency array. */
static size_t job_bytes(struct bench_job *job)
{
	size_t b = ksize(job) + ksize(job->base.s_fence);
	void *head = READ_ONCE(job->base.dependencies.xa_head);

	if (xa_is_node(head))
		b += ksize(xa_to_node(head));
	return b;
}

/* Frees what one measurement took from the test, so that the next one starts as this one did. */
static void bench_release(struct kunit *test, struct bench_queue *q, struct bench_hw *hw,
			  struct device *dev)
{
	kunit_release_action(test, kvfree_action, hw->ring);
	kunit_kfree(test, hw);
	kunit_kfree(test, q);
	kunit_device_unregister(test, dev);
}

/*
 * One job of run_sched(): init, dependencies (their references), arm, push.
 * Returns its finished fence (a reference), or NULL if it could not be made.
 */
static struct dma_fence *push_job(struct bench_queue *q, struct bench_hw *hw,
				  struct dma_fence **dep, unsigned int deps, size_t *bytes)
{
	struct bench_job *job = kzalloc_obj(*job, GFP_KERNEL);
	struct dma_fence *done;
	unsigned int k;

	if (!job)
		return NULL;
	job->hw = hw;
	if (drm_sched_job_init(&job->base, &q->entity, 1, NULL, 1))
		goto free;
	for (k = 0; k < deps; k++)
		/* Consumes the reference, also on failure. */
		if (drm_sched_job_add_dependency(&job->base, dma_fence_get(dep[k])))
			goto cleanup;
	if (bytes)
		*bytes = job_bytes(job);
	drm_sched_job_arm(&job->base);
	done = dma_fence_get(&job->base.s_fence->finished);
	drm_sched_entity_push_job(&job->base);
	return done;

cleanup:
	drm_sched_job_cleanup(&job->base);
free:
	kfree(job);
	return NULL;
}

/* Returns true if every job was made, run and freed (false: the case failed). */
static bool run_sched(struct kunit *test, unsigned int inflight, unsigned int deps,
		      s64 t[3], size_t *bytes)
{
	struct device *dev = bench_device(test);
	struct drm_sched_init_args args = {
		.ops = &bench_ops,
		.num_rqs = DRM_SCHED_PRIORITY_COUNT,
		.credit_limit = inflight,
		.timeout = MAX_SCHEDULE_TIMEOUT,
		.name = "bench",
		.dev = dev,
	};
	struct bench_queue *q = kunit_kzalloc(test, sizeof(*q), GFP_KERNEL);
	unsigned int rounds = DIV_ROUND_UP(JOBS, inflight), r, i, k, made, pushed = 0;
	u64 dep_ctx = dma_fence_context_alloc(deps ?: 1);
	struct dma_fence **dep = NULL, **done;
	struct bench_hw *hw;
	unsigned long flags;
	ktime_t t0, t1, t2, t3, t4;

	KUNIT_ASSERT_NOT_NULL(test, q);
	hw = bench_hw_create(test, inflight);
	done = kvcalloc(inflight, sizeof(*done), GFP_KERNEL);
	if (deps)
		dep = kvcalloc((size_t)inflight * deps, sizeof(*dep), GFP_KERNEL);
	if (!done || (deps && !dep) || bench_queue_init(q, &args, DRM_SCHED_PRIORITY_NORMAL)) {
		KUNIT_FAIL(test, "cannot set up the measurement");
		kvfree(dep);
		kvfree(done);
		return false;
	}
	memset(t, 0, 3 * sizeof(*t));
	/* Start without RCU callbacks (freed fences) of earlier measurements pending. */
	rcu_barrier();

	/*
	 * No assertion from here on: on a failure, the jobs pushed so far
	 * still run and signal, and the scheduler is torn down.
	 */
	for (r = 0; r < rounds && pushed == r * inflight; r++) {
		/* Not timed: the dependencies' producers. */
		for (made = 0; made < inflight * deps; made++) {
			dep[made] = jq_bench_dep_new(dep_ctx + made % deps,
						     r * inflight + made / deps + 1);
			if (!dep[made])
				break;
		}
		spin_lock(&hw->lock);
		hw->target = (u64)(r + 1) * inflight;
		hw->ring_len = 0;
		spin_unlock(&hw->lock);

		t0 = ktime_get();
		for (i = 0; i < inflight && made == inflight * deps; i++) {
			done[i] = push_job(q, hw, dep + i * deps, deps, r || i ? NULL : bytes);
			if (!done[i])
				break;
		}
		t1 = ktime_get();
		pushed += i;
		if (i < inflight) {
			KUNIT_FAIL(test, "cannot make job %u of round %u", i, r);
			spin_lock(&hw->lock);
			hw->target = pushed;
			if (hw->on_ring >= hw->target)
				wake_up_all(&hw->wq);
			spin_unlock(&hw->lock);
		}
		for (k = 0; k < made; k++)
			jq_bench_dep_signal(dep[k]);
		wait_event(hw->wq, READ_ONCE(hw->on_ring) >= hw->target);
		t2 = ktime_get();
		spin_lock_irqsave(&hw->irq, flags);
		for (k = 0; k < hw->ring_len; k++) {
			dma_fence_signal(hw->ring[k]);
			dma_fence_put(hw->ring[k]);
		}
		spin_unlock_irqrestore(&hw->irq, flags);
		t3 = ktime_get();
		/* Done when the scheduler has let go of every job, as the JobQueue has. */
		wait_event(hw->wq, atomic64_read(&hw->freed) >= hw->target);
		t4 = ktime_get();
		t[0] += ktime_to_ns(ktime_sub(t1, t0));
		t[1] += ktime_to_ns(ktime_sub(t3, t2));
		t[2] += ktime_to_ns(ktime_sub(t4, t0));
		for (k = 0; k < i; k++) {
			KUNIT_EXPECT_EQ(test, dma_fence_get_status(done[k]), 1);
			dma_fence_put(done[k]);
		}
	}
	bench_queue_fini(q);
	bench_release(test, q, hw, dev);
	kvfree(dep);
	kvfree(done);
	return pushed == rounds * inflight;
}

/* The mock hardware's completer, on its own CPU: signals what reached the ring. */
static void sched_smp_completer(void *arg)
{
	struct bench_hw *hw = arg;
	unsigned long flags;
	u64 done = 0, n;

	while (done < READ_ONCE(hw->target)) {
		if (READ_ONCE(hw->on_ring) == done) {
			jq_bench_relax();
			continue;
		}
		spin_lock(&hw->lock);
		n = hw->ring_len;
		spin_unlock(&hw->lock);
		spin_lock_irqsave(&hw->irq, flags);
		for (; done < n; done++) {
			dma_fence_signal(hw->ring[done]);
			dma_fence_put(hw->ring[done]);
		}
		spin_unlock_irqrestore(&hw->irq, flags);
	}
}

/*
 * Two CPUs: the submitter (this thread, on CPU 0) pushes SMP_JOBS jobs back
 * to back, with at most @inflight credits on the ring, while the completer on
 * CPU 1 signals the hardware fences as they reach the ring. Total: until the
 * last done fence signalled and every job was freed.
 */
static void run_sched_smp(struct kunit *test, unsigned int inflight, s64 t[3])
{
	struct device *dev = bench_device(test);
	struct drm_sched_init_args args = {
		.ops = &bench_ops,
		.num_rqs = DRM_SCHED_PRIORITY_COUNT,
		.credit_limit = inflight,
		.timeout = MAX_SCHEDULE_TIMEOUT,
		.name = "bench-smp",
		.dev = dev,
	};
	struct bench_queue *q = kunit_kzalloc(test, sizeof(*q), GFP_KERNEL);
	struct dma_fence *last = NULL;
	struct bench_hw *hw;
	void *completer;
	ktime_t t0, t1, t2;
	unsigned int i;

	KUNIT_ASSERT_NOT_NULL(test, q);
	hw = bench_hw_create(test, SMP_JOBS);
	hw->target = SMP_JOBS;
	if (bench_queue_init(q, &args, DRM_SCHED_PRIORITY_NORMAL)) {
		KUNIT_FAIL(test, "cannot set up the measurement");
		return;
	}
	rcu_barrier();
	memset(t, 0, 3 * sizeof(*t));
	KUNIT_EXPECT_EQ(test, jq_bench_pin(0), 0);
	completer = jq_bench_spawn_on_cpu(1, sched_smp_completer, hw);
	KUNIT_EXPECT_NOT_NULL(test, completer);
	if (!completer)
		goto out;

	/* No assertion from here on: the completer must be joined first. */
	t0 = ktime_get();
	for (i = 0; i < SMP_JOBS; i++) {
		struct bench_job *job = kzalloc_obj(*job, GFP_KERNEL);

		if (!job)
			break;
		job->hw = hw;
		if (drm_sched_job_init(&job->base, &q->entity, 1, NULL, 1)) {
			kfree(job);
			break;
		}
		drm_sched_job_arm(&job->base);
		dma_fence_put(last);
		last = dma_fence_get(&job->base.s_fence->finished);
		drm_sched_entity_push_job(&job->base);
	}
	t1 = ktime_get();
	KUNIT_EXPECT_EQ(test, i, SMP_JOBS);
	/* On a failure, the completer stops after the jobs that were pushed. */
	WRITE_ONCE(hw->target, i);
	if (last)
		dma_fence_wait(last, false);
	wait_event(hw->wq, atomic64_read(&hw->freed) >= i);
	t2 = ktime_get();
	jq_bench_join(completer);
	if (last) {
		KUNIT_EXPECT_EQ(test, dma_fence_get_status(last), 1);
		dma_fence_put(last);
	}
	t[0] = ktime_to_ns(ktime_sub(t1, t0));
	t[1] = 0;
	t[2] = ktime_to_ns(ktime_sub(t2, t0));
out:
	jq_bench_pin(-1);
	bench_queue_fini(q);
	bench_release(test, q, hw, dev);
}

/*
 * n queues of one device on shared submit and timeout workqueues, as panthor
 * and xe pass them: created, given one job each per round (all completing in
 * one interrupt), and destroyed. t: create, destroy, submit, complete and
 * total ns; *bytes and *threads: what the queues added. Returns true if
 * every queue and job was made (false: the case failed).
 */
static bool run_scale(struct kunit *test, unsigned int n, s64 t[5], unsigned long *jobs,
		      s64 *bytes, s64 *threads)
{
	struct device *dev = bench_device(test);
	unsigned int rounds = max(DIV_ROUND_UP(SCALE_JOBS, n), SCALE_ROUNDS), r, i, k, made;
	bool ok = false;
	struct workqueue_struct *submit_wq, *timeout_wq;
	struct drm_sched_init_args args = {
		.ops = &bench_ops,
		.num_rqs = 1,
		.credit_limit = 1,
		.timeout = MAX_SCHEDULE_TIMEOUT,
		.name = "scale",
		.dev = dev,
	};
	struct bench_queue **qs;
	struct dma_fence **done;
	struct bench_hw *hw;
	unsigned long flags;
	s64 slab0, threads0;
	ktime_t t0, t1, t2, t3;

	memset(t, 0, 5 * sizeof(*t));
	*jobs = 0;
	*bytes = 0;
	*threads = 0;
	hw = bench_hw_create(test, n);
	qs = kvcalloc(n, sizeof(*qs), GFP_KERNEL);
	done = kvcalloc(n, sizeof(*done), GFP_KERNEL);
	submit_wq = alloc_workqueue("sched-scale-submit", WQ_MEM_RECLAIM | WQ_UNBOUND, 0);
	timeout_wq = alloc_ordered_workqueue("sched-scale-timeout", WQ_MEM_RECLAIM);
	made = 0;
	if (!qs || !done || !submit_wq || !timeout_wq) {
		KUNIT_FAIL(test, "cannot set up the measurement");
		goto out;
	}
	args.submit_wq = submit_wq;
	args.timeout_wq = timeout_wq;
	rcu_barrier();
	slab0 = jq_bench_slab_bytes();
	threads0 = jq_bench_threads();

	t0 = ktime_get();
	for (; made < n; made++) {
		qs[made] = kzalloc_obj(*qs[made], GFP_KERNEL);
		/* One run queue (num_rqs = 1): priority 0, as panthor does. */
		if (!qs[made] || bench_queue_init(qs[made], &args, DRM_SCHED_PRIORITY_KERNEL)) {
			kfree(qs[made]);
			KUNIT_FAIL(test, "cannot create queue %u", made);
			goto out;
		}
	}
	t[0] = ktime_to_ns(ktime_sub(ktime_get(), t0));
	*bytes = (s64)jq_bench_slab_bytes() - slab0;
	*threads = jq_bench_threads() - threads0;

	/*
	 * No assertion from here on: on a failure, the jobs pushed so far
	 * still run and signal, and the queues are torn down.
	 */
	for (r = 0, i = n; r < rounds && i == n; r++) {
		spin_lock(&hw->lock);
		hw->target = (u64)(r + 1) * n;
		hw->ring_len = 0;
		spin_unlock(&hw->lock);
		t0 = ktime_get();
		for (i = 0; i < n; i++) {
			done[i] = push_job(qs[i], hw, NULL, 0, NULL);
			if (!done[i])
				break;
		}
		t1 = ktime_get();
		if (i < n) {
			KUNIT_FAIL(test, "cannot make job %u of round %u", i, r);
			spin_lock(&hw->lock);
			hw->target = (u64)r * n + i;
			if (hw->on_ring >= hw->target)
				wake_up_all(&hw->wq);
			spin_unlock(&hw->lock);
		}
		wait_event(hw->wq, READ_ONCE(hw->on_ring) >= hw->target);
		t2 = ktime_get();
		spin_lock_irqsave(&hw->irq, flags);
		for (k = 0; k < hw->ring_len; k++) {
			dma_fence_signal(hw->ring[k]);
			dma_fence_put(hw->ring[k]);
		}
		spin_unlock_irqrestore(&hw->irq, flags);
		/* Done when every done fence signalled and every job was freed. */
		for (k = 0; k < i; k++)
			dma_fence_wait(done[k], false);
		wait_event(hw->wq, atomic64_read(&hw->freed) >= hw->target);
		t3 = ktime_get();
		t[2] += ktime_to_ns(ktime_sub(t1, t0));
		t[3] += ktime_to_ns(ktime_sub(t3, t2));
		t[4] += ktime_to_ns(ktime_sub(t3, t0));
		*jobs += i;
		for (k = 0; k < i; k++) {
			KUNIT_EXPECT_EQ(test, dma_fence_get_status(done[k]), 1);
			dma_fence_put(done[k]);
		}
	}
	ok = i == n;

out:
	t0 = ktime_get();
	while (made--) {
		bench_queue_fini(qs[made]);
		kfree(qs[made]);
	}
	t[1] = ktime_to_ns(ktime_sub(ktime_get(), t0));
	if (timeout_wq)
		destroy_workqueue(timeout_wq);
	if (submit_wq)
		destroy_workqueue(submit_wq);
	kunit_release_action(test, kvfree_action, hw->ring);
	kunit_kfree(test, hw);
	kunit_device_unregister(test, dev);
	kvfree(done);
	kvfree(qs);
	return ok;
}

/* The C floor: dma_fence_init + signal + put on memory allocated beforehand. */
static void run_fence_floor(struct kunit *test)
{
	struct dma_fence **f = kvcalloc(JOBS, sizeof(*f), GFP_KERNEL);
	u64 ctx = dma_fence_context_alloc(1);
	spinlock_t lock;	/* of the fences */
	unsigned int i;
	ktime_t t0;

	KUNIT_ASSERT_NOT_NULL(test, f);
	spin_lock_init(&lock);
	for (i = 0; i < JOBS; i++) {
		f[i] = kmalloc_obj(*f[i], GFP_KERNEL);
		if (!f[i])
			break;
	}
	if (i < JOBS) {
		while (i--)
			kfree(f[i]);
		kvfree(f);
		KUNIT_FAIL(test, "out of memory");
		return;
	}
	rcu_barrier();
	t0 = ktime_get();
	for (i = 0; i < JOBS; i++) {
		dma_fence_init(f[i], &dep_fence_ops, &lock, ctx, i + 1);
		dma_fence_signal(f[i]);
		dma_fence_put(f[i]);
	}
	report(test, "fence_floor", 0, 0, JOBS, 0, 0, ktime_to_ns(ktime_sub(ktime_get(), t0)),
	       0);
	kvfree(f);
}

/*
 * One drm_sched measurement of @bench ("fence_floor", "inflight", "deps",
 * "smp", or "scale" with @inflight queues), for rust_jobqueue_bench's paired
 * cases, which alternate it with the JobQueue's own: one scheduler always
 * measured first would take all of the machine's drift over a run. Reported
 * like the others (impl=c). Called from the KUnit case's thread: a failed
 * assertion ends the case there, as in C.
 */
void jq_bench_c(const char *bench, unsigned int inflight, unsigned int deps)
{
	struct kunit *test = kunit_get_current_test();
	unsigned long jobs = (unsigned long)DIV_ROUND_UP(JOBS, inflight ?: 1) * (inflight ?: 1);
	size_t bytes = 0;
	s64 t[3];

	if (WARN_ON(!test))
		return;
	if (!strcmp(bench, "fence_floor")) {
		run_fence_floor(test);
		return;
	}
	if (!strcmp(bench, "scale")) {
		s64 ts[5], b, threads;

		/* @inflight queues, one job in flight on each; no figures from a failed run. */
		if (!run_scale(test, inflight, ts, &jobs, &b, &threads))
			return;
		kunit_info(test,
			   "bench: impl=c bench=scale queues=%u jobs=%lu create_ns=%lld destroy_ns=%lld submit_ns=%lld complete_ns=%lld total_ns=%lld bytes=%lld threads=%lld\n",
			   inflight, jobs, ts[0], ts[1], ts[2], ts[3], ts[4], b, threads);
		return;
	}
	if (!strcmp(bench, "smp")) {
		run_sched_smp(test, inflight, t);
		report(test, "smp", inflight, 0, SMP_JOBS, t[0], t[1], t[2], 0);
		return;
	}
	if (WARN_ON(strcmp(bench, "inflight") && strcmp(bench, "deps")))
		return;
	if (run_sched(test, inflight, deps, t, &bytes))
		report(test, bench, inflight, deps, jobs, t[0], t[1], t[2], bytes);
}

MODULE_DESCRIPTION("drm_sched benchmarks, to compare with the Rust JobQueue's");
MODULE_LICENSE("GPL");
