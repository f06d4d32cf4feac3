// SPDX-License-Identifier: GPL-2.0

//! KUnit tests of the JobQueue's lifecycle rules on several CPUs.
//!
//! Each case races one rule of the queue's contract: a done fence never signals before its
//! job was handed to the ring, nor while the ring may still touch the job, nor before its
//! dependencies; the run and timeout paths never overlap; no queue lock is held around a
//! dependency fence's lock; and the last reference to a queue may go away anywhere. The
//! `race_*` cases need two CPUs to show anything; the `drop_*` cases deadlock or sleep in
//! atomic context if the rule is broken, so they wait with a timeout instead of forever.

use super::*;

/// The ring of [`LifeDriver`]: counts what the queue asked of it, and what went wrong.
#[pin_data]
struct LifeRing {
    /// Microseconds `run()` sleeps after taking the job: widens the windows being raced.
    run_delay_us: i64,
    /// What `timed_out()` answers.
    timeout_action: TimeoutAction,
    /// Set by the test once `kill()` returned: `run()` and `timed_out()` must not be called
    /// any more.
    killed: Atomic<u32>,
    /// Set once the driver's part of the queue was dropped, that is, the queue was freed.
    dropped: Atomic<u32>,
    /// Set by `stop()`.
    stopped: Atomic<u32>,
    /// Number of `run()`/`timed_out()` calls executing right now.
    inside: Atomic<u32>,
    /// Broken rules seen by the ring.
    violations: Atomic<u32>,
    ran: Atomic<u64>,
    timeouts: Atomic<u32>,
    /// If set, shared by the rings of one reset domain: the number of their `timed_out()`
    /// calls executing right now.
    domain: Option<Arc<Atomic<u32>>>,
    /// If set, the next `timed_out()` answers `ResetAndReplay` naming its job (and clears it).
    replay: Atomic<u32>,
    /// If set, that `timed_out()` replays the ring at once and reports the jobs up to
    /// `replay_report` done on this queue before it answers (and drops the reference).
    #[pin]
    replay_queue: SpinLock<Option<Arc<LifeQueue>>>,
    replay_report: Atomic<u64>,
    /// `job_done()` calls, the ring time they reported, and reports whose times are out of
    /// order.
    done_jobs: Atomic<u64>,
    done_ring_ns: Atomic<u64>,
    done_bad: Atomic<u32>,
    /// `set_deadline()` calls, the highest seqno and the last deadline they named.
    deadline_calls: Atomic<u32>,
    deadline_seqno: Atomic<u64>,
    deadline_ns: Atomic<i64>,
    /// The task that executed the last `run()`.
    run_task: Atomic<usize>,
    /// If set, the next `run()` kills this queue (and drops the reference).
    #[pin]
    kill_queue: SpinLock<Option<Arc<LifeQueue>>>,
}

impl LifeRing {
    fn new(run_delay_us: i64, timeout_action: TimeoutAction) -> Result<Arc<Self>> {
        Self::with_domain(run_delay_us, timeout_action, None)
    }

    /// A ring of the reset domain `domain`, whose `timed_out()` sleeps `delay_us`.
    fn in_domain(delay_us: i64, domain: &Arc<Atomic<u32>>) -> Result<Arc<Self>> {
        Self::with_domain(delay_us, TimeoutAction::Progressing, Some(domain.clone()))
    }

    fn with_domain(
        run_delay_us: i64,
        timeout_action: TimeoutAction,
        domain: Option<Arc<Atomic<u32>>>,
    ) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                run_delay_us,
                timeout_action,
                killed: Atomic::new(0),
                dropped: Atomic::new(0),
                stopped: Atomic::new(0),
                inside: Atomic::new(0),
                violations: Atomic::new(0),
                ran: Atomic::new(0),
                timeouts: Atomic::new(0),
                domain,
                replay: Atomic::new(0),
                replay_queue <- crate::new_spinlock!(None),
                replay_report: Atomic::new(0),
                done_jobs: Atomic::new(0),
                done_ring_ns: Atomic::new(0),
                done_bad: Atomic::new(0),
                deadline_calls: Atomic::new(0),
                deadline_seqno: Atomic::new(0),
                deadline_ns: Atomic::new(0),
                run_task: Atomic::new(0),
                kill_queue <- crate::new_spinlock!(None),
            }),
            GFP_KERNEL,
        )
    }

    fn violation(&self, what: &str) {
        pr_err!("lifecycle: {what}\n");
        self.violations.fetch_add(1, Relaxed);
    }

    fn enter(&self) {
        if self.inside.fetch_add(1, Relaxed) != 0 {
            self.violation("run()/timed_out() called concurrently");
        }
        if self.killed.load(Relaxed) != 0 {
            self.violation("driver called after kill() returned");
        }
        if self.stopped.load(Relaxed) != 0 {
            self.violation("driver called after stop()");
        }
    }

    fn leave(&self) {
        self.inside.fetch_sub(1, Relaxed);
    }

    /// Waits until the queue was freed; false after about `ms` milliseconds.
    fn wait_dropped(&self, ms: u32) -> bool {
        wait_for(ms, || self.dropped.load(Relaxed) != 0)
    }
}

