// SPDX-License-Identifier: GPL-2.0

//! `rust_jobqueue`: the drm_sched scenarios, and dependency, timeout, teardown and
//! no-allocation cases.

use super::*;

#[macros::kunit_tests(rust_jobqueue)]
mod scenario_cases {
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
            let done = spawn(move || {
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
            })?;
            dones.push(done, GFP_KERNEL)?;
        }
        for d in dones.iter() {
            d.join();
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
            let done = spawn(move || {
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
            })?;
            dones.push(done, GFP_KERNEL)?;
        }
        fsleep(Delta::from_millis(3));
        rig.q.kill();
        for d in dones.iter() {
            d.join();
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
        if !gfp_kernel_faults() {
            return Ok(());
        }
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
        // Arms this task's fault injection: its next allocation fails.
        fail_nth::arm(1);
        for p in prepared.drain_all() {
            // `push` stays within the capacity reserved above.
            let _ = fences.push(p.submit(), GFP_NOWAIT);
        }
        // The dependency callbacks run here, in this task. The jobs are now ready but wait
        // for the blocker's credits.
        let _ = gate.signal(Ok(()));
        let untouched_submit = fail_nth::remaining() == 1;
        // The blocker's completion (as from the interrupt handler) returns all credits.
        let n = rig.hw.advance(1);
        let untouched_unblock = fail_nth::disarm() == 1;
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
        fail_nth::arm(1);
        let n = rig.hw.advance(N);
        let untouched_complete = fail_nth::disarm() == 1;
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
