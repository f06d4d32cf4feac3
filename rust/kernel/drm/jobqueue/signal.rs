// SPDX-License-Identifier: GPL-2.0

//! Signalling: completion reports, teardown, and flushing.
//!
//! Done fences signal from the front of the in-flight range, in seqno order, in batches of at
//! most `DRAIN_BATCH` per round trip of the queue's locks (one round trip for a batch of
//! finished jobs, and interrupts never off for more than a batch), and only for jobs that
//! were handed to the ring.

use super::{
    Cold,
    Inner,
    JobData,
    JobQueue,
    JobQueueDriver,
    JobTimes,
    Phase,
    State, //
};
use crate::{
    bindings,
    dma_buf::{
        DriverFence,
        SignallingSection, //
    },
    prelude::*,
    sync::{
        atomic::Relaxed,
        Arc,
        ArcBorrow, //
    },
    time::{
        Delta,
        Instant,
        Monotonic, //
    },
    workqueue::DelayedWork, //
};

/// Why a job in flight was not run; stored in its `JobMeta` as an `i32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Skip {
    /// A dependency failed with this error.
    Dependency(Error),
    /// Cancelled by the teardown (`-ECANCELED`).
    Cancelled,
    /// Submitted after the queue died (`-ENODEV`).
    AfterDeath,
    /// Ran, and was named guilty of a hang by [`TimeoutAction::ResetAndReplay`]
    /// (`-ETIMEDOUT`).
    ///
    /// [`TimeoutAction::ResetAndReplay`]: super::TimeoutAction::ResetAndReplay
    Guilty,
}

impl Skip {
    pub(super) fn to_raw(self) -> i32 {
        match self {
            Skip::Dependency(e) => e.to_errno(),
            Skip::Cancelled => 1,
            Skip::AfterDeath => 2,
            Skip::Guilty => 3,
        }
    }

    fn from_raw(raw: i32) -> Option<Self> {
        match raw {
            0 => None,
            1 => Some(Skip::Cancelled),
            2 => Some(Skip::AfterDeath),
            3 => Some(Skip::Guilty),
            e => Some(Skip::Dependency(Error::from_errno(e))),
        }
    }

    fn error(self) -> Error {
        match self {
            Skip::Dependency(e) => e,
            Skip::Cancelled => ECANCELED,
            Skip::AfterDeath => ENODEV,
            Skip::Guilty => ETIMEDOUT,
        }
    }
}

impl Cold {
    /// Holds back a completion report (`seqno`, `result`) that arrived while `timed_out()`
    /// executes. Reports say that every job up to `seqno` finished, so a later report
    /// replaces an earlier one, except for the error an earlier one carried: the first such
    /// error is kept in `held_err`. (A second error in one timeout handler is reported as
    /// success, with a warning: the ring was being reset.)
    pub(super) fn hold_report(&mut self, seqno: u64, result: Result) {
        fn keep_err(st: &mut Cold, at: u64, e: Error) {
            match st.held_err {
                None => st.held_err = Some((at, e)),
                Some((prev, _)) if prev == at => {}
                Some(_) => {
                    crate::pr_warn_once!(
                        "jobqueue: two error reports during one timeout; one is lost\n"
                    );
                }
            }
        }
        match self.held {
            None => self.held = Some((seqno, result)),
            Some((h, r)) if h < seqno => {
                if let Err(e) = r {
                    keep_err(self, h, e);
                }
                self.held = Some((seqno, result));
            }
            Some((h, _)) if h > seqno => {
                if let Err(e) = result {
                    keep_err(self, seqno, e);
                }
            }
            Some((h, r)) => {
                if r.is_ok() {
                    self.held = Some((h, result));
                }
            }
        }
    }
}

/// Fences signalled per round trip of the queue's locks in [`Inner::drain`].
const DRAIN_BATCH: usize = 8;

/// A job taken off the in-flight set by [`Inner::drain`], to signal.
struct Drained<D: JobQueueDriver> {
    /// `None` once signalled.
    fence: Option<DriverFence<JobData<D>>>,
    res: Result,
    times: Option<JobTimes>,
    seqno: u64,
}