/// Polls `cond` every millisecond; returns whether it held within about `ms` milliseconds.
fn wait_for(ms: u32, cond: impl Fn() -> bool) -> bool {
    for _ in 0..ms {
        if cond() {
            return true;
        }
        fsleep(Delta::from_millis(1));
    }
    cond()
}

/// The driver part of a queue under test.
struct LifeDriver {
    ring: Arc<LifeRing>,
}

impl Drop for LifeDriver {
    fn drop(&mut self) {
        self.ring.dropped.store(1, Relaxed);
    }
}

/// A job; it may hold a reference to its own queue, to drop the last one from odd places.
type LifeQueue = JobQueue<LifeDriver>;

struct LifeJob {
    _queue: Option<Arc<LifeQueue>>,
}

impl JobQueueDriver for LifeDriver {
    type Job = LifeJob;

    fn run(&self, job: LifeJob, _seqno: u64, done: &Fence) {
        let r = &self.ring;
        r.enter();
        if done.is_signaled() {
            r.violation("run() was handed a signalled done fence");
        }
        if r.run_delay_us > 0 {
            fsleep(Delta::from_micros(r.run_delay_us));
        }
        // The job is on the ring now; no completion is reported in these tests, so nothing
        // may have cancelled it while the ring still runs.
        if done.status() == Some(Err(ECANCELED)) {
            r.violation("done fence cancelled while the job was on a running ring");
        }
        r.run_task
            .store(crate::task::Task::current_raw() as usize, Relaxed);
        let kill = r.kill_queue.lock().take();
        if let Some(q) = kill {
            // Does not wait: the teardown follows when `run()` returns.
            q.kill();
        }
        r.ran.fetch_add(1, Relaxed);
        r.leave();
        drop(job);
    }

    fn timed_out(&self, seqno: u64) -> TimeoutAction {
        let r = &self.ring;
        if r.replay.xchg(0, Relaxed) != 0 {
            r.enter();
            r.timeouts.fetch_add(1, Relaxed);
            let q = r.replay_queue.lock().take();
            if let Some(q) = q {
                // Reset, then replay: the replayed jobs finish before this returns.
                q.complete(r.replay_report.load(Relaxed), Ok(()));
            }
            r.leave();
            return TimeoutAction::ResetAndReplay { guilty: seqno };
        }
        r.enter();
        r.timeouts.fetch_add(1, Relaxed);
        if let Some(d) = &r.domain {
            if d.fetch_add(1, Relaxed) != 0 {
                r.violation("two timeout handlers of one reset domain ran at once");
            }
        }
        if r.run_delay_us > 0 {
            fsleep(Delta::from_micros(r.run_delay_us));
        }
        if let Some(d) = &r.domain {
            d.fetch_sub(1, Relaxed);
        }
        r.leave();
        r.timeout_action
    }

    fn stop(&self) {
        let r = &self.ring;
        r.enter();
        r.stopped.store(1, Relaxed);
        r.leave();
    }

    fn job_done(&self, t: &JobTimes) {
        let r = &self.ring;
        // A start time of 0 would be one the completion path failed to stamp.
        if t.started_ns <= 0
            || t.started_ns > t.finished_ns
            || t.ring_ns != (t.finished_ns - t.started_ns) as u64
        {
            r.done_bad.fetch_add(1, Relaxed);
        }
        r.done_jobs.fetch_add(1, Relaxed);
        r.done_ring_ns.fetch_add(t.ring_ns, Relaxed);
    }

    fn set_deadline(&self, seqno: u64, deadline: Instant<Monotonic>) {
        let r = &self.ring;
        r.enter();
        if seqno > r.deadline_seqno.load(Relaxed) {
            r.deadline_seqno.store(seqno, Relaxed);
        }
        r.deadline_ns.store(deadline.as_nanos(), Relaxed);
        r.deadline_calls.fetch_add(1, Relaxed);
        r.leave();
    }
}

/// Records the deadline hints of a foreign timeline.
struct DeadlineRec {
    calls: Atomic<u32>,
    seqno: Atomic<u64>,
    ns: Atomic<i64>,
}

impl FenceDeadline for DeadlineRec {
    fn set_deadline(&self, seqno: u64, deadline: Instant<Monotonic>) {
        self.seqno.store(seqno, Relaxed);
        self.ns.store(deadline.as_nanos(), Relaxed);
        self.calls.fetch_add(1, Relaxed);
    }
}

fn life_queue(ring: &Arc<LifeRing>, capacity: u32, timeout_ms: i64) -> Result<Arc<LifeQueue>> {
    life_queue_on(ring, capacity, timeout_ms, &test_wqs()?)
}

