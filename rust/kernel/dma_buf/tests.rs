// SPDX-License-Identifier: GPL-2.0

//! KUnit tests for the dma_fence abstractions.
//!
//! `rust_dma_fence` mirrors the twelve cases of the C suite `dma-buf-fence`
//! (`drivers/dma-buf/st-dma-fence.c`) against the Rust API; `rust_dma_fence_ext` covers what
//! is specific to the Rust types. Both end by checking that lockdep is still running.

/// Shared helpers of both suites.
mod util {
    use crate::{
        dma_buf::{
            DriverFence,
            DriverFenceAllocation,
            Fence,
            FenceCb,
            FenceCtx, //
        },
        kunit::Spawned,
        prelude::*,
        sync::{
            aref::ARef,
            atomic::{
                Atomic,
                Relaxed, //
            },
            Arc, //
        },
    };

    pub(super) fn ctx() -> Result<Arc<FenceCtx>> {
        FenceCtx::new(c"rust-dma-fence-test", c"kunit")
    }

    pub(super) fn fence(ctx: &Arc<FenceCtx>) -> Result<DriverFence<()>> {
        Ok(ctx.new_fence(DriverFenceAllocation::new((), GFP_KERNEL)?))
    }

    /// Counts its calls in a shared counter.
    pub(super) struct Count(pub(super) Arc<Atomic<u32>>);

    impl FenceCb for Count {
        fn called(self) {
            self.0.fetch_add(1, Relaxed);
        }
    }

    pub(super) fn counter() -> Result<Arc<Atomic<u32>>> {
        Ok(Arc::new(Atomic::new(0), GFP_KERNEL)?)
    }

    /// Makes `n` fences of a new timeline and signals them in order from a work item (another
    /// CPU, where there is one), pausing now and then. Returns the consumers' references, and
    /// a completion signalled once all have signalled.
    pub(super) fn signal_elsewhere(n: usize) -> Result<(KVec<ARef<Fence>>, Spawned)> {
        let ctx = ctx()?;
        let mut drivers = KVec::with_capacity(n, GFP_KERNEL)?;
        let mut consumers = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            let f = fence(&ctx)?;
            consumers.push(f.fence(), GFP_KERNEL)?;
            drivers.push(f, GFP_KERNEL)?;
        }
        let done = spawn(move || {
            for (i, f) in drivers.into_iter().enumerate() {
                if i % 16 == 0 {
                    crate::time::delay::fsleep(crate::time::Delta::from_micros(20));
                }
                let _ = f.signal(Ok(()));
            }
        })?;
        Ok((consumers, done))
    }

    pub(super) use crate::kunit::spawn;

    /// Returns whether the current thread is inside a fence signalling section (always `true`
    /// in atomic context, and without lockdep).
    pub(super) fn in_signalling_section() -> bool {
        #[cfg(CONFIG_LOCKDEP)]
        {
            // SAFETY: Always safe to call; the cookie goes back to `end` on this thread.
            let cookie = unsafe { crate::bindings::dma_fence_begin_signalling() };
            // SAFETY: The cookie came from `dma_fence_begin_signalling()` just above.
            unsafe { crate::bindings::dma_fence_end_signalling(cookie) };
            cookie
        }
        #[cfg(not(CONFIG_LOCKDEP))]
        {
            true
        }
    }
}

#[macros::kunit_tests(rust_dma_fence)]
mod mirror {
    use super::util::*;
    use crate::{
        dma_buf::{
            CallbackError,
            Fence,
            FenceCbRegistration, //
        },
        kunit::lockdep_enabled,
        prelude::*,
        sync::atomic::Relaxed,
        time::{
            delay::fsleep,
            Delta, //
        },
    };

    #[test]
    fn sanitycheck() -> Result {
        let ctx = ctx()?;
        let f = fence(&ctx)?;
        let _ = f.signal(Ok(()));
        Ok(())
    }

    #[test]
    fn signaling() -> Result {
        let ctx = ctx()?;
        let f = fence(&ctx)?;
        let consumer = f.fence();
        assert!(!consumer.is_signaled());
        let _ = f.signal(Ok(()));
        assert!(consumer.is_signaled());
        // Signalling twice, which the C test checks fails, cannot be written: `signal`
        // consumed the `DriverFence`.
        Ok(())
    }

    #[test]
    fn add_callback() -> Result {
        let ctx = ctx()?;
        let f = fence(&ctx)?;
        let n = counter()?;
        let reg = KBox::try_pin_init(
            FenceCbRegistration::new(f.fence(), Count(n.clone())),
            GFP_KERNEL,
        )?;
        assert_eq!(n.load(Relaxed), 0);
        let _ = f.signal(Ok(()));
        assert_eq!(n.load(Relaxed), 1);
        drop(reg);
        assert_eq!(n.load(Relaxed), 1);
        Ok(())
    }

    #[test]
    fn late_add_callback() -> Result {
        let ctx = ctx()?;
        let f = fence(&ctx)?;
        let consumer = f.fence();
        let _ = f.signal(Ok(()));
        let n = counter()?;
        match KBox::try_pin_init(
            FenceCbRegistration::new(consumer, Count(n.clone())),
            GFP_KERNEL,
        ) {
            Err(CallbackError::AlreadySignaled(cb)) => drop(cb),
            _ => panic!("registration on a signalled fence did not fail"),
        }
        assert_eq!(n.load(Relaxed), 0);
        Ok(())
    }

    #[test]
    fn rm_callback() -> Result {
        let ctx = ctx()?;
        let f = fence(&ctx)?;
        let n = counter()?;
        let reg = KBox::try_pin_init(
            FenceCbRegistration::new(f.fence(), Count(n.clone())),
            GFP_KERNEL,
        )?;
        drop(reg);
        let _ = f.signal(Ok(()));
        assert_eq!(n.load(Relaxed), 0);
        Ok(())
    }

