// SPDX-License-Identifier: GPL-2.0

//! Timeouts of the oldest running job.
//!
//! A delayed work item, on the timeout workqueue, fires when the oldest running job may have
//! exceeded the timeout, and asks the driver with the queue's driver lock held: so
//! [`JobQueueDriver::timed_out`] never runs concurrently with `run()` or `stop()`, and never
//! after `stop()`. Timeout work items of several queues on one ordered workqueue run one at a
//! time.

use super::{
    signal::Skip,
    Inner,
    JobData,
    JobQueue,
    JobQueueDriver,
    Phase,
    State,
    TimeoutAction, //
};
use crate::{
    dma_buf::{
        DriverFenceRef,
        SignallingSection, //
    },
    prelude::*,
    sync::{
        atomic::Relaxed,
        Arc, //
    },
    time::{
        msecs_to_jiffies,
        Delta,
        Instant,
        Monotonic, //
    },
    workqueue::DelayedWork,
};

impl<D: JobQueueDriver> State<D> {
    /// The done fence of the job `seqno` if it is in flight.
    fn in_flight(&self, seqno: u64) -> Option<DriverFenceRef<'_, JobData<D>>> {
        self.inflight
            .iter()
            .take_while(|e| e.as_fence().seqno() <= seqno)
            .find(|e| e.as_fence().seqno() == seqno)
    }

    /// The done fence of the oldest job handed to the ring that was run (not skipped).
    fn front_running(&self) -> Option<DriverFenceRef<'_, JobData<D>>> {
        self.inflight
            .iter()
            .take_while(|e| e.as_fence().seqno() < self.handed)
            .find(|e| e.skipped.load(Relaxed) == 0)
    }
}

impl<D: JobQueueDriver> Inner<D> {
    /// The oldest job handed to the ring that was run (not skipped), and when it started (its
    /// timeout runs from there). `now` is the current time.
    fn oldest_running(&self, now: i64) -> Option<(u64, i64)> {
        let st = self.state.lock();
        self.oldest_running_in(&st, now)
    }

    /// [`Self::oldest_running`], with the state lock held.
    fn oldest_running_in(&self, st: &State<D>, now: i64) -> Option<(u64, i64)> {
        st.front_running().map(|e| {
            let mut started = e.started.load(Relaxed);
            if started == 0 {
                // Handed behind a job that left the ring since, without the completion
                // path starting this one's timeout yet (it is between two batches of a
                // completion): it starts now.
                started = now;
                e.started.store(now, Relaxed);
            }
            (e.as_fence().seqno(), started)
        })
    }

    /// The timeout work item's body.
    pub(super) fn handle_timeout(self: &Arc<Self>) {
        {
            let _driver = self.driver_lock.lock();
            let st = self.state.lock();
            if st.phase != Phase::Live || st.parked_since.is_some() {
                // Dying or stopped: the submit work item takes over, and no timeout matters.
                // Parked: `unpark()` re-arms.
                return;
            }
            drop(st);
            self.check_timeout();
        }
        // A reset returned credits; a waiting job may run now.
        if self.state.lock().stats.pending > 0 {
            self.as_arc_borrow().kick();
        }
        self.arm_timeout();
    }

    /// Asks the driver about the oldest running job if it exceeded the timeout. Called with
    /// `driver_lock` held while the queue is live.
    ///
    /// Completion reports that arrive while `timed_out()` executes are held back for the
    /// timed-out job and the jobs after it, and applied once the driver's answer is: a ring
    /// that is reset and replays its jobs may report a replayed job done during the handler,
    /// and that report must not signal the job the driver then names guilty.
    fn check_timeout(self: &Arc<Self>) {
        let now = Instant::<Monotonic>::now().as_nanos();
        let seqno = {
            let mut st = self.state.lock();
            let Some((seqno, started)) = self.oldest_running_in(&st, now) else {
                return;
            };
            if now - started < self.timeout.as_nanos() {
                // Not yet: the caller re-arms the timer.
                return;
            }
            // INVARIANT: Set right before `timed_out()`, released right after it.
            st.cold.hold_from = Some(seqno);
            seqno
        };
        let action = {
            let _section = SignallingSection::begin();
            self.driver.timed_out(seqno)
        };
        let (guilty_marked, held) = {
            let mut st = self.state.lock();
            let marked = match action {
                TimeoutAction::ResetAndReplay { guilty } => self.mark_guilty(&st, guilty),
                _ => false,
            };
            // INVARIANT: `timed_out()` returned; what was held is applied below.
            st.cold.hold_from = None;
            (marked, st.cold.held.take())
        };
        // What the ring reported meanwhile happened: apply it first (a guilty job signals
        // `-ETIMEDOUT` whatever the reports said).
        if let Some((reported, result)) = held {
            self.as_arc_borrow().report(reported, result);
        }
        match action {
            TimeoutAction::Progressing => {
                let now = Instant::<Monotonic>::now().as_nanos();
                let st = self.state.lock();
                if let Some(e) = st.in_flight(seqno) {
                    e.started.store(now, Relaxed);
                }
            }
            TimeoutAction::RingReset => self.reset_all(seqno),
            TimeoutAction::ResetAndReplay { .. } if guilty_marked => {
                // The guilty job signals now if it is at the front.
                self.drain(|_, _| None);
                self.restart_front_timeout();
            }
            TimeoutAction::ResetAndReplay { guilty } => {
                pr_warn!(
                    "jobqueue (fence context {}): ResetAndReplay names job {}, which is not on \
                     the ring: resetting the ring\n",
                    self.ctx.context(),
                    guilty
                );
                crate::warn_on!(true);
                self.reset_all(seqno);
            }
            TimeoutAction::Dead => {
                self.as_arc_borrow().begin_teardown(Some(seqno));
            }
        }
    }