fn life_queue_on(
    ring: &Arc<LifeRing>,
    capacity: u32,
    timeout_ms: i64,
    wqs: &JobQueueWorkqueues,
) -> Result<Arc<LifeQueue>> {
    let q = JobQueue::new(
        LifeDriver { ring: ring.clone() },
        c"jobqueue-test",
        c"life-ring",
        capacity,
        Delta::from_millis(timeout_ms),
        wqs,
    )?;
    Ok(Arc::new(q, GFP_KERNEL)?)
}

fn submit(q: &LifeQueue, deps: &[ARef<Fence>]) -> Result<ARef<Fence>> {
    let mut p = q.prepare(LifeJob { _queue: None }, 1)?;
    for d in deps {
        p.add_dependency(d.clone())?;
    }
    Ok(p.submit())
}

/// Signals nothing, but looks at the queue's counters, as a done-fence callback may.
struct StatsCb {
    queue: Arc<LifeQueue>,
    seen: Arc<Atomic<u32>>,
}

impl FenceCb for StatsCb {
    fn called(self) {
        let _ = self.queue.stats();
        self.seen.fetch_add(1, Relaxed);
    }
}

/// Holds a reference to a queue and drops it when the fence signals.
struct DropCb {
    _queue: Arc<LifeQueue>,
}

impl FenceCb for DropCb {
    fn called(self) {}
}

/// Busy-waits for 50 ms in a done-fence callback, that is inside the completion's signalling,
/// with interrupts off, after saying so.
struct SpinCb {
    entered: Arc<Atomic<u32>>,
}

impl FenceCb for SpinCb {
    fn called(self) {
        self.entered.store(1, Relaxed);
        let t0 = crate::time::Instant::<crate::time::Monotonic>::now();
        while t0.elapsed().as_millis() < 50 {
            core::hint::spin_loop();
        }
    }
}

#[macros::kunit_tests(rust_jobqueue_lifecycle)]
mod lifecycle_cases {
    use super::*;

    /// Item 1: a completion report beyond the jobs handed to `run()` (a bogus or "flush all"
    /// seqno), racing the run path from another CPU, never signals a job not yet run.
    #[test]
    fn race_complete_future_seqno_against_run() -> Result {
        const JOBS: usize = 400;
        let ring = LifeRing::new(0, TimeoutAction::Progressing)?;
        let q = life_queue(&ring, 4, 10_000)?;
        let stop = Arc::new(Atomic::new(0u32), GFP_KERNEL)?;
        let flooder = {
            let (q, stop) = (q.clone(), stop.clone());
            spawn(move || {
                let mut n = 0u32;
                while stop.load(Relaxed) == 0 {
                    q.complete(u64::MAX, Ok(()));
                    for _ in 0..200 {
                        core::hint::spin_loop();
                    }
                    n = n.wrapping_add(1);
                    if n % 64 == 0 {
                        // Let the submitter run on a single CPU (UML) too.
                        fsleep(Delta::from_micros(50));
                    }
                }
            })?
        };
        let mut last = None;
        for _ in 0..JOBS {
            last = Some(submit(&q, &[])?);
        }
        let last = last.ok_or(EINVAL)?;
        let waited = wait(&last);
        stop.store(1, Relaxed);
        flooder.join();
        waited?;
        assert_eq!(ring.ran.load(Relaxed), JOBS as u64);
        assert_eq!(ring.violations.load(Relaxed), 0);
        Ok(())
    }

    /// Item 2: `kill()` on one CPU while `run()` executes on another. No fence is cancelled
    /// while its job may be on the ring, and `run()` is never called once `kill()` returned.
    #[test]
    fn race_kill_against_run() -> Result {
        let mut rng = Rng(0x5eed_1234);
        for _ in 0..20 {
            let ring = LifeRing::new(200, TimeoutAction::Progressing)?;
            let q = life_queue(&ring, 64, 10_000)?;
            let mut fences = KVec::new();
            for _ in 0..16 {
                fences.push(submit(&q, &[])?, GFP_KERNEL)?;
            }
            let delay = rng.below(2000) as i64;
            let killer = {
                let (q, ring) = (q.clone(), ring.clone());
                spawn(move || {
                    fsleep(Delta::from_micros(delay));
                    q.kill();
                    if ring.stopped.load(Relaxed) == 0 {
                        ring.violation("kill() returned before the ring was stopped");
                    }
                    ring.killed.store(1, Relaxed);
                })?
            };
            killer.join();
            for f in fences.iter() {
                wait(f)?;
                let st = f.status();
                assert!(st == Some(Ok(())) || st == Some(Err(ECANCELED)));
            }
            assert_eq!(ring.violations.load(Relaxed), 0);
        }
        Ok(())
    }

