// SPDX-License-Identifier: GPL-2.0

//! The mock hardware and the helpers the JobQueue suites share.

use super::*;
use crate::{
    impl_has_hr_timer,
    sync::ArcBorrow,
    time::{
        hrtimer::{
            ArcHrTimerHandle,
            HrTimer,
            HrTimerCallback,
            HrTimerCallbackContext,
            HrTimerPointer,
            HrTimerRestart,
            RelativeMode, //
        },
        Instant,
        Monotonic, //
    },
};

/// How the mock ring finishes jobs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Each job completes this many ns after it reached the ring, from an hrtimer (see the
    /// module documentation for its mode).
    Timed(i64),
    /// Jobs complete only when the test calls [`MockHw::advance`].
    Manual,
}

/// Fault-injection checks of the "no allocation after submit" test, done by the worker that
/// runs the jobs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum AllocCheck {
    None,
    /// Arm `fail_nth` on the worker: the next allocation of this thread would fail.
    Arm,
    /// Check that nothing allocated since the last job ran, and re-arm.
    Check,
    /// Check, then disarm.
    CheckDisarm,
}

/// A job as the mock driver sees it.
pub(super) struct MockJob {
    /// References to the job's dependencies, to check that they signalled before it runs.
    pub(super) deps: KVec<ARef<Fence>>,
    /// The ring reports an error (`EIO`) for this job.
    pub(super) fail: bool,
    pub(super) credits: u32,
    pub(super) alloc_check: AllocCheck,
}

impl MockJob {
    pub(super) fn new(credits: u32) -> Self {
        Self {
            deps: KVec::new(),
            fail: false,
            credits,
            alloc_check: AllocCheck::None,
        }
    }
}

#[derive(Clone, Copy, Default)]
pub(super) struct Slot {
    pub(super) seqno: u64,
    pub(super) due: i64,
    pub(super) credits: u32,
    pub(super) fail: bool,
}

pub(super) struct HwState {
    pub(super) ring: KVec<Slot>,
    pub(super) head: usize,
    pub(super) len: usize,
    pub(super) mode: Mode,
    pub(super) credits: u32,
    pub(super) timer_armed: bool,
    /// Set by [`MockHw::detach`]: the timer is not started again.
    pub(super) detached: bool,
    pub(super) last_seqno: u64,
    pub(super) timeout_action: TimeoutAction,
}

/// The mock hardware ring.
#[pin_data]
pub(super) struct MockHw {
    /// The completion interrupt of [`Mode::Timed`].
    #[pin]
    pub(super) timer: HrTimer<MockHw>,
    /// The timer while it may be armed: the handle holds a reference to the ring, which
    /// [`MockHw::detach`] gives back.
    #[pin]
    pub(super) timer_handle: SpinLockIrq<Option<ArcHrTimerHandle<MockHw>>>,
    #[pin]
    pub(super) state: SpinLockIrq<HwState>,
    /// The queue this ring belongs to; the interrupt only borrows it, under this lock.
    #[pin]
    pub(super) queue: SpinLockIrq<Option<Arc<JobQueue<MockBackend>>>>,
    /// Jobs handed to the ring.
    pub(super) ran: Atomic<u64>,
    /// Broken invariants seen by the ring (a job ran before its dependencies, out of order, or
    /// something allocated on the job path).
    pub(super) violations: Atomic<u32>,
    /// Highest number of credits in use at once.
    pub(super) max_credits: Atomic<u32>,
    /// Timeouts reported by the queue.
    pub(super) timeouts: Atomic<u32>,
    /// Set when the queue stopped the ring: `run()` must not be called afterwards.
    pub(super) stopped: Atomic<u32>,
}

impl_has_hr_timer! {
    impl HasHrTimer<Self> for MockHw {
        mode: RelativeMode<Monotonic>, field: self.timer
    }
}

/// The completion interrupt, in the default (not hard) mode.
impl HrTimerCallback for MockHw {
    type Pointer<'a> = Arc<Self>;