impl<D: JobQueueDriver> Inner<D> {
    /// Signals jobs in flight from the front, in seqno order, as long as `decide` gives a
    /// result for them (`None` stops). Jobs that were not run signal their own error without
    /// asking. Only jobs handed to the ring are reached. If a job that ran signalled, the job
    /// now at the front of the ring gets its timeout restarted (the ring made progress, as
    /// `drm_sched` restarts its timer when a job finishes); so does a front job whose
    /// timeout had not started (it was handed behind the jobs that left).
    ///
    /// Callable from any context where a `spinlock_t` may be taken (see
    /// [`JobQueue::complete`]). Returns the number of pending jobs if anything was signalled.
    ///
    /// `first` runs once, the first time the state lock is taken; `decide` runs with the state
    /// lock held. Both may update the state.
    pub(super) fn drain_with(
        &self,
        first: impl FnOnce(&mut State<D>),
        mut decide: impl FnMut(&mut State<D>, u64) -> Option<Result>,
    ) -> Option<u64> {
        let mut first = Some(first);
        let _section = SignallingSection::begin();
        let mut any = false;
        // Whether a job that ran finished.
        let mut progress = false;
        let mut pending = 0;
        loop {
            let order = self.signal_lock.lock();
            // Up to `DRAIN_BATCH` fences per round trip of the locks: bounded work with
            // interrupts off, and one lock round trip for a batch of finished jobs.
            let mut batch: [Option<Drained<D>>; DRAIN_BATCH] = Default::default();
            let mut n = 0;
            let mut more = true;
            // One clock read per batch: the finish time of its jobs and their fences'
            // timestamp.
            let mut now = None;
            {
                let mut st = self.state.lock();
                if let Some(f) = first.take() {
                    f(&mut st);
                }
                while n < DRAIN_BATCH {
                    let idx = st.oldest;
                    if idx >= st.handed {
                        more = false;
                        break;
                    }
                    let Some((skip, credits, ran_at)) = st
                        .inflight
                        .front()
                        .filter(|e| e.as_fence().seqno() == idx)
                        .map(|e| {
                            (
                                Skip::from_raw(e.skipped.load(Relaxed)),
                                e.credits,
                                e.ran_at.load(Relaxed),
                            )
                        })
                    else {
                        // Unreachable: every job handed to the ring is in the in-flight list
                        // (a step that found no fence, itself unreachable, warns and leaves
                        // this hole).
                        crate::warn_on!(true);
                        st.oldest = idx + 1;
                        continue;
                    };
                    let mut times = None;
                    let res = match skip {
                        Some(s) => Err(s.error()),
                        None => match decide(&mut st, idx) {
                            Some(res) => res,
                            None => {
                                more = false;
                                break;
                            }
                        },
                    };
                    let Some(fence) = st.inflight.pop_front() else {
                        // Unreachable: we just found it, under the same lock.
                        crate::warn_on!(true);
                        more = false;
                        break;
                    };
                    let now = *now.get_or_insert_with(Instant::<Monotonic>::now);
                    // INVARIANT: The front job leaves the in-flight range; its credits return.
                    st.oldest = idx + 1;
                    st.stats.in_flight -= 1;
                    // When the job got the ring: when it ran or, if it was handed behind a
                    // job still in flight (its `ran_at` is 0), when the last job before it
                    // left. The next job gets the ring now. (A job handed behind others has
                    // one that ran ahead of it, so `from` is not 0: this only guards.)
                    let from = match ran_at.max(st.last_finish) {
                        0 => now.as_nanos(),
                        t => t,
                    };
                    st.last_finish = now.as_nanos();
                    match skip {
                        // Both ran, and hold credits.
                        None | Some(Skip::Guilty) => {
                            st.credits_in_use -= credits;
                            st.stats.count(res);
                            // Ring time: jobs finish in order, so the ring held this one from
                            // when it ran or the one before it left, whichever is later.
                            let now = now.as_nanos();
                            let ring_ns = now.saturating_sub(from).max(0) as u64;
                            st.stats.busy_ns += ring_ns;
                            let t = JobTimes {
                                seqno: idx,
                                started_ns: from,
                                finished_ns: now,
                                ring_ns,
                            };
                            st.cold.last_job = Some(t);
                            times = Some(t);
                            progress = true;
                        }
                        Some(Skip::Cancelled) => st.stats.cancelled += 1,
                        Some(_) => st.stats.errored += 1,
                    }
                    batch[n] = Some(Drained {
                        fence: Some(fence),
                        res,
                        times,
                        seqno: idx,
                    });
                    n += 1;
                }
                any |= n > 0;
                if !more && any {
                    // If the ring made progress, the timeout of the job now at the front runs
                    // from here. So does the timeout of a front job that was handed behind
                    // the ones that left (its `started` is 0): it gets the ring now.
                    if let Some(e) = st.inflight.front().filter(|_| st.oldest < st.handed) {
                        let started = e.started.load(Relaxed);
                        if progress || started == 0 {
                            let t = now.get_or_insert_with(Instant::<Monotonic>::now).as_nanos();
                            if started < t {
                                e.started.store(t, Relaxed);
                            }
                        }
                    }
                    pending = st.stats.pending;
                }
            }
            // Outside the state lock: callbacks on the fences may look at this queue's
            // counters (see `Inner`'s locking rules). Handed over in seqno order, under
            // `signal_lock`; the timeline signals them in that order, here or, if another
            // thread is signalling it (a done fence dropped elsewhere), in that thread.
            if let Some(now) = now {
                let _ = DriverFence::signal_batch(
                    batch
                        .iter_mut()
                        .take(n)
                        .flatten()
                        .filter_map(|d| d.fence.take().map(|f| (f, d.res))),
                    now,
                );
                for d in batch.iter().take(n).flatten() {
                    self.trace_done(d.seqno);
                }
            }
            drop(order);
            for d in batch.iter().take(n).flatten() {
                if let Some(t) = &d.times {
                    self.driver.job_done(t);
                }
            }
            if !more {
                break;
            }
        }
        any.then_some(pending)
    }