    /// Item 3: the run path and the timeout path of one queue never run at the same time.
    ///
    /// The submissions alternate between the first two CPUs: on an unbound workqueue,
    /// `max_active` holds per NUMA node, so work queued from two nodes (the x86_64 leg boots
    /// two) may run at once unless the queue serialises its paths itself.
    #[test]
    fn race_run_against_timeout() -> Result {
        let ring = LifeRing::new(300, TimeoutAction::Progressing)?;
        let q = life_queue(&ring, 256, 1)?;
        let mut fences = KVec::new();
        let cpus = crate::cpu::nr_cpu_ids().min(2);
        for i in 0..200u32 {
            move_to_cpu(Some(i % cpus))?;
            fences.push(submit(&q, &[])?, GFP_KERNEL)?;
        }
        move_to_cpu(None)?;
        wait_for(5000, || ring.ran.load(Relaxed) == 200);
        assert_eq!(ring.ran.load(Relaxed), 200);
        wait_for(5000, || ring.timeouts.load(Relaxed) > 0);
        assert!(ring.timeouts.load(Relaxed) > 0);
        q.complete(u64::MAX, Ok(()));
        for f in fences.iter() {
            wait(f)?;
        }
        assert_eq!(ring.violations.load(Relaxed), 0);
        Ok(())
    }

    /// `flush()` returns once the last job's done fence signalled, also while a completion on
    /// another CPU has taken the jobs off the in-flight list and is still signalling them
    /// (here held up by a callback on the first one). The queue keeps no reference to the
    /// last fence: `flush()` finds it on the lists.
    #[test]
    fn race_flush_against_signalling_completion() -> Result {
        let ring = LifeRing::new(0, TimeoutAction::Progressing)?;
        let q = life_queue(&ring, 4, 10_000)?;
        let a = submit(&q, &[])?;
        let b = submit(&q, &[])?;
        assert!(wait_for(5000, || ring.ran.load(Relaxed) == 2));
        let entered = Arc::new(Atomic::new(0u32), GFP_KERNEL)?;
        let reg = KBox::try_pin_init(
            FenceCbRegistration::new(
                a.clone(),
                SpinCb {
                    entered: entered.clone(),
                },
            ),
            GFP_KERNEL,
        )
        .map_err(Error::from)?;
        // The completion on one CPU, `flush()` on the other (with one CPU, this shows
        // nothing: the callback is over before `flush()` runs).
        let cpus = crate::cpu::nr_cpu_ids();
        move_to_cpu(Some(0))?;
        let completer = {
            let (q, seqno) = (q.clone(), b.seqno());
            spawn(move || {
                if cpus > 1 {
                    let _ = move_to_cpu(Some(1));
                }
                q.complete(seqno, Ok(()));
                // A workqueue worker: it may run anywhere again.
                let _ = move_to_cpu(None);
            })?
        };
        assert!(wait_for(5000, || entered.load(Relaxed) != 0));
        q.flush(Delta::from_secs(10))?;
        // `b` signals in the batch that `a`'s callback holds up.
        let st = b.status();
        completer.join();
        move_to_cpu(None)?;
        drop(reg);
        assert_eq!(st, Some(Ok(())));
        assert_eq!(ring.violations.load(Relaxed), 0);
        Ok(())
    }

    /// A job handed behind one that leaves the ring while the job's `run()` executes starts
    /// its timeout when that one left, not when the timer next finds it (which could be a
    /// whole timeout later).
    #[test]
    fn race_timeout_start_against_completion_during_run() -> Result {
        const TIMEOUT_MS: i64 = 500;
        // `run()` and `timed_out()` take 100 ms.
        let ring = LifeRing::new(100_000, TimeoutAction::Progressing)?;
        let q = life_queue(&ring, 4, TIMEOUT_MS)?;
        // Returns after `run(a)`: `a` is on the ring, and the timeout is armed.
        let a = submit(&q, &[])?;
        let left = Arc::new(Atomic::new(0i64), GFP_KERNEL)?;
        let completer = {
            let (q, ring, left, seqno) = (q.clone(), ring.clone(), left.clone(), a.seqno());
            spawn(move || {
                // `a` leaves the ring while `run(b)` executes.
                if wait_for(5000, || {
                    ring.ran.load(Relaxed) == 1 && ring.inside.load(Relaxed) == 1
                }) {
                    let now = crate::time::Instant::<crate::time::Monotonic>::now();
                    left.store(now.as_nanos(), Relaxed);
                    q.complete(seqno, Ok(()));
                }
            })?
        };
        let b = submit(&q, &[])?;
        completer.join();
        wait(&a)?;
        let left = left.load(Relaxed);
        // `b` hangs: its first timeout comes one timeout after `a` left.
        let fired = wait_for(5000, || ring.timeouts.load(Relaxed) > 0);
        let now = crate::time::Instant::<crate::time::Monotonic>::now().as_nanos();
        let after_ms = (now - left) / 1_000_000;
        pr_info!("timeout_start: timed out {after_ms} ms after the job before it left\n");
        q.complete(u64::MAX, Ok(()));
        wait(&b)?;
        assert!(left != 0 && fired);
        assert!((TIMEOUT_MS * 4 / 5..TIMEOUT_MS * 3 / 2).contains(&after_ms));
        assert_eq!(ring.violations.load(Relaxed), 0);
        Ok(())
    }

