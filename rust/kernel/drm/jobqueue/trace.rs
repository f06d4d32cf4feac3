// SPDX-License-Identifier: GPL-2.0

//! Trace events, in the format of drm_sched's: `include/trace/events/drm_jobqueue.h`.

use super::{
    Inner,
    JobQueueDriver, //
};
use crate::{
    dma_buf::Fence,
    ffi::c_char,
    str::CStrExt,
    sync::atomic::Relaxed, //
};

crate::declare_trace! {
    /// # Safety
    ///
    /// `dev` and `ring` point to valid NUL-terminated strings.
    unsafe fn drm_jobqueue_job_queue(dev: *const c_char, ring: *const c_char, context: u64,
        seqno: u64, job_count: u32, hw_job_count: i32, client_id: u64);
    /// # Safety
    ///
    /// `dev` and `ring` point to valid NUL-terminated strings.
    unsafe fn drm_jobqueue_job_run(dev: *const c_char, ring: *const c_char, context: u64,
        seqno: u64, job_count: u32, hw_job_count: i32, client_id: u64);
    /// # Safety
    ///
    /// Always safe to call.
    unsafe fn drm_jobqueue_job_done(context: u64, seqno: u64);
    /// # Safety
    ///
    /// Always safe to call.
    unsafe fn drm_jobqueue_job_add_dep(context: u64, seqno: u64, dep_context: u64,
        dep_seqno: u64);
}

/// Which of the two events with the queue's counters.
#[derive(Clone, Copy)]
pub(super) enum JobEvent {
    /// `drm_jobqueue_job_queue`: the job was submitted.
    Queue,
    /// `drm_jobqueue_job_run`: the job was handed to the ring.
    Run,
}

impl<D: JobQueueDriver> Inner<D> {
    /// Emits `drm_jobqueue_job_queue` or `drm_jobqueue_job_run` for job `seqno`; `pending` is
    /// the number of jobs waiting, `credits` the credits in use.
    pub(super) fn trace_job(&self, ev: JobEvent, seqno: u64, pending: u64, credits: u32) {
        let dev = self.ctx.driver_name().as_char_ptr();
        let ring = self.ctx.timeline_name().as_char_ptr();
        let ctx = self.ctx.context();
        let client = self.client_id.load(Relaxed);
        let pending = u32::try_from(pending).unwrap_or(u32::MAX);
        let credits = i32::try_from(credits).unwrap_or(i32::MAX);
        match ev {
            // SAFETY: Both names are NUL-terminated strings owned by the fence context, which
            // `self` keeps alive.
            JobEvent::Queue => unsafe {
                drm_jobqueue_job_queue(dev, ring, ctx, seqno, pending, credits, client)
            },
            // SAFETY: As above.
            JobEvent::Run => unsafe {
                drm_jobqueue_job_run(dev, ring, ctx, seqno, pending, credits, client)
            },
        }
    }

    /// Emits `drm_jobqueue_job_done` for job `seqno`.
    pub(super) fn trace_done(&self, seqno: u64) {
        // SAFETY: No requirement.
        unsafe { drm_jobqueue_job_done(self.ctx.context(), seqno) };
    }

    /// Emits `drm_jobqueue_job_add_dep` for job `seqno` and each of `deps`.
    pub(super) fn trace_deps<'a>(&self, seqno: u64, deps: impl Iterator<Item = &'a Fence>) {
        let ctx = self.ctx.context();
        for d in deps {
            // SAFETY: No requirement.
            unsafe { drm_jobqueue_job_add_dep(ctx, seqno, d.context(), d.seqno()) };
        }
    }
}