    /// [`Inner::drain_with`] with nothing to do first.
    pub(super) fn drain(
        &self,
        decide: impl FnMut(&mut State<D>, u64) -> Option<Result>,
    ) -> Option<u64> {
        self.drain_with(|_| {}, decide)
    }

    /// Applies a completion report for the jobs up to `seqno` handed to the ring.
    ///
    /// While `timed_out()` executes, the part of the report that covers the timed-out job and
    /// the jobs after it is held back (see [`State::hold_report`]).
    pub(super) fn report(self: ArcBorrow<'_, Self>, seqno: u64, result: Result) {
        self.report_with(seqno, result, |_| {});
    }

    /// [`Inner::report`], running `first` in the first critical section of the state lock.
    fn report_with(
        self: ArcBorrow<'_, Self>,
        seqno: u64,
        result: Result,
        first: impl FnOnce(&mut State<D>),
    ) {
        let signalled = self.drain_with(first, |st, idx| {
            if idx > seqno {
                return None;
            }
            if st.cold.hold_from.is_some_and(|from| idx >= from) {
                st.cold.hold_report(seqno, result);
                return None;
            }
            if let Some((at, e)) = st.cold.held_err {
                if at <= idx {
                    st.cold.held_err = None;
                    if at == idx {
                        return Some(Err(e));
                    }
                }
            }
            Some(if idx == seqno { result } else { Ok(()) })
        });
        // Returned credits may let a waiting job run. With nothing waiting there is nothing
        // to start, and no reason to bounce through the workqueue.
        if signalled.is_some_and(|pending| pending > 0) {
            self.kick();
        }
    }

    /// Stops the ring and signals every job it was given. Called once, by the work item, when
    /// the queue is dying; the work item then cancels the waiting jobs that can be cancelled
    /// and completes `stopped`.
    pub(super) fn stop_ring(self: &Arc<Self>) {
        let timed_out = {
            let _driver = self.driver_lock.lock();
            let _section = SignallingSection::begin();
            self.driver.stop();
            let mut st = self.state.lock();
            // INVARIANT: The driver said the ring no longer touches its jobs. The timeout work
            // item sees this under `driver_lock`, and calls the driver no more.
            st.phase = Phase::Stopped;
            st.cold.timed_out
        };
        // No timeout any more; a pending timer would keep the queue alive until it fires.
        DelayedWork::<Self, 1>::cancel(self);
        self.drain(|_, idx| {
            Some(Err(if Some(idx) == timed_out {
                ETIMEDOUT
            } else {
                ECANCELED
            }))
        });
    }
}

/// Whether the current task is being killed: it exits because of `SIGKILL` (as
/// `drm_sched_entity_flush()` checks), or, while not exiting yet, `SIGKILL` is pending.
fn current_being_killed() -> bool {
    // SAFETY: Only reads the current task's flags, exit code and pending signals.
    unsafe { bindings::dma_fence_current_killed() }
}