    fn run(this: ArcBorrow<'_, Self>, mut ctx: HrTimerCallbackContext<'_, Self>) -> HrTimerRestart {
        let now = Instant::<Monotonic>::now();
        while let Some(s) = this.pop(Some(now.as_nanos())) {
            this.report(s);
        }
        let mut st = this.state.lock();
        if st.len == 0 || !matches!(st.mode, Mode::Timed(_)) {
            st.timer_armed = false;
            return HrTimerRestart::NoRestart;
        }
        let next = st.ring[st.head].due;
        drop(st);
        ctx.forward(now, Delta::from_nanos((next - now.as_nanos()).max(1000)));
        HrTimerRestart::Restart
    }
}

impl MockHw {
    pub(super) fn new(mode: Mode, slots: usize) -> Result<Arc<Self>> {
        let mut ring = KVec::with_capacity(slots, GFP_KERNEL)?;
        ring.resize(slots, Slot::default(), GFP_KERNEL)?;
        Arc::pin_init(
            pin_init!(Self {
                timer <- HrTimer::new(),
                timer_handle <- new_spinlock_irq!(None),
                state <- new_spinlock_irq!(HwState {
                    ring,
                    head: 0,
                    len: 0,
                    mode,
                    credits: 0,
                    timer_armed: false,
                    detached: false,
                    last_seqno: 0,
                    timeout_action: TimeoutAction::RingReset,
                }),
                queue <- new_spinlock_irq!(None),
                ran: Atomic::new(0),
                violations: Atomic::new(0),
                max_credits: Atomic::new(0),
                timeouts: Atomic::new(0),
                stopped: Atomic::new(0),
            }),
            GFP_KERNEL,
        )
    }

    pub(super) fn attach(&self, q: Arc<JobQueue<MockBackend>>) {
        *self.queue.lock() = Some(q);
    }

    /// Stops the interrupt and gives the queue back, breaking the queue -> ring -> queue cycle.
    pub(super) fn detach(&self) -> Option<Arc<JobQueue<MockBackend>>> {
        self.state.lock().detached = true;
        // Dropping the handle cancels the timer (waiting for a running callback); not under
        // the lock. A `run()` that started it meanwhile sees `detached` and drops it itself.
        let handle = self.timer_handle.lock().take();
        drop(handle);
        self.queue.lock().take()
    }

    pub(super) fn set_timeout_action(&self, a: TimeoutAction) {
        self.state.lock().timeout_action = a;
    }

    pub(super) fn running(&self) -> usize {
        self.state.lock().len
    }

    /// Waits until at least `n` jobs are on the ring; false after about `ms` milliseconds.
    pub(super) fn wait_running(&self, n: usize, ms: u32) -> bool {
        for _ in 0..ms {
            if self.running() >= n {
                return true;
            }
            fsleep(Delta::from_millis(1));
        }
        self.running() >= n
    }

    pub(super) fn pop(&self, now: Option<i64>) -> Option<Slot> {
        let mut st = self.state.lock();
        if st.len == 0 {
            return None;
        }
        let s = st.ring[st.head];
        if let Some(now) = now {
            if s.due > now {
                return None;
            }
        }
        let cap = st.ring.len();
        st.head = (st.head + 1) % cap;
        st.len -= 1;
        st.credits -= s.credits;
        Some(s)
    }

    pub(super) fn report(&self, s: Slot) {
        if let Some(q) = self.queue.lock().as_ref() {
            q.complete(s.seqno, if s.fail { Err(EIO) } else { Ok(()) });
        }
    }

    /// Manual advance: the ring finishes its next `n` jobs.
    pub(super) fn advance(&self, n: usize) -> usize {
        let mut done = 0;
        while done < n {
            let Some(s) = self.pop(None) else {
                break;
            };
            self.report(s);
            done += 1;
        }
        done
    }

    /// A hardware reset: the ring forgets its jobs.
    pub(super) fn reset(&self) {
        let mut st = self.state.lock();
        st.len = 0;
        st.credits = 0;
    }

    pub(super) fn violation(&self) {
        self.violations.fetch_add(1, Relaxed);
    }
}

/// The mock driver: puts jobs on the [`MockHw`] ring.
pub(super) struct MockBackend {
    pub(super) hw: Arc<MockHw>,
}

impl JobQueueDriver for MockBackend {
    type Job = MockJob;