    /// Item 4: a callback on a dependency looks at the queue's counters while the queue polls
    /// that dependency. Lockdep reports a queue lock held around the fence's lock.
    #[test]
    fn race_stats_from_callback_while_polling_deps() -> Result {
        let ring = LifeRing::new(0, TimeoutAction::Progressing)?;
        let q = life_queue(&ring, 4, 10_000)?;
        let fctx = foreign()?;
        let dep = foreign_fence(&fctx)?;
        let seen = Arc::new(Atomic::new(0u32), GFP_KERNEL)?;
        let reg = KBox::try_pin_init(
            FenceCbRegistration::new(
                dep.fence(),
                StatsCb {
                    queue: q.clone(),
                    seen: seen.clone(),
                },
            ),
            GFP_KERNEL,
        )
        .map_err(Error::from)?;
        let done = submit(&q, &[dep.fence()])?;
        // Let the queue poll (and arm its callback on) the dependency.
        fsleep(Delta::from_millis(20));
        let signaller = spawn(move || {
            let _ = dep.signal(Ok(()));
        })?;
        signaller.join();
        assert_eq!(seen.load(Relaxed), 1);
        drop(reg);
        // Complete the job once it is on the ring (an earlier report would be clamped).
        wait_for(5000, || ring.ran.load(Relaxed) == 1);
        q.complete(u64::MAX, Ok(()));
        wait(&done)?;
        assert!(lockdep_enabled());
        assert_eq!(ring.violations.load(Relaxed), 0);
        Ok(())
    }

    /// Item 6: a job cancelled by `kill()` signals only after its dependencies did, and the
    /// jobs after it wait for it (seqno order).
    #[test]
    fn race_cancel_waits_for_dependencies() -> Result {
        let ring = LifeRing::new(0, TimeoutAction::Progressing)?;
        let q = life_queue(&ring, 1, 10_000)?;
        let fctx = foreign()?;
        let dep = foreign_fence(&fctx)?;
        let a = submit(&q, &[])?;
        let b = submit(&q, &[dep.fence()])?;
        let c = submit(&q, &[])?;
        wait_for(5000, || ring.ran.load(Relaxed) == 1);
        let killer = {
            let (q, ring) = (q.clone(), ring.clone());
            spawn(move || {
                q.kill();
                ring.killed.store(1, Relaxed);
            })?
        };
        killer.join();
        wait(&a)?;
        assert_eq!(a.status(), Some(Err(ECANCELED)));
        fsleep(Delta::from_millis(20));
        // `b` waits for `dep`, `c` waits for `b`.
        assert_eq!(b.status(), None);
        assert_eq!(c.status(), None);
        let _ = dep.signal(Ok(()));
        wait(&b)?;
        wait(&c)?;
        assert_eq!(b.status(), Some(Err(ECANCELED)));
        assert_eq!(c.status(), Some(Err(ECANCELED)));
        assert_eq!(ring.violations.load(Relaxed), 0);
        Ok(())
    }

    /// Item 5: the last reference to the queue is dropped by a job that the queue's own work
    /// item drops (it did not run: its dependency failed).
    #[test]
    fn drop_last_ref_from_own_work() -> Result {
        let ring = LifeRing::new(0, TimeoutAction::Progressing)?;
        let q = life_queue(&ring, 4, 10_000)?;
        let fctx = foreign()?;
        let dep = foreign_fence(&fctx)?;
        let mut p = q.prepare(
            LifeJob {
                _queue: Some(q.clone()),
            },
            1,
        )?;
        p.add_dependency(dep.fence())?;
        let done = p.submit();
        drop(q);
        let _ = dep.signal(Err(EIO));
        wait(&done)?;
        assert_eq!(done.status(), Some(Err(EIO)));
        assert!(ring.wait_dropped(5000));
        Ok(())
    }

    /// Item 5: the last reference to the queue is dropped by a callback on one of its done
    /// fences, signalled by the queue's own timeout path.
    #[test]
    fn drop_last_ref_from_done_fence_callback() -> Result {
        let ring = LifeRing::new(0, TimeoutAction::Dead)?;
        let q = life_queue(&ring, 4, 20)?;
        let done = submit(&q, &[])?;
        let reg = KBox::try_pin_init(
            FenceCbRegistration::new(done.clone(), DropCb { _queue: q.clone() }),
            GFP_KERNEL,
        );
        assert!(reg.is_ok());
        drop(q);
        wait(&done)?;
        assert_eq!(done.status(), Some(Err(ETIMEDOUT)));
        assert!(ring.wait_dropped(5000));
        drop(reg);
        Ok(())
    }

    /// Item 5: the last reference to the queue is dropped with interrupts disabled.
    #[test]
    fn drop_last_ref_in_atomic_context() -> Result {
        let ring = LifeRing::new(0, TimeoutAction::Progressing)?;
        let q = life_queue(&ring, 4, 10_000)?;
        let done = submit(&q, &[])?;
        wait_for(5000, || ring.ran.load(Relaxed) == 1);
        let lock = KBox::pin_init(new_spinlock_irq!(()), GFP_KERNEL)?;
        {
            let _irqs_off = lock.lock();
            drop(q);
        }
        wait(&done)?;
        assert_eq!(done.status(), Some(Err(ECANCELED)));
        assert!(ring.wait_dropped(5000));
        Ok(())
    }