impl<D: JobQueueDriver> JobQueue<D> {
    /// Reports that the ring finished the jobs up to and including `seqno`; `result` is the
    /// outcome of job `seqno` itself (the earlier ones succeeded).
    ///
    /// Signals their done fences in order, returns their credits and starts waiting jobs.
    /// Only jobs handed to [`JobQueueDriver::run`] are reached: a report that arrives while
    /// `run()` executes for `seqno` takes effect when it returns, and a report beyond the jobs
    /// handed to the ring is clamped (the queue logs a warning once). Reports for jobs that
    /// were already signalled (after a reset, a timeout or teardown) are ignored.
    ///
    /// # Context
    ///
    /// Callable wherever a `spinlock_t` may be taken: process and softirq context, a threaded
    /// interrupt handler, an ordinary (`request_irq()`) interrupt handler, the callback of an
    /// hrtimer in a non-hard mode (for example [`RelativeMode`]), and the queue's
    /// [`JobQueueDriver`] methods. It signals dma_fences, and `dma_fence` locks (like the
    /// queue's own) are `spinlock_t`, which sleep on `PREEMPT_RT`. So it must **not** be called
    ///
    /// - with a `raw_spinlock_t` held or from `IRQF_NO_THREAD`/NMI context,
    /// - from the callback of a hard-mode hrtimer ([`RelativeHardMode`] and the other `*HardMode`
    ///   types), which runs in hard interrupt context even on `PREEMPT_RT`,
    /// - from a dma-fence callback (it takes `signal_lock`, which is held while this queue's
    ///   fences signal and their callbacks run).
    ///
    /// On kernels without `PREEMPT_RT`, ordinary interrupt handlers and non-hard hrtimers run in
    /// hard interrupt context, so this is a hard-IRQ-safe path there. Lockdep's wait-context
    /// check (`CONFIG_PROVE_RAW_LOCK_NESTING`) reports a call from a forbidden context on any
    /// kernel. Interrupts are disabled for at most eight fences at a time.
    ///
    /// [`RelativeMode`]: crate::time::hrtimer::RelativeMode
    /// [`RelativeHardMode`]: crate::time::hrtimer::RelativeHardMode
    pub fn complete(&self, seqno: u64, result: Result) {
        let inner = &self.inner;
        // The last job handed to the ring, if the report goes beyond the jobs handed to it
        // (or than the one whose `run()` executes).
        let mut beyond = None;
        // Checked in the report's first critical section: one round trip of the state lock.
        inner.as_arc_borrow().report_with(seqno, result, |st| {
            if seqno < st.handed {
                return;
            }
            let past = match st.running {
                Some(r) => {
                    // INVARIANT: `running` is `Some`, so `late` may be set. A report for a later
                    // job says `r` succeeded, unless it was reported otherwise.
                    if seqno == r {
                        st.cold.late = Some(result);
                    } else if st.cold.late.is_none() {
                        st.cold.late = Some(Ok(()));
                    }
                    seqno > r
                }
                None => true,
            };
            if past {
                beyond = Some(st.next_to_run - 1);
            }
        });
        if let Some(last) = beyond {
            if inner.clamp_warned.xchg(1, Relaxed) == 0 {
                pr_warn!(
                    "jobqueue (fence context {}): completion of seqno {} beyond the last job \
                     handed to the ring ({}) ignored\n",
                    inner.ctx.context(),
                    seqno,
                    last
                );
            }
        }
    }

    /// Waits until every job submitted so far has signalled, for at most `timeout`.
    ///
    /// This is what closing a client's file does before tearing its queues down: a client
    /// that exits normally gets its work done, one that is killed gets it cancelled. Returns
    /// `Ok(())` once everything signalled, `ETIMEDOUT` if `timeout` passed first, and `EINTR`
    /// without waiting if the current task is being killed (`SIGKILL` pending, or exiting
    /// because of it). The wait itself is not interruptible (it is bounded: by `timeout`, and
    /// by the driver's methods, which may not wait for anything unbounded).
    ///
    /// # Context
    ///
    /// Process context; sleeps. Not from a [`JobQueueDriver`] method, nor with a lock held
    /// that one takes: it takes the queue's driver lock for a moment, so it first waits for a
    /// `run()`, `timed_out()` or `stop()` in progress (outside `timeout`, and whatever the
    /// task's signals).
    pub fn flush(&self, timeout: Delta) -> Result {
        if current_being_killed() {
            return Err(EINTR);
        }
        match self.inner.last_fence() {
            Some(f) => f.wait_timeout(false, timeout).map(|_| ()),
            None => Ok(()),
        }
    }
}