    fn run(&self, job: MockJob, seqno: u64, done: &Fence) {
        let hw = &self.hw;
        if matches!(job.alloc_check, AllocCheck::Check | AllocCheck::CheckDisarm) {
            if fail_nth::remaining() != 1 {
                hw.violation();
            }
        }
        // No job runs before its dependencies signalled. (A failed dependency that was
        // deduplicated away in favour of a later fence of its timeline may show up here.)
        for d in job.deps.iter() {
            if d.status().is_none() {
                hw.violation();
            }
        }
        if done.is_signaled() || done.seqno() != seqno || hw.stopped.load(Relaxed) != 0 {
            hw.violation();
        }
        let start_timer = {
            let mut st = hw.state.lock();
            if seqno <= st.last_seqno || st.len == st.ring.len() {
                hw.violations.fetch_add(1, Relaxed);
            }
            st.last_seqno = seqno;
            let cap = st.ring.len();
            let tail = (st.head + st.len) % cap;
            let now = Instant::<Monotonic>::now().as_nanos();
            let due = match st.mode {
                Mode::Timed(ns) => now + ns,
                Mode::Manual => i64::MAX,
            };
            st.ring[tail] = Slot {
                seqno,
                due,
                credits: job.credits,
                fail: job.fail,
            };
            st.len += 1;
            st.credits += job.credits;
            if st.credits > hw.max_credits.load(Relaxed) {
                hw.max_credits.store(st.credits, Relaxed);
            }
            let start = matches!(st.mode, Mode::Timed(_)) && !st.timer_armed && !st.detached;
            if start {
                st.timer_armed = true;
            }
            start.then_some(due - now)
        };
        hw.ran.fetch_add(1, Relaxed);
        if let Some(after) = start_timer {
            // The previous handle first: dropping it cancels the timer, which is idle (or
            // returning from its last callback) since `timer_armed` was clear. `run()` calls
            // are serialised, so no other start races with this one. Handles are dropped
            // outside the lock: cancelling waits for a running callback.
            let old = hw.timer_handle.lock().take();
            drop(old);
            let handle = hw.clone().start(Delta::from_nanos(after.max(0)));
            *hw.timer_handle.lock() = Some(handle);
            if hw.state.lock().detached {
                // `detach()` ran meanwhile and may have missed this handle, which holds a
                // reference to the ring: give it back.
                let handle = hw.timer_handle.lock().take();
                drop(handle);
            }
        }
        let arm = match job.alloc_check {
            AllocCheck::None => None,
            AllocCheck::Arm | AllocCheck::Check => Some(1),
            AllocCheck::CheckDisarm => Some(0),
        };
        // Dropping the job (and its dependency references) must not allocate either.
        drop(job);
        if let Some(n) = arm {
            fail_nth::arm(n);
        }
    }

    fn timed_out(&self, _seqno: u64) -> TimeoutAction {
        self.hw.timeouts.fetch_add(1, Relaxed);
        let a = self.hw.state.lock().timeout_action;
        if a != TimeoutAction::Progressing {
            self.hw.reset();
        }
        a
    }

    fn stop(&self) {
        if self.hw.stopped.xchg(1, Relaxed) != 0 {
            // Called twice.
            self.hw.violation();
        }
        self.hw.reset();
    }
}

/// A queue with its mock ring. Dropping it detaches the ring and tears the queue down.
pub(super) struct Rig {
    pub(super) hw: Arc<MockHw>,
    pub(super) q: Arc<JobQueue<MockBackend>>,
}

impl Rig {
    pub(super) fn new(mode: Mode, capacity: u32, timeout_ms: i64) -> Result<Self> {
        let hw = MockHw::new(mode, 1024.max(capacity as usize))?;
        let q = JobQueue::new(
            MockBackend { hw: hw.clone() },
            c"jobqueue-test",
            c"mock-ring",
            capacity,
            Delta::from_millis(timeout_ms),
            &test_wqs()?,
        )?;
        let q = Arc::new(q, GFP_KERNEL)?;
        hw.attach(q.clone());
        Ok(Self { hw, q })
    }

    pub(super) fn job(&self, credits: u32) -> Result<PreparedJob<MockBackend>> {
        self.q.prepare(MockJob::new(credits), credits)
    }