    /// A deadline hint on a done fence (`dma_fence_set_deadline()`) reaches the driver for the
    /// jobs on the ring it covers and, after `run()`, for each job it covers that runs later;
    /// and it reaches the dependency a waiting job waits for, as in drm_sched.
    #[test]
    fn deadline_reaches_driver_and_dependencies() -> Result {
        let ring = LifeRing::new(0, TimeoutAction::Progressing)?;
        let q = life_queue(&ring, 4, 10_000)?;
        let rec = Arc::new(
            DeadlineRec {
                calls: Atomic::new(0),
                seqno: Atomic::new(0),
                ns: Atomic::new(0),
            },
            GFP_KERNEL,
        )?;
        let fctx = FenceCtx::new_with_deadline(c"jobqueue-test", c"deadline-dep", rec.clone())?;
        let dep = fctx.new_fence(DriverFenceAllocation::new((), GFP_KERNEL)?);
        let a = submit(&q, &[])?;
        assert!(wait_for(5000, || ring.ran.load(Relaxed) == 1));
        let b = submit(&q, &[dep.fence()])?;
        let c = submit(&q, &[])?;
        // Let the queue arm its callback on `dep`.
        fsleep(Delta::from_millis(20));
        assert_eq!(rec.calls.load(Relaxed), 0);
        assert_eq!(ring.deadline_calls.load(Relaxed), 0);
        let deadline = Instant::<Monotonic>::now() + Delta::from_millis(16);
        c.set_deadline(deadline);
        // `a` is on the ring, `b` waits for `dep`.
        assert!(wait_for(5000, || rec.calls.load(Relaxed) == 1));
        assert_eq!(rec.seqno.load(Relaxed), dep.as_fence().seqno());
        assert_eq!(rec.ns.load(Relaxed), deadline.as_nanos());
        assert!(wait_for(5000, || ring.deadline_calls.load(Relaxed) == 1));
        assert_eq!(ring.deadline_seqno.load(Relaxed), a.seqno());
        assert_eq!(ring.deadline_ns.load(Relaxed), deadline.as_nanos());
        // A later, sooner hint is forwarded again; one for a later job is not needed.
        let sooner = deadline - Delta::from_millis(8);
        b.set_deadline(sooner);
        assert!(wait_for(5000, || rec.calls.load(Relaxed) == 2));
        assert_eq!(rec.ns.load(Relaxed), sooner.as_nanos());
        // `b` and `c` run once `dep` signalled: the driver hears of each.
        let _ = dep.signal(Ok(()));
        assert!(wait_for(5000, || ring.ran.load(Relaxed) == 3));
        assert!(wait_for(5000, || ring.deadline_seqno.load(Relaxed) == c.seqno()));
        assert_eq!(ring.deadline_ns.load(Relaxed), sooner.as_nanos());
        q.complete(u64::MAX, Ok(()));
        wait(&c)?;
        // Signalled fences take no hint.
        let calls = ring.deadline_calls.load(Relaxed);
        c.set_deadline(deadline);
        fsleep(Delta::from_millis(20));
        assert_eq!(ring.deadline_calls.load(Relaxed), calls);
        assert_eq!(rec.calls.load(Relaxed), 2);
        assert_eq!(ring.violations.load(Relaxed), 0);
        Ok(())
    }

    /// The direct run: a job that is ready when it is submitted reaches `run()` before
    /// `submit()` returns, in the submitter's task; jobs behind one waiting for a dependency
    /// wait, and the work item runs them once it signalled.
    #[test]
    fn direct_run_from_submitter() -> Result {
        let ring = LifeRing::new(0, TimeoutAction::Progressing)?;
        let q = life_queue(&ring, 4, 10_000)?;
        let me = crate::task::Task::current_raw() as usize;
        let a = submit(&q, &[])?;
        assert_eq!(ring.ran.load(Relaxed), 1);
        assert_eq!(ring.run_task.load(Relaxed), me);
        let fctx = foreign()?;
        let dep = foreign_fence(&fctx)?;
        let b = submit(&q, &[dep.fence()])?;
        let c = submit(&q, &[])?;
        fsleep(Delta::from_millis(20));
        assert_eq!(ring.ran.load(Relaxed), 1);
        assert_eq!(b.status(), None);
        let _ = dep.signal(Ok(()));
        assert!(wait_for(5000, || ring.ran.load(Relaxed) == 3));
        assert_ne!(ring.run_task.load(Relaxed), me);
        q.complete(u64::MAX, Ok(()));
        wait(&c)?;
        assert_eq!(a.status(), Some(Ok(())));
        assert_eq!(c.status(), Some(Ok(())));
        assert_eq!(ring.violations.load(Relaxed), 0);
        Ok(())
    }

