// SPDX-License-Identifier: GPL-2.0

//! Statistics: the queue's counters.

use super::{
    JobQueue,
    JobQueueDriver, //
};
use crate::prelude::*;

/// Counters of a [`JobQueue`].
///
/// `submitted == completed + errored + timed_out + cancelled + in_flight + pending` always
/// holds.
///
/// # Examples
///
/// ```
/// use kernel::dma_buf::Fence;
/// use kernel::drm::jobqueue::{JobQueue, JobQueueDriver, JobQueueWorkqueues, TimeoutAction};
/// use kernel::time::Delta;
///
/// struct Ring;
/// impl JobQueueDriver for Ring {
///     type Job = ();
///     fn run(&self, _job: (), _seqno: u64, _done: &Fence) {}
///     fn timed_out(&self, _seqno: u64) -> TimeoutAction {
///         TimeoutAction::Dead
///     }
///     fn stop(&self) {}
/// }
///
/// let wqs = JobQueueWorkqueues::new(c"example")?;
/// let queue = JobQueue::new(Ring, c"example", c"ring2", 1, Delta::from_millis(500), &wqs)?;
/// let first = queue.prepare((), 1)?.submit();
/// let second = queue.prepare((), 1)?.submit();
/// queue.kill();
/// // `first` was on the (stopped) ring; `second` had not run.
/// second.wait(false)?;
/// assert_eq!(first.status(), Some(Err(ECANCELED)));
/// assert_eq!(second.status(), Some(Err(ECANCELED)));
/// let s = queue.stats();
/// assert_eq!((s.submitted, s.cancelled, s.in_flight, s.pending), (2, 2, 0, 0));
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobQueueStats {
    /// Jobs submitted.
    pub submitted: u64,
    /// Jobs whose done fence signalled without error.
    pub completed: u64,
    /// Jobs that did not run because a dependency failed (their fence carries its error,
    /// whatever it is), jobs with a hardware error reported by the driver, and jobs submitted
    /// after the queue died (`-ENODEV`).
    pub errored: u64,
    /// Jobs that ran and timed out (`-ETIMEDOUT`).
    pub timed_out: u64,
    /// Jobs cancelled by teardown or lost in a ring reset (`-ECANCELED`).
    pub cancelled: u64,
    /// Jobs taken from the pending set whose fence has not signalled yet.
    pub in_flight: u64,
    /// Ring time of the jobs that ran and have signalled, in nanoseconds: the time during
    /// which the ring held at least one of them (from `run()` to the signal of its done
    /// fence, overlaps counted once). This is the `drm-engine-<ring>` value of
    /// `Documentation/gpu/drm-usage-stats.rst`.
    pub busy_ns: u64,
    /// Submitted jobs not started yet.
    pub pending: u64,
    /// Credits held by running jobs.
    pub credits_in_use: u32,
}

/// When a job was on the ring: given to [`JobQueueDriver::job_done`] for every job that ran,
/// and kept for the last one ([`JobQueue::last_job`]).
///
/// Times are `CLOCK_MONOTONIC` nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobTimes {
    /// The job's seqno.
    pub seqno: u64,
    /// When the job got the ring: when [`JobQueueDriver::run`] was called for it or, if the
    /// ring still held an earlier job then, when that job's done fence signalled. (The ring
    /// runs its jobs in order; the clock is only read for a job handed to an idle ring.)
    pub started_ns: i64,
    /// When its done fence signalled.
    pub finished_ns: i64,
    /// `finished_ns - started_ns`: what the job adds to [`JobQueueStats::busy_ns`].
    pub ring_ns: u64,
}

/// Sums counters, for example of several queues or of a queue's successive instances.
impl core::ops::AddAssign for JobQueueStats {
    fn add_assign(&mut self, o: Self) {
        self.submitted += o.submitted;
        self.completed += o.completed;
        self.errored += o.errored;
        self.timed_out += o.timed_out;
        self.cancelled += o.cancelled;
        self.in_flight += o.in_flight;
        self.busy_ns += o.busy_ns;
        self.pending += o.pending;
        self.credits_in_use += o.credits_in_use;
    }
}

impl JobQueueStats {
    pub(super) fn count(&mut self, res: Result) {
        match res {
            Ok(()) => self.completed += 1,
            Err(e) if e == ETIMEDOUT => self.timed_out += 1,
            Err(e) if e == ECANCELED => self.cancelled += 1,
            Err(_) => self.errored += 1,
        }
    }
}

impl<D: JobQueueDriver> JobQueue<D> {
    /// Returns a snapshot of the queue's counters.
    ///
    /// Callable from any context where a `spinlock_t` may be taken, including callbacks on
    /// this queue's done fences.
    pub fn stats(&self) -> JobQueueStats {
        let st = self.inner.state.lock();
        let mut s = st.stats;
        s.credits_in_use = st.credits_in_use;
        s
    }

    /// Returns the last job that ran and signalled, and when it was on the ring.
    ///
    /// Callable wherever [`JobQueue::stats`] is.
    pub fn last_job(&self) -> Option<JobTimes> {
        self.inner.state.lock().cold.last_job
    }
}
