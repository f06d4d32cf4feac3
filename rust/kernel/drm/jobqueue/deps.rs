// SPDX-License-Identifier: GPL-2.0

//! Dependencies: the head job waits for one unsignalled dependency at a time.
//!
//! Only the run path (the submit work item, or the direct run of `PreparedJob::submit`, both
//! with the driver lock held) polls dependencies, for the first pending job only, and it holds
//! no queue spinlock while doing so: a dependency's lock is never taken inside a queue lock (a
//! callback on that fence may look at the queue's counters, and a fence whose `signaled` op
//! signals it inline runs all its callbacks right there).

use super::{
    job::JobNode,
    Inner,
    JobQueueDriver, //
};
use crate::{
    dma_buf::{
        CallbackError,
        FenceCb,
        FenceCbSlot, //
    },
    sync::Arc,
    time::{
        Instant,
        Monotonic, //
    },
};
use core::pin::Pin;

/// The dependency callback: queues the queue's work item.
///
/// It owns a reference to the queue while armed, so the queue outlives every armed slot.
pub(super) struct DepKick<D: JobQueueDriver>(Arc<Inner<D>>);

impl<D: JobQueueDriver> FenceCb for DepKick<D> {
    fn called(self) {
        self.0.as_arc_borrow().kick();
        // Never the last reference here: the queued work item holds one.
        drop(self);
    }
}

/// A job's dependency callback slot, armed on at most one dependency at a time.
pub(super) type DepWait<D> = FenceCbSlot<DepKick<D>>;

impl<D: JobQueueDriver> Inner<D> {
    /// Checks the dependencies of the head job, arming the callback on the first unsignalled
    /// one. Returns `true` when all have signalled (a failed one included).
    ///
    /// Called by the work item, with no queue lock held. `deadline` is the job's deadline
    /// hint, which it forwards to the dependency it waits for.
    pub(super) fn poll_deps(
        self: &Arc<Self>,
        node: Pin<&mut JobNode<D>>,
        deadline: Option<Instant<Monotonic>>,
    ) -> bool {
        let mut n = node.project();
        while (*n.next_dep as usize) < n.deps.len() {
            let dep = &n.deps[*n.next_dep as usize];
            if n.wait.is_armed() {
                if !dep.is_signaled() {
                    if let Some(d) = deadline.filter(|d| d.as_nanos() < *n.deadline_sent) {
                        *n.deadline_sent = d.as_nanos();
                        dep.set_deadline(d);
                    }
                    return false;
                }
                // It signalled: disarming waits for a callback still running on another CPU,
                // and hands back the queue reference if the callback did not run.
                drop(n.wait.as_mut().disarm());
            }
            // The next dependency has not been told any deadline.
            *n.deadline_sent = i64::MAX;
            // Lock-free when the fence is known to have signalled (the common case here).
            match dep.signalled_status().or_else(|| dep.status()) {
                Some(Ok(())) => *n.next_dep += 1,
                Some(Err(e)) => {
                    // The job will not run, but its fence still waits for the others: it
                    // must not signal before what it depended on.
                    n.dep_error.get_or_insert(e);
                    *n.next_dep += 1;
                }
                None => match n.wait.as_mut().arm(dep.clone(), DepKick(self.clone())) {
                    Ok(()) => {
                        if let Some(d) = deadline {
                            *n.deadline_sent = d.as_nanos();
                            dep.set_deadline(d);
                        }
                        return false;
                    }
                    // It signalled meanwhile: look at its status again.
                    Err(CallbackError::AlreadySignaled(kick)) => drop(kick),
                    Err(CallbackError::Other(e)) => {
                        // `dma_fence_add_callback()` fails only for a signalled fence. Never
                        // wait forever: treat the dependency as failed.
                        crate::warn_on!(true);
                        n.dep_error.get_or_insert(e);
                        *n.next_dep += 1;
                    }
                },
            }
        }
        true
    }
}
