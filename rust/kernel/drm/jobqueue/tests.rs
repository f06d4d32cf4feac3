// SPDX-License-Identifier: GPL-2.0

//! KUnit tests for the JobQueue, with mock hardware.
//!
//! The mock hardware follows drm_sched's mock scheduler: a ring that "executes" jobs and
//! raises completions from an hrtimer, or that the test advances by hand. The hrtimer is in
//! the default (not hard) mode: it runs in hard interrupt context without `PREEMPT_RT` and in
//! softirq context with it, which is where [`JobQueue::complete`] may be called from.
//! `rust_jobqueue` ports the drm_sched scenarios and adds dependency, timeout, teardown and
//! no-allocation cases; `rust_jobqueue_stress` runs 64k jobs in flight and a randomized
//! dependency DAG of 100k jobs across four queues; `rust_jobqueue_lifecycle` (in
//! `tests/lifecycle.rs`) races the lifecycle rules on several CPUs.

use super::*;
use crate::{
    bindings,
    dma_buf::{
        kunit_support::lockdep_enabled,
        CallbackError,
        DriverFence,
        DriverFenceAllocation,
        FenceCb,
        FenceCbRegistration, //
    },
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        new_mutex,
        new_spinlock_irq, //
    },
    time::delay::fsleep,
    types::Opaque,
};
use core::ptr;

mod lifecycle;

/// How the mock ring finishes jobs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Each job completes this many ns after it reached the ring, from an hrtimer (see the
    /// module documentation for its mode).
    Timed(i64),
    /// Jobs complete only when the test calls [`MockHw::advance`].
    Manual,
}

/// Fault-injection checks of the "no allocation after submit" test, done by the worker that
/// runs the jobs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AllocCheck {
    None,
    /// Arm `fail_nth` on the worker: the next allocation of this thread would fail.
    Arm,
    /// Check that nothing allocated since the last job ran, and re-arm.
    Check,
    /// Check, then disarm.
    CheckDisarm,
}

/// A job as the mock driver sees it.
struct MockJob {
    /// References to the job's dependencies, to check that they signalled before it runs.
    deps: KVec<ARef<Fence>>,
    /// The ring reports an error (`EIO`) for this job.
    fail: bool,
    credits: u32,
    alloc_check: AllocCheck,
}

