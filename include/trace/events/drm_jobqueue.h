/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Trace events of the Rust DRM JobQueue (rust/kernel/drm/jobqueue/).
 *
 * They have the fields and the output format of drm_sched's stable events
 * (drivers/gpu/drm/scheduler/gpu_scheduler_trace.h), under names of their
 * own, so that tools that follow a job by "fence=context:seqno" through
 * drm_sched_job_queue, _add_dep, _run and _done, and through the dma_fence
 * events, follow JobQueue jobs the same way:
 *
 *   drm_jobqueue_job_queue:   submitted (PreparedJob::submit())
 *   drm_jobqueue_job_add_dep: one per dependency the job waits for
 *   drm_jobqueue_job_run:     handed to the ring (JobQueueDriver::run())
 *   drm_jobqueue_job_done:    its done fence signalled
 *
 * "dev" is the queue's driver name and "ring" its timeline name (both as
 * given to JobQueue::new()); "client_id" is the one set with
 * JobQueue::set_client_id() (the DRM file's fdinfo client id), 0 if none.
 */

#undef TRACE_SYSTEM
#define TRACE_SYSTEM drm_jobqueue

#if !defined(_TRACE_DRM_JOBQUEUE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _TRACE_DRM_JOBQUEUE_H

#include <linux/tracepoint.h>
#include <linux/types.h>

DECLARE_EVENT_CLASS(drm_jobqueue_job,
	TP_PROTO(const char *dev, const char *ring, u64 context, u64 seqno,
		 u32 job_count, int hw_job_count, u64 client_id),
	TP_ARGS(dev, ring, context, seqno, job_count, hw_job_count, client_id),
	TP_STRUCT__entry(
		__string(name, ring)
		__field(u32, job_count)
		__field(int, hw_job_count)
		__string(dev, dev)
		__field(u64, fence_context)
		__field(u64, fence_seqno)
		__field(u64, client_id)
	),
	TP_fast_assign(
		__assign_str(name);
		__entry->job_count = job_count;
		__entry->hw_job_count = hw_job_count;
		__assign_str(dev);
		__entry->fence_context = context;
		__entry->fence_seqno = seqno;
		__entry->client_id = client_id;
	),
	TP_printk("dev=%s, fence=%llu:%llu, ring=%s, job count:%u, hw job count:%d, client_id:%llu",
		  __get_str(dev), __entry->fence_context, __entry->fence_seqno,
		  __get_str(name), __entry->job_count, __entry->hw_job_count,
		  __entry->client_id)
);

/* job_count: jobs waiting in the queue; hw_job_count: credits in use. */
DEFINE_EVENT(drm_jobqueue_job, drm_jobqueue_job_queue,
	TP_PROTO(const char *dev, const char *ring, u64 context, u64 seqno,
		 u32 job_count, int hw_job_count, u64 client_id),
	TP_ARGS(dev, ring, context, seqno, job_count, hw_job_count, client_id)
);

DEFINE_EVENT(drm_jobqueue_job, drm_jobqueue_job_run,
	TP_PROTO(const char *dev, const char *ring, u64 context, u64 seqno,
		 u32 job_count, int hw_job_count, u64 client_id),
	TP_ARGS(dev, ring, context, seqno, job_count, hw_job_count, client_id)
);

TRACE_EVENT(drm_jobqueue_job_done,
	TP_PROTO(u64 context, u64 seqno),
	TP_ARGS(context, seqno),
	TP_STRUCT__entry(
		__field(u64, fence_context)
		__field(u64, fence_seqno)
	),
	TP_fast_assign(
		__entry->fence_context = context;
		__entry->fence_seqno = seqno;
	),
	TP_printk("fence=%llu:%llu signaled",
		  __entry->fence_context, __entry->fence_seqno)
);

TRACE_EVENT(drm_jobqueue_job_add_dep,
	TP_PROTO(u64 context, u64 seqno, u64 dep_context, u64 dep_seqno),
	TP_ARGS(context, seqno, dep_context, dep_seqno),
	TP_STRUCT__entry(
		__field(u64, fence_context)
		__field(u64, fence_seqno)
		__field(u64, ctx)
		__field(u64, seqno)
	),
	TP_fast_assign(
		__entry->fence_context = context;
		__entry->fence_seqno = seqno;
		__entry->ctx = dep_context;
		__entry->seqno = dep_seqno;
	),
	TP_printk("fence=%llu:%llu depends on fence=%llu:%llu",
		  __entry->fence_context, __entry->fence_seqno,
		  __entry->ctx, __entry->seqno)
);

#endif /* _TRACE_DRM_JOBQUEUE_H */

/* This part must be outside protection */
#include <trace/define_trace.h>