    /// `kill()` from `run()` in a direct run returns at once: the submitter holds the driver
    /// lock, which the work item needs to stop the ring. The job, given to the ring, is
    /// cancelled once `stop()` returned.
    #[test]
    fn kill_from_run_in_direct_run() -> Result {
        let ring = LifeRing::new(0, TimeoutAction::Progressing)?;
        let q = life_queue(&ring, 4, 10_000)?;
        *ring.kill_queue.lock() = Some(q.clone());
        let submitted = Arc::new(Atomic::new(0u32), GFP_KERNEL)?;
        // In a worker: if `kill()` waited, only that worker would hang.
        let _submitter = {
            let (q, submitted) = (q.clone(), submitted.clone());
            spawn(move || {
                if let Ok(f) = submit(&q, &[]) {
                    drop(f);
                    submitted.store(1, Relaxed);
                }
            })?
        };
        assert!(wait_for(5000, || submitted.load(Relaxed) != 0));
        assert!(wait_for(5000, || ring.stopped.load(Relaxed) != 0));
        assert!(wait_for(5000, || q.stats().cancelled == 1));
        assert_eq!(ring.ran.load(Relaxed), 1);
        assert_eq!(ring.violations.load(Relaxed), 0);
        Ok(())
    }

    /// Queues sharing one ordered timeout workqueue form a reset domain: their timeout
    /// handlers never run at once, while their jobs run side by side.
    #[test]
    fn shared_timeout_wq_serialises_resets() -> Result {
        let wqs = test_wqs()?;
        assert!(wqs.timeout.is_ordered() && !wqs.submit.is_ordered());
        let domain = Arc::new(Atomic::new(0u32), GFP_KERNEL)?;
        let mut rings = KVec::new();
        let mut queues = KVec::new();
        let mut fences = KVec::new();
        for _ in 0..4 {
            let ring = LifeRing::in_domain(500, &domain)?;
            let q = life_queue_on(&ring, 8, 1, &wqs)?;
            for _ in 0..4 {
                fences.push(submit(&q, &[])?, GFP_KERNEL)?;
            }
            rings.push(ring, GFP_KERNEL)?;
            queues.push(q, GFP_KERNEL)?;
        }
        for r in rings.iter() {
            wait_for(5000, || r.timeouts.load(Relaxed) >= 3);
            assert!(r.timeouts.load(Relaxed) >= 3);
        }
        for q in queues.iter() {
            q.complete(u64::MAX, Ok(()));
        }
        for f in fences.iter() {
            wait(f)?;
        }
        for r in rings.iter() {
            assert_eq!(r.violations.load(Relaxed), 0);
        }
        Ok(())
    }

    /// A parked queue calls neither `run()` nor `timed_out()`, keeps accepting jobs, and
    /// pauses the running job's timeout; unparking runs the waiting jobs and resumes the
    /// timeout.
    #[test]
    fn park_holds_run_and_timeout() -> Result {
        let ring = LifeRing::new(0, TimeoutAction::Progressing)?;
        let q = life_queue(&ring, 8, 200)?;
        let first = submit(&q, &[])?;
        assert!(wait_for(5000, || ring.ran.load(Relaxed) == 1));
        q.park();
        assert!(q.is_parked());
        let later = [submit(&q, &[])?, submit(&q, &[])?];
        // Three times the timeout: nothing runs, nothing times out.
        fsleep(Delta::from_millis(600));
        assert_eq!(ring.ran.load(Relaxed), 1);
        assert_eq!(ring.timeouts.load(Relaxed), 0);
        assert!(!first.is_signaled() && !later[0].is_signaled());
        assert_eq!(q.stats().pending, 2);
        q.unpark();
        assert!(!q.is_parked());
        assert!(wait_for(5000, || ring.ran.load(Relaxed) == 3));
        // The first job's timeout goes on from where it was parked.
        assert!(wait_for(5000, || ring.timeouts.load(Relaxed) > 0));
        q.complete(u64::MAX, Ok(()));
        wait(&first)?;
        for f in later.iter() {
            wait(f)?;
            assert_eq!(f.status(), Some(Ok(())));
        }
        assert_eq!(ring.violations.load(Relaxed), 0);
        Ok(())
    }

    /// `ResetAndReplay`: only the guilty job gets `-ETIMEDOUT`; the jobs behind it stay in
    /// flight, get a fresh timeout, and complete normally when the driver reports them.
    #[test]
    fn reset_and_replay_keeps_innocent_jobs() -> Result {
        let ring = LifeRing::new(0, TimeoutAction::Progressing)?;
        ring.replay.store(1, Relaxed);
        let q = life_queue(&ring, 8, 300)?;
        let jobs = [submit(&q, &[])?, submit(&q, &[])?, submit(&q, &[])?];
        assert!(wait_for(5000, || ring.ran.load(Relaxed) == 3));
        wait(&jobs[0])?;
        assert_eq!(jobs[0].status(), Some(Err(ETIMEDOUT)));
        assert!(!jobs[1].is_signaled() && !jobs[2].is_signaled());
        assert_eq!(q.stats().in_flight, 2);
        // The driver replays them and reports them done.
        q.complete(jobs[2].seqno(), Ok(()));
        for f in jobs[1..].iter() {
            wait(f)?;
            assert_eq!(f.status(), Some(Ok(())));
        }
        let st = q.stats();
        assert_eq!((st.timed_out, st.completed, st.credits_in_use), (1, 2, 0));
        assert_eq!(ring.violations.load(Relaxed), 0);
        Ok(())
    }