impl MockJob {
    fn new(credits: u32) -> Self {
        Self {
            deps: KVec::new(),
            fail: false,
            credits,
            alloc_check: AllocCheck::None,
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Slot {
    seqno: u64,
    due: i64,
    credits: u32,
    fail: bool,
}

struct HwState {
    ring: KVec<Slot>,
    head: usize,
    len: usize,
    mode: Mode,
    credits: u32,
    timer_armed: bool,
    last_seqno: u64,
    timeout_action: TimeoutAction,
}

/// The mock hardware ring.
#[pin_data(PinnedDrop)]
struct MockHw {
    #[pin]
    timer: Opaque<bindings::hrtimer>,
    #[pin]
    state: SpinLockIrq<HwState>,
    /// The queue this ring belongs to; the interrupt only borrows it, under this lock.
    #[pin]
    queue: SpinLockIrq<Option<Arc<JobQueue<MockBackend>>>>,
    /// Jobs handed to the ring.
    ran: Atomic<u64>,
    /// Broken invariants seen by the ring (a job ran before its dependencies, out of order, or
    /// something allocated on the job path).
    violations: Atomic<u32>,
    /// Highest number of credits in use at once.
    max_credits: Atomic<u32>,
    /// Timeouts reported by the queue.
    timeouts: Atomic<u32>,
    /// Set when the queue stopped the ring: `run()` must not be called afterwards.
    stopped: Atomic<u32>,
}

// SAFETY: The timer is only used through the C hrtimer API, which serialises it; the rest is
// behind locks or atomics.
unsafe impl Send for MockHw {}
// SAFETY: As above.
unsafe impl Sync for MockHw {}

#[pinned_drop]
impl PinnedDrop for MockHw {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: The timer was set up in `new`; cancelling waits for a running callback.
        unsafe { bindings::hrtimer_cancel(self.timer.get()) };
    }
}

impl MockHw {
    fn new(mode: Mode, slots: usize) -> Result<Arc<Self>> {
        let mut ring = KVec::with_capacity(slots, GFP_KERNEL)?;
        ring.resize(slots, Slot::default(), GFP_KERNEL)?;
        Arc::pin_init(
            pin_init!(Self {
                // SAFETY: `hrtimer_setup` initialises the timer in place.
                timer <- Opaque::ffi_init(|t: *mut bindings::hrtimer| unsafe {
                    bindings::hrtimer_setup(
                        t,
                        Some(Self::irq),
                        bindings::CLOCK_MONOTONIC as i32,
                        bindings::hrtimer_mode_HRTIMER_MODE_REL,
                    )
                }),
                state <- new_spinlock_irq!(HwState {
                    ring,
                    head: 0,
                    len: 0,
                    mode,
                    credits: 0,
                    timer_armed: false,
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

    fn attach(&self, q: Arc<JobQueue<MockBackend>>) {
        *self.queue.lock() = Some(q);
    }

    /// Stops the interrupt and gives the queue back, breaking the queue -> ring -> queue cycle.
    fn detach(&self) -> Option<Arc<JobQueue<MockBackend>>> {
        // SAFETY: The timer was set up in `new`.
        unsafe { bindings::hrtimer_cancel(self.timer.get()) };
        self.queue.lock().take()
    }

    fn set_timeout_action(&self, a: TimeoutAction) {
        self.state.lock().timeout_action = a;
    }

    fn running(&self) -> usize {
        self.state.lock().len
    }

    /// Waits until at least `n` jobs are on the ring; false after about `ms` milliseconds.
    fn wait_running(&self, n: usize, ms: u32) -> bool {
        for _ in 0..ms {
            if self.running() >= n {
                return true;
            }
            fsleep(Delta::from_millis(1));
        }
        self.running() >= n
    }

    fn pop(&self, now: Option<i64>) -> Option<Slot> {
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

    fn report(&self, s: Slot) {
        if let Some(q) = self.queue.lock().as_ref() {
            q.complete(s.seqno, if s.fail { Err(EIO) } else { Ok(()) });
        }
    }

    /// Manual advance: the ring finishes its next `n` jobs.
    fn advance(&self, n: usize) -> usize {
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
    fn reset(&self) {
        let mut st = self.state.lock();
        st.len = 0;
        st.credits = 0;
    }

    /// The completion interrupt.
    ///
    /// # Safety
    ///
    /// Only called by the hrtimer core, for the `timer` of a live `MockHw`.
    unsafe extern "C" fn irq(t: *mut bindings::hrtimer) -> bindings::hrtimer_restart {
        let t = Opaque::cast_from(t);
        // SAFETY: The timer is the `timer` field of a live `MockHw` (it is cancelled on drop).
        let this = unsafe { &*crate::container_of!(t, MockHw, timer) };
        // SAFETY: `ktime_get` is always safe to call.
        let now = unsafe { bindings::ktime_get() };
        while let Some(s) = this.pop(Some(now)) {
            this.report(s);
        }
        let mut st = this.state.lock();
        if st.len == 0 || !matches!(st.mode, Mode::Timed(_)) {
            st.timer_armed = false;
            return bindings::hrtimer_restart::HRTIMER_NORESTART;
        }
        let next = st.ring[st.head].due;
        drop(st);
        // SAFETY: We are the timer's callback; forwarding it is allowed here.
        unsafe { bindings::hrtimer_forward(this.timer.get(), now, (next - now).max(1000)) };
        bindings::hrtimer_restart::HRTIMER_RESTART
    }

    fn violation(&self) {
        self.violations.fetch_add(1, Relaxed);
    }
}

/// The mock driver: puts jobs on the [`MockHw`] ring.
struct MockBackend {
    hw: Arc<MockHw>,
}

impl JobQueueDriver for MockBackend {
    type Job = MockJob;

    fn run(&self, job: MockJob, seqno: u64, done: &Fence) {
        let hw = &self.hw;
        if matches!(job.alloc_check, AllocCheck::Check | AllocCheck::CheckDisarm) {
            // SAFETY: Reads this task's fault injection countdown.
            if unsafe { bindings::current_fail_nth() } != 1 {
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
            // SAFETY: `ktime_get` is always safe to call.
            let now = unsafe { bindings::ktime_get() };
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
            let start = matches!(st.mode, Mode::Timed(_)) && !st.timer_armed;
            if start {
                st.timer_armed = true;
            }
            start.then_some(due - now)
        };
        hw.ran.fetch_add(1, Relaxed);
        if let Some(after) = start_timer {
            // SAFETY: The timer was set up; it lives as long as `hw`, which we hold.
            unsafe {
                bindings::hrtimer_start_range_ns(
                    hw.timer.get(),
                    after.max(0),
                    0,
                    bindings::hrtimer_mode_HRTIMER_MODE_REL,
                )
            };
        }
        let arm = match job.alloc_check {
            AllocCheck::None => None,
            AllocCheck::Arm | AllocCheck::Check => Some(1),
            AllocCheck::CheckDisarm => Some(0),
        };
        // Dropping the job (and its dependency references) must not allocate either.
        drop(job);
        if let Some(n) = arm {
            // SAFETY: Sets this task's fault injection countdown.
            unsafe { bindings::set_current_fail_nth(n) };
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
struct Rig {
    hw: Arc<MockHw>,
    q: Arc<JobQueue<MockBackend>>,
}

impl Rig {
    fn new(mode: Mode, capacity: u32, timeout_ms: i64) -> Result<Self> {
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

    fn job(&self, credits: u32) -> Result<PreparedJob<MockBackend>> {
        self.q.prepare(MockJob::new(credits), credits)
    }

    fn job_with(&self, job: MockJob) -> Result<PreparedJob<MockBackend>> {
        let c = job.credits;
        self.q.prepare(job, c)
    }

    /// Submits a job with `deps` as dependencies (also handed to the ring for checking).
    fn submit_deps(&self, credits: u32, deps: &[ARef<Fence>]) -> Result<ARef<Fence>> {
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

    fn check_balance(&self) {
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
fn test_wqs() -> Result<JobQueueWorkqueues> {
    JobQueueWorkqueues::new(c"jobqueue-test")
}

fn wait(f: &Fence) -> Result {
    f.wait_timeout(false, Delta::from_millis(10_000))
        .map(|_| ())
}

/// Records the order in which fences signal.
struct Order {
    seqno: u64,
    last: Arc<Atomic<u64>>,
    bad: Arc<Atomic<u32>>,
    count: Arc<Atomic<u64>>,
}

impl FenceCb for Order {
    fn called(self) {
        if self.last.xchg(self.seqno, Relaxed) > self.seqno {
            self.bad.fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
    }
}

struct OrderCheck {
    last: Arc<Atomic<u64>>,
    bad: Arc<Atomic<u32>>,
    count: Arc<Atomic<u64>>,
    regs: KVec<Pin<KBox<FenceCbRegistration<Order>>>>,
}

impl OrderCheck {
    fn new() -> Result<Self> {
        Ok(Self {
            last: Arc::new(Atomic::new(0), GFP_KERNEL)?,
            bad: Arc::new(Atomic::new(0), GFP_KERNEL)?,
            count: Arc::new(Atomic::new(0), GFP_KERNEL)?,
            regs: KVec::new(),
        })
    }

    fn watch(&mut self, f: &ARef<Fence>) -> Result {
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
fn foreign() -> Result<Arc<FenceCtx>> {
    FenceCtx::new(c"foreign-driver", c"foreign")
}

fn foreign_fence(ctx: &Arc<FenceCtx>) -> Result<DriverFence<()>> {
    Ok(ctx.new_fence(DriverFenceAllocation::new((), GFP_KERNEL)?))
}

#[macros::kunit_tests(rust_jobqueue)]
mod scenarios {
    use super::*;

    /// drm_sched: basic submit.
    #[test]
    fn basic_submit() -> Result {
        let rig = Rig::new(Mode::Timed(100_000), 4, 5000)?;
        let done = rig.job(1)?.submit();
        wait(&done)?;
        assert_eq!(done.status(), Some(Ok(())));
        assert_eq!(done.context(), rig.q.fence_context());
        let s = rig.q.stats();
        assert_eq!(
            (s.submitted, s.completed, s.in_flight, s.pending),
            (1, 1, 0, 0)
        );
        assert_eq!(rig.hw.violations.load(Relaxed), 0);
        Ok(())
    }

    /// drm_sched: dependency chain across entities (queues).
    #[test]
    fn dependency_chain_across_queues() -> Result {
        let q1 = Rig::new(Mode::Manual, 4, 5000)?;
        let q2 = Rig::new(Mode::Manual, 4, 5000)?;
        let a = q1.job(1)?.submit();
        let b = q2.submit_deps(1, core::slice::from_ref(&a))?;
        assert!(q1.hw.wait_running(1, 5000));
        // B must not start while A is unsignalled.
        assert!(!q2.hw.wait_running(1, 20));
        assert_eq!(q1.hw.advance(1), 1);
        // A report while `run()` still executes takes effect when it returns.
        wait(&a)?;
        assert_eq!(a.status(), Some(Ok(())));
        assert!(q2.hw.wait_running(1, 5000));
        q2.hw.advance(1);
        // A report while `run()` still executes takes effect when it returns.
        wait(&b)?;
        assert_eq!(b.status(), Some(Ok(())));
        assert_eq!(
            q1.hw.violations.load(Relaxed) + q2.hw.violations.load(Relaxed),
            0
        );
        Ok(())
    }

    /// drm_sched: independent queues.
    #[test]
    fn independent_queues() -> Result {
        let q1 = Rig::new(Mode::Timed(20_000), 8, 5000)?;
        let q2 = Rig::new(Mode::Timed(30_000), 8, 5000)?;
        let mut fences = KVec::new();
        for i in 0..100 {
            let rig = if i % 2 == 0 { &q1 } else { &q2 };
            fences.push(rig.job(1)?.submit(), GFP_KERNEL)?;
        }
        for f in fences.iter() {
            wait(f)?;
            assert_eq!(f.status(), Some(Ok(())));
        }
        assert_eq!(q1.q.stats().completed, 50);
        assert_eq!(q2.q.stats().completed, 50);
        assert_eq!(
            q1.hw.violations.load(Relaxed) + q2.hw.violations.load(Relaxed),
            0
        );
        Ok(())
    }

    /// drm_sched: inter-dependent queues (a chain that ping-pongs between two rings).
    #[test]
    fn inter_dependent_queues() -> Result {
        let q1 = Rig::new(Mode::Timed(10_000), 4, 5000)?;
        let q2 = Rig::new(Mode::Timed(10_000), 4, 5000)?;
        let mut last: Option<ARef<Fence>> = None;
        let mut all = KVec::new();
        for i in 0..40 {
            let rig = if i % 2 == 0 { &q1 } else { &q2 };
            let deps: KVec<ARef<Fence>> = match &last {
                Some(f) => {
                    let mut v = KVec::new();
                    v.push(f.clone(), GFP_KERNEL)?;
                    v
                }
                None => KVec::new(),
            };
            let f = rig.submit_deps(1, &deps)?;
            all.push(f.clone(), GFP_KERNEL)?;
            last = Some(f);
        }
        for f in all.iter() {
            wait(f)?;
            assert_eq!(f.status(), Some(Ok(())));
        }
        assert_eq!(
            q1.hw.violations.load(Relaxed) + q2.hw.violations.load(Relaxed),
            0
        );
        Ok(())
    }

    /// drm_sched: parallel and interleaved submission from several threads.
    #[test]
    fn parallel_interleaved_submit() -> Result {
        const THREADS: usize = 4;
        const PER: usize = 200;
        static FAILED: Atomic<u32> = Atomic::new(0);
        let q1 = Rig::new(Mode::Timed(5_000), 16, 5000)?;
        let q2 = Rig::new(Mode::Timed(5_000), 16, 5000)?;
        let results = Arc::pin_init(new_mutex!(KVec::<ARef<Fence>>::new()), GFP_KERNEL)?;
        let mut dones = KVec::new();
        for t in 0..THREADS {
            let (a, b) = (q1.q.clone(), q2.q.clone());
            let results = results.clone();
            let done = Arc::pin_init(crate::sync::Completion::new(), GFP_KERNEL)?;
            let d = done.clone();
            crate::workqueue::system_dfl().try_spawn(GFP_KERNEL, move || {
                for i in 0..PER {
                    let q = if (i + t) % 2 == 0 { &a } else { &b };
                    match q.prepare(MockJob::new(1), 1) {
                        Ok(p) => {
                            let f = p.submit();
                            if results.lock().push(f, GFP_KERNEL).is_err() {
                                FAILED.fetch_add(1, Relaxed);
                            }
                        }
                        Err(_) => {
                            FAILED.fetch_add(1, Relaxed);
                        }
                    }
                    if i % 50 == 0 {
                        fsleep(Delta::from_micros(50));
                    }
                }
                d.complete_all();
            })?;
            dones.push(done, GFP_KERNEL)?;
        }
        for d in dones.iter() {
            d.wait_for_completion();
        }
        assert_eq!(FAILED.load(Relaxed), 0);
        let all = results.lock();
        assert_eq!(all.len(), THREADS * PER);
        for f in all.iter() {
            wait(f)?;
            assert_eq!(f.status(), Some(Ok(())));
        }
        let (s1, s2) = (q1.q.stats(), q2.q.stats());
        assert_eq!(s1.completed + s2.completed, (THREADS * PER) as u64);
        assert_eq!(
            q1.hw.violations.load(Relaxed) + q2.hw.violations.load(Relaxed),
            0
        );
        Ok(())
    }

    /// drm_sched: cancel / entity teardown with jobs in flight and pending.
    #[test]
    fn teardown_pending_and_in_flight() -> Result {
        let fctx = foreign()?;
        let blocker = foreign_fence(&fctx)?;
        let rig = Rig::new(Mode::Manual, 2, 5000)?;
        let mut order = OrderCheck::new()?;
        let mut fences = KVec::new();
        for i in 0..6 {
            let f = if i == 3 {
                rig.submit_deps(1, &[blocker.fence()])?
            } else {
                rig.job(1)?.submit()
            };
            order.watch(&f)?;
            fences.push(f, GFP_KERNEL)?;
        }
        assert!(rig.hw.wait_running(2, 5000));
        let s = rig.q.stats();
        assert_eq!((s.in_flight, s.pending, s.credits_in_use), (2, 4, 2));
        rig.q.kill();
        // The ring was stopped before its jobs were cancelled; the job waiting for a
        // dependency (and those after it) are cancelled once the dependency signalled.
        assert_eq!(rig.hw.stopped.load(Relaxed), 1);
        assert_eq!(fences[0].status(), Some(Err(ECANCELED)));
        assert_eq!(fences[1].status(), Some(Err(ECANCELED)));
        wait(&fences[2])?;
        fsleep(Delta::from_millis(10));
        for f in &fences[3..] {
            assert_eq!(f.status(), None);
        }
        // A late hardware completion is harmless.
        rig.q.complete(2, Ok(()));
        let _ = blocker.signal(Ok(()));
        for f in fences.iter() {
            wait(f)?;
            assert_eq!(f.status(), Some(Err(ECANCELED)));
        }
        assert_eq!(order.count.load(Relaxed), 6);
        assert_eq!(order.bad.load(Relaxed), 0);
        assert_eq!(rig.q.prepare(MockJob::new(1), 1).err(), Some(ENODEV));
        let s = rig.q.stats();
        assert_eq!(s.cancelled, 6);
        rig.check_balance();
        // The done fences outlive the queue.
        drop(rig);
        drop(order);
        for f in fences.iter() {
            assert_eq!(f.status(), Some(Err(ECANCELED)));
        }
        Ok(())
    }

    /// Dropping the queue with work everywhere: in flight, pending on credits, pending on a
    /// dependency, and prepared but not submitted.
    #[test]
    fn drop_queue_with_everything_outstanding() -> Result {
        let fctx = foreign()?;
        let blocker = foreign_fence(&fctx)?;
        let rig = Rig::new(Mode::Manual, 1, 5000)?;
        let a = rig.job(1)?.submit();
        let b = rig.job(1)?.submit();
        let c = rig.submit_deps(1, &[blocker.fence()])?;
        let prepared = rig.job(1)?;
        assert!(rig.hw.wait_running(1, 5000));
        // Drops the last reference to the queue, which tears it down without waiting;
        // `prepared` still holds its internals.
        drop(rig);
        wait(&a)?;
        wait(&b)?;
        assert_eq!(a.status(), Some(Err(ECANCELED)));
        assert_eq!(b.status(), Some(Err(ECANCELED)));
        // Submitting after teardown gives a fence that fails, in order: after `c`, which
        // waits for its dependency.
        let late = prepared.submit();
        fsleep(Delta::from_millis(10));
        assert_eq!(c.status(), None);
        assert_eq!(late.status(), None);
        let _ = blocker.signal(Ok(()));
        wait(&c)?;
        wait(&late)?;
        assert_eq!(c.status(), Some(Err(ECANCELED)));
        assert_eq!(late.status(), Some(Err(ENODEV)));
        Ok(())
    }

    /// Teardown racing with submitters and with completions from the interrupt.
    #[test]
    fn kill_races_submit_and_irq() -> Result {
        const THREADS: usize = 3;
        const PER: usize = 300;
        static REFUSED: Atomic<u32> = Atomic::new(0);
        // The case may run more than once per boot (KUnit's debugfs `run`).
        REFUSED.store(0, Relaxed);
        let rig = Rig::new(Mode::Timed(3_000), 8, 5000)?;
        let results = Arc::pin_init(new_mutex!(KVec::<ARef<Fence>>::new()), GFP_KERNEL)?;
        let mut dones = KVec::new();
        for _ in 0..THREADS {
            let q = rig.q.clone();
            let results = results.clone();
            let done = Arc::pin_init(crate::sync::Completion::new(), GFP_KERNEL)?;
            let d = done.clone();
            crate::workqueue::system_dfl().try_spawn(GFP_KERNEL, move || {
                for i in 0..PER {
                    match q.prepare(MockJob::new(1 + (i % 2) as u32), 1 + (i % 2) as u32) {
                        Ok(p) => {
                            let f = p.submit();
                            let _ = results.lock().push(f, GFP_KERNEL);
                        }
                        Err(e) if e == ENODEV => {
                            REFUSED.fetch_add(1, Relaxed);
                        }
                        Err(_) => {}
                    }
                    if i % 25 == 0 {
                        fsleep(Delta::from_micros(30));
                    }
                }
                d.complete_all();
            })?;
            dones.push(done, GFP_KERNEL)?;
        }
        fsleep(Delta::from_millis(3));
        rig.q.kill();
        for d in dones.iter() {
            d.wait_for_completion();
        }
        let all = results.lock();
        for f in all.iter() {
            // Everything signals: done before the kill, or cancelled / refused by it.
            wait(f)?;
            let st = f.status().ok_or(EINVAL)?;
            assert!(st.is_ok() || st == Err(ECANCELED) || st == Err(ENODEV));
        }
        let s = rig.q.stats();
        assert_eq!(s.submitted, all.len() as u64);
        assert_eq!((s.in_flight, s.pending, s.credits_in_use), (0, 0, 0));
        rig.check_balance();
        assert_eq!(
            all.len() as u64 + u64::from(REFUSED.load(Relaxed)),
            (THREADS * PER) as u64
        );
        assert_eq!(rig.hw.violations.load(Relaxed), 0);
        Ok(())
    }

    /// Timeout: the driver says the job is still progressing.
    #[test]
    fn timeout_progressing() -> Result {
        let rig = Rig::new(Mode::Manual, 2, 20)?;
        rig.hw.set_timeout_action(TimeoutAction::Progressing);
        let f = rig.job(1)?.submit();
        assert!(rig.hw.wait_running(1, 5000));
        for _ in 0..500 {
            if rig.hw.timeouts.load(Relaxed) >= 2 {
                break;
            }
            fsleep(Delta::from_millis(2));
        }
        assert!(rig.hw.timeouts.load(Relaxed) >= 2);
        assert_eq!(f.status(), None);
        rig.hw.advance(1);
        // A report while `run()` still executes takes effect when it returns.
        wait(&f)?;
        assert_eq!(f.status(), Some(Ok(())));
        assert_eq!(rig.q.stats().timed_out, 0);
        Ok(())
    }

    /// Timeout: the driver reset the ring; the queue goes on.
    #[test]
    fn timeout_ring_reset() -> Result {
        let rig = Rig::new(Mode::Manual, 2, 20)?;
        rig.hw.set_timeout_action(TimeoutAction::RingReset);
        let a = rig.job(1)?.submit();
        let b = rig.job(1)?.submit();
        let c = rig.job(1)?.submit();
        assert!(rig.hw.wait_running(2, 5000));
        // The timeout work signals `a`, then `b`; on SMP this thread may look in between.
        wait(&a)?;
        wait(&b)?;
        assert_eq!(a.status(), Some(Err(ETIMEDOUT)));
        assert_eq!(b.status(), Some(Err(ECANCELED)));
        // The queue goes on: `c` reaches the (reset) ring and completes.
        assert!(rig.hw.wait_running(1, 5000));
        rig.hw.advance(1);
        // A report while `run()` still executes takes effect when it returns.
        wait(&c)?;
        assert_eq!(c.status(), Some(Ok(())));
        let s = rig.q.stats();
        assert_eq!((s.timed_out, s.cancelled, s.completed), (1, 1, 1));
        rig.check_balance();
        Ok(())
    }

    /// Timeout: the ring is dead.
    #[test]
    fn timeout_dead() -> Result {
        let rig = Rig::new(Mode::Manual, 1, 20)?;
        rig.hw.set_timeout_action(TimeoutAction::Dead);
        let a = rig.job(1)?.submit();
        let b = rig.job(1)?.submit();
        wait(&a)?;
        wait(&b)?;
        assert_eq!(a.status(), Some(Err(ETIMEDOUT)));
        assert_eq!(b.status(), Some(Err(ECANCELED)));
        assert_eq!(rig.q.prepare(MockJob::new(1), 1).err(), Some(ENODEV));
        rig.check_balance();
        Ok(())
    }

    /// drm_sched: credits, with cost 1 and more, capacity 1 and more.
    #[test]
    fn credits() -> Result {
        for (capacity, costs) in [(1u32, &[1u32][..]), (4, &[1, 3, 2, 4, 1][..])] {
            let rig = Rig::new(Mode::Timed(30_000), capacity, 5000)?;
            let mut fences = KVec::new();
            for i in 0..60 {
                fences.push(rig.job(costs[i % costs.len()])?.submit(), GFP_KERNEL)?;
            }
            for f in fences.iter() {
                wait(f)?;
                assert_eq!(f.status(), Some(Ok(())));
            }
            let max = rig.hw.max_credits.load(Relaxed);
            assert!(max <= capacity);
            // With room for more than one job, jobs did run side by side.
            assert!(capacity == 1 || max >= 2);
            assert_eq!(rig.q.stats().credits_in_use, 0);
            assert_eq!(rig.job(capacity + 1).err(), Some(EINVAL));
            assert_eq!(rig.job(0).err(), Some(EINVAL));
            assert_eq!(rig.hw.violations.load(Relaxed), 0);
        }
        Ok(())
    }

    /// A dependency error fails the job without running it, in order.
    #[test]
    fn dependency_error_propagation() -> Result {
        let fctx = foreign()?;
        let dep = foreign_fence(&fctx)?;
        let rig = Rig::new(Mode::Timed(10_000), 4, 5000)?;
        let before = rig.job(1)?.submit();
        let victim = rig.submit_deps(1, &[dep.fence()])?;
        let after = rig.job(1)?.submit();
        // Already failed at prepare time (on another timeline: a later fence of `fctx` would
        // wait for `dep`).
        let fctx2 = foreign()?;
        let failed = foreign_fence(&fctx2)?;
        let failed_consumer = failed.fence();
        let _ = failed.signal(Err(ENOSPC));
        let mut p = rig.job(1)?;
        p.add_dependency(failed_consumer)?;
        assert_eq!(p.dependency_count(), 0);
        let early = p.submit();
        let _ = dep.signal(Err(EIO));
        for f in [&before, &victim, &after, &early] {
            wait(f)?;
        }
        assert_eq!(before.status(), Some(Ok(())));
        assert_eq!(victim.status(), Some(Err(EIO)));
        assert_eq!(after.status(), Some(Ok(())));
        assert_eq!(early.status(), Some(Err(ENOSPC)));
        assert_eq!(rig.hw.ran.load(Relaxed), 2);
        let s = rig.q.stats();
        assert_eq!((s.completed, s.errored), (2, 2));
        rig.check_balance();
        Ok(())
    }

    /// Dependencies on fences made by other code: C stubs and another timeline.
    #[test]
    fn foreign_c_fence_dependencies() -> Result {
        let fctx = foreign()?;
        let other = foreign_fence(&fctx)?;
        // SAFETY: Returns a new signalled fence with one reference, or NULL.
        let raw = unsafe { bindings::dma_fence_allocate_private_stub(0) };
        let raw = ptr::NonNull::new(raw).ok_or(ENOMEM)?;
        // SAFETY: We own the reference to this initialised fence.
        let c_stub = unsafe { Fence::from_raw_owned(raw) };
        let rig = Rig::new(Mode::Manual, 4, 5000)?;
        let mut p = rig.job(1)?;
        p.add_dependency(Fence::stub())?;
        p.add_dependency(c_stub)?;
        p.add_dependency(other.fence())?;
        assert_eq!(p.dependency_count(), 1);
        let f = p.submit();
        assert!(!rig.hw.wait_running(1, 20));
        let _ = other.signal(Ok(()));
        assert!(rig.hw.wait_running(1, 5000));
        rig.hw.advance(1);
        // A report while `run()` still executes takes effect when it returns.
        wait(&f)?;
        assert_eq!(f.status(), Some(Ok(())));
        Ok(())
    }

    /// Dependencies are deduplicated per context, keeping the latest.
    #[test]
    fn deduplication() -> Result {
        let a = foreign()?;
        let b = foreign()?;
        let mut fa = KVec::new();
        for _ in 0..5 {
            fa.push(foreign_fence(&a)?, GFP_KERNEL)?;
        }
        let fb1 = foreign_fence(&b)?;
        let fb2 = foreign_fence(&b)?;
        let rig = Rig::new(Mode::Manual, 4, 5000)?;
        let mut p = rig.job(1)?;
        // Out of order on purpose: the latest must win whatever the order.
        for i in [2usize, 4, 0, 3, 1] {
            p.add_dependency(fa[i].fence())?;
        }
        p.add_dependency(fb2.fence())?;
        p.add_dependency(fb1.fence())?;
        p.add_dependency(Fence::stub())?;
        assert_eq!(p.dependency_count(), 2);
        let f = p.submit();
        let last_a = fa.pop().ok_or(EINVAL)?;
        for x in fa.into_iter() {
            let _ = x.signal(Ok(()));
        }
        let _ = fb1.signal(Ok(()));
        let _ = fb2.signal(Ok(()));
        // Only the latest fence of `a` is left, and the job waits for it.
        assert!(!rig.hw.wait_running(1, 20));
        let _ = last_a.signal(Ok(()));
        assert!(rig.hw.wait_running(1, 5000));
        rig.hw.advance(1);
        // A report while `run()` still executes takes effect when it returns.
        wait(&f)?;
        assert_eq!(f.status(), Some(Ok(())));
        Ok(())
    }

    /// Nothing allocates between submit and the done fence signalling: submit, the dependency
    /// callback, the run work and completion all run with fault injection armed to fail the
    /// very next allocation, and it never triggers.
    ///
    /// The worker's check spans the jobs it runs, so they must all run in one pass of the run
    /// work, on one thread, whatever the CPU count: a blocker job holds every credit until all
    /// of them are ready, and its completion returns the credits at once.
    #[test]
    fn no_allocation_after_submit() -> Result {
        const N: usize = 16;
        let fctx = foreign()?;
        let gate = foreign_fence(&fctx)?;
        let gate_ref = gate.fence();
        let rig = Rig::new(Mode::Manual, N as u32, 5000)?;
        let blocker = rig.job(N as u32)?.submit();
        assert!(rig.hw.wait_running(1, 5000));
        // Fallible phase: everything allocated here.
        let mut prepared = KVec::with_capacity(N, GFP_KERNEL)?;
        for i in 0..N {
            let mut job = MockJob::new(1);
            job.alloc_check = match i {
                0 => AllocCheck::Arm,
                i if i == N - 1 => AllocCheck::CheckDisarm,
                _ => AllocCheck::Check,
            };
            job.deps.push(gate_ref.clone(), GFP_KERNEL)?;
            let mut p = rig.job_with(job)?;
            p.add_dependency(gate_ref.clone())?;
            prepared.push(p, GFP_KERNEL)?;
        }
        let mut fences = KVec::with_capacity(N, GFP_KERNEL)?;
        // SAFETY: Arms this task's fault injection: its next allocation fails.
        unsafe { bindings::set_current_fail_nth(1) };
        for p in prepared.drain_all() {
            // `push` stays within the capacity reserved above.
            let _ = fences.push(p.submit(), GFP_NOWAIT);
        }
        // The dependency callbacks run here, in this task. The jobs are now ready but wait
        // for the blocker's credits.
        let _ = gate.signal(Ok(()));
        // SAFETY: Reads this task's fault injection countdown.
        let untouched_submit = unsafe { bindings::current_fail_nth() } == 1;
        // The blocker's completion (as from the interrupt handler) returns all credits.
        let n = rig.hw.advance(1);
        // SAFETY: Reads.
        let untouched_unblock = unsafe { bindings::current_fail_nth() } == 1;
        // SAFETY: Disarms.
        unsafe { bindings::set_current_fail_nth(0) };
        assert!(untouched_submit);
        assert!(untouched_unblock);
        assert_eq!(n, 1);
        assert_eq!(blocker.status(), Some(Ok(())));
        assert_eq!(fences.len(), N);
        // The worker ran all jobs in one pass, checking its own countdown between them, and
        // disarmed it after the last one.
        assert!(rig.hw.wait_running(N, 5000));
        assert_eq!(rig.hw.violations.load(Relaxed), 0);
        // Completion, also armed.
        // SAFETY: Arms.
        unsafe { bindings::set_current_fail_nth(1) };
        let n = rig.hw.advance(N);
        // SAFETY: Reads.
        let untouched_complete = unsafe { bindings::current_fail_nth() } == 1;
        // SAFETY: Disarms.
        unsafe { bindings::set_current_fail_nth(0) };
        assert!(untouched_complete);
        assert_eq!(n, N);
        // The last job's `run()` may still be returning on the worker (the mock counts it on
        // the ring inside `run()`): its report then takes effect when it returns.
        for f in fences.iter() {
            wait(f)?;
            assert_eq!(f.status(), Some(Ok(())));
        }
        Ok(())
    }

    /// Prepared jobs dropped without submitting give their reservations back.
    #[test]
    fn prepare_then_drop() -> Result {
        let rig = Rig::new(Mode::Timed(10_000), 4, 5000)?;
        let p1 = rig.job(1)?;
        let p2 = rig.job(1)?;
        let p3 = rig.job(1)?;
        drop(p2);
        let f1 = p1.submit();
        drop(p3);
        let f2 = rig.job(1)?.submit();
        wait(&f1)?;
        wait(&f2)?;
        assert_eq!(f1.status(), Some(Ok(())));
        assert_eq!(f2.status(), Some(Ok(())));
        assert!(f2.seqno() == f1.seqno() + 1);
        let s = rig.q.stats();
        assert_eq!((s.submitted, s.completed), (2, 2));
        Ok(())
    }

    /// Implicit sync: a read waits for the writers of a reservation object, a write for every
    /// fence in it, and the done fence goes into the object after submit.
    #[test]
    fn resv_dependencies() -> Result {
        use crate::dma_buf::resv::{
            OwnedResv,
            ResvLocks,
            ResvUsage, //
        };
        let rig = Rig::new(Mode::Manual, 64, 5000)?;
        let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
        let (wctx, rctx) = (foreign()?, foreign()?);
        let (w, r) = (foreign_fence(&wctx)?, foreign_fence(&rctx)?);
        let mut locks = ResvLocks::lock(&[&**resv])?;
        locks.reserve(0, 3)?;
        locks.add_fence(0, &w.fence(), ResvUsage::Write);
        locks.add_fence(0, &r.fence(), ResvUsage::Read);
        let mut reader = rig.job(1)?;
        reader.add_resv_dependencies(&locks, 0, false)?;
        assert_eq!(reader.dependency_count(), 1);
        let mut writer = rig.job(1)?;
        writer.add_resv_dependencies(&locks, 0, true)?;
        assert_eq!(writer.dependency_count(), 2);
        let rd = reader.submit();
        let wd = writer.submit();
        locks.add_fence(0, &wd, ResvUsage::of_access(true));
        drop(locks);
        fsleep(Delta::from_millis(20));
        assert_eq!(rig.hw.running(), 0);
        // The writer of the object finishes: the reader runs, the writer still waits.
        let _ = w.signal(Ok(()));
        assert!(rig.hw.wait_running(1, 5000));
        fsleep(Delta::from_millis(20));
        assert_eq!(rig.hw.running(), 1);
        assert_eq!(rig.hw.advance(1), 1);
        wait(&rd)?;
        let _ = r.signal(Ok(()));
        assert!(rig.hw.wait_running(1, 5000));
        assert_eq!(rig.hw.advance(1), 1);
        wait(&wd)?;
        // The next user of the object finds the queue's done fence as its writer.
        let locks = ResvLocks::lock(&[&**resv])?;
        let mut ours = 0;
        locks.for_each_fence(0, ResvUsage::Write, |f| {
            if f.context() == rig.q.fence_context() {
                ours += 1;
            }
            Ok(())
        })?;
        assert_eq!(ours, 1);
        rig.check_balance();
        Ok(())
    }

    #[test]
    fn lockdep_still_enabled() {
        assert!(lockdep_enabled());
    }
}

/// A small deterministic PRNG (xorshift64*), so that failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One side of the SMP canary: the two threads' "I am here" flags and where they ran.
#[cfg(CONFIG_SMP)]
struct Meeting {
    here: [Atomic<u32>; 2],
    cpu: [Atomic<u32>; 2],
    met: [Atomic<u32>; 2],
}

#[cfg(CONFIG_SMP)]
impl Meeting {
    /// Thread `me` disables interrupts and preemption on its CPU (by holding its own irq-safe
    /// spinlock), says it is here and spins until the other thread is here too, for at most
    /// two seconds. Each thread sets its flag only with interrupts off and leaves only once it
    /// saw the other's flag, so if both saw each other, both non-preemptible stretches
    /// overlapped in time: two CPUs were running at once.
    fn attend(&self, me: usize, irqs_off: &SpinLockIrq<()>) {
        use crate::sync::atomic::{
            Acquire,
            Release, //
        };
        let _guard = irqs_off.lock();
        self.cpu[me].store(crate::cpu::CpuId::current().as_u32(), Relaxed);
        self.here[me].store(1, Release);
        let start = crate::time::Instant::<crate::time::Monotonic>::now();
        while self.here[1 - me].load(Acquire) == 0 {
            if start.elapsed() > Delta::from_secs(2) {
                return;
            }
            core::hint::spin_loop();
        }
        self.met[me].store(1, Relaxed);
    }
}

/// The job counts of the stress cases are divided by this on kernels with a sanitizer that
/// makes every memory access expensive (KASAN, KCSAN): those run on the QEMU test legs, where
/// they are about a hundred times slower than UML, and are there to find races and memory
/// errors, not volume. The UML leg runs the full counts.
const STRESS_DIVISOR: usize = if cfg!(CONFIG_KASAN) || cfg!(CONFIG_KCSAN) {
    16
} else {
    1
};

#[macros::kunit_tests(rust_jobqueue_stress)]
mod stress {
    use super::*;

    /// The SMP canary: fails unless two threads provably run at the same time on two CPUs
    /// (see [`Meeting::attend`]). It keeps the multi-CPU legs of the test harness from
    /// silently running on one CPU. Skipped on kernels without `CONFIG_SMP` (UML).
    #[cfg(CONFIG_SMP)]
    #[test]
    fn smp_canary_two_cpus_at_once() -> Result {
        // A vCPU may be descheduled by a busy host for a while: a few attempts.
        let mut met_on = None;
        for attempt in 1..=5 {
            let meeting = Arc::new(
                Meeting {
                    here: [Atomic::new(0), Atomic::new(0)],
                    cpu: [Atomic::new(0), Atomic::new(0)],
                    met: [Atomic::new(0), Atomic::new(0)],
                },
                GFP_KERNEL,
            )?;
            let lock0 = KBox::pin_init(new_spinlock_irq!(()), GFP_KERNEL)?;
            let lock1 = Arc::pin_init(new_spinlock_irq!(()), GFP_KERNEL)?;
            let done = Arc::pin_init(crate::sync::Completion::new(), GFP_KERNEL)?;
            {
                let (m, l, d) = (meeting.clone(), lock1.clone(), done.clone());
                crate::workqueue::system_dfl().try_spawn(GFP_KERNEL, move || {
                    m.attend(1, &l);
                    d.complete_all();
                })?;
            }
            meeting.attend(0, &lock0);
            done.wait_for_completion();
            if meeting.met.iter().all(|m| m.load(Relaxed) == 1) {
                met_on = Some((
                    meeting.cpu[0].load(Relaxed),
                    meeting.cpu[1].load(Relaxed),
                    attempt,
                ));
                break;
            }
            fsleep(Delta::from_millis(50));
        }
        match met_on {
            Some((a, b, attempt)) => {
                pr_info!(
                    "SMP canary: two threads ran at once on CPUs {a} and {b} (attempt {attempt})\n"
                );
                assert_ne!(a, b);
            }
            None => pr_err!("SMP canary: two threads never ran at the same time\n"),
        }
        assert!(met_on.is_some());
        Ok(())
    }

    /// 64k jobs in flight on one ring at once (see [`STRESS_DIVISOR`]).
    #[test]
    fn in_flight_64k() -> Result {
        const N: usize = 65536 / STRESS_DIVISOR;
        let hw = MockHw::new(Mode::Manual, N)?;
        let q = Arc::new(
            JobQueue::new(
                MockBackend { hw: hw.clone() },
                c"jobqueue-test",
                c"big-ring",
                N as u32,
                Delta::from_millis(60_000),
                &test_wqs()?,
            )?,
            GFP_KERNEL,
        )?;
        hw.attach(q.clone());
        let mut fences = KVec::with_capacity(N, GFP_KERNEL)?;
        for _ in 0..N {
            fences.push(q.prepare(MockJob::new(1), 1)?.submit(), GFP_KERNEL)?;
        }
        assert!(hw.wait_running(N, 60_000));
        let s = q.stats();
        assert_eq!(
            (s.in_flight, s.pending, s.credits_in_use),
            (N as u64, 0, N as u32)
        );
        assert_eq!(hw.advance(N), N);
        for f in fences.iter() {
            // A report while `run()` still executes takes effect when it returns.
            wait(f)?;
            assert_eq!(f.status(), Some(Ok(())));
        }
        assert_eq!(q.stats().completed, N as u64);
        assert_eq!(hw.violations.load(Relaxed), 0);
        drop(hw.detach());
        Ok(())
    }

    /// A random dependency DAG of 100k jobs over four queues, with random ring errors (see
    /// [`STRESS_DIVISOR`]).
    #[test]
    fn random_dag_100k() -> Result {
        const N: usize = 100_000 / STRESS_DIVISOR;
        const QUEUES: usize = 4;
        const WINDOW: u64 = 512;
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        let mut rigs = KVec::new();
        let mut orders = KVec::new();
        for _ in 0..QUEUES {
            rigs.push(Rig::new(Mode::Timed(2_000), 32, 30_000)?, GFP_KERNEL)?;
            orders.push(OrderCheck::new()?, GFP_KERNEL)?;
        }
        let mut fences: KVec<ARef<Fence>> = KVec::with_capacity(N, GFP_KERNEL)?;
        // For each job: its dependencies (indices into `fences`) and whether the ring fails it.
        let mut deps_of: KVec<[u32; 3]> = KVec::with_capacity(N, GFP_KERNEL)?;
        let mut ndeps: KVec<u8> = KVec::with_capacity(N, GFP_KERNEL)?;
        let mut fails: KVec<bool> = KVec::with_capacity(N, GFP_KERNEL)?;
        let mut queue_of: KVec<u8> = KVec::with_capacity(N, GFP_KERNEL)?;
        for i in 0..N {
            let qi = rng.below(QUEUES as u64) as usize;
            let credits = 1 + rng.below(4) as u32;
            let mut job = MockJob::new(credits);
            job.fail = rng.below(1000) < 3;
            let mut d = [0u32; 3];
            let k = if i == 0 { 0 } else { rng.below(4) as usize };
            let mut deps = KVec::with_capacity(k, GFP_KERNEL)?;
            for slot in d.iter_mut().take(k) {
                let lo = (i as u64).saturating_sub(WINDOW);
                let j = lo + rng.below(i as u64 - lo);
                *slot = j as u32;
                deps.push(fences[j as usize].clone(), GFP_KERNEL)?;
            }
            for dep in deps.iter() {
                job.deps.push(dep.clone(), GFP_KERNEL)?;
            }
            fails.push(job.fail, GFP_KERNEL)?;
            queue_of.push(qi as u8, GFP_KERNEL)?;
            let mut p = rigs[qi].job_with(job)?;
            for dep in deps.into_iter() {
                p.add_dependency(dep)?;
            }
            let f = p.submit();
            orders[qi].watch(&f)?;
            fences.push(f, GFP_KERNEL)?;
            deps_of.push(d, GFP_KERNEL)?;
            ndeps.push(k as u8, GFP_KERNEL)?;
        }
        for f in fences.iter() {
            wait(f)?;
        }
        // Invariants.
        let mut ok = 0u64;
        for i in 0..N {
            let st = fences[i].status().ok_or(EINVAL)?;
            let deps = &deps_of[i][..ndeps[i] as usize];
            // The queue keeps only the latest dependency per timeline (queue).
            let effective = |j: u32| {
                !deps
                    .iter()
                    .any(|&k| k > j && queue_of[k as usize] == queue_of[j as usize])
            };
            let failed = |j: &u32| fences[*j as usize].status() != Some(Ok(()));
            let dep_failed = deps.iter().any(|j| effective(*j) && failed(j));
            // A superseded dependency's error counts only if it had signalled when it was
            // added (see `PreparedJob::add_dependency`): timing decides, so both outcomes are
            // right then.
            let superseded_failed = deps.iter().any(|j| !effective(*j) && failed(j));
            if dep_failed || fails[i] {
                // A job with a failed dependency never succeeds.
                assert!(st.is_err());
            } else if !superseded_failed {
                assert_eq!(st, Ok(()));
                ok += 1;
            } else if st.is_ok() {
                ok += 1;
            }
        }
        let mut signalled = 0;
        for (rig, order) in rigs.iter().zip(orders.iter()) {
            // Every fence signalled once, in seqno order per queue; nothing ran early.
            assert_eq!(order.bad.load(Relaxed), 0);
            assert_eq!(rig.hw.violations.load(Relaxed), 0);
            signalled += order.count.load(Relaxed);
            rig.check_balance();
            let s = rig.q.stats();
            assert_eq!((s.in_flight, s.pending, s.credits_in_use), (0, 0, 0));
        }
        assert_eq!(signalled, N as u64);
        let completed: u64 = rigs.iter().map(|r| r.q.stats().completed).sum();
        assert_eq!(completed, ok);
        Ok(())
    }

    #[test]
    fn lockdep_still_enabled() {
        assert!(lockdep_enabled());
    }
}

/// Runs `f` with this task's `k`-th fault-injection point armed (the syzkaller `fail-nth`
/// technique) and disarms it. Returns `f`'s result and whether the fault was injected.
fn with_fail_nth<T>(k: u32, f: impl FnOnce() -> T) -> (T, bool) {
    // SAFETY: Only this task's own countdown is written.
    unsafe { bindings::set_current_fail_nth(k) };
    let r = f();
    // SAFETY: Reads this task's countdown.
    let left = unsafe { bindings::current_fail_nth() };
    // SAFETY: Disarms.
    unsafe { bindings::set_current_fail_nth(0) };
    (r, left == 0)
}

/// Whether `fail_nth` can make a `GFP_KERNEL` allocation fail. By default failslab and
/// fail_page_alloc ignore allocations that may sleep, and then the sweeps below have nothing to
/// inject: the cases say so in the log and pass without sweeping. `dev/stress` turns that
/// default off (`/sys/kernel/debug/fail*/ignore-gfp-wait`) and runs this suite again through
/// `/sys/kernel/debug/kunit/rust_jobqueue_failnth/run`; its report requires every sweep to have
/// injected faults. (The cases do not mark themselves skipped: KUnit never re-runs a case that
/// was skipped once.)
///
/// The probe looks at whether the allocation failed, not at whether the countdown ran out:
/// with `ignore-gfp-wait=Y` the slab and page allocators can still consume it on an internal
/// attempt that may not sleep (SLUB's first, high-order try for a new slab) and then succeed
/// on the retry, and taking that for "faults on" made the cases below sweep nothing and fail.
fn gfp_kernel_faults() -> bool {
    let (r, _) = with_fail_nth(1, || KBox::new(0u64, GFP_KERNEL));
    let injected = r.is_err();
    drop(r);
    if !injected {
        crate::pr_info!(
            "jq: GFP_KERNEL fault injection is off (ignore-gfp-wait=Y): nothing swept; \
             dev/stress runs this suite with it on\n"
        );
    }
    injected
}

/// Sweeps `f` with fault injection: fails its 1st, 2nd, ... allocation until one run
/// completes without hitting a fault-injection point. Every injected run must fail with
/// `ENOMEM` or absorb the failure (an allocator retry) and succeed; `check_failed` runs after
/// each failed run. Returns the successful results (absorbed ones and the final one) and the
/// number of injected faults.
fn sweep<T>(
    mut f: impl FnMut() -> Result<T>,
    mut check_failed: impl FnMut(),
) -> Result<(KVec<T>, u32)> {
    let mut ok = KVec::new();
    for k in 1..1000 {
        let (r, hit) = with_fail_nth(k, &mut f);
        match r {
            Ok(v) => ok.push(v, GFP_KERNEL)?,
            Err(e) => {
                assert!(hit, "failed without an injected fault");
                assert_eq!(e, ENOMEM);
                check_failed();
            }
        }
        if !hit {
            // Every earlier run hit its fault-injection point.
            let injected = k - 1;
            // For dev/stress's summary.
            crate::pr_info!("jq-stat: kunit.faults_injected {injected}\n");
            return Ok((ok, injected));
        }
    }
    Err(EINVAL)
}

#[macros::kunit_tests(rust_jobqueue_failnth)]
mod failnth {
    use super::*;

    /// Creating a queue fails cleanly at each of its allocations.
    #[test]
    fn queue_creation() -> Result {
        if !gfp_kernel_faults() {
            return Ok(());
        }
        let hw = MockHw::new(Mode::Manual, 64)?;
        let wqs = test_wqs()?;
        let (queues, injected) = sweep(
            || {
                let q = JobQueue::new(
                    MockBackend { hw: hw.clone() },
                    c"jobqueue-test",
                    c"mock-ring",
                    16,
                    Delta::from_millis(5000),
                    &wqs,
                )?;
                Ok(Arc::new(q, GFP_KERNEL)?)
            },
            || {},
        )?;
        assert!(injected >= 1);
        assert!(!queues.is_empty());
        Ok(())
    }

    /// Prepare and dependency setup with 0, 1 and 16 dependencies: every allocation fails
    /// cleanly (`ENOMEM`, nothing queued, no fence left behind), and the jobs that did go
    /// through all run and signal.
    #[test]
    fn prepare_and_dependencies() -> Result {
        if !gfp_kernel_faults() {
            return Ok(());
        }
        for ndeps in [0usize, 1, 16] {
            let rig = Rig::new(Mode::Manual, 64, 5000)?;
            // Each dependency on its own foreign timeline, so none is deduplicated.
            let mut ctxs = KVec::new();
            let mut gates = KVec::new();
            let mut deps = KVec::new();
            for _ in 0..ndeps {
                let ctx = foreign()?;
                let gate = foreign_fence(&ctx)?;
                deps.push(gate.fence(), GFP_KERNEL)?;
                gates.push(gate, GFP_KERNEL)?;
                ctxs.push(ctx, GFP_KERNEL)?;
            }
            let before = rig.q.stats();
            let went_through = core::cell::Cell::new(0u64);
            let (fences, injected) = sweep(
                || {
                    let mut p = rig.job(1)?;
                    for d in deps.iter() {
                        p.add_dependency(d.clone())?;
                    }
                    went_through.set(went_through.get() + 1);
                    Ok(p.submit())
                },
                || {
                    // A failed run queued nothing.
                    let s = rig.q.stats();
                    assert_eq!(s.submitted, before.submitted + went_through.get());
                    rig.check_balance();
                },
            )?;
            assert!(injected >= 1);
            let s = rig.q.stats();
            assert_eq!(s.submitted, before.submitted + fences.len() as u64);
            for g in gates.drain_all() {
                let _ = g.signal(Ok(()));
            }
            assert!(rig.hw.wait_running(fences.len(), 5000));
            assert_eq!(rig.hw.advance(fences.len()), fences.len());
            for f in fences.iter() {
                wait(f)?;
                assert_eq!(f.status(), Some(Ok(())));
            }
            let s = rig.q.stats();
            assert_eq!((s.pending, s.in_flight), (0, 0));
            rig.check_balance();
        }
        Ok(())
    }

    /// A sync_file allocated before its fence exists fails cleanly too.
    #[test]
    fn unarmed_sync_file() -> Result {
        if !gfp_kernel_faults() {
            return Ok(());
        }
        let (files, injected) = sweep(crate::dma_buf::sync_file::SyncFile::new_unarmed, || {})?;
        assert!(injected >= 1);
        assert!(!files.is_empty());
        Ok(())
    }

    #[test]
    fn lockdep_still_enabled() {
        assert!(lockdep_enabled());
    }
}