    #[test]
    fn late_rm_callback() -> Result {
        let ctx = ctx()?;
        let f = fence(&ctx)?;
        let n = counter()?;
        let mut reg = KBox::try_pin_init(
            FenceCbRegistration::new(f.fence(), Count(n.clone())),
            GFP_KERNEL,
        )?;
        let _ = f.signal(Ok(()));
        assert_eq!(n.load(Relaxed), 1);
        // Removing after it ran finds nothing to remove.
        assert!(reg.as_mut().cancel().is_none());
        assert_eq!(n.load(Relaxed), 1);
        Ok(())
    }

    #[test]
    fn status() -> Result {
        let ctx = ctx()?;
        let f = fence(&ctx)?;
        let consumer = f.fence();
        assert_eq!(consumer.status(), None);
        let _ = f.signal(Ok(()));
        assert_eq!(consumer.status(), Some(Ok(())));
        Ok(())
    }

    #[test]
    fn error() -> Result {
        let ctx = ctx()?;
        let f = fence(&ctx)?;
        let consumer = f.fence();
        assert_eq!(consumer.status(), None);
        let _ = f.signal(Err(EIO));
        assert!(consumer.is_signaled());
        assert_eq!(consumer.status(), Some(Err(EIO)));
        Ok(())
    }

    #[test]
    fn wait() -> Result {
        let ctx = ctx()?;
        let f = fence(&ctx)?;
        let consumer = f.fence();
        assert_eq!(consumer.wait_timeout(false, Delta::ZERO), Err(ETIMEDOUT));
        let _ = f.signal(Ok(()));
        assert!(consumer.wait_timeout(false, Delta::ZERO).is_ok());
        consumer.wait(false)?;
        consumer.wait(true)?;
        Ok(())
    }

    #[test]
    fn wait_timeout() -> Result {
        let ctx = ctx()?;
        let f = fence(&ctx)?;
        let consumer = f.fence();
        assert_eq!(
            consumer.wait_timeout(false, Delta::from_millis(2)),
            Err(ETIMEDOUT)
        );
        // Signal from a work item while we wait.
        let done = spawn(move || {
            fsleep(Delta::from_millis(10));
            let _ = f.signal(Ok(()));
        })?;
        let left = consumer.wait_timeout(false, Delta::from_millis(5000))?;
        assert!(left > 0);
        assert!(consumer.is_signaled());
        done.join();
        Ok(())
    }

    #[test]
    fn stub() -> Result {
        let stub = Fence::stub();
        assert!(stub.is_signaled());
        assert_eq!(stub.status(), Some(Ok(())));
        stub.wait(false)?;
        Ok(())
    }

    /// Registration and removal race with signalling from another thread (a work item). For
    /// every fence, the callback either ran exactly once or was handed back uncalled.
    #[test]
    fn race_signal_callback() -> Result {
        const N: usize = 256;
        for pass in 0..2 {
            let (consumers, done) = signal_elsewhere(N)?;
            for (i, c) in consumers.iter().enumerate() {
                let n = counter()?;
                match KBox::try_pin_init(
                    FenceCbRegistration::new(c.clone(), Count(n.clone())),
                    GFP_KERNEL,
                ) {
                    Ok(mut reg) => {
                        if pass == 1 && i % 8 == 0 {
                            fsleep(Delta::from_micros(10));
                        }
                        let handed_back = reg.as_mut().cancel().is_some();
                        drop(reg);
                        assert_eq!(n.load(Relaxed) + u32::from(handed_back), 1);
                    }
                    Err(CallbackError::AlreadySignaled(_)) => {
                        assert!(c.is_signaled());
                        assert_eq!(n.load(Relaxed), 0);
                    }
                    Err(CallbackError::Other(e)) => return Err(e),
                }
            }
            done.join();
            for c in consumers.iter() {
                assert_eq!(c.status(), Some(Ok(())));
            }
        }
        Ok(())
    }

    #[test]
    fn lockdep_still_enabled() {
        assert!(lockdep_enabled());
    }
}

#[macros::kunit_tests(rust_dma_fence_ext)]
mod ext {
    use super::util::*;
    use crate::{
        bindings,
        dma_buf::{
            signalling,
            CallbackError,
            DriverFence,
            DriverFenceAllocation,
            Fence,
            FenceCb,
            FenceCbRegistration,
            FenceCbSlot,
            FenceWorkqueue,
            SignallingSection,
            SignallingWorkItem, //
        },
        kunit::{
            lockdep_enabled,
            move_to_cpu,
            ExpectSplat, //
        },
        prelude::*,
        sync::{
            atomic::{
                Acquire,
                Atomic,
                Relaxed,
                Release, //
            },
            new_mutex,
            new_spinlock_irq,
            rcu::{
                self,
                RcuBox, //
            },
            Arc,
            Mutex,
            SpinLockIrq, //
        },
        time::{
            delay::fsleep,
            Delta, //
        },
        xarray::{
            AllocKind,
            XArray, //
        },
    };
    use core::ptr::NonNull;

    /// A work item for the fence workqueue cases: records whether it ran in a signalling
    /// section (and out of it while suspended), and whether two ran at once.
    #[pin_data]
    struct Probe {
        #[pin]
        work: crate::workqueue::Work<Probe>,
        shared: Arc<ProbeShared>,
    }

    struct ProbeShared {
        running: Atomic<u32>,
        overlaps: Atomic<u32>,
        outside: Atomic<u32>,
        not_suspended: Atomic<u32>,
        done: Atomic<u32>,
    }