    /// Marks `guilty` to signal `-ETIMEDOUT` when it reaches the front, whatever later reports
    /// say. Returns false if it is not a job on the ring that has not signalled.
    fn mark_guilty(&self, st: &State<D>, guilty: u64) -> bool {
        if !(st.oldest..st.handed).contains(&guilty) {
            return false;
        }
        match st
            .in_flight(guilty)
            .filter(|e| e.skipped.load(Relaxed) == 0)
        {
            Some(e) => {
                e.skipped.store(Skip::Guilty.to_raw(), Relaxed);
                true
            }
            None => false,
        }
    }

    /// A [`TimeoutAction::RingReset`] for the timed-out job `seqno`.
    fn reset_all(&self, seqno: u64) {
        self.drain(|_, idx| Some(Err(if idx == seqno { ETIMEDOUT } else { ECANCELED })));
    }

    /// Gives the oldest running job a full timeout from now (its ring was reset and replays).
    fn restart_front_timeout(&self) {
        let now = Instant::<Monotonic>::now().as_nanos();
        let st = self.state.lock();
        if let Some(e) = st.front_running() {
            e.started.store(now, Relaxed);
        }
    }

    /// Arms the timeout for the oldest running job. Called by the work items.
    pub(super) fn arm_timeout(self: &Arc<Self>) {
        {
            let st = self.state.lock();
            if st.phase != Phase::Live || st.parked_since.is_some() {
                return;
            }
        }
        let now = Instant::<Monotonic>::now().as_nanos();
        let Some((_, started)) = self.oldest_running(now) else {
            return;
        };
        self.arm_timeout_in(Delta::from_nanos(self.timeout.as_nanos() - (now - started)));
    }

    /// Arms the timeout work item to fire in `left`, unless it is pending already.
    pub(super) fn arm_timeout_in(self: &Arc<Self>, left: Delta) {
        let ms = left.as_millis_ceil().clamp(1, i64::from(u32::MAX)) as u32;
        // A timer already pending fires no later than this one would: every later job started
        // later. The timeout work item re-arms when it fires early.
        // SAFETY: The armed work item owns a reference to `self`, which owns `timeout_wq`: the
        // workqueue outlives the timer and the work it queues.
        let _ = unsafe {
            self.timeout_wq
                .enqueue_delayed::<Self, 1>(self.clone(), msecs_to_jiffies(ms))
        };
    }
}

impl<D: JobQueueDriver> JobQueue<D> {
    /// Parks the queue: when this returns, no `run()` or `timed_out()` is executing, and
    /// neither is called again until [`JobQueue::unpark`]. This is `drm_sched_stop()` without
    /// the job handling, for suspend, a reset of a whole reset domain, or re-registering a
    /// firmware context.
    ///
    /// Submissions are still accepted and wait. Completion reports still signal jobs the ring
    /// was given. The timeout of the oldest running job is paused: after `unpark()` it runs
    /// for the time it had left, so a job does not time out because the device was suspended.
    /// Teardown still works: a parked queue that is killed or dropped calls
    /// [`JobQueueDriver::stop`] and cancels its jobs. Parking a parked queue does nothing.
    ///
    /// The queue's workqueues are not freezable: fence signalling work must go on while the
    /// system freezes tasks (suspend itself may wait for fences, to evict memory). A driver
    /// parks its queues from its suspend callback and unparks them on resume.
    ///
    /// # Context
    ///
    /// Process context; may sleep (waits for a `run()` or `timed_out()` in progress). Not from
    /// a [`JobQueueDriver`] method.
    pub fn park(&self) {
        let inner = &self.inner;
        let _driver = inner.driver_lock.lock();
        let mut st = inner.state.lock();
        if st.parked_since.is_none() {
            // INVARIANT: Set under `driver_lock`: no driver call is executing, and the work
            // items check this under `driver_lock` before each call.
            st.parked_since = Some(Instant::<Monotonic>::now().as_nanos());
        }
        drop(st);
        // A pending timer would only find the queue parked.
        DelayedWork::<Inner<D>, 1>::cancel(inner);
    }

    /// Unparks the queue ([`JobQueue::park`]): waiting jobs run again, and the oldest running
    /// job's timeout resumes with the time it had left. Unparking a queue that is not parked
    /// does nothing.
    ///
    /// # Context
    ///
    /// Callable wherever a `spinlock_t` may be taken.
    pub fn unpark(&self) {
        let inner = &self.inner;
        {
            let mut st = inner.state.lock();
            let Some(since) = st.parked_since.take() else {
                return;
            };
            let now = Instant::<Monotonic>::now().as_nanos();
            // Only the oldest running job's start counts for the timeout (later jobs restart
            // theirs when they reach the front): move it by the time it spent parked.
            // (A job whose timeout has not started yet, `started` 0, starts it when the
            // timeout work item looks.)
            if let Some(e) = st.front_running() {
                let started = e.started.load(Relaxed);
                if started != 0 {
                    e.started
                        .store(started + (now - started.max(since)), Relaxed);
                }
            }
        }
        inner.as_arc_borrow().kick();
        inner.arm_timeout();
    }

    /// Returns whether the queue is parked.
    pub fn is_parked(&self) -> bool {
        self.inner.state.lock().parked_since.is_some()
    }
}
