// SPDX-License-Identifier: GPL-2.0
/*
 * The trace events of the Rust DRM JobQueue (rust/kernel/drm/jobqueue/),
 * and their entry points for Rust (rust_do_trace_*()). The JobQueue is
 * generic code that is instantiated in the driver modules, so both are
 * exported.
 */

#include <linux/export.h>

#define CREATE_TRACE_POINTS
#define CREATE_RUST_TRACE_POINTS
#include <trace/events/drm_jobqueue.h>

EXPORT_TRACEPOINT_SYMBOL_GPL(drm_jobqueue_job_queue);
EXPORT_TRACEPOINT_SYMBOL_GPL(drm_jobqueue_job_run);
EXPORT_TRACEPOINT_SYMBOL_GPL(drm_jobqueue_job_done);
EXPORT_TRACEPOINT_SYMBOL_GPL(drm_jobqueue_job_add_dep);
#ifdef CONFIG_TRACEPOINTS
EXPORT_SYMBOL_GPL(rust_do_trace_drm_jobqueue_job_queue);
EXPORT_SYMBOL_GPL(rust_do_trace_drm_jobqueue_job_run);
EXPORT_SYMBOL_GPL(rust_do_trace_drm_jobqueue_job_done);
EXPORT_SYMBOL_GPL(rust_do_trace_drm_jobqueue_job_add_dep);
#endif
