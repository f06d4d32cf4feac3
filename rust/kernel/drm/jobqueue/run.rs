// SPDX-License-Identifier: GPL-2.0

//! The run path: runs jobs, waits for dependencies, and stops the ring at teardown.
//!
//! One work item per queue does all of this, and `PreparedJob::submit` takes a ready job to
//! the ring itself when it can take the queue's driver lock (the direct run). Both run the
//! same steps with the driver lock held, which the timeout work item takes too, so these steps
//! and the driver's methods never overlap.

use super::{
    signal::Skip,
    trace::JobEvent,
    Head,
    Inner,
    JobQueueDriver,
    Phase,
    State, //
};
use crate::{
    dma_buf::{
        Fence,
        SignallingSection, //
    },
    prelude::*,
    sync::{
        atomic::Relaxed,
        lock::{
            spinlock::SpinLockIrqBackend,
            Guard, //
        },
        Arc,
        MutexGuard, //
    },
    time::{
        Instant,
        Monotonic, //
    },
};

impl<D: JobQueueDriver> Inner<D> {
    /// The submit work item's body, inside `section`.
    pub(super) fn process(self: &Arc<Self>, section: &mut SignallingSection) {
        self.apply_deadline();
        loop {
            let driver = self.driver_lock.lock();
            match self.step_locked(driver, None, section, false) {
                Step::Done | Step::Ran { .. } => {}
                Step::Dying => self.stop_ring(),
                Step::Wait | Step::Handoff => break,
            }
        }
        if self.state.lock().phase == Phase::Stopped {
            // The ring is stopped and every job that can be cancelled now is: `kill()` may
            // return. (Jobs still waiting for a dependency are cancelled when it signals.)
            self.stopped.complete_all();
        }
        self.arm_timeout();
    }

    /// Takes the deadline hints that arrived since the last pass, and tells the driver about
    /// the jobs on the ring they cover.
    fn apply_deadline(&self) {
        if self.deadline_last.load(Relaxed) == 0 && self.deadline_hinted.xchg(0, Relaxed) == 0 {
            // The common case: no deadline, none arrived.
            return;
        }
        // The deadline fields change only under the driver lock, where the run paths (the
        // work item and the direct run) read them.
        let _driver = self.driver_lock.lock();
        let (oldest, handed, live, parked) = {
            let st = self.state.lock();
            (
                st.oldest,
                st.handed,
                st.phase == Phase::Live,
                st.parked_since.is_some(),
            )
        };
        if parked {
            // No driver call while parked: keep the hint for the pass after `unpark()`.
            self.deadline_hinted.store(1, Relaxed);
            return;
        }
        let hint = self.deadline_hook.state.lock().hint.take();
        let (mut last, mut ns) = (
            self.deadline_last.load(Relaxed),
            self.deadline_ns.load(Relaxed),
        );
        if last < oldest {
            // Every job the last hint covered has signalled.
            last = 0;
        }
        if let Some((s, d)) = hint.filter(|(s, _)| *s >= oldest) {
            ns = if last == 0 { d } else { ns.min(d) };
            last = last.max(s);
            self.deadline_ns.store(ns, Relaxed);
            self.deadline_last.store(last, Relaxed);
            // `stop()` is called with the driver lock held: `live` read under it says it has
            // not been.
            if live && oldest < handed {
                if let Some(d) = self.deadline_for(oldest) {
                    self.driver.set_deadline(last.min(handed - 1), d);
                }
            }
        } else {
            self.deadline_last.store(last, Relaxed);
        }
    }

    /// The deadline of the job `seqno`, if a hint covers it. Only with the driver lock held.
    fn deadline_for(&self, seqno: u64) -> Option<Instant<Monotonic>> {
        if seqno > self.deadline_last.load(Relaxed) {
            return None;
        }
        // SAFETY: `deadline_ns` was set from an `Instant` (0 to `KTIME_MAX`) with `last`.
        Some(unsafe { Instant::from_ktime(self.deadline_ns.load(Relaxed)) })
    }