    /// `ResetAndReplay` where the replayed jobs finish while `timed_out()` still executes:
    /// their report covers the guilty job, which must still get `-ETIMEDOUT`, and the
    /// innocent ones complete.
    #[test]
    fn reset_and_replay_report_during_timed_out() -> Result {
        let ring = LifeRing::new(0, TimeoutAction::Progressing)?;
        let q = life_queue(&ring, 8, 300)?;
        let jobs = [submit(&q, &[])?, submit(&q, &[])?, submit(&q, &[])?];
        assert!(wait_for(5000, || ring.ran.load(Relaxed) == 3));
        ring.replay_report.store(jobs[2].seqno(), Relaxed);
        *ring.replay_queue.lock() = Some(q.clone());
        ring.replay.store(1, Relaxed);
        for f in jobs.iter() {
            wait(f)?;
        }
        assert_eq!(jobs[0].status(), Some(Err(ETIMEDOUT)));
        assert_eq!(jobs[1].status(), Some(Ok(())));
        assert_eq!(jobs[2].status(), Some(Ok(())));
        let st = q.stats();
        assert_eq!((st.timed_out, st.completed, st.credits_in_use), (1, 2, 0));
        assert_eq!(ring.violations.load(Relaxed), 0);
        Ok(())
    }

    /// The queue's ring time counts the time during which the ring held a job, overlapping
    /// jobs once; jobs that did not run count nothing.
    #[test]
    fn busy_time_counts_overlap_once() -> Result {
        let ring = LifeRing::new(0, TimeoutAction::Progressing)?;
        let q = life_queue(&ring, 8, 10_000)?;
        let t0 = crate::time::Instant::<crate::time::Monotonic>::now();
        let a = submit(&q, &[])?;
        let b = submit(&q, &[])?;
        assert!(wait_for(5000, || ring.ran.load(Relaxed) == 2));
        // Both jobs are on the ring for at least the sleep, as the monotonic clock saw it
        // (under QEMU TCG, a jiffies-based sleep of 50 ms can last less than that).
        let s0 = crate::time::Instant::<crate::time::Monotonic>::now();
        fsleep(Delta::from_millis(50));
        let slept = s0.elapsed().as_nanos() as u64;
        q.complete(b.seqno(), Ok(()));
        wait(&a)?;
        wait(&b)?;
        let elapsed = t0.elapsed().as_nanos() as u64;
        let busy = q.stats().busy_ns;
        pr_info!("busy_time: {busy} ns of ring time in {elapsed} ns (slept {slept} ns)\n");
        assert!(slept > 0 && busy >= slept && busy <= elapsed);
        // The driver was told about each job, and its times add up to the same ring time.
        assert_eq!(ring.done_jobs.load(Relaxed), 2);
        assert_eq!(ring.done_ring_ns.load(Relaxed), busy);
        assert_eq!(ring.done_bad.load(Relaxed), 0);
        let last = q.last_job().ok_or(EINVAL)?;
        assert_eq!(last.seqno, b.seqno());
        // `b` was handed while `a` held the ring: it got the ring when `a` left it, which was
        // when it finished too (one report for both).
        assert_eq!(last.started_ns, last.finished_ns);
        assert_eq!(last.ring_ns, 0);
        // A job whose dependency failed does not run and adds nothing.
        let fctx = foreign()?;
        let dep = foreign_fence(&fctx)?;
        let failed = submit(&q, &[dep.fence()])?;
        let _ = dep.signal(Err(EIO));
        wait(&failed)?;
        assert_eq!(q.stats().busy_ns, busy);
        assert_eq!(ring.done_jobs.load(Relaxed), 2);
        Ok(())
    }

    /// Killing a parked queue stops the ring and cancels its jobs.
    #[test]
    fn kill_parked_queue() -> Result {
        let ring = LifeRing::new(0, TimeoutAction::Progressing)?;
        let q = life_queue(&ring, 8, 10_000)?;
        let ran = submit(&q, &[])?;
        assert!(wait_for(5000, || ring.ran.load(Relaxed) == 1));
        q.park();
        let waiting = submit(&q, &[])?;
        q.kill();
        ring.killed.store(1, Relaxed);
        assert_eq!(ring.stopped.load(Relaxed), 1);
        wait(&ran)?;
        wait(&waiting)?;
        assert_eq!(ran.status(), Some(Err(ECANCELED)));
        assert_eq!(waiting.status(), Some(Err(ECANCELED)));
        assert_eq!(ring.ran.load(Relaxed), 1);
        assert_eq!(ring.violations.load(Relaxed), 0);
        Ok(())
    }

    #[test]
    fn lockdep_still_enabled() {
        assert!(lockdep_enabled());
    }
}