    crate::workqueue::impl_has_work! {
        impl HasWork<Self> for Probe { self.work }
    }

    impl SignallingWorkItem for Probe {
        type Pointer = Arc<Self>;

        fn run(this: Arc<Self>, mut section: SignallingSection) {
            let s = &this.shared;
            if !in_signalling_section() {
                s.outside.fetch_add(1, Relaxed);
            }
            if s.running.fetch_add(1, Relaxed) != 0 {
                s.overlaps.fetch_add(1, Relaxed);
            }
            fsleep(Delta::from_micros(300));
            s.running.fetch_sub(1, Relaxed);
            if section.suspend(in_signalling_section) && lockdep_enabled() {
                s.not_suspended.fetch_add(1, Relaxed);
            }
            s.done.fetch_add(1, Relaxed);
        }
    }

    /// Runs eight probes on `wq`; returns the shared record once all ran.
    fn run_probes(wq: &FenceWorkqueue) -> Result<Arc<ProbeShared>> {
        let shared = Arc::new(
            ProbeShared {
                running: Atomic::new(0),
                overlaps: Atomic::new(0),
                outside: Atomic::new(0),
                not_suspended: Atomic::new(0),
                done: Atomic::new(0),
            },
            GFP_KERNEL,
        )?;
        for _ in 0..8 {
            let sh = shared.clone();
            let p = Arc::pin_init(
                pin_init!(Probe {
                    work <- crate::workqueue::new_work!("Probe::work"),
                    shared: sh,
                }),
                GFP_KERNEL,
            )?;
            assert!(wq.enqueue(p).is_ok());
        }
        for _ in 0..5000 {
            if shared.done.load(Relaxed) == 8 {
                break;
            }
            fsleep(Delta::from_millis(1));
        }
        assert_eq!(shared.done.load(Relaxed), 8);
        Ok(shared)
    }

    /// Every work item on a fence workqueue runs in a signalling section (which it can
    /// suspend), and the ordered flavour runs one at a time.
    #[test]
    fn fence_workqueue_runs_in_signalling_sections() -> Result {
        let ordered = FenceWorkqueue::new_ordered(c"rust-dma-fence-test-ordered")?;
        assert!(ordered.is_ordered());
        let s = run_probes(&ordered)?;
        assert_eq!(s.outside.load(Relaxed), 0);
        assert_eq!(s.not_suspended.load(Relaxed), 0);
        assert_eq!(s.overlaps.load(Relaxed), 0);
        let unordered = FenceWorkqueue::new(c"rust-dma-fence-test")?;
        assert!(!unordered.is_ordered());
        let s = run_probes(&unordered)?;
        assert_eq!(s.outside.load(Relaxed), 0);
        assert_eq!(s.not_suspended.load(Relaxed), 0);
        pr_info!(
            "fence workqueue: {} overlapping runs on the unordered queue\n",
            s.overlaps.load(Relaxed)
        );
        Ok(())
    }

    /// One slot, armed on fence after fence while another thread signals them: for every
    /// fence the callback either ran once or `disarm()` handed it back, and re-arming a slot
    /// whose callback is running on another CPU waits for that callback.
    #[test]
    fn callback_slot_rearm_races_signal() -> Result {
        const N: usize = 512;
        let (consumers, done) = signal_elsewhere(N)?;
        let mut slot = KBox::pin_init(FenceCbSlot::new(), GFP_KERNEL)?;
        let mut counters = KVec::with_capacity(N, GFP_KERNEL)?;
        let mut already = 0;
        for c in consumers.iter() {
            let n = counter()?;
            counters.push(n.clone(), GFP_KERNEL)?;
            match slot.as_mut().arm(c.clone(), Count(n.clone())) {
                Ok(()) => {
                    assert!(slot.is_armed());
                    let handed_back = slot.as_mut().disarm().is_some();
                    assert!(!slot.is_armed());
                    assert_eq!(n.load(Relaxed) + u32::from(handed_back), 1);
                }
                Err(CallbackError::AlreadySignaled(_)) => {
                    assert!(c.is_signaled());
                    assert!(!slot.is_armed());
                    already += 1;
                }
                Err(CallbackError::Other(e)) => return Err(e),
            }
        }
        // Armed on the last fence and left armed: the slot's drop disarms it.
        let last = consumers.last().ok_or(EINVAL)?.clone();
        let n = counter()?;
        let armed = slot.as_mut().arm(last, Count(n.clone())).is_ok();
        done.join();
        drop(slot);
        assert_eq!(n.load(Relaxed), u32::from(armed));
        for (i, n) in counters.iter().enumerate() {
            if n.load(Relaxed) > 1 {
                pr_err!("fence {i}: callback ran twice\n");
            }
            assert!(n.load(Relaxed) <= 1);
        }
        pr_info!("callback slot: {already} of {N} fences had signalled before arming\n");
        Ok(())
    }

    #[test]
    fn drop_unsignalled_cancels() -> Result {
        let ctx = ctx()?;
        let f = fence(&ctx)?;
        let consumer = f.fence();
        {
            let _expect = ExpectSplat::new(c"driver-fence-dropped-unsignalled");
            drop(f);
        }
        assert_eq!(consumer.status(), Some(Err(ECANCELED)));
        Ok(())
    }

    /// A callback that carries a resource, a fence, and hands it over when called.
    ///
    /// It must not signal the fence itself: callbacks run under the signalled fence's lock, and
    /// signalling another fence there nests two fence locks of the same lockdep class.
    struct HandOver(DriverFence<u32>, Arc<SpinLockIrq<Option<DriverFence<u32>>>>);

    impl FenceCb for HandOver {
        fn called(self) {
            *self.1.lock() = Some(self.0);
        }
    }