    /// The direct run of [`PreparedJob::submit`](super::PreparedJob::submit), which took
    /// `driver` with `try_lock` (no work item or other submitter holds it) and then `st`,
    /// inside `section`: takes the first pending job one step further right here, in the
    /// submitter's context, with no workqueue hop. Returns whether the work item is needed.
    pub(super) fn run_direct<'a>(
        self: &'a Arc<Self>,
        driver: MutexGuard<'a, Head<D>>,
        st: Guard<'a, State<D>, SpinLockIrqBackend>,
        section: &mut SignallingSection,
    ) -> bool {
        // `kill()` from the `run()` called here must not wait for the work item, which needs
        // the driver lock we hold.
        self.direct_owner
            .store(crate::task::Task::current_raw() as usize, Relaxed);
        let step = self.step_locked(driver, Some(st), section, true);
        self.direct_owner.store(0, Relaxed);
        match step {
            // Nothing pending, or the first job waits for a dependency (its callback queues
            // the work item), for credits (a completion does) or for `unpark()`.
            Step::Wait => false,
            // Unreachable: a direct step hands a dying queue to the work item.
            Step::Dying => true,
            // The job went to the ring. Jobs submitted meanwhile queued the work item
            // themselves if they found the lock taken; ours may have been behind one, which
            // the step saw when it marked ours handed.
            Step::Ran { more } => more,
            // A job was signalled without running (only a warned, unreachable case).
            Step::Done => {
                let st = self.state.lock();
                st.next_to_run != st.next_seqno
            }
            // A job that will not run (or a dying queue): the work item signals it and drops
            // it, outside the submitter's locks.
            Step::Handoff => true,
        }
    }

    /// Whether the current task is in a direct run of this queue (so holds the driver lock).
    pub(super) fn in_direct_run(&self) -> bool {
        self.direct_owner.load(Relaxed) == crate::task::Task::current_raw() as usize
    }

    /// Takes the first pending job one step further, with the driver lock held, and the state
    /// lock if `locked` (which saves the direct run a round trip of it): runs the job, or
    /// cancels it, or leaves it waiting for a dependency, for credits or for `unpark()`. A
    /// dying queue's ring is stopped first ([`Step::Dying`]). A `direct` step (from
    /// [`Inner::run_direct`]) only hands a job to `run()`: a job that will not run, or a
    /// dying queue, is left to the work item ([`Step::Handoff`]); a report that arrived
    /// during `run()` is applied right after it, as a `complete()` called by `run()` would be.
    fn step_locked<'a>(
        self: &'a Arc<Self>,
        mut driver: MutexGuard<'a, Head<D>>,
        locked: Option<Guard<'a, State<D>, SpinLockIrqBackend>>,
        section: &mut SignallingSection,
        direct: bool,
    ) -> Step {
        // A head job kept by an earlier step is polled before the state lock is taken; else
        // the first pending job is taken under it.
        let (mut node, mut held) = match (driver.take(), locked) {
            (Some(node), None) => (node, None),
            (head, locked) => {
                let mut st = match locked {
                    Some(st) => st,
                    None => self.state.lock(),
                };
                if st.phase == Phase::Dying {
                    *driver = head;
                    return if direct { Step::Handoff } else { Step::Dying };
                }
                let node = match head {
                    Some(node) => node,
                    None => {
                        let seqno = st.next_to_run;
                        if seqno == st.next_seqno {
                            return Step::Wait;
                        }
                        match st.pending.pop_front() {
                            Some(node) => node,
                            None => {
                                // Unreachable: `submit` appends every job it counts in
                                // `next_seqno`.
                                crate::warn_on!(true);
                                // INVARIANT: Skip the seqno; `drain` skips its missing entry.
                                st.next_to_run = seqno + 1;
                                st.handed = seqno + 1;
                                return Step::Done;
                            }
                        }
                    }
                };
                (node, Some(st))
            }
        };
        if (node.next_dep as usize) < node.deps.len() {
            // Dependencies: polled with no queue lock held.
            drop(held.take());
            let deadline = match self.deadline_last.load(Relaxed) {
                0 => None,
                _ => node
                    .fence
                    .as_ref()
                    .and_then(|f| self.deadline_for(f.as_fence().seqno())),
            };
            if !self.poll_deps(node.as_mut(), deadline) {
                *driver = Some(node);
                if !direct && self.state.lock().phase == Phase::Dying {
                    // Killed meanwhile: the ring is stopped first.
                    return Step::Dying;
                }
                return Step::Wait;
            }
        }
        let mut st = match held {
            Some(st) => st,
            None => {
                let st = self.state.lock();
                if st.phase == Phase::Dying {
                    // Killed since the job became the head: the ring is stopped first.
                    drop(st);
                    *driver = Some(node);
                    return if direct { Step::Handoff } else { Step::Dying };
                }
                st
            }
        };
        let n = node.as_mut().project();
        // Unreachable without a fence (see below): then no credits are checked.
        let credits = n.fence.as_ref().map_or(0, |f| f.credits);
        let seqno = st.next_to_run;
        let mut skip = match (st.phase, *n.dep_error) {
            (_, Some(e)) => Some(Skip::Dependency(e)),
            (Phase::Live, None) => None,
            (_, None) if seqno >= st.cold.dead_from => Some(Skip::AfterDeath),
            (_, None) => Some(Skip::Cancelled),
        };
        if direct && skip.is_some() {
            // The job is not run, and is dropped by the work item: outside the submitter's
            // locks, as `JobQueueDriver::Job` promises.
            drop(st);
            *driver = Some(node);
            return Step::Handoff;
        }
        if skip.is_none()
            && (st.parked_since.is_some() || credits > self.capacity - st.credits_in_use)
        {
            // Parked (unpark kicks us), or waiting for credits (completions return credits
            // and kick us).
            drop(st);
            *driver = Some(node);
            return Step::Wait;
        }
        let job = n.job.take();
        if skip.is_none() && job.is_none() {
            // Unreachable: only this function takes the job.
            crate::warn_on!(true);
            skip = Some(Skip::Dependency(EINVAL));
        }
        let Some(fence) = n.fence.take() else {
            // Unreachable: `submit` sets it before the node becomes pending.
            crate::warn_on!(true);
            st.next_to_run = seqno + 1;
            st.handed = seqno + 1;
            st.stats.pending -= 1;
            st.stats.errored += 1;
            drop(st);
            drop(driver);
            // Outside the locks and the signalling section, as below.
            section.suspend(|| {
                drop(job);
                drop(node);
            });
            return Step::Done;
        };
        let done: *const Fence = fence.as_fence();
        match skip {
            Some(s) => fence.data().skipped.store(s.to_raw(), Relaxed),
            // The clock is read only for a job that finds the ring idle. A job handed behind
            // one still on the ring gets the ring when that one leaves it: its `started` stays
            // 0 until the completion path (or, if that one left during `run()`, the end of
            // this step) stamps it, and its `ran_at` stays 0 (its ring time runs from the
            // `last_finish` of the job before it).
            None if st.oldest == seqno => {
                let now = Instant::<Monotonic>::now().as_nanos();
                fence.data().started.store(now, Relaxed);
                fence.data().ran_at.store(now, Relaxed);
            }
            None => {}
        }
        // INVARIANT: The job moves from pending to in flight, behind the jobs before it.
        st.inflight.push_back(fence);
        st.next_to_run = seqno + 1;
        st.stats.pending -= 1;
        st.stats.in_flight += 1;
        let (not_run, step) = match (skip, job) {
            (None, Some(job)) => {
                st.credits_in_use += credits;
                // INVARIANT: `run()` executes for `seqno` until `handed` passes it.
                st.running = Some(seqno);
                // The next pending job becomes the head in this critical section (the head was
                // taken above): the next step polls its dependencies before taking the lock.
                *driver = st.pending.pop_front();
                self.trace_job(JobEvent::Run, seqno, st.stats.pending, st.credits_in_use);
                drop(st);
                // SAFETY: `node.keep` holds a reference to the fence until the end of this
                // step (and no path signals it before `handed` passes `seqno`, after `run()`
                // returns: type invariant of `State`).
                let done = unsafe { &*done };
                self.driver.run(job, seqno, done);
                if let Some(d) = self.deadline_for(seqno) {
                    self.driver.set_deadline(seqno, d);
                }
                let (late, first, more) = {
                    let mut st = self.state.lock();
                    // INVARIANT: Handed; `late` is cleared with `running`.
                    st.handed = seqno + 1;
                    st.running = None;
                    let first = st.oldest == seqno;
                    if first {
                        // If the job was handed behind one that left the ring during `run()`,
                        // the completion path did not stamp it (it was not handed yet): it
                        // got the ring, and its timeout starts, when that one left.
                        if let Some(e) = st.inflight.front() {
                            if e.started.load(Relaxed) == 0 {
                                e.started.store(st.last_finish, Relaxed);
                            }
                        }
                    }
                    (st.cold.late.take(), first, st.next_to_run != st.next_seqno)
                };
                if first {
                    // The ring was idle: its timeout starts now, not when this pass ends. The
                    // queue was live and not parked when `run()` was called (a kill since then
                    // finds a timeout that does nothing; parking waits for our driver lock).
                    self.arm_timeout_in(self.timeout);
                }
                if let Some(res) = late {
                    self.as_arc_borrow().report(seqno, res);
                }
                (None, Step::Ran { more })
            }
            (_, job) => {
                // INVARIANT: Not run: handed at once, it signals its error at the front.
                st.handed = seqno + 1;
                drop(st);
                self.drain(|_, _| None);
                (job, Step::Done)
            }
        };
        drop(driver);
        // Outside the signalling section and the locks: dropping a job that did not run does
        // whatever the driver's job does on drop; dropping the node puts the dependencies.
        section.suspend(|| {
            drop(not_run);
            drop(node);
        });
        step
    }
}

/// What one step of the run path did.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    /// A job was signalled without running (cancelled, or a failed dependency): go on.
    Done,
    /// A job was handed to the ring: go on. `more`: other jobs were pending when it was
    /// marked handed (one lock round trip fewer for the direct run, which asks).
    Ran { more: bool },
    /// Nothing to do until a dependency, a completion or `unpark()` queues the work item.
    Wait,
    /// A direct step stopped short: the work item must go on.
    Handoff,
    /// The queue is dying: the work item stops the ring before it goes on.
    Dying,
}
