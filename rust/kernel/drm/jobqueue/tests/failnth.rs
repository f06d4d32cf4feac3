// SPDX-License-Identifier: GPL-2.0

//! `rust_jobqueue_failnth`: every allocation of queue creation, prepare and dependency setup
//! fails cleanly (the syzkaller fail-nth technique).

use super::*;

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
        let (r, hit) = fail_nth::with(k, &mut f);
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
            crate::kunit::diagnostic(format_args!("faults injected: {injected}"));
            return Ok((ok, injected));
        }
    }
    Err(EINVAL)
}

#[macros::kunit_tests(rust_jobqueue_failnth)]
mod failnth_cases {
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
