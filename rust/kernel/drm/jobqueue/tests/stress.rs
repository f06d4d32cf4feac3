// SPDX-License-Identifier: GPL-2.0

//! `rust_jobqueue_stress`: 64k jobs in flight, a randomized dependency DAG across queues, and
//! submitters racing on several CPUs.

use super::*;

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
mod stress_cases {
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
            let done = {
                let (m, l) = (meeting.clone(), lock1.clone());
                spawn(move || m.attend(1, &l))?
            };
            meeting.attend(0, &lock0);
            done.join();
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