    #[test]
    fn already_signaled_returns_callback_intact() -> Result {
        let ctx = ctx()?;
        let other = ctx.new_fence(DriverFenceAllocation::new(7u32, GFP_KERNEL)?);
        let other_consumer = other.fence();
        // Fence callbacks may run in hard interrupt context: locks they take must be irq-safe.
        let slot = Arc::pin_init(new_spinlock_irq!(None), GFP_KERNEL)?;
        let cb = HandOver(other, slot.clone());
        let back = match KBox::try_pin_init(FenceCbRegistration::new(Fence::stub(), cb), GFP_KERNEL)
        {
            Err(CallbackError::AlreadySignaled(cb)) => cb,
            _ => panic!("registration on the stub fence did not fail"),
        };
        // Not called, still holding its unsignalled fence with its data.
        assert!(slot.lock().is_none());
        assert!(!other_consumer.is_signaled());
        assert_eq!(*back.0, 7);
        // The callback can still be used: register it on a live fence (of another timeline:
        // a later fence of `ctx` would wait for `other`).
        let ctx2 = super::util::ctx()?;
        let first = fence(&ctx2)?;
        let reg = KBox::try_pin_init(FenceCbRegistration::new(first.fence(), back), GFP_KERNEL)?;
        let _ = first.signal(Ok(()));
        drop(reg);
        let handed = slot.lock().take().ok_or(EINVAL)?;
        assert_eq!(*handed, 7);
        let _ = handed.signal(Ok(()));
        assert_eq!(other_consumer.status(), Some(Ok(())));
        Ok(())
    }

    #[test]
    fn xarray_round_trip() -> Result {
        let ctx = ctx()?;
        let xa = KBox::pin_init(
            XArray::<DriverFence<u32>>::new(AllocKind::Alloc),
            GFP_KERNEL,
        )?;
        let mut consumers = KVec::new();
        for i in 0..8u32 {
            let f = ctx.new_fence(DriverFenceAllocation::new(i * 10, GFP_KERNEL)?);
            consumers.push(f.fence(), GFP_KERNEL)?;
            assert!(xa.lock().store(i as usize, f, GFP_KERNEL)?.is_none());
        }
        {
            let guard = xa.lock();
            let b = guard.get(3).ok_or(ENOENT)?;
            assert_eq!(*b, 30);
            assert_eq!(b.as_fence().seqno(), consumers[3].seqno());
            assert!(!b.as_fence().is_signaled());
        }
        for i in 0..8usize {
            let f = xa.lock().remove(i).ok_or(ENOENT)?;
            assert_eq!(*f.data(), i as u32 * 10);
            let _ = f.signal(if i % 2 == 0 { Ok(()) } else { Err(EIO) });
        }
        for (i, c) in consumers.iter().enumerate() {
            assert_eq!(c.status(), Some(if i % 2 == 0 { Ok(()) } else { Err(EIO) }));
        }
        Ok(())
    }

    #[test]
    fn xarray_drop_cancels_stored_fences() -> Result {
        let ctx = ctx()?;
        let xa = KBox::pin_init(XArray::<DriverFence<()>>::new(AllocKind::Alloc), GFP_KERNEL)?;
        let f = fence(&ctx)?;
        let consumer = f.fence();
        xa.lock().store(0, f, GFP_KERNEL)?;
        {
            let _expect = ExpectSplat::new(c"xarray-dropped-unsignalled-fence");
            drop(xa);
        }
        assert_eq!(consumer.status(), Some(Err(ECANCELED)));
        Ok(())
    }

