// SPDX-License-Identifier: GPL-2.0

//! Timeouts of the oldest running job.
//!
//! A delayed work item fires when the oldest running job may have exceeded the timeout. It
//! only flags that and queues the queue's work item, which asks the driver: so
//! [`JobQueueDriver::timed_out`] never runs concurrently with `run()` or `stop()`.

use super::{
    Inner,
    JobQueueDriver,
    Phase,
    TimeoutAction, //
};
use crate::{
    dma_buf::SignallingSection,
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
};

impl<D: JobQueueDriver> Inner<D> {
    /// The oldest job handed to the ring that was run (not skipped), and when it started.
    fn oldest_running(&self) -> Option<(u64, i64)> {
        let st = self.state.lock();
        let xa = self.inflight.lock();
        (st.oldest..st.handed).find_map(|idx| {
            xa.get(idx as usize)
                .filter(|e| e.skipped.load(Relaxed) == 0)
                .map(|e| (idx, e.started.load(Relaxed)))
        })
    }

    /// Asks the driver about the oldest running job if it exceeded the timeout. Called by the
    /// work item while the queue is live.
    pub(super) fn check_timeout(self: &Arc<Self>) {
        let Some((seqno, started)) = self.oldest_running() else {
            return;
        };
        let now = Instant::<Monotonic>::now().as_nanos();
        if now - started < self.timeout.as_nanos() {
            // Not yet: the work item re-arms the timer.
            return;
        }
        let action = {
            let _section = SignallingSection::begin();
            self.driver.timed_out(seqno)
        };
        match action {
            TimeoutAction::Progressing => {
                let now = Instant::<Monotonic>::now().as_nanos();
                let _st = self.state.lock();
                if let Some(e) = self.inflight.lock().get(seqno as usize) {
                    e.started.store(now, Relaxed);
                }
            }
            TimeoutAction::RingReset => {
                self.drain(|idx| Some(Err(if idx == seqno { ETIMEDOUT } else { ECANCELED })));
            }
            TimeoutAction::Dead => {
                self.as_arc_borrow().begin_teardown(Some(seqno));
            }
        }
    }

    /// Arms the timeout for the oldest running job. Called by the work item at the end.
    pub(super) fn arm_timeout(self: &Arc<Self>) {
        if self.state.lock().phase != Phase::Live {
            return;
        }
        let Some((_, started)) = self.oldest_running() else {
            return;
        };
        let now = Instant::<Monotonic>::now().as_nanos();
        let left = self.timeout.as_nanos() - (now - started);
        let ms = Delta::from_nanos(left)
            .as_millis_ceil()
            .clamp(1, i64::from(u32::MAX)) as u32;
        // A timer already pending fires no later than this one would: every later job started
        // later. The work item re-arms when it fires early.
        // SAFETY: The armed work item owns a reference to `self`, which owns `wq`: the
        // workqueue outlives the timer and the work it queues.
        let _ = unsafe {
            self.wq
                .enqueue_delayed::<Arc<Self>, 1>(self.clone(), msecs_to_jiffies(ms))
        };
    }
}