    pub(super) fn job_with(&self, job: MockJob) -> Result<PreparedJob<MockBackend>> {
        let c = job.credits;
        self.q.prepare(job, c)
    }

    /// Submits a job with `deps` as dependencies (also handed to the ring for checking).
    pub(super) fn submit_deps(&self, credits: u32, deps: &[ARef<Fence>]) -> Result<ARef<Fence>> {
        let mut job = MockJob::new(credits);
        for d in deps {
            job.deps.push(d.clone(), GFP_KERNEL)?;
        }
        let mut p = self.job_with(job)?;
        for d in deps {
            p.add_dependency(d.clone())?;
        }
        Ok(p.submit())
    }

    pub(super) fn check_balance(&self) {
        let s = self.q.stats();
        assert_eq!(
            s.submitted,
            s.completed + s.errored + s.timed_out + s.cancelled + s.in_flight + s.pending
        );
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        drop(self.hw.detach());
    }
}

/// Workqueues for the queues of one test.
pub(super) fn test_wqs() -> Result<JobQueueWorkqueues> {
    JobQueueWorkqueues::new(c"jobqueue-test")
}

pub(super) fn wait(f: &Fence) -> Result {
    f.wait_timeout(false, Delta::from_millis(10_000))
        .map(|_| ())
}

/// Records the order in which fences signal.
pub(super) struct Order {
    pub(super) seqno: u64,
    pub(super) last: Arc<Atomic<u64>>,
    pub(super) bad: Arc<Atomic<u32>>,
    pub(super) count: Arc<Atomic<u64>>,
}

impl FenceCb for Order {
    fn called(self) {
        if self.last.xchg(self.seqno, Relaxed) > self.seqno {
            self.bad.fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
    }
}

pub(super) struct OrderCheck {
    pub(super) last: Arc<Atomic<u64>>,
    pub(super) bad: Arc<Atomic<u32>>,
    pub(super) count: Arc<Atomic<u64>>,
    pub(super) regs: KVec<Pin<KBox<FenceCbRegistration<Order>>>>,
}

impl OrderCheck {
    pub(super) fn new() -> Result<Self> {
        Ok(Self {
            last: Arc::new(Atomic::new(0), GFP_KERNEL)?,
            bad: Arc::new(Atomic::new(0), GFP_KERNEL)?,
            count: Arc::new(Atomic::new(0), GFP_KERNEL)?,
            regs: KVec::new(),
        })
    }

    pub(super) fn watch(&mut self, f: &ARef<Fence>) -> Result {
        let cb = Order {
            seqno: f.seqno(),
            last: self.last.clone(),
            bad: self.bad.clone(),
            count: self.count.clone(),
        };
        match KBox::try_pin_init(FenceCbRegistration::new(f.clone(), cb), GFP_KERNEL) {
            Ok(r) => self.regs.push(r, GFP_KERNEL)?,
            Err(CallbackError::AlreadySignaled(cb)) => cb.called(),
            Err(CallbackError::Other(e)) => return Err(e),
        }
        Ok(())
    }
}

/// A foreign timeline, standing in for another driver's fences.
pub(super) fn foreign() -> Result<Arc<FenceCtx>> {
    FenceCtx::new(c"foreign-driver", c"foreign")
}

pub(super) fn foreign_fence(ctx: &Arc<FenceCtx>) -> Result<DriverFence<()>> {
    Ok(ctx.new_fence(DriverFenceAllocation::new((), GFP_KERNEL)?))
}

/// Whether `fail_nth` can make a `GFP_KERNEL` allocation fail; if not, marks the running case
/// skipped. By default failslab and fail_page_alloc ignore allocations that may sleep
/// (`ignore-gfp-wait=Y`), and then neither the sweeps below nor the no-allocation checks would
/// see the allocations they look for: such a case tested nothing and must not pass.
pub(super) fn gfp_kernel_faults() -> bool {
    let on = fail_nth::gfp_kernel_injectable();
    if !on {
        crate::kunit::skip(c"GFP_KERNEL fault injection is off (ignore-gfp-wait=Y)");
    }
    on
}

/// A small deterministic PRNG (xorshift64*), so that failures reproduce.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