    struct DropCounter(&'static Atomic<u32>);

    impl Drop for DropCounter {
        fn drop(&mut self) {
            self.0.fetch_add(1, Relaxed);
        }
    }

    #[test]
    fn rcu_box_data_dropped_after_grace_period() -> Result {
        static DROPS: Atomic<u32> = Atomic::new(0);
        let ctx = ctx()?;
        let data = RcuBox::new(DropCounter(&DROPS), GFP_KERNEL)?;
        let f = ctx.new_fence(DriverFenceAllocation::new(data, GFP_KERNEL)?);
        let guard = rcu::read_lock();
        let _ = f.signal(Ok(()));
        // Signalled and the `RcuBox` dropped, but a reader is still in its critical section.
        assert_eq!(DROPS.load(Relaxed), 0);
        drop(guard);
        rcu::rcu_barrier();
        assert_eq!(DROPS.load(Relaxed), 1);
        Ok(())
    }

    #[test]
    fn c_fence_as_fence() -> Result {
        // A fence made by C code, owned through a reference the C code gave us.
        // SAFETY: Returns a new fence with one reference, or NULL on allocation failure.
        let raw = unsafe { bindings::dma_fence_allocate_private_stub(0) };
        let raw = NonNull::new(raw).ok_or(ENOMEM)?;
        // SAFETY: `raw` is an initialised fence and we own its reference.
        let c_fence = unsafe { Fence::from_raw_owned(raw) };
        assert!(c_fence.is_signaled());
        assert_eq!(c_fence.status(), Some(Ok(())));
        let n = counter()?;
        assert!(matches!(
            KBox::try_pin_init(
                FenceCbRegistration::new(c_fence.clone(), Count(n)),
                GFP_KERNEL
            ),
            Err(CallbackError::AlreadySignaled(_))
        ));
        c_fence.wait(false)?;
        // Borrowed form, from a C pointer we keep a reference to.
        // SAFETY: `c_fence` keeps the fence alive while `b` is used.
        let b = unsafe { Fence::from_raw(c_fence.as_raw()) };
        assert_eq!(b.context(), c_fence.context());
        Ok(())
    }

    /// Records the seqno of the fence it was registered on, in the order callbacks run.
    struct Record(u64, Arc<SpinLockIrq<KVec<u64>>>);

    impl FenceCb for Record {
        fn called(self) {
            let _ = self.1.lock().push_within_capacity(self.0);
        }
    }

    #[test]
    fn out_of_order_signal_waits_for_earlier() -> Result {
        let ctx = ctx()?;
        let (a, b, c) = (fence(&ctx)?, fence(&ctx)?, fence(&ctx)?);
        let consumers = [a.fence(), b.fence(), c.fence()];
        let seen = Arc::pin_init(
            new_spinlock_irq!(KVec::<u64>::with_capacity(3, GFP_KERNEL)?),
            GFP_KERNEL,
        )?;
        let mut regs = KVec::new();
        for f in consumers.iter() {
            let reg = KBox::try_pin_init(
                FenceCbRegistration::new(f.clone(), Record(f.seqno(), seen.clone())),
                GFP_KERNEL,
            )
            .map_err(Error::from)?;
            regs.push(reg, GFP_KERNEL)?;
        }
        // The later fences are signalled first: they wait for `a`.
        let _ = c.signal(Err(EIO));
        let _ = b.signal(Ok(()));
        assert!(consumers.iter().all(|f| !f.is_signaled()));
        let _ = a.signal(Ok(()));
        assert_eq!(consumers[0].status(), Some(Ok(())));
        assert_eq!(consumers[1].status(), Some(Ok(())));
        assert_eq!(consumers[2].status(), Some(Err(EIO)));
        let order = seen.lock();
        assert_eq!(
            &order[..],
            &[
                consumers[0].seqno(),
                consumers[1].seqno(),
                consumers[2].seqno()
            ]
        );
        Ok(())
    }

    #[test]
    fn seqnos_rise_strictly() -> Result {
        let ctx = ctx()?;
        let mut last = 0;
        for _ in 0..64 {
            let f = fence(&ctx)?;
            let s = f.as_fence().seqno();
            assert!(s > last);
            assert_eq!(f.as_fence().context(), ctx.context());
            last = s;
            let _ = f.signal(Ok(()));
        }
        Ok(())
    }

    #[test]
    fn seqnos_unique_under_concurrency() -> Result {
        const PER: usize = 128;
        static BAD: Atomic<bool> = Atomic::new(false);
        let ctx = ctx()?;
        let seen = Arc::pin_init(new_mutex!(KVec::<u64>::new()), GFP_KERNEL)?;
        let mut done = KVec::new();
        for _ in 0..3 {
            let ctx = ctx.clone();
            let seen: Arc<Mutex<KVec<u64>>> = seen.clone();
            // Allocate up front; the workers only create and signal fences.
            let mut allocs = KVec::with_capacity(PER, GFP_KERNEL)?;
            for _ in 0..PER {
                allocs.push(DriverFenceAllocation::new((), GFP_KERNEL)?, GFP_KERNEL)?;
            }
            let mut mine = KVec::with_capacity(PER, GFP_KERNEL)?;
            done.push(
                spawn(move || {
                    let mut last = 0;
                    for (i, a) in allocs.into_iter().enumerate() {
                        let f = ctx.new_fence(a);
                        let s = f.as_fence().seqno();
                        // Strictly rising within one thread, too. (No KUnit assertion in a
                        // worker: record the failure and check it in the test thread.)
                        if s <= last {
                            BAD.store(true, Relaxed);
                        }
                        last = s;
                        let _ = mine.push(s, GFP_KERNEL);
                        let _ = f.signal(Ok(()));
                        if i % 32 == 0 {
                            crate::time::delay::fsleep(crate::time::Delta::from_micros(5));
                        }
                    }
                    let mut g = seen.lock();
                    for s in mine.iter() {
                        let _ = g.push(*s, GFP_KERNEL);
                    }
                })?,
                GFP_KERNEL,
            )?;
        }
        for d in done.iter() {
            d.join();
        }
        assert!(!BAD.load(Relaxed));
        let mut all = seen.lock();
        assert_eq!(all.len(), 3 * PER);
        all.sort_unstable();
        for w in all.windows(2) {
            assert!(w[0] < w[1]);
        }
        Ok(())
    }

    #[test]
    fn names_under_rcu_after_ctx_dropped() -> Result {
        let ctx = ctx()?;
        let f = fence(&ctx)?;
        let consumer = f.fence();
        {
            let guard = rcu::read_lock();
            let driver = consumer.driver_name(&guard);
            let timeline = consumer.timeline_name(&guard);
            // Signal and drop the last reference to the context while the reader holds the
            // names: they must stay readable until the reader leaves its critical section.
            let _ = f.signal(Ok(()));
            drop(ctx);
            assert_eq!(driver.to_bytes(), b"rust-dma-fence-test");
            assert_eq!(timeline.to_bytes(), b"kunit");
            // New readers see the fence detached from its (gone) issuer.
            assert_eq!(consumer.driver_name(&guard).to_bytes(), b"detached-driver");
        }
        rcu::rcu_barrier();
        let guard = rcu::read_lock();
        assert_eq!(consumer.driver_name(&guard).to_bytes(), b"detached-driver");
        assert!(consumer.is_signaled());
        Ok(())
    }

    #[test]
    fn signalling_guard_nests() -> Result {
        let ctx = ctx()?;
        let a = fence(&ctx)?;
        let b = fence(&ctx)?;
        let ca = a.fence();
        let outer = SignallingSection::begin();
        {
            let _inner = SignallingSection::begin();
            let _ = a.signal(Ok(()));
        }
        // Still inside the outer section; the typed form nests as well.
        signalling(|| b.signal(Ok(())));
        drop(outer);
        assert!(ca.is_signaled());
        assert!(lockdep_enabled());
        Ok(())
    }

    #[test]
    fn signal_with_timestamp() -> Result {
        let ctx = ctx()?;
        let f = fence(&ctx)?;
        let consumer = f.fence();
        let ts = crate::time::Instant::<crate::time::Monotonic>::now();
        let _ = f.signal_timestamp(Err(ETIMEDOUT), ts);
        assert_eq!(consumer.status(), Some(Err(ETIMEDOUT)));
        // SAFETY: The fence is signalled, so its timestamp is set and stable.
        let got = unsafe { (*consumer.as_raw()).__bindgen_anon_2.timestamp };
        assert_eq!(got, ts.as_nanos());
        Ok(())
    }

    /// `signal_batch()` on one CPU and single `signal()`s on another, on one timeline, each
    /// going from its latest fence back: every fence still signals once, in seqno order, with
    /// its own result and, for the batched ones, the batch's timestamp. Each batch also carries
    /// a fence of a second timeline.
    #[test]
    fn batch_and_single_signallers_keep_order() -> Result {
        use crate::dma_buf::DriverFence;
        use crate::time::{
            Instant,
            Monotonic, //
        };
        const N: usize = 512;
        const BATCH: usize = 8;
        let (ctx, other) = (ctx()?, super::util::ctx()?);
        let seen = Arc::pin_init(
            new_spinlock_irq!(KVec::<u64>::with_capacity(N, GFP_KERNEL)?),
            GFP_KERNEL,
        )?;
        let ts = Instant::<Monotonic>::now();
        // The result each fence is signalled with.
        let result = |seqno: u64| if seqno % 7 == 0 { Err(EIO) } else { Ok(()) };
        let mut consumers = KVec::with_capacity(N, GFP_KERNEL)?;
        let mut regs = KVec::with_capacity(N, GFP_KERNEL)?;
        // Even groups of `BATCH` go to the batch signaller, in batches, odd ones to this thread.
        let mut batches = KVec::with_capacity(N / BATCH / 2, GFP_KERNEL)?;
        let mut single = KVec::with_capacity(N / 2, GFP_KERNEL)?;
        let mut other_consumers = KVec::with_capacity(N / BATCH / 2, GFP_KERNEL)?;
        for g in 0..N / BATCH {
            let mut batch = KVec::with_capacity(BATCH + 1, GFP_KERNEL)?;
            for _ in 0..BATCH {
                let f = fence(&ctx)?;
                let c = f.fence();
                let reg = KBox::try_pin_init(
                    FenceCbRegistration::new(c.clone(), Record(c.seqno(), seen.clone())),
                    GFP_KERNEL,
                )
                .map_err(Error::from)?;
                regs.push(reg, GFP_KERNEL)?;
                let res = result(c.seqno());
                consumers.push(c, GFP_KERNEL)?;
                if g % 2 == 0 {
                    batch.push((f, res), GFP_KERNEL)?;
                } else {
                    single.push((f, res), GFP_KERNEL)?;
                }
            }
            if g % 2 == 0 {
                // Latest first within the batch, then the other timeline's fence.
                batch.reverse();
                let o = fence(&other)?;
                other_consumers.push(o.fence(), GFP_KERNEL)?;
                batch.push((o, Ok(())), GFP_KERNEL)?;
                batches.push(batch, GFP_KERNEL)?;
            }
        }
        let done = spawn(move || {
            // The latest batch first.
            while let Some(batch) = batches.pop() {
                let _ = DriverFence::signal_batch(batch, ts);
            }
        })?;
        while let Some((f, res)) = single.pop() {
            let _ = f.signal(res);
        }
        done.join();
        for c in Iterator::chain(consumers.iter(), other_consumers.iter()) {
            c.wait(false)?;
        }
        for (i, c) in consumers.iter().enumerate() {
            assert_eq!(c.status(), Some(result(c.seqno())));
            if (i / BATCH) % 2 == 0 {
                // SAFETY: The fence is signalled, so its timestamp is set and stable.
                let got = unsafe { (*c.as_raw()).__bindgen_anon_2.timestamp };
                assert_eq!(got, ts.as_nanos());
            }
        }
        assert!(other_consumers.iter().all(|c| c.status() == Some(Ok(()))));
        let order = seen.lock();
        assert_eq!(order.len(), N);
        assert!(order.windows(2).all(|w| w[0] < w[1]));
        Ok(())
    }

    /// What the two sides of [`signaller_sees_fence_queued_while_signalling()`] share.
    struct SignalRound {
        /// The second side runs on its CPU.
        ready: Atomic<u32>,
        /// The round the first side started.
        go: Atomic<u32>,
        /// The rounds in which the second side's `signal()` returned.
        queued: Atomic<u32>,
        /// A round timed out: nobody waits any more.
        abort: Atomic<u32>,
    }

    impl SignalRound {
        /// Spins until `what` reaches `round`, for at most 100 ms, or until the test gave up;
        /// returns whether it did reach it.
        fn wait(&self, what: &Atomic<u32>, round: u32) -> bool {
            use crate::time::{
                Instant,
                Monotonic, //
            };
            let start = Instant::<Monotonic>::now();
            while what.load(Acquire) < round {
                if self.abort.load(Relaxed) != 0 || start.elapsed() > Delta::from_millis(100) {
                    return false;
                }
                core::hint::spin_loop();
            }
            true
        }
    }

    /// Holds up the signalling of its fence until the other side's `signal()` of the next
    /// fence returned in this round.
    struct WaitQueued(Arc<SignalRound>, u32);

    impl FenceCb for WaitQueued {
        fn called(self) {
            let _ = self.0.wait(&self.0.queued, self.1);
        }
    }

    /// A thread signals a fence while another, on another CPU, signals the next one of the
    /// timeline, round after round. In odd rounds a callback of the first fence holds its
    /// signaller until the second thread's `signal()` returned: that thread found the timeline
    /// busy and left its fence queued, so the signaller must see it as it stops without the
    /// lock. In even rounds the two race freely (the second thread may also find the first
    /// just stopping, and signal itself). Either way, once both calls of a round returned,
    /// both fences must have signalled; one that is left queued signals only with the
    /// timeline's next signal, or never.
    #[test]
    fn signaller_sees_fence_queued_while_signalling() -> Result {
        const ROUNDS: u32 = 1000;
        if crate::cpu::nr_cpu_ids() < 2 {
            crate::kunit::skip(c"needs two CPUs");
            return Ok(());
        }
        let ctx = ctx()?;
        let shared = Arc::new(
            SignalRound {
                ready: Atomic::new(0),
                go: Atomic::new(0),
                queued: Atomic::new(0),
                abort: Atomic::new(0),
            },
            GFP_KERNEL,
        )?;
        let mut consumers = KVec::with_capacity(2 * ROUNDS as usize, GFP_KERNEL)?;
        let mut regs = KVec::with_capacity(ROUNDS as usize, GFP_KERNEL)?;
        let mut first = KVec::with_capacity(ROUNDS as usize, GFP_KERNEL)?;
        let mut second = KVec::with_capacity(ROUNDS as usize, GFP_KERNEL)?;
        for round in 1..=ROUNDS {
            let (a, b) = (fence(&ctx)?, fence(&ctx)?);
            if round % 2 == 1 {
                let reg = KBox::try_pin_init(
                    FenceCbRegistration::new(a.fence(), WaitQueued(shared.clone(), round)),
                    GFP_KERNEL,
                )
                .map_err(Error::from)?;
                regs.push(reg, GFP_KERNEL)?;
            }
            consumers.push(a.fence(), GFP_KERNEL)?;
            consumers.push(b.fence(), GFP_KERNEL)?;
            first.push(a, GFP_KERNEL)?;
            second.push(b, GFP_KERNEL)?;
        }
        let other = {
            let shared = shared.clone();
            spawn(move || {
                if move_to_cpu(Some(1)).is_ok() {
                    shared.ready.store(1, Release);
                }
                for (round, b) in (1..).zip(second) {
                    // Once the first side gave up, without waiting: no fence is left.
                    let _ = shared.wait(&shared.go, round);
                    let _ = b.signal(Ok(()));
                    shared.queued.store(round, Release);
                }
                // A workqueue worker: it may run anywhere again.
                let _ = move_to_cpu(None);
            })?
        };
        move_to_cpu(Some(0))?;
        let (mut late, mut lost) = (0, 0);
        if !shared.wait(&shared.ready, 1) {
            // Not started on its CPU within 100 ms: give up, and let the worker signal its
            // fences without waiting.
            late += 1;
            shared.abort.store(1, Relaxed);
        }
        for (round, a) in (1..).zip(first) {
            shared.go.store(round, Release);
            let _ = a.signal(Ok(()));
            if late == 0 && !shared.wait(&shared.queued, round) {
                // The other CPU did not keep up: the rounds no longer tell anything.
                late += 1;
                shared.abort.store(1, Relaxed);
            }
            let i = 2 * (round - 1) as usize;
            if late == 0 && (!consumers[i].is_signaled() || !consumers[i + 1].is_signaled()) {
                if lost == 0 {
                    pr_err!("round {round}: the second fence was left unsignalled\n");
                }
                lost += 1;
            }
        }
        other.join();
        move_to_cpu(None)?;
        let all_ok = consumers.iter().all(|c| c.status() == Some(Ok(())));
        drop((regs, consumers, shared, ctx));
        assert_eq!(late, 0);
        assert_eq!(lost, 0);
        assert!(all_ok);
        Ok(())
    }

    /// `signal_batch()` takes any iterator, also one that drops the fences it leaves out,
    /// which signals them (`-ECANCELED`) through their timeline's lock: that must not deadlock
    /// (it did while the iterator was advanced under that lock).
    #[test]
    fn batch_iterator_may_drop_fences() -> Result {
        use crate::dma_buf::DriverFence;
        use crate::time::{
            Instant,
            Monotonic, //
        };
        let ctx = ctx()?;
        let mut fences = KVec::with_capacity(4, GFP_KERNEL)?;
        let mut consumers = KVec::with_capacity(4, GFP_KERNEL)?;
        for _ in 0..4 {
            let f = fence(&ctx)?;
            consumers.push(f.fence(), GFP_KERNEL)?;
            fences.push((f, Ok(())), GFP_KERNEL)?;
        }
        let dropped = consumers[2].seqno();
        {
            let _expect = ExpectSplat::new(c"driver-fence-dropped-unsignalled");
            let _ = DriverFence::signal_batch(
                fences
                    .into_iter()
                    .filter(|(f, _)| f.as_fence().seqno() != dropped),
                Instant::<Monotonic>::now(),
            );
        }
        assert_eq!(consumers[0].status(), Some(Ok(())));
        assert_eq!(consumers[1].status(), Some(Ok(())));
        assert_eq!(consumers[2].status(), Some(Err(ECANCELED)));
        assert_eq!(consumers[3].status(), Some(Ok(())));
        Ok(())
    }

    #[cfg(CONFIG_SYNC_FILE)]
    #[test]
    fn sync_file_round_trip() -> Result {
        use crate::{
            dma_buf::sync_file::{
                import_sync_file,
                SyncFile, //
            },
            fs::file::FileDescriptorReservation,
        };
        let ctx = ctx()?;
        let f = fence(&ctx)?;
        let fd = FileDescriptorReservation::get_unused_fd_flags(bindings::O_CLOEXEC)?;
        let n = fd.reserved_fd();
        SyncFile::new(f.as_fence())?.install(fd);
        let back = import_sync_file(n as i32)?;
        // The same fence, not a copy.
        assert_eq!(back.as_raw(), f.as_fence().as_raw());
        assert_eq!(back.status(), None);
        let _ = f.signal(Err(EIO));
        assert_eq!(back.status(), Some(Err(EIO)));
        // The fence outlives the fd and vice versa.
        // SAFETY: `n` is our own descriptor.
        assert_eq!(unsafe { bindings::close_fd(n) }, 0);
        assert_eq!(back.status(), Some(Err(EIO)));
        // A foreign C fence exports too.
        let fd = FileDescriptorReservation::get_unused_fd_flags(bindings::O_CLOEXEC)?;
        let n = fd.reserved_fd();
        SyncFile::new(&Fence::stub())?.install(fd);
        assert!(import_sync_file(n as i32)?.is_signaled());
        // SAFETY: `n` is our own descriptor.
        assert_eq!(unsafe { bindings::close_fd(n) }, 0);
        Ok(())
    }

    #[cfg(CONFIG_SYNC_FILE)]
    #[test]
    fn sync_file_armed_after_allocation() -> Result {
        use crate::{
            dma_buf::sync_file::{
                import_sync_file,
                SyncFile, //
            },
            fs::file::FileDescriptorReservation,
        };
        let ctx = ctx()?;
        // Everything that can fail first, as a submit path does...
        let fd = FileDescriptorReservation::get_unused_fd_flags(bindings::O_CLOEXEC)?;
        let n = fd.reserved_fd();
        let sf = SyncFile::new_unarmed()?;
        // ...then the fence, and the infallible rest.
        let f = fence(&ctx)?;
        sf.arm(f.as_fence()).install(fd);
        let back = import_sync_file(n as i32)?;
        assert_eq!(back.as_raw(), f.as_fence().as_raw());
        assert_eq!(back.status(), None);
        let _ = f.signal(Ok(()));
        assert_eq!(back.status(), Some(Ok(())));
        // SAFETY: `n` is our own descriptor.
        assert_eq!(unsafe { bindings::close_fd(n) }, 0);
        // An unarmed sync_file that is dropped frees everything (kmemleak checks this).
        drop(SyncFile::new_unarmed()?);
        Ok(())
    }

    #[cfg(CONFIG_SYNC_FILE)]
    #[test]
    fn sync_file_import_rejects_bad_fds() -> Result {
        use crate::dma_buf::sync_file::import_sync_file;
        assert_eq!(import_sync_file(-1).err(), Some(EINVAL));
        assert_eq!(import_sync_file(1 << 20).err(), Some(EINVAL));
        Ok(())
    }

    /// Reservation objects: two locked together, a duplicate refused, fences added in
    /// reserved slots and found again by usage; adding without a slot warns and adds nothing.
    #[test]
    fn resv_lock_reserve_add_iterate() -> Result {
        use crate::dma_buf::resv::{
            OwnedResv,
            ResvLocks,
            ResvUsage, //
        };
        let a = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
        let b = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
        assert_eq!(ResvLocks::lock(&[&**a, &**a]).err(), Some(EINVAL));
        let (c1, c2) = (ctx()?, ctx()?);
        let (w, r1, r2) = (fence(&c1)?, fence(&c2)?, fence(&c1)?);
        {
            let mut locks = ResvLocks::lock(&[&**a, &**b])?;
            locks.reserve(0, 1)?;
            locks.reserve(1, 1)?;
            locks.reserve(1, 1)?;
            locks.add_fence(0, &w.fence(), ResvUsage::Write);
            locks.add_fence(1, &r1.fence(), ResvUsage::Read);
            locks.add_fence(1, &r2.fence(), ResvUsage::Read);
            fn count(l: &ResvLocks<'_>, i: usize, usage: ResvUsage) -> Result<u32> {
                let mut n = 0;
                l.for_each_fence(i, usage, |_| {
                    n += 1;
                    Ok(())
                })?;
                Ok(n)
            }
            assert_eq!(count(&locks, 0, ResvUsage::to_wait_for(false))?, 1);
            assert_eq!(count(&locks, 1, ResvUsage::to_wait_for(false))?, 0);
            assert_eq!(count(&locks, 1, ResvUsage::to_wait_for(true))?, 2);
            assert_eq!(count(&locks, 2, ResvUsage::Read).err(), Some(EINVAL));
            {
                let _expect = ExpectSplat::new(c"resv-add-fence-without-slot");
                locks.add_fence(0, &r1.fence(), ResvUsage::Read);
            }
            assert_eq!(count(&locks, 0, ResvUsage::Bookkeep)?, 1);
        }
        // Unlocked again: another set takes the locks.
        drop(ResvLocks::lock(&[&**b, &**a])?);
        for f in [w, r1, r2] {
            let _ = f.signal(Ok(()));
        }
        Ok(())
    }

    #[test]
    fn unused_allocation_drops_data() -> Result {
        static DROPS: Atomic<u32> = Atomic::new(0);
        let a =
            DriverFenceAllocation::new(RcuBox::new(DropCounter(&DROPS), GFP_KERNEL)?, GFP_KERNEL)?;
        drop(a);
        rcu::rcu_barrier();
        assert_eq!(DROPS.load(Relaxed), 1);
        Ok(())
    }

    #[test]
    fn lockdep_still_enabled() {
        assert!(lockdep_enabled());
    }
}
